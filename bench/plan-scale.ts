/*
 * node --import tsx bench/plan-scale.ts [--nodes 3,200,500] [--runs 5]
 * How the offline plan's cost grows with cluster size. For each size it generates a stack from
 * Pulumi.prod.yaml with that many synthetic nodes, then runs the real command (`npm run plan`'s
 * `node <options> tools/plan.ts --stack-dir <tmp> --out <tmp>`) in a fresh process per run:
 * index.ts is imported once per process, so the mock runtime cannot be reused in-process.
 * A run's wall time therefore includes node/tsx start-up and module loading, a constant that the
 * smallest size shows; "marginal ms/node" subtracts it. Temp dirs are removed when the bench ends, not
 * after each run: on an ext4 without a journal a file created within 60 s of many deletions scans past
 * every recently deleted inode (torvalds/linux fs/ext4/ialloc.c find_inode_bit, recently_deleted), so
 * removing one run's ~2,800 files would slow the next run's file creation by the bench's own doing.
 * Runs are interleaved (one run of every size per round, alternating direction) so load that comes
 * and goes on a shared machine hits every size alike; "paired x" is the median over rounds of a
 * size's time over the smallest size's time in the same round. CPU time (user + system, the plan
 * process's own) is printed beside wall time: it moves less with other processes' load.
 */
import { createHash } from "node:crypto";
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import * as ipaddr from "ipaddr.js";
import * as YAML from "yaml";
import { inputBytesTable, type NodeInputBytes } from "./inputBytes";

const REPO_ROOT = path.resolve(__dirname, "..");
const BASE_STACK = "prod";
/** Node addresses sit at <network>.(16..255).(10..249); this many fit. */
const MAX_NODES = 240 * 240;
const RUN_TIMEOUT_MS = 15 * 60 * 1000;
/**
 * Preloaded into the plan process: reports its peak resident memory and CPU time on stderr when it
 * exits, and what process.memoryUsage() said at the highest RSS it sampled (every 10 ms, from a timer
 * that keeps nothing alive; timers do not fire while the program declares its resources synchronously,
 * so the exact peak can fall between samples): RSS, the V8 heap reserved and in use (in use counts
 * garbage not yet collected), and external memory (Buffers, wasm).
 */
const USAGE_MARKER = "plan-scale usage:";
const REPORT_USAGE =
    "data:text/javascript,let p=process.memoryUsage();const s=()=>{const m=process.memoryUsage();if(m.rss>p.rss)p=m};setInterval(s,10).unref();" +
    `process.on("exit",()=>{s();const u=process.resourceUsage();process.stderr.write("\\n${USAGE_MARKER} "+[u.maxRSS,u.userCPUTime+u.systemCPUTime,p.rss,p.heapTotal,p.heapUsed,p.external,u.systemCPUTime].join(" ")+"\\n")})`;

interface StackDocument {
    config: Record<string, unknown>;
}

/** An ed25519 public key line in OpenSSH's wire format; the key bytes are derived from the name. */
export function syntheticHostKey(nodeName: string): string {
    const type = Buffer.from("ssh-ed25519");
    const key = createHash("sha256").update(`plan-scale host key ${nodeName}`).digest();
    const length = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(n);
        return b;
    };
    return `ssh-ed25519 ${Buffer.concat([length(type.length), type, length(key.length), key]).toString("base64")}`;
}

