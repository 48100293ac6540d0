import * as semver from "semver";
import { z } from "zod";
import { cidrContains, cidrCovers, looksLikeAddress, parseAddress, parseCidr, type Family } from "./addresses";
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
import {
    chartMinorHasRules,
    KPR_MODES_REMOVED_IN,
    MINIMUM_CHART_VERSION,
    NEWEST_CHART_MINOR_WITH_RULES,
    REMOVED_KPR_MODES,
    removedValueKeys,
    servesNodePortsOn,
    upgradeConfigProblems,
} from "../ciliumVersions/ciliumVersions";
import { checkWaves, usesWaves } from "./waveSettings";
import { closestName, objectKeysAt, unknownKeyMessage, userWords } from "./userWords";

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
    /**
     * Every key of the stack's config, when the caller can list them (engineConfig.ts): keys of the
     * project's namespace this program does not read are refused, and so are private keys in plain text.
     */
    readonly stackKeys?: readonly StackKey[];
}

export interface StackKey {
    /** The full key, "namespace:name". */
    readonly key: string;
    /** Stored encrypted (`secure:` in the stack file). */
    readonly secret: boolean;
    /** The value holds a PEM or OpenSSH private key. */
    readonly holdsPrivateKey: boolean;
}

/** The top-level keys of the project's namespace this program reads. */
export const TOP_LEVEL_KEYS = ["cluster", "cilium", "tproxy", "nodes", "migration", "sshPrivateKey"] as const;

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
        return parseReporting(project, name, schema, value ?? {}, report);
    };

    checkStackKeys(project, raw.stackKeys, (key, message) => issues.push({ key, message }));

    const cluster = section("cluster", clusterSchema, raw.cluster, true);
    const ciliumParsed = section("cilium", ciliumSchema, raw.cilium, true);
    const tproxy = section("tproxy", tproxySchema, raw.tproxy, false);
    const nodes = parseNodes(project, raw.nodes, report);
    const migration = section("migration", migrationSchema, raw.migration, false);
    if (!raw.hasSshPrivateKey && !issues.some((i) => i.key === `${project}:sshPrivateKey`)) {
        report("sshPrivateKey", "is required: set it with `pulumi config set --secret sshPrivateKey < key` (it never appears in plan output)");
    }

    const cilium = ciliumParsed ? checkCilium(ciliumParsed, report) : undefined;
    const reuseValuesSet = (raw.cilium as { reuseValues?: unknown } | undefined)?.reuseValues !== undefined;
    for (const problem of ciliumParsed ? upgradeConfigProblems(ciliumParsed, reuseValuesSet) : []) report(`cilium.${problem.key}`, problem.message);
    checkClusterNetworks(raw.cluster, report);
    if (cluster && cilium) checkClusterAgainstCilium(cluster, cilium, report);
    // Node and VIP placement only need the node networks, so check them even when another cluster key is bad.
    const nodeCidrs = cluster?.nodeCidrs ?? parseQuietly(clusterSchema.shape.nodeCidrs, (raw.cluster as { nodeCidrs?: unknown } | undefined)?.nodeCidrs);
    if (nodes) checkNodes(nodes, nodeCidrs, report);
    checkVips(raw.tproxy, tproxy?.enabled, nodeCidrs, nodes, report);
    if (tproxy) checkTproxy(tproxy, report);
    if (cilium && nodes) checkNodePortAddresses(cilium, nodes, report);
    if (migration) checkMigration(migration, nodes, ciliumParsed, report);

    if (issues.length > 0 || !cluster || !cilium || !tproxy || !nodes || !migration || nodes.some((n) => n === undefined)) return { ok: false, issues };
    return { ok: true, config: { cluster, cilium, tproxy, nodes: nodes as NodeConfig[], migration } };
}

function parseQuietly<S extends z.ZodType>(schema: S, value: unknown): z.output<S> | undefined {
    const parsed = schema.safeParse(value);
    return parsed.success ? parsed.data : undefined;
}

/**
 * Parses one section with messages in the stack file's terms (userWords.ts); an unknown key is
 * reported at its own path with the closest known key.
 */
