import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MIGRATED_LABEL } from "../components/waves/wavePlan";
import { scriptPath, scriptText } from "../components/commands/scripts";
import {
    clusterStoreEntry,
    clusterStoreStdin,
    SETTINGS_HEADER,
    STORE_LABEL,
    STORE_NAMESPACE,
    STORE_WRITER_LABEL,
    storeConfigMapName,
    storedScriptsOf,
    storeRunnerDigest,
    storeRunnerText,
    type ClusterStoreEntry,
} from "../components/commands/clusterScriptStore";
import { scheduleKubeProxy, startAgent, type WaveClusterState } from "./support/fakeWaveCluster";
import { REFERENCE_NODES, referenceWaveState, stepSummary } from "./support/referenceWaveCluster";
import { find, runProgram } from "./support/program";
import { WAVE_STEP } from "../components/resourceNames";
import { waveStoreEntries } from "../components/waves/waveStoreEntries";
import { validateStackConfig } from "../components/config/validate";
import { rawStackConfig, readStackFile } from "../tools/stackFile";
import type { RecordedResource } from "../tools/mockRuntime";

/*
 * The cluster script store (components/commands/clusterScriptStore.ts): the store step's scripts and
 * the per-node steps' fetch-check-run texts, run for real with bash against the stand-in kubectl of
 * test/support/fakeWaveCluster.ts, and the program's wave steps checked to carry digests, not scripts.
 */

const ROOT = join(__dirname, "..");
const NODES = REFERENCE_NODES;
const UID = "3f6c1d2e-0000-4000-8000-000000000001";

interface Run {
    status: number;
    summary: Record<string, unknown>;
    stdout: string;
    stderr: string;
}

class StoreLab {
    readonly dir = mkdtempSync(join(tmpdir(), "script-store-"));
    readonly stateFile = join(this.dir, "state.json");
    private readonly bin = join(this.dir, "bin");

    constructor() {
        mkdirSync(this.bin);
        symlinkSync(join(ROOT, "test", "support", "fake-wave-kubectl.sh"), join(this.bin, "kubectl"));
        const state = referenceWaveState({ kubeSystemUid: UID });
        scheduleKubeProxy(state);
        for (const n of NODES) startAgent(state, n);
        writeFileSync(this.stateFile, JSON.stringify(state));
    }

    state(): WaveClusterState {
        return JSON.parse(readFileSync(this.stateFile, "utf8")) as WaveClusterState;
    }
    update(change: (s: WaveClusterState) => void): void {
        const s = this.state();
        change(s);
        writeFileSync(this.stateFile, JSON.stringify(s));
    }
    /** kubectl calls so far, one argv each. */
    calls(): string[][] {
        return readFileSync(`${this.stateFile}.calls`, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l) as string[]);
    }

    /** Runs a command text as the provider does (`/bin/bash -c TEXT`, the step's environment). */
    text(text: string, env: Record<string, string> = {}, stdin?: string): Run {
        return this.spawn(["-c", text], env, stdin);
    }
    /** Runs a repository script as a file. */
    file(
        script: "waves/cluster-script-store" | "waves/cluster-script-store-remove" | "waves/kube-proxy-label-affinity",
        env: Record<string, string> = {},
        stdin?: string,
    ): Run {
        return this.spawn([scriptPath(script)], env, stdin);
    }
    private spawn(args: string[], env: Record<string, string>, stdin: string | undefined): Run {
        const result = spawnSync("/bin/bash", args, {
            encoding: "utf8",
            input: stdin ?? "",
            env: {
                PATH: `${this.bin}:${process.env.PATH}`,
                FAKE_WAVE_STATE: this.stateFile,
                CILIUM_NAMESPACE: "default",
                WAIT_TIMEOUT: "20",
                CLUSTER_UID: UID,
                ...env,
            },
        });
        return { status: result.status ?? -1, summary: stepSummary(result, args.join(" ").slice(0, 80)), stdout: result.stdout, stderr: result.stderr };
    }
    storeNames(): string[] {
        return (this.state().configMaps ?? []).map((c) => c.metadata.name).sort();
    }
    labelled(node: string): boolean {
        return this.state().nodes[node]!.labels[MIGRATED_LABEL] === "true";
    }
    close(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

function ok(run: Run): Record<string, unknown> {
    assert.equal(run.status, 0, `${JSON.stringify(run.summary)}\n${run.stderr}`);
    assert.equal(run.summary.ok, true);
    return run.summary;
}
function failed(run: Run, message: RegExp): void {
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.summary.ok, false);
    assert.match(String(run.summary.error), message);
}

