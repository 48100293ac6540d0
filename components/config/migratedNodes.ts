import type { NodeConfig } from "./schema";
import type { MigrationConfig } from "./validate";
import { declaredWaves, planWaves, usesWaves } from "./waveSettings";

/**
 * The nodes this run migrates: on the node-by-node path the nodes of the waves it declares (all, or up
 * to `migration.stopAfterWave`); else the canary nodes when `migration.canaryNodes` names any, else every node.
 */
export function migratedNodes(config: MigrationConfig): readonly NodeConfig[] {
    if (usesWaves(config.migration)) {
        const moved = new Set(declaredWaves(config.migration, planWaves(config.migration, config.nodes)).flatMap((w) => w.nodes));
        return config.nodes.filter((node) => moved.has(node.name));
    }
    const canary = new Set(config.migration.canaryNodes);
    return canary.size === 0 ? config.nodes : config.nodes.filter((node) => canary.has(node.name));
}

/**
 * A text that changes exactly when the set of migrated nodes does. As a trigger it re-runs the
 * cluster-wide checks when a canary grows or becomes the full migration, which would otherwise
 * rely on a gate result from the canary run.
 */
export function migrationScope(config: MigrationConfig): string {
    const canary = [...new Set(config.migration.canaryNodes)].sort();
    return canary.length === 0 ? "all nodes" : `canary: ${canary.join(" ")}`;
}