function parseReporting<S extends z.ZodType>(project: string, base: string, schema: S, value: unknown, report: Report): z.output<S> | undefined {
    const parsed = schema.safeParse(value, { error: userWords });
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) {
        if (issue.code === "unrecognized_keys") {
            const known = objectKeysAt(schema, issue.path);
            for (const key of issue.keys)
                report(joinPath(base, [...issue.path, key]), unknownKeyMessage(key, known, `${project}:${joinPath(base, issue.path)}`));
        } else {
            report(joinPath(base, issue.path), issue.message);
        }
    }
    return undefined;
}

/** Parses each node on its own, so one bad node does not hide duplicates among the others. */
function parseNodes(project: string, value: unknown, report: Report): (NodeConfig | undefined)[] | undefined {
    if (value === undefined) {
        report("nodes", "is required");
        return undefined;
    }
    if (!Array.isArray(value)) return parseReporting(project, "nodes", nodesSchema, value, report);
    if (value.length === 0) {
        report("nodes", "needs at least one node");
        return undefined;
    }
    return value.map((item, i) => parseReporting(project, `nodes[${i}]`, nodeSchema, item, report));
}

/**
 * Keys of the project's namespace that this program does not read (`cilium-kpr:tproxi` would leave
 * the tproxy off, `cilium-kpr:migraton` turn a canary into the full removal), keys under a
 * misspelt project name, and private keys stored in plain text.
 */
function checkStackKeys(project: string, keys: readonly StackKey[] | undefined, report: (fullKey: string, message: string) => void): void {
    for (const { key, secret, holdsPrivateKey } of keys ?? []) {
        const colon = key.indexOf(":");
        const namespace = colon < 0 ? project : key.slice(0, colon);
        const name = colon < 0 ? key : key.slice(colon + 1);
        if (namespace === project && !(TOP_LEVEL_KEYS as readonly string[]).includes(name)) {
            report(key, unknownKeyMessage(name, TOP_LEVEL_KEYS, `this program (${project})`));
        } else if (namespace !== project && closestName(namespace, [project]) !== undefined) {
            report(key, `is in namespace "${namespace}", which this program does not read; did you mean ${project}:${name}?`);
        }
        if (!secret && (holdsPrivateKey || (namespace === project && name === "sshPrivateKey"))) {
            report(
                key,
                "holds a private key in plain text in the stack file: anyone who can read the repository has it. Remove it, replace the key where it is used, " +
                    `and store the new one encrypted: \`pulumi config set --secret ${namespace === project ? name : key} < key-file\``,
            );
        }
    }
}

type Report = (path: string, message: string) => void;

function joinPath(base: string, path: readonly PropertyKey[]): string {
    return path.reduce<string>((acc, part) => (typeof part === "number" ? `${acc}[${part}]` : `${acc}.${String(part)}`), base);
}