/** A changed version of a script: same job, one more line on stderr (a stand-in for any later edit). */
function changed(entry: ClusterStoreEntry): ClusterStoreEntry {
    const text = entry.text.replace("set -euo pipefail\n", 'set -euo pipefail\necho "NEW VERSION" >&2\n');
    assert.notEqual(text, entry.text);
    return { name: entry.name, text, sha256: sha(text), settings: entry.settings };
}
function sha(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}

/** A stored copy split into the repository's script and the settings baked after its shebang (bakedSettings). */
function unbaked(text: string): { script: string; settings: Record<string, string> } {
    const lines = text.split("\n");
    if (lines[1] !== SETTINGS_HEADER) return { script: text, settings: {} };
    let end = 2;
    const settings: Record<string, string> = {};
    for (let m; (m = /^([A-Z][A-Z0-9_]*)='([^']*)'$/.exec(lines[end] ?? "")); end++) settings[m[1]!] = m[2]!;
    return { script: [lines[0], ...lines.slice(end)].join("\n"), settings };
}

const HANDOVER = clusterStoreEntry("waves/node-handover");
const HANDBACK = clusterStoreEntry("waves/node-handback");
const GATE = clusterStoreEntry("waves/node-kpr-gate");
const NODE_ENV = { NODE: "m600" };

test("the store step writes each script once as an immutable ConfigMap named by its sha256; a re-run writes nothing", (t) => {
    const lab = new StoreLab();
    t.after(() => lab.close());
    const stdin = clusterStoreStdin([HANDOVER, HANDBACK, GATE, HANDOVER]);
    const first = ok(lab.file("waves/cluster-script-store", {}, stdin));
    assert.deepEqual((first.created as string[]).sort(), ["waves/node-handback", "waves/node-handover", "waves/node-kpr-gate"]);
    assert.match(String(first.writer), /^[0-9a-f]{16}$/);
    assert.deepEqual(lab.storeNames(), [HANDOVER, HANDBACK, GATE].map((e) => storeConfigMapName(e.sha256)).sort());
    for (const cm of lab.state().configMaps!) {
        assert.equal(cm.immutable, true);
        assert.equal(cm.metadata.namespace, "kube-system");
        assert.equal(cm.metadata.labels?.[STORE_LABEL], "true");
        assert.equal(cm.metadata.labels?.[STORE_WRITER_LABEL], first.writer);
        assert.equal(cm.metadata.name, storeConfigMapName(sha(cm.data!.script!)), "named by the sha256 of exactly what it holds");
    }
    assert.equal(lab.state().configMaps!.find((c) => c.metadata.name === storeConfigMapName(GATE.sha256))!.data!.script, scriptText("waves/node-kpr-gate"));
    const again = ok(lab.file("waves/cluster-script-store", {}, stdin));
    assert.deepEqual(again.created, []);
    assert.equal((again.present as string[]).length, 3);
    assert.equal(lab.calls().filter((c) => c[0] === "create").length, 3, "nothing created the second time");
});

