import * as semver from "semver";
import { z } from "zod";
import { cidrContains, cidrCovers, parseAddress, parseCidr, type Family } from "./addresses";
import {
    ciliumSchema,
    clusterSchema,
    migrationSchema,
    nodeSchema,
    nodesSchema,
    tproxySchema,
    type CiliumSettings,
    type ClusterConfig,
    type MigrationSettings,
    type NodeConfig,
    type TproxyConfig,
} from "./schema";
import { removedValueKeys, MINIMUM_CHART_VERSION } from "../cilium/chartVersionRules";
import { checkWaves, usesWaves } from "../waves/wavePlan";

export interface MigrationConfig {
    readonly cluster: ClusterConfig;
    readonly cilium: CiliumSettings;
    readonly tproxy: TproxyConfig;
    readonly nodes: readonly NodeConfig[];
    readonly migration: MigrationSettings;
}

/** The stack configuration as read, before validation. */
export interface RawStackConfig {
    readonly cluster?: unknown;
    readonly cilium?: unknown;
    readonly tproxy?: unknown;
    readonly nodes?: unknown;
    readonly migration?: unknown;
    readonly hasSshPrivateKey: boolean;
}

export interface ConfigIssue {
    /** The full config key, e.g. "cilium-kpr:tproxy.port" or "cilium-kpr:nodes[2].name". */
    readonly key: string;
    readonly message: string;
}

export type ValidationResult = { readonly ok: true; readonly config: MigrationConfig } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

export class ConfigValidationError extends Error {
    constructor(readonly issues: readonly ConfigIssue[]) {
        super(
            `invalid stack configuration (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n` +
                issues.map((i) => `  - ${i.key}: ${i.message}`).join("\n"),
        );
        this.name = "ConfigValidationError";
    }
}

/**
 * Validates the whole stack configuration and reports every problem at once.
 * Each top-level key is parsed on its own so an error in one does not hide errors in another;
 * cross-key rules then run over whatever parsed.
 */
export function validateStackConfig(project: string, raw: RawStackConfig): ValidationResult {
    const issues: ConfigIssue[] = [];
    const report = (path: string, message: string) => issues.push({ key: `${project}:${path}`, message });

    const section = <S extends z.ZodType>(name: string, schema: S, value: unknown, required: boolean): z.output<S> | undefined => {
        if (value === undefined && required) {
            report(name, "is required");
            return undefined;
        }
        const parsed = schema.safeParse(value ?? {});
        if (parsed.success) return parsed.data;
        for (const issue of parsed.error.issues) report(joinPath(name, issue.path), issue.message);
        return undefined;
    };

    const cluster = section("cluster", clusterSchema, raw.cluster, true);
    const ciliumParsed = section("cilium", ciliumSchema, raw.cilium, true);
    const tproxy = section("tproxy", tproxySchema, raw.tproxy, false);
    const nodes = parseNodes(raw.nodes, report);
    const migration = section("migration", migrationSchema, raw.migration, false);
    if (!raw.hasSshPrivateKey) {
        report("sshPrivateKey", "is required: set it with `pulumi config set --secret sshPrivateKey < key` (it never appears in plan output)");
    }

    const cilium = ciliumParsed ? checkCilium(ciliumParsed, report) : undefined;
    if (cluster) checkCluster(cluster, report);
    if (cluster && cilium) checkClusterAgainstCilium(cluster, cilium, report);
    // Node and VIP placement only need the node networks, so check them even when another cluster key is bad.
    const nodeCidrs = cluster?.nodeCidrs ?? parseQuietly(clusterSchema.shape.nodeCidrs, (raw.cluster as { nodeCidrs?: unknown } | undefined)?.nodeCidrs);
    if (nodes) checkNodes(nodes, nodeCidrs, report);
    if (tproxy) checkTproxy(tproxy, nodeCidrs, report);
    if (migration) checkMigration(migration, nodes, ciliumParsed, report);

    if (issues.length > 0 || !cluster || !cilium || !tproxy || !nodes || !migration || nodes.some((n) => n === undefined)) return { ok: false, issues };
    return { ok: true, config: { cluster, cilium, tproxy, nodes: nodes as NodeConfig[], migration } };
}

