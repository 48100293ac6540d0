import type { MigrationSettings, NodeConfig } from "./schema";

/**
 * The wave settings of the node-by-node migration as config: which nodes move in which wave, and the
 * cross-key rules validation reports. Pure; the graph (components/migration.ts, components/waves/)
 * and the tests read the same plan.
 */

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
