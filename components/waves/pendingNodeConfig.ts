import type { CiliumSettings } from "../config/schema";
import { MIGRATED_LABEL, MIGRATED_LABEL_VALUE } from "./wavePlan";
import { NODE_CONFIG_API_VERSION } from "../ciliumVersions/ciliumVersions";

/**
 * The CiliumNodeConfig that keeps every node not yet migrated on kube-proxy while the release
 * already carries the final (KPR) values.
 *
 * Checked against Cilium's sources (see README "Per-node migration: how Cilium resolves its config"):
 * - its API version (`cilium.io/v2`, ../ciliumVersions/ciliumVersions.ts NODE_CONFIG_API_VERSION).
 * - `spec.defaults` is "treated the same as the cilium-config ConfigMap"; `spec.nodeSelector` is a
 *   label selector, nil selects no node, empty selects all (cnc_types.go).
 * - The agent's init container resolves cilium-config, then the matching CiliumNodeConfigs over it
 *   (cilium-dbg build-config default sources; pkg/option/resolver mergeConfig: later sources win);
 *   several matching objects apply in name order, later names winning.
 * - `NotIn` matches a node that lacks the label as well (Kubernetes label selector semantics), so
 *   every node without `cilium-kpr.io/kpr-migrated=true` is selected.
 */
export const PENDING_NODE_CONFIG_NAME = "cilium-kpr-kube-proxy-pending";

export interface PendingNodeConfig {
    readonly apiVersion: typeof NODE_CONFIG_API_VERSION;
    readonly kind: "CiliumNodeConfig";
    readonly metadata: { readonly name: string; readonly namespace: string; readonly labels: Readonly<Record<string, string>> };
    readonly spec: {
        readonly nodeSelector: { readonly matchExpressions: readonly { key: string; operator: "NotIn"; values: string[] }[] };
        readonly defaults: Readonly<Record<string, string>>;
    };
}

/**
 * The cilium-config keys the final values turn on because of KPR, pinned to what a node served by
 * kube-proxy runs with. `bpf-lb-sock` matters most: socket LB alone would translate ClusterIPs at
 * connect() on a node where kube-proxy still serves. BPF masquerade needs KPR (the project refuses
 * it without, validate.ts), so a node without KPR had it off before the migration.
 */
export function pendingDefaults(cilium: CiliumSettings): Record<string, string> {
    const defaults: Record<string, string> = {
        "kube-proxy-replacement": "false",
        // kube-proxy's own health server holds :10256 on these nodes.
        "kube-proxy-replacement-healthz-bind-address": "",
        "bpf-lb-sock": "false",
    };
    if (cilium.bpfMasquerade) defaults["enable-bpf-masquerade"] = "false";
    return defaults;
}

export function pendingNodeConfig(cilium: CiliumSettings): PendingNodeConfig {
    return {
        apiVersion: NODE_CONFIG_API_VERSION,
        kind: "CiliumNodeConfig",
        metadata: {
            name: PENDING_NODE_CONFIG_NAME,
            namespace: cilium.namespace,
            labels: { "app.kubernetes.io/managed-by": "cilium-kpr" },
        },
        spec: {
            nodeSelector: { matchExpressions: [{ key: MIGRATED_LABEL, operator: "NotIn", values: [MIGRATED_LABEL_VALUE] }] },
            defaults: pendingDefaults(cilium),
        },
    };
}

/** The required node affinity term that keeps kube-proxy off migrated nodes. */
export function kubeProxyExclusionTerm(): { matchExpressions: { key: string; operator: "NotIn"; values: string[] }[] } {
    return { matchExpressions: [{ key: MIGRATED_LABEL, operator: "NotIn", values: [MIGRATED_LABEL_VALUE] }] };
}

/** Values the wave path adds to the release: KPR's health server on kube-proxy's port (Cilium's rollout example). */
export function waveReleaseValues(): Record<string, unknown> {
    return { kubeProxyReplacementHealthzBindAddr: "0.0.0.0:10256" };
}
