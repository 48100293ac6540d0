import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Wave } from "../components/waves/wavePlan";
import { STEP } from "../components/resourceNames";
import { downActions, stepsFromWave, upActions, waveSteps, type Action, type NodeActionKind, type WaveStep } from "../components/waves/waveSteps";
import { canaryCluster, describe as describeAction, initialCluster, replay, servedBy, type ClusterState } from "./support/servingModel";

/** Random clusters: 1-6 nodes cut into waves in a random order, drain and tproxy on or off. */
const plans = fc
    .record({
        count: fc.integer({ min: 1, max: 6 }),
        seed: fc.array(fc.nat(), { minLength: 6, maxLength: 6 }),
        cuts: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        drain: fc.boolean(),
        tproxy: fc.boolean(),
    })
    .map(({ count, seed, cuts, drain, tproxy }) => {
        const nodes = Array.from({ length: count }, (_, i) => `n${i}`);
        const order = [...nodes].sort((a, b) => seed[nodes.indexOf(a)]! - seed[nodes.indexOf(b)]! || a.localeCompare(b));
        const waves: Wave[] = [];
        let current: string[] = [];
        order.forEach((node, i) => {
            current.push(node);
            if (i === order.length - 1 || cuts[i]) {
                waves.push({ index: waves.length + 1, nodes: current });
                current = [];
            }
        });
        return { nodes, waves, steps: waveSteps(waves, { drain, tproxy }) };
    });

function migratedCluster(nodes: readonly string[], steps: readonly WaveStep[]): ClusterState {
    const state = initialCluster(nodes);
    const violation = replay(state, upActions(steps));
    assert.equal(violation, undefined, violation && `${describeAction(violation.action)}: ${violation.message}`);
    return state;
}

function assertBackToKubeProxy(state: ClusterState): void {
    for (const [name, node] of Object.entries(state.nodes)) {
        assert.deepEqual(
            { labelled: node.labelled, kubeProxyPod: node.kubeProxyPod, agentKpr: node.agentKpr, cordoned: node.cordoned, tproxy: node.tproxy },
            { labelled: false, kubeProxyPod: true, agentKpr: false, cordoned: false, tproxy: false },
            name,
        );
    }
    assert.equal(state.pendingNodeConfig, false);
    assert.equal(state.affinityByLabel, false);
}

test("up: every node is served at every moment and ends on its KPR agent with kube-proxy gone and its rules removed", () => {
    fc.assert(
        fc.property(plans, ({ nodes, steps }) => {
            const state = migratedCluster(nodes, steps);
            for (const node of Object.values(state.nodes)) {
                assert.equal(servedBy(node), "kpr-agent");
                assert.equal(node.kubeProxyPod, false);
                assert.equal(node.kubeProxyRules, false);
                assert.equal(node.cordoned, false);
            }
            assert.equal(state.kubeProxyDaemonSet, false);
        }),
    );
});

test("destroy after a full up: every node is served at every moment and ends back on kube-proxy", () => {
    fc.assert(
        fc.property(plans, ({ nodes, steps }) => {
            const state = migratedCluster(nodes, steps);
            const violation = replay(state, downActions(steps));
            assert.equal(violation, undefined, violation && `${describeAction(violation.action)}: ${violation.message}`);
            assertBackToKubeProxy(state);
        }),
    );
});

test("a run that stops at any step, then destroy: every node served throughout, and back on kube-proxy", () => {
    fc.assert(
        fc.property(
            plans.chain((plan) => fc.record({ plan: fc.constant(plan), stop: fc.integer({ min: 0, max: plan.steps.length }) })),
            ({ plan, stop }) => {
                // The step at `stop` failed: the engine records nothing of it (a failed create is not in state).
                const done = plan.steps.slice(0, stop);
                const state = initialCluster(plan.nodes);
                assert.equal(replay(state, upActions(done)), undefined);
                // Nothing of a later wave was touched.
                const reached = new Set(done.flatMap((s) => s.up).flatMap((a) => (typeof a === "string" ? [] : [a.node])));
                for (const [name, node] of Object.entries(state.nodes)) if (!reached.has(name)) assert.equal(node.labelled, false, name);
                const violation = replay(state, downActions(done));
                assert.equal(violation, undefined, violation && `${describeAction(violation.action)}: ${violation.message}`);
                assertBackToKubeProxy(state);
            },
        ),
    );
});

test("destroy --target-dependents on one wave undoes that wave and the later ones only; up brings them back", () => {
    fc.assert(
        fc.property(
            plans.chain((plan) => fc.record({ plan: fc.constant(plan), wave: fc.integer({ min: 1, max: plan.waves.length }) })),
            ({ plan, wave }) => {
                const state = migratedCluster(plan.nodes, plan.steps);
                const undone = stepsFromWave(plan.steps, wave);
                const violation = replay(state, downActions(undone));
                assert.equal(violation, undefined, violation && `${describeAction(violation.action)}: ${violation.message}`);
                for (const w of plan.waves) {
                    for (const name of w.nodes) {
                        const node = state.nodes[name]!;
                        if (w.index < wave) assert.deepEqual([node.labelled, servedBy(node), node.kubeProxyPod], [true, "kpr-agent", false], name);
                        else assert.deepEqual([node.labelled, servedBy(node), node.kubeProxyPod], [false, "kube-proxy", true], name);
                    }
                }
                assert.equal(replay(state, upActions(undone)), undefined);
                for (const node of Object.values(state.nodes)) assert.equal(servedBy(node), "kpr-agent");
            },
        ),
    );
});

