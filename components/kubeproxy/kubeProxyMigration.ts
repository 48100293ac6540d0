import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import type { MigrationConfig } from "../config/validate";
import { clusterCommand } from "../commands/clusterCommand";
import { STEP } from "../resourceNames";

export interface KprGateArgs {
    readonly config: MigrationConfig;
    /** The Helm release; the gate runs after it and again whenever its values change. */
    readonly release: pulumi.Resource;
    readonly values: pulumi.Output<unknown>;
}

/** Environment shared by the scripts that look at Cilium. */
function ciliumEnvironment(config: MigrationConfig): Record<string, string> {
    return { CILIUM_NAMESPACE: config.cilium.namespace };
}

function kubeProxyEnvironment(config: MigrationConfig): Record<string, string> {
    const kp = config.cluster.kubeProxy;
    return {
        KUBE_PROXY_NAMESPACE: kp.namespace,
        KUBE_PROXY_DAEMONSET: kp.daemonSet,
        KUBE_PROXY_CONFIGMAP: kp.configMap,
        KUBE_PROXY_BACKUP_CONFIGMAP: kp.backupConfigMap,
    };
}

/**
 * The KPR gate: waits for the Cilium rollout, then requires every agent to report kube-proxy
 * replacement with socket LB and NodePort. Replaced (so re-run) whenever the release's values change.
 */
export function kprGate(args: KprGateArgs, opts: pulumi.CustomResourceOptions): command.local.Command {
    return clusterCommand(STEP.kprGate, {
        cluster: args.config.cluster,
        create: "kubeproxy/scripts/kpr-gate.sh",
        environment: ciliumEnvironment(args.config),
        triggers: [args.values.apply((v) => JSON.stringify(v))],
    }, { ...opts, dependsOn: [args.release] });
}

/**
 * kube-proxy removal: backs up the DaemonSet and ConfigMap into a ConfigMap in the cluster (so the
 * backup survives loss of Pulumi state), deletes them and waits for the pods to go. Its delete
 * restores kube-proxy from the backup and waits for the rollout; because everything that rolls
 * Cilium back depends on it being gone first, kube-proxy serves again before KPR is turned off.
 */
export function kubeProxyRemoval(config: MigrationConfig, gate: pulumi.Resource, opts: pulumi.CustomResourceOptions): command.local.Command {
    return clusterCommand(STEP.kubeProxyRemoval, {
        cluster: config.cluster,
        create: "kubeproxy/scripts/kube-proxy-remove.sh",
        delete: "kubeproxy/scripts/kube-proxy-restore.sh",
        environment: kubeProxyEnvironment(config),
    }, { ...opts, dependsOn: [gate] });
}
