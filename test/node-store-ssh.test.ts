import { strict as assert } from "node:assert";
import { after, before, describe, test } from "node:test";
import * as path from "node:path";
import { hostToolsMissing } from "../lab/hostTools";
import { SshLab, layoutUnder } from "../lab/sshLab";
import { createCopy, updateCopy, type CopyInputs } from "./support/copyToRemote";
import { renderNodeBundle, type NodeBundle } from "../components/tproxy/nodeBundle";
import type { PolicyRouteSpec } from "../components/tproxy/policyRoutes";
import { applyCommand, bundleManifest, confirmCommand, deleteCommand, tproxyStoreContents, type RemoteSettings } from "../components/tproxy/tproxyCommands";
import { tproxyNodeFiles } from "../components/tproxy/nodeFilesStash";
import { scriptText } from "../components/commands/scripts";
import { nodeRunnerText } from "../components/commands/remoteCommand";
import { staleRuleVerifyCommand } from "../components/kubeproxy/staleRuleCleanup";
import { sha256Hex, storeCheckCommand, storeRef, storeRemoveCommand, storeSet, writeLocalStore, type StoreSet } from "../components/commands/nodeStore";

const skip = hostToolsMissing(["nft", "ip", "iptables", "sshd", "ssh", "ssh-keygen", "flock", "setsid", "sha256sum"]);

const TABLE = "kpr_test_store";
const settings: RemoteSettings = { revertAfterSeconds: 30, systemd: "off" };
const routes: PolicyRouteSpec = { mark: 0x1, table: 100, priority: 1000, families: ["ipv4"] };
const RULESET = `table inet ${TABLE} {}\ndelete table inet ${TABLE}\ntable inet ${TABLE} {\n  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n    meta mark 0x1 counter accept\n  }\n}\n`;

function bundleFor(lab: SshLab): NodeBundle {
    return renderNodeBundle({ tableName: TABLE, ruleset: RULESET, routes, layout: layoutUnder(lab.root) });
}

/** What the steps may touch: our table, the ip rules, and every file under the lab's root. */
function nodeState(lab: SshLab): string {
    return [lab.node.sh("nft list tables"), lab.node.sh("ip -4 rule show"), lab.node.sh(`cd ${lab.root} && find . -printf '%p %m %u:%g %s\\n' | sort`)].join(
        "\n---\n",
    );
}

