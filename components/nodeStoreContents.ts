import type { MigrationConfig } from "./config/validate";
import type { NodeConfig } from "./config/schema";
import { storeSet, type StoreSet } from "./commands/nodeStore";
import { nodeRunnerText } from "./commands/remoteCommand";
import { scriptText } from "./commands/scripts";
import { nodeTproxyBundle } from "./tproxy/nodeBundle";
import { tproxyStoreContents } from "./tproxy/tproxyCommands";

/**
 * Everything one node's store holds (commands/nodeStore.ts): the node runner every step's text runs
 * through (commands/remoteCommand.ts), the scripts of every node step, and every file of the tproxy
 * bundle with its manifest (their texts are shown once per stack by the node-files Stash,
 * tproxy/nodeFilesStash.ts). A step's text fetches what the store holds and carries the rest; a change
 * to any of them changes the set, so `up` copies the new files before the steps run.
 */
export function nodeStoreSet(config: MigrationConfig, node: NodeConfig): StoreSet {
    return storeSet([
        nodeRunnerText(),
        scriptText("preflight/node-preflight"),
        scriptText("kubeproxy/stale-rules-cleanup"),
        scriptText("kubeproxy/stale-rules-verify"),
        ...(config.tproxy.enabled ? tproxyStoreContents(nodeTproxyBundle(config, node)) : []),
    ]);
}