function parseQuietly<S extends z.ZodType>(schema: S, value: unknown): z.output<S> | undefined {
    const parsed = schema.safeParse(value);
    return parsed.success ? parsed.data : undefined;
}

/** Parses each node on its own, so one bad node does not hide duplicates among the others. */
function parseNodes(value: unknown, report: Report): (NodeConfig | undefined)[] | undefined {
    const list = nodesSchema.safeParse(value);
    if (!Array.isArray(value)) {
        if (list.success) return list.data;
        for (const issue of list.error.issues) report(joinPath("nodes", issue.path), issue.message);
        return undefined;
    }
    if (value.length === 0) {
        report("nodes", "needs at least one node");
        return undefined;
    }
    return value.map((item, i) => {
        const parsed = nodeSchema.safeParse(item);
        if (parsed.success) return parsed.data;
        for (const issue of parsed.error.issues) report(joinPath(`nodes[${i}]`, issue.path), issue.message);
        return undefined;
    });
}

type Report = (path: string, message: string) => void;

function joinPath(base: string, path: readonly PropertyKey[]): string {
    return path.reduce<string>((acc, part) => (typeof part === "number" ? `${acc}[${part}]` : `${acc}.${String(part)}`), base);
}

const REMOVED_KPR_MODES = ["strict", "partial", "probe", "disabled"];

function checkCilium(parsed: z.output<typeof ciliumSchema>, report: Report): CiliumSettings | undefined {
    let ok = true;
    const fail = (path: string, message: string) => {
        ok = false;
        report(`cilium.${path}`, message);
    };

    if (semver.lt(parsed.chartVersion, MINIMUM_CHART_VERSION)) {
        fail("chartVersion", `${parsed.chartVersion} is older than ${MINIMUM_CHART_VERSION}, the oldest chart this program renders KPR values for`);
    }

    let kpr: boolean;
    const value = parsed.kubeProxyReplacement;
    if (typeof value === "boolean") {
        kpr = value;
    } else if (value === "true" || value === "false") {
        kpr = value === "true";
    } else {
        kpr = false;
        const why = REMOVED_KPR_MODES.includes(value)
            ? `"${value}" was removed in Cilium 1.16 (agents reject it); use true (was strict) or false`
            : `"${value}" must be true or false`;
        fail("kubeProxyReplacement", why);
    }

    if (kpr) {
        const host = parsed.k8sServiceHost;
        if (host === undefined || host === "") {
            fail(
                "k8sServiceHost",
                "is required when kubeProxyReplacement is true: agents cannot reach the API server through the kubernetes ClusterIP once kube-proxy is gone",
            );
        } else if (host === "auto") {
            fail("k8sServiceHost", '"auto" reads kube-public/cluster-info at start-up and breaks on IPv6 literals; give the API server\'s address or VIP');
        } else if (typeof parseAddress(host) === "string" && !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(host)) {
            fail("k8sServiceHost", `"${host}" is neither an IP address nor a DNS name`);
        }
        if (parsed.k8sServicePort === undefined) {
            fail("k8sServicePort", "is required when kubeProxyReplacement is true");
        }
    } else if (parsed.bpfMasquerade) {
        fail("bpfMasquerade", "BPF masquerade needs kubeProxyReplacement true (Cilium's BPF NodePort); set it false or turn KPR on");
    }

    if (!parsed.ipv4.enabled && !parsed.ipv6.enabled) {
        fail("ipv4.enabled", "at least one of cilium.ipv4.enabled and cilium.ipv6.enabled must be true");
    }
    for (const family of ["ipv4", "ipv6"] as const) {
        const settings = parsed[family];
        if (settings.nativeRoutingCidr !== undefined && parseFamily(settings.nativeRoutingCidr) !== family) {
            fail(`${family}.nativeRoutingCidr`, `${settings.nativeRoutingCidr} is not an ${family === "ipv4" ? "IPv4" : "IPv6"} CIDR`);
        }
        const masquerade = settings.masquerade ?? true;
        if (parsed.routingMode === "native" && settings.enabled && masquerade && settings.nativeRoutingCidr === undefined) {
            fail(`${family}.nativeRoutingCidr`, `native routing with ${family} masquerade needs the native routing CIDR (the range not to masquerade)`);
        }
    }
    if (parsed.autoDirectNodeRoutes && parsed.routingMode !== "native") {
        fail("autoDirectNodeRoutes", "only works with routingMode native");
    }
    if (parsed.loadBalancer.mode !== "snat" && parsed.routingMode === "tunnel" && parsed.tunnelProtocol !== "geneve") {
        fail("loadBalancer.mode", `${parsed.loadBalancer.mode} needs routingMode native, or tunnelProtocol geneve (DSR dispatch over Geneve)`);
    }
    if (parsed.loadBalancer.mode !== "snat" && !kpr) {
        fail("loadBalancer.mode", `${parsed.loadBalancer.mode} needs kubeProxyReplacement true`);
    }
    if (semver.valid(parsed.chartVersion)) {
        for (const { key, reason } of removedValueKeys(parsed.chartVersion, parsed.extraValues)) {
            fail(`extraValues.${key}`, reason);
        }
    }
    return ok ? { ...parsed, kubeProxyReplacement: kpr } : undefined;
}

