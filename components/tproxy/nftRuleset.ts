import type { MigrationConfig } from "../config/validate";
import { minimalCover, reservedDestinations, splitByFamily, type FamilyCidrs } from "./reservedRanges";
import { CILIUM_MARK_MASK } from "../config/ciliumReserved";

/** nftables' names for the two IP families (the `nf_proto` datatype). */
export type NfFamily = "ipv4" | "ipv6";

/**
 * The set that switches diverting on per family. In `all` mode it is filled in the file;
 * in `vip` mode only the node that really holds the VIP fills it (keepalived notify script,
 * or the apply step appending activationStatements() to the same `nft -f` transaction).
 */
export const ACTIVATION_SET = "tproxy_active";

export const RESERVED_DST_SET = { ipv4: "reserved_dst_v4", ipv6: "reserved_dst_v6" } as const;
export const CLUSTER_DST_SET = { ipv4: "cluster_dst_v4", ipv6: "cluster_dst_v6" } as const;
export const POD_SRC_SET = { ipv4: "pod_src_v4", ipv6: "pod_src_v6" } as const;

export interface NftRulesetInput {
    readonly tableName: string;
    readonly port: number;
    /** Set on diverted packets; policy routing (fwmark -> local default dev lo) delivers them locally. */
    readonly mark: number;
    /** SO_MARK of the proxy's own outbound sockets: never diverted again. */
    readonly bypassMark: number;
    readonly bindMode: "vip" | "all";
    readonly vip4: string | undefined;
    readonly vip6: string | undefined;
    /** Never-proxied destinations (defaults or tproxy.reserved, plus tproxy.extraReserved). */
    readonly reservedDestinations: FamilyCidrs;
    /** Service, node and Pod networks: reached directly, never through the proxy. */
    readonly clusterDestinations: FamilyCidrs;
    /** Pod networks: traffic FROM a Pod is never proxied, whatever its destination. */
    readonly podSources: FamilyCidrs;
}

export function nftRulesetInput(config: MigrationConfig): NftRulesetInput {
    const { tproxy, cluster } = config;
    if (tproxy.vip4 === undefined && tproxy.vip6 === undefined) {
        throw new Error("tproxy has neither vip4 nor vip6: there is nothing to divert to (is tproxy.enabled false?)");
    }
    // Pod CIDRs are destinations too: socket-LB turns a ClusterIP into a Pod IP before the packet
    // leaves the sender, so "to a Pod" is what Service traffic looks like on the wire.
    const cluster4And6 = splitByFamily([...cluster.serviceCidrs, ...cluster.nodeCidrs, ...cluster.podCidrs]);
    const pods = splitByFamily(cluster.podCidrs);
    return {
        tableName: tproxy.tableName,
        port: tproxy.port,
        mark: tproxy.mark,
        bypassMark: tproxy.bypassMark,
        bindMode: tproxy.bindMode,
        vip4: tproxy.vip4,
        vip6: tproxy.vip6,
        reservedDestinations: reservedDestinations(tproxy),
        clusterDestinations: { v4: minimalCover(cluster4And6.v4), v6: minimalCover(cluster4And6.v6) },
        podSources: { v4: minimalCover(pods.v4), v6: minimalCover(pods.v6) },
    };
}

/** The families that are diverted at all: those with a VIP. */
export function divertedFamilies(input: Pick<NftRulesetInput, "vip4" | "vip6">): NfFamily[] {
    const families: NfFamily[] = [];
    if (input.vip4 !== undefined) families.push("ipv4");
    if (input.vip6 !== undefined) families.push("ipv6");
    return families;
}

/**
 * nft statements that switch diverting on for `families`; append them to the ruleset file so
 * the table and its activation load in one transaction. No families gives no statements.
 */
export function activationStatements(tableName: string, families: readonly NfFamily[]): string[] {
    if (families.length === 0) return [];
    return [`add element inet ${tableName} ${ACTIVATION_SET} { ${families.join(", ")} }`];
}

export function hex(mark: number): string {
    return `0x${mark.toString(16).padStart(8, "0")}`;
}

/**
 * Guards shared by both base chains: traffic any of them matches leaves our table undiverted.
 *
 * Every guard's verdict is `return`, which in a base chain ends our table's evaluation with the
 * chain's policy, accept ("In a base chain it is equivalent to accept", nftables wiki, Quick
 * reference-nftables in 10 minutes, Verdict statements), and no guard has a side effect (no
 * counter, no mark): a packet leaves at the first guard that matches, so the ORDER changes what a
 * packet costs, never what happens to it. It is chosen so that traffic that is not diverted leaves
 * after as few evaluations as possible (bench/tproxy-ruleset-attribution.ts --small-packets):
 * - "not active here" first: on a node without the VIP (every node but one, in vip mode) each
 *   packet costs one lookup in a one-byte set instead of the whole list;
 * - then the cheap register compares (protocol, marks, conntrack direction);
 * - then the destination and source sets, IPv4 together before IPv6 (an ip6 rule on an IPv4
 *   packet fails at its protocol check, but still costs a rule); reserved ranges before cluster
 *   networks: the default reserved ranges include the private ranges (reservedRanges.ts), which
 *   hold the Service, node and Pod networks of most IPv4 clusters, so there one lookup returns
 *   both kinds;
 * - the fib lookup, a routing table lookup per packet and the dearest guard, last: the node's own
 *   addresses are in the node networks in practice, so it decides little beyond the VIP itself,
 *   broadcast and multicast.
 * A diverted packet evaluates every guard in any order.
 */
