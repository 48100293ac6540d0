import { test } from "node:test";
import assert from "node:assert/strict";
import { validateStackConfig, type RawStackConfig } from "../components/config/validate";
import { migratedNodes } from "../components/config/migratedNodes";
import { MIGRATED_LABEL, planWaves } from "../components/waves/wavePlan";
import { kubeProxyExclusionTerm, pendingNodeConfig } from "../components/waves/pendingNodeConfig";
import { downActions, upActions, waveSteps } from "../components/waves/waveSteps";
import { WAVE_STEP } from "../components/resourceNames";
import { PROJECT, rawStack, withValue, withValues } from "./support/stacks";

function issuesOf(raw: RawStackConfig): string[] {
    const result = validateStackConfig(PROJECT, raw);
    return result.ok ? [] : result.issues.map((i) => `${i.key}: ${i.message}`);
}

function configOf(raw: RawStackConfig) {
    const result = validateStackConfig(PROJECT, raw);
    assert.ok(result.ok, JSON.stringify(result.ok ? [] : result.issues));
    return result.config;
}

test("migration.waves is taken as given; waveSize cuts the nodes in their order", () => {
    const waves = configOf(withValue(rawStack("prod"), "migration.waves", [["m600"], ["m601", "storage"]]));
    assert.deepEqual(planWaves(waves.migration, waves.nodes), [
        { index: 1, nodes: ["m600"] },
        { index: 2, nodes: ["m601", "storage"] },
    ]);
    const one = configOf(withValue(rawStack("prod"), "migration.waveSize", 1));
    assert.deepEqual(
        planWaves(one.migration, one.nodes).map((w) => w.nodes),
        [["m600"], ["m601"], ["storage"]],
    );
    const two = configOf(withValue(rawStack("prod"), "migration.waveSize", 2));
    assert.deepEqual(
        planWaves(two.migration, two.nodes).map((w) => w.nodes),
        [["m600", "m601"], ["storage"]],
    );
});

test("wave settings: unknown, repeated and left-out nodes, both forms, KPR off, all reported at once with their keys", () => {
    const issues = issuesOf(
        withValues(rawStack("prod"), {
            "migration.waves": [["m600", "m9"], ["m600"]],
            "migration.waveSize": 2,
            "cilium.kubeProxyReplacement": false,
            "cilium.bpfMasquerade": false,
        }),
    );
    const expect = [
        /^cilium-kpr:migration\.waves: moves nodes to Cilium's kube-proxy replacement, which needs cilium\.kubeProxyReplacement true$/,
        /^cilium-kpr:migration\.waveSize: set either migration\.waves .* or migration\.waveSize, not both$/,
        /^cilium-kpr:migration\.waves\[0\]\[1\]: "m9" is not one of the nodes/,
        /^cilium-kpr:migration\.waves\[1\]\[0\]: "m600" is already in migration\.waves\[0\]\[0\]; each node moves in exactly one wave$/,
        /^cilium-kpr:migration\.waves: leaves out m601, storage: every node must be in a wave/,
    ];
    for (const pattern of expect)
        assert.ok(
            issues.some((i) => pattern.test(i)),
            `${pattern} in ${JSON.stringify(issues, null, 1)}`,
        );
    assert.deepEqual(issuesOf(withValue(rawStack("prod"), "migration.waves", [[]])), ["cilium-kpr:migration.waves[0]: a wave needs at least one node"]);
});

test("migration.stopAfterWave: within the waves, and only with waves", () => {
    assert.deepEqual(issuesOf(withValues(rawStack("prod"), { "migration.waveSize": 2, "migration.stopAfterWave": 3 })), [
        "cilium-kpr:migration.stopAfterWave: is 3, but there are 2 waves",
    ]);
    assert.deepEqual(issuesOf(withValue(rawStack("prod"), "migration.stopAfterWave", 1)), [
        "cilium-kpr:migration.stopAfterWave: only applies to the node-by-node migration: set migration.waves or migration.waveSize too",
    ]);
    assert.deepEqual(issuesOf(withValues(rawStack("prod"), { "migration.waveSize": 1, "migration.stopAfterWave": 1 })), []);
});

