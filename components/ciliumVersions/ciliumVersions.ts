import * as semver from "semver";
import { cidrContains, parseAddress, parseCidr } from "../config/addresses";

/*
 * Everything this program knows that depends on the Cilium version, in one place. A neutral module:
 * config validation, the feature folders and the scripts' parameters all read it, and it imports no
 * feature folder. The chart's value keys and the cilium-config mapping it was checked against are the
 * data files in ./chartKeys (see its README). To support a new Cilium minor: transcribe its chart keys
 * there, extend the rules below (removed keys, known-bad ranges, status shapes), and move
 * NEWEST_CHART_MINOR_WITH_RULES.
 */

// --- Supported chart versions ---------------------------------------------------------------------

/** The oldest chart whose values take kubeProxyReplacement as true/false. */
export const MINIMUM_CHART_VERSION = "1.14.0";

/**
 * The newest Cilium chart minor whose values this program was checked against: REMOVED_KEYS and the key
 * set in ./chartKeys/values-1.19.0.json stop at 1.19. A newer minor may drop or rename keys that Helm then
 * ignores silently (the schema has no additionalProperties), so it is refused unless
 * cilium.allowUntestedChartVersion says otherwise.
 */
export const NEWEST_CHART_MINOR_WITH_RULES = "1.19";

/** Whether a valid chart version falls in a minor from MINIMUM_CHART_VERSION to NEWEST_CHART_MINOR_WITH_RULES (pre-releases included). */
export function chartMinorHasRules(version: string): boolean {
    const parsed = semver.parse(version);
    const [newestMajor, newestMinor] = NEWEST_CHART_MINOR_WITH_RULES.split(".").map(Number) as [number, number];
    const oldest = semver.parse(MINIMUM_CHART_VERSION)!;
    if (parsed === null) return false;
    const minorIndex = (major: number, minor: number) => major * 1000 + minor;
    const at = minorIndex(parsed.major, parsed.minor);
    return at >= minorIndex(oldest.major, oldest.minor) && at <= minorIndex(newestMajor, newestMinor);
}

// --- Values: removed keys, removed kubeProxyReplacement modes, keys typed config owns ---------------

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

/** kubeProxyReplacement values agents reject since Cilium 1.16 (only "true"/"false" remain). */
export const REMOVED_KPR_MODES: readonly string[] = ["strict", "partial", "probe", "disabled"];
export const KPR_MODES_REMOVED_IN = "1.16";

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

// --- Upgrades between chart versions ------------------------------------------------------------------

export interface UpgradeSettings {
    readonly chartVersion: string;
    readonly upgradeFrom?: string;
    readonly reuseValues: boolean;
}

/** Whether the run changes the release's chart version (cilium.upgradeFrom set and different). */
export function isChartUpgrade(cilium: Pick<UpgradeSettings, "chartVersion" | "upgradeFrom">): cilium is { chartVersion: string; upgradeFrom: string } {
    return cilium.upgradeFrom !== undefined && cilium.upgradeFrom !== cilium.chartVersion;
}

export interface UpgradeConfigProblem {
    /** Key under cilium., e.g. "reuseValues". */
    readonly key: string;
    readonly message: string;
}

/**
 * Config problems of an upgrade: reuse-values asked for explicitly across chart versions (Cilium's upgrade
 * guide, "Upgrading Cilium": `--reuse-values` "may only be safely used if the Cilium chart version remains
 * unchanged"), and a jump of more than one minor release (the guide: "Always perform upgrades and rollbacks
 * between one minor release at a time").
 */
export function upgradeConfigProblems(cilium: UpgradeSettings, reuseValuesSetExplicitly: boolean): UpgradeConfigProblem[] {
    if (!isChartUpgrade(cilium) || semver.valid(cilium.upgradeFrom) === null || semver.valid(cilium.chartVersion) === null) return [];
    const path = { from: cilium.upgradeFrom, to: cilium.chartVersion };
    const problems: UpgradeConfigProblem[] = [];
    if (reuseValuesSetExplicitly && cilium.reuseValues) {
        problems.push({
            key: "reuseValues",
            message: `must not be true while upgrading the chart from ${path.from} to ${path.to}: Cilium's upgrade guide allows --reuse-values only with an unchanged chart version (remove the key; the release then gets the full values)`,
        });
    }
    const from = semver.parse(path.from)!;
    const to = semver.parse(path.to)!;
    if (from.major !== to.major || Math.abs(from.minor - to.minor) > 1) {
        problems.push({
            key: "upgradeFrom",
            message: `${path.from} -> ${path.to} skips a minor release; Cilium only tests upgrades and rollbacks between consecutive minor releases (upgrade to ${from.major}.${from.minor + (to.minor > from.minor ? 1 : -1)}.x first)`,
        });
    }
    return problems;
}

// --- Known-bad ranges -----------------------------------------------------------------------------------

