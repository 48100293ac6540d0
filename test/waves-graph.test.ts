import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { RecordedResource } from "../tools/mockRuntime";
import { STEP, TYPE, WAVE_STEP } from "../components/resourceNames";
import { validateStackConfig } from "../components/config/validate";
import { pendingNodeConfig } from "../components/waves/pendingNodeConfig";
import { planWaves } from "../components/waves/wavePlan";
import { waveSteps } from "../components/waves/waveSteps";
import { find, runProgram } from "./support/program";

/** The cluster script store step's stdin (components/commands/clusterScriptStore.ts clusterStoreStdin). */
interface StoreStdin {
    readonly scripts: readonly { readonly name: string; readonly sha256: string; readonly text: string }[];
}
import { orderingViolations } from "../policy/invariants";
import { PROJECT, rawStack, ROOT, withValue } from "./support/stacks";

const WAVES = [["m600"], ["m601", "storage"]];

/** Custom resources by logical name (the Cilium component and its release share "cilium": take the release). */
function customs(resources: readonly RecordedResource[]): Map<string, RecordedResource> {
    return new Map(resources.filter((r) => r.custom).map((r) => [r.name, r]));
}

/** Everything `name` waits for, directly, through its inputs, or through its parent's dependencies. */
function waitsFor(resources: readonly RecordedResource[], name: string): Set<string> {
    const byKey = new Map(resources.map((r) => [r.key, r]));
    const byName = customs(resources);
    const seen = new Set<string>();
    const walk = (r: RecordedResource) => {
        const deps = [...r.dependsOnKeys, ...Object.values(r.propertyDependencyKeys).flat()];
        if (r.parentKey !== undefined) {
            const parent = byKey.get(r.parentKey);
            if (parent && !parent.custom) deps.push(...parent.dependsOnKeys);
        }
        for (const key of deps) {
            const dep = byKey.get(key);
            if (!dep) continue;
            // A component counts as done when its children are: walk into them.
            const members = dep.custom ? [dep] : resources.filter((c) => c.parentKey === dep.key);
            for (const m of members) {
                if (!seen.has(m.name)) {
                    seen.add(m.name);
                    walk(m);
                }
            }
        }
    };
    walk(byName.get(name)!);
    return seen;
}

/** The custom resources a plan step stands for: the first to run and the last. */
function span(step: string): [string, string] {
    const tproxy = /^tproxy-(.+)$/.exec(step);
    if (tproxy) return [STEP.tproxyApply(tproxy[1]!), STEP.tproxyConfirm(tproxy[1]!)];
    return [step, step];
}

async function waveProgram(drain: boolean) {
    const outcome = await runProgram("prod", { migration: { waves: WAVES, drain } });
    assert.equal(outcome.error, undefined, String(outcome.error));
    return outcome.resources;
}

test("the graph runs the planned steps in the planned order: each node's chain, wave after wave, final steps last", async () => {
    for (const drain of [true, false]) {
        const resources = await waveProgram(drain);
        const plan = waveSteps(
            WAVES.map((nodes, i) => ({ index: i + 1, nodes })),
            { drain, tproxy: true },
        );
        const names = customs(resources);
        for (const step of plan) for (const r of span(step.name)) assert.ok(names.has(r), `${r} is in the program`);
        const nodeOf = (step: string) => WAVES.flat().find((n) => step.endsWith(`-${n}`));
        let pairs = 0;
        plan.forEach((a, i) =>
            plan.slice(i + 1).forEach((b) => {
                const sameNodeChain = a.wave === b.wave && a.wave > 0 && a.wave <= WAVES.length && nodeOf(a.name) === nodeOf(b.name);
                const laterWave = a.wave > 0 && b.wave > a.wave;
                if (!sameNodeChain && !laterWave) return;
                pairs++;
                assert.ok(waitsFor(resources, span(b.name)[0]).has(span(a.name)[1]), `${b.name} runs after ${a.name}`);
            }),
        );
        assert.ok(pairs > 40, `checked ${pairs} ordered pairs`);
        // Nodes of one wave do not wait for each other.
        assert.ok(!waitsFor(resources, WAVE_STEP.handover("storage")).has(WAVE_STEP.handover("m601")));
        assert.ok(!waitsFor(resources, WAVE_STEP.handover("m601")).has(WAVE_STEP.handover("storage")));
        // Before the first wave: CRD preflight and every check -> pending CiliumNodeConfig -> values snapshot -> release
        // (final values) -> pending gate (also after kube-proxy's affinity).
        const first = waitsFor(resources, span(plan.find((s) => s.wave === 1)!.name)[0]);
        for (const r of [WAVE_STEP.pendingGate, WAVE_STEP.kubeProxyLabelAffinity, STEP.ciliumRelease, STEP.valuesSnapshot, WAVE_STEP.pendingNodeConfig]) {
            assert.ok(first.has(r), `wave 1 waits for ${r}`);
        }
        const release = waitsFor(resources, STEP.ciliumRelease);
        for (const r of [STEP.valuesSnapshot, WAVE_STEP.pendingNodeConfig, WAVE_STEP.nodeConfigCrdCheck, STEP.operatorPreflight, STEP.nodePreflight("m600")]) {
            assert.ok(release.has(r), `the release waits for ${r}`);
        }
        assert.ok(waitsFor(resources, STEP.valuesSnapshot).has(WAVE_STEP.pendingNodeConfig), "destroy restores the values before deleting the pending object");
        assert.ok(waitsFor(resources, STEP.verification).has(STEP.kubeProxyRemoval));
        assert.equal(names.has(STEP.kubeProxyCanaryExclusion), false);
    }
});

