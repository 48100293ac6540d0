import { join } from "node:path";
import { scriptText } from "../commands/scriptFile";

/*
 * The kube-proxy removal scripts and their inputs. The scripts are real files (shellcheck-clean,
 * tested by execution); components embed their text verbatim as command text and pass
 * parameters through the environment described by the types below (node-side scripts take
 * their one parameter as a positional argument instead, see StaleRulesCleanupArgs).
 * Every script prints progress to stderr and one JSON summary line as its last stdout line.
 */

export const SCRIPTS_DIR = join(__dirname, "scripts");

/** Scripts run on the operator's machine with kubectl (and helm) against the cluster. */
export const CLUSTER_SCRIPTS = [
    "cluster-identity",
    "cilium-values-snapshot",
    "cilium-values-restore",
    "kpr-gate",
    "kube-proxy-remove",
    "kube-proxy-restore",
    "kube-proxy-exclude",
    "kube-proxy-include",
    "post-migration-verify",
    "kubeadm-proxy-disable",
    "kubeadm-proxy-restore",
    "kubeadm-proxy-status",
    "cilium-upgrade-preflight",
] as const;

/** The prelude the cluster scripts source as files and have inlined when embedded. */
export const CLUSTER_SCRIPT_PRELUDE = "cluster-lib";
/** The kubeadm-config scripts' second prelude (sourced after cluster-lib). */
export const KUBEADM_SCRIPT_PRELUDE = "kubeadm-config-lib";

/** Scripts run as root on each node over SSH. */
export const NODE_SCRIPTS = ["stale-rules-cleanup", "stale-rules-verify"] as const;

/** The prelude the node scripts source as files and have inlined when embedded: what kube-proxy leaves, per mode. */
export const NODE_SCRIPT_PRELUDE = "kube-proxy-state";

export type ClusterScriptName = (typeof CLUSTER_SCRIPTS)[number];
export type NodeScriptName = (typeof NODE_SCRIPTS)[number];
export type ScriptName = ClusterScriptName | NodeScriptName;

export function scriptPath(name: ScriptName): string {
    return join(SCRIPTS_DIR, `${name}.sh`);
}

/** The script's full text as embedded in a command (its shared prelude inlined). */
export function readScript(name: ScriptName): string {
    return scriptText(`kubeproxy/scripts/${name}.sh`);
}

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

/** The environment each cluster-side script reads (unset optional fields take the script's default). */
export interface ClusterScriptEnv {
    readonly "cluster-identity": ClusterIdentityEnv;
    readonly "cilium-values-snapshot": CiliumValuesSnapshotEnv;
    readonly "cilium-values-restore": CiliumValuesRestoreEnv;
    readonly "kpr-gate": KprGateEnv;
    readonly "kube-proxy-remove": KubeProxyRemoveEnv;
    readonly "kube-proxy-restore": KubeProxyRestoreEnv;
    readonly "kube-proxy-exclude": KubeProxyExcludeEnv;
    readonly "kube-proxy-include": KubeProxyIncludeEnv;
    readonly "post-migration-verify": PostMigrationVerifyEnv;
    readonly "kubeadm-proxy-disable": KubeadmProxyEnv;
    readonly "kubeadm-proxy-restore": KubeadmProxyEnv;
    readonly "kubeadm-proxy-status": KubeadmProxyEnv;
    readonly "cilium-upgrade-preflight": CiliumUpgradePreflightEnv;
}

/** Positional arguments of the node-side cleanup: the iptables backend kube-proxy used. */
export type StaleRulesCleanupArgs = readonly [backend: "auto" | "nft" | "legacy"];

/** Turns a typed script environment into the string map a process environment needs. */
export function scriptEnvironment<N extends ClusterScriptName>(_name: N, env: ClusterScriptEnv[N]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(env) as [string, string | number | undefined][]) {
        if (value !== undefined) out[key] = String(value);
    }
    return out;
}