test("a step runs its script from the store: fetched by digest, checked, run with the step's environment", (t) => {
    const lab = new StoreLab();
    t.after(() => lab.close());
    ok(lab.file("waves/cluster-script-store", {}, clusterStoreStdin([HANDOVER, HANDBACK, GATE])));
    ok(lab.file("waves/kube-proxy-label-affinity"));
    const handover = ok(lab.text(storeRunnerText(HANDOVER), NODE_ENV));
    assert.equal(handover.changed, true);
    assert.equal(lab.labelled("m600"), true);
    assert.equal(ok(lab.text(storeRunnerText(GATE), { ...NODE_ENV, PENDING_NODE_CONFIG: "cilium-kpr-kube-proxy-pending" })).node, "m600");
    assert.equal(ok(lab.text(storeRunnerText(HANDBACK), NODE_ENV)).changed, true);
    assert.equal(lab.labelled("m600"), false);
    // The fetched script still refuses another cluster itself.
    failed(lab.text(storeRunnerText(HANDOVER), { ...NODE_ENV, CLUSTER_UID: "another-cluster" }), /^wrong cluster: .*nothing was changed$/);
    assert.equal(lab.labelled("m600"), false);
});

test("a stored copy carries the stack's settings: they win over the step's environment, which holds only the node", (t) => {
    const lab = new StoreLab();
    t.after(() => lab.close());
    const settings = { CILIUM_NAMESPACE: "default", KUBE_PROXY_NAMESPACE: "kube-system", MIGRATED_LABEL, WAIT_TIMEOUT: "20" };
    const baked = clusterStoreEntry("waves/node-handover", settings);
    assert.notEqual(baked.sha256, HANDOVER.sha256, "a settings change is a new copy, named by its own digest");
    assert.deepEqual(unbaked(baked.text), { script: HANDOVER.text, settings });
    ok(lab.file("waves/cluster-script-store", {}, clusterStoreStdin([HANDOVER, baked])));
    ok(lab.file("waves/kube-proxy-label-affinity"));
    // The environment names another Cilium namespace: the repository's copy looks for the agent there and fails ...
    const elsewhere = { ...NODE_ENV, CILIUM_NAMESPACE: "elsewhere" };
    const plain = lab.text(storeRunnerText(HANDOVER), elsewhere);
    assert.equal(plain.status, 1, plain.stderr);
    assert.equal(lab.labelled("m600"), false, "the failed handover undid its label");
    // ... the stack's copy uses the namespace it carries.
    assert.equal(ok(lab.text(storeRunnerText(baked), elsewhere)).changed, true);
    assert.equal(lab.labelled("m600"), true);
});

test("a delete recorded before a script change still runs the old script after the store gained the new version", (t) => {
    const lab = new StoreLab();
    t.after(() => lab.close());
    ok(lab.file("waves/kube-proxy-label-affinity"));
    // up with version 1: the store, then the handover; state records the handback runner of version 1.
    const v1 = ok(lab.file("waves/cluster-script-store", {}, clusterStoreStdin([HANDOVER, HANDBACK])));
    ok(lab.text(storeRunnerText(HANDOVER), NODE_ENV));
    const recordedDelete = storeRunnerText(HANDBACK);
    // The repository changes both scripts; an `up` updates the store (its create re-runs with the new set).
    const [handover2, handback2] = [changed(HANDOVER), changed(HANDBACK)];
    const v2 = ok(lab.file("waves/cluster-script-store", { PULUMI_COMMAND_STDOUT: JSON.stringify(v1) }, clusterStoreStdin([handover2, handback2])));
    assert.deepEqual((v2.created as string[]).sort(), ["waves/node-handback", "waves/node-handover"]);
    assert.equal(lab.storeNames().length, 4, "both versions are kept");
    // The store is replaced (`pulumi up --replace`, create-first): the old delete removes nothing.
    const v3 = ok(lab.file("waves/cluster-script-store", {}, clusterStoreStdin([handover2, handback2])));
    assert.deepEqual(ok(lab.file("waves/cluster-script-store-remove", { PULUMI_COMMAND_STDOUT: `${JSON.stringify(v2)}\n` })).removed, []);
    assert.equal(lab.storeNames().length, 4);

    // destroy: the recorded (version 1) delete runs version 1 exactly.
    const back = lab.text(recordedDelete, NODE_ENV);
    assert.equal(ok(back).changed, true);
    assert.doesNotMatch(back.stderr, /NEW VERSION/);
    assert.equal(lab.labelled("m600"), false);
    // (The new version is what a step created now would run.)
    const now = lab.text(storeRunnerText(handover2), NODE_ENV);
    assert.equal(ok(now).changed, true);
    assert.match(now.stderr, /NEW VERSION/);

    // Last, the store's own delete (after every step's) removes every version and nothing else.
    lab.update((s) => s.configMaps!.push({ metadata: { name: "unrelated", namespace: "kube-system" }, data: { a: "b" } }));
    const removed = ok(lab.file("waves/cluster-script-store-remove", { PULUMI_COMMAND_STDOUT: JSON.stringify(v3) }));
    assert.equal((removed.removed as string[]).length, 4);
    assert.deepEqual(lab.storeNames(), ["unrelated"]);
});

