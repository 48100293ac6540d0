import type { Wave } from "./wavePlan";
import { STEP, WAVE_STEP } from "../resourceNames";

/**
 * The node-by-node migration as an ordered list of steps: each step is one Pulumi resource, with
 * what its create does (`up`) and what its delete does (`down`) on the cluster, as actions of a
 * small model (test/support/servingModel.ts replays them and checks that every node is served by
 * exactly one of kube-proxy or a KPR agent at every moment). `pulumi up` runs the steps in order;
 * `pulumi destroy` runs them in reverse, each step's `down`. The scripts that implement the actions
 * are named beside them (components/waves/scripts/); their fake-cluster tests hold them to it.
 */

export type ClusterAction =
    /** The kube-proxy-pending CiliumNodeConfig exists (kube-proxy-replacement "false" on unlabelled nodes). */
    | "createPendingNodeConfig"
    | "deletePendingNodeConfig"
    /** kube-proxy's DaemonSet gets the required node affinity NotIn on the migrated label; waits for the rollout. */
    | "excludeLabelledFromKubeProxy"
    | "restoreKubeProxyAffinity"
    /** The release gets its final values (KPR true); every agent restarts (rollOutCiliumPods). */
    | "releaseFinalValues"
    /** The pre-migration values come back (KPR false); every agent restarts. */
    | "releasePreMigrationValues"
    /** Every agent on an unlabelled node reports KPR False and names the pending CiliumNodeConfig. */
    | "requirePendingAgentsWithoutKpr"
    /** Every agent reports KPR True. */
    | "requireAllAgentsKpr"
    /** kube-proxy's DaemonSet and ConfigMap backed up and deleted. */
    | "removeKubeProxy"
    | "restoreKubeProxy";

export type NodeActionKind =
    /** A node the single-shot canary already migrated gets the label (canary-adopt.sh); nothing else changes. */
    | "labelCanaryNode"
    | "cordonAndDrain"
    | "uncordon"
    /** Sets the migrated label and waits until the node's kube-proxy pod is gone. */
    | "labelAndWaitKubeProxyGone"
    /** Removes the label and waits until a kube-proxy pod on the node is Ready. */
    | "unlabelAndWaitKubeProxyReady"
    /** Deletes the node's agent pod and waits until its replacement is Ready (it re-reads its config). */
    | "restartAgent"
    /** The node's agent reports KPR True, socket LB, NodePort, and its resolved config says KPR "true" from cilium-config. */
    | "requireAgentKpr"
    /** The node's agent reports KPR False (after handing the node back). */
    | "requireAgentWithoutKpr"
    /** kube-proxy's KUBE-* rules removed from the node. */
    | "removeStaleRules"
    | "applyTproxy"
    | "removeTproxy"
    /** A ClusterIP and a NodePort answer through the node's agent. */
    | "requireServicesServed";

export interface NodeAction {
    readonly kind: NodeActionKind;
    readonly node: string;
}

export type Action = ClusterAction | NodeAction;

export interface WaveStep {
    /** The resource's logical name. */
    readonly name: string;
    /** 0 for the steps before the first wave, n for wave n, waves+1 for the steps after the last. */
    readonly wave: number;
    readonly up: readonly Action[];
    readonly down: readonly Action[];
}

export interface WaveStepOptions {
    readonly drain: boolean;
    readonly tproxy: boolean;
}

