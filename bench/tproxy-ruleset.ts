/*
 * node --import tsx bench/tproxy-ruleset.ts [--bulk] [--small-packets]   (both when neither is given)
 * 1. Hot-path rule count with 5 and 500 reserved ranges (must be equal: ranges live in sets).
 * 2. Bulk: TCP throughput of BYPASSED traffic (client -> node A -> sink, to a Service address) with
 *    no ruleset, and with the ruleset holding 5 and 500 reserved ranges. Python sender/receiver
 *    (iperf3 is not installed), so absolute numbers are Python's ceiling; compare the rows. GSO
 *    segments of up to 64 KB on veth: one rule evaluation serves many bytes.
 * 3. Small packets: 64-byte UDP frames (bench/udpFlood.ts) forwarded by a node, in packets per
 *    second, against the same node with our table's chains empty on the same hooks ("empty
 *    chains": the hooks, sets and conntrack stay; only the rules go). Conntrack is on in every
 *    variant (the lab's masquerade table), sender and sink are pinned to different CPUs. Kinds:
 *    - node without the VIP (node B, activation set empty), traffic to the internet: every packet
 *      is checked and leaves at "not active here";
 *    - the diverting node (node A holds the VIP, activation set filled), bypassed traffic: to a
 *      Service address (cluster set) and to a reserved range (tproxy.extraReserved).
 *    Variants run interleaved (one round = each variant once, BENCH_ROUNDS rounds of
 *    BENCH_SECONDS each), so load from other processes on a shared machine spreads over all of
 *    them; rows are medians, with the ratio's spread over the rounds (min-max of each round's
 *    ratio to its own baseline) as the noise.
 * Namespaces only, TEST-NET addresses. Env: BENCH_SECONDS (default 2), BENCH_ROUNDS (default 9).
 */
import { loadavg } from "node:os";
import { nftRulesetInput, outputRules, preroutingRules, renderNftRuleset, activationStatements, type NftRulesetInput } from "../components/tproxy/nftRuleset";
import type { NetNs } from "../lab/netns";
import { LAB, TproxyLab, labConfig } from "../lab/tproxyLab";
import { keepRules } from "./rulesetVariant";
import { median, sendFor, startReceiver, type Throughput } from "./throughputProbe";
import { SMALL_PAYLOAD_BYTES, UdpFlood, type FloodResult } from "./udpFlood";

const BULK_SECONDS = 3;
const SECONDS = Number(process.env.BENCH_SECONDS ?? "2");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? "9");
const UDP_PORT = 5301;
const SENDER_CPU = 0;
const SINK_CPU = 1;

function withReserved(count: number): NftRulesetInput {
    const base = nftRulesetInput(labConfig({ bindMode: "vip" }));
    // Distinct /24s in 100.64.0.0/10 (never a lab address), not adjacent, so none merge.
    const v4 = Array.from({ length: count }, (_, i) => `100.${64 + Math.floor((2 * i) / 256)}.${(2 * i) % 256}.0/24`);
    return { ...base, reservedDestinations: { v4, v6: base.reservedDestinations.v6 } };
}

function ruleCounts(): void {
    for (const count of [5, 500]) {
        const input = withReserved(count);
        const text = renderNftRuleset(input);
        console.log(
            `reserved v4 ranges: ${String(count).padStart(3)}  prerouting rules: ${preroutingRules(input).length}  output rules: ${outputRules(input).length}  file bytes: ${text.length}`,
        );
    }
}

async function bulk(lab: TproxyLab): Promise<void> {
    lab.track(await startReceiver(lab.sink, LAB.service4, 5201));
    const run = async (label: string) => {
        const runs: Throughput[] = [];
        for (let i = 0; i < 3; i++) runs.push(await sendFor(lab.client, LAB.service4, 5201, BULK_SECONDS));
        const gbps = runs.map((r) => r.gbps);
        const cpu = median(runs.map((r) => r.cpuSecondsPerGB * 1000));
        console.log(
            `${label.padEnd(34)} median ${median(gbps).toFixed(2)} Gbit/s  sender CPU ${cpu.toFixed(0)} ms/GB  (runs ${gbps.map((x) => x.toFixed(2)).join(", ")})`,
        );
    };
    lab.nft(lab.nodeA, `table inet ${LAB.tableName} {}\ndelete table inet ${LAB.tableName}\n`);
    await run("no ruleset");
    for (const count of [5, 500]) {
        const input = withReserved(count);
        const loaded = lab.nft(lab.nodeA, `${renderNftRuleset(input)}${activationStatements(input.tableName, ["ipv4", "ipv6"]).join("\n")}\n`);
        if (loaded.status !== 0) throw new Error(loaded.stderr);
        await run(`ruleset, ${count} reserved ranges`);
    }
}

interface SmallPacketCase {
    readonly kind: string;
    readonly forwarder: "nodeA" | "nodeB";
    readonly destination: string;
    /** The families in the activation set: what keepalived's notify puts there on the VIP holder. */
    readonly active: readonly ("ipv4" | "ipv6")[];
}

