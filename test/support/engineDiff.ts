import * as util from "node:util";
import type { RecordedResource } from "../../tools/mockRuntime";

/**
 * What `pulumi up` would do to each resource kept between two runs of the program, for the parts of
 * the engine and providers our safety depends on:
 * - ignoreChanges: the old value of each path is put back into the new inputs before the diff
 *   (pulumi/pulumi pkg/resource/deploy/step_generator.go processIgnoreChanges -> PropertyPath.Reset,
 *   which unwraps secrets on the way);
 * - pulumi-command 1.2.1: a change of `triggers` replaces, any other input change is an update, and an
 *   update without an `update` command runs `create` again (remote|local/commandController.go Update);
 * - pulumi-kubernetes helm.v3.Release: a change of `name` or `namespace` replaces
 *   (provider/pkg/provider/helm_release.go Diff: forceNewFields ".name", ".namespace").
 * - the engine's builtin pulumi:index:Stash: a changed `input` is an update, never a replacement
 *   (pkg/resource/deploy/builtins.go builtinProvider.Diff: ChangedKeys [input]), the default below.
 * Only top-level and dotted object paths are modelled (all this program uses).
 */
export type Operation = "same" | "update" | "replace";

function resetPath(oldInputs: Record<string, unknown>, newInputs: Record<string, unknown>, dotted: string): void {
    const parts = dotted.split(".");
    let from: unknown = oldInputs;
    let to: unknown = newInputs;
    for (const part of parts.slice(0, -1)) {
        if (from === null || typeof from !== "object" || to === null || typeof to !== "object") return;
        from = (from as Record<string, unknown>)[part];
        to = (to as Record<string, unknown>)[part];
    }
    const last = parts[parts.length - 1]!;
    if (from !== null && typeof from === "object" && to !== null && typeof to === "object") {
        (to as Record<string, unknown>)[last] = (from as Record<string, unknown>)[last];
    }
}

export function operationFor(before: RecordedResource, after: RecordedResource): Operation {
    const news = structuredClone(after.inputs);
    for (const path of after.ignoreChanges) resetPath(before.inputs, news, path);
    if (util.isDeepStrictEqual(before.inputs, news)) return "same";
    if (before.type.startsWith("command:")) return util.isDeepStrictEqual(before.inputs.triggers, news.triggers) ? "update" : "replace";
    if (before.type === "kubernetes:helm.sh/v3:Release" && (before.inputs.name !== news.name || before.inputs.namespace !== news.namespace)) return "replace";
    return "update";
}

/** "type name" -> operation, for every resource declared by both runs. */
export function operations(before: readonly RecordedResource[], after: readonly RecordedResource[]): Map<string, Operation> {
    const key = (r: RecordedResource) => `${r.type} ${r.name}`;
    const old = new Map(before.filter((r) => r.custom).map((r) => [key(r), r]));
    const out = new Map<string, Operation>();
    for (const r of after) {
        const o = r.custom ? old.get(key(r)) : undefined;
        if (o) out.set(key(r), operationFor(o, r));
    }
    return out;
}
