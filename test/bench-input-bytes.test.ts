import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { inputBytes, inputBytesTable, nodeInputBytes, type NodeInputBytes } from "../bench/inputBytes";
import { STEP } from "../components/resourceNames";
import { ROOT } from "./support/stacks";

test("nodeInputBytes attributes each custom resource to the node its STEP name carries, the rest to the cluster", () => {
    const r = (name: string, inputs: Record<string, unknown>, custom = true) => ({ name, inputs, custom });
    const resources = [
        r(STEP.tproxyApply("a"), { create: "x".repeat(100) }),
        r(STEP.tproxyApply("b"), { create: "x".repeat(300) }),
        r(STEP.nodePreflight("a"), { create: "y" }),
        r(STEP.nodeTproxy("a"), {}, false),
        r(STEP.kprGate, { create: "z".repeat(50) }),
    ];
    const bytes = nodeInputBytes(resources, ["a", "b", "c"]);
    const apply = (n: number) => inputBytes({ create: "x".repeat(n) });
    assert.equal(bytes.nodes, 2, "node c owns no step");
    assert.equal(bytes.perKind.tproxyApply, (apply(100) + apply(300)) / 2);
    assert.equal(bytes.perKind.nodePreflight, inputBytes({ create: "y" }) / 2);
    assert.equal(bytes.maxNode, apply(300));
    assert.equal(bytes.perNode, (apply(100) + apply(300) + inputBytes({ create: "y" })) / 2);
    assert.equal(bytes.cluster, inputBytes({ create: "z".repeat(50) }));
    assert.match(
        inputBytesTable([{ nodes: 3, bytes }]),
        /^nodes\s+with steps\s+KB\/node\s+max KB\/node\s+tproxyApply KB\s+nodePreflight KB\s+cluster KB\s+MB total\n\s+3\s+2\s+/,
    );
});

/** What `node --import tsx bench/inputBytes.ts ARGS` prints, run as an operator would. */
function measuredInputBytes(args: readonly string[]): NodeInputBytes {
    const run = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "inputBytes.ts"), ...args], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    return JSON.parse(run.stdout) as NodeInputBytes;
}

test("bench/inputBytes.ts measures Pulumi.prod.yaml's node steps from the inputs the program registers", () => {
    const bytes = measuredInputBytes(["--stack", "prod"]);
    assert.equal(bytes.nodes, 3);
    assert.deepEqual(Object.keys(bytes.perKind).sort(), [
        "nodePreflight",
        "nodeStore",
        "nodeStoreCheck",
        "staleRuleCleanup",
        "staleRuleVerify",
        "tproxyApply",
        "tproxyConfirm",
    ]);
    for (const [kind, kb] of Object.entries(bytes.perKind)) assert.ok(kb > 300, `${kind}: ${kb} bytes is no step at all`);
    // Issue 11 item 8: at most 16 KB of resource inputs per node (the scripts live in the node store).
    assert.ok(bytes.perNode <= 8_500, `${bytes.perNode} bytes of inputs per node (8.1 KB measured): ${JSON.stringify(bytes.perKind)}`);
});

test("bench/inputBytes.ts measures the wave path too: per-node wave steps carry digests, the scripts live in the cluster script store", (t) => {
    // The stack file the task's measurement uses: Pulumi.prod.yaml with every node its own wave, without and with drain.
    const prod = readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8");
    const waveStack = (extra: string): NodeInputBytes => {
        const dir = mkdtempSync(path.join(os.tmpdir(), "input-bytes-wave-"));
        t.after(() => rmSync(dir, { recursive: true, force: true }));
        const wave = prod.replace(/^ {2}# cilium-kpr:migration:\n/m, `  cilium-kpr:migration:\n    waveSize: 1\n${extra}`);
        assert.notEqual(wave, prod, "Pulumi.prod.yaml has the commented-out migration block this test turns on");
        writeFileSync(path.join(dir, "Pulumi.wave.yaml"), wave);
        copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
        return measuredInputBytes(["--stack", "wave", "--stack-dir", dir]);
    };
    const bytes = waveStack("");
    assert.equal(bytes.nodes, 3);
    for (const kind of ["handover", "agentGate", "nodeServices"]) {
        const kb = bytes.perKind[kind];
        assert.ok(kb !== undefined && kb > 300, `${kind}: ${kb} bytes is no step at all`);
        // A fetch-check-run of a digest (two for the handover: create and delete) plus the step's environment; was 9-20 KB.
        assert.ok(kb <= (kind === "handover" ? 1_700 : 1_000), `${kind}: ${kb} bytes per node`);
    }
    // Issue 11 item 8 on the wave path (was 57 KB per node): 10.6 KB measured.
    assert.ok(bytes.perNode <= 11_500, `${bytes.perNode} bytes of inputs per node: ${JSON.stringify(bytes.perKind)}`);

    // With drain every node also has a drain and an uncordon step (create, delete and a no-op update each): 14.3 KB measured.
    const drained = waveStack("    drain: true\n");
    for (const kind of ["drain", "uncordon"]) {
        const kb = drained.perKind[kind];
        assert.ok(kb !== undefined && kb > 300, `${kind}: ${kb} bytes is no step at all`);
    }
    assert.ok(drained.perNode <= 16_000, `${drained.perNode} bytes of inputs per node: ${JSON.stringify(drained.perKind)}`);
});
