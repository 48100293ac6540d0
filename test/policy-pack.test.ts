import { test } from "node:test";
import * as assert from "node:assert/strict";
import type { PolicyResource, PolicyResourceOptions, ResourceValidation, ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { STEP, TYPE } from "../components/resourceNames";
import {
    hostKeyProblem,
    hostKeyViolations,
    kprValuesViolations,
    nodeFilesShownViolations,
    orderingViolations,
    parentTypeOf,
    releaseRetentionViolations,
    type ResourceView,
    type StackResourceView,
    type Violation,
} from "../policy/invariants";
import {
    ciliumReleaseRetained,
    commandsReplacedDeleteFirst,
    kprValuesComplete,
    migrationOrdering,
    policies,
    remoteHostKeysPinned,
    tproxyNodeFilesShown,
} from "../policy/policies";
import type { TproxyNodeFiles } from "../components/tproxy/nodeFilesStash";
import type { RecordedResource } from "../tools/mockRuntime";
import { runProgram } from "./support/program";
import { rawStack } from "./support/stacks";
import { ecdsaHostKey, ed25519HostKey, keyLine, rsaHostKey } from "./support/hostKeys";

// The SDK's own unknown-value proxy (what `pulumi preview` hands policies for values not known yet).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sdkProxy = require("@pulumi/policy/proxy") as {
    unknownCheckingProxy<T>(v: T): T;
    unknownObjectValue: unknown;
    UnknownValueError: new (...a: never[]) => Error;
};

const STACK = "urn:pulumi:prod::cilium-kpr::";
const urn = (typeChain: readonly string[], name: string) => `${STACK}${["pulumi:pulumi:Stack", ...typeChain].slice(1).join("$")}::${name}`;

const realHostKey = ed25519HostKey;
const sshKeyLine = (algorithm: string, material: Buffer) => keyLine(algorithm, [material]);

const MIGRATION = [TYPE.migration];
const NODES = ["m600", "m601"] as const;

/** The migration graph as the engine reports it at preview, keeping every invariant. */
function goodStack(): StackResourceView[] {
    const release = {
        urn: urn([...MIGRATION, TYPE.ciliumRelease, TYPE.helmRelease], STEP.ciliumRelease),
        type: TYPE.helmRelease,
        name: STEP.ciliumRelease,
        dependsOn: [] as string[],
        props: { chart: "cilium", values: { kubeProxyReplacement: true, k8sServiceHost: "172.25.4.1", k8sServicePort: 6444 } },
    };
    const gate = {
        urn: urn([...MIGRATION, TYPE.localCommand], STEP.kprGate),
        type: TYPE.localCommand,
        name: STEP.kprGate,
        dependsOn: [release.urn],
        props: {},
    };
    const removal = {
        urn: urn([...MIGRATION, TYPE.localCommand], STEP.kubeProxyRemoval),
        type: TYPE.localCommand,
        name: STEP.kubeProxyRemoval,
        dependsOn: [gate.urn],
        props: {},
    };
    const cleanups = NODES.map((node) => ({
        urn: urn([...MIGRATION, TYPE.remoteCommand], STEP.staleRuleCleanup(node)),
        type: TYPE.remoteCommand,
        name: STEP.staleRuleCleanup(node),
        dependsOn: [removal.urn],
        props: { connection: { host: "192.0.2.10", user: "root", privateKey: "k", hostKey: realHostKey() } },
    }));
    return [
        { urn: urn(MIGRATION, "cilium-kpr"), type: TYPE.migration, name: "cilium-kpr", dependsOn: [], props: {} },
        { urn: urn([...MIGRATION, TYPE.ciliumRelease], STEP.ciliumRelease), type: TYPE.ciliumRelease, name: STEP.ciliumRelease, dependsOn: [], props: {} },
        release,
        gate,
        removal,
        ...cleanups,
    ];
}

