/*
 * node --import tsx bench/tproxy-ruleset.ts
 * 1. Hot-path rule count with 5 and 500 reserved ranges (must be equal: ranges live in sets).
 * 2. TCP throughput of BYPASSED traffic (client -> node A -> sink, to a Service address) with
 *    no ruleset, and with the ruleset holding 5 and 500 reserved ranges. Namespaces only,
 *    TEST-NET addresses, each run bounded to a few seconds. Python sender/receiver (iperf3 is
 *    not installed), so absolute numbers are Python's ceiling; compare the rows.
 */
import { spawn, spawnSync } from "node:child_process";
import { nftRulesetInput, outputRules, preroutingRules, renderNftRuleset, activationStatements, type NftRulesetInput } from "../components/tproxy/nftRuleset";
import { LAB, TproxyLab, labConfig } from "../test/support/tproxyLab";

const SECONDS = 3;

function withReserved(count: number): NftRulesetInput {
    const base = nftRulesetInput(labConfig({ bindMode: "vip" }));
    // Distinct /24s in 100.64.0.0/10 (never a lab address), not adjacent, so none merge.
    const v4 = Array.from({ length: count }, (_, i) => `100.${64 + Math.floor((2 * i) / 256)}.${(2 * i) % 256}.0/24`);
    return { ...base, reservedDestinations: { v4, v6: base.reservedDestinations.v6 } };
}

const RECEIVER = String.raw`
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
while True:
    c, _ = s.accept(); n = 0
    while True:
        b = c.recv(1 << 20)
        if not b: break
        n += len(b)
    c.close()
`;
const SENDER = String.raw`
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
buf = b"x" * (1 << 16); end = time.monotonic() + float(sys.argv[3]); n = 0; t0 = time.monotonic()
while time.monotonic() < end:
    s.sendall(buf); n += len(buf)
s.close(); print(n / (time.monotonic() - t0))
`;

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
        const receiver = spawn("ip", ["netns", "exec", lab.sink.name, "python3", "-c", RECEIVER, LAB.service4, "5201"], {
            stdio: ["ignore", "pipe", "inherit"],
        });
        lab.track(receiver);
        await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("receiver not ready")), 5000);
            receiver.stdout.on("data", () => {
                clearTimeout(timer);
                resolve();
            });
        });
        const run = (label: string) => {
            const rates: number[] = [];
            for (let i = 0; i < 3; i++) {
                const r = spawnSync("ip", ["netns", "exec", lab.client.name, "python3", "-c", SENDER, LAB.service4, "5201", String(SECONDS)], {
                    encoding: "utf8",
                    timeout: (SECONDS + 10) * 1000,
                });
                if (r.status !== 0) throw new Error(`sender failed: ${r.stderr}`);
                rates.push((Number(r.stdout.trim()) * 8) / 1e9);
            }
            rates.sort((a, b) => a - b);
            console.log(`${label.padEnd(34)} median ${rates[1]!.toFixed(2)} Gbit/s  (runs ${rates.map((x) => x.toFixed(2)).join(", ")})`);
        };
        run("no ruleset");
        for (const count of [5, 500]) {
            const input = withReserved(count);
            const loaded = lab.nft(lab.nodeA, `${renderNftRuleset(input)}${activationStatements(input.tableName, ["ipv4", "ipv6"]).join("\n")}\n`);
            if (loaded.status !== 0) throw new Error(loaded.stderr);
            run(`ruleset, ${count} reserved ranges`);
        }
    } finally {
        lab.dispose();
    }
}

main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
});
