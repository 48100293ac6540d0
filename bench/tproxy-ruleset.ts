/*
 * node --import tsx bench/tproxy-ruleset.ts
 * 1. Hot-path rule count with 5 and 500 reserved ranges (must be equal: ranges live in sets).
 * 2. TCP throughput of BYPASSED traffic (client -> node A -> sink, to a Service address) with
 *    no ruleset, and with the ruleset holding 5 and 500 reserved ranges. Namespaces only,
 *    TEST-NET addresses, each run bounded to a few seconds. Python sender/receiver (iperf3 is
 *    not installed), so absolute numbers are Python's ceiling; compare the rows. On a busy
 *    machine Gbit/s swings with the CPU the sender gets; bench/tproxy-ruleset-attribution.ts
 *    interleaves variants and profiles where the time goes.
 */
import { nftRulesetInput, outputRules, preroutingRules, renderNftRuleset, activationStatements, type NftRulesetInput } from "../components/tproxy/nftRuleset";
import { LAB, TproxyLab, labConfig } from "../lab/tproxyLab";
import { median, sendFor, startReceiver, type Throughput } from "./throughputProbe";

const SECONDS = 3;

function withReserved(count: number): NftRulesetInput {
    const base = nftRulesetInput(labConfig({ bindMode: "vip" }));
    // Distinct /24s in 100.64.0.0/10 (never a lab address), not adjacent, so none merge.
    const v4 = Array.from({ length: count }, (_, i) => `100.${64 + Math.floor((2 * i) / 256)}.${(2 * i) % 256}.0/24`);
    return { ...base, reservedDestinations: { v4, v6: base.reservedDestinations.v6 } };
}

async function main(): Promise<void> {
    for (const count of [5, 500]) {
        const input = withReserved(count);
        const text = renderNftRuleset(input);
        console.log(
            `reserved v4 ranges: ${String(count).padStart(3)}  prerouting rules: ${preroutingRules(input).length}  output rules: ${outputRules(input).length}  file bytes: ${text.length}`,
        );
    }

    const lab = new TproxyLab();
    try {
        lab.policyRouting(lab.nodeA);
        lab.addVips(lab.nodeA);
        lab.track(await startReceiver(lab.sink, LAB.service4, 5201));
        const run = async (label: string) => {
            const runs: Throughput[] = [];
            for (let i = 0; i < 3; i++) runs.push(await sendFor(lab.client, LAB.service4, 5201, SECONDS));
            const gbps = runs.map((r) => r.gbps);
            const cpu = median(runs.map((r) => r.cpuSecondsPerGB * 1000));
            console.log(
                `${label.padEnd(34)} median ${median(gbps).toFixed(2)} Gbit/s  sender CPU ${cpu.toFixed(0)} ms/GB  (runs ${gbps.map((x) => x.toFixed(2)).join(", ")})`,
            );
        };
        await run("no ruleset");
        for (const count of [5, 500]) {
            const input = withReserved(count);
            const loaded = lab.nft(lab.nodeA, `${renderNftRuleset(input)}${activationStatements(input.tableName, ["ipv4", "ipv6"]).join("\n")}\n`);
            if (loaded.status !== 0) throw new Error(loaded.stderr);
            await run(`ruleset, ${count} reserved ranges`);
        }
    } finally {
        lab.dispose();
    }
}

main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
});
