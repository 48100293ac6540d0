import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { validateStackConfig } from "../components/config/validate";
import { rawStackConfig, readStackFile } from "../tools/stackFile";
import {
    interleavedRuns,
    issueFigures,
    memoryBreakdown,
    planNodeOptions,
    sizeRows,
    syntheticHostKey,
    writeSyntheticStack,
    type RunResult,
} from "../bench/plan-scale";
import { PROJECT, ROOT, rawStack } from "./support/stacks";

test("the 500-node synthetic stack passes validateStackConfig with 500 distinct nodes and prod's other settings", (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plan-scale-test-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const stack = writeSyntheticStack(dir, 500);
    const result = validateStackConfig(PROJECT, rawStackConfig(readStackFile(dir, stack).config));
    assert.ok(result.ok, JSON.stringify(result.ok ? [] : result.issues.slice(0, 5)));

    const { nodes, cluster, cilium, tproxy } = result.config;
    assert.equal(nodes.length, 500);
    assert.equal(nodes[0]!.name, "node-0001");
    assert.equal(nodes[499]!.name, "node-0500");
    for (const field of ["name", "address", "hostKey"] as const) {
        assert.equal(new Set(nodes.map((n) => n[field])).size, 500, `${field} repeats`);
    }
    assert.ok(!nodes.some((n) => n.address === tproxy.vip4 || n.address === cilium.k8sServiceHost), "a node took the VIP");
    assert.deepEqual(cluster.nodeCidrs, ["172.25.0.0/16"]);

    const prod = validateStackConfig(PROJECT, rawStack("prod"));
    assert.ok(prod.ok);
    assert.deepEqual(cilium, prod.config.cilium);
    assert.deepEqual(tproxy, prod.config.tproxy);
    assert.deepEqual({ ...cluster, nodeCidrs: [] }, { ...prod.config.cluster, nodeCidrs: [] });
    const { sshUser, sshPort, vrrpInterface } = prod.config.nodes[0]!;
    assert.ok(nodes.every((n) => n.sshUser === sshUser && n.sshPort === sshPort && n.vrrpInterface === vrrpInterface));
});

test("synthetic host keys are OpenSSH ed25519 public key blobs", () => {
    const [type, blob] = syntheticHostKey("node-0001").split(" ") as [string, string];
    assert.equal(type, "ssh-ed25519");
    const bytes = Buffer.from(blob, "base64");
    assert.equal(bytes.readUInt32BE(0), 11);
    assert.equal(bytes.subarray(4, 15).toString(), "ssh-ed25519");
    assert.equal(bytes.readUInt32BE(15), 32);
    assert.equal(bytes.length, 15 + 4 + 32);
    assert.notEqual(syntheticHostKey("node-0002"), syntheticHostKey("node-0001"));
});

test("the bench with --nodes 3 --runs 1 exits 0 and prints a row for 3 nodes", () => {
    const run = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "plan-scale.ts"), "--nodes", "3", "--runs", "1"], {
        cwd: ROOT,
        encoding: "utf8",
        // One plan process: ~1.5 s of CPU, several times that in wall time on a loaded shared machine.
        timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    // nodes, resources (custom), declared, median ms, min ms, ...: prod's 3-node plan has 33 custom resources
    // (22 + cluster-identity, cilium-release-identity, cilium-upgrade-preflight and kubeadm-proxy-disabled,
    // + each node's store copy and check, + the node-files Stash).
    assert.match(run.stdout, /^\s*3\s+33\s+\d+\s+\d+\s+\d+\s/m);
    assert.match(run.stdout, /^offline plan \(node --max-semi-space-size=8 --import tsx tools\/plan\.ts, /m);
    assert.match(run.stdout, /^peak RSS: 3 nodes \d+ MiB \(goal: at most 384 MiB at 200 nodes\)$/m);
    // The plan process reported what its memory held: a heap of some MiB, and RSS above it.
    const breakdown = /^ {2}3 nodes: (\d+) MiB \(peak (\d+)\) = V8 heap (\d+) \((\d+) in use/m.exec(run.stdout);
    assert.ok(breakdown, run.stdout);
    const [sampled, peak, heap, used] = breakdown.slice(1).map(Number) as [number, number, number, number];
    assert.ok(sampled <= peak && heap < sampled && used > 0 && used <= heap, breakdown[0]);
});

test("the bench runs the plan with npm run plan's node options, V8 flags included", () => {
    assert.deepEqual(planNodeOptions(), ["--max-semi-space-size=8", "--import", "tsx"]);
    assert.deepEqual(planNodeOptions(JSON.stringify({ scripts: { plan: "node --import tsx tools/plan.ts" } })), ["--import", "tsx"]);
    assert.throws(() => planNodeOptions(JSON.stringify({ scripts: { plan: "tsx tools/plan.ts" } })), /not "node <options> tools\/plan\.ts"/);
});

test("the bench refuses a malformed --nodes list", () => {
    const run = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "plan-scale.ts"), "--nodes", "3,x"], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 20_000,
    });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--nodes must be whole numbers/);
});