test("the pending CiliumNodeConfig is a Kubernetes object in the preview; the release carries the final values", async () => {
    const resources = await waveProgram(true);
    const cnc = find(resources, "kubernetes:cilium.io/v2:CiliumNodeConfig", WAVE_STEP.pendingNodeConfig);
    const config = validateStackConfig(PROJECT, withValue(rawStack("prod"), "migration.waves", WAVES));
    assert.ok(config.ok);
    const expected = pendingNodeConfig(config.config.cilium);
    assert.deepEqual({ apiVersion: cnc.inputs.apiVersion, kind: cnc.inputs.kind, metadata: cnc.inputs.metadata, spec: cnc.inputs.spec }, expected);
    assert.equal(cnc.providerKey?.includes(STEP.provider), true, "through the stack's cluster provider");
    const release = find(resources, "kubernetes:helm.sh/v3:Release", STEP.ciliumRelease);
    const values = release.inputs.values as Record<string, unknown>;
    assert.equal(values.kubeProxyReplacement, true);
    assert.equal(values.kubeProxyReplacementHealthzBindAddr, "0.0.0.0:10256");
    assert.deepEqual(values.socketLB, { enabled: true });
    assert.deepEqual(
        planWaves(config.config.migration, config.config.nodes).map((w) => w.nodes),
        WAVES,
    );
});

test("every wave step that undoes itself on delete is replaced delete-first; scripts get the node and label", async () => {
    const resources = await waveProgram(true);
    // The cluster script store is the one exception, by design: its delete removes only what its own run
    // labelled and a new create relabels everything first, so it is replaced create-first and keeps every
    // version (test/waves-script-store.test.ts runs that replacement).
    const withDelete = resources.filter((r) => r.custom && typeof r.inputs.delete === "string" && r.name !== WAVE_STEP.clusterScriptStore);
    assert.ok(withDelete.length >= 10);
    for (const r of withDelete) assert.equal(r.deleteBeforeReplace, true, r.name);
    assert.notEqual(find(resources, "command:local:Command", WAVE_STEP.clusterScriptStore).deleteBeforeReplace, true);
    assert.equal(find(resources, "kubernetes:cilium.io/v2:CiliumNodeConfig").deleteBeforeReplace, true);
    const handover = find(resources, "command:local:Command", WAVE_STEP.handover("m601"));
    const env = handover.inputs.environment as Record<string, string>;
    assert.equal(env.NODE, "m601");
    assert.ok("CLUSTER_UID" in env, "pinned to the cluster the stack recorded");
    // The label and the namespace are the stack's settings: the copy of the script the step fetches carries them.
    const stored = (JSON.parse(String(find(resources, "command:local:Command", WAVE_STEP.clusterScriptStore).inputs.stdin)) as StoreStdin).scripts;
    for (const [phase, script] of [
        ["create", "node-handover"],
        ["delete", "node-handback"],
    ] as const) {
        const text = String(handover.inputs[phase]);
        assert.match(text, new RegExp(`^# cilium-kpr: runs waves/${script}\\.sh from the cluster script store\n`), "its first line names the script");
        const copy = stored.find((e) => text.includes(`s=${e.sha256} `));
        assert.equal(copy?.name, `waves/${script}`);
        assert.match(copy.text, /^MIGRATED_LABEL='cilium-kpr\.io\/kpr-migrated'$/m);
        assert.match(copy.text, /^CILIUM_NAMESPACE='default'$/m);
    }
});

