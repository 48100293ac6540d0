import { readFileSync } from "node:fs";
import * as path from "node:path";

/** The bash scripts that run on nodes; they live as real files in ./scripts. */
export type NodeScriptName =
    | "policy-routes.sh"
    | "tproxy-lib.sh"
    | "tproxy-apply.sh"
    | "tproxy-boot.sh"
    | "tproxy-confirm.sh"
    | "tproxy-revert.sh"
    | "tproxy-remove.sh"
    | "tproxy-drift-check.sh";

export const NODE_SCRIPTS_DIR = path.join(__dirname, "scripts");

const cache = new Map<NodeScriptName, string>();

/** The text of one node script, exactly as committed. */
export function nodeScript(name: NodeScriptName): string {
    let text = cache.get(name);
    if (text === undefined) {
        text = readFileSync(path.join(NODE_SCRIPTS_DIR, name), "utf8");
        cache.set(name, text);
    }
    return text;
}
