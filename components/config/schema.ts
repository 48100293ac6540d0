import { z } from "zod";
import * as semver from "semver";
import { parseAddress, parseCidr } from "./addresses";
import { hostKeyProblem } from "./hostKey";
import {
    CILIUM_MARK_MASK,
    CILIUM_ROUTE_TABLES,
    CILIUM_RULE_PRIORITIES,
    KERNEL_ROUTE_TABLES,
    KERNEL_RULE_PRIORITIES,
    MAGLEV_TABLE_SIZES,
} from "./ciliumReserved";

/*
 * Field-level shape of the stack configuration. Cross-field rules (a VIP inside a node
 * network, KPR needing the API server, ...) live in validate.ts.
 * Every text that ends up in a shell command or a file on a node is constrained here to
 * a plain identifier, so nothing needs quoting downstream.
 */

const cidr = z.string().transform((text, ctx) => {
    const parsed = parseCidr(text);
    if (typeof parsed === "string") {
        ctx.addIssue({ code: "custom", message: parsed });
        return z.NEVER;
    }
    return parsed.text;
});

const ipAddress = (family?: "ipv4" | "ipv6") =>
    z.string().transform((text, ctx) => {
        const parsed = parseAddress(text);
        if (typeof parsed === "string") {
            ctx.addIssue({ code: "custom", message: parsed });
            return z.NEVER;
        }
        if (family && parsed.kind() !== family) {
            ctx.addIssue({ code: "custom", message: `"${text}" is not an ${family === "ipv4" ? "IPv4" : "IPv6"} address` });
            return z.NEVER;
        }
        return parsed.toString();
    });

const port = z.number().int("must be a whole number").min(1, "must be a port from 1 to 65535").max(65535, "must be a port from 1 to 65535");

/** Kubernetes object names (DNS-1123 subdomain), also safe as shell words. */
const k8sName = z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/, "must be a lowercase DNS-1123 name (a-z, 0-9, '-', '.')");
/** Node names: plain host names, never shell metacharacters. */
const nodeName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a plain host name (a-z, 0-9, '-'), no spaces or shell metacharacters");
/** Linux interface names (max 15 chars); Cilium also accepts a trailing '+' wildcard. */
const deviceName = z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,15}\+?$/, "must be an interface name (letters, digits, '_', '.', '-', at most 15, optional trailing '+')");
const interfaceName = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, "must be an interface name (letters, digits, '_', '.', '-', at most 15)");
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,31}$/, "must be a plain identifier (letters, digits, '_')");
const unitName = z.string().regex(/^[A-Za-z0-9@_.-]+\.service$/, "must be a systemd unit name ending in .service");
const sshUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a plain user name");
const hostKey = z.string().superRefine((line, ctx) => {
    const problem = hostKeyProblem(line);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});
const filePath = z.string().regex(/^[A-Za-z0-9_./~-]+$/, "must be a path without spaces or shell metacharacters");

/** A 32-bit mark given as a number or a "0x..." string. */
const mark = z.union([z.number(), z.string()], { error: "must be a mark: a number such as 1 or 0x1 (hex in quotes or not)" }).transform((value, ctx) => {
    const n = typeof value === "number" ? value : /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
        ctx.addIssue({ code: "custom", message: `"${String(value)}" must be a mark from 0x1 to 0xffffffff` });
        return z.NEVER;
    }
    if ((n & CILIUM_MARK_MASK) !== 0) {
        ctx.addIssue({ code: "custom", message: `0x${n.toString(16)} overlaps Cilium's mark mask 0x${CILIUM_MARK_MASK.toString(16)}` });
        return z.NEVER;
    }
    return n;
});

/** semver.valid trims and drops a leading "v", so the text must come back unchanged: helm gets it as typed. */
const chartVersion = z.string().refine((v) => semver.valid(v) === v, "must be an exact chart version such as 1.19.0 (no spaces, no leading v, no range)");

/**
 * What cilium-values-restore.sh accepts for CILIUM_REPOSITORY (`[[ ... =~ ^(https?|oci)://[^[:space:]]+$ ]]`):
 * the destroy's values rollback runs it, so a repository it refuses would only fail at rollback.
 * test/config-validation.test.ts checks this against the script's own pattern.
 */
const repositoryUrl = z.string().superRefine((text, ctx) => {
    let host = "";
    try {
        host = new URL(text).host;
    } catch {
        // reported below
    }
    if (!/^(https?|oci):\/\/[^\s]+$/.test(text) || host === "") {
        ctx.addIssue({
            code: "custom",
            message: `"${text}" must be an https://, http:// or oci:// URL with a host and no spaces (the values rollback at destroy refuses anything else)`,
        });
    }
});

