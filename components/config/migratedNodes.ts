import type { NodeConfig } from "./schema";
import type { MigrationConfig } from "./validate";

/** The nodes this run migrates: the canary nodes when `migration.canaryNodes` names any, else every node. */
export function migratedNodes(config: MigrationConfig): readonly NodeConfig[] {
    const canary = new Set(config.migration.canaryNodes);
    return canary.size === 0 ? config.nodes : config.nodes.filter((node) => canary.has(node.name));
}