/** A plan run that took `ms` wall (and CPU) time with `rssMiB` peak memory. */
const fakeRun = (ms: number, rssMiB: number, resources = 26): RunResult => ({
    ms,
    cpuMs: ms / 2,
    systemCpuMs: ms / 10,
    resources,
    declared: resources + 6,
    maxRssKiB: rssMiB * 1024,
    sampledPeak: { rss: rssMiB * 1048576, heapTotal: 0, heapUsed: 0, external: 0 },
});

test("rounds are interleaved: every size once per round, the direction alternating", () => {
    const order: number[] = [];
    const results = interleavedRuns([3, 200, 500], 3, (nodes) => {
        order.push(nodes);
        return fakeRun(nodes, 100);
    });
    assert.deepEqual(order, [3, 200, 500, 500, 200, 3, 3, 200, 500]);
    assert.deepEqual(
        [...results].map(([nodes, runs]) => [nodes, runs.length]),
        [
            [3, 3],
            [200, 3],
            [500, 3],
        ],
    );
});

test("sizeRows pairs each round with the smallest size's run of the same round, and keeps the worst peak memory", () => {
    // Round 2 is slow for everyone (load): the paired factor stays 4 while the medians' factor moves.
    const results = new Map<number, RunResult[]>([
        [3, [fakeRun(1000, 200), fakeRun(3000, 210), fakeRun(1100, 205)]],
        [200, [fakeRun(4000, 400), fakeRun(12000, 380), fakeRun(4400, 390)]],
    ]);
    const [small, large] = sizeRows(results);
    assert.equal(small!.pairedRatio, 1);
    assert.equal(large!.pairedRatio, 4);
    assert.equal(large!.median, 4400);
    assert.equal(large!.cpuMedian, 2200);
    assert.equal(large!.rssMiB, 400);
    assert.throws(() => sizeRows(new Map([[3, [fakeRun(1, 1, 26), fakeRun(1, 1, 27)]]])), /resource count changed/);
});

test("issueFigures prints issue 11 item 9's figures: 200 vs 3 nodes and the peak memory of every size", () => {
    const results = new Map<number, RunResult[]>([
        [3, [fakeRun(1000, 200)]],
        [200, [fakeRun(3500, 370)]],
        [500, [fakeRun(8000, 700)]],
    ]);
    const text = issueFigures(sizeRows(results));
    assert.match(text, /^200 vs 3 nodes: 3\.50x the wall time \(medians\), 3\.50x paired per round, 3\.50x the CPU time \(goal: at most 4x\)$/m);
    assert.match(text, /^peak RSS: 3 nodes 200 MiB, 200 nodes 370 MiB, 500 nodes 700 MiB \(goal: at most 384 MiB at 200 nodes\)$/m);
    assert.match(text, /^200 vs 3 nodes, user CPU time only: 3\.50x \(system time, .*: median 100 ms at 3 nodes, 350 ms at 200\)$/m);
    assert.doesNotMatch(issueFigures(sizeRows(new Map([[3, [fakeRun(1000, 200)]]]))), /200 vs 3/);
    // System time grown by other processes' disk load shows in the CPU factor, not in the user-only one.
    const loadedDisk = issueFigures(
        sizeRows(
            new Map<number, RunResult[]>([
                [3, [{ ...fakeRun(1000, 200), cpuMs: 500, systemCpuMs: 100 }]],
                [200, [{ ...fakeRun(3500, 370), cpuMs: 2500, systemCpuMs: 900 }]],
            ]),
        ),
    );
    assert.match(loadedDisk, /5\.00x the CPU time/);
    assert.match(loadedDisk, /user CPU time only: 4\.00x .*median 100 ms at 3 nodes, 900 ms at 200\)$/m);
});

test("memoryBreakdown splits each size's sampled peak into V8 heap (in use, free), external memory and the rest, from the worst run", () => {
    const mib = 1048576;
    const sample = (rss: number) => ({ rss: rss * mib, heapTotal: 250 * mib, heapUsed: 150 * mib, external: 5 * mib });
    const results = new Map<number, RunResult[]>([
        [
            200,
            [
                { ...fakeRun(3000, 360), sampledPeak: sample(340) },
                { ...fakeRun(3000, 350), sampledPeak: sample(345) },
            ],
        ],
    ]);
    assert.equal(
        memoryBreakdown(sizeRows(results)),
        "memory at the highest sampled RSS (worst run, sampled every 10 ms):\n" +
            "  200 nodes: 340 MiB (peak 360) = V8 heap 250 (150 in use incl. garbage not yet collected, 100 free) + external 5 + rest 85 (node, tsx's loader thread, code)\n",
    );
});
