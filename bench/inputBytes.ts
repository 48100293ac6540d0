/*
 * node --import tsx bench/inputBytes.ts --stack <name> [--stack-dir <dir>]
 * Resource-input bytes per node: runs the program under the mock runtime (tools/mockRuntime.ts, as
 * tools/plan.ts does) and measures the inputs it registers. Prints one JSON line (NodeInputBytes). A real `pulumi up` keeps every resource's inputs in the checkpoint (and the
 * command provider's outputs repeat them), so these bytes are a lower bound of what each node adds
 * to the state. Measured as the UTF-8 length of JSON.stringify(inputs), secrets unwrapped.
 */
import * as path from "node:path";
import { parseArgs } from "node:util";
import { STEP, WAVE_STEP } from "../components/resourceNames";
import { validateStackConfig } from "../components/config/validate";
import { recordProgram } from "../tools/mockRuntime";
import { rawStackConfig, readStackFile } from "../tools/stackFile";

/** The part of a resources.json entry this needs. */
export interface RecordedInputs {
    readonly name: string;
    readonly custom: boolean;
    readonly inputs: Record<string, unknown>;
}

/** The per-node step kinds: every STEP (and wave path WAVE_STEP) name built from a node name, e.g. "tproxyApply". */
const NODE_STEP_KINDS = [...Object.entries(STEP), ...Object.entries(WAVE_STEP).filter(([kind]) => kind !== "wave")].flatMap(([kind, name]) =>
    typeof name === "function" ? [{ kind, name }] : [],
);

export interface NodeInputBytes {
    /** Nodes that own at least one step (a waves stack may leave configured nodes out). */
    readonly nodes: number;
    /** Per node step kind: the mean input bytes per node. */
    readonly perKind: Readonly<Record<string, number>>;
    /** Mean input bytes per node, all its steps. */
    readonly perNode: number;
    /** The largest node's input bytes. */
    readonly maxNode: number;
    /** Input bytes of the resources that belong to no node (cluster steps, providers). */
    readonly cluster: number;
}

export function inputBytes(inputs: Record<string, unknown>): number {
    return Buffer.byteLength(JSON.stringify(inputs), "utf8");
}

/** Attributes every custom resource to the node whose STEP name it carries, or to the cluster. */
export function nodeInputBytes(resources: readonly RecordedInputs[], nodeNames: readonly string[]): NodeInputBytes {
    if (nodeNames.length === 0) throw new Error("no nodes to attribute input bytes to");
    const owner = new Map<string, { node: string; kind: string }>();
    for (const node of nodeNames) for (const { kind, name } of NODE_STEP_KINDS) owner.set(name(node), { node, kind });
    const byNode = new Map<string, number>(nodeNames.map((n) => [n, 0]));
    const byKind = new Map<string, number>();
    let cluster = 0;
    for (const r of resources) {
        if (!r.custom) continue;
        const bytes = inputBytes(r.inputs);
        const o = owner.get(r.name);
        if (o === undefined) {
            cluster += bytes;
            continue;
        }
        byNode.set(o.node, byNode.get(o.node)! + bytes);
        byKind.set(o.kind, (byKind.get(o.kind) ?? 0) + bytes);
    }
    const totals = [...byNode.values()].filter((bytes) => bytes > 0);
    if (totals.length === 0) throw new Error("no resource belongs to a node");
    return {
        nodes: totals.length,
        perKind: Object.fromEntries([...byKind].map(([kind, bytes]) => [kind, bytes / totals.length])),
        perNode: totals.reduce((a, b) => a + b, 0) / totals.length,
        maxNode: Math.max(...totals),
        cluster,
    };
}

/** The table plan-scale.ts prints: one row per size, one column per node step kind (KB = 1000 bytes). */
export function inputBytesTable(rows: readonly { nodes: number; bytes: NodeInputBytes }[]): string {
    const kinds = [...new Set(rows.flatMap((r) => Object.keys(r.bytes.perKind)))];
    const columns = ["nodes", "with steps", "KB/node", "max KB/node", ...kinds.map((k) => `${k} KB`), "cluster KB", "MB total"];
    const kb = (bytes: number) => (bytes / 1000).toFixed(1);
    const cells = rows.map(({ nodes, bytes }) => [
        String(nodes),
        String(bytes.nodes),
        kb(bytes.perNode),
        kb(bytes.maxNode),
        ...kinds.map((k) => kb(bytes.perKind[k] ?? 0)),
        kb(bytes.cluster),
        ((bytes.perNode * bytes.nodes + bytes.cluster) / 1e6).toFixed(2),
    ]);
    const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
    const line = (row: readonly string[]) => row.map((cell, i) => cell.padStart(widths[i]!)).join("  ") + "\n";
    return (
        line(columns) +
        cells.map(line).join("") +
        "resource inputs as recorded by the mock runtime (JSON bytes, secrets unwrapped), per node step kind averaged over nodes; " +
        "a real checkpoint holds at least this (the command provider's outputs repeat its inputs)\n"
    );
}

/** Records the stack's program under the mock runtime and measures its inputs per node. */
export async function stackInputBytes(stackDir: string, stackName: string): Promise<NodeInputBytes> {
    const stack = readStackFile(stackDir, stackName);
    const validated = validateStackConfig(stack.project, rawStackConfig(stack.config));
    if (!validated.ok) throw new Error(`Pulumi.${stackName}.yaml is invalid: ${JSON.stringify(validated.issues.slice(0, 3))}`);
    const resources = await recordProgram(
        { project: stack.project, stack: stackName, config: stack.config, secretKeys: stack.secretKeys },
        () => import("../index"),
    );
    return nodeInputBytes(
        resources,
        validated.config.nodes.map((n) => n.name),
    );
}

if (require.main === module) {
    const { values } = parseArgs({ options: { "stack": { type: "string" }, "stack-dir": { type: "string" } } });
    if (values.stack === undefined) {
        process.stderr.write("usage: node --import tsx bench/inputBytes.ts --stack <name> [--stack-dir <dir>]\n");
        process.exitCode = 2;
    } else {
        stackInputBytes(path.resolve(values["stack-dir"] ?? path.join(__dirname, "..")), values.stack).then(
            (bytes) => process.stdout.write(`${JSON.stringify(bytes)}\n`),
            (err: unknown) => {
                process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
                process.exitCode = 1;
            },
        );
    }
}