test("a missing or altered store entry fails closed: nothing runs, and the error says where the script should be", (t) => {
    const lab = new StoreLab();
    t.after(() => lab.close());
    ok(lab.file("waves/cluster-script-store", {}, clusterStoreStdin([HANDOVER, GATE])));
    ok(lab.file("waves/kube-proxy-label-affinity"));
    const name = storeConfigMapName(HANDOVER.sha256);
    const message = new RegExp(
        `^waves/node-handover\\.sh \\(sha256 ${HANDOVER.sha256}\\) is missing from the cluster script store \\(configmap/${name} in kube-system\\) of the current context, or differs; nothing was run`,
    );
    const before = lab.calls().length;
    // Deleted and re-created by hand with other content (immutable forbids editing it in place).
    lab.update((s) => (s.configMaps!.find((c) => c.metadata.name === name)!.data!.script = HANDOVER.text.replace("kc label node", "kc annotate node")));
    const tampered = lab.text(storeRunnerText(HANDOVER), NODE_ENV);
    failed(tampered, message);
    assert.match(tampered.stderr, /cilium-kpr: waves\/node-handover\.sh .* nothing was run/);
    assert.deepEqual(lab.calls().slice(before), [["-n", "kube-system", "get", "configmap", name, "-o", "json"]], "only the fetch ran");
    assert.equal(lab.labelled("m600"), false);

    // Removed by hand: kubectl's NotFound on stderr, the same summary.
    lab.update((s) => (s.configMaps = s.configMaps!.filter((c) => c.metadata.name !== name)));
    const missing = lab.text(storeRunnerText(HANDOVER), { ...NODE_ENV, KUBECTL_CONTEXT: "prod" });
    failed(missing, /is missing from the cluster script store \(configmap\/\S+ in kube-system\) of prod, or differs; nothing was run/);
    assert.match(missing.stderr, new RegExp(`Error from server \\(NotFound\\): configmaps "${name}" not found`));
    assert.equal(lab.labelled("m600"), false);

    // The repair: the store step again (an update or `pulumi up --replace`) puts the entry back, then the step runs.
    assert.deepEqual(ok(lab.file("waves/cluster-script-store", {}, clusterStoreStdin([HANDOVER, GATE]))).created, ["waves/node-handover"]);
    ok(lab.text(storeRunnerText(HANDOVER), NODE_ENV));
    assert.equal(lab.labelled("m600"), true);
});