function edit(stack: StackResourceView[], name: string, change: (r: StackResourceView) => StackResourceView): StackResourceView[] {
    assert.ok(
        stack.some((r) => r.name === name),
        `fixture has ${name}`,
    );
    return stack.map((r) => (r.name === name ? change(r) : r));
}

function allViolations(stack: readonly StackResourceView[]): Violation[] {
    return [
        ...orderingViolations(stack),
        ...nodeFilesShownViolations(stack),
        ...stack.flatMap((r) => [...releaseRetentionViolations(r), ...kprValuesViolations(r), ...hostKeyViolations(r)]),
    ];
}

test("a migration graph that keeps every invariant passes them all", () => {
    assert.deepEqual(allViolations(goodStack()), []);
});

test("ordering: removal without a dependency on the gate is rejected, and so is removal with no gate at all", () => {
    const stack = goodStack();
    const detached = edit(stack, STEP.kubeProxyRemoval, (r) => ({ ...r, dependsOn: [] }));
    const v = orderingViolations(detached);
    assert.equal(v.length, 1);
    assert.match(v[0]!.message, /kube-proxy-removal does not depend on kpr-gate/);
    assert.equal(v[0]!.urn, stack.find((r) => r.name === STEP.kubeProxyRemoval)!.urn);

    const noGate = stack.filter((r) => r.name !== STEP.kprGate);
    assert.match(
        orderingViolations(noGate)
            .map((x) => x.message)
            .join("\n"),
        /kube-proxy-removal has no kpr-gate/,
    );
});

test("ordering: a gate that does not wait for the Cilium Helm release is rejected, even if it names the component's URN", () => {
    const stack = goodStack();
    const v = orderingViolations(edit(stack, STEP.kprGate, (r) => ({ ...r, dependsOn: [] })));
    assert.equal(v.length, 1);
    assert.match(v[0]!.message, /kpr-gate does not depend on cilium/);
    // A release of another type with the same name does not satisfy it (the gate must wait for the Helm release).
    const wrongType = edit(stack, STEP.kprGate, (r) => ({ ...r, dependsOn: [urn([...MIGRATION, TYPE.ciliumRelease], STEP.ciliumRelease)] }));
    assert.equal(orderingViolations(wrongType).length, 1);
});

test("ordering: a path through an intermediate step satisfies it; a dependency cycle does not hang", () => {
    const stack = goodStack();
    const gate = stack.find((r) => r.name === STEP.kprGate)!;
    const wait = { urn: urn([...MIGRATION, TYPE.localCommand], "settle"), type: TYPE.localCommand, name: "settle", dependsOn: [gate.urn], props: {} };
    const viaWait = [...edit(stack, STEP.kubeProxyRemoval, (r) => ({ ...r, dependsOn: [wait.urn] })), wait];
    assert.deepEqual(orderingViolations(viaWait), []);

    const removal = stack.find((r) => r.name === STEP.kubeProxyRemoval)!;
    const cycle = [...edit(stack, STEP.kubeProxyRemoval, (r) => ({ ...r, dependsOn: [wait.urn] })), { ...wait, dependsOn: [removal.urn] }];
    assert.match(orderingViolations(cycle)[0]!.message, /kube-proxy-removal does not depend on kpr-gate/);
});

/** The canary form: the removal is the exclusion from the canary nodes, under the same name rules. */
function canaryStack(): StackResourceView[] {
    return goodStack().map((r) =>
        r.name === STEP.kubeProxyRemoval
            ? { ...r, name: STEP.kubeProxyCanaryExclusion, urn: r.urn.replace(STEP.kubeProxyRemoval, STEP.kubeProxyCanaryExclusion) }
            : r.name.startsWith(STEP.staleRuleCleanup.prefix)
              ? { ...r, dependsOn: r.dependsOn.map((u) => u.replace(STEP.kubeProxyRemoval, STEP.kubeProxyCanaryExclusion)) }
              : r,
    );
}

