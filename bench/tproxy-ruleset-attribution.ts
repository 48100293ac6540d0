/*
 * node --import tsx bench/tproxy-ruleset-attribution.ts
 * Where the tproxy ruleset's cost on BYPASSED forwarded traffic comes from. Same lab path as
 * bench/tproxy-ruleset.ts (client -> node A -> sink, TCP to a Service address, which the
 * ruleset returns on at the cluster-destination set), with node A's table replaced by variants
 * of the real rendered file: empty chains, only the conntrack rule, growing prefixes of the
 * guard list, the full file minus one rule. Variants run interleaved (one round = every variant
 * once) so load from other processes spreads over all of them; each row is the median of the
 * rounds. The lab's own masquerade table (lab_nat) turns conntrack on in node A, as kube-proxy
 * or Cilium do on a real node; rows marked "ct off" remove it to price conntrack itself.
 * Throughput on a loaded 2-CPU machine mostly measures how much CPU the sender got, so rows
 * also show the sender's CPU time per GB, and, when `perf` is installed, a second pass profiles
 * one flow per key variant (sender and receiver pids, kernel call graphs) and prints the share
 * of their CPU samples spent inside our nft chain, the fib expression, set lookups and conntrack.
 * The forwarding path runs in the sender's softirq context (ksoftirqd took under 2% system-wide
 * in this lab), so those two pids cover it. Segments are GSO-sized (up to 64 KB) on veth, so one
 * rule evaluation serves many bytes; a real NIC's GRO aggregates forwarded TCP the same way, but
 * small-packet traffic (UDP, no GRO) pays the per-packet cost on more packets per byte.
 * Env: BENCH_SECONDS (default 2), BENCH_ROUNDS (default 3). Namespaces and TEST-NET only.
 *
 * --small-packets: the same question for 64-byte UDP (bench/udpFlood.ts), where every packet pays
 * every rule it reaches. For each kind of traffic that leaves the chain at a guard, the table is
 * loaded with growing prefixes of the prerouting chain up to that guard, against empty chains on
 * the same hooks; rows are the sender's CPU nanoseconds per forwarded packet (medians over
 * interleaved rounds) and what each added rule costs. Conntrack on throughout (lab_nat).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { activationStatements, nftRulesetInput, renderNftRuleset } from "../components/tproxy/nftRuleset";
import { LAB, TproxyLab, labConfig } from "../lab/tproxyLab";
import { chainRules, keepRules } from "./rulesetVariant";
import { median, sendFor, startReceiver, type Throughput } from "./throughputProbe";
import { UdpFlood } from "./udpFlood";
import type { NetNs } from "../lab/netns";

const SECONDS = Number(process.env.BENCH_SECONDS ?? "2");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? "3");
const PORT = 5201;

interface Variant {
    readonly label: string;
    /** Whether the lab's masquerade table (and with it conntrack) stays loaded in node A. */
    readonly labNat: boolean;
    /** The nft file to load for our table; undefined removes our table. */
    readonly ruleset: string | undefined;
}

interface Sample extends Throughput {
    readonly conntracked: boolean;
}

/** Kernel functions whose call-graph share ("children": the function and all it calls) is printed. */
const PROFILED: readonly (readonly [string, readonly string[]])[] = [
    // Our chain with every expression in it (the lab's nat chain runs only for a flow's first packet).
    ["nft chain", ["nft_do_chain_inet"]],
    // Parts of the chain. nft_fib_inet_eval tail-calls the per-family function, so both are counted.
    ["fib expr", ["nft_fib_inet_eval", "nft_fib4_eval_type", "nft_fib6_eval_type"]],
    ["set lookups", ["nft_lookup_eval"]],
    ["conntrack", ["nf_conntrack_in"]],
    ["nat hooks", ["nf_nat_ipv4_pre_routing", "nf_nat_ipv4_out", "nf_nat_ipv4_local_fn", "nf_nat_ipv4_local_in"]],
];
const PROFILED_VARIANTS = [
    "(a) no table",
    "(c) only ct direction reply return",
    "(d) full ruleset",
    "(e) full minus fib",
    "ct off: no table",
    "ct on by us: full ruleset",
];

