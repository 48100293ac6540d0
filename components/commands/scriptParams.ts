/*
 * What each script of the repository takes, by its registry name (components/commands/scripts.ts).
 * Cluster scripts (run by bash on the operator's machine, kubectl/helm against the cluster) take
 * environment variables; node scripts (run as root over SSH by components/commands/remoteCommand.ts)
 * take positional arguments. Unset optional fields take the script's own default.
 */

/** Stands, in a node script's arguments, for the directory its files were staged in (remoteCommand.ts). */
export const STAGE_DIR: unique symbol = Symbol("the stage directory");
export type StageDir = typeof STAGE_DIR;

/* ---- cluster scripts: environment ------------------------------------------------------------ */

/** Which cluster kubectl/helm talk to. KUBECONFIG is the standard variable. */
export interface KubectlTarget {
    readonly KUBECONFIG?: string;
    /** Passed as --context (helm: --kube-context). */
    readonly KUBECTL_CONTEXT?: string;
    /** kube-system namespace UID recorded by cluster-identity.sh; any other cluster is refused (cluster-lib.sh). */
    readonly CLUSTER_UID?: string;
}

export interface ClusterIdentityEnv extends KubectlTarget {
    /** Set by pulumi-command on an update: what the script printed before. */
    readonly PULUMI_COMMAND_STDOUT?: string;
}

export interface CiliumValuesSnapshotEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    readonly CILIUM_RELEASE?: string;
    /** ConfigMap in CILIUM_NAMESPACE that keeps the pre-migration values; never overwritten. */
    readonly SNAPSHOT_CONFIGMAP: string;
}

export interface CiliumValuesRestoreEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    readonly CILIUM_RELEASE?: string;
    readonly CILIUM_CHART?: string;
    readonly CILIUM_CHART_VERSION: string;
    /** https:// repository URL or oci:// registry path. */
    readonly CILIUM_REPOSITORY?: string;
    readonly CILIUM_DS?: string;
    readonly SNAPSHOT_CONFIGMAP: string;
    readonly KUBE_PROXY_NAMESPACE?: string;
    readonly KUBE_PROXY_DAEMONSET?: string;
    readonly ROLLOUT_TIMEOUT?: number;
}

export interface KprGateEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    readonly CILIUM_DS?: string;
    readonly CILIUM_OPERATOR?: string;
    /** key=value label selector of the agent pods (default k8s-app=cilium). */
    readonly AGENT_SELECTOR?: string;
    readonly ROLLOUT_TIMEOUT?: number;
    readonly EXEC_TIMEOUT?: number;
}

export interface KubeProxyRemoveEnv extends KubectlTarget {
    readonly KUBE_PROXY_NAMESPACE?: string;
    readonly KUBE_PROXY_DAEMONSET?: string;
    readonly KUBE_PROXY_CONFIGMAP?: string;
    readonly KUBE_PROXY_BACKUP_CONFIGMAP: string;
    readonly KUBE_PROXY_POD_SELECTOR?: string;
    readonly POD_GONE_TIMEOUT?: number;
    /** Seconds to wait for kube-proxy to roll out again when a failed removal puts it back (and for the restore). */
    readonly ROLLOUT_TIMEOUT?: number;
}

export interface KubeProxyRestoreEnv extends KubectlTarget {
    readonly KUBE_PROXY_NAMESPACE?: string;
    readonly KUBE_PROXY_DAEMONSET?: string;
    readonly KUBE_PROXY_CONFIGMAP?: string;
    readonly KUBE_PROXY_BACKUP_CONFIGMAP: string;
    readonly ROLLOUT_TIMEOUT?: number;
}

export interface KubeProxyExcludeEnv extends KubectlTarget {
    /** Kubernetes node names kube-proxy is kept off, separated by spaces. */
    readonly CANARY_NODES: string;
    readonly KUBE_PROXY_NAMESPACE?: string;
    readonly KUBE_PROXY_DAEMONSET?: string;
    readonly KUBE_PROXY_POD_SELECTOR?: string;
    readonly ROLLOUT_TIMEOUT?: number;
}

export interface KubeProxyIncludeEnv extends KubectlTarget {
    readonly KUBE_PROXY_NAMESPACE?: string;
    readonly KUBE_PROXY_DAEMONSET?: string;
    readonly ROLLOUT_TIMEOUT?: number;
}