export function guardRules(input: NftRulesetInput): string[] {
    return [
        `meta nfproto != @${ACTIVATION_SET} return comment "not active here (vip mode: this node does not hold the VIP)"`,
        "meta l4proto != { tcp, udp } return",
        `meta mark & ${hex(CILIUM_MARK_MASK)} != 0 return comment "Cilium's marks (mask ${hex(CILIUM_MARK_MASK)})"`,
        `meta mark ${hex(input.bypassMark)} return comment "the proxy's own traffic (SO_MARK bypass mark)"`,
        "ct direction reply return",
        `ip daddr @${RESERVED_DST_SET.ipv4} return`,
        `ip daddr @${CLUSTER_DST_SET.ipv4} return comment "Service, node and Pod networks"`,
        `ip saddr @${POD_SRC_SET.ipv4} return comment "Pod-sourced traffic"`,
        `ip6 daddr @${RESERVED_DST_SET.ipv6} return`,
        `ip6 daddr @${CLUSTER_DST_SET.ipv6} return comment "Service, node and Pod networks"`,
        `ip6 saddr @${POD_SRC_SET.ipv6} return comment "Pod-sourced traffic"`,
        `fib daddr type { local, broadcast, anycast, multicast } return comment "to this node (SSH, kubelet, API, VIP), broadcast, multicast (VRRP)"`,
    ];
}

/**
 * Prerouting: divert to the listener, and FAIL CLOSED by refusing at once.
 *
 * `meta mark set` comes before `tproxy`, and tproxy is terminal only when it finds a transparent
 * socket: with none (proxy down) nft_tproxy sets NFT_BREAK, the rest of that rule is skipped and
 * evaluation goes on with the next rule (net/netfilter/nft_tproxy.c, nft_tproxy_eval_v4/v6).
 * Those packets carry the mark, and policy routing would deliver them to the node's local stack,
 * where a wildcard service of the node (0.0.0.0:80, [::]:80) would take them and the kernel's own
 * refusals cannot leave from the foreign address. So the rules right after the divert reject
 * them here: TCP reset, ICMP/ICMPv6 port unreachable, sent from prerouting where the kernel routes
 * the refusal back to the client (reject at prerouting: kernel commit f53b9b0bdc59, Linux 5.9).
 * Packets that arrived on lo are the node's own traffic looped by the output chain; they already
 * carry a route, and rejecting them at prerouting leaked that route's refcount until the fix
 * "netfilter: nf_reject: don't leak dst refcount for loopback packets" (August 2025), so they are
 * refused by the input chain instead (inputRules). A node without the VIP is handled by the
 * activation set, not by failing open; the keepalived track_script (keepalivedSnippet) moves the
 * VIP away from a node whose proxy failed.
 */
export function preroutingRules(input: NftRulesetInput): string[] {
    const mark = hex(input.mark);
    const families = divertedFamilies(input);
    const divert = families.map((family) => {
        const target = tproxyTarget(input, family);
        return `meta nfproto ${family} meta l4proto { tcp, udp } meta mark set ${mark} tproxy ${target} counter accept`;
    });
    return [...guardRules(input), ...divert, ...refusals(`iif != lo meta mark ${mark}`, families)];
}

/**
 * A diverted packet that found no transparent socket: a TCP reset, or ICMP/ICMPv6 port unreachable.
 * The ICMP type is spelled per family: nft lists a one-family `reject with icmpx type
 * port-unreachable` as a bare `reject`, which reloads as `icmp` (a listing that does not
 * round-trip would defeat the revert, which reloads the table from its listing).
 */
function refusals(match: string, families: readonly NfFamily[]): string[] {
    const comment = 'comment "diverted, no transparent listener: refuse (fail closed)"';
    const nfproto = families.length === 1 ? `meta nfproto ${families[0]!}` : `meta nfproto { ${families.join(", ")} }`;
    const prefix = match === "" ? "" : `${match} `;
    return [
        `${prefix}${nfproto} meta l4proto tcp counter reject with tcp reset ${comment}`,
        ...families.map((family) =>
            family === "ipv4"
                ? `${prefix}meta nfproto ipv4 meta l4proto udp counter reject with icmp type port-unreachable ${comment}`
                : `${prefix}meta nfproto ipv6 meta l4proto udp counter reject with icmpv6 type port-unreachable ${comment}`,
        ),
    ];
}