const SMALL_PACKET_CASES: readonly SmallPacketCase[] = [
    { kind: "node without the VIP -> internet (not active here)", forwarder: "nodeB", destination: LAB.destViaB4, active: [] },
    { kind: "diverting node, bypassed -> Service", forwarder: "nodeA", destination: LAB.service4, active: ["ipv4", "ipv6"] },
    { kind: "diverting node, bypassed -> reserved", forwarder: "nodeA", destination: LAB.extraReserved4, active: ["ipv4", "ipv6"] },
];

interface Variant {
    readonly testCase: SmallPacketCase;
    readonly table: "empty chains" | "ruleset";
    readonly text: string;
}

async function smallPackets(lab: TproxyLab): Promise<void> {
    const input = nftRulesetInput(labConfig({ bindMode: "vip" }));
    const rendered = renderNftRuleset(input);
    const variants: Variant[] = SMALL_PACKET_CASES.flatMap((testCase) => {
        const activation = activationStatements(input.tableName, testCase.active).join("\n");
        return (["empty chains", "ruleset"] as const).map((table) => ({
            testCase,
            table,
            text: `${table === "ruleset" ? rendered : keepRules(rendered, () => false)}${activation}\n`,
        }));
    });
    const flood = new UdpFlood();
    try {
        lab.track(await flood.startSink(lab.sink, "0.0.0.0", UDP_PORT, SINK_CPU));
        const node = (testCase: SmallPacketCase): NetNs => lab[testCase.forwarder];
        const conntracked = (testCase: SmallPacketCase) =>
            node(testCase).try(`grep -c 'udp .*dst=${testCase.destination} .*dport=${UDP_PORT} ' /proc/net/nf_conntrack`).stdout.trim() !== "0";
        const results = new Map<Variant, FloodResult[]>(variants.map((v) => [v, []]));
        const tracked = new Map<Variant, boolean[]>(variants.map((v) => [v, []]));
        const load0 = loadavg();
        const started = Date.now();
        for (let round = 0; round < ROUNDS; round++) {
            for (const variant of variants) {
                const forwarder = node(variant.testCase);
                const loaded = lab.nft(forwarder, variant.text);
                if (loaded.status !== 0) throw new Error(`${variant.testCase.kind} ${variant.table}: ${loaded.stderr}`);
                results.get(variant)!.push(flood.floodFor(lab.client, variant.testCase.destination, UDP_PORT, SECONDS, SENDER_CPU, forwarder, "up0"));
                tracked.get(variant)!.push(conntracked(variant.testCase));
            }
        }
        const load1 = loadavg();
        console.log(
            `\nsmall packets: UDP, ${SMALL_PAYLOAD_BYTES}-byte payload (64-byte frames), client -> node -> sink; sender CPU ${SENDER_CPU}, sink CPU ${SINK_CPU}; ${ROUNDS} rounds x ${SECONDS} s, interleaved, ${((Date.now() - started) / 1000).toFixed(0)} s`,
        );
        console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
        console.log("forwarded packets per second of wall time (kpps) and per second of the sender's CPU (kpp/cpu-s), medians;");
        console.log("ratio: ruleset / empty chains, median of the per-round ratios (min-max over rounds); ct: conntrack saw the flow in every round");
        const ratioCell = (full: readonly number[], empty: readonly number[]) => {
            const ratios = full.map((x, i) => x / empty[i]!);
            return `${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
        };
        for (const testCase of SMALL_PACKET_CASES) {
            const own = variants.filter((v) => v.testCase === testCase);
            const [empty, full] = own.map((v) => results.get(v)!);
            const k = (rs: readonly FloodResult[], pick: (r: FloodResult) => number) => (median(rs.map(pick)) / 1000).toFixed(0).padStart(5);
            const ct = own.every((v) => tracked.get(v)!.every(Boolean)) ? "on" : "NOT ALWAYS";
            console.log(`${testCase.kind}  (ct ${ct})`);
            for (const [label, pick] of [
                ["kpps     ", (r: FloodResult) => r.pps],
                ["kpp/cpu-s", (r: FloodResult) => r.perCpuSecond],
            ] as const) {
                console.log(`    ${label}  empty chains ${k(empty!, pick)}  ruleset ${k(full!, pick)}  ratio ${ratioCell(full!.map(pick), empty!.map(pick))}`);
            }
        }
    } finally {
        flood.dispose();
    }
}

async function main(): Promise<void> {
    const args = process.argv.slice(2);
    const wantBulk = args.includes("--bulk") || !args.includes("--small-packets");
    const wantSmall = args.includes("--small-packets") || !args.includes("--bulk");
    ruleCounts();
    const lab = new TproxyLab();
    try {
        lab.policyRouting(lab.nodeA);
        lab.addVips(lab.nodeA);
        if (wantBulk) await bulk(lab);
        if (wantSmall) await smallPackets(lab);
    } finally {
        lab.dispose();
    }
}

main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
});