export interface PostMigrationVerifyEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    readonly CILIUM_DS?: string;
    readonly AGENT_SELECTOR?: string;
    readonly EXEC_TIMEOUT?: number;
}

/** The kubeadm-config scripts (kube-system/kubeadm-config and its backup). */
export interface KubeadmProxyEnv extends KubectlTarget {
    /** Backup ConfigMap in kube-system holding the ClusterConfiguration text from before the edit. */
    readonly KUBEADM_BACKUP_CONFIGMAP: string;
}

export interface CiliumUpgradePreflightEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    readonly CILIUM_RELEASE?: string;
    readonly CILIUM_CHART?: string;
    /** The chart version this run deploys. */
    readonly CILIUM_CHART_VERSION: string;
    readonly CILIUM_REPOSITORY?: string;
    /** cilium.upgradeFrom: the version the release runs before a chart upgrade; empty for the same-version path. */
    readonly UPGRADE_FROM?: string;
    /** The values the release will get, as JSON. */
    readonly CILIUM_VALUES_JSON?: string;
    /** key=value label selector of the agent pods (default k8s-app=cilium). */
    readonly AGENT_SELECTOR?: string;
    readonly PREFLIGHT_RELEASE?: string;
    readonly PREPULL_TIMEOUT?: number;
}

export interface ReleaseIdentityEnv {
    readonly CILIUM_NAMESPACE: string;
    readonly CILIUM_RELEASE: string;
}

export interface OperatorPreflightEnv extends KubectlTarget {
    readonly CILIUM_VERSION: string;
    /** cilium/cilium#44464 for the target version: refuse, warn or none (ciliumVersions.ts ipvsInitHangVerdict). */
    readonly IPVS_HANG: "refuse" | "warn" | "none";
    readonly IPVS_HANG_MINOR: string;
    readonly IPVS_SAFE_MINOR: string;
    readonly KUBE_PROXY_NAMESPACE: string;
    readonly KUBE_PROXY_DAEMONSET: string;
    readonly KUBE_PROXY_CONFIGMAP: string;
    /** The keepalived VIPs, comma-separated. */
    readonly KEEPALIVED_VIPS: string;
    /** The VIPs cilium.nodePortAddresses makes Cilium serve NodePorts on, comma-separated. */
    readonly NODEPORT_VIPS_SERVED: string;
    readonly K8S_SERVICE_HOST: string;
    readonly NEEDS_HELM: "0" | "1";
    readonly REQUEST_TIMEOUT?: number;
}

/** Read-only, for the drift check (tools/driftCheck.ts). */
/** The CiliumNodeConfig API the check requires (ciliumVersions.ts NODE_CONFIG_CHECK_ENV). */
export interface NodeConfigCrdCheckEnv extends KubectlTarget {
    readonly NODE_CONFIG_VERSION: string;
    readonly NODE_CONFIG_SINCE: string;
}

export interface ClusterObserveEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    /** Wave stacks only: the label that marks a migrated node (also reads kube-proxy's label affinity). */
    readonly MIGRATED_LABEL?: string;
    readonly KUBE_PROXY_NAMESPACE: string;
    readonly KUBE_PROXY_DAEMONSET: string;
    readonly KUBE_PROXY_CONFIGMAP: string;
    readonly AGENT_SELECTOR?: string;
    readonly KUBE_PROXY_POD_SELECTOR?: string;
    readonly EXEC_TIMEOUT?: number;
}

/** What every wave script reads through wave-lib.sh. */
export interface WaveEnv extends KubectlTarget {
    readonly CILIUM_NAMESPACE: string;
    readonly KUBE_PROXY_NAMESPACE: string;
    readonly KUBE_PROXY_DAEMONSET: string;
    /** The node label that marks a node as migrated. */
    readonly MIGRATED_LABEL: string;
    /** Seconds to wait for a rollout or a pod. */
    readonly WAIT_TIMEOUT: string;
    /** Label selectors of the agent and kube-proxy pods (wave-lib.sh defaults: k8s-app=cilium, k8s-app=kube-proxy). */
    readonly CILIUM_POD_SELECTOR?: string;
    readonly KUBE_PROXY_POD_SELECTOR?: string;
}

/** The cluster script store's write and removal (components/commands/clusterScriptStore.ts); the scripts come on stdin. */
export interface ClusterScriptStoreEnv extends KubectlTarget {
    /** Set by pulumi-command for the delete: what the create printed (its writer id). */
    readonly PULUMI_COMMAND_STDOUT?: string;
}