export const clusterSchema = z.strictObject({
    kubeconfig: filePath.optional(),
    context: z
        .string()
        .regex(/^[A-Za-z0-9@_.:/-]+$/, "must be a kubeconfig context name")
        .optional(),
    podCidrs: z.array(cidr).min(1, "needs at least one Pod CIDR"),
    serviceCidrs: z.array(cidr).min(1, "needs at least one Service CIDR"),
    nodeCidrs: z.array(cidr).min(1, "needs at least one node network CIDR"),
    kubeProxy: z
        .strictObject({
            namespace: k8sName.default("kube-system"),
            daemonSet: k8sName.default("kube-proxy"),
            configMap: k8sName.default("kube-proxy"),
            /** ConfigMap (in the same namespace) that keeps the backup; survives loss of Pulumi state. */
            backupConfigMap: k8sName.default("kube-proxy-pre-cilium-kpr-backup"),
            iptablesBackend: z.enum(["auto", "nft", "legacy"]).default("auto"),
            /**
             * Seconds to wait for kube-proxy's rollout after the canary changes its pod template, which
             * restarts it on every node one at a time (allow about 30 s per node).
             */
            rolloutTimeoutSeconds: z.number().int().min(30).max(86400).default(900),
        })
        .prefault({}),
});

const familySchema = z.strictObject({
    enabled: z.boolean(),
    nativeRoutingCidr: cidr.optional(),
    masquerade: z.boolean().optional(),
});

export const ciliumSchema = z.strictObject({
    namespace: k8sName.default("kube-system"),
    releaseName: k8sName.default("cilium"),
    chart: k8sName.default("cilium"),
    chartVersion,
    repository: repositoryUrl.default("https://helm.cilium.io/"),
    /** Use a chart minor this program has no rules for (validate.ts); only after checking its values by hand. */
    allowUntestedChartVersion: z.boolean().default(false),
    /** Keep values of an adopted release that this program does not set (helm --reuse-values). */
    reuseValues: z.boolean().default(true),
    /**
     * The chart version the release runs now, set together with a new chartVersion to upgrade
     * Cilium (see components/cilium/upgradePath.ts): full values, image pre-pull first.
     */
    upgradeFrom: chartVersion.optional(),
    // A boolean only: the strict/partial/probe strings are refused with a dedicated message in validate.ts.
    kubeProxyReplacement: z.union([z.boolean(), z.string()], { error: "must be true or false" }).default(true),
    k8sServiceHost: z.string().optional(),
    k8sServicePort: port.optional(),
    routingMode: z.enum(["tunnel", "native"]).default("tunnel"),
    tunnelProtocol: z.enum(["vxlan", "geneve"]).default("vxlan"),
    ipv4: familySchema.default({ enabled: true }),
    ipv6: familySchema.default({ enabled: false }),
    autoDirectNodeRoutes: z.boolean().default(false),
    directRoutingSkipUnreachable: z.boolean().optional(),
    devices: z.array(deviceName).optional(),
    /**
     * CIDRs whose addresses on Cilium's devices serve NodePorts (chart value nodePort.addresses, agent flag
     * --nodeport-addresses). Unset, Cilium serves NodePorts on one address per device and family (the node IP
     * where it is), so a keepalived VIP beside the node IP serves none (cilium/cilium#37691). Give the node networks and each
     * VIP as /32 or /128; see README "NodePort on the keepalived VIP".
     */
    nodePortAddresses: z.array(cidr).min(1).optional(),
    loadBalancer: z
        .strictObject({
            algorithm: z.enum(["random", "maglev"]).default("random"),
            mode: z.enum(["snat", "dsr", "hybrid"]).default("snat"),
            externalClusterIP: z.boolean().default(false),
        })
        .prefault({}),
    maglev: z
        .strictObject({
            tableSize: z
                .number()
                .int()
                .refine((n) => MAGLEV_TABLE_SIZES.includes(n), `must be one of the prime sizes Cilium accepts: ${MAGLEV_TABLE_SIZES.join(", ")}`)
                .default(16381),
        })
        .prefault({}),
    bpfMasquerade: z.boolean().default(true),
    hostLegacyRouting: z.boolean().default(false),
    operatorReplicas: z.number().int().min(1).optional(),
    /** Further chart values, merged last; keys the chart version removed are refused. */
    extraValues: z.record(z.string(), z.unknown()).default({}),
});