test("the store step refuses another cluster, a ConfigMap that is not ours, and a text that does not match its digest", (t) => {
    const lab = new StoreLab();
    t.after(() => lab.close());
    const stdin = clusterStoreStdin([HANDOVER]);
    failed(lab.file("waves/cluster-script-store", { CLUSTER_UID: "another-cluster" }, stdin), /^wrong cluster: .*nothing was changed$/);
    assert.deepEqual(lab.storeNames(), []);
    const bad = JSON.stringify({ scripts: [{ name: HANDOVER.name, sha256: HANDOVER.sha256, text: `${HANDOVER.text}\n` }] });
    failed(lab.file("waves/cluster-script-store", {}, bad), /waves\/node-handover: its text does not have sha256/);
    assert.deepEqual(lab.storeNames(), []);
    const name = storeConfigMapName(HANDOVER.sha256);
    lab.update((s) => (s.configMaps = [{ metadata: { name, namespace: "kube-system" }, data: { script: "someone else's" } }]));
    failed(
        lab.file("waves/cluster-script-store", {}, stdin),
        /configmap\/cilium-kpr-script-[0-9a-f]{64} in kube-system was not created by this program .*nothing was written over it/,
    );
    assert.equal(lab.state().configMaps![0]!.data!.script, "someone else's");
    // The delete without a recorded writer id removes nothing and says how to remove the store by hand.
    failed(
        lab.file("waves/cluster-script-store-remove", {}),
        /names no writer id; nothing was removed\. .*kubectl -n kube-system delete configmap -l cilium-kpr\.io\/cluster-script-store=true/,
    );
});

function customs(resources: readonly RecordedResource[]): RecordedResource[] {
    return resources.filter((r) => r.custom);
}

test("the wave stack's per-node cluster steps carry a digest, not their script; the store step carries each script once", async () => {
    const { resources, error } = await runProgram("prod", { migration: { waves: [["m600"], ["m601", "storage"]], drain: true } });
    assert.equal(error, undefined, String(error));
    const store = find(resources, "command:local:Command", WAVE_STEP.clusterScriptStore);
    const stored = (JSON.parse(String(store.inputs.stdin)) as { scripts: { name: string; sha256: string; text: string }[] }).scripts;
    assert.deepEqual(stored.map((s) => s.name).sort(), [
        "waves/node-drain",
        "waves/node-handback",
        "waves/node-handover",
        "waves/node-kpr-gate",
        "waves/node-services",
        "waves/node-uncordon",
    ]);
    // Each is the repository's script with the stack's settings after its shebang (the steps' environments leave them out).
    for (const s of stored) {
        const { script, settings } = unbaked(s.text);
        assert.equal(script, scriptText(s.name as "waves/node-handover"));
        assert.deepEqual(settings, {
            CILIUM_NAMESPACE: "default",
            KUBE_PROXY_DAEMONSET: "kube-proxy",
            KUBE_PROXY_NAMESPACE: "kube-system",
            MIGRATED_LABEL,
            WAIT_TIMEOUT: "900",
            ...(s.name === "waves/node-drain" ? { DRAIN_TIMEOUT: "600" } : {}),
            ...(s.name === "waves/node-kpr-gate" ? { PENDING_NODE_CONFIG: "cilium-kpr-kube-proxy-pending" } : {}),
        });
    }
    const byKey = new Map(resources.map((r) => [r.key, r]));
    let perNode = 0;
    for (const node of NODES) {
        for (const name of [
            WAVE_STEP.drain(node),
            WAVE_STEP.handover(node),
            WAVE_STEP.agentGate(node),
            WAVE_STEP.nodeServices(node),
            WAVE_STEP.uncordon(node),
        ]) {
            const step = find(resources, "command:local:Command", name);
            perNode++;
            assert.deepEqual(Object.keys(step.inputs.environment as object).sort(), ["CLUSTER_UID", "NODE"], `${name}: only what differs per node`);
            assert.ok(
                step.dependsOnKeys.some((k) => byKey.get(k)?.name === WAVE_STEP.clusterScriptStore),
                `${name} depends on the store (exists before it, removed after its delete)`,
            );
            for (const phase of ["create", "delete"] as const) {
                const input = step.inputs[phase];
                if (input === undefined) continue;
                assert.equal(typeof input, "string");
                const text = input as string;
                const digest = /^s=([0-9a-f]{64}) /m.exec(text)?.[1];
                const entry = stored.find((s) => s.sha256 === digest);
                assert.ok(entry, `${name} ${phase} fetches a script the store holds`);
                assert.equal(text, storeRunnerText({ name: entry.name as "waves/node-handover", sha256: entry.sha256 }));
                assert.ok(text.length < 1000, `${name} ${phase}: ${text.length} bytes`);
                assert.ok(!text.includes("wave-lib.sh: the prelude"), "no prelude in a per-node step");
            }
        }
    }
    assert.equal(perNode, 15);
    assert.equal(
        customs(resources).filter((r) => typeof r.inputs.stdin === "string" && r.inputs.stdin.includes("wave-lib.sh: the prelude")).length,
        1,
        "the scripts are in one resource",
    );
});

