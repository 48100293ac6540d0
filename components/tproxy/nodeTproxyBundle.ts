import type { MigrationConfig } from "../config/validate";
import type { NodeConfig } from "../config/schema";
import { KEEPALIVED_NOTIFY_MODE, KEEPALIVED_NOTIFY_OWNER, KEEPALIVED_NOTIFY_PATH, keepalivedSnippet, renderKeepalivedNotify } from "./keepalivedNotify";
import { renderNodeBundle, type NodeBundle } from "./nodeBundle";
import { nftRulesetInput, renderNftRuleset } from "./nftRuleset";
import { policyRouteSpec } from "./policyRoutes";

/**
 * Everything pushed to one node for the tproxy, as a pure function of validated config:
 * the nftables table, policy routes with their boot unit and networkd drop-in, and the
 * keepalived notify script (installed where keepalived's script security accepts it).
 */
export function nodeTproxyBundle(config: MigrationConfig, _node: NodeConfig): NodeBundle {
    const { tproxy } = config;
    return renderNodeBundle({
        tableName: tproxy.tableName,
        ruleset: renderNftRuleset(nftRulesetInput(config)),
        routes: policyRouteSpec(tproxy),
        extraFiles: [
            {
                path: KEEPALIVED_NOTIFY_PATH,
                mode: `0${KEEPALIVED_NOTIFY_MODE.toString(8)}`,
                owner: KEEPALIVED_NOTIFY_OWNER,
                content: renderKeepalivedNotify(config),
                kind: "activation-script",
            },
        ],
    });
}

/** What the operator merges into the node's keepalived.conf (the program does not own that file). */
export function nodeKeepalivedSnippet(config: MigrationConfig, node: NodeConfig): string {
    return keepalivedSnippet(config, node);
}
