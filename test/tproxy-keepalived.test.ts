import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
    KEEPALIVED_NOTIFY_MODE,
    KEEPALIVED_NOTIFY_SOURCE,
    keepalivedSnippet,
    notifyLines,
    renderKeepalivedNotify,
} from "../components/tproxy/keepalivedNotify";
import { ACTIVATION_SET, nftRulesetInput, renderNftRuleset } from "../components/tproxy/nftRuleset";
import { DEFAULT_NODE_LAYOUT } from "../components/tproxy/nodeLayout";
import { hostToolsMissing } from "../lab/hostTools";
import type { NetNs } from "../lab/netns";
import { LAB, TproxyLab, labConfig, probe, stop, waitFor } from "../lab/tproxyLab";

const config = labConfig({ bindMode: "vip" });

describe("keepalived notify script (text)", () => {
    it("shellcheck -x is clean for the repo file and the rendered script", { skip: hostToolsMissing(["shellcheck"]) }, () => {
        const dir = mkdtempSync("/tmp/kpr-sc-");
        try {
            const rendered = path.join(dir, "notify.sh");
            writeFileSync(rendered, renderKeepalivedNotify(config));
            for (const file of [KEEPALIVED_NOTIFY_SOURCE, rendered]) {
                const r = spawnSync("shellcheck", ["-x", file], { encoding: "utf8" });
                assert.equal(r.status, 0, `${file}: ${r.stdout}${r.stderr}`);
            }
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("bakes validated literals into the parameter block and nothing else changes", () => {
        const text = renderKeepalivedNotify(labConfig({ proxyUnit: "clash.service" }));
        assert.match(text, /^TABLE='kpr_tproxy'$/m);
        assert.match(text, /^VIP4='192\.0\.2\.1'$/m);
        assert.match(text, /^VIP6='2001:db8:1::1'$/m);
        assert.match(text, /^PROXY_UNIT='clash\.service'$/m);
        assert.match(text, /^VRRP_INSTANCE='VI_API'$/m);
        assert.match(text, /^ACTIVATION_SET='tproxy_active'$/m);
        // A family diverts only while exactly our policy rule and local route are present.
        assert.match(text, /^MARK='0x1'$/m);
        assert.match(text, /^ROUTE_TABLE='100'$/m);
        assert.match(text, /^RULE_PRIORITY='1000'$/m);
        assert.doesNotMatch(text, /KPR_TPROXY_/);
        assert.ok(text.startsWith("#!/bin/bash\n"));
    });

    it("snippet: script security, the four notify lines with explicit STATE, track_script only with a proxy unit", () => {
        const node = config.nodes[0]!;
        const plain = keepalivedSnippet(config, node);
        assert.match(plain, /script_user root/);
        assert.match(plain, /enable_script_security/);
        for (const state of ["MASTER", "BACKUP", "FAULT", "STOP"]) {
            assert.ok(plain.includes(`notify_${state.toLowerCase()} "${DEFAULT_NODE_LAYOUT.keepalivedNotifyPath} INSTANCE VI_API ${state}"`), state);
        }
        assert.doesNotMatch(plain, /track_script/);
        const tracked = keepalivedSnippet(labConfig({ proxyUnit: "clash.service" }), node);
        assert.match(tracked, /is-failed --quiet clash\.service/);
        assert.match(tracked, /track_script \{\n\s+cilium_kpr_tproxy_proxy\n\s+\}/);
        assert.equal(KEEPALIVED_NOTIFY_MODE & 0o022, 0, "not group/world writable");
        assert.ok(DEFAULT_NODE_LAYOUT.keepalivedNotifyPath.startsWith("/etc/keepalived/"));
    });
});

describe("keepalived notify + VRRP failover in namespaces", { skip: hostToolsMissing(["nft", "ip", "python3", "keepalived", "flock"]) }, () => {
    let lab: TproxyLab;
    let dir: string;
    let script: string;
    const keepalived = new Map<NetNs, ChildProcess>();
    const table = nftRulesetInput(config).tableName;
    const active = (ns: NetNs) => /elements = \{ ([^}]*) \}/.exec(ns.sh(`nft list set inet ${table} ${ACTIVATION_SET}`))?.[1]?.trim() ?? "";
    const notify = (ns: NetNs, state: string) => ns.sh(`${script} INSTANCE VI_API ${state}`);

    before(async () => {
        lab = new TproxyLab();
        // keepalived's script security: every path component root-owned, not group/world-writable.
        dir = mkdtempSync("/run/kpr-ka-");
        chmodSync(dir, 0o755);
        script = path.join(dir, "notify.sh");
        writeFileSync(script, renderKeepalivedNotify(config, { lockPath: path.join(dir, "lock"), vipWaitSeconds: 2 }));
        chmodSync(script, KEEPALIVED_NOTIFY_MODE);
        const ruleset = renderNftRuleset(nftRulesetInput(config));
        for (const node of [lab.nodeA, lab.nodeB]) {
            lab.policyRouting(node);
            assert.equal(lab.nft(node, ruleset).status, 0);
        }
        await lab.serve(lab.nodeA, "transparent", "node-a", LAB.port, [LAB.vip4, LAB.vip6]);
        await lab.serve(lab.nodeB, "transparent", "node-b", LAB.port, [LAB.vip4, LAB.vip6]);
        await lab.serveSink();
    });
    after(() => {
        for (const child of keepalived.values()) child.kill("SIGKILL");
        lab?.dispose();
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("the script decides from the addresses present: late BACKUP keeps a held VIP active, STOP always switches off", () => {
        const a = lab.nodeA;
        assert.equal(statSync(script).mode & 0o777, KEEPALIVED_NOTIFY_MODE);
        notify(a, "MASTER");
        assert.equal(active(a), "", "MASTER without the VIP (waited, bounded) activates nothing");
        lab.addVips(a);
        notify(a, "MASTER");
        assert.equal(active(a), "ipv4, ipv6");
        notify(a, "BACKUP");
        assert.equal(active(a), "ipv4, ipv6", "an out-of-order BACKUP while the VIP is here changes nothing");
        notify(a, "STOP");
        assert.equal(active(a), "");
        notify(a, "MASTER");
        a.sh(`ip addr del ${LAB.vip6}/64 dev lan0`);
        notify(a, "BACKUP");
        assert.equal(active(a), "ipv4", "only the family whose VIP is still present");
        a.sh(`ip addr del ${LAB.vip4}/24 dev lan0`);
        notify(a, "FAULT");
        assert.equal(active(a), "");
        assert.equal(a.sh(`${script} INSTANCE OTHER_INSTANCE MASTER; echo rc=$?`).trim(), "rc=0");
    });

    it("VRRP between node A and B: A's activation moves to B when A's keepalived stops, and B then proxies", async () => {
        const start = (ns: NetNs, name: string, priority: number) => {
            const conf = path.join(dir, `${name}.conf`);
            writeFileSync(
                conf,
                [
                    "global_defs {",
                    `    router_id ${name}`,
                    "    script_user root",
                    "    enable_script_security",
                    "}",
                    "vrrp_instance VI_API {",
                    "    state BACKUP",
                    "    interface lan0",
                    "    virtual_router_id 51",
                    `    priority ${priority}`,
                    "    advert_int 1",
                    `    virtual_ipaddress {\n        ${LAB.vip4}/24 dev lan0\n    }`,
                    `    virtual_ipaddress_excluded {\n        ${LAB.vip6}/64 dev lan0\n    }`,
                    ...notifyLines(config, script).map((l) => `    ${l}`),
                    "}",
                    "",
                ].join("\n"),
            );
            const child = spawn(
                "ip",
                [
                    "netns",
                    "exec",
                    ns.name,
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "-P",
                    "-f",
                    conf,
                    "-p",
                    path.join(dir, `${name}.pid`),
                    "-r",
                    path.join(dir, `${name}.vrrp.pid`),
                ],
                { stdio: "ignore" },
            );
            keepalived.set(ns, child);
            lab.track(child);
            return child;
        };
        const kaA = start(lab.nodeA, "node-a", 150);
        start(lab.nodeB, "node-b", 100);

        assert.ok(await waitFor(() => active(lab.nodeA) === "ipv4, ipv6", 20_000), `A never activated: "${active(lab.nodeA)}"`);
        assert.equal(active(lab.nodeB), "", "B (BACKUP) stays inactive");
        for (const proto of ["tcp", "udp"] as const) {
            assert.match(probe(lab.client, proto, LAB.dest4, LAB.appPort), /^transparent node-a /);
            assert.match(probe(lab.client, proto, LAB.dest6, LAB.appPort), /^transparent node-a /);
        }

        await stop(kaA);
        assert.ok(await waitFor(() => active(lab.nodeB) === "ipv4, ipv6", 20_000), `B never activated: "${active(lab.nodeB)}"`);
        assert.ok(await waitFor(() => active(lab.nodeA) === "", 10_000), `A still active: "${active(lab.nodeA)}"`);
        for (const proto of ["tcp", "udp"] as const) {
            // The client learns the VIP's new MAC from keepalived's gratuitous ARP / unsolicited NA.
            assert.ok(
                await waitFor(() => /^transparent node-b /.test(probe(lab.client, proto, LAB.dest4, LAB.appPort, { timeoutSeconds: 1 })), 10_000),
                `${proto} v4 not proxied by B`,
            );
            assert.ok(
                await waitFor(() => /^transparent node-b /.test(probe(lab.client, proto, LAB.dest6, LAB.appPort, { timeoutSeconds: 1 })), 10_000),
                `${proto} v6 not proxied by B`,
            );
        }
    });
});
