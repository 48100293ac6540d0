/*
 * A small model of who serves Kubernetes Services on each node, to replay the wave path's
 * actions (components/waves/waveSteps.ts) and check, after every action, that each node is
 * served by exactly one of kube-proxy or a KPR agent, never by neither.
 *
 * What it copies from upstream:
 * - An agent resolves its config when its pod starts: cilium-config first, then the
 *   CiliumNodeConfigs whose nodeSelector matches the node's labels override it (cilium
 *   cilium-dbg/cmd/build-config.go default sources "config-map:cilium-config",
 *   "cilium-node-config:$CILIUM_K8S_NAMESPACE"; pkg/option/resolver ResolveConfigurations merges
 *   later sources over earlier ones). A CiliumNodeConfig change needs a pod restart
 *   (docs "Per-node configuration": "will not cause changes to take effect until pods are
 *   deleted and re-created").
 * - kube-proxy does not remove its iptables rules when its pod goes (kubernetes/kubernetes#102314:
 *   no live cleanup); they keep forwarding with the Service state of the moment it left, until the
 *   stale-rule cleanup removes them. A running kube-proxy rewrites them.
 * - Where an agent runs with KPR, its eBPF programs take Service traffic before netfilter (socket
 *   LB at connect(), tc at the devices for NodePort), so that node is served by the agent even
 *   while kube-proxy's rules are still there.
 */
import type { Action, ClusterAction, NodeAction } from "../../components/waves/waveSteps";

export interface NodeState {
    labelled: boolean;
    /** kube-proxy kept off by name (the single-shot canary's kube-proxy-exclude.sh). */
    excludedByName?: boolean;
    kubeProxyPod: boolean;
    kubeProxyRules: boolean;
    agentKpr: boolean;
    cordoned: boolean;
    tproxy: boolean;
}

export interface ClusterState {
    pendingNodeConfig: boolean;
    affinityByLabel: boolean;
    globalKpr: boolean;
    kubeProxyDaemonSet: boolean;
    nodes: Record<string, NodeState>;
}

export type Server = "kube-proxy" | "kpr-agent" | "none";

export function servedBy(node: NodeState): Server {
    if (node.agentKpr) return "kpr-agent";
    return node.kubeProxyRules ? "kube-proxy" : "none";
}

/** The cluster before the migration: kube-proxy everywhere, no agent with KPR. */
export function initialCluster(nodes: readonly string[]): ClusterState {
    return {
        pendingNodeConfig: false,
        affinityByLabel: false,
        globalKpr: false,
        kubeProxyDaemonSet: true,
        nodes: Object.fromEntries(
            nodes.map((n) => [n, { labelled: false, kubeProxyPod: true, kubeProxyRules: true, agentKpr: false, cordoned: false, tproxy: false }]),
        ),
    };
}

export class StepFailed extends Error {}

function resolveKpr(state: ClusterState, node: NodeState): boolean {
    // cilium-config says globalKpr; the pending CiliumNodeConfig (selector: label NotIn ["true"]) overrides it with "false".
    if (state.pendingNodeConfig && !node.labelled) return false;
    return state.globalKpr;
}

/** kube-proxy's DaemonSet controller: a pod on every node its affinity allows; a new pod writes its rules. */
function scheduleKubeProxy(state: ClusterState): void {
    for (const node of Object.values(state.nodes)) {
        node.kubeProxyPod = state.kubeProxyDaemonSet && !(state.affinityByLabel && node.labelled) && node.excludedByName !== true;
        if (node.kubeProxyPod) node.kubeProxyRules = true;
    }
}

function restartAllAgents(state: ClusterState): void {
    for (const node of Object.values(state.nodes)) node.agentKpr = resolveKpr(state, node);
}