export const tproxySchema = z.strictObject({
    enabled: z.boolean().default(false),
    vip4: ipAddress("ipv4").optional(),
    vip6: ipAddress("ipv6").optional(),
    port: port.default(7892),
    mark: mark.default(0x1),
    bypassMark: mark.default(0xff),
    routeTable: z
        .number()
        .int()
        .min(1)
        .max(0xffffffff)
        .refine((n) => !KERNEL_ROUTE_TABLES.includes(n), "is a table the kernel reserves (0, 253, 254, 255)")
        .refine((n) => !CILIUM_ROUTE_TABLES.includes(n), `is a route table Cilium uses (${CILIUM_ROUTE_TABLES.join(", ")})`)
        .default(100),
    rulePriority: z
        .number()
        .int()
        .min(1)
        .max(32765)
        .refine((n) => !KERNEL_RULE_PRIORITIES.includes(n), "is a priority the kernel's default rules use")
        .refine((n) => !CILIUM_RULE_PRIORITIES.includes(n), `is an ip rule priority Cilium uses (${CILIUM_RULE_PRIORITIES.join(", ")})`)
        .default(1000),
    bindMode: z.enum(["vip", "all"]).default("vip"),
    /** Replaces the default reserved (never proxied) destination ranges when given. */
    reserved: z
        .strictObject({
            v4: z.array(cidr).optional(),
            v6: z.array(cidr).optional(),
        })
        .prefault({}),
    /** Added to the reserved ranges. */
    extraReserved: z.array(cidr).default([]),
    tableName: identifier.default("cilium_kpr_tproxy"),
    /** The transparent proxy's systemd unit, started/stopped by the keepalived notify script in vip mode. */
    proxyUnit: unitName.optional(),
    vrrpInstance: identifier.default("VI_API"),
    /** Seconds after which an apply that was not confirmed over a fresh SSH connection reverts itself. */
    revertAfterSeconds: z.number().int().min(10).max(3600).default(60),
    /** How many nodes are changed at once; 1 stops a bad change at the first node. */
    nodeConcurrency: z.number().int().min(1).default(1),
});

export const nodeSchema = z.strictObject({
    name: nodeName,
    address: ipAddress(),
    sshPort: port.default(22),
    sshUser: sshUser.default("root"),
    hostKey,
    /** The interface keepalived's VRRP instance runs on (for the operator's snippet). */
    vrrpInterface: interfaceName.optional(),
});

export const nodesSchema = z.array(nodeSchema).min(1, "needs at least one node");

export const migrationSchema = z.strictObject({
    /**
     * Nodes migrated first, by Kubernetes node name: kube-proxy is kept off these only (its
     * DaemonSet stays for the rest) and only these get the stale-rule cleanup and the tproxy.
     * Empty is the full migration.
     */
    canaryNodes: z.array(nodeName).default([]),
    /**
     * Node-by-node KPR (components/waves/): lists of node names migrated in this order, the first
     * list being the canary. Checked against `nodes` in components/config/waveSettings.ts.
     */
    waves: z.array(z.array(nodeName).min(1, "a wave needs at least one node")).optional(),
    /** Instead of `waves`: every node, in the order of `nodes`, this many at a time (1 = one node at a time). */
    waveSize: z.number().int("must be a whole number").min(1, "must be at least 1").optional(),
    /**
     * Declare the waves up to this one only (1 = the canary): the run stops there, kube-proxy stays for
     * the rest. Raise or remove it to go on; lowering it hands the dropped waves back at the end of the run.
     */
    stopAfterWave: z.number().int("must be a whole number").min(1, "must be at least 1").optional(),
    /** Cordon and drain each node of a wave before its handover (honours PodDisruptionBudgets), uncordon after. */
    drain: z.boolean().default(false),
    /** Seconds `kubectl drain` may take per node before the wave stops. */
    drainTimeoutSeconds: z.number().int().min(30).max(86400).default(600),
});

export type ClusterConfig = z.output<typeof clusterSchema>;
export type CiliumSettings = Omit<z.output<typeof ciliumSchema>, "kubeProxyReplacement"> & { kubeProxyReplacement: boolean };
export type TproxyConfig = z.output<typeof tproxySchema>;
export type NodeConfig = z.output<typeof nodeSchema>;
export type MigrationSettings = z.output<typeof migrationSchema>;