function checkCilium(parsed: z.output<typeof ciliumSchema>, report: Report): CiliumSettings | undefined {
    let ok = true;
    const fail = (path: string, message: string) => {
        ok = false;
        report(`cilium.${path}`, message);
    };

    if (semver.lt(parsed.chartVersion, MINIMUM_CHART_VERSION)) {
        fail("chartVersion", `${parsed.chartVersion} is older than ${MINIMUM_CHART_VERSION}, the oldest chart this program renders KPR values for`);
    } else if (!chartMinorHasRules(parsed.chartVersion) && !parsed.allowUntestedChartVersion) {
        fail(
            "chartVersion",
            `${parsed.chartVersion} is a chart minor this program has no rules for (it knows ${MINIMUM_CHART_VERSION} to ${NEWEST_CHART_MINOR_WITH_RULES}.x: ` +
                "removed and renamed value keys, KPR values); check that chart's values by hand, then set cilium.allowUntestedChartVersion: true",
        );
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
            ? `"${value}" was removed in Cilium ${KPR_MODES_REMOVED_IN} (agents reject it); use true (was strict) or false`
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
        } else if (looksLikeAddress(host)) {
            const address = parseAddress(host);
            if (typeof address === "string") fail("k8sServiceHost", address);
        } else if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(host)) {
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

/**
 * Pod, Service and node networks must not overlap. Reads the raw lists item by item, so an overlap
 * is reported even when another cluster key (or another item of the same list) is wrong.
 */
function checkClusterNetworks(rawCluster: unknown, report: Report): void {
    const listed = (name: string) => {
        const list = typeof rawCluster === "object" && rawCluster !== null ? (rawCluster as Record<string, unknown>)[name] : undefined;
        return Array.isArray(list) ? list.map((t: unknown, i) => ({ t, key: `cluster.${name}[${i}]` })) : [];
    };
    // A node network inside a Pod or Service CIDR makes node addresses look like Pods or Services to
    // Cilium's routing and to the tproxy's direct set.
    const all = [...listed("podCidrs"), ...listed("serviceCidrs"), ...listed("nodeCidrs")].flatMap(({ t, key }) => {
        const c = typeof t === "string" ? parseCidr(t) : undefined;
        return c === undefined || typeof c === "string" ? [] : [{ c, key }];
    });
    for (let i = 0; i < all.length; i++) {
        for (let j = i + 1; j < all.length; j++) {
            const a = all[i]!.c,
                b = all[j]!.c;
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

/** The VIPs, read one by one so a bad key elsewhere in tproxy does not hide a misplaced VIP. */
function checkVips(
    rawTproxy: unknown,
    enabled: boolean | undefined,
    nodeCidrs: readonly string[] | undefined,
    nodes: readonly (NodeConfig | undefined)[] | undefined,
    report: Report,
): void {
    const field = (name: "vip4" | "vip6") =>
        parseQuietly(tproxySchema.shape[name], typeof rawTproxy === "object" && rawTproxy !== null ? (rawTproxy as Record<string, unknown>)[name] : undefined);
    const vips = [
        ["tproxy.vip4", field("vip4")],
        ["tproxy.vip6", field("vip6")],
    ] as const;
    for (const [key, vip] of vips) {
        const at = vip === undefined ? -1 : (nodes ?? []).findIndex((n) => n?.address === vip);
        if (at >= 0) {
            report(
                key,
                `${vip} is the address of nodes[${at}] (${nodes![at]!.name}); the VIP must be an address keepalived moves between nodes, not one a node always has`,
            );
        }
    }
    if (enabled !== true) return;
    if (vips.every(([, vip]) => vip === undefined)) {
        report("tproxy.vip4", "tproxy is enabled but neither tproxy.vip4 nor tproxy.vip6 is set");
    }
    if (!nodeCidrs) return;
    for (const [key, vip] of vips) {
        if (vip !== undefined && !inNodeNetwork(nodeCidrs, vip)) {
            report(key, `${vip} is outside every cluster.nodeCidrs network; keepalived can only hold a VIP on a node network`);
        }
    }
}

function checkTproxy(tproxy: TproxyConfig, report: Report): void {
    if (tproxy.mark === tproxy.bypassMark) {
        report("tproxy.bypassMark", `equals tproxy.mark 0x${tproxy.mark.toString(16)}; the proxy's own traffic must be told apart from diverted traffic`);
    }
}

function checkMigration(
    migration: MigrationSettings,
    nodes: readonly (NodeConfig | undefined)[] | undefined,
    cilium: z.output<typeof ciliumSchema> | undefined,
    report: Report,
): void {
    if (!usesWaves(migration) && migration.stopAfterWave !== undefined) {
        report("migration.stopAfterWave", "only applies to the node-by-node migration: set migration.waves or migration.waveSize too");
    }
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

/**
 * cilium.nodePortAddresses replaces Cilium's default (each device's first address), so it must still cover
 * every node's own address, or NodePorts stop answering there; it only means something with KPR on.
 * Whether it covers the keepalived VIPs is the operator's choice; the preflight warns when it does not.
 */
function checkNodePortAddresses(cilium: CiliumSettings, nodes: readonly (NodeConfig | undefined)[], report: Report): void {
    const texts = cilium.nodePortAddresses;
    if (texts === undefined) return;
    const key = "cilium.nodePortAddresses";
    if (!cilium.kubeProxyReplacement) report(key, "only Cilium's kube-proxy replacement serves NodePorts; it needs kubeProxyReplacement true");
    texts.forEach((t, i) => {
        const c = parseCidr(t);
        if (typeof c !== "string" && !cilium[c.family].enabled) {
            report(`${key}[${i}]`, `${t} is ${c.family === "ipv4" ? "IPv4" : "IPv6"} but cilium.${c.family}.enabled is false`);
        }
    });
    nodes.forEach((node, i) => {
        if (node !== undefined && !servesNodePortsOn(texts, node.address)) {
            report(
                key,
                `does not cover nodes[${i}].address ${node.address}: it replaces Cilium's default, so NodePorts would stop answering on that node's address; add its network`,
            );
        }
    });
}