test("ordering, canary: the exclusion must wait for the gate, and each canary cleanup for the exclusion", () => {
    assert.deepEqual(allViolations(canaryStack()), []);
    const detached = orderingViolations(edit(canaryStack(), STEP.kubeProxyCanaryExclusion, (r) => ({ ...r, dependsOn: [] })));
    assert.deepEqual(
        detached.map((v) => v.message),
        ["kube-proxy-canary-exclusion does not depend on kpr-gate: kube-proxy may only leave the canary nodes once every Cilium agent reports KPR serving"],
    );
    const early = orderingViolations(edit(canaryStack(), STEP.staleRuleCleanup("m600"), (r) => ({ ...r, dependsOn: [] })));
    assert.equal(early.length, 1);
    assert.match(early[0]!.message, /stale-rules-cleanup-m600 does not depend on kube-proxy-canary-exclusion/);
});

test("ordering: each node's stale-rule cleanup must wait for kube-proxy removal", () => {
    const v = orderingViolations(edit(goodStack(), STEP.staleRuleCleanup("m601"), (r) => ({ ...r, dependsOn: [] })));
    assert.equal(v.length, 1);
    assert.match(v[0]!.message, /stale-rules-cleanup-m601 does not depend on kube-proxy-removal/);
});

test("retention: a Cilium release declared outside the CiliumRelease component is rejected, under the component it passes", () => {
    const release = goodStack().find((r) => r.type === TYPE.helmRelease)!;
    assert.equal(parentTypeOf(release.urn), TYPE.ciliumRelease);
    assert.deepEqual(releaseRetentionViolations(release), []);
    const atRoot = { ...release, urn: urn([TYPE.helmRelease], STEP.ciliumRelease) };
    assert.equal(parentTypeOf(atRoot.urn), undefined);
    assert.match(releaseRetentionViolations(atRoot)[0]!.message, /at the stack root, not by the cilium-kpr:index:CiliumRelease component/);
    // Recognised by its chart too, whatever its logical name.
    const renamed = { ...release, name: "cni", urn: urn([...MIGRATION, TYPE.helmRelease], "cni"), props: { chart: "oci://registry.example/charts/cilium" } };
    assert.match(releaseRetentionViolations(renamed)[0]!.message, /under cilium-kpr:index:Migration/);
    // Other Helm releases are none of its business.
    assert.deepEqual(releaseRetentionViolations({ ...renamed, name: "ingress", props: { chart: "ingress-nginx" } }), []);
});

test('KPR values: missing or "auto" k8sServiceHost and a missing or bad k8sServicePort are rejected', () => {
    const release = goodStack().find((r) => r.type === TYPE.helmRelease)!;
    const withValues = (values: Record<string, unknown>): ResourceView => ({ ...release, props: { ...release.props, values } });
    const on = { kubeProxyReplacement: true, k8sServiceHost: "172.25.4.1", k8sServicePort: 6444 };
    assert.deepEqual(kprValuesViolations(withValues(on)), []);
    assert.deepEqual(kprValuesViolations(withValues({ ...on, k8sServicePort: "6444" })), [], "a numeric string is a port");
    assert.match(kprValuesViolations(withValues({ ...on, k8sServiceHost: undefined }))[0]!.message, /k8sServiceHost is missing/);
    assert.match(kprValuesViolations(withValues({ ...on, k8sServiceHost: "auto" }))[0]!.message, /"auto"/);
    assert.match(kprValuesViolations(withValues({ ...on, k8sServicePort: undefined }))[0]!.message, /k8sServicePort is missing/);
    assert.match(kprValuesViolations(withValues({ ...on, k8sServicePort: 70000 }))[0]!.message, /70000 is not a port/);
    const both = kprValuesViolations(withValues({ kubeProxyReplacement: "true" }));
    assert.equal(both.length, 1);
    assert.match(both[0]!.message, /k8sServiceHost is missing and k8sServicePort is missing/);
    // Pre-1.16 strings still turn KPR on, so they need the same values.
    assert.equal(kprValuesViolations(withValues({ kubeProxyReplacement: "strict" })).length, 1);
    // KPR off: kube-proxy keeps serving the kubernetes Service, nothing to require.
    assert.deepEqual(kprValuesViolations(withValues({ kubeProxyReplacement: false })), []);
    assert.deepEqual(kprValuesViolations(withValues({ kubeProxyReplacement: "false" })), []);
});

