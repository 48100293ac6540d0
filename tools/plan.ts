// First: keeps the SDK from loading what the plan never calls (see deferredModules.ts).
import "./deferredModules";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import * as YAML from "yaml";
import { creationOrder, recordProgram, type RecordedResource } from "./mockRuntime";
import { rawStackConfig, readStackFile, StackFileError } from "./stackFile";
import { describeStep, stepFileText, storedScripts } from "./planSteps";
import { planEntries, type PlanEntry } from "./planModel";
import { adoptionScript } from "./adoption";
import { planWaves, usesWaves, waveSummary } from "../components/waves/wavePlan";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { migratedNodes } from "../components/config/migratedNodes";
import { keepalivedSnippet } from "../components/tproxy/keepalivedNotify";
import { nodeTproxyBundle } from "../components/tproxy/nodeBundle";

const USAGE = "usage: npm run plan -- --stack <name> [--out <dir>] [--stack-dir <dir with Pulumi.yaml and Pulumi.<name>.yaml>]";

/** The file that marks a directory as the plan's own output: only such a directory is ever cleaned. */
export const PLAN_MARKER = ".cilium-kpr-plan";
/** Everything the plan writes into its directory; a re-run removes these and nothing else. */
const PLAN_ENTRIES = [PLAN_MARKER, "resources.json", "cilium-values.yaml", "adoption.sh", "plan.txt", "steps", "nodes"];

/** A refusal the operator can act on: printed as one line, no stack trace. */
class PlanError extends Error {}

function parseCommandLine(argv: readonly string[]): { stack: string; out?: string; stackDir?: string } {
    let parsed;
    try {
        parsed = parseArgs({ args: [...argv], options: { "stack": { type: "string" }, "out": { type: "string" }, "stack-dir": { type: "string" } } });
    } catch (err) {
        // `npm run plan --stack prod` (no `--`) hands npm the option and the plan only "prod".
        throw new PlanError(`${(err as Error).message.split("\n")[0]}; pass the plan's options after \`--\`: ${USAGE}`);
    }
    const { values } = parsed;
    if (values.stack === undefined) {
        const npmSwallowed = process.env.npm_config_stack !== undefined ? " (npm took --stack for itself: put `--` before the plan's options)" : "";
        throw new PlanError(`--stack is required${npmSwallowed}; ${USAGE}`);
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(values.stack)) throw new PlanError(`--stack ${JSON.stringify(values.stack)} is not a stack name; ${USAGE}`);
    return { stack: values.stack, out: values.out, stackDir: values["stack-dir"] };
}

/** Refuses an --out the plan may not write into (checked before anything runs). */
function checkOutDir(dir: string): void {
    if (!existsSync(dir)) return;
    if (!statSync(dir).isDirectory()) throw new PlanError(`--out ${dir} exists and is not a directory`);
    const present = readdirSync(dir);
    if (present.length > 0 && !present.includes(PLAN_MARKER)) {
        throw new PlanError(`--out ${dir} is not empty and holds no ${PLAN_MARKER}: the plan writes only into a new, empty or earlier plan directory`);
    }
}

/**
 * Makes `dir` ready for a fresh plan without deleting anything the plan did not write: a new or
 * empty directory is used as is; one holding the plan's marker loses only the plan's own entries;
 * any other non-empty directory (a checkout, a home directory) is refused.
 */
export function prepareOutDir(dir: string): void {
    checkOutDir(dir);
    for (const entry of PLAN_ENTRIES) rmSync(path.join(dir, entry), { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, PLAN_MARKER), "Written by `npm run plan`; a re-run replaces this directory's plan files and nothing else.\n");
}

