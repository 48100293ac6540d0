import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { hostToolsMissing } from "./support/hostTools";
import { LAB, TproxyLab, labConfig, probe, stop } from "./support/tproxyLab";
import { activationStatements, nftRulesetInput, renderNftRuleset } from "../components/tproxy/nftRuleset";

/*
 * The ruleset in a real kernel: client -> node -> sink traffic in namespaces this file creates,
 * to TEST-NET addresses it assigned. Answers name who answered ("transparent node-a" = our
 * proxy listener on node A, "plain sink" = the real destination) and which destination and
 * source they saw.
 */
const families = [
    {
        name: "IPv4",
        vip: LAB.vip4,
        dest: LAB.dest4,
        client: LAB.client4,
        up: LAB.upA4,
        upB: LAB.upB4,
        destViaB: LAB.destViaB4,
        pod: LAB.pod4,
        service: LAB.service4,
        extra: LAB.extraReserved4,
        nodeNet: LAB.sinkUp4,
        nodeAddr: LAB.nodeA4,
        nodeLocal: LAB.nodeALocal4,
        fmt: (a: string, p: number) => `${a}:${p}`,
    },
    {
        name: "IPv6",
        vip: LAB.vip6,
        dest: LAB.dest6,
        client: LAB.client6,
        up: LAB.upA6,
        upB: LAB.upB6,
        destViaB: LAB.destViaB6,
        pod: LAB.pod6,
        service: LAB.service6,
        extra: LAB.extraReserved6,
        nodeNet: LAB.sinkUp6,
        nodeAddr: LAB.nodeA6,
        nodeLocal: LAB.nodeALocal6,
        fmt: (a: string, p: number) => `[${a}]:${p}`,
    },
] as const;
const protocols = ["tcp", "udp"] as const;
const P = LAB.appPort;