test("host keys: unset, malformed, mismatched, truncated, ssh-rsa and placeholder keys are rejected; real ed25519 and ECDSA keys pass", () => {
    assert.equal(hostKeyProblem(realHostKey()), undefined);
    for (const curve of ["nistp256", "nistp384", "nistp521"] as const) assert.equal(hostKeyProblem(ecdsaHostKey(curve)), undefined, curve);
    assert.match(hostKeyProblem(undefined)!, /is not set/);
    assert.match(hostKeyProblem("")!, /is not set/);
    assert.match(hostKeyProblem("m600 ssh-ed25519 AAAA")!, /not a public host key line/);
    assert.match(hostKeyProblem("ssh-ed25519 AAAA")!, /truncated/);
    const ed = realHostKey().split(" ")[1]!;
    assert.match(hostKeyProblem(`ecdsa-sha2-nistp256 ${ed}`)!, /says ecdsa-sha2-nistp256 but the key inside is "ssh-ed25519"/);
    // A line cut short (a copy-paste that lost its end) decodes to a shorter key.
    assert.match(hostKeyProblem(`ssh-ed25519 ${ed.slice(0, 60)}`)!, /truncated|base64/);
    // ssh-rsa: refused whatever its blob, saying what to pin instead.
    const rsa = hostKeyProblem(rsaHostKey())!;
    assert.match(rsa, /ssh-rsa/);
    assert.match(rsa, /OpenSSH 8\.8/);
    assert.match(rsa, /ed25519 or ECDSA/);
    assert.match(rsa, /ssh-keyscan -t ed25519 <host>/);
    // The example stacks' keys: right shape and length, but the "key" is readable text.
    assert.match(
        hostKeyProblem(sshKeyLine("ssh-ed25519", Buffer.from("replace-me-with-ssh-keyscan-m600")))!,
        /placeholder \("replace-me-with-ssh-keyscan-m600"\)/,
    );

    const cleanup = goodStack().find((r) => r.type === TYPE.remoteCommand)!;
    const conn = cleanup.props.connection as Record<string, unknown>;
    assert.deepEqual(hostKeyViolations(cleanup), []);
    assert.match(hostKeyViolations({ ...cleanup, props: { connection: { ...conn, hostKey: undefined } } })[0]!.message, /^connection\.hostKey is not set/);
    assert.match(
        hostKeyViolations({ ...cleanup, props: { connection: { ...conn, proxy: { host: "192.0.2.1" } } } })[0]!.message,
        /^connection\.proxy\.hostKey is not set/,
    );
    assert.match(hostKeyViolations({ ...cleanup, props: {} })[0]!.message, /has no connection/);
    // The node store's copy connects the same way (commands/nodeStoreSteps.ts): pinned too.
    assert.match(
        hostKeyViolations({ ...cleanup, type: TYPE.copyToRemote, props: { connection: { ...conn, hostKey: undefined } } })[0]!.message,
        /^connection\.hostKey is not set/,
    );
    // Only remote commands are checked: a local command has no host to pin.
    assert.deepEqual(hostKeyViolations({ ...cleanup, type: TYPE.localCommand, props: {} }), []);
});

// ---- The policies themselves, called the way the policy SDK's analyzer calls them. ----

const OPTS: PolicyResourceOptions = {
    protect: false,
    ignoreChanges: [],
    aliases: [],
    additionalSecretOutputs: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
};

