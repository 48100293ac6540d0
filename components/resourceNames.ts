/**
 * Logical names of the migration's steps. The policy pack, the plan and the tests find steps by
 * these names, so they are defined once.
 */
export const STEP = {
    migration: "cilium-kpr",
    provider: "cluster",
    clusterIdentity: "cluster-identity",
    operatorPreflight: "preflight-operator",
    nodePreflight: (node: string) => `preflight-${node}`,
    nodeStore: (node: string) => `node-store-${node}`,
    nodeStoreCheck: (node: string) => `node-store-check-${node}`,
    releaseIdentity: "cilium-release-identity",
    valuesSnapshot: "cilium-values-snapshot",
    ciliumUpgradePreflight: "cilium-upgrade-preflight",
    ciliumRelease: "cilium",
    kprGate: "kpr-gate",
    kubeProxyRemoval: "kube-proxy-removal",
    kubeProxyCanaryExclusion: "kube-proxy-canary-exclusion",
    kubeadmProxyDisabled: "kubeadm-proxy-disabled",
    staleRuleCleanup: (node: string) => `stale-rules-cleanup-${node}`,
    staleRuleVerify: (node: string) => `stale-rules-verify-${node}`,
    nodeTproxy: (node: string) => `tproxy-${node}`,
    tproxyApply: (node: string) => `tproxy-apply-${node}`,
    tproxyConfirm: (node: string) => `tproxy-confirm-${node}`,
    verification: "post-migration-verification",
} as const;

export const TYPE = {
    migration: "cilium-kpr:index:Migration",
    ciliumRelease: "cilium-kpr:index:CiliumRelease",
    nodeTproxy: "cilium-kpr:index:NodeTproxy",
    helmRelease: "kubernetes:helm.sh/v3:Release",
    localCommand: "command:local:Command",
    remoteCommand: "command:remote:Command",
    copyToRemote: "command:remote:CopyToRemote",
} as const;
