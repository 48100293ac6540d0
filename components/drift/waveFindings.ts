import type { MigrationConfig } from "../config/validate";
import { declaredWaves, MIGRATED_LABEL, planWaves } from "../waves/wavePlan";
import { waveScriptSettings, waveStoreEntries } from "../waves/waveStoreEntries";
import { storeConfigMapName, STORE_NAMESPACE } from "../commands/clusterScriptStore";
import { CLUSTER_SCOPE, drift, type Finding } from "./findings";
import type { ClusterObservation } from "./clusterFindings";
import {
    agentKprRepair,
    kubeProxyRepair,
    waveAffinityRepair,
    waveHandbackRepair,
    waveHandoverRepair,
    waveKubeProxyRecreateRepair,
    waveScriptStoreRepair,
    type RepairContext,
} from "./repairs";

/**
 * Drift on the node-by-node (wave) path. What is expected depends on how far the stack goes
 * (`migration.stopAfterWave`): the nodes of the declared waves are migrated (labelled, no kube-proxy
 * pod, agent with KPR); the other nodes are on kube-proxy (no label, a kube-proxy pod, agent without
 * KPR under the pending CiliumNodeConfig), and kube-proxy's DaemonSet and ConfigMap stay, with the
 * label affinity that keeps it off migrated nodes. When every wave is declared, kube-proxy is gone
 * and every agent has KPR, as on the single-shot path; the labels stay (the pending CiliumNodeConfig
 * would select an unlabelled node at its agent's next restart, and turn KPR off with no kube-proxy).
 */
