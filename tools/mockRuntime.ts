import * as pulumi from "@pulumi/pulumi";
import { withLeanSdkBookkeeping } from "./leanSdkBookkeeping";
import { childrenByParent } from "./planModel";
import { memoized } from "../components/memoized";

/** One resource as the program declared it under Pulumi's mock runtime. */
export interface RecordedResource {
    readonly type: string;
    readonly name: string;
    readonly custom: boolean;
    /** Unique within a stack: "type::name" (logical names repeat across types). */
    readonly key: string;
    /** Key of the parent resource (absent for the stack's direct children). */
    readonly parentKey?: string;
    /** Keys of the resources it explicitly depends on. */
    readonly dependsOnKeys: readonly string[];
    /** Logical name of the parent resource (absent for the stack's direct children). */
    readonly parent?: string;
    /** Logical names of the resources it explicitly depends on. */
    readonly dependsOn: readonly string[];
    /** Key of the explicit `provider` option (absent: the engine's default provider for the package). */
    readonly providerKey?: string;
    /**
     * Per top-level input, keys of the resources whose outputs flow into it. The SDK waits for them
     * before registering the resource and sends them to the engine as dependencies (pulumi/pulumi
     * sdk/nodejs/runtime/resource.ts prepareResource: propertyToDirectDependencyURNs, folded into
     * allDirectDependencyURNs). Filled in once the program has finished.
     */
    propertyDependencyKeys: Record<string, string[]>;
    readonly ignoreChanges: readonly string[];
    readonly protect: boolean;
    /** Options that matter for review. */
    readonly retainOnDelete: boolean;
    readonly deleteBeforeReplace: boolean;
    /** The inputs the provider would receive (custom resources only), secrets unwrapped. */
    inputs: Record<string, unknown>;
    /** Names of the top-level inputs that are secret (shown as [secret] by Pulumi). */
    secretInputs: string[];
}