type Pick = (a: Action) => boolean;
const nodeAction =
    (kind: NodeActionKind, node: string): Pick =>
    (a) =>
        typeof a !== "string" && a.kind === kind && a.node === node;
const clusterAction =
    (name: string): Pick =>
    (a) =>
        a === name;

/** The sequence with the first action matching `first` and the first matching `second` exchanged. */
function swapped(actions: readonly Action[], first: Pick, second: Pick): Action[] {
    const i = actions.findIndex(first);
    const j = actions.findIndex(second);
    assert.ok(i >= 0 && j >= 0 && i < j, "both actions are in the sequence, in this order");
    const out = [...actions];
    [out[i], out[j]] = [out[j]!, out[i]!];
    return out;
}

test("the model catches each safety-relevant pair of steps run in the wrong order", () => {
    fc.assert(
        fc.property(
            plans.chain((plan) => fc.record({ plan: fc.constant(plan), node: fc.constantFrom(...plan.nodes) })),
            ({ plan, node }) => {
                const up = upActions(plan.steps);
                const cases: [string, Action[], Action[]][] = [
                    ["agent restarted before the label", up, swapped(up, nodeAction("labelAndWaitKubeProxyGone", node), nodeAction("restartAgent", node))],
                    [
                        "kube-proxy's rules removed before the agent has KPR",
                        up,
                        swapped(up, nodeAction("restartAgent", node), nodeAction("removeStaleRules", node)),
                    ],
                    [
                        "final values before the pending CiliumNodeConfig",
                        up,
                        swapped(up, clusterAction("createPendingNodeConfig"), clusterAction("releaseFinalValues")),
                    ],
                    [
                        "node labelled before kube-proxy's affinity",
                        up,
                        swapped(up, clusterAction("excludeLabelledFromKubeProxy"), nodeAction("labelAndWaitKubeProxyGone", node)),
                    ],
                ];
                for (const [what, right, wrong] of cases) {
                    assert.equal(replay(initialCluster(plan.nodes), right), undefined, `${what}: the right order passes`);
                    assert.notEqual(replay(initialCluster(plan.nodes), wrong), undefined, `${what}: the wrong order is caught`);
                }
                const down = downActions(plan.steps);
                const destroyCases: [string, Action[]][] = [
                    [
                        "agent loses KPR before kube-proxy is back",
                        swapped(down, nodeAction("unlabelAndWaitKubeProxyReady", node), nodeAction("restartAgent", node)),
                    ],
                    [
                        "node handed back before kube-proxy's DaemonSet is restored",
                        swapped(down, clusterAction("restoreKubeProxy"), nodeAction("unlabelAndWaitKubeProxyReady", node)),
                    ],
                ];
                for (const [what, wrong] of destroyCases) {
                    assert.equal(replay(migratedCluster(plan.nodes, plan.steps), down), undefined, `${what}: the right order passes`);
                    const state = migratedCluster(plan.nodes, plan.steps);
                    const violation = replay(state, wrong);
                    const stuck = violation === undefined && Object.values(state.nodes).some((n) => n.agentKpr || !n.kubeProxyPod);
                    assert.ok(violation !== undefined || stuck, `${what}: the wrong order is caught`);
                }
            },
        ),
    );
});

/** The same steps with the release before kube-proxy's affinity: the graph runs those two side by side, in either order. */
function releaseFirst(steps: readonly WaveStep[]): WaveStep[] {
    const out = [...steps];
    const affinity = out.findIndex((s) => s.name === "kube-proxy-label-affinity");
    const release = out.findIndex((s) => s.name === STEP.ciliumRelease);
    [out[affinity], out[release]] = [out[release]!, out[affinity]!];
    return out;
}

test("a canary stack moving to waves: every node served throughout; without the canary adoption the canary node would not be", () => {
    fc.assert(
        fc.property(plans, ({ nodes, waves }) => {
            const canary = waves[0]!.nodes;
            const adopted = waveSteps(waves, { drain: false, tproxy: true, adoptedCanary: canary });
            for (const steps of [adopted, releaseFirst(adopted)]) {
                const state = canaryCluster(nodes, canary);
                const violation = replay(state, upActions(steps));
                assert.equal(violation, undefined, violation && `${describeAction(violation.action)}: ${violation.message}`);
                for (const node of Object.values(state.nodes)) assert.equal(servedBy(node), "kpr-agent");
                assert.equal(replay(state, downActions(steps)), undefined);
                assertBackToKubeProxy(state);
            }
            const notAdopted = releaseFirst(waveSteps(waves, { drain: false, tproxy: true }));
            const unsafe = replay(canaryCluster(nodes, canary), upActions(notAdopted));
            assert.match(unsafe?.message ?? "", new RegExp(`^(${canary.join("|")}) is served by neither`));
        }),
    );
});