test("an existing canary stack moves to waves with its canary as wave 1, and is told how otherwise", () => {
    const canary = withValue(rawStack("prod"), "migration.canaryNodes", ["m600"]);
    assert.deepEqual(issuesOf(canary), [], "the single-shot canary alone keeps working");
    assert.deepEqual(issuesOf(withValue(canary, "migration.waveSize", 1)), [
        "cilium-kpr:migration.canaryNodes: the canary becomes the first wave: keep migration.canaryNodes and start migration.waves with exactly [m600] " +
            "(for example migration.waves: [[m600], [the other nodes]]); a stack whose canary never ran can drop migration.canaryNodes instead",
    ]);
    assert.equal(issuesOf(withValue(canary, "migration.waves", [["m601"], ["m600", "storage"]])).length, 1, "the canary must be wave 1");
    assert.deepEqual(issuesOf(withValue(canary, "migration.waves", [["m600"], ["m601", "storage"]])), [], "adopted as wave 1");
});

test("the pending CiliumNodeConfig: cilium.io/v2 in Cilium's namespace, selecting nodes without the migrated label, pinning KPR off", () => {
    const config = configOf(withValue(rawStack("prod"), "migration.waveSize", 1));
    assert.deepEqual(pendingNodeConfig(config.cilium), {
        apiVersion: "cilium.io/v2",
        kind: "CiliumNodeConfig",
        metadata: { name: "cilium-kpr-kube-proxy-pending", namespace: "default", labels: { "app.kubernetes.io/managed-by": "cilium-kpr" } },
        spec: {
            nodeSelector: { matchExpressions: [{ key: MIGRATED_LABEL, operator: "NotIn", values: ["true"] }] },
            defaults: {
                "kube-proxy-replacement": "false",
                "kube-proxy-replacement-healthz-bind-address": "",
                "bpf-lb-sock": "false",
                "enable-bpf-masquerade": "false",
            },
        },
    });
    const noMasq = configOf(withValues(rawStack("prod"), { "migration.waveSize": 1, "cilium.bpfMasquerade": false }));
    assert.equal(pendingNodeConfig(noMasq.cilium).spec.defaults["enable-bpf-masquerade"], undefined);
    assert.deepEqual(kubeProxyExclusionTerm(), { matchExpressions: [{ key: "cilium-kpr.io/kpr-migrated", operator: "NotIn", values: ["true"] }] });
});

test("steps: up runs each wave's node steps in order; destroy is the exact reverse, each step's delete", () => {
    const steps = waveSteps(
        [
            { index: 1, nodes: ["m600"] },
            { index: 2, nodes: ["m601"] },
        ],
        { drain: true, tproxy: true },
    );
    assert.deepEqual(
        steps.map((s) => `${s.wave}:${s.name}`),
        [
            "0:cilium-node-config-kpr-pending",
            "0:kube-proxy-label-affinity",
            "0:cilium",
            "0:kpr-pending-gate",
            ...["m600", "m601"].flatMap((n, i) =>
                [
                    WAVE_STEP.drain(n),
                    WAVE_STEP.handover(n),
                    WAVE_STEP.agentGate(n),
                    `stale-rules-cleanup-${n}`,
                    `tproxy-${n}`,
                    WAVE_STEP.nodeServices(n),
                    WAVE_STEP.uncordon(n),
                ].map((s) => `${i + 1}:${s}`),
            ),
            "3:kpr-gate",
            "3:kube-proxy-removal",
        ],
    );
    const show = (a: ReturnType<typeof upActions>[number]) => (typeof a === "string" ? a : `${a.kind}(${a.node})`);
    assert.deepEqual(upActions(steps).slice(4, 12).map(show), [
        "cordonAndDrain(m600)",
        "labelAndWaitKubeProxyGone(m600)",
        "restartAgent(m600)",
        "requireAgentKpr(m600)",
        "removeStaleRules(m600)",
        "applyTproxy(m600)",
        "requireServicesServed(m600)",
        "uncordon(m600)",
    ]);
    assert.deepEqual(downActions(steps).slice(0, 7).map(show), [
        "restoreKubeProxy",
        "cordonAndDrain(m601)",
        "removeTproxy(m601)",
        "unlabelAndWaitKubeProxyReady(m601)",
        "restartAgent(m601)",
        "requireAgentWithoutKpr(m601)",
        "uncordon(m601)",
    ]);
});

test("the migrated nodes (plan's node files, drift check) are those of the declared waves", () => {
    const stopped = configOf(withValues(rawStack("prod"), { "migration.waves": [["m600"], ["m601", "storage"]], "migration.stopAfterWave": 1 }));
    assert.deepEqual(
        migratedNodes(stopped).map((n) => n.name),
        ["m600"],
    );
    const adopted = configOf(withValues(rawStack("prod"), { "migration.canaryNodes": ["m600"], "migration.waves": [["m600"], ["m601", "storage"]] }));
    assert.deepEqual(
        migratedNodes(adopted).map((n) => n.name),
        ["m600", "m601", "storage"],
    );
});
