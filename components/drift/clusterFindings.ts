import { z } from "zod";
import type { MigrationConfig } from "../config/validate";
import { CLUSTER_SCOPE, drift, unchecked, type DriftKind, type Finding } from "./findings";
import { agentKprRepair, kubeadmProxyRepair, kubeProxyRepair, type RepairContext } from "./repairs";
import { usesWaves } from "../waves/wavePlan";
import { waveClusterFindings } from "./waveFindings";

/** What kubectl could not read is "unreadable" in the observation; its words are under errors. */
const UNREADABLE = z.literal("unreadable");

const agentSchema = z.object({
    pod: z.string(),
    node: z.string(),
    ok: z.boolean(),
    checked: z.boolean(),
    problem: z.string().optional(),
    mode: z.string().optional(),
    socketLB: z.boolean().optional(),
    nodePort: z.boolean().optional(),
});

/** The one JSON line components/drift/scripts/cluster-observe.sh prints. */
export const clusterObservationSchema = z.object({
    kubeProxy: z.object({
        daemonSet: z.union([z.null(), UNREADABLE, z.object({ canaryExclusion: z.boolean(), desired: z.number(), labelAffinity: z.boolean() })]),
        configMap: z.union([z.boolean(), UNREADABLE]),
        pods: z.union([z.array(z.object({ name: z.string(), node: z.string() })), UNREADABLE]),
    }),
    agents: z.union([z.array(agentSchema), UNREADABLE]),
    agentsWanted: z.union([z.number(), UNREADABLE]),
    /** Wave stacks only (null otherwise): whether each node carries the migrated label. */
    nodes: z.union([z.null(), UNREADABLE, z.array(z.object({ name: z.string(), migrated: z.boolean() }))]),
    /**
     * Wave stacks only (null otherwise): the cluster script store's ConfigMaps, each with whether its script
     * still has the sha256 its name carries. Optional: observations recorded before the store existed lack it.
     */
    scriptStore: z.union([z.null(), UNREADABLE, z.array(z.object({ name: z.string(), intact: z.boolean() }))]).optional(),
    errors: z.array(z.object({ check: z.string(), message: z.string() })),
});
export type ClusterObservation = z.output<typeof clusterObservationSchema>;

/** Which drift kind each of cluster-observe.sh's reads serves. */
const CHECK_KINDS: Readonly<Record<string, DriftKind>> = {
    "kube-proxy DaemonSet": "kube-proxy-back",
    "kube-proxy ConfigMap": "kube-proxy-back",
    "kube-proxy pods": "kube-proxy-back",
    "Cilium agent DaemonSet": "agent-kpr",
    "Cilium agent pods": "agent-kpr",
    "nodes": "wave-label",
    "cluster script store": "script-store",
};

/** Cluster-wide drift (and per-node agent drift) from what cluster-observe.sh saw. */
export function clusterFindings(config: MigrationConfig, obs: ClusterObservation, ctx: RepairContext): Finding[] {
    // Without KPR kube-proxy stays and agents are not expected to replace it: nothing here to check.
    if (!config.cilium.kubeProxyReplacement) return [];
    const findings: Finding[] = obs.errors.map((e) => unchecked(CLUSTER_SCOPE, CHECK_KINDS[e.check] ?? "kube-proxy-back", `${e.check}: kubectl: ${e.message}`));
    if (usesWaves(config.migration)) {
        for (const a of obs.agents === "unreadable" ? [] : obs.agents.filter((x) => !x.checked)) {
            findings.push(unchecked(a.node, "agent-kpr", `agent pod ${a.pod}: ${a.problem ?? "status unreadable"}`));
        }
        return [...findings, ...waveClusterFindings(config, obs, ctx), ...missingAgents(obs)];
    }
    const canaryNodes = config.migration.canaryNodes;
    const canary = canaryNodes.length > 0;
    const kp = config.cluster.kubeProxy;
    const kpRepair = kubeProxyRepair(ctx, canary);
    const { daemonSet, configMap, pods } = obs.kubeProxy;

    if (!canary) {
        if (daemonSet !== null && daemonSet !== "unreadable") {
            findings.push(
                drift(CLUSTER_SCOPE, "kube-proxy-back", `DaemonSet ${kp.namespace}/${kp.daemonSet} is back (${daemonSet.desired} pods wanted)`, kpRepair),
            );
        }
        if (configMap === true) {
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "kube-proxy-back",
                    `ConfigMap ${kp.namespace}/${kp.configMap} is back (kubeadm upgrade re-installs kube-proxy from it)`,
                    kpRepair,
                ),
            );
        }
        if (pods !== "unreadable" && pods.length > 0) {
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "kube-proxy-back",
                    `${pods.length} kube-proxy pod(s) run: ${pods.map((p) => `${p.name} on ${p.node}`).join(", ")}`,
                    kpRepair,
                ),
            );
        }
    } else {
        if (daemonSet !== null && daemonSet !== "unreadable" && !daemonSet.canaryExclusion) {
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "kube-proxy-back",
                    `DaemonSet ${kp.namespace}/${kp.daemonSet} lost its canary exclusion (kubeadm upgrade rewrites it)`,
                    kpRepair,
                ),
            );
        }
        if (pods !== "unreadable") {
            for (const pod of pods.filter((p) => canaryNodes.includes(p.node))) {
                findings.push(drift(pod.node, "kube-proxy-back", `kube-proxy pod ${pod.name} runs on canary node ${pod.node}`, kpRepair));
            }
        }
    }

    if (obs.agents !== "unreadable") {
        const repair = agentKprRepair(ctx);
        for (const a of obs.agents) {
            if (!a.checked) findings.push(unchecked(a.node, "agent-kpr", `agent pod ${a.pod}: ${a.problem ?? "status unreadable"}`));
            else if (!a.ok) {
                findings.push(
                    drift(
                        a.node,
                        "agent-kpr",
                        `agent pod ${a.pod} reports kube-proxy-replacement mode=${a.mode ?? "absent"}, socketLB.enabled=${String(a.socketLB ?? false)}, nodePort.enabled=${String(a.nodePort ?? false)}`,
                        repair,
                    ),
                );
            }
        }
        findings.push(...missingAgents(obs));
    }
    return findings;
}

