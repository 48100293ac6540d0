import { createHash } from "node:crypto";
import type { RecordedResource } from "./mockRuntime";
import { memoized } from "../components/memoized";

/**
 * What the engine does with the recorded program, as the plan shows it: URNs, the provider each
 * resource uses, everything a resource waits for, and which steps may run at the same time.
 */

export interface PlanEntry {
    /** The resource's identity: logical names repeat across types (the CiliumRelease component and the Release are both "cilium"). */
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    readonly custom: boolean;
    /** True for the engine's default providers, which the program does not declare. */
    readonly implicit: boolean;
    readonly parent: string | null;
    /** The provider the engine runs this resource's operations with (an explicit one, or the package's default provider). */
    readonly provider: string | null;
    /** The `dependsOn` option, a component expanded to the resources inside it. */
    readonly dependsOn: readonly string[];
    /** Inputs that are outputs of other resources: the SDK waits for those before registering. */
    readonly propertyDependencies: Readonly<Record<string, readonly string[]>>;
    /** Every step this one waits for: provider, explicit and property dependencies. */
    readonly waitsFor: readonly string[];
    /**
     * 1 + the highest wave among what it waits for. Steps of one wave do not wait for each other: the
     * engine may run them at the same time (pulumi/pulumi pkg/resource/deploy/step_executor.go runs
     * every step whose dependencies are done, up to `--parallel`, default 4 x CPUs:
     * pkg/cmd/pulumi/operations/up.go defaultParallel).
     */
    readonly wave: number | null;
    readonly retainOnDelete: boolean;
    readonly deleteBeforeReplace: boolean;
    readonly protect: boolean;
    readonly ignoreChanges: readonly string[];
}

const PROVIDER_TYPE_PREFIX = "pulumi:providers:";

/** The URN Pulumi gives a resource: the types of its ancestors (the root stack left out), then its own type and name. */
export function urnOf(r: RecordedResource, byKey: ReadonlyMap<string, RecordedResource>, project: string, stack: string): string {
    const types: string[] = [];
    for (let p = r.parentKey === undefined ? undefined : byKey.get(r.parentKey); p; p = p.parentKey === undefined ? undefined : byKey.get(p.parentKey)) {
        types.unshift(p.type);
    }
    return `urn:pulumi:${stack}::${project}::${[...types, r.type].join("$")}::${r.name}`;
}

/** A resource type's package: "command" for "command:local:Command". */
export function packageOf(type: string): string {
    return type.slice(0, type.indexOf(":"));
}

/**
 * The default provider the engine creates for a package at a version: a root-level resource named
 * "default_<major>_<minor>_<patch>", or "default" without a version (pulumi/pulumi
 * pkg/resource/deploy/providers/provider.go DefaultName).
 */
export function defaultProviderUrn(pkg: string, version: string | undefined, project: string, stack: string): string {
    const [core, pre] = version === undefined ? [] : version.split("-", 2);
    const name = core === undefined ? "default" : `default_${core.split(".").join("_")}${pre === undefined ? "" : `_${pre.split(".").join("_")}`}`;
    return `urn:pulumi:${stack}::${project}::${PROVIDER_TYPE_PREFIX}${pkg}::${name}`;
}

/** The plugin version of an installed provider package (its package.json `pulumi.version`, else `version`). */
export function installedProviderVersion(pkg: string): string {
    return rememberedProviderVersion(pkg);
}

// Asked once per custom resource: each package.json is resolved once (a require resolves its path every time).
const rememberedProviderVersion = memoized((pkg: string): string => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- reads a package's own manifest
    const manifest = require(`@pulumi/${pkg}/package.json`) as { version: string; pulumi?: { version?: string } };
    return manifest.pulumi?.version ?? manifest.version;
});

/** Each parent's children, in the order given (appended, not copied: a 200-node plan has ~1,600 resources). */
export function childrenByParent(resources: readonly RecordedResource[]): Map<string, RecordedResource[]> {
    const children = new Map<string, RecordedResource[]>();
    for (const r of resources) {
        if (r.parentKey === undefined) continue;
        const siblings = children.get(r.parentKey);
        if (siblings === undefined) children.set(r.parentKey, [r]);
        else siblings.push(r);
    }
    return children;
}

/**
 * Every resource in creation order as the engine sees it, followed by nothing the program did not
 * cause: the default providers come first (they are created before anything that uses them).
 */