/** The /16 holding the base stack's first IPv4 node network (or that network, if wider). */
function widenedNodeCidr(nodeCidr: string): { cidr: string; base: number } {
    const [address, prefix] = ipaddr.parseCIDR(nodeCidr);
    if (address.kind() !== "ipv4") throw new Error(`plan-scale needs an IPv4 node network in the base stack, got ${nodeCidr}`);
    const wide = Math.min(prefix, 16);
    const network = ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${wide}`);
    return { cidr: `${network.toString()}/${wide}`, base: network.toByteArray().reduce((acc, byte) => acc * 256 + byte, 0) };
}

function ipv4FromNumber(n: number): string {
    return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/**
 * Pulumi.<stack>.yaml text: the base stack's config with `nodeCount` nodes named node-0001...,
 * addressed inside the base node network widened to a /16, each with its own host key. The other
 * node fields (ssh user/port, VRRP interface) are copied from the base stack's first node.
 */
export function syntheticStackYaml(baseYaml: string, project: string, nodeCount: number): string {
    if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) {
        throw new Error(`node count must be a whole number from 1 to ${MAX_NODES}, got ${nodeCount}`);
    }
    const doc = YAML.parse(baseYaml) as StackDocument;
    const clusterKey = `${project}:cluster`,
        nodesKey = `${project}:nodes`;
    const cluster = doc.config[clusterKey] as { nodeCidrs: string[] } & Record<string, unknown>;
    const baseNodes = doc.config[nodesKey] as Record<string, unknown>[];
    // Every node gets its own name, address and host key; the other fields are copied.
    const nodeTemplate = Object.fromEntries(Object.entries(baseNodes[0]!).filter(([key]) => !["name", "address", "hostKey"].includes(key)));
    const widened = widenedNodeCidr(cluster.nodeCidrs[0]!);

    const taken = new Set<string>();
    const tproxy = doc.config[`${project}:tproxy`] as { vip4?: string } | undefined;
    const cilium = doc.config[`${project}:cilium`] as { k8sServiceHost?: string } | undefined;
    for (const address of [tproxy?.vip4, cilium?.k8sServiceHost]) if (address !== undefined) taken.add(address);

    const nodes = Array.from({ length: nodeCount }, (_, i) => {
        const name = `node-${String(i + 1).padStart(4, "0")}`;
        const address = ipv4FromNumber(widened.base + (16 + Math.floor(i / 240)) * 256 + 10 + (i % 240));
        if (taken.has(address)) throw new Error(`synthetic address ${address} collides with the VIP or API server address`);
        return { name, address, ...nodeTemplate, hostKey: syntheticHostKey(name) };
    });
    const config = {
        ...doc.config,
        [clusterKey]: { ...cluster, nodeCidrs: [widened.cidr, ...cluster.nodeCidrs.slice(1)] },
        [nodesKey]: nodes,
    };
    return `# Generated by bench/plan-scale.ts from Pulumi.${BASE_STACK}.yaml with ${nodeCount} synthetic nodes.\n` + YAML.stringify({ config });
}

export function projectName(): string {
    return String((YAML.parse(readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { name: unknown }).name);
}

/** Writes Pulumi.yaml and Pulumi.bench-<n>.yaml into `dir`; returns the stack name. */
export function writeSyntheticStack(dir: string, nodeCount: number): string {
    const stack = `bench-${nodeCount}`;
    copyFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
    const baseYaml = readFileSync(path.join(REPO_ROOT, `Pulumi.${BASE_STACK}.yaml`), "utf8");
    writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), syntheticStackYaml(baseYaml, projectName(), nodeCount));
    return stack;
}

export interface MemorySample {
    readonly rss: number;
    readonly heapTotal: number;
    readonly heapUsed: number;
    readonly external: number;
}

export interface RunResult {
    readonly ms: number;
    /** Custom resources, as the plan's header counts them. */
    readonly resources: number;
    /** Every resource the program declared, components included (resources.json). */
    readonly declared: number;
    readonly maxRssKiB: number;
    /** process.memoryUsage() at the highest sampled RSS (bytes). */
    readonly sampledPeak: MemorySample;
    /** User + system CPU time of the plan process (all its threads). */
    readonly cpuMs: number;
    /** Its system part: the kernel's work for the process, mostly creating the plan's files and directories. */
    readonly systemCpuMs: number;
}

/**
 * The node options of `npm run plan` (package.json's "plan" script, `node <options> tools/plan.ts`), so
 * the bench measures the process operators run, V8 flags included.
 */
export function planNodeOptions(packageJson: string = readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")): string[] {
    const script = (JSON.parse(packageJson) as { scripts?: Record<string, string> }).scripts?.plan ?? "";
    const match = /^node((?: [^ ]+)*?) tools\/plan\.ts$/.exec(script);
    if (match === null) throw new Error(`package.json's plan script is not "node <options> tools/plan.ts": ${JSON.stringify(script)}`);
    return match[1]!.split(" ").filter((word) => word !== "");
}