export interface WaveNodeEnv extends WaveEnv {
    /** The Kubernetes node this step acts on. */
    readonly NODE: string;
}

export interface WaveDrainEnv extends WaveNodeEnv {
    readonly DRAIN_TIMEOUT: string;
}

export interface WaveNodeServicesEnv extends WaveNodeEnv {
    /** Seconds per connection attempt (node-services.sh default 5). */
    readonly CONNECT_TIMEOUT?: string;
}

/** node-step-kept.sh reads NODE only (it sources no prelude). */
export interface WaveStepKeptEnv {
    readonly NODE: string;
}

export interface WavePendingEnv extends WaveEnv {
    /** The CiliumNodeConfig that keeps unmigrated nodes at KPR false. */
    readonly PENDING_NODE_CONFIG: string;
}

export interface WaveNodeGateEnv extends WaveNodeEnv {
    readonly PENDING_NODE_CONFIG: string;
}

export interface CanaryAdoptEnv extends KubectlTarget {
    /** Kubernetes node names, separated by spaces. */
    readonly CANARY_NODES: string;
    readonly CILIUM_NAMESPACE: string;
    readonly KUBE_PROXY_NAMESPACE: string;
    readonly MIGRATED_LABEL: string;
}

/* ---- node scripts: positional arguments ------------------------------------------------------ */

export type IptablesBackend = "auto" | "nft" | "legacy";

/** The iptables backend kube-proxy used. */
export type StaleRulesCleanupArgs = readonly [backend: IptablesBackend];

/** NODE TPROXY MARK TABLE PRIORITY FAMILIES IPTABLES_BACKEND, in the order node-preflight.sh reads them. */
export type NodePreflightArgs = readonly [
    node: string,
    tproxy: "0" | "1",
    mark: string,
    table: string,
    priority: string,
    families: string,
    iptablesBackend: IptablesBackend,
];

/** MARK TABLE PRIORITY FAMILIES, as policy-routes.sh reads them (components/tproxy/policyRoutes.ts policyRouteArgs). */
export type PolicyRouteArgs = readonly [mark: string, table: string, priority: string, families: string];

/** "auto": use systemd when it runs the node; "off": never. */
export type SystemdUse = "auto" | "off";

export type TproxyApplyArgs = readonly [
    stage: StageDir,
    stateDir: string,
    systemd: SystemdUse,
    unit: string,
    nftTable: string,
    ...routes: PolicyRouteArgs,
    revertSeconds: string,
];

/** Used by tproxy-confirm.sh and tproxy-remove.sh. */
export type TproxyStateArgs = readonly [stage: StageDir, stateDir: string, systemd: SystemdUse];

export type TproxyDriftCheckArgs = readonly [stage: StageDir, nftTable: string, ...routes: PolicyRouteArgs, vip4: string, vip6: string, activationSet: string];

/* ---- the registry's types ------------------------------------------------------------------- */

/**
 * Every script by name: `env` for a cluster script, `args` for a node script run by remoteCommand,
 * `file` for a script only staged or installed beside another (it is run by that script or by the
 * node itself), `prelude` for shared code the loader inlines.
 */