test("the plan reads a runner text's digest and a store step's scripts with the parsers beside their builders", () => {
    assert.equal(storeRunnerDigest(storeRunnerText(HANDOVER)), HANDOVER.sha256);
    assert.equal(storeRunnerDigest(scriptText("waves/node-handover")), undefined, "a carried script fetches nothing");
    assert.equal(storeRunnerDigest(storeRunnerText(HANDOVER).replace("from the cluster script store", "from elsewhere")), undefined);
    assert.deepEqual(
        storedScriptsOf(clusterStoreStdin([HANDOVER, GATE, HANDOVER]))?.map((e) => e.sha256),
        [HANDOVER.sha256, GATE.sha256].sort(),
        "each stored script once, in digest order",
    );
    assert.equal(storedScriptsOf('{"other":1}'), undefined);
});

test("the offline plan writes each stored script under steps/cluster-scripts/<sha256>.sh and names it in the step's file", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "script-store-plan-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(join(ROOT, "Pulumi.yaml"), join(dir, "Pulumi.yaml"));
    const prod = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
    writeFileSync(join(dir, "Pulumi.prod.yaml"), prod.replace("  cilium-kpr:nodes:\n", "  cilium-kpr:migration:\n    waveSize: 1\n  cilium-kpr:nodes:\n"));
    const out = join(dir, "out");
    const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "tools", "plan.ts"), "--stack", "prod", "--stack-dir", dir, "--out", out], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    // The store's copy of the handback for this stack: the repository's script with the stack's settings baked in.
    const stack = readStackFile(dir, "prod");
    const validated = validateStackConfig(stack.project, rawStackConfig(stack.config));
    assert.ok(validated.ok);
    const handback = waveStoreEntries(validated.config).find((e) => e.name === "waves/node-handback")!;
    assert.equal(unbaked(handback.text).script, scriptText("waves/node-handback"));
    const step = readFileSync(join(out, "steps", `${WAVE_STEP.handover("m601")}.delete.sh`), "utf8");
    assert.ok(step.includes(`# the script it fetches by sha256 and runs: steps/cluster-scripts/${handback.sha256}.sh`), step);
    assert.equal(readFileSync(join(out, "steps", "cluster-scripts", `${handback.sha256}.sh`), "utf8"), handback.text);
    assert.equal(readdirSync(join(out, "steps", "cluster-scripts")).length, 4, "handover, handback, gate, node check (no drain on this stack)");
});

test("the store's names in the shell scripts (script-store-names.sh) are the program's", () => {
    const run = spawnSync(
        "bash",
        [
            "-c",
            'source "$1" && printf "%s\\n" "$STORE_NAMESPACE" "$STORE_LABEL" "$WRITER_LABEL" "${STORE_CONFIGMAP_PREFIX}x"',
            "-",
            scriptPath("waves/script-store-names"),
        ],
        { encoding: "utf8" },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split("\n"), [STORE_NAMESPACE, STORE_LABEL, STORE_WRITER_LABEL, storeConfigMapName("x")]);
});