function parseFamily(text: string): Family | undefined {
    const parsed = parseCidr(text);
    return typeof parsed === "string" ? undefined : parsed.family;
}

function cidrsOf(texts: readonly string[], family: Family) {
    return texts.map((t) => parseCidr(t)).filter((c): c is Exclude<typeof c, string> => typeof c !== "string" && c.family === family);
}

function checkCluster(cluster: ClusterConfig, report: Report): void {
    const all = [
        ...cluster.podCidrs.map((t, i) => ({ t, key: `cluster.podCidrs[${i}]` })),
        ...cluster.serviceCidrs.map((t, i) => ({ t, key: `cluster.serviceCidrs[${i}]` })),
    ];
    for (let i = 0; i < all.length; i++) {
        for (let j = i + 1; j < all.length; j++) {
            const a = parseCidr(all[i]!.t),
                b = parseCidr(all[j]!.t);
            if (typeof a === "string" || typeof b === "string") continue;
            if (cidrCovers(a, b) || cidrCovers(b, a)) {
                report(all[j]!.key, `${b.text} overlaps ${all[i]!.key} (${a.text})`);
            }
        }
    }
}

function checkClusterAgainstCilium(cluster: ClusterConfig, cilium: CiliumSettings, report: Report): void {
    for (const family of ["ipv4", "ipv6"] as const) {
        if (!cilium[family].enabled) continue;
        const name = family === "ipv4" ? "IPv4" : "IPv6";
        const pods = cidrsOf(cluster.podCidrs, family);
        if (pods.length === 0) report("cluster.podCidrs", `cilium.${family}.enabled is true but no ${name} Pod CIDR is listed`);
        if (cidrsOf(cluster.serviceCidrs, family).length === 0) {
            report("cluster.serviceCidrs", `cilium.${family}.enabled is true but no ${name} Service CIDR is listed`);
        }
        const native = cilium[family].nativeRoutingCidr;
        const nativeCidr = native === undefined ? undefined : parseCidr(native);
        if (nativeCidr !== undefined && typeof nativeCidr !== "string") {
            for (const pod of pods) {
                if (!cidrCovers(nativeCidr, pod)) {
                    report(`cilium.${family}.nativeRoutingCidr`, `${nativeCidr.text} does not cover the Pod CIDR ${pod.text}`);
                }
            }
        }
    }
    const host = cilium.k8sServiceHost === undefined ? undefined : parseAddress(cilium.k8sServiceHost);
    if (host !== undefined && typeof host !== "string") {
        for (const service of cluster.serviceCidrs) {
            const c = parseCidr(service);
            if (typeof c !== "string" && cidrContains(c, host)) {
                report(
                    "cilium.k8sServiceHost",
                    `${cilium.k8sServiceHost} is inside the Service CIDR ${c.text}: it is only reachable through kube-proxy or Cilium itself; give the API server's real address or VIP`,
                );
            }
        }
    }
}