/** Pulumi's wire marker for a secret value. */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function isSecretWrapper(value: unknown): value is { value: unknown } {
    return value !== null && typeof value === "object" && (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** The SDK's Output carries the resources it came from; allResources() includes those of nested outputs. */
interface OutputWithResources {
    allResources(): Promise<Set<pulumi.Resource>>;
}

function outputsIn(value: unknown, found: OutputWithResources[] = []): OutputWithResources[] {
    if (pulumi.Output.isInstance(value)) {
        found.push(value as unknown as OutputWithResources);
    } else if (Array.isArray(value)) {
        for (const v of value) outputsIn(v, found);
    } else if (value !== null && typeof value === "object" && !(value instanceof pulumi.Resource)) {
        for (const v of Object.values(value)) outputsIn(v, found);
    }
    return found;
}

function containsAsset(value: unknown): boolean {
    if (Array.isArray(value)) return value.some(containsAsset);
    if (pulumi.asset.Asset.isInstance(value) || pulumi.asset.Archive.isInstance(value)) return true;
    if (value !== null && typeof value === "object") return Object.values(value).some(containsAsset);
    return false;
}

function unwrapSecrets(value: unknown): unknown {
    if (isSecretWrapper(value)) return unwrapSecrets(value.value);
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    if (value !== null && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

export interface MockRun {
    readonly project: string;
    readonly stack: string;
    /** Config values keyed by bare key (no project prefix); values are strings as Pulumi stores them. */
    readonly config: Readonly<Record<string, string>>;
    readonly secretKeys?: readonly string[];
    /**
     * Error.stackTraceLimit while the program runs; unset leaves it alone. The SDK formats
     * `new Error().stack` for every promise it makes (@pulumi/pulumi 3.248 runtime/debuggable.js
     * debuggablePromise, from sdk/nodejs/runtime/debuggable.ts; the text is printed only under
     * PULUMI_DEBUG_PROMISE_LEAKS), and under tsx's source maps each formatting maps every frame: in a
     * 200-node plan that was ~40% of the CPU time and ~45% of all bytes allocated. A caller that shows
     * only a failed program's message passes 0. Source positions are unaffected (Resource.callsites in
     * resource.js raises the limit itself), and PULUMI_DEBUG_PROMISE_LEAKS keeps the full stacks.
     * When set, source maps are also off while the program runs: the only stacks then formatted are
     * Resource.callsites' (unlimited frames, for every resource: the RegisterResourceRequest's
     * sourcePosition and stackTrace, resource.js stackTrace), which the mocks never read (runtime/mocks.js
     * MockMonitor.registerResource passes type, name, inputs, provider, custom, id), and under tsx each of
     * their frames went through the source map: ~0.2 s of a 200-node plan's 3.5 s CPU.
     * With 0, Error.prepareStackTrace also formats only the header ("Error: message", what V8 prints
     * with no frames) while the program runs, so Resource.callsites' unlimited stacks are never
     * formatted into text either: their sourcePosition and stackTrace go empty, which nothing reads
     * here (above). Node calls a user Error.prepareStackTrace for every stack it formats
     * (lib/internal/errors.js prepareStackTraceCallback; https://v8.dev/docs/stack-trace-api). That
     * formatting, the text's split and regex parse, and its garbage were ~5% of a 200-node plan's CPU.
     * With 0 the SDK also leaves out the per-resource bookkeeping that only feeds those stacks: its
     * promises' debug properties and each resource's call-stack capture (tools/leanSdkBookkeeping.ts);
     * leak detection stays.
     */
    readonly errorStackFrames?: number;
}

/** Outputs the mocks return for resources whose outputs the program reads. */
function mockOutputs(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
    switch (type) {
        case "random:index/randomBytes:RandomBytes":
            // A stand-in of the right shape (base64 of 12 bytes) so values render; the real one is generated at up.
            return { ...inputs, base64: Buffer.from(`seed:${name}`.padEnd(12, "-").slice(0, 12)).toString("base64"), hex: "" };
        case "command:local:Command":
        case "command:remote:Command":
            // The cluster identity (STEP.clusterIdentity) is read by the program from its stdout; a real run records the kube-system UID.
            if (name === "cluster-identity") return { ...inputs, stdout: '{"ok":true,"clusterUid":"(kube-system UID, recorded at the first up)"}', stderr: "" };
            return { ...inputs, stdout: "", stderr: "" };
        case "pulumi:index:Stash":
            return stashOutputs(name, inputs);
        default:
            return inputs;
    }
}

/**
 * The engine's builtin Stash as a first create sees it (pulumi/pulumi pkg/resource/deploy/builtins.go,
 * builtinProvider Check and Create for stashType): exactly one property, `input`, which becomes both
 * `input` and `output`. Check's failures are the engine's words.
 */
export function stashOutputs(name: string, inputs: Record<string, unknown>): Record<string, unknown> {
    const unknown = Object.keys(inputs).find((k) => k !== "input");
    if (unknown !== undefined) throw new Error(`pulumi:index:Stash ${name}: unknown property "${unknown}"`);
    if (!("input" in inputs)) throw new Error(`pulumi:index:Stash ${name}: missing required property "input"`);
    return { input: inputs.input, output: inputs.input };
}

/**
 * Runs a Pulumi program under the mock runtime (no CLI, no engine, no cluster) and records every
 * resource with its parent and explicit dependencies. The program's thrown errors propagate.
 */
export async function recordProgram(run: MockRun, program: () => unknown): Promise<RecordedResource[]> {
    const outcome = await recordProgramOutcome(run, program);
    // recordProgramOutcome sets `error` only when the program threw: rethrow exactly what it threw.
    if ("error" in outcome) throw outcome.error;
    return outcome.resources;
}

/**
 * Error.prepareStackTrace that formats a stack as `format` does one with no frames: the header line
 * only ("Error: message"; Node's own errors "Name [code]: message", lib/internal/errors.js
 * defaultPrepareStackTrace).
 */
function headerOnly(format: StackFormatter | undefined): StackFormatter {
    return format === undefined ? (error) => Error.prototype.toString.call(error) : (error) => format(error, []);
}

/** V8's stack formatting hook, as the property it is (Node's typings declare it as a method of ErrorConstructor). */
type StackFormatter = (error: Error, trace: NodeJS.CallSite[]) => unknown;
const errorHooks = Error as unknown as { prepareStackTrace?: StackFormatter };

/** Like recordProgram, but returns what was declared even when the program threw. */
export async function recordProgramOutcome(run: MockRun, program: () => unknown): Promise<{ resources: RecordedResource[]; error?: unknown }> {
    const stackTraceLimit = Error.stackTraceLimit;
    const prepareStackTrace = errorHooks.prepareStackTrace;
    const sourceMapsEnabled = process.sourceMapsEnabled;
    let lean = false;
    if (run.errorStackFrames !== undefined && process.env.PULUMI_DEBUG_PROMISE_LEAKS === undefined) {
        Error.stackTraceLimit = run.errorStackFrames;
        process.setSourceMapsEnabled(false);
        if (run.errorStackFrames === 0) {
            errorHooks.prepareStackTrace = headerOnly(prepareStackTrace);
            // Each promise's debug stack would be "Error" and each resource's callsites empty now: nothing is lost by not recording them.
            lean = true;
        }
    }
    try {
        return await (lean ? withLeanSdkBookkeeping(() => recordUnderMocks(run, program)) : recordUnderMocks(run, program));
    } finally {
        Error.stackTraceLimit = stackTraceLimit;
        errorHooks.prepareStackTrace = prepareStackTrace;
        process.setSourceMapsEnabled(sourceMapsEnabled);
    }
}

async function recordUnderMocks(run: MockRun, program: () => unknown): Promise<{ resources: RecordedResource[]; error?: unknown }> {
    const byKey = new Map<string, RecordedResource>();
    const keys = new WeakMap<pulumi.Resource, string>();
    const nameOf = (key: string) => key.slice(key.indexOf("::") + 2);
    const order: RecordedResource[] = [];
    const pendingAssets: Promise<void>[] = [];

    const prefixed: Record<string, string> = {};
    for (const [k, v] of Object.entries(run.config)) prefixed[`${run.project}:${k}`] = v;
    pulumi.runtime.setAllConfig(
        prefixed,
        (run.secretKeys ?? []).map((k) => `${run.project}:${k}`),
    );

    await pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                const recorded = byKey.get(`${args.type}::${args.name}`);
                if (recorded) {
                    const raw = args.inputs as Record<string, unknown>;
                    recorded.inputs = unwrapSecrets(raw) as Record<string, unknown>;
                    recorded.secretInputs = Object.keys(raw).filter((k) => isSecretWrapper(raw[k]));
                    if (containsAsset(raw)) {
                        // Assets and archives as the engine stores them ({sig, path|text|uri|assets}; the engine adds
                        // the hash: pulumi/pulumi sdk/go/common/resource/asset/asset.go Asset.Serialize).
                        pendingAssets.push(
                            pulumi.runtime.serializeProperty(args.name, raw, new Set(), { keepOutputValues: false }).then((serialized: unknown) => {
                                recorded.inputs = unwrapSecrets(serialized) as Record<string, unknown>;
                            }),
                        );
                    }
                }
                return { id: `${args.name}-id`, state: mockOutputs(args.type, args.name, args.inputs as Record<string, unknown>) };
            },
            call: (args) => args.inputs as Record<string, unknown>,
        },
        run.project,
        run.stack,
        true,
    );

    let failure: unknown;
    const pendingPropertyDeps: Promise<void>[] = [];
    await pulumi.runtime.runInPulumiStack(async () => {
        pulumi.runtime.registerStackTransformation((args) => {
            if (args.type === "pulumi:pulumi:Stack") return undefined;
            const key = `${args.type}::${args.name}`;
            keys.set(args.resource, key);
            const deps = args.opts.dependsOn;
            const depList = Array.isArray(deps) ? deps : deps === undefined ? [] : [deps];
            const parentKey = args.opts.parent ? keys.get(args.opts.parent) : undefined;
            const dependsOnKeys = depList.flatMap((d) => (d instanceof pulumi.Resource && keys.has(d) ? [keys.get(d)!] : []));
            const options = args.opts as pulumi.CustomResourceOptions;
            const providerKey = options.provider === undefined ? undefined : keys.get(options.provider);
            const entry: RecordedResource = {
                type: args.type,
                name: args.name,
                key,
                parentKey,
                dependsOnKeys,
                custom: args.resource instanceof pulumi.CustomResource,
                parent: parentKey === undefined ? undefined : nameOf(parentKey),
                dependsOn: dependsOnKeys.map(nameOf),
                retainOnDelete: options.retainOnDelete === true,
                deleteBeforeReplace: options.deleteBeforeReplace === true,
                providerKey,
                propertyDependencyKeys: {},
                ignoreChanges: options.ignoreChanges ?? [],
                protect: options.protect === true,
                inputs: {},
                secretInputs: [],
            };
            byKey.set(key, entry);
            order.push(entry);
            for (const [input, value] of Object.entries(args.props ?? {})) {
                const outputs = outputsIn(value);
                if (outputs.length === 0) continue;
                pendingPropertyDeps.push(
                    Promise.all(outputs.map((o) => o.allResources())).then((sets) => {
                        const depKeys = [...new Set(sets.flatMap((set) => [...set].flatMap((r) => (keys.has(r) ? [keys.get(r)!] : []))))];
                        if (depKeys.length > 0) entry.propertyDependencyKeys[input] = depKeys;
                    }),
                );
            }
            return undefined;
        });
        try {
            await program();
            await Promise.all(pendingPropertyDeps);
        } catch (err) {
            failure = err;
        }
        return {};
    });
    await Promise.all(pendingAssets);
    await pulumi.runtime.disconnect();
    return failure === undefined ? { resources: order } : { resources: order, error: failure };
}

/**
 * Orders resources so each comes after its parent, its provider, and everything it depends on
 * explicitly or through an input; a dependency on a component means every resource inside that
 * component. Ties keep declaration order.
 */
export function creationOrder(resources: readonly RecordedResource[]): RecordedResource[] {
    const byKey = new Map(resources.map((r) => [r.key, r]));
    const children = childrenByParent(resources);
    // Many resources depend on the same component: each subtree is listed once.
    const subtree: (key: string) => readonly string[] = memoized((key: string) => [key, ...(children.get(key) ?? []).flatMap((c) => subtree(c.key))]);
    const placed = new Set<string>();
    const visiting = new Set<string>();
    const out: RecordedResource[] = [];
    const visit = (r: RecordedResource) => {
        if (placed.has(r.key)) return;
        if (visiting.has(r.key)) throw new Error(`dependency cycle through ${r.type} ${r.name}`);
        visiting.add(r.key);
        const before = [
            ...(r.parentKey !== undefined ? [r.parentKey] : []),
            ...(r.providerKey !== undefined ? [r.providerKey] : []),
            ...[...r.dependsOnKeys, ...Object.values(r.propertyDependencyKeys).flat()].flatMap(subtree),
        ];
        for (const key of before) {
            const dep = byKey.get(key);
            if (dep && dep.key !== r.key) visit(dep);
        }
        visiting.delete(r.key);
        placed.add(r.key);
        out.push(r);
    };
    resources.forEach(visit);
    return out;
}
