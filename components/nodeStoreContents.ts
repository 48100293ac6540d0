import type { MigrationConfig } from "./config/validate";
import type { NodeConfig } from "./config/schema";
import { storeSet, type StoreSet } from "./commands/nodeStore";
import { scriptText } from "./commands/scriptFile";
import { nodePreflightScript } from "./preflight/preflightArgs";
import { nodeTproxyBundle } from "./tproxy/nodeTproxyBundle";
import { tproxyStoreContents } from "./tproxy/remoteScript";

/**
 * Everything one node's store holds (commands/nodeStore.ts): the scripts of every node step, and the
 * tproxy bundle's files but its ruleset. A step's text fetches what the store holds and carries the
 * rest; a change to any of them changes the set, so `up` copies the new files before the steps run.
 */
export function nodeStoreSet(config: MigrationConfig, node: NodeConfig): StoreSet {
    return storeSet([
        nodePreflightScript(),
        scriptText("kubeproxy/scripts/stale-rules-cleanup.sh"),
        scriptText("kubeproxy/scripts/stale-rules-verify.sh"),
        ...(config.tproxy.enabled ? tproxyStoreContents(nodeTproxyBundle(config, node)) : []),
    ]);
}
