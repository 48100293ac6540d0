/**
 * Logical names and type tokens of the migration's resources. The program, the policy pack, the
 * offline plan (tools/planSteps.ts describes each step by its key here) and the tests find steps by
 * these names, so they are defined once. A name is part of a resource's URN: changing one replaces
 * the resource on the next `pulumi up` (test/resource-identity.test.ts holds every URN).
 */

/** A step declared once per node: its name is `prefix` followed by the node's name. */
export interface PerNodeName {
    (node: string): string;
    readonly prefix: string;
}

function perNode(prefix: string): PerNodeName {
    return Object.assign((node: string) => `${prefix}${node}`, { prefix });
}

export const STEP = {
    migration: "cilium-kpr",
    provider: "cluster",
    clusterIdentity: "cluster-identity",
    operatorPreflight: "preflight-operator",
    nodePreflight: perNode("preflight-"),
    nodeStore: perNode("node-store-"),
    nodeStoreCheck: perNode("node-store-check-"),
    releaseIdentity: "cilium-release-identity",
    valuesSnapshot: "cilium-values-snapshot",
    ciliumUpgradePreflight: "cilium-upgrade-preflight",
    ciliumRelease: "cilium",
    kprGate: "kpr-gate",
    kubeProxyRemoval: "kube-proxy-removal",
    kubeProxyCanaryExclusion: "kube-proxy-canary-exclusion",
    kubeadmProxyDisabled: "kubeadm-proxy-disabled",
    staleRuleCleanup: perNode("stale-rules-cleanup-"),
    staleRuleVerify: perNode("stale-rules-verify-"),
    nodeTproxy: perNode("tproxy-"),
    tproxyApply: perNode("tproxy-apply-"),
    tproxyConfirm: perNode("tproxy-confirm-"),
    /** The texts of every tproxy node file, once per stack, for the preview (tproxy/nodeFilesStash.ts); no per-node prefix starts it. */
    tproxyNodeFiles: "node-files-tproxy",
    verification: "post-migration-verification",
} as const;

/** The node-by-node path's own steps (components/waves/; the per-node cleanup and tproxy keep their STEP names). */
export const WAVE_STEP = {
    nodeConfigCrdCheck: "preflight-cilium-node-config-crd",
    canaryAdoption: "kpr-canary-adoption",
    pendingNodeConfig: "cilium-node-config-kpr-pending",
    kubeProxyLabelAffinity: "kube-proxy-label-affinity",
    pendingGate: "kpr-pending-gate",
    clusterScriptStore: "cluster-script-store",
    drain: perNode("drain-"),
    handover: perNode("kpr-handover-"),
    agentGate: perNode("kpr-gate-"),
    nodeServices: perNode("node-services-"),
    uncordon: perNode("uncordon-"),
} as const;

export type StepKey = keyof typeof STEP;
export type WaveStepKey = keyof typeof WAVE_STEP;

/** Which step a logical name is, and for a per-node step which node. */
export type NamedStep = ({ readonly path: "single"; readonly key: StepKey } | { readonly path: "waves"; readonly key: WaveStepKey }) & {
    readonly node?: string;
};

const ALL_NAMES = [
    ...(Object.keys(STEP) as StepKey[]).map((key) => ({ step: { path: "single", key } as const, name: STEP[key] })),
    ...(Object.keys(WAVE_STEP) as WaveStepKey[]).map((key) => ({ step: { path: "waves", key } as const, name: WAVE_STEP[key] })),
];

/**
 * The step a resource's logical name belongs to. A fixed name wins over a per-node prefix
 * ("preflight-operator" is not the node preflight of a node "operator"), and the longest prefix wins
 * among per-node names ("tproxy-apply-m600" is m600's apply, not the tproxy component of "apply-m600").
 */
export function stepOfName(name: string): NamedStep | undefined {
    const fixed = ALL_NAMES.find((s) => s.name === name);
    if (fixed) return fixed.step;
    let best: { step: NamedStep; prefix: string } | undefined;
    for (const { step, name: n } of ALL_NAMES) {
        if (typeof n !== "function" || !name.startsWith(n.prefix) || name.length === n.prefix.length) continue;
        if (best === undefined || n.prefix.length > best.prefix.length) best = { step, prefix: n.prefix };
    }
    return best && { ...best.step, node: name.slice(best.prefix.length) };
}

export const TYPE = {
    migration: "cilium-kpr:index:Migration",
    ciliumRelease: "cilium-kpr:index:CiliumRelease",
    nodeTproxy: "cilium-kpr:index:NodeTproxy",
    helmRelease: "kubernetes:helm.sh/v3:Release",
    localCommand: "command:local:Command",
    remoteCommand: "command:remote:Command",
    copyToRemote: "command:remote:CopyToRemote",
    /** The engine's builtin (pulumi/pulumi pkg/resource/deploy/builtins.go stashType), CLI >= 3.208.0. */
    stash: "pulumi:index:Stash",
} as const;
