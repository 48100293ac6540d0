import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import type { MigrationConfig } from "../config/validate";
import type { CiliumSettings } from "../config/schema";
import { clusterCommand } from "../commands/clusterCommand";
import { STEP } from "../resourceNames";
import { migrationScope } from "../config/migratedNodes";
import { upgradePath } from "../cilium/upgradePath";

/** ConfigMap (in Cilium's namespace) holding the release's values from before the migration. */
export const VALUES_SNAPSHOT_CONFIGMAP = "cilium-kpr-pre-migration-values";

/**
 * A replacement is create-before-delete unless `deleteBeforeReplace` is set (pulumi/pulumi
 * pkg/resource/deploy/step_generator.go: the provider's diff decides unless the resource option does,
 * and the command provider never asks for delete-first; otherwise a CreateReplacementStep runs first
 * and the old resource is deleted at the end). For a step whose delete undoes what its
 * create did (restore kube-proxy, put its affinity back, roll Cilium's values back) the old delete
 * would run after the new create and undo it: `pulumi up --replace` must delete first.
 */
const DELETE_BEFORE_REPLACE = { deleteBeforeReplace: true } as const;

/*
 * Every step function here takes what it waits for the same way: in `opts.dependsOn`, given by the
 * graph (components/migration.ts), and merges its own options over the caller's with
 * pulumi.mergeOptions (sdk/nodejs/resource.ts: `dependsOn` is always concatenated, never replaced).
 */

/** Which release and chart the values snapshot/restore and the upgrade preflight act on. */
function ciliumChartEnv(cilium: CiliumSettings) {
    return {
        CILIUM_NAMESPACE: cilium.namespace,
        CILIUM_RELEASE: cilium.releaseName,
        CILIUM_CHART: cilium.chart,
        CILIUM_CHART_VERSION: cilium.chartVersion,
        CILIUM_REPOSITORY: cilium.repository,
    };
}

/**
 * Captures the existing release's values before the release is first upgraded. Its delete, on
 * `pulumi destroy`, returns Cilium to those values, and refuses to unless kube-proxy is serving again.
 */
export function valuesSnapshot(config: MigrationConfig, opts: pulumi.CustomResourceOptions): command.local.Command {
    const { cilium, cluster } = config;
    return clusterCommand(
        STEP.valuesSnapshot,
        {
            cluster,
            create: "kubeproxy/cilium-values-snapshot",
            delete: "kubeproxy/cilium-values-restore",
            // One environment serves both scripts: delete runs with what was stored at create.
            environment: {
                ...ciliumChartEnv(cilium),
                SNAPSHOT_CONFIGMAP: VALUES_SNAPSHOT_CONFIGMAP,
                KUBE_PROXY_NAMESPACE: cluster.kubeProxy.namespace,
                KUBE_PROXY_DAEMONSET: cluster.kubeProxy.daemonSet,
            },
        },
        pulumi.mergeOptions(opts, DELETE_BEFORE_REPLACE),
    );
}

/**
 * Before the release changes: reads the version the release runs and holds it to the path planned
 * from config (components/cilium/upgradePath.ts). Same version: refuses if the release runs
 * another chart. Chart upgrade: refuses values the release has that the program does not send,
 * then pre-pulls the new image on every node (Cilium's pre-flight DaemonSet) and removes it again.
 * Its environment holds the chart versions and the values, so any change of them runs it again
 * (pulumi-command re-runs create on update); it has no delete, nothing it creates outlives it.
 */
export function ciliumUpgradePreflight(config: MigrationConfig, values: pulumi.Output<unknown>, opts: pulumi.CustomResourceOptions): command.local.Command {
    const { cilium } = config;
    const path = upgradePath(cilium);
    return clusterCommand(
        STEP.ciliumUpgradePreflight,
        {
            cluster: config.cluster,
            create: "kubeproxy/cilium-upgrade-preflight",
            environment: {
                ...ciliumChartEnv(cilium),
                UPGRADE_FROM: path.kind === "chart-upgrade" ? path.from : "",
                CILIUM_VALUES_JSON: values.apply((v) => JSON.stringify(v)),
            },
        },
        opts,
    );
}

export interface KprGateArgs {
    readonly config: MigrationConfig;
    /** The release's values: the gate runs again whenever they change (it runs after the release: opts.dependsOn). */
    readonly values: pulumi.Output<unknown>;
    /** What else the agents were last checked for (which nodes, which chart): a change runs the gate again. */
    readonly scope: readonly string[];
}

/**
 * The KPR gate: waits for the Cilium rollout, then requires every agent to report kube-proxy
 * replacement with socket LB and NodePort. Replaced (so re-run) whenever the release's values or the scope change.
 */