function applyCluster(state: ClusterState, action: ClusterAction): void {
    const all = Object.entries(state.nodes);
    switch (action) {
        case "createPendingNodeConfig":
            state.pendingNodeConfig = true;
            return;
        case "deletePendingNodeConfig":
            state.pendingNodeConfig = false;
            return;
        case "excludeLabelledFromKubeProxy":
            // It takes over the canary's saved pre-canary affinity: no exclusion by name is left.
            for (const node of Object.values(state.nodes)) node.excludedByName = false;
            state.affinityByLabel = true;
            return scheduleKubeProxy(state);
        case "restoreKubeProxyAffinity":
            state.affinityByLabel = false;
            return scheduleKubeProxy(state);
        case "releaseFinalValues":
            state.globalKpr = true;
            return restartAllAgents(state);
        case "releasePreMigrationValues":
            state.globalKpr = false;
            return restartAllAgents(state);
        case "requirePendingAgentsWithoutKpr":
            for (const [name, node] of all) if (!node.labelled && node.agentKpr) throw new StepFailed(`the agent on unlabelled ${name} runs with KPR`);
            return;
        case "requireAllAgentsKpr":
            for (const [name, node] of all) if (!node.agentKpr) throw new StepFailed(`the agent on ${name} runs without KPR`);
            return;
        case "removeKubeProxy":
            state.kubeProxyDaemonSet = false;
            return scheduleKubeProxy(state);
        case "restoreKubeProxy":
            state.kubeProxyDaemonSet = true;
            return scheduleKubeProxy(state);
    }
}

function applyNode(state: ClusterState, action: NodeAction): void {
    const node = state.nodes[action.node];
    if (node === undefined) throw new Error(`no node ${action.node} in the model`);
    switch (action.kind) {
        case "labelCanaryNode":
            node.labelled = true;
            return scheduleKubeProxy(state);
        case "cordonAndDrain":
            node.cordoned = true;
            return;
        case "uncordon":
            node.cordoned = false;
            return;
        case "labelAndWaitKubeProxyGone":
            node.labelled = true;
            scheduleKubeProxy(state);
            if (node.kubeProxyPod) throw new StepFailed(`kube-proxy stays on ${action.node} (its affinity does not exclude the label)`);
            return;
        case "unlabelAndWaitKubeProxyReady":
            node.labelled = false;
            scheduleKubeProxy(state);
            if (!node.kubeProxyPod) throw new StepFailed(`kube-proxy does not come back on ${action.node}`);
            return;
        case "restartAgent":
            node.agentKpr = resolveKpr(state, node);
            return;
        case "requireAgentKpr":
        case "requireServicesServed":
            if (!node.agentKpr) throw new StepFailed(`the agent on ${action.node} runs without KPR`);
            return;
        case "requireAgentWithoutKpr":
            if (node.agentKpr) throw new StepFailed(`the agent on ${action.node} still runs with KPR`);
            return;
        case "removeStaleRules":
            // A running kube-proxy writes its rules straight back.
            node.kubeProxyRules = node.kubeProxyPod;
            return;
        case "applyTproxy":
            node.tproxy = true;
            return;
        case "removeTproxy":
            node.tproxy = false;
            return;
    }
}

export interface Violation {
    readonly at: number;
    readonly action: Action;
    readonly message: string;
}

/**
 * Replays actions from `state` (mutated). Stops at the first step that fails (as the engine does) or
 * at the first moment a node is served by nobody; returns what went wrong, or undefined.
 */
export function replay(state: ClusterState, actions: readonly Action[]): Violation | undefined {
    for (const [at, action] of actions.entries()) {
        try {
            if (typeof action === "string") applyCluster(state, action);
            else applyNode(state, action);
        } catch (error) {
            if (error instanceof StepFailed) return { at, action, message: error.message };
            throw error;
        }
        for (const [name, node] of Object.entries(state.nodes)) {
            if (servedBy(node) === "none") return { at, action, message: `${name} is served by neither kube-proxy nor a KPR agent` };
        }
    }
    return undefined;
}

export function describe(action: Action): string {
    return typeof action === "string" ? action : `${action.kind}(${action.node})`;
}

/**
 * A stack where the single-shot canary ran: the release has KPR on every agent, kube-proxy is kept off
 * the canary nodes by name and their leftover rules are cleaned; elsewhere kube-proxy runs beside the agent.
 */
export function canaryCluster(nodes: readonly string[], canary: readonly string[]): ClusterState {
    const state = initialCluster(nodes);
    state.globalKpr = true;
    for (const [name, node] of Object.entries(state.nodes)) {
        node.agentKpr = true;
        if (canary.includes(name)) Object.assign(node, { excludedByName: true, kubeProxyPod: false, kubeProxyRules: false });
    }
    return state;
}
