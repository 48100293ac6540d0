import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import * as path from "node:path";
import { hostToolsMissing } from "./support/hostTools";
import { SshLab, layoutUnder, sleep } from "./support/sshLab";
import { renderNodeBundle, type NodeBundle } from "../components/tproxy/nodeBundle";
import { policyRouteSpec, type PolicyRouteSpec } from "../components/tproxy/policyRoutes";
import { applyCommand, confirmCommand, deleteCommand, type RemoteSettings } from "../components/tproxy/tproxyCommands";
import { nftRulesetInput, renderNftRuleset } from "../components/tproxy/nftRuleset";
import { renderKeepalivedNotify } from "../components/tproxy/keepalivedNotify";
import { validateStackConfig, type MigrationConfig, type RawStackConfig } from "../components/config/validate";
import { PROJECT, rawStack, withValues } from "./support/stacks";

function validConfig(raw: RawStackConfig): MigrationConfig {
    const result = validateStackConfig(PROJECT, raw);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return result.config;
}

const skip = hostToolsMissing(["nft", "ip", "sshd", "ssh", "ssh-keygen", "flock", "setsid", "sha256sum"]);

const TABLE = "kpr_test_tproxy";
const REVERT_SECONDS = 5;
const settings: RemoteSettings = { revertAfterSeconds: REVERT_SECONDS, systemd: "off" };
const routes: PolicyRouteSpec = { mark: 0x1, table: 100, priority: 1000, families: ["ipv4", "ipv6"] };

/** A small ruleset in the form B1 renders: declare, delete, define (one nft -f transaction). */
function ruleset(body: string): string {
    return `table inet ${TABLE} {}\ndelete table inet ${TABLE}\ntable inet ${TABLE} {\n${body}\n}\n`;
}
const MARKING = ruleset(`  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n    meta mark 0x1 counter accept\n  }`);
const MARKING_V2 = ruleset(
    `  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n    meta mark 0x1 counter accept\n    ip daddr 203.0.113.0/24 counter accept\n  }`,
);
const CUTS_SSH = ruleset(`  chain input {\n    type filter hook input priority filter; policy accept;\n    tcp dport 22 drop\n  }`);
// Passes `nft -c` but fails on commit: tproxy is only valid in prerouting.
const FAILS_ON_COMMIT = ruleset(
    `  chain output {\n    type filter hook output priority filter; policy accept;\n    meta l4proto tcp tproxy ip to 127.0.0.1:9\n  }`,
);

function bundleFor(lab: SshLab, rules: string, spec: PolicyRouteSpec = routes): NodeBundle {
    return renderNodeBundle({ tableName: TABLE, ruleset: rules, routes: spec, layout: layoutUnder(lab.root) });
}

interface NodeState {
    readonly ruleset: string;
    readonly rules4: string;
    readonly rules6: string;
    readonly table100: string;
    readonly files: string;
}

/** Everything the apply may touch, as text: `nft -a` shows handles, so re-created rules differ. */
function nodeState(lab: SshLab): NodeState {
    return {
        ruleset: lab.node.sh("nft -a list ruleset"),
        rules4: lab.node.sh("ip -4 rule show"),
        rules6: lab.node.sh("ip -6 rule show"),
        table100: lab.node.sh("{ ip -4 route show table 100; ip -6 route show table 100; } 2>/dev/null || true"),
        files: lab.node.sh(
            `cd ${lab.root} && find . -path ./var/lib/cilium-kpr-tproxy -prune -o -printf '%p %m %u:%g %s\\n' | sort && find . -type f -not -path './var/lib/*' -exec sha256sum {} + | sort`,
        ),
    };
}