export function kprGate(args: KprGateArgs, opts: pulumi.CustomResourceOptions): command.local.Command {
    return clusterCommand(
        STEP.kprGate,
        {
            cluster: args.config.cluster,
            create: "kubeproxy/kpr-gate",
            environment: { CILIUM_NAMESPACE: args.config.cilium.namespace },
            triggers: [args.values.apply((v) => JSON.stringify(v)), ...args.scope],
        },
        opts,
    );
}

/**
 * kube-proxy removal: backs up the DaemonSet and ConfigMap into a ConfigMap in the cluster (so the
 * backup survives loss of Pulumi state), deletes them and waits for the pods to go. Its delete
 * restores kube-proxy from the backup and waits for the rollout; because the values rollback depends
 * on it being gone first, kube-proxy serves again before KPR is turned off.
 */
export function kubeProxyRemoval(config: MigrationConfig, opts: pulumi.CustomResourceOptions): command.local.Command {
    const kp = config.cluster.kubeProxy;
    return clusterCommand(
        STEP.kubeProxyRemoval,
        {
            cluster: config.cluster,
            create: "kubeproxy/kube-proxy-remove",
            delete: "kubeproxy/kube-proxy-restore",
            environment: {
                KUBE_PROXY_NAMESPACE: kp.namespace,
                KUBE_PROXY_DAEMONSET: kp.daemonSet,
                KUBE_PROXY_CONFIGMAP: kp.configMap,
                KUBE_PROXY_BACKUP_CONFIGMAP: kp.backupConfigMap,
                ROLLOUT_TIMEOUT: kp.rolloutTimeoutSeconds,
            },
        },
        pulumi.mergeOptions(opts, DELETE_BEFORE_REPLACE),
    );
}

/**
 * The canary form of the removal (`migration.canaryNodes`): kube-proxy's DaemonSet is kept off the
 * canary nodes only, and waited for until no kube-proxy pod is left on them. Its delete puts the
 * DaemonSet's affinity back and waits for kube-proxy to serve every node again; it changes nothing
 * once the full removal has deleted the DaemonSet (whose backup then holds the pre-canary affinity).
 */
export function kubeProxyCanaryExclusion(config: MigrationConfig, opts: pulumi.CustomResourceOptions): command.local.Command {
    const kp = config.cluster.kubeProxy;
    return clusterCommand(
        STEP.kubeProxyCanaryExclusion,
        {
            cluster: config.cluster,
            create: "kubeproxy/kube-proxy-exclude",
            delete: "kubeproxy/kube-proxy-include",
            environment: {
                CANARY_NODES: config.migration.canaryNodes.join(" "),
                KUBE_PROXY_NAMESPACE: kp.namespace,
                KUBE_PROXY_DAEMONSET: kp.daemonSet,
                ROLLOUT_TIMEOUT: kp.rolloutTimeoutSeconds,
            },
        },
        pulumi.mergeOptions(opts, DELETE_BEFORE_REPLACE),
    );
}

/** Backup (in kube-system) of kubeadm's ClusterConfiguration from before proxy.disabled was set. */
export const KUBEADM_CONFIG_BACKUP_CONFIGMAP = "kubeadm-config-pre-cilium-kpr-backup";

/**
 * Sets `proxy.disabled: true` in kubeadm's ClusterConfiguration after kube-proxy is removed, so a
 * `kubeadm upgrade` does not install it again (kubeadm#3137); tells the operator to pass
 * `--skip-phases=addon/kube-proxy` from now on. Its delete puts the proxy block back before
 * kube-proxy is restored. A replacement must delete (restore) before it creates again: the other
 * order would let the old delete undo the new create.
 */
export function kubeadmProxyDisabled(config: MigrationConfig, opts: pulumi.CustomResourceOptions): command.local.Command {
    return clusterCommand(
        STEP.kubeadmProxyDisabled,
        {
            cluster: config.cluster,
            create: "kubeproxy/kubeadm-proxy-disable",
            delete: "kubeproxy/kubeadm-proxy-restore",
            environment: { KUBEADM_BACKUP_CONFIGMAP: KUBEADM_CONFIG_BACKUP_CONFIGMAP },
        },
        pulumi.mergeOptions(opts, DELETE_BEFORE_REPLACE),
    );
}

/** Every agent lists services, the kubernetes Service among them. */
export function postMigrationVerification(config: MigrationConfig, opts: pulumi.CustomResourceOptions): command.local.Command {
    return clusterCommand(
        STEP.verification,
        {
            cluster: config.cluster,
            create: "kubeproxy/post-migration-verify",
            environment: { CILIUM_NAMESPACE: config.cilium.namespace },
            triggers: [migrationScope(config)],
        },
        opts,
    );
}