/** The steps of one node's handover in the order `up` runs them. */
export function nodeSteps(node: string, wave: number, opts: WaveStepOptions): WaveStep[] {
    const a = (kind: NodeActionKind): NodeAction => ({ kind, node });
    const steps: WaveStep[] = [];
    // Drain first so the pods with long-lived connections leave before the node's service path changes;
    // on destroy the node is drained again (the uncordon step's delete) before it is handed back.
    if (opts.drain) steps.push({ name: WAVE_STEP.drain(node), wave, up: [a("cordonAndDrain")], down: [a("uncordon")] });
    steps.push({
        name: WAVE_STEP.handover(node),
        wave,
        // Cilium's order ("KubeProxyReplacement Rollout"): label (kube-proxy leaves by affinity, the
        // pending CiliumNodeConfig stops selecting the node), then restart the agent so it re-reads its
        // config. Between the two the node keeps kube-proxy's last rules, which kube-proxy does not remove
        // on exit. The delete hands back the other way round: kube-proxy is Ready on the node before the
        // agent restarts without KPR.
        up: [a("labelAndWaitKubeProxyGone"), a("restartAgent")],
        down: [a("unlabelAndWaitKubeProxyReady"), a("restartAgent"), a("requireAgentWithoutKpr")],
    });
    steps.push({ name: WAVE_STEP.agentGate(node), wave, up: [a("requireAgentKpr")], down: [] });
    steps.push({ name: STEP.staleRuleCleanup(node), wave, up: [a("removeStaleRules")], down: [] });
    if (opts.tproxy) steps.push({ name: STEP.nodeTproxy(node), wave, up: [a("applyTproxy")], down: [a("removeTproxy")] });
    steps.push({ name: WAVE_STEP.nodeServices(node), wave, up: [a("requireServicesServed")], down: [] });
    if (opts.drain) steps.push({ name: WAVE_STEP.uncordon(node), wave, up: [a("uncordon")], down: [a("cordonAndDrain")] });
    return steps;
}

/**
 * Every step of the wave path in `up` order. The nodes of one wave are listed one after the other
 * here; in the graph they may run side by side (the model checks each node on its own, and no node
 * step acts on another node).
 */
export function waveSteps(waves: readonly Wave[], opts: WaveStepOptions & { readonly adoptedCanary?: readonly string[] }): WaveStep[] {
    const last = waves.length + 1;
    const canary = opts.adoptedCanary ?? [];
    return [
        ...(canary.length > 0
            ? [{ name: WAVE_STEP.canaryAdoption, wave: 0, up: canary.map((node): NodeAction => ({ kind: "labelCanaryNode", node })), down: [] }]
            : []),
        // Created before the release gets its final values, so no agent ever starts with KPR on an unlabelled node;
        // deleted after the values are restored (the values snapshot depends on it).
        { name: WAVE_STEP.pendingNodeConfig, wave: 0, up: ["createPendingNodeConfig"], down: ["deletePendingNodeConfig"] },
        { name: WAVE_STEP.kubeProxyLabelAffinity, wave: 0, up: ["excludeLabelledFromKubeProxy"], down: ["restoreKubeProxyAffinity"] },
        { name: STEP.ciliumRelease, wave: 0, up: ["releaseFinalValues"], down: ["releasePreMigrationValues"] },
        { name: WAVE_STEP.pendingGate, wave: 0, up: ["requirePendingAgentsWithoutKpr"], down: [] },
        ...waves.flatMap((w) => w.nodes.flatMap((node) => nodeSteps(node, w.index, opts))),
        { name: STEP.kprGate, wave: last, up: ["requireAllAgentsKpr"], down: [] },
        { name: STEP.kubeProxyRemoval, wave: last, up: ["removeKubeProxy"], down: ["restoreKubeProxy"] },
    ];
}

/** The actions `pulumi up` performs, in order. */
export function upActions(steps: readonly WaveStep[]): Action[] {
    return steps.flatMap((s) => s.up);
}

/** The actions `pulumi destroy` performs on these steps (reverse order, each step's delete). */
export function downActions(steps: readonly WaveStep[]): Action[] {
    return [...steps].reverse().flatMap((s) => s.down);
}

/**
 * The steps `pulumi destroy --target <wave n's steps> --target-dependents` removes: wave n's steps
 * and everything that depends on them (later waves and the final steps). Earlier waves stay migrated.
 */
export function stepsFromWave(steps: readonly WaveStep[], wave: number): WaveStep[] {
    return steps.filter((s) => s.wave >= wave && s.wave > 0);
}
