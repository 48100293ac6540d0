import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { parse } from "yaml";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import {
    ACTIVATION_SET,
    activationStatements,
    nftRulesetInput,
    outputRules,
    preroutingRules,
    renderNftRuleset,
    type NftRulesetInput,
} from "../components/tproxy/nftRuleset";
import { DEFAULT_RESERVED_V4, DEFAULT_RESERVED_V6, minimalCover, reservedDestinations } from "../components/tproxy/reservedRanges";
import { hostToolsMissing } from "../lab/hostTools";
import { NetNs } from "../lab/netns";
import { labConfig } from "../lab/tproxyLab";

function stack(file: string, tproxyOverride?: Record<string, unknown>): MigrationConfig {
    const doc = parse(readFileSync(path.join(__dirname, "..", file), "utf8")) as { config: Record<string, unknown> };
    const key = (k: string) => doc.config[`cilium-kpr:${k}`];
    const tproxy = tproxyOverride === undefined ? key("tproxy") : { ...(key("tproxy") as object), ...tproxyOverride };
    const result = validateStackConfig("cilium-kpr", {
        cluster: key("cluster"),
        cilium: key("cilium"),
        tproxy,
        nodes: key("nodes"),
        hasSshPrivateKey: true,
    });
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return result.config;
}

const prod = stack("Pulumi.prod.yaml");
// The IPv6 stack ships with tproxy off; switch it on with a VIP on its node network.
const ipv6 = stack("Pulumi.ipv6-native.yaml", { enabled: true, vip6: "2001:db8:0:1::100" });

