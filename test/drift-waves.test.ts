import { strict as assert } from "node:assert";
import { test } from "node:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { plannedSteps, runDriftCheck } from "../tools/driftCheck";
import { readStackFile, rawStackConfig, type StackFile } from "../tools/stackFile";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { clusterFindings, type ClusterObservation } from "../components/drift/clusterFindings";
import type { RepairContext } from "../components/drift/repairs";
import { exitCode, type Finding } from "../components/drift/findings";
import { MIGRATED_LABEL } from "../components/waves/wavePlan";
import { waveStoreEntries } from "../components/waves/waveStoreEntries";
import { STORE_LABEL, storeConfigMapName } from "../components/commands/clusterScriptStore";
import { ROOT } from "./support/stacks";
import { hostToolsMissing } from "../lab/hostTools";
import { Scenario, fixture, type JsonObject } from "./support/kubeproxyScenario";

/*
 * The drift check on the node-by-node (wave) path: a stack stopped after wave 1 (m600) of
 * [[m600], [m601, storage]] expects kube-proxy on m601 and storage and KPR on m600 only; a stack with
 * every wave expects what the single-shot path does, plus the label on every node.
 */

const WAVES = [["m600"], ["m601", "storage"]];

function stackWith(migration: Record<string, unknown>): StackFile {
    const file = readStackFile(ROOT, "prod");
    return { ...file, config: { ...file.config, migration: JSON.stringify(migration) } };
}

async function contextOf(stack: StackFile): Promise<{ config: MigrationConfig; ctx: RepairContext }> {
    const result = validateStackConfig(stack.project, rawStackConfig(stack.config));
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return { config: result.config, ctx: { stack: "prod", steps: await plannedSteps(stack, "prod") } };
}

const agent = (node: string, kpr: boolean) =>
    kpr
        ? { pod: `cilium-${node}`, node, ok: true, checked: true, mode: "True", socketLB: true, nodePort: true }
        : { pod: `cilium-${node}`, node, ok: false, checked: true, mode: "False" };

/** What cluster-observe.sh reports for a healthy stack stopped after wave 1. */
const PARTIAL: ClusterObservation = {
    kubeProxy: {
        daemonSet: { canaryExclusion: false, desired: 2, labelAffinity: true },
        configMap: true,
        pods: [
            { name: "kube-proxy-b", node: "m601" },
            { name: "kube-proxy-c", node: "storage" },
        ],
    },
    agents: [agent("m600", true), agent("m601", false), agent("storage", false)],
    agentsWanted: 3,
    nodes: [
        { name: "m600", migrated: true },
        { name: "m601", migrated: false },
        { name: "storage", migrated: false },
    ],
    errors: [],
};

/** ... and after the last wave. */
const COMPLETE: ClusterObservation = {
    kubeProxy: { daemonSet: null, configMap: false, pods: [] },
    agents: [agent("m600", true), agent("m601", true), agent("storage", true)],
    agentsWanted: 3,
    nodes: ["m600", "m601", "storage"].map((name) => ({ name, migrated: true })),
    errors: [],
};

const summary = (findings: readonly Finding[]) => findings.map((f) => `${f.scope} ${f.status} ${f.kind}`);

test("a stack stopped after wave 1: kube-proxy and KPR off on the later waves' nodes are expected, not drift", async () => {
    const { config, ctx } = await contextOf(stackWith({ waves: WAVES, stopAfterWave: 1 }));
    assert.deepEqual(clusterFindings(config, PARTIAL, ctx), []);
});

test("a stack stopped after wave 1: the migrated node losing its label or getting kube-proxy back, and the affinity lost, are drift", async () => {
    const { config, ctx } = await contextOf(stackWith({ waves: WAVES, stopAfterWave: 1 }));
    const lostLabel = clusterFindings(
        config,
        {
            ...PARTIAL,
            kubeProxy: {
                ...PARTIAL.kubeProxy,
                pods: [...(PARTIAL.kubeProxy.pods as { name: string; node: string }[]), { name: "kube-proxy-a", node: "m600" }],
            },
            nodes: [{ name: "m600", migrated: false }, ...(PARTIAL.nodes as { name: string; migrated: boolean }[]).slice(1)],
        },
        ctx,
    );
    assert.deepEqual(summary(lostLabel), ["m600 drift kube-proxy-back", "m600 drift wave-label"]);
    assert.match(lostLabel[0]!.detail, /^kube-proxy pod kube-proxy-a runs on m600, a migrated node$/);
    assert.match(lostLabel[1]!.detail, /^migrated node m600 lost the label cilium-kpr\.io\/kpr-migrated=true: the pending CiliumNodeConfig selects it again/);
    // The repair is the node's own handover script with its step's environment (idempotent).
    for (const f of lostLabel) assert.match(f.repair!, /(^| )NODE=m600 .*bash components\/waves\/scripts\/node-handover\.sh$/);
    // The stack's settings travel in the script's stored copy, not the step's environment: the repair names them,
    // or the repository's file would run with its own defaults (CILIUM_NAMESPACE kube-system, WAIT_TIMEOUT 300).
    for (const f of lostLabel) assert.match(f.repair!, /^CILIUM_NAMESPACE=default (\S+ )*MIGRATED_LABEL=cilium-kpr\.io\/kpr-migrated (\S+ )*WAIT_TIMEOUT=900 /);

    const affinity = clusterFindings(
        config,
        { ...PARTIAL, kubeProxy: { ...PARTIAL.kubeProxy, daemonSet: { canaryExclusion: false, desired: 3, labelAffinity: false } } },
        ctx,
    );
    assert.deepEqual(summary(affinity), ["cluster drift kube-proxy-back"]);
    assert.match(affinity[0]!.detail, /lost its required node affinity NotIn cilium-kpr\.io\/kpr-migrated=true/);
    assert.match(affinity[0]!.repair!, /MIGRATED_LABEL=cilium-kpr\.io\/kpr-migrated .*bash components\/waves\/scripts\/kube-proxy-label-affinity\.sh$/);

    const agentOff = clusterFindings(config, { ...PARTIAL, agents: [agent("m600", false), agent("m601", false), agent("storage", false)] }, ctx);
    assert.deepEqual(summary(agentOff), ["m600 drift agent-kpr"]);
});

