import type { CiliumSettings } from "../config/schema";

export type HelmValues = Record<string, unknown>;

/**
 * The Helm values for the Cilium release: a pure function of validated config.
 * `maglevHashSeed` is the base64 of 12 random bytes kept in Pulumi state (random.RandomBytes),
 * so every agent hashes with the same seed; it is only used when the algorithm is maglev.
 */
export function ciliumValues(cilium: CiliumSettings, maglevHashSeed?: string): HelmValues {
    const typed: HelmValues = {
        // 1.16+ agents only accept "true"/"false"; the chart quotes this boolean into cilium-config.
        kubeProxyReplacement: cilium.kubeProxyReplacement,
        routingMode: cilium.routingMode,
        ipv4: { enabled: cilium.ipv4.enabled },
        ipv6: { enabled: cilium.ipv6.enabled },
    };
    if (cilium.routingMode === "tunnel") typed.tunnelProtocol = cilium.tunnelProtocol;
    if (cilium.k8sServiceHost !== undefined) typed.k8sServiceHost = cilium.k8sServiceHost;
    if (cilium.k8sServicePort !== undefined) typed.k8sServicePort = cilium.k8sServicePort;

    if (cilium.kubeProxyReplacement) {
        typed.socketLB = { enabled: true };
        const loadBalancer: HelmValues = { algorithm: cilium.loadBalancer.algorithm, mode: cilium.loadBalancer.mode };
        if (cilium.loadBalancer.mode !== "snat" && cilium.routingMode === "tunnel") loadBalancer.dsrDispatch = "geneve";
        typed.loadBalancer = loadBalancer;
        if (cilium.nodePortAddresses !== undefined) typed.nodePort = { addresses: [...cilium.nodePortAddresses] };
        if (cilium.loadBalancer.algorithm === "maglev") {
            if (maglevHashSeed === undefined) throw new Error("maglev needs the generated hash seed");
            typed.maglev = { tableSize: cilium.maglev.tableSize, hashSeed: maglevHashSeed };
        }
    }

    const bpf: HelmValues = { masquerade: cilium.bpfMasquerade };
    if (cilium.hostLegacyRouting) bpf.hostLegacyRouting = true;
    if (cilium.loadBalancer.externalClusterIP) bpf.lbExternalClusterIP = true;
    typed.bpf = bpf;

    if (cilium.routingMode === "native") {
        if (cilium.ipv4.enabled && cilium.ipv4.nativeRoutingCidr !== undefined) typed.ipv4NativeRoutingCIDR = cilium.ipv4.nativeRoutingCidr;
        if (cilium.ipv6.enabled && cilium.ipv6.nativeRoutingCidr !== undefined) typed.ipv6NativeRoutingCIDR = cilium.ipv6.nativeRoutingCidr;
        if (cilium.autoDirectNodeRoutes) typed.autoDirectNodeRoutes = true;
        if (cilium.directRoutingSkipUnreachable !== undefined) typed.directRoutingSkipUnreachable = cilium.directRoutingSkipUnreachable;
    }
    if (cilium.ipv4.enabled && cilium.ipv4.masquerade !== undefined) typed.enableIPv4Masquerade = cilium.ipv4.masquerade;
    if (cilium.ipv6.enabled && cilium.ipv6.masquerade !== undefined) typed.enableIPv6Masquerade = cilium.ipv6.masquerade;
    if (cilium.devices !== undefined) typed.devices = [...cilium.devices];
    // A change that only touches cilium-config must restart the agents and the operator, or they keep
    // running with the old settings: the chart then stamps a checksum of the ConfigMap into both pod
    // templates (values-1.19.0 transcription in chartKeys/: `rollOutCiliumPods`, `operator.rollOutPods`).
    typed.rollOutCiliumPods = true;
    typed.operator = { rollOutPods: true, ...(cilium.operatorReplicas !== undefined ? { replicas: cilium.operatorReplicas } : {}) };

    return deepMerge(cilium.extraValues, typed);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
    return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Merges `top` over `base`; nested objects merge, everything else is replaced. */
export function deepMerge(base: Readonly<Record<string, unknown>>, top: Readonly<Record<string, unknown>>): HelmValues {
    const out: HelmValues = { ...base };
    for (const [key, value] of Object.entries(top)) {
        const existing = out[key];
        out[key] = isPlainObject(existing) && isPlainObject(value) ? deepMerge(existing, value) : value;
    }
    return out;
}
