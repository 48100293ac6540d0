import * as semver from "semver";

/** The oldest chart whose values take kubeProxyReplacement as true/false. */
export const MINIMUM_CHART_VERSION = "1.14.0";

interface RemovedKey {
    readonly key: string;
    readonly removedIn: string;
    readonly instead: string;
}

/** Value keys the chart dropped; its schema has no additionalProperties, so Helm would ignore them silently. */
export const REMOVED_KEYS: readonly RemovedKey[] = [
    { key: "tunnel", removedIn: "1.15.0", instead: "set cilium.routingMode and cilium.tunnelProtocol" },
    { key: "nativeRoutingCIDR", removedIn: "1.12.0", instead: "set cilium.ipv4.nativeRoutingCidr" },
    { key: "nodePort.enabled", removedIn: "1.19.0", instead: "kubeProxyReplacement true enables NodePort" },
    { key: "hostPort.enabled", removedIn: "1.19.0", instead: "kubeProxyReplacement true enables HostPort" },
    { key: "externalIPs.enabled", removedIn: "1.19.0", instead: "kubeProxyReplacement true enables externalIPs" },
];

/** Value keys this program sets from typed config; overriding them through extraValues would bypass validation. */
export const TYPED_VALUE_KEYS: Readonly<Record<string, string>> = {
    "kubeProxyReplacement": "cilium.kubeProxyReplacement",
    "k8sServiceHost": "cilium.k8sServiceHost",
    "k8sServicePort": "cilium.k8sServicePort",
    "routingMode": "cilium.routingMode",
    "tunnelProtocol": "cilium.tunnelProtocol",
    "ipv4.enabled": "cilium.ipv4.enabled",
    "ipv6.enabled": "cilium.ipv6.enabled",
    "ipv4NativeRoutingCIDR": "cilium.ipv4.nativeRoutingCidr",
    "ipv6NativeRoutingCIDR": "cilium.ipv6.nativeRoutingCidr",
    "enableIPv4Masquerade": "cilium.ipv4.masquerade",
    "enableIPv6Masquerade": "cilium.ipv6.masquerade",
    "autoDirectNodeRoutes": "cilium.autoDirectNodeRoutes",
    "directRoutingSkipUnreachable": "cilium.directRoutingSkipUnreachable",
    "devices": "cilium.devices",
    "loadBalancer.algorithm": "cilium.loadBalancer.algorithm",
    "loadBalancer.mode": "cilium.loadBalancer.mode",
    "loadBalancer.dsrDispatch": "cilium.loadBalancer.mode",
    "maglev.tableSize": "cilium.maglev.tableSize",
    "maglev.hashSeed": "the generated seed (random.RandomBytes)",
    "bpf.masquerade": "cilium.bpfMasquerade",
    "bpf.hostLegacyRouting": "cilium.hostLegacyRouting",
    "bpf.lbExternalClusterIP": "cilium.loadBalancer.externalClusterIP",
    "socketLB.enabled": "kubeProxyReplacement (always on with KPR)",
    "operator.replicas": "cilium.operatorReplicas",
};

/** Flattens nested values into dotted key paths ("a.b.c"); arrays are leaves. */
export function valueKeyPaths(values: Readonly<Record<string, unknown>>, prefix = ""): string[] {
    return Object.entries(values).flatMap(([key, value]) => {
        const path = prefix === "" ? key : `${prefix}.${key}`;
        return value !== null && typeof value === "object" && !Array.isArray(value) ? valueKeyPaths(value as Record<string, unknown>, path) : [path];
    });
}

/** Keys in extraValues that the given chart version no longer has, or that typed config owns. */
export function removedValueKeys(chartVersion: string, extraValues: Readonly<Record<string, unknown>>): { key: string; reason: string }[] {
    const problems: { key: string; reason: string }[] = [];
    for (const path of valueKeyPaths(extraValues)) {
        const removed = REMOVED_KEYS.find((r) => r.key === path);
        if (removed && semver.gte(chartVersion, removed.removedIn)) {
            problems.push({
                key: path,
                reason: `${path} no longer exists in chart ${chartVersion} (removed in ${removed.removedIn}; Helm would ignore it silently): ${removed.instead}`,
            });
            continue;
        }
        const owner = TYPED_VALUE_KEYS[path];
        if (owner !== undefined) problems.push({ key: path, reason: `${path} is set from ${owner}; set it there, not in extraValues` });
    }
    return problems;
}