/** PolicyResource objects as server.js builds them: dependencies are resource objects, filled in afterwards. */
function sdkResources(stack: readonly StackResourceView[], propertyDeps = false): PolicyResource[] {
    const out = stack.map((r): PolicyResource => ({
        type: r.type,
        name: r.name,
        urn: r.urn,
        props: sdkProxy.unknownCheckingProxy({ ...r.props }),
        opts: OPTS,
        dependencies: [],
        propertyDependencies: {},
        isType: () => false,
        asType: () => undefined,
    }));
    const byUrn = new Map(out.map((r) => [r.urn, r]));
    stack.forEach((r, i) => {
        const deps = r.dependsOn.map((u) => byUrn.get(u)!).filter((d) => d !== undefined);
        if (propertyDeps) out[i]!.propertyDependencies = { triggers: deps };
        else out[i]!.dependencies = deps;
    });
    return out;
}

function runStackPolicy(resources: PolicyResource[]): { message: string; urn?: string }[] {
    const reported: { message: string; urn?: string }[] = [];
    void migrationOrdering.validateStack(
        {
            resources,
            stackTags: new Map(),
            getConfig: <T extends object>() => ({}) as T,
            notApplicable: (reason?: string): never => {
                throw new Error(reason);
            },
        },
        (message, u) => reported.push(u === undefined ? { message } : { message, urn: u }),
    );
    return reported;
}

function runResourcePolicy(policy: ResourceValidationPolicy, r: ResourceView, opts: PolicyResourceOptions = OPTS): string[] {
    const reported: string[] = [];
    const args: ResourceValidationArgs = {
        type: r.type,
        props: r.props as Record<string, unknown>,
        urn: r.urn,
        name: r.name,
        opts,
        stackTags: new Map(),
        isType: () => false,
        asType: () => undefined,
        getConfig: <T extends object>() => ({}) as T,
        notApplicable: (reason?: string): never => {
            throw new Error(reason);
        },
    };
    const validations: ResourceValidation[] = Array.isArray(policy.validateResource)
        ? policy.validateResource
        : policy.validateResource
          ? [policy.validateResource]
          : [];
    for (const validate of validations) void validate(args, (message) => reported.push(message));
    return reported;
}

test("the pack: six mandatory policies with unique names", () => {
    assert.equal(policies.length, 6);
    assert.equal(new Set(policies.map((p) => p.name)).size, 6);
    for (const p of policies) assert.equal(p.enforcementLevel, "mandatory", p.name);
});

test("stack policy over SDK-shaped resources: reads dependencies and propertyDependencies, reports against the step's URN", () => {
    const stack = goodStack();
    assert.deepEqual(runStackPolicy(sdkResources(stack)), []);
    assert.deepEqual(runStackPolicy(sdkResources(stack, true)), [], "an input fed by the gate's output orders it too");
    const broken = edit(stack, STEP.kprGate, (r) => ({ ...r, dependsOn: [] }));
    const reported = runStackPolicy(sdkResources(broken));
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.urn, stack.find((r) => r.name === STEP.kprGate)!.urn);
});

test("unknown values at preview: the ordering policy still decides; the values policy hits the SDK's unknown error (reported as advisory)", () => {
    const stack = edit(goodStack(), STEP.ciliumRelease, (r) =>
        r.type === TYPE.helmRelease ? { ...r, props: { chart: "cilium", values: sdkProxy.unknownObjectValue } } : r,
    );
    const resources = sdkResources(edit(stack, STEP.kubeProxyRemoval, (r) => ({ ...r, dependsOn: [] })));
    assert.equal(runStackPolicy(resources).length, 1, "a broken order is caught even while values are unknown");
    const release = resources.find((r) => r.type === TYPE.helmRelease)!;
    assert.throws(() => runResourcePolicy(kprValuesComplete, release), sdkProxy.UnknownValueError);
    // Retention reads only the URN and chart, so it decides too.
    assert.deepEqual(runResourcePolicy(ciliumReleaseRetained, release), []);
});