/** Fewer agents than the DaemonSet wants: some nodes were not asked, which is not a clean bill. */
function missingAgents(obs: ClusterObservation): Finding[] {
    if (obs.agents === "unreadable" || obs.agentsWanted === "unreadable" || obs.agents.length >= obs.agentsWanted) return [];
    return [
        unchecked(
            CLUSTER_SCOPE,
            "agent-kpr",
            `found ${obs.agents.length} Cilium agent pods but the DaemonSet wants ${obs.agentsWanted}: some nodes' agents were not asked`,
        ),
    ];
}

/** What kubeadm-proxy-status.sh (the kubeadm-proxy-disabled step's read-only twin) printed, and its exit status. */
export interface KubeadmStatusRun {
    readonly status: number;
    readonly stdout: string;
    readonly stderr: string;
}

const kubeadmStatusSchema = z.object({
    ok: z.boolean(),
    error: z.string().optional(),
    kubeadm: z.boolean().optional(),
    apiVersion: z.string().nullable().optional(),
    proxyDisabled: z.boolean().nullable().optional(),
});

/**
 * kubeadm re-installs kube-proxy on upgrade unless ClusterConfiguration says `proxy.disabled: true`
 * (kubeadm#3137, kubeadm#1318); the program's kubeadm-proxy-disabled step sets it.
 */
export function kubeadmFindings(run: KubeadmStatusRun, ctx: RepairContext): Finding[] {
    const last = run.stdout.trim().split("\n").pop() ?? "";
    let parsed: z.output<typeof kubeadmStatusSchema>;
    try {
        parsed = kubeadmStatusSchema.parse(JSON.parse(last));
    } catch {
        return [
            unchecked(
                CLUSTER_SCOPE,
                "kubeadm-proxy",
                `kubeadm-proxy-status printed no summary (exit ${run.status}): ${run.stderr.trim().split("\n").pop() ?? ""}`,
            ),
        ];
    }
    if (!parsed.ok) return [unchecked(CLUSTER_SCOPE, "kubeadm-proxy", `kubeadm-proxy-status: ${parsed.error ?? "failed"}`)];
    if (parsed.kubeadm !== true || parsed.proxyDisabled === true) return [];
    if (parsed.proxyDisabled === null || parsed.proxyDisabled === undefined) {
        return [
            unchecked(
                CLUSTER_SCOPE,
                "kubeadm-proxy",
                `kubeadm-config's ClusterConfiguration (${parsed.apiVersion ?? "no apiVersion"}) is not a shape the program edits`,
            ),
        ];
    }
    return [
        drift(
            CLUSTER_SCOPE,
            "kubeadm-proxy",
            "kube-system/kubeadm-config ClusterConfiguration no longer has proxy.disabled: true (the next kubeadm upgrade re-installs kube-proxy)",
            kubeadmProxyRepair(ctx),
        ),
    ];
}