function inNodeNetwork(nodeCidrs: readonly string[], text: string): boolean {
    const address = parseAddress(text);
    return (
        typeof address !== "string" &&
        nodeCidrs.some((t) => {
            const c = parseCidr(t);
            return typeof c !== "string" && cidrContains(c, address);
        })
    );
}

function checkNodes(nodes: readonly (NodeConfig | undefined)[], nodeCidrs: readonly string[] | undefined, report: Report): void {
    const seenNames = new Map<string, number>();
    const seenAddresses = new Map<string, number>();
    nodes.forEach((node, i) => {
        if (node === undefined) return;
        const nameAt = seenNames.get(node.name);
        if (nameAt !== undefined) report(`nodes[${i}].name`, `"${node.name}" is already used by nodes[${nameAt}]`);
        else seenNames.set(node.name, i);
        const addressAt = seenAddresses.get(node.address);
        if (addressAt !== undefined) report(`nodes[${i}].address`, `${node.address} is already used by nodes[${addressAt}]`);
        else seenAddresses.set(node.address, i);
        if (nodeCidrs && !inNodeNetwork(nodeCidrs, node.address)) {
            report(`nodes[${i}].address`, `${node.address} is outside every cluster.nodeCidrs network`);
        }
    });
}

function checkTproxy(tproxy: TproxyConfig, nodeCidrs: readonly string[] | undefined, report: Report): void {
    if (tproxy.mark === tproxy.bypassMark) {
        report("tproxy.bypassMark", `equals tproxy.mark 0x${tproxy.mark.toString(16)}; the proxy's own traffic must be told apart from diverted traffic`);
    }
    if (!tproxy.enabled) return;
    if (tproxy.vip4 === undefined && tproxy.vip6 === undefined) {
        report("tproxy.vip4", "tproxy is enabled but neither tproxy.vip4 nor tproxy.vip6 is set");
    }
    if (!nodeCidrs) return;
    for (const [key, vip] of [
        ["tproxy.vip4", tproxy.vip4],
        ["tproxy.vip6", tproxy.vip6],
    ] as const) {
        if (vip !== undefined && !inNodeNetwork(nodeCidrs, vip)) {
            report(key, `${vip} is outside every cluster.nodeCidrs network; keepalived can only hold a VIP on a node network`);
        }
    }
}

function checkMigration(
    migration: MigrationSettings,
    nodes: readonly (NodeConfig | undefined)[] | undefined,
    cilium: z.output<typeof ciliumSchema> | undefined,
    report: Report,
): void {
    if (usesWaves(migration)) {
        const allParsed = nodes !== undefined && nodes.every((n) => n !== undefined);
        const kpr = cilium === undefined ? undefined : cilium.kubeProxyReplacement === true || cilium.kubeProxyReplacement === "true";
        checkWaves(migration, allParsed ? nodes.map((n) => n.name) : undefined, kpr, report);
        return;
    }
    const canary = migration.canaryNodes;
    if (canary.length === 0) return;
    if (cilium !== undefined && cilium.kubeProxyReplacement !== true && cilium.kubeProxyReplacement !== "true") {
        report("migration.canaryNodes", "a canary keeps kube-proxy off these nodes, which needs cilium.kubeProxyReplacement true");
    }
    const seen = new Map<string, number>();
    canary.forEach((name, i) => {
        const at = seen.get(name);
        if (at !== undefined) report(`migration.canaryNodes[${i}]`, `"${name}" is already listed at migration.canaryNodes[${at}]`);
        else seen.set(name, i);
    });
    // Without every node parsed, membership cannot be judged fairly; the node errors are already reported.
    if (nodes === undefined || nodes.some((n) => n === undefined)) return;
    const names = new Set(nodes.map((n) => n!.name));
    canary.forEach((name, i) => {
        if (!names.has(name))
            report(`migration.canaryNodes[${i}]`, `"${name}" is not one of the nodes; list it under nodes too (its SSH address and host key)`);
    });
    if ([...names].every((name) => seen.has(name))) {
        report("migration.canaryNodes", "lists every node, which is no canary: leave it empty for the full migration (kube-proxy's DaemonSet removed)");
    }
}
