import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import * as YAML from "yaml";
import { creationOrder, recordProgram, type RecordedResource } from "./mockRuntime";
import { rawStackConfig, readStackFile } from "./stackFile";
import { describeStep } from "./planSteps";
import { validateStackConfig } from "../components/config/validate";
import { migratedNodes } from "../components/config/migratedNodes";
import { nodeKeepalivedSnippet, nodeTproxyBundle } from "../components/tproxy/nodeTproxyBundle";

/**
 * The offline plan: runs the real program (index.ts) under Pulumi's mock runtime with
 * Pulumi.<stack>.yaml, with no Pulumi CLI, cluster or credentials, and writes what it would do.
 */
async function main(): Promise<number> {
    const { values } = parseArgs({ options: { "stack": { type: "string" }, "out": { type: "string" }, "stack-dir": { type: "string" } } });
    if (values.stack === undefined || !/^[A-Za-z0-9_.-]+$/.test(values.stack)) {
        process.stderr.write("usage: npm run plan -- --stack <name> [--out <dir>] [--stack-dir <dir with Pulumi.yaml and Pulumi.<name>.yaml>]\n");
        return 2;
    }
    const root = path.resolve(__dirname, "..");
    // --stack-dir lets bench/plan-scale.ts plan generated stacks without writing into the repository.
    const stack = readStackFile(values["stack-dir"] === undefined ? root : path.resolve(values["stack-dir"]), values.stack);
    const outDir = path.resolve(values.out ?? path.join(root, "plan", values.stack));
    for (const key of stack.placeholderSecrets) {
        process.stderr.write(`note: ${stack.project}:${key} is not in Pulumi.${values.stack}.yaml; the plan uses [secret] (a real run needs it)\n`);
    }

    let resources: RecordedResource[];
    try {
        resources = await recordProgram(
            { project: stack.project, stack: values.stack, config: stack.config, secretKeys: stack.secretKeys },
            () => import("../index"),
        );
    } catch (err) {
        process.stderr.write(`plan failed: ${err instanceof Error ? err.message : String(err)}\n`);
        return 1;
    }
    const ordered = creationOrder(resources);

    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    const byKey = new Map(ordered.map((r) => [r.key, r]));
    writeFileSync(
        path.join(outDir, "resources.json"),
        JSON.stringify(
            ordered.map((r) => ({
                urn: urnOf(r, byKey, stack.project, values.stack!),
                type: r.type,
                name: r.name,
                parent: r.parent ?? null,
                dependsOn: r.dependsOn,
                ...(r.retainOnDelete ? { retainOnDelete: true } : {}),
                ...(r.deleteBeforeReplace ? { deleteBeforeReplace: true } : {}),
            })),
            null,
            2,
        ) + "\n",
    );

    const release = ordered.find((r) => r.type === "kubernetes:helm.sh/v3:Release");
    if (release) writeFileSync(path.join(outDir, "cilium-values.yaml"), YAML.stringify(release.inputs.values ?? {}));

    // The exact command texts each step runs (create, and delete for `pulumi destroy`).
    for (const r of ordered) {
        if (r.type !== "command:local:Command" && r.type !== "command:remote:Command") continue;
        mkdirSync(path.join(outDir, "steps"), { recursive: true });
        for (const phase of ["create", "delete"] as const) {
            const text = r.inputs[phase];
            if (typeof text === "string") writeFileSync(path.join(outDir, "steps", `${r.name}.${phase}.sh`), text);
        }
    }

    writeNodeFiles(outDir, stack.project, stack.config);

    process.stdout.write(`Migration plan for stack ${values.stack} (${ordered.filter((r) => r.custom).length} resources), in order:\n`);
    let step = 0;
    for (const r of ordered) {
        if (!r.custom) continue;
        process.stdout.write(`${String(++step).padStart(3)}. ${describeStep(r)}\n`);
    }
    process.stdout.write(`\nWritten to ${path.relative(process.cwd(), outDir) || "."}/\n`);
    return 0;
}

/** Every file pushed to each migrated node, under nodes/<node>/<absolute path>, plus the keepalived snippet. */
function writeNodeFiles(outDir: string, project: string, config: Readonly<Record<string, string>>): void {
    const result = validateStackConfig(project, rawStackConfig(config));
    if (!result.ok || !result.config.tproxy.enabled) return;
    for (const node of migratedNodes(result.config)) {
        const dir = path.join(outDir, "nodes", node.name);
        for (const file of nodeTproxyBundle(result.config, node).files) {
            const target = path.join(dir, file.path);
            mkdirSync(path.dirname(target), { recursive: true });
            writeFileSync(target, file.content, { mode: parseInt(file.mode, 8) & 0o755 });
        }
        writeFileSync(path.join(dir, "keepalived-snippet.conf"), nodeKeepalivedSnippet(result.config, node));
    }
}

/** The URN Pulumi gives a resource: the types of its ancestors, then its own type and name. */
export function urnOf(r: RecordedResource, byKey: ReadonlyMap<string, RecordedResource>, project: string, stackName: string): string {
    const types: string[] = [];
    for (let p = r.parentKey === undefined ? undefined : byKey.get(r.parentKey); p; p = p.parentKey === undefined ? undefined : byKey.get(p.parentKey)) {
        types.unshift(p.type);
    }
    return `urn:pulumi:${stackName}::${project}::${[...types, r.type].join("$")}::${r.name}`;
}

// Run as a command (npm run plan); imported (tools/check.ts), it only lends urnOf.
if (require.main === module) {
    main().then(
        (code) => {
            process.exitCode = code;
        },
        (err: unknown) => {
            process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
            process.exitCode = 1;
        },
    );
}