test("a node's cleanup and tproxy keep their URN (name, type, parent) from the single-shot path", async () => {
    const single = await runProgram("prod");
    const waves = await waveProgram(false);
    for (const node of ["m600", "m601", "storage"]) {
        for (const [type, name] of [
            ["command:remote:Command", STEP.staleRuleCleanup(node)],
            [TYPE.nodeTproxy, STEP.nodeTproxy(node)],
            ["command:remote:Command", STEP.tproxyApply(node)],
        ] as const) {
            const a = find(single.resources, type, name);
            const b = find(waves, type, name);
            assert.equal(b.parentKey, a.parentKey, `${name} keeps its parent`);
        }
    }
});

test("the offline plan shows the migration waves, their nodes and steps, and writes each wave step's scripts", (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "waves-plan-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
    const prod = readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8");
    writeFileSync(
        path.join(dir, "Pulumi.prod.yaml"),
        prod.replace("  cilium-kpr:nodes:\n", "  cilium-kpr:migration:\n    waves: [[m600], [m601, storage]]\n    drain: true\n  cilium-kpr:nodes:\n"),
    );
    const out = path.join(dir, "out");
    const run = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools", "plan.ts"), "--stack", "prod", "--stack-dir", dir, "--out", out], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const text = readFileSync(path.join(out, "plan.txt"), "utf8");
    assert.match(text, /Node-by-node migration: 2 waves \(label cilium-kpr\.io\/kpr-migrated=true\); per node: cordon\+drain, label \+ kube-proxy gone/);
    assert.match(text, /^ {2}migration wave 1 \(canary\): m600$/m);
    assert.match(text, /^ {2}migration wave 2: m601, storage \(after wave 1 passed\)$/m);
    assert.match(text, /kpr-handover-m601/);
    for (const file of [`${WAVE_STEP.handover("m600")}.create.sh`, `${WAVE_STEP.handover("m600")}.delete.sh`, `${WAVE_STEP.drain("storage")}.delete.sh`]) {
        assert.ok(existsSync(path.join(out, "steps", file)), file);
    }
});

test("a canary stack moving to waves labels its canary nodes before the pending CiliumNodeConfig exists", async () => {
    const { resources, error } = await runProgram("prod", { migration: { canaryNodes: ["m600"], waves: WAVES } });
    assert.equal(error, undefined, String(error));
    const adoption = find(resources, "command:local:Command", WAVE_STEP.canaryAdoption);
    assert.equal((adoption.inputs.environment as Record<string, string>).CANARY_NODES, "m600");
    assert.ok(waitsFor(resources, WAVE_STEP.pendingNodeConfig).has(WAVE_STEP.canaryAdoption));
    assert.ok(waitsFor(resources, STEP.ciliumRelease).has(WAVE_STEP.canaryAdoption));
    const plain = await waveProgram(false);
    assert.equal(customs(plain).has(WAVE_STEP.canaryAdoption), false);
});

test("migration.stopAfterWave declares the waves up to it and no final step: kube-proxy stays for the other nodes", async () => {
    const { resources, error } = await runProgram("prod", { migration: { waves: WAVES, stopAfterWave: 1 } });
    assert.equal(error, undefined, String(error));
    const names = customs(resources);
    assert.ok(names.has(WAVE_STEP.handover("m600")));
    for (const absent of [
        WAVE_STEP.handover("m601"),
        WAVE_STEP.handover("storage"),
        STEP.kprGate,
        STEP.kubeProxyRemoval,
        STEP.verification,
        STEP.staleRuleCleanup("m601"),
    ]) {
        assert.equal(names.has(absent), false, absent);
    }
});

test("the policy pack's ordering invariant holds for the wave program, and catches a cleanup that does not wait for its node's handover", async () => {
    const resources = await waveProgram(true);
    const byKey = new Map(resources.map((r) => [r.key, r]));
    const customsUnder = (key: string): RecordedResource[] => {
        const r = byKey.get(key);
        if (!r) return [];
        return r.custom ? [r] : resources.filter((c) => c.parentKey === key).flatMap((c) => customsUnder(c.key));
    };
    const views = resources.map((r) => ({
        urn: r.key,
        type: r.type,
        name: r.name,
        props: r.inputs,
        dependsOn: r.dependsOnKeys.flatMap(customsUnder).map((d) => d.key),
    }));
    assert.deepEqual(orderingViolations(views), []);
    const cut = views.map((v) => (v.name === STEP.staleRuleCleanup("m601") ? { ...v, dependsOn: [] } : v));
    assert.deepEqual(
        orderingViolations(cut).map((v) => v.message),
        [
            `${STEP.staleRuleCleanup("m601")} does not depend on ${WAVE_STEP.handover("m601")}: kube-proxy must have left m601 and its agent must serve it before the rules go`,
            `${STEP.staleRuleCleanup("m601")} does not depend on ${WAVE_STEP.agentGate("m601")}: kube-proxy must have left m601 and its agent must serve it before the rules go`,
        ],
    );
});