/**
 * cilium/cilium#44464: with kube-proxy in IPVS mode, 1.19 agents hang in Init (build-config cannot reach the
 * API server). Filed against ">= v1.19.0 and < v1.20.0"; the one proposed fix (cilium/cilium#46819) was
 * closed unmerged and no 1.19.x release note names the issue (README "kube-proxy in IPVS mode and Cilium
 * 1.19"). So every 1.19.x (pre-releases included) is refused, and later versions are only warned about:
 * neither affected nor fixed is confirmed. operator-preflight.sh gets the verdict as IPVS_HANG.
 */
export const IPVS_INIT_HANG = {
    issue: "cilium/cilium#44464",
    /** The affected minor, as the refusal names it. */
    affectedMinor: "1.19",
    /** The minor to migrate with instead, as the refusal suggests. */
    safeMinor: "1.18",
    refused: ">=1.19.0-0 <1.20.0-0",
    unconfirmed: ">=1.20.0-0",
} as const;

/** refuse: known affected; warn: not confirmed either way; none: before the affected range. */
export type IpvsHangVerdict = "refuse" | "warn" | "none";

export function ipvsInitHangVerdict(chartVersion: string): IpvsHangVerdict {
    const options = { includePrerelease: true };
    if (semver.satisfies(chartVersion, IPVS_INIT_HANG.refused, options)) return "refuse";
    if (semver.satisfies(chartVersion, IPVS_INIT_HANG.unconfirmed, options)) return "warn";
    return "none";
}

/** The environment operator-preflight.sh reads about the target version: the version itself and the #44464 verdict. */
export function operatorPreflightVersionEnv(chartVersion: string): {
    readonly CILIUM_VERSION: string;
    readonly IPVS_HANG: IpvsHangVerdict;
    readonly IPVS_HANG_MINOR: string;
    readonly IPVS_SAFE_MINOR: string;
} {
    return {
        CILIUM_VERSION: chartVersion,
        IPVS_HANG: ipvsInitHangVerdict(chartVersion),
        IPVS_HANG_MINOR: IPVS_INIT_HANG.affectedMinor,
        IPVS_SAFE_MINOR: IPVS_INIT_HANG.safeMinor,
    };
}

// --- NodePort addresses -----------------------------------------------------------------------------------

/**
 * Whether Cilium serves NodePorts on `address` once it is on one of Cilium's devices, given
 * cilium.nodePortAddresses (the agent's --nodeport-addresses). Cilium 1.19 marks an address for NodePort
 * when it lies in one of those CIDRs (pkg/datapath/tables/node_address.go, getAddressesFromDevice); with none
 * given, one address per device and family is used (the Kubernetes node IP where it is), never a VIP beside it.
 */
export function servesNodePortsOn(nodePortAddresses: readonly string[] | undefined, address: string): boolean {
    if (nodePortAddresses === undefined) return false;
    const ip = parseAddress(address);
    if (typeof ip === "string") return false;
    return nodePortAddresses.some((text) => {
        const cidr = parseCidr(text);
        return typeof cidr !== "string" && cidrContains(cidr, ip);
    });
}

// --- CiliumNodeConfig ---------------------------------------------------------------------------------------

/**
 * `cilium.io/v2` is served and the storage version since Cilium 1.16 (pkg/k8s/apis/cilium.io/v2/cnc_types.go
 * `+kubebuilder:storageversion`; pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnodeconfigs.yaml); v2alpha1 is
 * deprecated (cilium/cilium#37403). node-config-crd-check.sh gets the group version as NODE_CONFIG_VERSION.
 */
export const NODE_CONFIG_API_VERSION = "cilium.io/v2";
export const NODE_CONFIG_CRD = "ciliumnodeconfigs.cilium.io";
/** The first Cilium minor that serves NODE_CONFIG_API_VERSION, as the CRD check's refusal names it. */
export const NODE_CONFIG_SINCE_MINOR = "1.16";

/** The environment node-config-crd-check.sh reads: which CRD version to require, and since which Cilium. */
export const NODE_CONFIG_CHECK_ENV = {
    NODE_CONFIG_VERSION: NODE_CONFIG_API_VERSION.split("/")[1]!,
    NODE_CONFIG_SINCE: NODE_CONFIG_SINCE_MINOR,
} as const;

// --- What the agents report: `cilium-dbg status -o json` ------------------------------------------------

/**
 * The KPR part of `cilium-dbg status -o json`, as a jq filter (the cluster prelude,
 * components/kubeproxy/scripts/cluster-lib.sh, carries this text as KPR_STATUS_JQ): it turns
 * the agent's status document into {mode, socketLB, nodePort, active}. The agent reports, under
 * "kube-proxy-replacement", mode "True" and features.socketLB/nodePort.enabled; it omits false booleans
 * (Go `omitempty`), so an absent field counts as false, and mode is null when the key is absent. active:
 * mode "True" with socket LB and NodePort on. A document that is not an object gives mode null.
 */
export const KPR_STATUS_JQ =
    '(if type == "object" then .["kube-proxy-replacement"] else null end) as $kpr' +
    " | {mode: ($kpr.mode // null), socketLB: ($kpr.features.socketLB.enabled == true), nodePort: ($kpr.features.nodePort.enabled == true)}" +
    ' | .active = (.mode == "True" and .socketLB and .nodePort)';
