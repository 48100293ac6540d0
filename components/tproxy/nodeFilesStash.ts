import * as pulumi from "@pulumi/pulumi";
import type { MigrationConfig } from "../config/validate";
import type { NodeConfig } from "../config/schema";
import { sha256Hex } from "../commands/nodeStore";
import { STEP } from "../resourceNames";
import { nodeTproxyBundle, type BundleFileKind, type NodeBundle } from "./nodeBundle";
import { manifestPathOf } from "./nodeLayout";
import { bundleManifest } from "./tproxyCommands";

/*
 * The files the tproxy pushes to its nodes, once per stack, for `pulumi preview`. Every node's apply
 * stages them from its node store by sha256 (tproxyCommands.ts tproxyStoreContents), so its text shows
 * only digests; this Stash holds their texts, so a ruleset change shows once, line by line, instead of
 * once per node (or not at all).
 *
 * pulumi:index:Stash is an engine builtin (pulumi/pulumi PR #20819, first in v3.208.0; older CLIs fail
 * the preview with "unrecognized resource type"). What it does, from pkg/resource/deploy/builtins.go
 * (builtinProvider, stashType):
 *   - Check accepts exactly one property, `input` (any other: `unknown property "x"`; none:
 *     `missing required property "input"`).
 *   - Diff: a changed `input` (DeepEquals) is an update with ChangedKeys [input], never a replacement;
 *     an equal one is no change. The CLI prints a changed multi-line string as a line diff
 *     (pkg/backend/display/object_diff.go printTextDiff: DiffLinesToChars), unless the string parses
 *     as YAML or JSON (decodeValue, tried first): the manifest does, so its change shows as one
 *     folded YAML string; the ruleset, scripts, unit and drop-in do not, and show line by line.
 *   - Create stores `input` and `output` = input; Update stores the new `input` and keeps the OLD
 *     `output` (req.OldOutputs["output"]): `output` is the value of the first up, forever. The program
 *     reads neither; `input` is what the nodes get now.
 *   - Delete does nothing (returns StatusOK), and import is refused ("stash can not be imported").
 *     Before v3.208.0 the builtin provider's Delete asserts a StackReference and panics the CLI
 *     (v3.207.0 builtins.go Delete: contract.Assertf), so an operator rolling back with an older CLI
 *     would crash the destroy. The Stash is therefore retained on delete: the engine then never calls
 *     the provider's Delete and only drops it from state (step.go DeleteStep.Apply, RetainOnDelete,
 *     the same in v3.207.0), which on 3.208.0 and later is all Delete did anyway.
 * So the Stash changes nothing anywhere: it cannot fail an up or a destroy, and nothing depends on it.
 */

/** One content of a node path, and the nodes that get it when the nodes do not all get the same. */
export interface NodeFileVariant {
    readonly kind: BundleFileKind | "manifest";
    readonly mode?: string;
    readonly owner?: string;
    readonly sha256: string;
    readonly content: string;
    /** Present only when the path has more than one variant: the nodes (sorted) that get this one. */
    readonly nodes?: readonly string[];
}

/** The Stash's `input`: every tproxy node, and per node path the content(s) the apply installs there. */
export interface TproxyNodeFiles {
    /** Every node the tproxy is applied to, sorted. */
    readonly nodes: readonly string[];
    /** By node path (sorted): usually one variant, which every node in `nodes` gets. */
    readonly files: Readonly<Record<string, readonly NodeFileVariant[]>>;
}

/** The files of one node as the Stash lists them: the bundle's files and the manifest at its node path. */
function nodeFiles(bundle: NodeBundle): [string, Omit<NodeFileVariant, "nodes">][] {
    const manifest = bundleManifest(bundle);
    return [
        ...bundle.files.map((f): [string, Omit<NodeFileVariant, "nodes">] => [
            f.path,
            { kind: f.kind, mode: f.mode, owner: f.owner, sha256: sha256Hex(f.content), content: f.content },
        ]),
        [manifestPathOf(bundle.layout), { kind: "manifest", sha256: sha256Hex(manifest), content: manifest }],
    ];
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Groups the nodes' files by path, then by content (kind, mode and owner included). Pure; deterministic. */
export function tproxyNodeFiles(bundles: readonly { readonly node: string; readonly bundle: NodeBundle }[]): TproxyNodeFiles {
    const nodes = bundles.map((b) => b.node);
    if (new Set(nodes).size !== nodes.length) throw new Error(`a node appears twice among the tproxy nodes: ${nodes.join(", ")}`);
    const paths = new Map<string, Map<string, { file: Omit<NodeFileVariant, "nodes">; nodes: string[] }>>();
    for (const { node, bundle } of bundles) {
        for (const [path, file] of nodeFiles(bundle)) {
            const variants = paths.get(path) ?? new Map<string, { file: Omit<NodeFileVariant, "nodes">; nodes: string[] }>();
            paths.set(path, variants);
            const key = JSON.stringify([file.kind, file.mode ?? "", file.owner ?? "", file.sha256]);
            const variant = variants.get(key) ?? { file, nodes: [] };
            variants.set(key, variant);
            variant.nodes.push(node);
        }
    }
    const sorted = [...nodes].sort(byText);
    const files: Record<string, NodeFileVariant[]> = {};
    for (const path of [...paths.keys()].sort(byText)) {
        const variants = [...paths.get(path)!.values()].map((v) => ({ ...v, nodes: v.nodes.sort(byText) }));
        // One content on every node: the nodes are the top-level list. Otherwise each says whose it is
        // (a path some nodes do not get at all shows as fewer nodes than `nodes`).
        const shared = variants.length === 1 && variants[0]!.nodes.length === nodes.length;
        files[path] = variants.sort((a, b) => byText(a.nodes[0]!, b.nodes[0]!)).map((v) => (shared ? { ...v.file } : { ...v.file, nodes: v.nodes }));
    }
    return { nodes: sorted, files };
}

/**
 * The one Stash of a stack with the tproxy on (STEP.tproxyNodeFiles): the files of every node in
 * `nodes`, rendered as their applies render them. Declares nothing without the tproxy or nodes.
 */
export function tproxyNodeFilesStash(config: MigrationConfig, nodes: readonly NodeConfig[], opts: pulumi.CustomResourceOptions): pulumi.Stash | undefined {
    if (!config.tproxy.enabled || nodes.length === 0) return undefined;
    const input = tproxyNodeFiles(nodes.map((node) => ({ node: node.name, bundle: nodeTproxyBundle(config, node) })));
    return new pulumi.Stash(STEP.tproxyNodeFiles, { input }, pulumi.mergeOptions(opts, { retainOnDelete: true }));
}