/** Children % per kernel symbol from a perf.data file, and perf's sample count ("6K"). */
function symbolShares(perfData: string): { shares: Map<string, number>; samples: string } {
    const report = spawnSync("perf", ["report", "-i", perfData, "--stdio", "--children", "--sort", "sym", "-g", "none"], {
        encoding: "utf8",
        timeout: 60_000,
        maxBuffer: 64 << 20,
    });
    const shares = new Map<string, number>();
    for (const line of report.stdout.split("\n")) {
        const m = /^\s+([\d.]+)%\s+[\d.]+%\s+\[k\]\s+(\S+)/.exec(line);
        if (m) shares.set(m[2]!, Number(m[1]));
    }
    return { shares, samples: /^# Samples: (\S+)/m.exec(report.stdout)?.[1] ?? "0" };
}

function perfAvailable(): boolean {
    return spawnSync("perf", ["--version"], { encoding: "utf8" }).status === 0;
}

function variants(): Variant[] {
    const input = nftRulesetInput(labConfig({ bindMode: "vip" }));
    const full = `${renderNftRuleset(input)}${activationStatements(input.tableName, ["ipv4", "ipv6"]).join("\n")}\n`;
    const rules = chainRules(full, "prerouting");
    const only = (predicate: (rule: string) => boolean) => keepRules(full, (rule) => predicate(rule));
    const isCt = (rule: string) => rule.startsWith("ct direction reply");
    const isFib = (rule: string) => rule.startsWith("fib ");
    const prefixes = rules.map((rule, i): Variant => ({
        label: `rules 1-${i + 1} (+ ${rule.split(" comment ")[0]!.slice(0, 44)})`,
        labNat: true,
        ruleset: keepRules(full, (_rule, index) => index <= i),
    }));
    return [
        { label: "(a) no table", labNat: true, ruleset: undefined },
        { label: "(b) empty chains, same hooks", labNat: true, ruleset: only(() => false) },
        { label: "(c) only ct direction reply return", labNat: true, ruleset: only(isCt) },
        ...prefixes,
        { label: "(d) full ruleset", labNat: true, ruleset: full },
        { label: "(e) full minus fib", labNat: true, ruleset: only((rule) => !isFib(rule)) },
        { label: "(f) only fib", labNat: true, ruleset: only(isFib) },
        { label: "(f) full minus ct direction", labNat: true, ruleset: only((rule) => !isCt(rule)) },
        { label: "ct off: no table", labNat: false, ruleset: undefined },
        { label: "ct off: empty chains", labNat: false, ruleset: only(() => false) },
        { label: "ct off: only fib", labNat: false, ruleset: only(isFib) },
        { label: "ct off: full minus ct direction", labNat: false, ruleset: only((rule) => !isCt(rule)) },
        { label: "ct on by us: only ct direction", labNat: false, ruleset: only(isCt) },
        { label: "ct on by us: full ruleset", labNat: false, ruleset: full },
    ];
}

interface SmallPacketKind {
    readonly kind: string;
    readonly forwarder: "nodeA" | "nodeB";
    readonly destination: string;
    readonly active: readonly ("ipv4" | "ipv6")[];
    /** The guard that returns this traffic: the last rule its packets evaluate. */
    readonly leavesAt: RegExp;
}

const SMALL_PACKET_KINDS: readonly SmallPacketKind[] = [
    {
        kind: "node without the VIP -> internet",
        forwarder: "nodeB",
        destination: LAB.destViaB4,
        active: [],
        leavesAt: /^meta nfproto != @tproxy_active return/,
    },
    {
        kind: "diverting node, bypassed -> Service",
        forwarder: "nodeA",
        destination: LAB.service4,
        active: ["ipv4", "ipv6"],
        leavesAt: /^ip daddr @cluster_dst_v4 return/,
    },
];
const UDP_PORT = 5301;

async function smallPacketAttribution(): Promise<void> {
    const input = nftRulesetInput(labConfig({ bindMode: "vip" }));
    const full = renderNftRuleset(input);
    const rules = chainRules(full, "prerouting");
    const lab = new TproxyLab();
    const flood = new UdpFlood();
    try {
        lab.policyRouting(lab.nodeA);
        lab.addVips(lab.nodeA);
        lab.track(await flood.startSink(lab.sink, "0.0.0.0", UDP_PORT, 1));
        interface Row {
            readonly kind: SmallPacketKind;
            readonly label: string;
            readonly text: string;
            readonly nsPerPacket: number[];
        }
        const rows: Row[] = [];
        for (const kind of SMALL_PACKET_KINDS) {
            const exit = rules.findIndex((rule) => kind.leavesAt.test(rule));
            if (exit < 0) throw new Error(`${kind.kind}: no rule matches ${String(kind.leavesAt)}`);
            const activation = `${activationStatements(LAB.tableName, kind.active).join("\n")}\n`;
            rows.push({ kind, label: "empty chains, same hooks", text: `${keepRules(full, () => false)}${activation}`, nsPerPacket: [] });
            for (let k = 0; k <= exit; k++) {
                rows.push({
                    kind,
                    label: `+ ${rules[k]!.split(" comment ")[0]!.slice(0, 56)}`,
                    text: `${keepRules(full, (_rule, index, chain) => chain !== "prerouting" || index <= k)}${activation}`,
                    nsPerPacket: [],
                });
            }
        }
        const load0 = loadavg();
        for (let round = 0; round < ROUNDS; round++) {
            for (const row of rows) {
                const node: NetNs = lab[row.kind.forwarder];
                const loaded = lab.nft(node, row.text);
                if (loaded.status !== 0) throw new Error(`${row.label}: ${loaded.stderr}`);
                const result = flood.floodFor(lab.client, row.kind.destination, UDP_PORT, SECONDS, 0, node, "up0");
                row.nsPerPacket.push(1e9 / result.perCpuSecond);
            }
        }
        const load1 = loadavg();
        console.log(`64-byte UDP, client -> node -> sink; ${ROUNDS} rounds x ${SECONDS} s, interleaved; sender CPU 0, sink CPU 1; conntrack on`);
        console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
        console.log("ns/pkt: the sender's CPU nanoseconds per forwarded packet (median); +ns: against the row above; % against empty chains");
        for (const kind of SMALL_PACKET_KINDS) {
            const own = rows.filter((r) => r.kind === kind);
            const base = median(own[0]!.nsPerPacket);
            console.log(`\n${kind.kind} (leaves the chain at prerouting rule ${own.length - 1})`);
            let previous = base;
            for (const row of own) {
                const ns = median(row.nsPerPacket);
                console.log(
                    `  ${row.label.padEnd(62)} ${ns.toFixed(0).padStart(6)} ns/pkt  ${(ns - previous >= 0 ? "+" : "") + (ns - previous).toFixed(0).padStart(4)} ns  ${(((ns - base) / base) * 100).toFixed(1).padStart(5)}%`,
                );
                previous = ns;
            }
        }
    } finally {
        flood.dispose();
        lab.dispose();
    }
}

async function main(): Promise<void> {
    if (process.argv.includes("--small-packets")) return smallPacketAttribution();
    const all = variants();
    const load0 = loadavg();
    const lab = new TproxyLab();
    try {
        lab.policyRouting(lab.nodeA);
        lab.addVips(lab.nodeA);
        const labNat = `table inet lab_nat {}\ndelete table inet lab_nat\n${lab.nodeA.sh("nft list table inet lab_nat")}`;
        const ourTable = LAB.tableName;
        const setUp = (variant: Variant) => {
            const natText = variant.labNat ? labNat : "table inet lab_nat {}\ndelete table inet lab_nat\n";
            const ourText = variant.ruleset ?? `table inet ${ourTable} {}\ndelete table inet ${ourTable}\n`;
            const loaded = lab.nft(lab.nodeA, `${natText}${ourText}`);
            if (loaded.status !== 0) throw new Error(`${variant.label}: ${loaded.stderr}`);
        };
        // Is conntrack tracking this flow in node A? An ESTABLISHED entry for it, read mid-flow.
        const conntrackSeesFlow = () =>
            lab.nodeA.try(`grep -c 'ESTABLISHED.*dst=${LAB.service4} .*dport=${PORT} ' /proc/net/nf_conntrack`).stdout.trim() !== "0";

        const receiver = await startReceiver(lab.sink, LAB.service4, PORT);
        lab.track(receiver);
        const samples = new Map<Variant, Sample[]>(all.map((v) => [v, []]));
        for (let round = 0; round < ROUNDS; round++) {
            for (const variant of all) {
                setUp(variant);
                let conntracked = false;
                const measured = await sendFor(lab.client, LAB.service4, PORT, SECONDS, () => {
                    conntracked = conntrackSeesFlow();
                });
                samples.get(variant)!.push({ ...measured, conntracked });
            }
        }

        const load1 = loadavg();
        const first = samples.get(all[0]!)!;
        const baseGbps = median(first.map((x) => x.gbps));
        const baseCpu = median(first.map((x) => x.cpuSecondsPerGB));
        const pct = (value: number, base: number) => `${((value / base) * 100).toFixed(0)}%`.padStart(5);
        console.log(`TCP bulk, client -> node A (forwarding) -> sink ${LAB.service4}; ${ROUNDS} rounds x ${SECONDS} s, interleaved`);
        console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
        console.log("Gbit/s and sender CPU ms per GB are medians over the rounds; % is relative to (a); ct: conntrack saw the flow in node A");
        console.log(`${"variant".padEnd(62)} ${"Gbit/s".padStart(6)} ${"".padStart(5)}  ${"CPU ms/GB".padStart(9)} ${"".padStart(5)}  ct   Gbit/s per round`);
        for (const variant of all) {
            const got = samples.get(variant)!;
            const gbps = median(got.map((x) => x.gbps));
            const cpu = median(got.map((x) => x.cpuSecondsPerGB));
            const ct = got.every((x) => x.conntracked) ? "on " : got.some((x) => x.conntracked) ? "mix" : "off";
            console.log(
                `${variant.label.padEnd(62)} ${gbps.toFixed(2).padStart(6)} ${pct(gbps, baseGbps)}  ${(cpu * 1000).toFixed(0).padStart(9)} ${pct(cpu, baseCpu)}  ${ct}  ${got.map((x) => x.gbps.toFixed(1)).join(" ")}`,
            );
        }

        if (!perfAvailable()) {
            console.log("perf not installed: no profile");
            return;
        }
        const dir = mkdtempSync(join(tmpdir(), "kpr-perf-"));
        try {
            const recordSeconds = String(Math.max(1, SECONDS / 2));
            const profiled = all.filter((v) => PROFILED_VARIANTS.includes(v.label));
            console.log(`\nprofile: % of the sender's and receiver's CPU samples (perf, ${recordSeconds} s mid-flow, call-graph children)`);
            console.log(`${"variant".padEnd(40)} ${PROFILED.map(([name]) => name.padStart(12)).join(" ")}  samples`);
            for (const [i, variant] of profiled.entries()) {
                setUp(variant);
                const file = join(dir, `${i}.data`);
                let recorded = "";
                await sendFor(lab.client, LAB.service4, PORT, SECONDS, (senderPid) => {
                    const r = spawnSync(
                        "perf",
                        ["record", "-q", "-g", "-o", file, "-p", `${senderPid},${String(receiver.pid)}`, "--", "sleep", recordSeconds],
                        { encoding: "utf8", timeout: (SECONDS + 10) * 1000 },
                    );
                    recorded = r.status === 0 ? "" : r.stderr.trim();
                });
                if (recorded !== "") throw new Error(`perf record: ${recorded}`);
                const { shares, samples } = symbolShares(file);
                const cells = PROFILED.map(([, symbols]) => `${symbols.reduce((sum, sym) => sum + (shares.get(sym) ?? 0), 0).toFixed(1)}%`.padStart(12));
                console.log(`${variant.label.padEnd(40)} ${cells.join(" ")}  ${samples}`);
            }
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    } finally {
        lab.dispose();
    }
}

main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
});