async function main(argv: readonly string[]): Promise<number> {
    const args = parseCommandLine(argv);
    const root = path.resolve(__dirname, "..");
    // --stack-dir lets bench/plan-scale.ts and the tests plan generated stacks without writing into the repository.
    const stack = readStackFile(args.stackDir === undefined ? root : path.resolve(args.stackDir), args.stack);
    const outDir = path.resolve(args.out ?? path.join(root, "plan", args.stack));
    checkOutDir(outDir);
    for (const key of stack.placeholderSecrets) {
        process.stderr.write(`note: ${stack.project}:${key} is not in Pulumi.${args.stack}.yaml; the plan uses [secret] (a real run needs it)\n`);
    }

    let resources: RecordedResource[];
    try {
        resources = await recordProgram(
            // The plan prints only a failed program's message: no stacks (see MockRun.errorStackFrames).
            { project: stack.project, stack: args.stack, config: stack.config, secretKeys: stack.secretKeys, errorStackFrames: 0 },
            () => import("../index"),
        );
    } catch (err) {
        process.stderr.write(`plan failed: ${err instanceof Error ? err.message : String(err)}\n`);
        return 1;
    }
    const ordered = creationOrder(resources);
    const entries = planEntries(ordered, stack.project, args.stack);
    const entryOf = new Map(entries.filter((e) => !e.implicit).map((e, i) => [ordered[i]!.key, e]));

    prepareOutDir(outDir);
    writeFileSync(path.join(outDir, "resources.json"), JSON.stringify(entries, null, 2) + "\n");

    const release = ordered.find((r) => r.type === "kubernetes:helm.sh/v3:Release");
    if (release) {
        writeFileSync(path.join(outDir, "cilium-values.yaml"), YAML.stringify(release.inputs.values ?? {}));
        writeFileSync(
            path.join(outDir, "adoption.sh"),
            adoptionScript(entries, { stack: args.stack, releaseNamespace: String(release.inputs.namespace), releaseName: String(release.inputs.name) }),
        );
    }

    // What each step runs (create, update when it has its own, and delete for `pulumi destroy`), with where and how it runs.
    const mkdir = directoryMaker(outDir);
    for (const r of ordered) {
        if (r.type !== "command:local:Command" && r.type !== "command:remote:Command") continue;
        mkdir(path.join(outDir, "steps"));
        for (const phase of ["create", "update", "delete"] as const) {
            if (typeof r.inputs[phase] === "string")
                writeFileSync(path.join(outDir, "steps", `${r.name}.${phase}.sh`), stepFileText(entryOf.get(r.key)!, r, phase));
        }
        for (const script of storedScripts(r)) {
            mkdir(path.dirname(path.join(outDir, script.file)));
            writeFileSync(path.join(outDir, script.file), script.text);
        }
    }

    // The program validated the same config from Pulumi's config (index.ts, loadStackConfig); once more here, for both uses below.
    const validated = validateStackConfig(stack.project, rawStackConfig(stack.config));
    const config = validated.ok ? validated.config : undefined;
    if (config !== undefined) writeNodeFiles(outDir, config, mkdir);

    const text = planText(args.stack, entries, ordered, entryOf, config === undefined ? [] : migrationWaveLines(config));
    writeFileSync(path.join(outDir, "plan.txt"), text);
    process.stdout.write(`${text}\nWritten to ${path.relative(process.cwd(), outDir) || "."}/\n`);
    return 0;
}

/** The node-by-node migration's waves, when the stack asks for them (components/waves/). */
function migrationWaveLines(config: MigrationConfig): string[] {
    const { migration } = config;
    if (!usesWaves(migration)) return [];
    return waveSummary(planWaves(migration, config.nodes), migration.drain, migration.stopAfterWave);
}

function planText(
    stack: string,
    entries: readonly PlanEntry[],
    ordered: readonly RecordedResource[],
    entryOf: ReadonlyMap<string, PlanEntry>,
    waveLines: readonly string[] = [],
): string {
    const name = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);
    const out = [
        `Migration plan for stack ${stack} (${ordered.filter((r) => r.custom).length} resources), in order:`,
        'Each step waits for those after "after" (dependsOn, inputs that are other steps\' outputs, its provider).',
        "Steps of the same wave wait for nothing of each other: the engine may run them at the same time (`--parallel`).",
        "A step whose create fails is not recorded in state: `pulumi destroy` will not undo what it already did.",
        "",
        ...waveLines,
    ];
    let step = 0;
    for (const e of entries.filter((x) => x.implicit)) {
        out.push(
            `${String(++step).padStart(3)}. [wave ${e.wave}] ${e.type.slice("pulumi:providers:".length)} default provider "${e.name}" (created by the engine for the steps that use it)`,
        );
    }
    for (const r of ordered) {
        if (!r.custom) continue;
        const e = entryOf.get(r.key)!;
        out.push(`${String(++step).padStart(3)}. [wave ${e.wave}] ${describeStep(r, e.waitsFor.filter((u) => !u.includes("::pulumi:providers:")).map(name))}`);
    }
    return out.join("\n") + "\n";
}

/**
 * `mkdir -p` under `root` (which exists) that makes each directory with one system call, parents
 * first: a 200-node plan writes ~2,800 files into ~2,200 directories, and a recursive mkdirSync per
 * file made ~4,400 mkdir calls, half of them failing.
 */
export function directoryMaker(root: string): (dir: string) => void {
    const made = new Set<string>([root]);
    const make = (dir: string): void => {
        if (made.has(dir)) return;
        make(path.dirname(dir));
        mkdirSync(dir);
        made.add(dir);
    };
    return (dir) => {
        const relative = path.relative(root, dir);
        if (relative.startsWith("..") || path.isAbsolute(relative)) throw new Error(`${dir} is outside the plan directory ${root}`);
        make(dir);
    };
}

/** Every file pushed to each migrated node, under nodes/<node>/<absolute path>, plus the keepalived snippet. */
function writeNodeFiles(outDir: string, config: MigrationConfig, mkdir: (dir: string) => void): void {
    if (!config.tproxy.enabled) return;
    for (const node of migratedNodes(config)) {
        const dir = path.join(outDir, "nodes", node.name);
        for (const file of nodeTproxyBundle(config, node).files) {
            const target = path.join(dir, file.path);
            mkdir(path.dirname(target));
            writeFileSync(target, file.content, { mode: parseInt(file.mode, 8) & 0o755 });
        }
        writeFileSync(path.join(dir, "keepalived-snippet.conf"), keepalivedSnippet(config, node));
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => {
            process.exitCode = code;
        },
        (err: unknown) => {
            if (err instanceof PlanError || err instanceof StackFileError) {
                process.stderr.write(`plan: ${err.message}\n`);
                process.exitCode = 2;
                return;
            }
            process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
            process.exitCode = 1;
        },
    );
}
