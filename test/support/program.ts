import * as path from "node:path";
import { recordProgramOutcome, type RecordedResource } from "../../tools/mockRuntime";
import { readStackFile } from "../../tools/stackFile";
import { ROOT } from "./stacks";

/**
 * Runs the real program (index.ts) under Pulumi's mocks with a stack file's config, optionally
 * overriding whole top-level keys (given as objects; they are JSON-encoded the way Pulumi passes them).
 */
export async function runProgram(
    stack: string,
    overrides: Readonly<Record<string, unknown>> = {},
): Promise<{ resources: RecordedResource[]; error?: unknown }> {
    const file = readStackFile(ROOT, stack);
    const config = { ...file.config };
    for (const [key, value] of Object.entries(overrides)) {
        if (value === undefined) delete config[key];
        else config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
    const entry = path.join(ROOT, "index.ts");
    return recordProgramOutcome({ project: file.project, stack, config, secretKeys: file.secretKeys }, () => {
        // Each run declares the program anew.
        for (const key of Object.keys(require.cache)) {
            if (key.startsWith(path.join(ROOT, "components")) || key === entry) delete require.cache[key];
        }
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- re-evaluating the program needs CommonJS require after clearing require.cache; import() would return the cached module
        return require(entry) as unknown;
    });
}

export function find(resources: readonly RecordedResource[], type: string, name?: string): RecordedResource {
    const hit = resources.find((r) => r.type === type && (name === undefined || r.name === name));
    if (!hit) throw new Error(`no ${type} ${name ?? ""} among: ${resources.map((r) => `${r.type} ${r.name}`).join(", ")}`);
    return hit;
}

/** Everything `name` waits for, directly or through its dependencies (Pulumi deletes in the reverse order). */
export function dependenciesOf(resources: readonly RecordedResource[], name: string): Set<string> {
    const byName = new Map(resources.filter((r) => r.custom).map((r) => [r.name, r]));
    const seen = new Set<string>();
    const walk = (n: string) => {
        for (const dep of byName.get(n)?.dependsOn ?? []) {
            if (!seen.has(dep)) {
                seen.add(dep);
                walk(dep);
            }
        }
    };
    walk(name);
    return seen;
}