/** What the apply and any other party put there first, so delete must give it back. */
function seedNode(lab: SshLab): void {
    lab.node.sh(
        [
            "nft add table inet other_team",
            "nft add chain inet other_team input '{ type filter hook input priority 10; policy accept; }'",
            "nft add rule inet other_team input ip saddr 198.51.100.0/24 counter accept",
            "ip -4 rule add pref 500 fwmark 0x5 lookup 50",
            "ip -6 rule add pref 500 fwmark 0x5 lookup 50",
            // Another route in our table: ours is added beside it and removed alone.
            "ip -4 route add 198.51.100.0/24 dev lo table 100",
            // The runbook's hand-made IPv6 local route already there: delete must leave it.
            "ip -6 route add local ::/0 dev lo table 100",
        ].join(" && "),
    );
    const dropIn = layoutUnder(lab.root).networkdDropInPath;
    lab.node.sh(`mkdir -p ${path.dirname(dropIn)} ${lab.root}/var/lib && printf '[Network]\\nSpeedMeter=yes\\n' > ${dropIn} && chmod 0640 ${dropIn}`);
}

async function waitForSsh(lab: SshLab, limitMs: number): Promise<number> {
    const started = Date.now();
    for (let i = 0; i < 200; i++) {
        if (lab.ssh("true", { timeoutMs: 4000 }).status === 0) return Date.now() - started;
        if (Date.now() - started > limitMs) break;
        await sleep(250);
    }
    throw new Error(`ssh did not come back within ${limitMs} ms`);
}

const VIP = "192.0.2.50";

/** The bundle nodeTproxyBundle ships (ruleset, routes, unit, keepalived notify), with paths under the lab's root. */
function realBundle(lab: SshLab, changes: Readonly<Record<string, unknown>> = {}): { bundle: NodeBundle; config: MigrationConfig; notifyPath: string } {
    const config = validConfig(
        withValues(rawStack("prod"), {
            "cluster.nodeCidrs": ["172.25.4.0/24", "192.0.2.0/24"],
            "tproxy.vip4": VIP,
            "tproxy.tableName": TABLE,
            ...changes,
        }),
    );
    const notifyPath = path.join(lab.root, "etc/keepalived/cilium-kpr-tproxy-notify.sh");
    const bundle = renderNodeBundle({
        tableName: TABLE,
        ruleset: renderNftRuleset(nftRulesetInput(config)),
        routes: policyRouteSpec(config.tproxy),
        layout: layoutUnder(lab.root),
        extraFiles: [
            {
                path: notifyPath,
                mode: "0755",
                owner: "root:root",
                kind: "activation-script",
                content: renderKeepalivedNotify(config, { lockPath: path.join(lab.dir, "notify.lock"), vipWaitSeconds: 1 }),
            },
        ],
    });
    return { bundle, config, notifyPath };
}

/**
 * The unit's command lines for KEY (ExecStart, ExecStop), split into argv the way systemd does for
 * unquoted words, with systemd's "-" prefix (systemd.service(5): the exit code is recorded but a failure
 * has no further effect) as `ignoreFailure`.
 */
