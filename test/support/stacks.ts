import * as path from "node:path";
import type { RawStackConfig } from "../../components/config/validate";
import { rawStackConfig, readStackFile } from "../../tools/stackFile";

export const ROOT = path.resolve(__dirname, "..", "..");
export const PROJECT = "cilium-kpr";

/** A stack file's config as the raw (unvalidated) object the program reads; a fresh deep copy. */
export function rawStack(stack: string): RawStackConfig {
    // The tests stand in for the SSH key the stack file does not hold (the plan uses "[secret]" too).
    return rawStackConfig(readStackFile(ROOT, stack).config);
}

/**
 * Returns a copy of `raw` with the value at a config path replaced ("tproxy.port", "nodes[1].name");
 * `undefined` deletes the key.
 */
export function withValue(raw: RawStackConfig, configPath: string, value: unknown): RawStackConfig {
    const copy = structuredClone(raw) as unknown as Record<string, unknown>;
    const parts = configPath.replace(/\[(\d+)\]/g, ".$1").split(".");
    let node: Record<string, unknown> = copy;
    for (const part of parts.slice(0, -1)) {
        if (node[part] === undefined) node[part] = {};
        node = node[part] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1]!;
    if (value === undefined) delete node[last];
    else node[last] = value;
    return copy as unknown as RawStackConfig;
}

/** Applies several changes in order. */
export function withValues(raw: RawStackConfig, changes: Readonly<Record<string, unknown>>): RawStackConfig {
    return Object.entries(changes).reduce((acc, [p, v]) => withValue(acc, p, v), raw);
}