export function waveClusterFindings(config: MigrationConfig, obs: ClusterObservation, ctx: RepairContext): Finding[] {
    const all = planWaves(config.migration, config.nodes);
    const declared = declaredWaves(config.migration, all);
    const migrated = new Set(declared.flatMap((w) => w.nodes));
    const complete = declared.length === all.length;
    const kp = config.cluster.kubeProxy;
    const findings: Finding[] = [];
    const { daemonSet, configMap, pods } = obs.kubeProxy;

    if (complete) {
        const repair = kubeProxyRepair(ctx, false);
        if (daemonSet !== null && daemonSet !== "unreadable")
            findings.push(
                drift(CLUSTER_SCOPE, "kube-proxy-back", `DaemonSet ${kp.namespace}/${kp.daemonSet} is back (${daemonSet.desired} pods wanted)`, repair),
            );
        if (configMap === true)
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "kube-proxy-back",
                    `ConfigMap ${kp.namespace}/${kp.configMap} is back (kubeadm upgrade re-installs kube-proxy from it)`,
                    repair,
                ),
            );
    } else if (daemonSet !== null && daemonSet !== "unreadable" && !daemonSet.labelAffinity) {
        findings.push(
            drift(
                CLUSTER_SCOPE,
                "kube-proxy-back",
                `DaemonSet ${kp.namespace}/${kp.daemonSet} lost its required node affinity NotIn ${MIGRATED_LABEL}=true (kubeadm upgrade rewrites it): kube-proxy returns to migrated nodes`,
                waveAffinityRepair(ctx),
            ),
        );
    }
    // Before the last wave the later waves' nodes have only kube-proxy: without it they are served by nobody.
    const waiting = config.nodes.map((n) => n.name).filter((name) => !migrated.has(name));
    if (!complete) {
        if (daemonSet === null) {
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "kube-proxy-missing",
                    `DaemonSet ${kp.namespace}/${kp.daemonSet} is gone before the last wave: ${waiting.join(", ")} (not migrated yet, agents without KPR) are served by neither kube-proxy nor Cilium`,
                    waveKubeProxyRecreateRepair(ctx),
                ),
            );
        }
        if (configMap === false) {
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "kube-proxy-missing",
                    `ConfigMap ${kp.namespace}/${kp.configMap} is gone before the last wave: kube-proxy pods on ${waiting.join(", ")} cannot start again`,
                    waveKubeProxyRecreateRepair(ctx),
                ),
            );
        }
        if (daemonSet !== null && daemonSet !== "unreadable" && pods !== "unreadable") {
            for (const name of waiting.filter((n) => !pods.some((pod) => pod.node === n))) {
                findings.push(
                    drift(
                        name,
                        "kube-proxy-missing",
                        `no kube-proxy pod on ${name}, whose wave is not declared: its agent runs without KPR, so nothing serves Services there`,
                        waveKubeProxyRecreateRepair(ctx),
                    ),
                );
            }
        }
    }
    if (pods !== "unreadable") {
        for (const pod of pods) {
            if (complete || migrated.has(pod.node)) {
                findings.push(
                    drift(
                        pod.node,
                        "kube-proxy-back",
                        `kube-proxy pod ${pod.name} runs on ${pod.node}, ${migrated.has(pod.node) ? "a migrated node" : "after the last wave"}`,
                        migrated.has(pod.node)
                            ? waveHandoverRepair(ctx, pod.node, waveScriptSettings(config, "waves/node-handover"))
                            : kubeProxyRepair(ctx, false),
                    ),
                );
            }
        }
    }

    if (obs.nodes !== null && obs.nodes !== "unreadable") {
        for (const node of obs.nodes) {
            if (migrated.has(node.name) && !node.migrated) {
                findings.push(
                    drift(
                        node.name,
                        "wave-label",
                        `migrated node ${node.name} lost the label ${MIGRATED_LABEL}=true: the pending CiliumNodeConfig selects it again, so its agent turns KPR off at its next restart${complete ? ", with no kube-proxy to take over" : ", and kube-proxy's affinity lets kube-proxy back on it"}`,
                        waveHandoverRepair(ctx, node.name, waveScriptSettings(config, "waves/node-handover")),
                    ),
                );
            } else if (!migrated.has(node.name) && node.migrated && config.nodes.some((n) => n.name === node.name)) {
                const agent = obs.agents === "unreadable" ? undefined : obs.agents.find((a) => a.node === node.name)?.pod;
                findings.push(
                    drift(
                        node.name,
                        "wave-label",
                        `${node.name} carries ${MIGRATED_LABEL}=true but its wave is not declared (migration.stopAfterWave): kube-proxy is kept off it`,
                        waveHandbackRepair(node.name, agent, config.cilium.namespace, MIGRATED_LABEL),
                    ),
                );
            }
        }
    }

    if (obs.agents !== "unreadable") {
        for (const a of obs.agents.filter((x) => x.checked)) {
            if (complete || migrated.has(a.node)) {
                if (!a.ok) {
                    findings.push(
                        drift(
                            a.node,
                            "agent-kpr",
                            `agent pod ${a.pod} reports kube-proxy-replacement mode=${a.mode ?? "absent"}, socketLB.enabled=${String(a.socketLB ?? false)}, nodePort.enabled=${String(a.nodePort ?? false)}`,
                            migrated.has(a.node) ? waveHandoverRepair(ctx, a.node, waveScriptSettings(config, "waves/node-handover")) : agentKprRepair(ctx),
                        ),
                    );
                }
            } else if (a.mode === "True") {
                findings.push(
                    drift(
                        a.node,
                        "agent-kpr",
                        `agent pod ${a.pod} on ${a.node}, whose wave is not declared, reports kube-proxy-replacement True beside kube-proxy (the two NAT tables know nothing of each other)`,
                        waveHandbackRepair(a.node, a.pod, config.cilium.namespace, MIGRATED_LABEL),
                    ),
                );
            }
        }
    }
    findings.push(...scriptStoreFindings(config, obs, ctx));
    return findings;
}

/**
 * The cluster script store must hold every script the wave steps run, unaltered: a step whose script is
 * missing or altered fails closed, and for the handover's delete that is the rollback. The expected
 * scripts are this repository's; right after a script change they are missing until the next `pulumi up`.
 */
function scriptStoreFindings(config: MigrationConfig, obs: ClusterObservation, ctx: RepairContext): Finding[] {
    const store = obs.scriptStore;
    if (store === undefined || store === null || store === "unreadable") return [];
    const findings: Finding[] = [];
    for (const entry of waveStoreEntries(config)) {
        const name = storeConfigMapName(entry.sha256);
        if (!store.some((c) => c.name === name))
            findings.push(
                drift(
                    CLUSTER_SCOPE,
                    "script-store",
                    `${entry.name}.sh (sha256 ${entry.sha256}) is missing from the cluster script store (configmap/${name} in ${STORE_NAMESPACE}): the wave steps that run it fail closed, their destroy too (or the repository's scripts or the stack's settings are newer than the last pulumi up)`,
                    waveScriptStoreRepair(ctx),
                ),
            );
    }
    for (const c of store.filter((x) => !x.intact))
        findings.push(
            drift(
                CLUSTER_SCOPE,
                "script-store",
                `configmap/${c.name} in ${STORE_NAMESPACE} no longer holds the script of the sha256 in its name (re-created by hand): the steps that run it fail closed`,
                waveScriptStoreRepair(ctx),
            ),
        );
    return findings;
}