test("resource policies over SDK-shaped args report each broken resource", () => {
    const stack = goodStack();
    const release = stack.find((r) => r.type === TYPE.helmRelease)!;
    assert.deepEqual(runResourcePolicy(kprValuesComplete, release), []);
    assert.equal(runResourcePolicy(kprValuesComplete, { ...release, props: { values: { kubeProxyReplacement: true } } }).length, 1);
    assert.equal(runResourcePolicy(ciliumReleaseRetained, { ...release, urn: urn([TYPE.helmRelease], STEP.ciliumRelease) }).length, 1);
    const cleanup = stack.find((r) => r.type === TYPE.remoteCommand)!;
    assert.deepEqual(runResourcePolicy(remoteHostKeysPinned, cleanup), []);
    assert.equal(runResourcePolicy(remoteHostKeysPinned, { ...cleanup, props: { connection: { host: "192.0.2.10" } } }).length, 1);
});

// ---- The real program under Pulumi's mocks, seen the way the engine would show it to the pack. ----

/** Views with URNs and dependencies as the engine records them: a dependsOn on a component means its custom resources. */
function viewsOf(resources: readonly RecordedResource[], stack: string): StackResourceView[] {
    const byKey = new Map(resources.map((r) => [r.key, r]));
    const urnOf = (r: RecordedResource): string => {
        const types: string[] = [];
        for (let p = r.parentKey === undefined ? undefined : byKey.get(r.parentKey); p; p = p.parentKey === undefined ? undefined : byKey.get(p.parentKey))
            types.unshift(p.type);
        return `urn:pulumi:${stack}::cilium-kpr::${[...types, r.type].join("$")}::${r.name}`;
    };
    const customsUnder = (key: string): RecordedResource[] => {
        const r = byKey.get(key);
        if (!r) return [];
        if (r.custom) return [r];
        return resources.filter((c) => c.parentKey === key).flatMap((c) => customsUnder(c.key));
    };
    return resources.map((r) => ({ urn: urnOf(r), type: r.type, name: r.name, props: r.inputs, dependsOn: r.dependsOnKeys.flatMap(customsUnder).map(urnOf) }));
}

for (const stack of ["prod", "ipv6-native"]) {
    test(`${stack}: the real program keeps every invariant once the nodes' real host keys are filled in`, async () => {
        const nodes = (rawStack(stack).nodes as Record<string, unknown>[]).map((n) => ({ ...n, hostKey: realHostKey() }));
        const { resources, error } = await runProgram(stack, { nodes });
        assert.equal(error, undefined);
        const views = viewsOf(resources, stack);
        for (const step of [STEP.ciliumRelease, STEP.kprGate, STEP.kubeProxyRemoval]) {
            assert.ok(
                views.some((v) => v.name === step && v.type !== TYPE.ciliumRelease),
                `the program declares ${step}`,
            );
        }
        assert.ok(
            views.some((v) => v.type === TYPE.remoteCommand),
            "the program declares remote commands",
        );
        assert.deepEqual(allViolations(views), []);
    });
}