test("a stack stopped after wave 1: a later wave's node labelled, or its agent with KPR beside kube-proxy, is drift handed back", async () => {
    const { config, ctx } = await contextOf(stackWith({ waves: WAVES, stopAfterWave: 1 }));
    const findings = clusterFindings(
        config,
        {
            ...PARTIAL,
            agents: [agent("m600", true), agent("m601", true), agent("storage", false)],
            nodes: [
                { name: "m600", migrated: true },
                { name: "m601", migrated: false },
                { name: "storage", migrated: true },
            ],
        },
        ctx,
    );
    assert.deepEqual(summary(findings), ["storage drift wave-label", "m601 drift agent-kpr"]);
    assert.match(
        findings[0]!.repair!,
        /^kubectl label node storage cilium-kpr\.io\/kpr-migrated-, wait until its kube-proxy pod is Ready, then kubectl -n default delete pod cilium-storage/,
    );
    assert.match(findings[1]!.detail, /whose wave is not declared, reports kube-proxy-replacement True beside kube-proxy/);
});

test("a stack stopped after wave 1: kube-proxy deleted by hand, or missing on a later wave's node, is drift (those nodes are served by nobody)", async () => {
    const { config, ctx } = await contextOf(stackWith({ waves: WAVES, stopAfterWave: 1 }));
    const gone = clusterFindings(config, { ...PARTIAL, kubeProxy: { daemonSet: null, configMap: false, pods: [] } }, ctx);
    assert.deepEqual(summary(gone), ["cluster drift kube-proxy-missing", "cluster drift kube-proxy-missing"]);
    assert.match(gone[0]!.detail, /^DaemonSet kube-system\/kube-proxy is gone before the last wave: m601, storage .* served by neither kube-proxy nor Cilium$/);
    assert.match(gone[1]!.detail, /^ConfigMap kube-system\/kube-proxy is gone before the last wave/);
    // No backup exists before the last wave: re-create it, then put the label affinity back with the step's own script.
    for (const f of gone)
        assert.match(f.repair!, /^re-create kube-proxy as it was installed .* then .*bash components\/waves\/scripts\/kube-proxy-label-affinity\.sh$/);

    const onePodMissing = clusterFindings(config, { ...PARTIAL, kubeProxy: { ...PARTIAL.kubeProxy, pods: [{ name: "kube-proxy-b", node: "m601" }] } }, ctx);
    assert.deepEqual(summary(onePodMissing), ["storage drift kube-proxy-missing"]);
    assert.match(onePodMissing[0]!.detail, /^no kube-proxy pod on storage, whose wave is not declared/);
});

test("every wave declared: kube-proxy gone and KPR everywhere as on the single-shot path, and every node keeps its label", async () => {
    const { config, ctx } = await contextOf(stackWith({ waves: WAVES }));
    assert.deepEqual(clusterFindings(config, COMPLETE, ctx), []);
    // The partial picture is drift once the stack declares every wave.
    assert.deepEqual(summary(clusterFindings(config, PARTIAL, ctx)), [
        "cluster drift kube-proxy-back",
        "cluster drift kube-proxy-back",
        "m601 drift kube-proxy-back",
        "storage drift kube-proxy-back",
        "m601 drift wave-label",
        "storage drift wave-label",
        "m601 drift agent-kpr",
        "storage drift agent-kpr",
    ]);
    const lost = clusterFindings(config, { ...COMPLETE, nodes: [{ name: "m600", migrated: false }, ...COMPLETE.nodes!.slice(1)] } as ClusterObservation, ctx);
    assert.deepEqual(summary(lost), ["m600 drift wave-label"]);
    assert.match(lost[0]!.detail, /with no kube-proxy to take over$/);
    assert.equal(exitCode(lost), 1);
});