function unitCommands(bundle: NodeBundle, key: "ExecStart" | "ExecStop"): { argv: string[]; ignoreFailure: boolean }[] {
    const unit = bundle.files.find((f) => f.kind === "systemd-unit");
    assert.ok(unit, "the bundle has a unit");
    const lines = unit.content.split("\n").filter((l) => l.startsWith(`${key}=`));
    assert.ok(lines.length > 0, `the unit has ${key}`);
    return lines.map((l) => {
        const command = l.slice(key.length + 1);
        const ignoreFailure = command.startsWith("-");
        const argv = command
            .slice(ignoreFailure ? 1 : 0)
            .split(/\s+/)
            .filter(Boolean);
        assert.ok(
            argv.every((a) => !/["'\\$;%]/.test(a)),
            `${l}: plain words only, so this split is systemd's`,
        );
        return { argv, ignoreFailure };
    });
}

/** Runs the unit's ExecStart (or ExecStop) lines in the node namespace, as systemd would: in order, no shell. */
function runUnit(lab: SshLab, bundle: NodeBundle, key: "ExecStart" | "ExecStop"): { status: number; output: string } {
    let output = "";
    for (const { argv, ignoreFailure } of unitCommands(bundle, key)) {
        const r = spawnSync("ip", ["netns", "exec", lab.node.name, ...argv], { encoding: "utf8", timeout: 60_000 });
        output += `${r.stdout}${r.stderr}`;
        if (r.status !== 0 && !ignoreFailure) return { status: r.status ?? -1, output };
    }
    return { status: 0, output };
}

/**
 * A power cut and boot, minus the boot: every process the apply left running (the armed revert) dies
 * and the node's network state is gone (nft ruleset, our ip rules, table 100, addresses added at
 * runtime); files on disk stay.
 */
function simulateReboot(lab: SshLab, stateDir: string): void {
    const pending = lab.node.try(`cat ${stateDir}/pending`).stdout.trim().split(" ");
    if (pending[1] === "setsid" && pending[2] !== undefined) lab.node.try(`kill -KILL -- -${pending[2]}`);
    lab.node.sh(
        [
            "nft flush ruleset",
            "for f in -4 -6; do ip $f rule flush; ip $f rule add pref 32766 lookup main; done",
            "ip -4 rule add pref 32767 lookup default",
            "ip -4 route flush table 100 2>/dev/null || true; ip -6 route flush table 100 2>/dev/null || true",
            `ip addr del ${VIP}/32 dev eth0 2>/dev/null || true`,
        ].join("\n"),
    );
}

describe("tproxy apply/confirm/delete over real SSH", { skip }, () => {
    let lab: SshLab;
    before(async () => {
        lab = new SshLab();
        await lab.start();
    });
    after(() => lab?.dispose());

    test("apply installs table, one rule per family, local routes and files; re-apply changes nothing; delete restores exactly", async () => {
        seedNode(lab);
        const before = nodeState(lab);
        const bundle = bundleFor(lab, MARKING);

        const applied = lab.ssh(applyCommand(bundle, settings));
        assert.equal(applied.status, 0, applied.stderr);
        assert.match(applied.stdout, /revert armed/);

        assert.match(lab.node.sh(`nft list table inet ${TABLE}`), /meta mark 0x00000001 counter/);
        assert.equal(lab.node.sh("ip -N -4 rule show pref 1000"), "1000:\tfrom all fwmark 0x1 lookup 100\n");
        assert.equal(lab.node.sh("ip -N -6 rule show pref 1000"), "1000:\tfrom all fwmark 0x1 lookup 100\n");
        assert.match(lab.node.sh("ip -4 route show table 100"), /^local default dev lo scope host/m);
        assert.match(lab.node.sh("ip -4 route show table 100"), /^198\.51\.100\.0\/24 dev lo/m);
        assert.match(lab.node.sh("ip -6 route show table 100"), /^local default dev lo/m);
        for (const file of bundle.files) {
            const [mode, owner] = lab.node.sh(`stat -c '%a %U:%G' ${file.path}`).trim().split(" ");
            assert.equal(mode, String(Number.parseInt(file.mode, 8).toString(8)), file.path);
            assert.equal(owner, file.owner, file.path);
            assert.equal(lab.node.sh(`cat ${file.path}`), file.content, file.path);
        }

        const confirmed = lab.ssh(confirmCommand(bundle, settings));
        assert.equal(confirmed.status, 0, confirmed.stderr);
        assert.match(confirmed.stdout, /confirmed apply/);

        // Past the window: a confirmed apply must not revert.
        const applied1 = nodeState(lab);
        await sleep((REVERT_SECONDS + 1.5) * 1000);
        assert.deepEqual(nodeState(lab), applied1);

        const again = lab.ssh(applyCommand(bundle, settings));
        assert.equal(again.status, 0, again.stderr);
        assert.match(again.stdout, /unchanged/);
        assert.deepEqual(nodeState(lab), applied1, "re-applying identical content must not recreate rules (handles), rules or routes");
        assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);

        // Drift (say networkd dropped a rule) is repaired by the next apply, without re-loading the table.
        lab.node.sh("ip -6 rule del pref 1000");
        const repaired = lab.ssh(applyCommand(bundle, settings));
        assert.equal(repaired.status, 0, repaired.stderr);
        assert.match(repaired.stdout, /policy routes drifted/);
        assert.deepEqual(nodeState(lab), applied1);

        const removed = lab.ssh(deleteCommand(bundle, settings));
        assert.equal(removed.status, 0, removed.stderr);
        assert.deepEqual(nodeState(lab), before);
        assert.equal(lab.node.try(`test -e ${bundle.layout.stateDir}`).status, 1, "state directory is gone");

        const removedAgain = lab.ssh(deleteCommand(bundle, settings));
        assert.equal(removedAgain.status, 0, removedAgain.stderr);
        assert.match(removedAgain.stdout, /nothing to remove/);
    });

    test("a wrong pinned host key makes ssh refuse and nothing changes", () => {
        const before = nodeState(lab);
        const bundle = bundleFor(lab, MARKING);
        const refused = lab.ssh(applyCommand(bundle, settings), { knownHosts: lab.wrongKnownHosts });
        assert.equal(refused.status, 255);
        assert.match(refused.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
        assert.deepEqual(nodeState(lab), before);
        assert.equal(lab.node.try(`test -e ${bundle.layout.stateDir}`).status, 1);
    });

    test("an apply that cuts SSH reverts by itself within its window; confirm then fails", async (t) => {
        const before = nodeState(lab);
        const bundle = bundleFor(lab, CUTS_SSH);
        const started = Date.now();
        // Server-to-client packets (sport 22) still flow, so the applying session may well report
        // success: only a fresh connection tells whether operators can still get in.
        lab.ssh(applyCommand(bundle, settings), { timeoutMs: 20_000 });
        assert.match(lab.node.sh(`nft list table inet ${TABLE}`), /tcp dport 22 drop/, "the cutting ruleset was applied");
        const early = lab.ssh(confirmCommand(bundle, settings), { timeoutMs: 4000 });
        if (Date.now() - started < REVERT_SECONDS * 1000) {
            assert.equal(early.status, 255, `confirm must not reach the node inside the window: ${early.stderr}`);
        } else {
            assert.notEqual(early.status, 0, "confirm after the window must fail");
        }

        await waitForSsh(lab, 20_000);
        const backAfterMs = Date.now() - started;
        t.diagnostic(`revert window ${REVERT_SECONDS} s: ssh usable again ${backAfterMs} ms after the apply started`);
        assert.ok(backAfterMs >= REVERT_SECONDS * 1000 - 500, `ssh came back after ${backAfterMs} ms: before the window closed, so the cut never happened`);
        assert.ok(backAfterMs <= (REVERT_SECONDS + 8) * 1000, `ssh came back after ${backAfterMs} ms`);
        const reverted = nodeState(lab);
        assert.equal(reverted.ruleset, before.ruleset);
        assert.equal(reverted.rules4, before.rules4);
        assert.equal(reverted.rules6, before.rules6);
        assert.equal(reverted.table100, before.table100);
        assert.equal(reverted.files, before.files);

        const late = lab.ssh(confirmCommand(bundle, settings));
        assert.equal(late.status, 1);
        assert.match(late.stderr, /was reverted/);

        const removed = lab.ssh(deleteCommand(bundle, settings));
        assert.equal(removed.status, 0, removed.stderr);
        assert.deepEqual(nodeState(lab), before);
    });

    test("an unconfirmed update reverts to the previous confirmed apply, not to the bare node", async () => {
        const before = nodeState(lab);
        const v1 = bundleFor(lab, MARKING);
        assert.equal(lab.ssh(applyCommand(v1, settings)).status, 0);
        assert.equal(lab.ssh(confirmCommand(v1, settings)).status, 0);
        const atV1 = nodeState(lab);
        // A revert reloads the table from its listing: same rules and counters, new handles.
        const rulesetAtV1 = lab.node.sh("nft list ruleset");

        const v2 = bundleFor(lab, MARKING_V2, { ...routes, priority: 1001 });
        const applied = lab.ssh(applyCommand(v2, settings));
        assert.equal(applied.status, 0, applied.stderr);
        assert.match(lab.node.sh(`nft list table inet ${TABLE}`), /203\.0\.113\.0\/24/);
        assert.equal(lab.node.sh("ip -N -4 rule show pref 1001"), "1001:\tfrom all fwmark 0x1 lookup 100\n");
        assert.equal(lab.node.sh("ip -4 rule show pref 1000"), "");

        await sleep((REVERT_SECONDS + 2) * 1000);
        const reverted = nodeState(lab);
        assert.equal(reverted.rules4, atV1.rules4);
        assert.equal(reverted.rules6, atV1.rules6);
        assert.equal(reverted.table100, atV1.table100);
        assert.equal(reverted.files, atV1.files);
        assert.equal(lab.node.sh("nft list ruleset"), rulesetAtV1);
        assert.equal(lab.ssh(confirmCommand(v2, settings)).status, 1);

        assert.equal(lab.ssh(deleteCommand(v1, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });

    test("an apply that fails on commit restores the previous state at once and exits non-zero", () => {
        const before = nodeState(lab);
        const bundle = bundleFor(lab, FAILS_ON_COMMIT);
        const failed = lab.ssh(applyCommand(bundle, settings));
        assert.notEqual(failed.status, 0);
        assert.match(failed.stdout, /failed .*restoring the previous state now/);
        assert.deepEqual(nodeState(lab), before, "restored without waiting for the revert window");
        assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 1);
        assert.equal(lab.ssh(deleteCommand(bundle, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });

    test("a ruleset nft -c rejects, or one touching another table, changes nothing and arms nothing", () => {
        const before = nodeState(lab);
        for (const rules of [
            ruleset("  chain broken {\n    type filter hook nowhere priority 0;\n  }"),
            "table inet other_team {}\ndelete table inet other_team\n" + MARKING,
        ]) {
            const bundle = bundleFor(lab, rules);
            const refused = lab.ssh(applyCommand(bundle, settings));
            assert.notEqual(refused.status, 0);
            assert.match(refused.stderr, /nft -c rejects|touches a table other than/);
            assert.doesNotMatch(refused.stdout, /revert armed/);
            assert.deepEqual(nodeState(lab), before);
            assert.equal(lab.ssh(deleteCommand(bundle, settings)).status, 0);
        }
    });

    test("the real bundle: apply re-activates diverting on the VIP holder (keepalived notify RECONCILE), re-apply ignores activation, delete restores", () => {
        const before = nodeState(lab);
        const vip = "192.0.2.50";
        const config = validConfig(
            withValues(rawStack("prod"), {
                "cluster.nodeCidrs": ["172.25.4.0/24", "192.0.2.0/24"],
                "tproxy.vip4": vip,
                "tproxy.tableName": TABLE,
            }),
        );
        const layout = layoutUnder(lab.root);
        const notifyPath = path.join(lab.root, "etc/keepalived/cilium-kpr-tproxy-notify.sh");
        const bundle = renderNodeBundle({
            tableName: TABLE,
            ruleset: renderNftRuleset(nftRulesetInput(config)),
            routes: policyRouteSpec(config.tproxy),
            layout,
            extraFiles: [
                {
                    path: notifyPath,
                    mode: "0755",
                    owner: "root:root",
                    kind: "activation-script",
                    content: renderKeepalivedNotify(config, { lockPath: path.join(lab.dir, "notify.lock"), vipWaitSeconds: 1 }),
                },
            ],
        });
        const active = () => lab.node.sh(`nft list set inet ${TABLE} tproxy_active`);

        lab.node.sh(`ip addr add ${vip}/32 dev eth0`);
        try {
            const applied = lab.ssh(applyCommand(bundle, settings));
            assert.equal(applied.status, 0, applied.stderr);
            assert.match(active(), /elements = \{ ipv4 \}/, "the VIP holder diverts right after the table was reloaded");
            assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);

            // keepalived moves the VIP away: notify switches diverting off; a re-apply is then a no-op.
            lab.node.sh(`ip addr del ${vip}/32 dev eth0`);
            lab.node.sh(`bash ${notifyPath} INSTANCE ${config.tproxy.vrrpInstance} BACKUP`);
            assert.doesNotMatch(active(), /elements/);
            const again = lab.ssh(applyCommand(bundle, settings));
            assert.equal(again.status, 0, again.stderr);
            assert.match(again.stdout, /unchanged/, "activation follows the VIP, not the bundle");
            assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0, "confirm ignores activation too");
        } finally {
            lab.node.try(`ip addr del ${vip}/32 dev eth0`);
        }
        assert.equal(lab.ssh(deleteCommand(bundle, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });
});

/** nodeState without rule handles and counter values: what a reload from a listing reproduces. */
function kernelView(lab: SshLab): NodeState {
    const state = nodeState(lab);
    return { ...state, ruleset: lab.node.sh("nft list ruleset").replace(/counter packets \d+ bytes \d+/g, "counter") };
}

describe("tproxy boot unit and activation over real SSH (the unit's command lines run as rendered, without systemd)", { skip }, () => {
    let lab: SshLab;
    before(async () => {
        lab = new SshLab();
        await lab.start();
        // Start from a node as it boots: nothing the other suite seeded survives a reboot anyway.
        simulateReboot(lab, layoutUnder(lab.root).stateDir);
        // A real node has /var/lib; the state directory is created inside it.
        lab.node.sh(`mkdir -p ${lab.root}/var/lib`);
    });
    after(() => lab?.dispose());
    const active = () => /elements = \{ ([^}]*) \}/.exec(lab.node.sh(`nft list set inet ${TABLE} tproxy_active`))?.[1] ?? "";

    test("after every load (apply, the unit's ExecStart) the VIP holder diverts; confirm fails when activation and the VIP disagree; a stopped unit diverts nothing", () => {
        const before = nodeState(lab);
        const { bundle, config, notifyPath } = realBundle(lab);
        const notify = (state: string) => lab.node.sh(`bash ${notifyPath} INSTANCE ${config.tproxy.vrrpInstance} ${state}`);
        lab.node.sh(`ip addr add ${VIP}/32 dev eth0`);
        try {
            const applied = lab.ssh(applyCommand(bundle, settings));
            assert.equal(applied.status, 0, applied.stderr);
            assert.equal(active(), "ipv4", "diverting right after the apply");
            const started = runUnit(lab, bundle, "ExecStart");
            assert.equal(started.status, 0, started.output);
            assert.equal(active(), "ipv4", "diverting still after the unit (re)loads the table, as systemctl restart or a boot would");

            lab.node.sh(`nft flush set inet ${TABLE} tproxy_active`);
            const wrongOff = lab.ssh(confirmCommand(bundle, settings));
            assert.equal(wrongOff.status, 1, wrongOff.stdout + wrongOff.stderr);
            assert.match(wrongOff.stderr, /diverting does not match this node's VIPs: activation is 'nothing' but this node should divert 'ipv4'/);
            assert.equal(runUnit(lab, bundle, "ExecStart").status, 0);
            assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0, "confirmed once activation is right");

            // The VIP left without a notify: the activation now lies the other way.
            lab.node.sh(`ip addr del ${VIP}/32 dev eth0`);
            const wrongOn = lab.ssh(confirmCommand(bundle, settings));
            assert.equal(wrongOn.status, 1);
            assert.match(wrongOn.stderr, /activation is 'ipv4' but this node should divert 'nothing'/);
            notify("BACKUP");
            assert.equal(active(), "");
            assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);

            // ExecStop: routes down and diverting off; keepalived cannot switch it on again until the unit starts.
            lab.node.sh(`ip addr add ${VIP}/32 dev eth0`);
            notify("MASTER");
            assert.equal(active(), "ipv4");
            const stopped = runUnit(lab, bundle, "ExecStop");
            assert.equal(stopped.status, 0, stopped.output);
            assert.equal(active(), "", "a stopped unit diverts nothing");
            assert.equal(lab.node.sh("ip -4 rule show pref 1000"), "");
            notify("MASTER");
            assert.equal(active(), "", "no MASTER notify switches diverting on while the policy routes are down");
            assert.equal(runUnit(lab, bundle, "ExecStart").status, 0);
            assert.equal(active(), "ipv4");
        } finally {
            lab.node.try(`ip addr del ${VIP}/32 dev eth0`);
        }
        assert.equal(lab.ssh(deleteCommand(bundle, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });

    test("boot converges whichever of keepalived and the unit starts first", () => {
        const before = nodeState(lab);
        const { bundle, config, notifyPath } = realBundle(lab);
        const notify = (state: string) => lab.node.try(`bash ${notifyPath} INSTANCE ${config.tproxy.vrrpInstance} ${state}`);
        const stateDir = bundle.layout.stateDir;
        assert.equal(lab.ssh(applyCommand(bundle, settings)).status, 0);
        assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);

        // keepalived first: its MASTER notify finds no table (tolerated), then the unit loads it.
        simulateReboot(lab, stateDir);
        lab.node.sh(`ip addr add ${VIP}/32 dev eth0`);
        const early = notify("MASTER");
        assert.equal(early.status, 0, early.stderr);
        assert.match(early.stderr, /not installed; nothing to switch/);
        assert.equal(runUnit(lab, bundle, "ExecStart").status, 0);
        assert.equal(active(), "ipv4");
        assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);

        // The unit first: nothing held yet, so nothing diverts until keepalived's MASTER.
        simulateReboot(lab, stateDir);
        assert.equal(runUnit(lab, bundle, "ExecStart").status, 0);
        assert.equal(active(), "");
        lab.node.sh(`ip addr add ${VIP}/32 dev eth0`);
        assert.equal(notify("MASTER").status, 0);
        assert.equal(active(), "ipv4");
        assert.equal(lab.ssh(confirmCommand(bundle, settings)).status, 0);

        lab.node.try(`ip addr del ${VIP}/32 dev eth0`);
        assert.equal(lab.ssh(deleteCommand(bundle, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });

    test("a reboot inside the revert window: the unit reverts the unconfirmed first apply before loading anything; SSH works; confirm fails", async () => {
        const before = nodeState(lab);
        const { bundle } = realBundle(lab);
        const stateDir = bundle.layout.stateDir;
        assert.equal(lab.ssh(applyCommand(bundle, settings)).status, 0);
        assert.match(lab.node.sh(`nft list table inet ${TABLE}`), /tproxy ip to 192\.0\.2\.50:7892/);
        simulateReboot(lab, stateDir);
        const booted = runUnit(lab, bundle, "ExecStart");
        assert.equal(booted.status, 0, booted.output);
        assert.match(booted.output, /not confirmed before the node restarted; restoring the last confirmed state/);
        assert.deepEqual(nodeState(lab), before, "the node as it was before the apply: no table, no rules, no files");
        assert.equal(lab.ssh("true").status, 0, "SSH works");
        // Past the window the killed revert would have fired: nothing comes back.
        await sleep((REVERT_SECONDS + 1) * 1000);
        assert.deepEqual(nodeState(lab), before);
        const late = lab.ssh(confirmCommand(bundle, settings));
        assert.equal(late.status, 1);
        assert.match(late.stderr, /was reverted/);
        assert.equal(lab.ssh(deleteCommand(bundle, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });

    test("a reboot inside the window of an update: the unit goes back to the last confirmed apply, not to the new one", () => {
        const before = nodeState(lab);
        const v1 = realBundle(lab).bundle;
        const v2 = realBundle(lab, { "tproxy.port": 7893 }).bundle;
        const stateDir = v1.layout.stateDir;
        assert.equal(lab.ssh(applyCommand(v1, settings)).status, 0);
        assert.equal(lab.ssh(confirmCommand(v1, settings)).status, 0);
        // What a plain reboot of the confirmed v1 gives.
        simulateReboot(lab, stateDir);
        assert.equal(runUnit(lab, v1, "ExecStart").status, 0);
        const v1Booted = kernelView(lab);
        assert.match(v1Booted.ruleset, /:7892 /);

        assert.equal(lab.ssh(applyCommand(v2, settings)).status, 0);
        assert.match(lab.node.sh(`nft list table inet ${TABLE}`), /:7893 /);
        simulateReboot(lab, stateDir);
        // The unit file on disk is v2's now: that is the one the boot runs.
        const booted = runUnit(lab, v2, "ExecStart");
        assert.equal(booted.status, 0, booted.output);
        assert.deepEqual(kernelView(lab), v1Booted);
        assert.equal(lab.ssh(confirmCommand(v2, settings)).status, 1);
        assert.equal(lab.ssh(confirmCommand(v1, settings)).status, 1, "the outcome records the revert");
        assert.equal(lab.ssh(deleteCommand(v1, settings)).status, 0);
        assert.deepEqual(nodeState(lab), before);
    });
});
