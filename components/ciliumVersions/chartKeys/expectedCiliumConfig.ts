import mappingData from "./configMapping-1.19.json";
/** Helm values as the release gets them (components/cilium/values.ts HelmValues). */
type HelmValues = Readonly<Record<string, unknown>>;

/**
 * A MODEL of how the Cilium 1.19 chart turns the value keys this program sets into the cilium-config
 * ConfigMap and the agent's environment. It is not a Helm renderer: it applies exactly the mappings in
 * configMapping-1.19.json (each with the template line it was read from), the chart defaults listed
 * there, and the two `fail` checks of the template that our keys can trigger. Keys we never set are ignored.
 */
export interface ExpectedCiliumConfig {
    readonly configMap: Readonly<Record<string, string>>;
    readonly agentEnv: Readonly<Record<string, string>>;
}

type When = "always" | "hasKey" | "notNull" | "truthy" | "hostSet";

interface Mapping {
    readonly value: string;
    readonly target: "configMap" | "agentEnv";
    readonly key: string;
    readonly when: When;
    readonly render: "string" | "joinSpace" | "joinComma";
    readonly chartDefault: string | null;
}

export const CONFIG_MAPPINGS: readonly Mapping[] = mappingData.mappings.map((m) => ({
    value: m.value,
    target: m.target === "agentEnv" ? "agentEnv" : "configMap",
    key: m.key,
    when: m.when as When,
    render: m.render === "joinSpace" || m.render === "joinComma" ? m.render : "string",
    chartDefault: m.chartDefault,
}));

interface Lookup {
    readonly found: boolean;
    readonly value: unknown;
}

function lookup(values: HelmValues, path: string): Lookup {
    let node: unknown = values;
    for (const part of path.split(".")) {
        if (node === null || typeof node !== "object" || Array.isArray(node) || !(part in node)) return { found: false, value: undefined };
        node = (node as Record<string, unknown>)[part];
    }
    return { found: true, value: node };
}

/** Go template truthiness for the value kinds our values use. */
function truthy(value: unknown): boolean {
    if (value === undefined || value === null || value === false || value === 0 || value === "") return false;
    if (Array.isArray(value)) return value.length > 0;
    return true;
}

function render(value: unknown, how: Mapping["render"]): string {
    if (how === "joinSpace" || how === "joinComma") {
        if (!Array.isArray(value)) throw new Error(`expected a list, got ${JSON.stringify(value)}`);
        return value.map(String).join(how === "joinSpace" ? " " : ",");
    }
    return String(value);
}

export function expectedCiliumConfig(values: HelmValues): ExpectedCiliumConfig {
    const configMap: Record<string, string> = {};
    const agentEnv: Record<string, string> = {};
    const hostSet = truthy(lookup(values, "k8sServiceHost").value);
    for (const m of CONFIG_MAPPINGS) {
        const { found, value } = lookup(values, m.value);
        const present = {
            always: found && value !== null && value !== "",
            hasKey: found,
            notNull: found && value !== null,
            truthy: truthy(value),
            hostSet: hostSet && found,
        }[m.when];
        let text: string | undefined;
        if (present) text = render(value, m.render);
        else if (m.when === "always" && m.chartDefault !== null) text = m.chartDefault;
        if (text === undefined) continue;
        (m.target === "agentEnv" ? agentEnv : configMap)[m.key] = text;
    }

    const kpr = configMap["kube-proxy-replacement"];
    if (kpr !== "true" && kpr !== "false") {
        throw new Error("kubeProxyReplacement must be explicitly set to a valid value (true or false) to continue.");
    }
    if (lookup(values, "k8sServiceHost").value === "auto") {
        throw new Error('k8sServiceHost "auto" is resolved by a cluster lookup at render time; this model does not cover it');
    }
    // The template's own checks for native routing read the raw values (nil enableIPv4Masquerade is false there).
    if (configMap["routing-mode"] === "native") {
        const v = (path: string) => lookup(values, path).value;
        const ipMasqAgent = truthy(v("ipMasqAgent.enabled"));
        if (truthy(v("ipv4.enabled") ?? true) && truthy(v("enableIPv4Masquerade")) && !ipMasqAgent && !truthy(v("ipv4NativeRoutingCIDR"))) {
            throw new Error(" ipv4NativeRoutingCIDR must be set when routingMode is native");
        }
        if (truthy(v("ipv6.enabled")) && truthy(v("enableIPv6Masquerade") ?? true) && !ipMasqAgent && !truthy(v("ipv6NativeRoutingCIDR"))) {
            throw new Error("ipv6NativeRoutingCIDR must be set when routingMode is native");
        }
    }
    return { configMap, agentEnv };
}