test(
    "npm run check's cluster part on a wave stack stopped after wave 1, against the cluster stand-in: clean, then a migrated node's label removed",
    { skip: hostToolsMissing(["jq", "timeout"]) },
    async (t) => {
        const scenario = new Scenario({
            agentStatus: (node) => fixture(node === "m600" ? "cilium-status-kpr-true.json" : "cilium-status-kpr-false.json"),
            settings: { nodeLabels: { m600: { [MIGRATED_LABEL]: "true" } } },
        });
        const dir = mkdtempSync(path.join(tmpdir(), "kpr-drift-waves-"));
        t.after(() => {
            scenario.dispose();
            rmSync(dir, { recursive: true, force: true });
        });
        // kube-proxy as the wave path leaves it after wave 1: the label affinity, no pod on m600.
        const ds = scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject & { spec: { template: { spec: Record<string, unknown> } } };
        ds.spec.template.spec.affinity = {
            nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                    nodeSelectorTerms: [{ matchExpressions: [{ key: MIGRATED_LABEL, operator: "NotIn", values: ["true"] }] }],
                },
            },
        };
        scenario.put("kube-system", "daemonset", "kube-proxy", ds);
        const onM600 = scenario.podsIn("kube-system").find((p) => (p as { spec: { nodeName: string } }).spec.nodeName === "m600") as {
            metadata: { name: string };
        };
        rmSync(path.join(scenario.dir, "objects", "kube-system", "pod", `${onM600.metadata.name}.json`));
        copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
        const stackFile = readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8").replace(
            "  # cilium-kpr:migration:\n",
            "  cilium-kpr:migration:\n    waves: [[m600], [m601, storage]]\n    stopAfterWave: 1\n  # cilium-kpr:migration:\n",
        );
        assert.match(stackFile, /stopAfterWave: 1/);
        writeFileSync(path.join(dir, "Pulumi.prod.yaml"), stackFile);

        // The cluster script store as the store step leaves it (this stack has no drain).
        const written = readStackFile(dir, "prod");
        const validated = validateStackConfig(written.project, rawStackConfig(written.config));
        assert.ok(validated.ok);
        const stored = waveStoreEntries(validated.config);
        for (const e of stored)
            scenario.put("kube-system", "configmap", storeConfigMapName(e.sha256), {
                apiVersion: "v1",
                kind: "ConfigMap",
                metadata: { name: storeConfigMapName(e.sha256), namespace: "kube-system", labels: { [STORE_LABEL]: "true" } },
                immutable: true,
                data: { script: e.text },
            });

        const check = () =>
            runDriftCheck({
                stack: "prod",
                stackDir: dir,
                sshKeyFile: path.join(dir, "no-such-key"),
                env: { ...process.env, PATH: `${path.join(scenario.dir, "bin")}:${process.env.PATH ?? ""}`, FAKE_CLUSTER_DIR: scenario.dir },
            });
        const clean = await check();
        // Only m600 is migrated, so only m600 is checked over SSH (here: no key, so not checked).
        assert.deepEqual(summary(clean.findings), ["m600 unchecked node-access"]);
        assert.deepEqual(clean.scopes, ["cluster", "m600"]);

        scenario.updateSettings({ nodeLabels: {} });
        const lost = await check();
        assert.deepEqual(summary(lost.findings), ["m600 drift wave-label", "m600 unchecked node-access"]);
        assert.equal(exitCode(lost.findings), 1);

        // A store entry deleted by hand, another re-created with other content: the steps that run them would fail closed.
        scenario.updateSettings({ nodeLabels: { m600: { [MIGRATED_LABEL]: "true" } } });
        rmSync(path.join(scenario.dir, "objects", "kube-system", "configmap", `${storeConfigMapName(stored[1]!.sha256)}.json`));
        const altered = scenario.get("kube-system", "configmap", storeConfigMapName(stored[0]!.sha256)) as JsonObject & { data: { script: string } };
        altered.data.script += "# edited\n";
        scenario.put("kube-system", "configmap", storeConfigMapName(stored[0]!.sha256), altered);
        const store = await check();
        assert.deepEqual(summary(store.findings), ["cluster drift script-store", "cluster drift script-store", "m600 unchecked node-access"]);
        assert.match(store.findings[0]!.detail, /^waves\/node-handback\.sh \(sha256 [0-9a-f]{64}\) is missing from the cluster script store/);
        assert.match(
            store.findings[1]!.detail,
            /^configmap\/cilium-kpr-script-[0-9a-f]{64} in kube-system no longer holds the script of the sha256 in its name/,
        );
        assert.match(store.findings[0]!.repair!, /^pulumi up --stack prod --replace 'urn:pulumi:prod::cilium-kpr::.*::cluster-script-store'/);
    },
);