describe("node steps fetching their scripts from the node store, over real SSH", { skip }, () => {
    let lab: SshLab;
    before(async () => {
        lab = new SshLab();
        await lab.start();
    });
    after(() => lab?.dispose());

    test("apply, confirm and an old delete run from the store after a newer copy; removing the store leaves the node as found", () => {
        // An absolute store directory inside the lab (production: relative, i.e. under the SSH user's home).
        const storeDir = path.join(lab.root, "home", ".cilium-kpr", "node-store");
        const local = path.join(lab.dir, "local-store");
        lab.node.sh(`mkdir -p ${lab.root}/home ${lab.root}/var/lib`);
        const before = nodeState(lab);

        const bundle = bundleFor(lab);
        const set1 = storeSet([nodeRunnerText(), ...tproxyStoreContents(bundle)]);
        const ref1 = storeRef(set1, storeDir);
        const copy = (set: StoreSet): CopyInputs => ({
            source: { kind: "fileArchive", path: writeLocalStore(local, set), hash: set.digest },
            remotePath: storeDir,
        });
        createCopy({ home: path.join(lab.root, "home") }, copy(set1));
        const checked = lab.ssh(storeCheckCommand(set1, storeDir));
        assert.equal(checked.status, 0, checked.stderr);

        const apply = applyCommand(bundle, settings, ref1);
        const del = deleteCommand(bundle, settings, ref1);
        assert.ok(!apply.includes(scriptText("tproxy/tproxy-apply")), "the apply carries a digest, not the script");
        // The ruleset and the manifest are fetched from the store like the scripts: the apply names them by
        // digest, and the preview shows their texts once per stack, in the node-files Stash (its input is this).
        assert.ok(!apply.includes(RULESET), "the ruleset is in the store, not in the text");
        assert.ok(apply.includes(`-f ${sha256Hex(RULESET)} 'files/0'`), "the apply names the ruleset by its digest");
        assert.ok(apply.includes(`-f ${sha256Hex(bundleManifest(bundle))} 'manifest'`), "and the manifest");
        const shown = tproxyNodeFiles([{ node: "lab", bundle }]);
        assert.deepEqual(
            shown.files[bundle.layout.rulesetPath]?.map((v) => [v.sha256, v.content]),
            [[sha256Hex(RULESET), RULESET]],
            "the preview shows the ruleset (node-files Stash)",
        );
        assert.ok(!del.includes(scriptText("tproxy/tproxy-remove")));
        assert.ok(Buffer.byteLength(apply) < 2000 && Buffer.byteLength(del) < 2000, `${Buffer.byteLength(apply)} / ${Buffer.byteLength(del)} bytes`);

        const applied = lab.ssh(apply);
        assert.equal(applied.status, 0, applied.stderr);
        assert.match(applied.stdout, /revert armed/);
        assert.match(lab.node.sh(`nft list table inet ${TABLE}`), /meta mark 0x00000001 counter/);
        const confirmed = lab.ssh(confirmCommand(bundle, settings, ref1));
        assert.equal(confirmed.status, 0, confirmed.stderr);
        assert.match(confirmed.stdout, /confirmed apply/);

        // The repository moves on: a later set no longer has the remove script the stored delete names.
        const set2 = storeSet([
            nodeRunnerText(),
            ...tproxyStoreContents(bundle).filter((c) => c !== scriptText("tproxy/tproxy-remove")),
            "#!/usr/bin/env bash\necho newer\n",
        ]);
        assert.equal(updateCopy({ home: path.join(lab.root, "home") }, copy(set1), copy(set2)), "copied");
        assert.equal(lab.ssh(storeCheckCommand(set2, storeDir)).status, 0);
        assert.equal(lab.node.try(`test -f ${storeDir}/${sha256Hex(scriptText("tproxy/tproxy-remove"))}`).status, 0, "the copy never removes a file");

        // Destroy: the delete stored with the apply, then the store's own removal.
        const removed = lab.ssh(del);
        assert.equal(removed.status, 0, removed.stderr);
        assert.match(removed.stdout, /removed/);
        const storeRemoved = lab.ssh(storeRemoveCommand(storeDir));
        assert.equal(storeRemoved.status, 0, storeRemoved.stderr);
        assert.equal(nodeState(lab), before, "table, rules, files and the store are gone");
    });

    test("an existing stack's next up: the apply that fetches the ruleset from the store finds the node as the inline apply left it (unchanged, nothing armed)", () => {
        const storeDir = path.join(lab.root, "home", ".cilium-kpr", "node-store");
        const local = path.join(lab.dir, "local-store");
        lab.node.sh(`mkdir -p ${lab.root}/home ${lab.root}/var/lib`);
        const before = nodeState(lab);
        const bundle = bundleFor(lab);
        const copy = (set: StoreSet): CopyInputs => ({
            source: { kind: "fileArchive", path: writeLocalStore(local, set), hash: set.digest },
            remotePath: storeDir,
        });

        // Before the change the store held every tproxy file but the ruleset and the manifest, which the apply carried.
        const inlineSet = storeSet([nodeRunnerText(), ...tproxyStoreContents(bundle).filter((c) => c !== RULESET && c !== bundleManifest(bundle))]);
        createCopy({ home: path.join(lab.root, "home") }, copy(inlineSet));
        const inlineApply = applyCommand(bundle, settings, storeRef(inlineSet, storeDir));
        assert.ok(inlineApply.includes(RULESET), "the earlier apply carries the ruleset");
        const first = lab.ssh(inlineApply);
        assert.equal(first.status, 0, first.stderr);
        assert.match(first.stdout, /revert armed/);
        assert.equal(lab.ssh(confirmCommand(bundle, settings, storeRef(inlineSet, storeDir))).status, 0);
        const applied = nodeState(lab);

        // The next up: the copy adds the ruleset and the manifest, the apply's text changed (an update: its create
        // runs again), the confirm's trigger changed (a replacement: its create runs again).
        const set = storeSet([nodeRunnerText(), ...tproxyStoreContents(bundle)]);
        assert.equal(updateCopy({ home: path.join(lab.root, "home") }, copy(inlineSet), copy(set)), "copied");
        assert.equal(lab.ssh(storeCheckCommand(set, storeDir)).status, 0);
        const storeApply = applyCommand(bundle, settings, storeRef(set, storeDir));
        assert.notEqual(storeApply, inlineApply);
        const again = lab.ssh(storeApply);
        assert.equal(again.status, 0, again.stderr);
        assert.match(again.stdout, /unchanged: .*nothing armed/);
        const copied = nodeState(lab).replace(/^.*\/node-store\/[0-9a-f]{64} .*\n/gm, "");
        assert.equal(copied, applied.replace(/^.*\/node-store\/[0-9a-f]{64} .*\n/gm, ""), "table, rules and installed files as they were");
        const confirmed = lab.ssh(confirmCommand(bundle, settings, storeRef(set, storeDir)));
        assert.equal(confirmed.status, 0, confirmed.stderr);

        assert.equal(lab.ssh(deleteCommand(bundle, settings, storeRef(inlineSet, storeDir))).status, 0, "the delete stored before the change");
        assert.equal(lab.ssh(storeRemoveCommand(storeDir)).status, 0);
        assert.equal(nodeState(lab), before);
    });

    test("a store without a step's script refuses before anything changes, naming the file", () => {
        const storeDir = path.join(lab.root, "home", ".cilium-kpr", "node-store");
        const bundle = bundleFor(lab);
        const ref = storeRef(storeSet([nodeRunnerText(), ...tproxyStoreContents(bundle)]), storeDir);
        // The store holds the runner (a store without it is refused the same way, naming the runner: node-store.test.ts).
        lab.node.sh(`mkdir -p ${storeDir} && cat >${storeDir}/${sha256Hex(nodeRunnerText())}`, nodeRunnerText());
        const before = nodeState(lab);
        const run = lab.ssh(applyCommand(bundle, settings, ref));
        assert.equal(run.status, 1);
        const apply = sha256Hex(scriptText("tproxy/tproxy-apply"));
        assert.equal(
            run.stderr.trim().split("\n").pop(),
            `cilium-kpr: tproxy-apply.sh (sha256 ${apply}) is missing from the node store ${storeDir} or differs (node-store step); nothing was run`,
        );
        assert.equal(nodeState(lab), before);
    });

    test("a failing step's error, as pulumi-command words it, is the short command text and then the script's own stderr", (t) => {
        const storeDir = path.join(lab.root, "home", ".cilium-kpr", "node-store");
        lab.node.sh(`mkdir -p ${lab.root}/home`);
        const set = storeSet([nodeRunnerText(), scriptText("kubeproxy/stale-rules-verify")]);
        const local = writeLocalStore(path.join(lab.dir, "local-store"), set);
        createCopy({ home: path.join(lab.root, "home") }, { source: { kind: "fileArchive", path: local, hash: set.digest }, remotePath: storeDir });
        // kube-proxy's state on the node (a chain only kube-proxy creates, in the lab node's own namespace): the verify fails.
        lab.node.sh("iptables -t nat -N KUBE-SERVICES");
        t.after(() => lab.node.try("iptables -t nat -X KUBE-SERVICES"));
        const verify = staleRuleVerifyCommand("lab", storeRef(set, storeDir));

        // The provider reads the session's stdout and stderr into one buffer as they arrive; `exec 2>&1` makes
        // that one stream here, in the order the node wrote it. Run apart too, to tell the two apart.
        const merged = lab.ssh(`exec 2>&1\n${verify}`);
        const apart = lab.ssh(verify);
        assert.equal(merged.status, 1, merged.stdout);
        assert.equal(apart.status, 1, apart.stderr);
        assert.match(
            apart.stderr,
            /^stale-rules-verify: iptables-nft: 1 kube-proxy chains remain.*\n:KUBE-SERVICES /m,
            "the script says what it found, on stderr",
        );
        assert.match(apart.stdout, /^\{"ok":false,/, "its JSON summary is on stdout");
        const error = providerError(merged.status, verify, merged.stdout);
        const [first, ...output] = error.split("\n");
        assert.equal(first, `Process exited with status 1: running ${goQuote(verify)}:`);
        assert.ok(Buffer.byteLength(first) < 900, `the quoted command text is ${Buffer.byteLength(first)} bytes`);
        // Right after the text: the script's stderr, all of it, then its stdout (held back by the runner).
        assert.equal(output.join("\n"), `${apart.stderr}${apart.stdout}`);
        assert.match(output[0]!, /^stale-rules-verify: /);
    });
});

/**
 * The error pulumi-command 1.2.1 returns for a failed remote command (provider/pkg/provider/remote/commandOutputs.go:101,
 * `fmt.Errorf("%w: running %q:\n%s", err, cmd, stdouterrbuf.String())`), err being golang.org/x/crypto v0.48.0's
 * ssh.ExitError (ssh/session.go:639 Waitmsg.String, "Process exited with status %v").
 */
function providerError(status: number, command: string, output: string): string {
    return `Process exited with status ${status}: running ${goQuote(command)}:\n${output}`;
}

/** Go's strconv.Quote (what %q prints) for ASCII text: \a \b \f \n \r \t \v \\ \" escaped, other control bytes as \xHH. */
function goQuote(text: string): string {
    const named: Record<string, string> = {
        "\x07": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
        '"': '\\"',
    };
    if (/[^\x00-\x7f]/.test(text)) throw new Error("goQuote covers ASCII only");
    return `"${text.replace(/[\x00-\x1f\x7f\\"]/g, (c) => named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)}"`;
}