/** The timed runs' temp dirs, removed when the bench ends (see the top of this file). */
const runDirs: string[] = [];

/** One timed `tools/plan.ts` run in a fresh process against a generated stack. */
function timedPlanRun(nodeCount: number): RunResult {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plan-scale-"));
    runDirs.push(dir);
    const stack = writeSyntheticStack(dir, nodeCount);
    const out = path.join(dir, "plan");
    const stdoutPath = path.join(dir, "stdout"),
        stderrPath = path.join(dir, "stderr");
    const stdoutFd = openSync(stdoutPath, "w"),
        stderrFd = openSync(stderrPath, "w");
    let status: number | null;
    let error: Error | undefined;
    const started = process.hrtime.bigint();
    try {
        ({ status, error } = spawnSync(
            process.execPath,
            [...planNodeOptions(), "--import", REPORT_USAGE, path.join(REPO_ROOT, "tools", "plan.ts"), "--stack", stack, "--stack-dir", dir, "--out", out],
            { cwd: REPO_ROOT, stdio: ["ignore", stdoutFd, stderrFd], timeout: RUN_TIMEOUT_MS },
        ));
    } finally {
        closeSync(stdoutFd);
        closeSync(stderrFd);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (error !== undefined || status !== 0) {
        throw new Error(`plan for ${nodeCount} nodes failed (${error?.message ?? `exit ${String(status)}`}):\n${readFileSync(stderrPath, "utf8")}`);
    }
    const header = /^Migration plan for stack \S+ \((\d+) resources\)/m.exec(readFileSync(stdoutPath, "utf8"));
    if (header === null) throw new Error(`plan for ${nodeCount} nodes printed no header`);
    const declared = (JSON.parse(readFileSync(path.join(out, "resources.json"), "utf8")) as unknown[]).length;
    const usage = new RegExp(`^${USAGE_MARKER} (\\d+) (\\d+) (\\d+) (\\d+) (\\d+) (\\d+) (\\d+)$`, "m").exec(readFileSync(stderrPath, "utf8"));
    if (usage === null) throw new Error(`plan for ${nodeCount} nodes did not report its memory and CPU time`);
    const [maxRss, cpu, rss, heapTotal, heapUsed, external, systemCpu] = usage.slice(1).map(Number) as [number, number, number, number, number, number, number];
    return {
        ms,
        resources: Number(header[1]),
        declared,
        maxRssKiB: maxRss,
        cpuMs: cpu / 1000,
        systemCpuMs: systemCpu / 1000,
        sampledPeak: { rss, heapTotal, heapUsed, external },
    };
}

/** Resource-input bytes per node of a generated stack (bench/inputBytes.ts in its own process; not timed). */
function measuredInputBytes(nodeCount: number): NodeInputBytes {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plan-scale-bytes-"));
    try {
        const stack = writeSyntheticStack(dir, nodeCount);
        const run = spawnSync(process.execPath, ["--import", "tsx", path.join(REPO_ROOT, "bench", "inputBytes.ts"), "--stack", stack, "--stack-dir", dir], {
            cwd: REPO_ROOT,
            encoding: "utf8",
            timeout: RUN_TIMEOUT_MS,
            maxBuffer: 1 << 20,
        });
        if (run.error !== undefined || run.status !== 0) {
            throw new Error(`input bytes for ${nodeCount} nodes failed (${run.error?.message ?? `exit ${String(run.status)}`}):\n${run.stderr}`);
        }
        return JSON.parse(run.stdout) as NodeInputBytes;
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function parseCounts(text: string, option: string, max: number): number[] {
    const counts = text.split(",").map((part) => Number(part.trim()));
    if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > max)) {
        throw new Error(`--${option} must be whole numbers from 1 to ${max}, comma separated; got "${text}"`);
    }
    return counts;
}

/**
 * Every size `runs` times, interleaved: each round runs every size once, forwards in odd rounds and
 * backwards in even ones, so a load change during the bench does not fall on one size only.
 * Returns each size's results in round order.
 */
export function interleavedRuns(sizes: readonly number[], runs: number, run: (nodes: number) => RunResult = timedPlanRun): Map<number, RunResult[]> {
    const results = new Map<number, RunResult[]>(sizes.map((n) => [n, []]));
    for (let round = 0; round < runs; round++) {
        for (const nodes of round % 2 === 0 ? sizes : [...sizes].reverse()) {
            const result = run(nodes);
            results.get(nodes)!.push(result);
            process.stderr.write(
                `  round ${round + 1}: ${nodes} nodes ${result.ms.toFixed(0)} ms wall, ${result.cpuMs.toFixed(0)} ms CPU, ${(result.maxRssKiB / 1024).toFixed(0)} MiB\n`,
            );
        }
    }
    return results;
}

export interface SizeRow {
    readonly nodes: number;
    readonly resources: number;
    readonly declared: number;
    readonly median: number;
    readonly min: number;
    readonly cpuMedian: number;
    readonly systemCpuMedian: number;
    /** Median over rounds of this size's wall time over the smallest size's in the same round. */
    readonly pairedRatio: number;
    readonly rssMiB: number;
    /** The sampled peak of the run with the highest peak RSS. */
    readonly sampledPeak: MemorySample;
}

export function sizeRows(results: ReadonlyMap<number, readonly RunResult[]>): SizeRow[] {
    const sizes = [...results.keys()].sort((a, b) => a - b);
    const smallest = results.get(sizes[0]!)!;
    return sizes.map((nodes) => {
        const runs = results.get(nodes)!;
        if (new Set(runs.map((r) => r.resources)).size !== 1) throw new Error(`resource count changed between runs for ${nodes} nodes`);
        const times = runs.map((r) => r.ms);
        return {
            nodes,
            resources: runs[0]!.resources,
            declared: runs[0]!.declared,
            median: median(times),
            min: Math.min(...times),
            cpuMedian: median(runs.map((r) => r.cpuMs)),
            systemCpuMedian: median(runs.map((r) => r.systemCpuMs)),
            pairedRatio: median(runs.map((r, round) => r.ms / smallest[round]!.ms)),
            rssMiB: Math.max(...runs.map((r) => r.maxRssKiB)) / 1024,
            sampledPeak: runs.reduce((worst, r) => (r.maxRssKiB > worst.maxRssKiB ? r : worst)).sampledPeak,
        };
    });
}

/** Issue 11 item 9's figures: 200 nodes against 3 (time, interleaved medians) and the peak memory of each size. */
export function issueFigures(rows: readonly SizeRow[]): string {
    const small = rows.find((r) => r.nodes === 3),
        large = rows.find((r) => r.nodes === 200);
    const lines: string[] = [];
    if (small !== undefined && large !== undefined) {
        lines.push(
            `200 vs 3 nodes: ${(large.median / small.median).toFixed(2)}x the wall time (medians), ${large.pairedRatio.toFixed(2)}x paired per round, ` +
                `${(large.cpuMedian / small.cpuMedian).toFixed(2)}x the CPU time (goal: at most 4x)`,
        );
        const user = (r: SizeRow) => r.cpuMedian - r.systemCpuMedian;
        lines.push(
            `200 vs 3 nodes, user CPU time only: ${(user(large) / user(small)).toFixed(2)}x (system time, mostly the kernel creating the plan's files, ` +
                `follows other processes' disk load: median ${small.systemCpuMedian.toFixed(0)} ms at 3 nodes, ${large.systemCpuMedian.toFixed(0)} ms at 200)`,
        );
    }
    lines.push(`peak RSS: ${rows.map((r) => `${r.nodes} nodes ${r.rssMiB.toFixed(0)} MiB`).join(", ")} (goal: at most 384 MiB at 200 nodes)`);
    return lines.join("\n") + "\n";
}

/**
 * Where each size's memory was at its highest sampled RSS: the V8 heap (in use, and reserved but free:
 * garbage collected but not yet returned, the young generation's semi-spaces), external memory, and
 * the rest (node itself, tsx's loader thread, compiled code, stacks).
 */
export function memoryBreakdown(rows: readonly SizeRow[]): string {
    const mib = (bytes: number) => (bytes / 1048576).toFixed(0);
    const lines = rows.map(({ nodes, rssMiB, sampledPeak: m }) => {
        const rest = m.rss - m.heapTotal - m.external;
        return (
            `  ${nodes} nodes: ${mib(m.rss)} MiB (peak ${rssMiB.toFixed(0)}) = V8 heap ${mib(m.heapTotal)} (${mib(m.heapUsed)} in use incl. garbage not yet ` +
            `collected, ${mib(m.heapTotal - m.heapUsed)} free) + external ${mib(m.external)} + rest ${mib(rest)} (node, tsx's loader thread, code)`
        );
    });
    return `memory at the highest sampled RSS (worst run, sampled every 10 ms):\n${lines.join("\n")}\n`;
}

function main(): number {
    const { values } = parseArgs({ options: { nodes: { type: "string", default: "3,200,500" }, runs: { type: "string", default: "5" } } });
    let sizes: number[], runs: number;
    try {
        sizes = [...new Set(parseCounts(values.nodes, "nodes", MAX_NODES))].sort((a, b) => a - b);
        [runs] = parseCounts(values.runs, "runs", 100) as [number];
    } catch (err) {
        process.stderr.write(`${(err as Error).message}\nusage: node --import tsx bench/plan-scale.ts [--nodes 3,200,500] [--runs 5]\n`);
        return 2;
    }

    process.stdout.write(
        `offline plan (node ${planNodeOptions().join(" ")} tools/plan.ts, fresh process per run) on Pulumi.${BASE_STACK}.yaml with N synthetic nodes, ${runs} interleaved round(s), load ${os
            .loadavg()
            .map((l) => l.toFixed(1))
            .join(" ")} on ${os.cpus().length} CPUs\n`,
    );
    let rows: SizeRow[];
    try {
        rows = sizeRows(interleavedRuns(sizes, runs));
    } finally {
        for (const dir of runDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    }

    const first = rows[0]!;
    const columns = [
        "nodes",
        "resources",
        "declared",
        "median ms",
        "min ms",
        "CPU ms",
        "sys ms",
        "ms/node",
        "marginal ms/node",
        "x nodes",
        "x resources",
        "x time",
        "paired x",
        "x CPU",
        "peak RSS MiB",
    ];
    const cells = rows.map((r) => [
        String(r.nodes),
        String(r.resources),
        String(r.declared),
        r.median.toFixed(0),
        r.min.toFixed(0),
        r.cpuMedian.toFixed(0),
        r.systemCpuMedian.toFixed(0),
        (r.median / r.nodes).toFixed(1),
        r === first ? "-" : ((r.median - first.median) / (r.nodes - first.nodes)).toFixed(2),
        (r.nodes / first.nodes).toFixed(1),
        (r.resources / first.resources).toFixed(1),
        (r.median / first.median).toFixed(2),
        r.pairedRatio.toFixed(2),
        (r.cpuMedian / first.cpuMedian).toFixed(2),
        r.rssMiB.toFixed(0),
    ]);
    const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
    const line = (row: readonly string[]) => row.map((cell, i) => cell.padStart(widths[i]!)).join("  ") + "\n";
    process.stdout.write(line(columns));
    for (const row of cells) process.stdout.write(line(row));
    process.stdout.write(
        "resources: custom resources in the plan; declared: every resource incl. components; CPU ms: median user + system time of the plan process; sys ms: median system time; " +
            "marginal ms/node: (median - smallest median) / (nodes - smallest nodes), i.e. cost without start-up; x: factor vs the smallest size (of medians); " +
            "paired x: median over rounds of the factor within a round; peak RSS: the plan process's, worst run\n",
    );
    process.stdout.write(issueFigures(rows));
    process.stdout.write(memoryBreakdown(rows));
    process.stdout.write(`\n${inputBytesTable(sizes.map((nodes) => ({ nodes, bytes: measuredInputBytes(nodes) })))}`);
    return 0;
}

if (require.main === module) {
    try {
        process.exitCode = main();
    } catch (err) {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
    }
}