/**
 * Input: a diverted (marked) packet reaches a local socket only if it is the transparent socket
 * tproxy assigned. The `socket` expression reads the socket tproxy put on the packet, else looks
 * one up (net/netfilter/nft_socket.c, nft_socket_eval); anything else marked, such as the node's
 * own looped traffic while the proxy is down, or a flow a wildcard service of the node would
 * take, is refused before delivery. One refusal cannot leave: the node's own IPv4 UDP, delivered
 * through the local route, makes __icmp_send (net/ipv4/icmp.c) source the error from the foreign
 * destination, which the output route lookup refuses; that datagram is dropped, never delivered.
 */
export function inputRules(input: NftRulesetInput): string[] {
    const mark = hex(input.mark);
    return [
        `meta mark != ${mark} return`,
        'socket transparent 1 accept comment "the transparent listener tproxy chose"',
        ...refusals("", divertedFamilies(input)),
    ];
}

/** Output: mark the node's own traffic so policy routing loops it through lo into prerouting. */
export function outputRules(input: NftRulesetInput): string[] {
    const mark = hex(input.mark);
    const divert = divertedFamilies(input).map((family) => `meta nfproto ${family} meta l4proto { tcp, udp } meta mark set ${mark} counter`);
    return [...guardRules(input), ...divert];
}

function tproxyTarget(input: NftRulesetInput, family: NfFamily): string {
    const keyword = family === "ipv4" ? "ip" : "ip6";
    if (input.bindMode === "all") return `${keyword} to :${input.port}`;
    const vip = family === "ipv4" ? input.vip4 : input.vip6;
    return family === "ipv4" ? `ip to ${String(vip)}:${input.port}` : `ip6 to [${String(vip)}]:${input.port}`;
}

function intervalSet(name: string, type: "ipv4_addr" | "ipv6_addr", cidrs: readonly string[]): string[] {
    const lines = [`\tset ${name} {`, `\t\ttype ${type}`, "\t\tflags interval", "\t\tauto-merge"];
    if (cidrs.length > 0) lines.push(`\t\telements = { ${cidrs.join(", ")} }`);
    lines.push("\t}");
    return lines;
}

function chain(name: string, header: string, rules: readonly string[]): string[] {
    return [`\tchain ${name} {`, `\t\t${header}`, ...rules.map((r) => `\t\t${r}`), "\t}"];
}

/**
 * The whole file for `nft -f`. The leading `table` + `delete table` pair makes the load one
 * transaction that replaces only our table (creating it first so the delete never fails):
 * an error anywhere leaves the previous table in force. Nothing else is flushed.
 * Priority `mangle + 1` runs right after the iptables/Cilium mangle chains (so their marks
 * are visible to the guards) and before any destination NAT.
 */
export function renderNftRuleset(input: NftRulesetInput): string {
    const t = input.tableName;
    const active = input.bindMode === "all" ? divertedFamilies(input) : [];
    const activationSet = [`\tset ${ACTIVATION_SET} {`, "\t\ttype nf_proto"];
    if (active.length > 0) activationSet.push(`\t\telements = { ${active.join(", ")} }`);
    activationSet.push("\t}");
    const lines = [
        `# Transparent proxy diversion managed by cilium-kpr (Pulumi). Owns only table inet ${t}.`,
        `# bind mode ${input.bindMode}; port ${input.port}; mark ${hex(input.mark)}; bypass mark ${hex(input.bypassMark)}.`,
        `table inet ${t} {}`,
        `delete table inet ${t}`,
        `table inet ${t} {`,
        ...activationSet,
        ...intervalSet(RESERVED_DST_SET.ipv4, "ipv4_addr", input.reservedDestinations.v4),
        ...intervalSet(RESERVED_DST_SET.ipv6, "ipv6_addr", input.reservedDestinations.v6),
        ...intervalSet(CLUSTER_DST_SET.ipv4, "ipv4_addr", input.clusterDestinations.v4),
        ...intervalSet(CLUSTER_DST_SET.ipv6, "ipv6_addr", input.clusterDestinations.v6),
        ...intervalSet(POD_SRC_SET.ipv4, "ipv4_addr", input.podSources.v4),
        ...intervalSet(POD_SRC_SET.ipv6, "ipv6_addr", input.podSources.v6),
        ...chain("prerouting", "type filter hook prerouting priority mangle + 1; policy accept;", preroutingRules(input)),
        ...chain("input", "type filter hook input priority mangle + 1; policy accept;", inputRules(input)),
        ...chain("output", "type route hook output priority mangle + 1; policy accept;", outputRules(input)),
        "}",
    ];
    return `${lines.join("\n")}\n`;
}
