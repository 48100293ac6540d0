import type { MigrationSettings, NodeConfig } from "../config/schema";

/**
 * Node-by-node KPR: which nodes move in which wave. Pure; the graph (components/migration.ts)
 * and the tests read the same plan.
 */

/** The label this program owns: set on a node when it is handed from kube-proxy to its KPR agent. */
export const MIGRATED_LABEL = "cilium-kpr.io/kpr-migrated";
export const MIGRATED_LABEL_VALUE = "true";

export interface Wave {
    /** 1-based; wave 1 is the canary. */
    readonly index: number;
    readonly nodes: readonly string[];
}

/** True when the stack asks for the node-by-node migration (`migration.waves` or `migration.waveSize`). */
export function usesWaves(migration: MigrationSettings): boolean {
    return migration.waves !== undefined || migration.waveSize !== undefined;
}

/** The waves this run declares: all of them, or those up to `migration.stopAfterWave`. */
export function declaredWaves(migration: MigrationSettings, waves: readonly Wave[]): readonly Wave[] {
    return migration.stopAfterWave === undefined ? waves : waves.slice(0, migration.stopAfterWave);
}

/**
 * The waves in order. `migration.waves` as given; `migration.waveSize` cuts the nodes, in the
 * order of `nodes`, into groups of that size. Call only on a validated config (checkWaves).
 */
export function planWaves(migration: MigrationSettings, nodes: readonly Pick<NodeConfig, "name">[]): readonly Wave[] {
    const lists =
        migration.waves ??
        (migration.waveSize === undefined
            ? []
            : chunk(
                  nodes.map((n) => n.name),
                  migration.waveSize,
              ));
    return lists.map((list, i) => ({ index: i + 1, nodes: [...list] }));
}

function chunk<T>(items: readonly T[], size: number): T[][] {
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
}

export type Report = (path: string, message: string) => void;

/**
 * Cross-key rules of the wave settings, every problem reported (path relative to the stack config):
 * KPR on, `waves` or `waveSize` not both, every wave node known, each node in exactly one wave, and
 * `canaryNodes` (the single-shot canary) folded into the first wave with a message that says how.
 */
export function checkWaves(
    migration: MigrationSettings,
    nodeNames: readonly string[] | undefined,
    kubeProxyReplacement: boolean | undefined,
    report: Report,
): void {
    if (!usesWaves(migration)) return;
    if (kubeProxyReplacement === false) {
        report("migration.waves", "moves nodes to Cilium's kube-proxy replacement, which needs cilium.kubeProxyReplacement true");
    }
    if (migration.waves !== undefined && migration.waveSize !== undefined) {
        report("migration.waveSize", "set either migration.waves (lists of node names) or migration.waveSize, not both");
    }
    const canary = migration.canaryNodes;
    if (canary.length > 0) {
        const first = migration.waves?.[0] ?? [];
        const sameSet = first.length === canary.length && canary.every((n) => first.includes(n));
        // A canary that already ran is adopted as wave 1 (its nodes are labelled before anything else changes).
        if (migration.waves === undefined || !sameSet) {
            report(
                "migration.canaryNodes",
                `the canary becomes the first wave: keep migration.canaryNodes and start migration.waves with exactly [${canary.join(", ")}] ` +
                    `(for example migration.waves: [[${canary.join(", ")}], [the other nodes]]); a stack whose canary never ran can drop migration.canaryNodes instead`,
            );
        }
    }
    if (migration.stopAfterWave !== undefined && nodeNames !== undefined) {
        const count = planWaves(
            migration,
            nodeNames.map((name) => ({ name })),
        ).length;
        if (migration.stopAfterWave > count) report("migration.stopAfterWave", `is ${migration.stopAfterWave}, but there are ${count} waves`);
    }
    if (migration.waves === undefined || nodeNames === undefined) return;
    const known = new Set(nodeNames);
    const seenAt = new Map<string, string>();
    migration.waves.forEach((wave, w) =>
        wave.forEach((name, i) => {
            const path = `migration.waves[${w}][${i}]`;
            if (!known.has(name)) report(path, `"${name}" is not one of the nodes; list it under nodes too (its SSH address and host key)`);
            const earlier = seenAt.get(name);
            if (earlier !== undefined) report(path, `"${name}" is already in ${earlier}; each node moves in exactly one wave`);
            else seenAt.set(name, path);
        }),
    );
    const missing = nodeNames.filter((n) => !seenAt.has(n));
    if (missing.length > 0) {
        report(
            "migration.waves",
            `leaves out ${missing.join(", ")}: every node must be in a wave, because kube-proxy is removed after the last one (add them to a later wave)`,
        );
    }
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
