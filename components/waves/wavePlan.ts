import type { Wave } from "../config/waveSettings";
import type { ClusterScriptName } from "../commands/scriptParams";

/*
 * Node-by-node KPR: the label that marks a migrated node, and the plan's texts. Which node moves in
 * which wave, and the rules of the wave settings, are config (../config/waveSettings.ts); they are
 * exported here too for the graph and the tools.
 */
export { declaredWaves, planWaves, usesWaves, type Wave } from "../config/waveSettings";

/** The label this program owns: set on a node when it is handed from kube-proxy to its KPR agent. */
export const MIGRATED_LABEL = "cilium-kpr.io/kpr-migrated";
export const MIGRATED_LABEL_VALUE = "true";

/**
 * The scripts the per-node wave steps run, all from the cluster script store (commands/clusterScriptStore.ts):
 * the store step writes exactly these, and the drift check expects exactly these in the store.
 */
export type WaveStoreScript = Extract<
    ClusterScriptName,
    "waves/node-handover" | "waves/node-handback" | "waves/node-kpr-gate" | "waves/node-services" | "waves/node-drain" | "waves/node-uncordon"
>;

export function waveStoreScripts(drain: boolean): WaveStoreScript[] {
    return [
        "waves/node-handover",
        "waves/node-handback",
        "waves/node-kpr-gate",
        "waves/node-services",
        ...(drain ? (["waves/node-drain", "waves/node-uncordon"] as const) : []),
    ];
}

/** A text that changes exactly when the waves do; as a trigger it re-runs the final gate. */
export function wavesScope(waves: readonly Wave[]): string {
    return waves.map((w) => `wave ${w.index}: ${w.nodes.join(" ")}`).join("; ");
}

/** The migration's waves as plan text: which nodes move when, each wave after the previous one passed. */
export function waveSummary(waves: readonly Wave[], drain: boolean, stopAfterWave?: number): string[] {
    if (waves.length === 0) return [];
    const steps = `${drain ? "cordon+drain, " : ""}label + kube-proxy gone, agent restart, KPR gate, stale-rule cleanup, tproxy, services check${drain ? ", uncordon" : ""}`;
    return [
        `Node-by-node migration: ${waves.length} wave${waves.length === 1 ? "" : "s"} (label ${MIGRATED_LABEL}=${MIGRATED_LABEL_VALUE}); per node: ${steps}.`,
        ...waves.map(
            (w) =>
                `  migration wave ${w.index}${w.index === 1 ? " (canary)" : ""}: ${w.nodes.join(", ")}${w.index > 1 ? ` (after wave ${w.index - 1} passed)` : ""}`,
        ),
        stopAfterWave !== undefined && stopAfterWave < waves.length
            ? `  this run stops after wave ${stopAfterWave} (migration.stopAfterWave): the later waves and kube-proxy's removal are not declared.`
            : "  then: every agent gated, kube-proxy backed up and deleted. `pulumi destroy` runs it backwards, last wave first.",
        "  (The [wave N] numbers below are the engine's: steps that may run at the same time.)",
        "",
    ];
}