function chainBody(text: string, chain: string): string[] {
    const match = new RegExp(`\\tchain ${chain} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(text);
    assert.ok(match, `chain ${chain} missing`);
    return match[1]!
        .split("\n")
        .map((l) => l.trim())
        .slice(1);
}

describe("renderNftRuleset (text)", () => {
    const text = renderNftRuleset(nftRulesetInput(prod));

    it("owns exactly one inet table and replaces it in one transaction, never flushing the ruleset", () => {
        const statements = text.split("\n").filter((l) => /^(table|delete|flush|add|destroy)\b/.test(l));
        assert.deepEqual(statements, ["table inet cilium_kpr_tproxy {}", "delete table inet cilium_kpr_tproxy", "table inet cilium_kpr_tproxy {"]);
        assert.doesNotMatch(text, /flush ruleset/);
    });

    it("prod (IPv4, vip mode): diverts to the VIP, empty activation set, seed 000's reserved ranges and cluster sets", () => {
        assert.match(text, /meta nfproto ipv4 meta l4proto \{ tcp, udp \} meta mark set 0x00000001 tproxy ip to 172\.25\.4\.1:7892 counter accept/);
        assert.doesNotMatch(text, /tproxy ip6/);
        assert.match(text, new RegExp(`set ${ACTIVATION_SET} \\{\\n\\t\\ttype nf_proto\\n\\t\\}`));
        assert.match(
            text,
            /set reserved_dst_v4 \{[^}]*elements = \{ 0\.0\.0\.0\/8, 10\.0\.0\.0\/8, 100\.64\.0\.0\/10, 127\.0\.0\.0\/8, 169\.254\.0\.0\/16, 172\.16\.0\.0\/12,/,
        );
        // Pod CIDRs are destinations reached directly too (socket-LB turns a ClusterIP into a Pod IP).
        assert.match(text, /set cluster_dst_v4 \{[^}]*elements = \{ 172\.27\.0\.0\/16, 172\.25\.4\.0\/24, 172\.26\.0\.0\/16 \}/);
        assert.match(text, /set pod_src_v4 \{[^}]*elements = \{ 172\.26\.0\.0\/16 \}/);
        assert.match(text, /type filter hook prerouting priority mangle \+ 1; policy accept;/);
        assert.match(text, /type route hook output priority mangle \+ 1; policy accept;/);
    });

    it("the activation check comes first (a node without the VIP stops there), every guard before diverting, fib last, in both chains", () => {
        for (const chain of ["prerouting", "output"]) {
            const rules = chainBody(text, chain);
            const at = (re: RegExp) => rules.findIndex((r) => re.test(r));
            const order = [
                /^meta nfproto != @tproxy_active return/,
                /^meta mark & 0x00000f00 != 0 return/,
                /^meta mark 0x000000ff return/,
                /^ct direction reply return/,
                /^ip saddr @pod_src_v4 return/,
                /^fib daddr type \{ local, broadcast, anycast, multicast \} return/,
                /meta mark set 0x00000001/,
            ].map(at);
            assert.equal(order[0], 0, `${chain}: the activation check is the first rule`);
            assert.ok(
                order.every((i) => i >= 0),
                `${chain}: ${JSON.stringify(order)}`,
            );
            assert.deepEqual(
                [...order].sort((a, b) => a - b),
                order,
                `${chain} order`,
            );
        }
        assert.equal(chainBody(text, "output").at(-1)?.includes("meta mark set 0x00000001"), true);
        // Fail closed: the mark is set before tproxy looks for the listener, and what found no
        // transparent socket (tproxy breaks, evaluation goes on) is refused by the next rules.
        const pre = chainBody(text, "prerouting");
        assert.match(pre.at(-3)!, /meta mark set 0x00000001 tproxy ip to/);
        assert.match(pre.at(-2)!, /^iif != lo meta mark 0x00000001 meta nfproto ipv4 meta l4proto tcp counter reject with tcp reset/);
        assert.match(pre.at(-1)!, /^iif != lo meta mark 0x00000001 meta nfproto ipv4 meta l4proto udp counter reject with icmp type port-unreachable/);
        // Input: a marked packet reaches only the transparent socket tproxy chose; anything else is refused.
        assert.deepEqual(chainBody(text, "input"), [
            "meta mark != 0x00000001 return",
            'socket transparent 1 accept comment "the transparent listener tproxy chose"',
            'meta nfproto ipv4 meta l4proto tcp counter reject with tcp reset comment "diverted, no transparent listener: refuse (fail closed)"',
            'meta nfproto ipv4 meta l4proto udp counter reject with icmp type port-unreachable comment "diverted, no transparent listener: refuse (fail closed)"',
        ]);
    });

    it("IPv6 stack: tproxy ip6 to [VIP6]:PORT, IPv6 sets filled, no IPv4 diversion", () => {
        const v6 = renderNftRuleset(nftRulesetInput(ipv6));
        assert.match(v6, /meta nfproto ipv6 meta l4proto \{ tcp, udp \} meta mark set 0x00000001 tproxy ip6 to \[2001:db8:0:1::100\]:7892 counter accept/);
        assert.doesNotMatch(v6, /tproxy ip to/);
        assert.match(v6, /set pod_src_v6 \{[^}]*elements = \{ 2001:db8::\/96 \}/);
        assert.match(v6, /set cluster_dst_v6 \{[^}]*elements = \{ 2001:db8:10:96::\/112, 2001:db8:0:1::\/64, 2001:db8:0:2::\/64, 2001:db8::\/96 \}/);
        assert.match(
            v6,
            /set reserved_dst_v6 \{[^}]*elements = \{ ::\/128, ::1\/128, ::ffff:0:0\/96, 64:ff9b::\/96, 100::\/64, 2001:db8::\/32, fc00::\/7, fe80::\/10, ff00::\/8 \}/,
        );
    });

    it("all mode: `tproxy ip to :PORT` and the activation set pre-filled with the families that have a VIP", () => {
        const all = renderNftRuleset(nftRulesetInput(labConfig({ bindMode: "all" })));
        assert.match(all, /tproxy ip to :7892 counter accept/);
        assert.match(all, /tproxy ip6 to :7892 counter accept/);
        assert.match(all, new RegExp(`set ${ACTIVATION_SET} \\{\\n\\t\\ttype nf_proto\\n\\t\\telements = \\{ ipv4, ipv6 \\}`));
        const only6 = renderNftRuleset(nftRulesetInput(stack("Pulumi.ipv6-native.yaml", { enabled: true, vip6: "2001:db8:0:1::100", bindMode: "all" })));
        assert.match(only6, /elements = \{ ipv6 \}/);
    });

    it("activationStatements adds exactly the given families and nothing for none", () => {
        assert.deepEqual(activationStatements("t1", ["ipv4", "ipv6"]), ["add element inet t1 tproxy_active { ipv4, ipv6 }"]);
        assert.deepEqual(activationStatements("t1", []), []);
    });

    it("refuses a config without any VIP instead of rendering a ruleset that diverts nothing", () => {
        assert.throws(() => nftRulesetInput(stack("Pulumi.ipv6-native.yaml")), /neither vip4 nor vip6/);
    });

    it("reserved: tproxy.reserved replaces a family's defaults, extraReserved adds, covered ranges collapse", () => {
        assert.deepEqual(reservedDestinations({ reserved: {}, extraReserved: [] }), { v4: minimalCover(DEFAULT_RESERVED_V4), v6: [...DEFAULT_RESERVED_V6] });
        assert.ok(reservedDestinations({ reserved: {}, extraReserved: [] }).v4.includes("240.0.0.0/4"));
        assert.deepEqual(reservedDestinations({ reserved: { v4: ["127.0.0.0/8"] }, extraReserved: ["127.1.0.0/16", "198.51.100.64/26", "2001:db8:5::/48"] }), {
            v4: ["127.0.0.0/8", "198.51.100.64/26"],
            v6: [...DEFAULT_RESERVED_V6.filter((c) => c !== "2001:db8::/32"), "2001:db8::/32"].sort(byOrder(DEFAULT_RESERVED_V6)),
        });
    });

    it("property: the hot-path rule count does not grow with the number of reserved ranges", () => {
        const base = nftRulesetInput(prod);
        const counts = (input: NftRulesetInput) => [preroutingRules(input).length, outputRules(input).length];
        const expected = counts(base);
        const v4 = fc
            .tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
            .map(([a, b, c]) => `${a}.${b}.${c}.0/24`);
        const v6 = fc.integer({ min: 0, max: 0xffff }).map((n) => `2001:db8:${n.toString(16)}::/48`);
        fc.assert(
            fc.property(fc.array(v4, { maxLength: 600 }), fc.array(v6, { maxLength: 200 }), (r4, r6) => {
                const input = { ...base, reservedDestinations: { v4: minimalCover(r4), v6: minimalCover(r6) } };
                const text = renderNftRuleset(input);
                assert.deepEqual(counts(input), expected);
                assert.equal(chainBody(text, "prerouting").length, expected[0]);
                for (const cidr of minimalCover(r4)) assert.ok(text.includes(` ${cidr}`), cidr);
            }),
            { numRuns: 50 },
        );
    });
});

function byOrder(order: readonly string[]) {
    return (a: string, b: string) => order.indexOf(a) - order.indexOf(b);
}

describe("renderNftRuleset in a kernel (one namespace)", { skip: hostToolsMissing(["nft", "ip"]) }, () => {
    const ns: NetNs[] = [];
    after(() => ns.forEach((n) => n.dispose()));
    const fresh = () => {
        const n = new NetNs("nft");
        ns.push(n);
        return n;
    };
    const CILIUM_LIKE = [
        "table ip mangle {",
        "\tchain CILIUM_PRE_mangle {",
        "\t\ttype filter hook prerouting priority mangle; policy accept;",
        "\t\tmeta mark & 0x00000f00 == 0x00000200 counter",
        "\t}",
        "}",
        "table inet other_tool {",
        "\tset keep { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        "\t\tip saddr @keep counter",
        "\t}",
        "}",
        "",
    ].join("\n");

    for (const [name, config] of [
        ["prod", prod],
        ["ipv6", ipv6],
    ] as const) {
        it(`${name}: nft -c accepts it and a real load commits`, () => {
            const n = fresh();
            const text = renderNftRuleset(nftRulesetInput(config));
            const check = n.try("nft -c -f -", text);
            assert.equal(check.status, 0, check.stderr);
            const load = n.try("nft -f -", `${text}${activationStatements(config.tproxy.tableName, ["ipv4", "ipv6"]).join("\n")}\n`);
            assert.equal(load.status, 0, load.stderr);
            assert.match(n.sh(`nft list set inet ${config.tproxy.tableName} ${ACTIVATION_SET}`), /elements = \{ ipv4, ipv6 \}/);
        });
    }

    it("the listing round-trips (the revert and the boot revert reload the table from `nft list table`)", () => {
        for (const config of [prod, ipv6, labConfig({ bindMode: "vip" }), labConfig({ bindMode: "all" })]) {
            const n = fresh();
            const table = config.tproxy.tableName;
            n.sh("nft -f -", renderNftRuleset(nftRulesetInput(config)));
            const listed = n.sh(`nft list table inet ${table}`);
            n.sh(`nft delete table inet ${table}`);
            n.sh("nft -f -", listed);
            assert.equal(n.sh(`nft list table inet ${table}`), listed);
        }
    });

    it("re-applying changes nothing, a failing file leaves the previous table, deleting ours restores the exact previous ruleset", () => {
        const n = fresh();
        n.sh("nft -f -", CILIUM_LIKE);
        const before = n.sh("nft list ruleset");
        const text = renderNftRuleset(nftRulesetInput(prod));
        n.sh("nft -f -", text);
        const applied = n.sh("nft list ruleset");
        assert.ok(applied.startsWith(before) && applied.length > before.length, "other tables kept, ours added");
        n.sh("nft -f -", text);
        assert.equal(n.sh("nft list ruleset"), applied, "re-apply is a no-op");

        // Passes `nft -c` but fails at commit (tproxy in an output hook): the old table must stay.
        const changed = renderNftRuleset({ ...nftRulesetInput(prod), port: 7893 });
        const broken = changed.replace(/(\tchain output \{\n[^\n]*\n)/, "$1\t\tmeta l4proto tcp tproxy ip to 127.0.0.1:1\n");
        assert.notEqual(broken, changed);
        assert.notEqual(n.try("nft -f -", broken).status, 0);
        assert.equal(n.sh("nft list ruleset"), applied, "failed load left the previous table untouched");

        n.sh("nft delete table inet cilium_kpr_tproxy");
        assert.equal(n.sh("nft list ruleset"), before, "only our table went away");
    });
});
