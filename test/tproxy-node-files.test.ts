import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { hostToolsMissing } from "../lab/hostTools";
import { SshLab, layoutUnder } from "../lab/sshLab";
import { PROJECT, rawStack, withValues } from "./support/stacks";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { parseRecords } from "../components/drift/nodeFindings";
import { renderKeepalivedNotify } from "../components/tproxy/keepalivedNotify";
import { ACTIVATION_SET, nftRulesetInput, renderNftRuleset } from "../components/tproxy/nftRuleset";
import { NODE_FILES, nodeTproxyBundle, renderNodeBundle, type NodeBundle } from "../components/tproxy/nodeBundle";
import { DEFAULT_NODE_LAYOUT } from "../components/tproxy/nodeLayout";
import { policyRouteSpec } from "../components/tproxy/policyRoutes";
import { applyCommand, bundleManifest, confirmCommand, deleteCommand, driftCheckCommand, type RemoteSettings } from "../components/tproxy/tproxyCommands";

/*
 * "Adding a node file is one entry in NODE_FILES": everything below walks that list (never a copy
 * of it), so an entry added there is carried, staged, installed, drift-checked and restored by
 * delete without any other change, and a step that forgot one entry fails here.
 */

const TABLE = "kpr_files_tproxy";
const VIP = "192.0.2.50";

function config(): MigrationConfig {
    const raw = withValues(rawStack("prod"), { "cluster.nodeCidrs": ["172.25.4.0/24", "192.0.2.0/24"], "tproxy.vip4": VIP, "tproxy.tableName": TABLE });
    const result = validateStackConfig(PROJECT, raw);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return result.config;
}

function sha256(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

describe("the node bundle's one list of files", () => {
    test("the program's bundle carries every entry, in list order, at its layout path; each is in the manifest and staged under its checksum", () => {
        const c = config();
        const bundle = nodeTproxyBundle(c, c.nodes[0]!);
        assert.deepEqual(
            bundle.files.map((f) => [f.path, f.kind, f.mode, f.owner]),
            NODE_FILES.map((entry) => [DEFAULT_NODE_LAYOUT[entry.path], entry.kind, entry.mode, entry.owner]),
        );
        const manifest = bundleManifest(bundle).trimEnd().split("\n");
        assert.equal(manifest.length, NODE_FILES.length);
        const apply = applyCommand(bundle, { revertAfterSeconds: 60, systemd: "auto" });
        const drift = driftCheckCommand(bundle, { vip4: VIP }, ACTIVATION_SET);
        bundle.files.forEach((file, i) => {
            assert.equal(manifest[i], `${i} ${file.kind} ${file.mode} ${file.owner} ${file.path}`);
            for (const text of [apply, drift])
                assert.match(text, new RegExp(`^  -[ib] 'files/${i}' ${sha256(file.content)} '`, "m"), `${file.path} staged and checksummed`);
        });
    });

    test("a lab layout moves the state directory and every entry under the lab's root", () => {
        const layout = layoutUnder("/lab-root");
        assert.equal(layout.stateDir, path.join("/lab-root", DEFAULT_NODE_LAYOUT.stateDir));
        for (const entry of NODE_FILES) assert.equal(layout[entry.path], path.join("/lab-root", DEFAULT_NODE_LAYOUT[entry.path]), entry.path);
    });
});

const skip = hostToolsMissing(["nft", "ip", "sshd", "ssh", "ssh-keygen", "flock", "setsid", "sha256sum", "unshare", "stat"]);

describe("every entry on a node over real SSH", { skip }, () => {
    const settings: RemoteSettings = { revertAfterSeconds: 30, systemd: "off" };
    let lab: SshLab;
    let bundle: NodeBundle;
    before(async () => {
        lab = new SshLab();
        await lab.start();
        const c = config();
        // The program's inputs; the notify script's lock lives in the lab, not in the host's /run.
        bundle = renderNodeBundle({
            tableName: TABLE,
            ruleset: renderNftRuleset(nftRulesetInput(c)),
            routes: policyRouteSpec(c.tproxy),
            keepalivedNotify: renderKeepalivedNotify(c, { lockPath: path.join(lab.dir, "notify.lock"), vipWaitSeconds: 1 }),
            layout: layoutUnder(lab.root),
        });
    });
    after(() => lab?.dispose());

    /** Every file under the lab root outside the state directory: path, mode, owner and content digest. */
    const files = () =>
        lab.node.sh(
            `cd ${lab.root} && find . -path .${DEFAULT_NODE_LAYOUT.stateDir} -prune -o -printf '%p %m %u:%g\\n' | sort && find . -type f -not -path '.${DEFAULT_NODE_LAYOUT.stateDir}/*' -exec sha256sum {} + | sort`,
        );
    const fileRecords = () => {
        const run = lab.ssh(driftCheckCommand(bundle, { vip4: VIP }, ACTIVATION_SET));
        assert.equal(run.status, 0, run.stderr);
        return new Map(parseRecords(run.stdout).flatMap((r) => (r[0] === "file" ? [[r[2], r[1]] as const] : [])));
    };

    test("apply installs every entry, the drift check reports each, delete gives back what each path held", () => {
        assert.equal(bundle.files.length, NODE_FILES.length, "the lab bundle carries every entry");
        // A node has the state directory's parent (/var/lib). Every other entry's path already holds an
        // operator's file: delete must put it back; the other files and the directories apply made must go.
        lab.node.sh(`mkdir -p ${path.dirname(bundle.layout.stateDir)}`);
        bundle.files.forEach((file, i) => {
            if (i % 2 === 0) lab.node.sh(`mkdir -p ${path.dirname(file.path)} && printf 'previous %s\\n' ${i} > ${file.path} && chmod 0640 ${file.path}`);
        });
        const before = files();

        const applied = lab.ssh(applyCommand(bundle, settings));
        assert.equal(applied.status, 0, applied.stderr);
        for (const file of bundle.files) {
            assert.equal(lab.node.sh(`stat -c '%a %U:%G' ${file.path}`).trim(), `${Number.parseInt(file.mode, 8).toString(8)} ${file.owner}`, file.path);
            assert.equal(lab.node.sh(`cat ${file.path}`), file.content, file.path);
        }
        assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);
        assert.deepEqual(fileRecords(), new Map(bundle.files.map((f) => [f.path, "ok"])));

        for (const file of bundle.files) lab.node.sh(`printf '# edited\\n' >> ${file.path}`);
        assert.deepEqual(fileRecords(), new Map(bundle.files.map((f) => [f.path, "content"])), "an edit of any entry is drift");

        const removed = lab.ssh(deleteCommand(bundle, settings));
        assert.equal(removed.status, 0, removed.stderr);
        assert.equal(files(), before);
    });
});