describe("tproxy ruleset in network namespaces", { skip: hostToolsMissing(["nft", "ip", "python3"]) }, () => {
    let lab: TproxyLab;
    let listenerA: ChildProcess;
    const config = labConfig({ bindMode: "vip" });
    const input = nftRulesetInput(config);
    const ruleset = renderNftRuleset(input);
    const activateBoth = activationStatements(input.tableName, ["ipv4", "ipv6"]).join("\n");

    before(async () => {
        lab = new TproxyLab();
        for (const node of [lab.nodeA, lab.nodeB]) {
            lab.policyRouting(node);
        }
        lab.addVips(lab.nodeA);
        // Node A holds the VIPs: the apply step loads table + activation in one transaction.
        assert.equal(lab.nft(lab.nodeA, `${ruleset}${activateBoth}\n`).status, 0);
        assert.equal(lab.nft(lab.nodeB, ruleset).status, 0);
        listenerA = await lab.serve(lab.nodeA, "transparent", "node-a", LAB.port, [LAB.vip4, LAB.vip6]);
        await lab.serve(lab.nodeB, "transparent", "node-b", LAB.port, [LAB.vip4, LAB.vip6]);
        await lab.serveSink();
        await lab.serve(lab.nodeA, "plain", "node-a-ssh", 22, [LAB.nodeA4, LAB.nodeA6]);
        await lab.serve(lab.nodeA, "plain", "node-a-local", P, [LAB.nodeALocal4, LAB.nodeALocal6]);
        await lab.serve(lab.client, "plain", "client", P, [LAB.client4, LAB.client6]);
    });
    after(() => lab?.dispose());

    for (const f of families) {
        for (const proto of protocols) {
            it(`${f.name} ${proto}: client -> internet address is delivered to node A's listener with the original destination`, () => {
                const answer = probe(lab.client, proto, f.dest, P);
                assert.match(answer, new RegExp(`^transparent node-a dst=${esc(f.fmt(f.dest, P))} src=\\[?${esc(f.client)}\\]?:`), answer);
            });
            it(`${f.name} ${proto}: Pod-sourced traffic goes to the sink directly`, () => {
                const answer = probe(lab.client, proto, f.dest, P, { src: f.pod });
                assert.match(answer, new RegExp(`^plain sink dst=${esc(f.fmt(f.dest, P))} src=\\[?${esc(f.up)}\\]?:`), answer);
            });
            it(`${f.name} ${proto}: Service, node-network and extra reserved destinations are not diverted`, () => {
                for (const dst of [f.service, f.nodeNet, f.extra]) {
                    const answer = probe(lab.client, proto, dst, P);
                    assert.match(answer, new RegExp(`^plain sink dst=${esc(f.fmt(dst, P))}`), `${dst}: ${answer}`);
                }
            });
            it(`${f.name} ${proto}: an address of the node outside every set is kept by the fib-local guard`, () => {
                const answer = probe(lab.client, proto, f.nodeLocal, P);
                assert.match(answer, new RegExp(`^plain node-a-local dst=${esc(f.fmt(f.nodeLocal, P))}`), answer);
            });
            it(`${f.name} ${proto}: node A's own traffic is diverted through lo, but not with the bypass or a Cilium mark`, () => {
                const own = probe(lab.nodeA, proto, f.dest, P);
                assert.match(own, new RegExp(`^transparent node-a dst=${esc(f.fmt(f.dest, P))} src=\\[?${esc(f.up)}\\]?:`), own);
                for (const mark of [LAB.bypassMark, 0x200]) {
                    const marked = probe(lab.nodeA, proto, f.dest, P, { mark });
                    assert.match(marked, new RegExp(`^plain sink dst=${esc(f.fmt(f.dest, P))} src=\\[?${esc(f.up)}\\]?:`), `mark ${mark}: ${marked}`);
                }
            });
            it(`${f.name} ${proto}: connections opened from outside are answered, not diverted (ct reply guard)`, () => {
                const answer = probe(lab.sink, proto, f.client, P, { src: f.dest });
                assert.match(answer, new RegExp(`^plain client dst=${esc(f.fmt(f.client, P))} src=\\[?${esc(f.dest)}\\]?:`), answer);
            });
            it(`${f.name} ${proto}: node B in vip mode without the VIP forwards straight to the sink`, () => {
                const answer = probe(lab.client, proto, f.destViaB, P);
                assert.match(answer, new RegExp(`^plain sink dst=${esc(f.fmt(f.destViaB, P))} src=\\[?${esc(f.upB)}\\]?:`), answer);
            });
        }
        it(`${f.name}: SSH to the node's address reaches the node's sshd, not the proxy`, () => {
            const answer = probe(lab.client, "tcp", f.nodeAddr, 22);
            assert.match(answer, /^plain node-a-ssh /, answer);
        });
    }

    it("node B diverts only while its activation set says so (switched on, its own listener answers; off, the sink does)", () => {
        const on = lab.nft(lab.nodeB, `${activationStatements(input.tableName, ["ipv4", "ipv6"]).join("\n")}\n`);
        assert.equal(on.status, 0, on.stderr);
        try {
            // B's listener is bound to the VIP it does not hold: tproxy to the VIP finds it and
            // it answers, which proves B diverts only because of the activation set.
            assert.match(probe(lab.client, "tcp", LAB.destViaB4, P), /^transparent node-b /);
            assert.match(probe(lab.client, "udp", LAB.destViaB6, P), /^transparent node-b /);
        } finally {
            assert.equal(lab.nft(lab.nodeB, `flush set inet ${input.tableName} tproxy_active\n`).status, 0);
        }
        assert.match(probe(lab.client, "tcp", LAB.destViaB4, P), /^plain sink /);
    });

    it("with node A's listener down, diverted traffic fails closed: refused, never sent on to the sink", async () => {
        await stop(listenerA);
        for (const f of families) {
            for (const proto of protocols) {
                const answer = probe(lab.client, proto, f.dest, P, { timeoutSeconds: 1 });
                assert.match(answer, /^ERROR /, `${f.name} ${proto}: ${answer}`);
            }
        }
        listenerA = await lab.serve(lab.nodeA, "transparent", "node-a", LAB.port, [LAB.vip4, LAB.vip6]);
        assert.match(probe(lab.client, "tcp", LAB.dest4, P), /^transparent node-a /);
    });

    it("all bind mode: the set is pre-filled and `tproxy to :PORT` reaches a wildcard listener", async () => {
        await stop(listenerA);
        const all = renderNftRuleset(nftRulesetInput(labConfig({ bindMode: "all" })));
        const loaded = lab.nft(lab.nodeA, all);
        assert.equal(loaded.status, 0, loaded.stderr);
        assert.match(lab.nodeA.sh(`nft list set inet ${input.tableName} tproxy_active`), /elements = \{ ipv4, ipv6 \}/);
        await lab.serve(lab.nodeA, "transparent", "node-a-any", LAB.port, ["0.0.0.0", "::"]);
        for (const f of families) {
            for (const proto of protocols) {
                const answer = probe(lab.client, proto, f.dest, P);
                assert.match(answer, new RegExp(`^transparent node-a-any dst=${esc(f.fmt(f.dest, P))} src=\\[?${esc(f.client)}\\]?:`), answer);
            }
        }
    });
});

function esc(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