test("prod as committed: every remote command is refused for its placeholder host key, and nothing else is", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const views = viewsOf(resources, "prod");
    // The node store's copies (CopyToRemote) connect to the nodes too.
    const remote = views.filter((v) => v.type === TYPE.remoteCommand || v.type === TYPE.copyToRemote);
    const v = allViolations(views);
    assert.equal(v.length, remote.length);
    assert.ok(
        v.every((x) => /connection\.hostKey is a placeholder \("replace-me-with-ssh-keyscan-/.test(x.message)),
        v.map((x) => x.message).join("\n"),
    );
});

test("a command with a delete that would be replaced create-first is refused; the real program's are all delete-first", async () => {
    const removal = {
        urn: urn([...MIGRATION, TYPE.localCommand], STEP.kubeProxyRemoval),
        type: TYPE.localCommand,
        name: STEP.kubeProxyRemoval,
        props: { create: "remove", delete: "restore" },
    };
    const reported = runResourcePolicy(commandsReplacedDeleteFirst, removal);
    assert.equal(reported.length, 1);
    assert.match(reported[0]!, /kube-proxy-removal has a delete command but is replaced create-first/);
    assert.deepEqual(runResourcePolicy(commandsReplacedDeleteFirst, removal, { ...OPTS, deleteBeforeReplace: true }), []);
    assert.deepEqual(runResourcePolicy(commandsReplacedDeleteFirst, { ...removal, props: { create: "check" } }), [], "nothing to undo, nothing to order");

    for (const canaryNodes of [[], ["m601"]]) {
        const { resources, error } = await runProgram("prod", { migration: { canaryNodes } });
        assert.equal(error, undefined);
        const commands = resources.filter((r) => r.type === TYPE.localCommand || r.type === TYPE.remoteCommand);
        assert.ok(commands.some((r) => typeof r.inputs.delete === "string"));
        for (const r of commands) {
            const view = { urn: r.key, type: r.type, name: r.name, props: r.inputs };
            assert.deepEqual(runResourcePolicy(commandsReplacedDeleteFirst, view, { ...OPTS, deleteBeforeReplace: r.deleteBeforeReplace }), [], r.name);
        }
    }
});

test("node files shown: every file a tproxy apply fetches by digest must be in the node-files Stash, for that node", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const views = viewsOf(resources, "prod");
    assert.deepEqual(nodeFilesShownViolations(views), []);
    const applies = views.filter((v) => v.name.startsWith(STEP.tproxyApply.prefix));
    assert.equal(applies.length, 3);
    // Each apply fetches five bundle files and the manifest.
    const fetched = (v: StackResourceView) => [...String(v.props.create).matchAll(/^ {2}-f [0-9a-f]{64} '(files\/\d+|manifest)'/gm)].length;
    assert.deepEqual(applies.map(fetched), [6, 6, 6]);

    const withoutStash = views.filter((v) => v.type !== TYPE.stash);
    const missing = nodeFilesShownViolations(withoutStash);
    assert.equal(missing.length, 18);
    assert.match(
        missing[0]!.message,
        /^tproxy-apply-m600 installs manifest \(sha256 [0-9a-f]{64}\) from the node store, but there is no node-files-tproxy Stash: the preview would not show it$/,
    );

    // The ruleset listed for m600 only: m601's and storage's applies install a ruleset the preview does not show them getting.
    const onlyM600 = views.map((v) => {
        if (v.type !== TYPE.stash) return v;
        const input = v.props.input as TproxyNodeFiles;
        const files = Object.fromEntries(
            Object.entries(input.files).map(([path, variants]) => [
                path,
                variants[0]!.kind === "nft-ruleset" ? variants.map((x) => ({ ...x, nodes: ["m600"] })) : variants,
            ]),
        );
        return { ...v, props: { input: { ...input, files } } };
    });
    const wrongNode = nodeFilesShownViolations(onlyM600);
    assert.deepEqual(
        wrongNode.map((x) => x.urn),
        applies.filter((a) => !a.name.endsWith("m600")).map((a) => a.urn),
    );
    assert.match(wrongNode[0]!.message, /installs files\/0 .* does not list it for m601/);

    // A file carried in the text (no store) is shown there: nothing to check.
    const inline = nodeFilesShownViolations(
        withoutStash.map((v) => (applies.includes(v) ? { ...v, props: { create: String(v.props.create).replace(/^ {2}-f /gm, "  -i ") } } : v)),
    );
    assert.deepEqual(inline, []);

    // Wired as a stack policy over SDK-shaped resources.
    const reported: string[] = [];
    void tproxyNodeFilesShown.validateStack(
        {
            resources: sdkResources(withoutStash),
            stackTags: new Map(),
            getConfig: <T extends object>() => ({}) as T,
            notApplicable: (reason?: string): never => {
                throw new Error(reason);
            },
        },
        (message) => reported.push(message),
    );
    assert.equal(reported.length, 18);
});