export interface ScriptCatalog {
    readonly "kubeproxy/cluster-identity": { env: ClusterIdentityEnv };
    readonly "kubeproxy/cilium-values-snapshot": { env: CiliumValuesSnapshotEnv };
    readonly "kubeproxy/cilium-values-restore": { env: CiliumValuesRestoreEnv };
    readonly "kubeproxy/kpr-gate": { env: KprGateEnv };
    readonly "kubeproxy/kube-proxy-remove": { env: KubeProxyRemoveEnv };
    readonly "kubeproxy/kube-proxy-restore": { env: KubeProxyRestoreEnv };
    readonly "kubeproxy/kube-proxy-exclude": { env: KubeProxyExcludeEnv };
    readonly "kubeproxy/kube-proxy-include": { env: KubeProxyIncludeEnv };
    readonly "kubeproxy/post-migration-verify": { env: PostMigrationVerifyEnv };
    readonly "kubeproxy/kubeadm-proxy-disable": { env: KubeadmProxyEnv };
    readonly "kubeproxy/kubeadm-proxy-restore": { env: KubeadmProxyEnv };
    readonly "kubeproxy/kubeadm-proxy-status": { env: KubeadmProxyEnv };
    readonly "kubeproxy/cilium-upgrade-preflight": { env: CiliumUpgradePreflightEnv };
    readonly "cilium/release-identity": { env: ReleaseIdentityEnv };
    readonly "preflight/operator-preflight": { env: OperatorPreflightEnv };
    readonly "drift/cluster-observe": { env: ClusterObserveEnv };
    readonly "waves/node-config-crd-check": { env: NodeConfigCrdCheckEnv };
    readonly "waves/canary-adopt": { env: CanaryAdoptEnv };
    readonly "waves/kube-proxy-label-affinity": { env: WaveEnv };
    readonly "waves/kube-proxy-label-affinity-restore": { env: WaveEnv };
    readonly "waves/pending-gate": { env: WavePendingEnv };
    readonly "waves/node-drain": { env: WaveDrainEnv };
    readonly "waves/node-uncordon": { env: WaveNodeEnv };
    readonly "waves/node-step-kept": { env: WaveStepKeptEnv };
    readonly "waves/node-handover": { env: WaveNodeEnv };
    readonly "waves/node-handback": { env: WaveNodeEnv };
    readonly "waves/node-kpr-gate": { env: WaveNodeGateEnv };
    readonly "waves/node-services": { env: WaveNodeServicesEnv };
    readonly "waves/cluster-script-store": { env: ClusterScriptStoreEnv };
    readonly "waves/cluster-script-store-remove": { env: ClusterScriptStoreEnv };

    readonly "kubeproxy/stale-rules-cleanup": { args: StaleRulesCleanupArgs };
    readonly "kubeproxy/stale-rules-verify": { args: readonly [] };
    readonly "preflight/node-preflight": { args: NodePreflightArgs };
    readonly "tproxy/tproxy-apply": { args: TproxyApplyArgs };
    readonly "tproxy/tproxy-confirm": { args: TproxyStateArgs };
    readonly "tproxy/tproxy-remove": { args: TproxyStateArgs };
    readonly "tproxy/tproxy-drift-check": { args: TproxyDriftCheckArgs };

    /** Staged beside tproxy-apply.sh and installed into the state directory; run by the apply, revert and unit. */
    readonly "tproxy/policy-routes": { file: "policy routes" };
    readonly "tproxy/tproxy-revert": { file: "revert" };
    readonly "tproxy/tproxy-boot": { file: "boot" };
    /** Installed by the node bundle with its parameter block baked in (components/tproxy/keepalivedNotify.ts). */
    readonly "tproxy/keepalived-notify": { file: "keepalived notify" };
    /** POSIX sh, run by every node step's command text to stage, check and run the step's script (remoteCommand.ts). */
    readonly "commands/node-runner": { file: "node runner" };

    readonly "commands/env-checks": { prelude: "environment checks" };
    readonly "cilium/chart-source": { prelude: "Cilium chart source" };
    readonly "kubeproxy/cluster-lib": { prelude: "cluster" };
    readonly "kubeproxy/kubeadm-config-lib": { prelude: "kubeadm-config" };
    readonly "kubeproxy/kube-proxy-state": { prelude: "kube-proxy state" };
    readonly "preflight/preflight-lib": { prelude: "preflight" };
    readonly "waves/wave-lib": { prelude: "wave" };
    readonly "waves/script-store-names": { prelude: "cluster script store names" };
    readonly "tproxy/tproxy-lib": { prelude: "tproxy" };
}

export type ScriptName = keyof ScriptCatalog;
type NamesWith<K extends string> = { [N in ScriptName]: K extends keyof ScriptCatalog[N] ? N : never }[ScriptName];
/** Scripts run with bash on the operator's machine; their parameters are environment variables. */
export type ClusterScriptName = NamesWith<"env">;
/** Scripts run as root on a node; their parameters are positional arguments. */
export type NodeScriptName = NamesWith<"args">;
export type PreludeName = NamesWith<"prelude">;
/** The environment a cluster script reads: its own, and no other script's. */
export type ScriptEnv<N extends ClusterScriptName> = ScriptCatalog[N] extends { env: infer E } ? E : never;
/** The arguments a node script reads, in order. */
export type ScriptArgs<N extends NodeScriptName> = ScriptCatalog[N] extends { args: infer A } ? A : never;