export function planEntries(
    ordered: readonly RecordedResource[],
    project: string,
    stack: string,
    providerVersion: (pkg: string) => string = installedProviderVersion,
): PlanEntry[] {
    const byKey = new Map(ordered.map((r) => [r.key, r]));
    // Each resource's URN and each component's custom resources are computed once: every step of a
    // node names the same components and providers, so per-use work grew with nodes x steps.
    const urn = memoized((key: string) => urnOf(byKey.get(key)!, byKey, project, stack));
    const children = childrenByParent(ordered);
    // A dependency on a component is a dependency on every custom resource inside it (the SDK expands it:
    // sdk/nodejs/runtime/resource.ts getAllTransitivelyReferencedResourceURNs).
    const customsOf: (key: string) => readonly string[] = memoized((key: string) =>
        byKey.get(key)!.custom ? [key] : (children.get(key) ?? []).flatMap((c) => customsOf(c.key)),
    );
    const expand = (keys: readonly string[]) => [...new Set(keys.flatMap(customsOf))].map(urn);

    const defaults = new Map<string, PlanEntry>();
    const providerOf = (r: RecordedResource): string | null => {
        if (!r.custom || r.type.startsWith(PROVIDER_TYPE_PREFIX)) return null;
        if (r.providerKey !== undefined) return urn(r.providerKey);
        const pkg = packageOf(r.type);
        // The engine's builtins (pulumi:index:Stash): the SDK registers them with no version (runtime/resource.js
        // `opts.version || ""`) and no plugin names one (pkg/resource/deploy/default_providers.go
        // normalizeProviderRequest), so their default provider is "pulumi:providers:pulumi::default", which loads
        // the builtin provider (providers/registry.go loadProvider: `pkg == "pulumi"`).
        const providerUrn = defaultProviderUrn(pkg, pkg === "pulumi" ? undefined : providerVersion(pkg), project, stack);
        if (!defaults.has(providerUrn)) {
            defaults.set(providerUrn, {
                urn: providerUrn,
                type: `${PROVIDER_TYPE_PREFIX}${pkg}`,
                name: providerUrn.slice(providerUrn.lastIndexOf("::") + 2),
                custom: true,
                implicit: true,
                parent: null,
                provider: null,
                dependsOn: [],
                propertyDependencies: {},
                waitsFor: [],
                wave: 1,
                retainOnDelete: false,
                deleteBeforeReplace: false,
                protect: false,
                ignoreChanges: [],
            });
        }
        return providerUrn;
    };

    const waves = new Map<string, number>();
    const entries: PlanEntry[] = ordered.map((r) => {
        const provider = providerOf(r);
        const dependsOn = expand(r.dependsOnKeys);
        const propertyDependencies = Object.fromEntries(Object.entries(r.propertyDependencyKeys).map(([input, keys]) => [input, expand(keys)]));
        const waitsFor = [...new Set([...(provider === null ? [] : [provider]), ...dependsOn, ...Object.values(propertyDependencies).flat()])];
        let wave: number | null = null;
        if (r.custom) {
            // creationOrder put everything a resource waits for before it.
            wave = 1 + Math.max(0, ...waitsFor.map((u) => waves.get(u) ?? defaults.get(u)?.wave ?? 0));
            waves.set(urn(r.key), wave);
        }
        return {
            urn: urn(r.key),
            type: r.type,
            name: r.name,
            custom: r.custom,
            implicit: false,
            parent: r.parentKey === undefined ? null : urn(r.parentKey),
            provider,
            dependsOn,
            propertyDependencies,
            waitsFor,
            wave,
            retainOnDelete: r.retainOnDelete,
            deleteBeforeReplace: r.deleteBeforeReplace,
            protect: r.protect,
            ignoreChanges: r.ignoreChanges,
        };
    });
    return [...defaults.values(), ...entries];
}

/**
 * The fingerprint `ssh-keygen -l` prints for a public key line ("SHA256:" + unpadded base64 of the
 * SHA-256 of the key blob), so a reviewer can compare it with what the node shows.
 */
export function hostKeyFingerprint(hostKey: string): string {
    return rememberedFingerprint(hostKey);
}

// Every step file of a node names its host key: each key is hashed once.
const rememberedFingerprint = memoized((hostKey: string) => {
    const [type = "", blob = ""] = hostKey.trim().split(/\s+/);
    const digest = createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "");
    return `${type} SHA256:${digest}`;
});
