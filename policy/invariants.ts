import { hostKeyProblem as configHostKeyProblem, hostKeyPlaceholderText } from "../components/config/hostKey";
import { STEP, stepOfName, TYPE, WAVE_STEP } from "../components/resourceNames";

/*
 * The safety invariants the policy pack enforces, as pure functions over a small view of the
 * resources the policy SDK hands to a policy. No SDK types here, so tests can build the views by hand.
 *
 * Values the engine does not know yet at preview arrive from the SDK as proxies that throw when
 * read; these functions read only the fields their invariant needs, so such a throw is confined
 * to the one policy that needed the value (the SDK then reports that policy as advisory for the run).
 */

/** What a resource policy sees of one resource. `props` are the resource's inputs at preview. */
export interface ResourceView {
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    readonly props: Readonly<Record<string, unknown>>;
}

/** What a stack policy sees of one resource: also the URNs it depends on. */
export interface StackResourceView extends ResourceView {
    /** Explicit dependsOn plus every resource whose outputs feed one of its inputs. */
    readonly dependsOn: readonly string[];
}

export interface Violation {
    readonly message: string;
    /** The resource at fault; absent when the stack as a whole is. */
    readonly urn?: string;
}

/** Each step of the migration that must wait for the one named after it. */
const REQUIRED_ORDER: readonly { readonly step: StepRef; readonly after: StepRef; readonly why: string }[] = [
    {
        step: { name: STEP.kubeProxyRemoval, type: TYPE.localCommand },
        after: { name: STEP.kprGate, type: TYPE.localCommand },
        why: "kube-proxy may only be removed once every Cilium agent reports KPR serving",
    },
    {
        step: { name: STEP.kubeProxyCanaryExclusion, type: TYPE.localCommand },
        after: { name: STEP.kprGate, type: TYPE.localCommand },
        why: "kube-proxy may only leave the canary nodes once every Cilium agent reports KPR serving",
    },
    {
        step: { name: STEP.kprGate, type: TYPE.localCommand },
        after: { name: STEP.ciliumRelease, type: TYPE.helmRelease },
        why: "the gate must check the agents that the KPR release rolled out, not the ones before it",
    },
];

interface StepRef {
    readonly name: string;
    readonly type: string;
}

/**
 * kube-proxy removal (or its canary exclusion) waits for the KPR gate, the gate for the Cilium release,
 * and each node's stale KUBE-* rule cleanup for the removal or exclusion (a cleanup while kube-proxy
 * still runs is undone by it).
 * "Waits for" means a path of dependencies, so an extra step in between is allowed.
 */
export function orderingViolations(resources: readonly StackResourceView[]): Violation[] {
    const violations: Violation[] = [];
    const byUrn = new Map(resources.map((r) => [r.urn, r]));
    const find = (ref: StepRef) => resources.filter((r) => r.name === ref.name && r.type === ref.type);

    for (const rule of REQUIRED_ORDER) {
        const prerequisites = find(rule.after);
        for (const step of find(rule.step)) {
            if (prerequisites.length === 0) {
                violations.push({ urn: step.urn, message: `${rule.step.name} has no ${rule.after.name} (${rule.after.type}) to wait for: ${rule.why}` });
                continue;
            }
            for (const prerequisite of prerequisites) {
                if (!dependsOnTransitively(step, prerequisite.urn, byUrn)) {
                    violations.push({ urn: step.urn, message: `${rule.step.name} does not depend on ${rule.after.name}: ${rule.why}` });
                }
            }
        }
    }

    const removals = [
        ...find({ name: STEP.kubeProxyRemoval, type: TYPE.localCommand }),
        ...find({ name: STEP.kubeProxyCanaryExclusion, type: TYPE.localCommand }),
    ];
    const removalNames = `${STEP.kubeProxyRemoval} or ${STEP.kubeProxyCanaryExclusion}`;
    for (const cleanup of resources) {
        const step = stepOfName(cleanup.name);
        if (step?.key !== "staleRuleCleanup" || step.node === undefined) continue;
        // Node by node (components/waves/): kube-proxy leaves the node in its handover, and the node's gate
        // proves its agent took over; kube-proxy's DaemonSet is removed only after the last wave.
        const node = step.node;
        const handovers = [
            ...find({ name: WAVE_STEP.handover(node), type: TYPE.localCommand }),
            ...find({ name: WAVE_STEP.agentGate(node), type: TYPE.localCommand }),
        ];
        if (handovers.length > 0) {
            for (const step of handovers) {
                if (!dependsOnTransitively(cleanup, step.urn, byUrn)) {
                    violations.push({
                        urn: cleanup.urn,
                        message: `${cleanup.name} does not depend on ${step.name}: kube-proxy must have left ${node} and its agent must serve it before the rules go`,
                    });
                }
            }
            if (handovers.length < 2)
                violations.push({ urn: cleanup.urn, message: `${cleanup.name} has a handover without a node gate, or a gate without a handover` });
            continue;
        }
        if (removals.length === 0) {
            violations.push({
                urn: cleanup.urn,
                message: `${cleanup.name} has no ${removalNames} to wait for: a running kube-proxy rewrites the KUBE-* rules it deletes`,
            });
            continue;
        }
        for (const removal of removals) {
            if (!dependsOnTransitively(cleanup, removal.urn, byUrn)) {
                violations.push({
                    urn: cleanup.urn,
                    message: `${cleanup.name} does not depend on ${removal.name}: a running kube-proxy rewrites the KUBE-* rules it deletes`,
                });
            }
        }
    }
    return violations;
}

/** True if `target` is reachable from `from` over dependency edges. Visits each resource at most once. */
export function dependsOnTransitively(from: StackResourceView, target: string, byUrn: ReadonlyMap<string, StackResourceView>): boolean {
    const seen = new Set<string>([from.urn]);
    const queue = [...from.dependsOn];
    while (queue.length > 0) {
        const urn = queue.shift()!;
        if (urn === target) return true;
        if (seen.has(urn)) continue;
        seen.add(urn);
        queue.push(...(byUrn.get(urn)?.dependsOn ?? []));
    }
    return false;
}

/** The type of a resource's parent, read from its URN (`...::parentType$ownType::name`); undefined at the stack root. */
export function parentTypeOf(urn: string): string | undefined {
    const parts = urn.split("::");
    if (parts.length < 4) return undefined;
    const chain = parts[2]!.split("$");
    if (chain.length < 2) return undefined;
    const parent = chain[chain.length - 2]!;
    return parent === "pulumi:pulumi:Stack" ? undefined : parent;
}

/** The Helm release of Cilium: the step's name, or a chart called "cilium" (`cilium`, `cilium/cilium`, `oci://.../cilium`). */
export function isCiliumRelease(r: ResourceView): boolean {
    if (r.type !== TYPE.helmRelease) return false;
    if (r.name === STEP.ciliumRelease) return true;
    const chart = r.props.chart;
    return typeof chart === "string" && chart.split("/").pop() === "cilium";
}

/**
 * The Cilium release is retained on delete. @pulumi/policy 1.21 does not show `retainOnDelete` to
 * policies (PolicyResourceOptions carries protect, ignoreChanges, deleteBeforeReplace, aliases,
 * customTimeouts, additionalSecretOutputs and parent only), so this enforces what it can see: the
 * release is declared by the CiliumRelease component, whose one constructor always sets
 * retainOnDelete (test/program.test.ts proves that). `protect` is not required: it would also block
 * the `pulumi destroy` that is this program's rollback.
 */
export function releaseRetentionViolations(r: ResourceView): Violation[] {
    if (!isCiliumRelease(r)) return [];
    const parent = parentTypeOf(r.urn);
    if (parent === TYPE.ciliumRelease) return [];
    return [
        {
            urn: r.urn,
            message: `the Cilium Helm release is declared ${parent === undefined ? "at the stack root" : `under ${parent}`}, not by the ${TYPE.ciliumRelease} component that retains it on delete: a destroy could helm-uninstall the cluster's CNI`,
        },
    ];
}

/** Whether a chart value of kubeProxyReplacement turns KPR on (anything but false; 1.19 accepts only "true"/"false"). */
export function kprEnabled(value: unknown): boolean {
    return !(value === undefined || value === null || value === false || value === "false" || value === "disabled");
}

/**
 * With KPR on, the release's values carry an explicit k8sServiceHost and k8sServicePort: without
 * them agents reach the API server through the kubernetes Service, which nothing serves once
 * kube-proxy is gone, and crash-loop after a node reboot. "auto" breaks on IPv6 literals.
 */
export function kprValuesViolations(r: ResourceView): Violation[] {
    if (r.type !== TYPE.helmRelease) return [];
    const values = asRecord(r.props.values);
    if (values === undefined || !kprEnabled(values.kubeProxyReplacement)) return [];
    const problems: string[] = [];
    const host = values.k8sServiceHost;
    if (typeof host !== "string" || host.trim() === "") problems.push("k8sServiceHost is missing");
    else if (host === "auto") problems.push('k8sServiceHost is "auto" (reads kube-public/cluster-info, breaks on IPv6 literals)');
    const port = values.k8sServicePort;
    const portNumber = typeof port === "number" ? port : typeof port === "string" && /^[0-9]+$/.test(port) ? Number(port) : NaN;
    if (port === undefined || port === null) problems.push("k8sServicePort is missing");
    else if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) problems.push(`k8sServicePort ${JSON.stringify(port)} is not a port`);
    if (problems.length === 0) return [];
    return [
        { urn: r.urn, message: `kubeProxyReplacement is on but ${problems.join(" and ")}: agents need the API server's real address once kube-proxy is gone` },
    ];
}

/**
 * Why a host key cannot pin a host, or undefined if it can: the config's own check
 * (components/config/hostKey.ts: form, type, SSH wire format, ssh-rsa refused), and beyond it a key
 * whose material is readable text is a placeholder, not a key from ssh-keyscan.
 */
export function hostKeyProblem(hostKey: unknown): string | undefined {
    if (hostKey === undefined || hostKey === null || hostKey === "") return "is not set, so any host answering at that address is trusted";
    if (typeof hostKey !== "string") return "is not a string";
    const problem = configHostKeyProblem(hostKey.trim());
    if (problem !== undefined) return problem;
    const placeholder = hostKeyPlaceholderText(hostKey.trim());
    return placeholder === undefined ? undefined : `is a placeholder ("${placeholder}"), not a key from ssh-keyscan`;
}

/** Every remote.Command and CopyToRemote pins its node's host key (connection.hostKey, and the jump host's when there is one). */
export function hostKeyViolations(r: ResourceView): Violation[] {
    if (r.type !== TYPE.remoteCommand && r.type !== TYPE.copyToRemote) return [];
    const connection = asRecord(r.props.connection);
    if (connection === undefined) return [{ urn: r.urn, message: "has no connection" }];
    const violations: Violation[] = [];
    const problem = hostKeyProblem(connection.hostKey);
    if (problem !== undefined) violations.push({ urn: r.urn, message: `connection.hostKey ${problem}` });
    const proxy = asRecord(connection.proxy);
    if (proxy !== undefined) {
        const proxyProblem = hostKeyProblem(proxy.hostKey);
        if (proxyProblem !== undefined) violations.push({ urn: r.urn, message: `connection.proxy.hostKey ${proxyProblem}` });
    }
    return violations;
}

function asRecord(value: unknown): Readonly<Record<string, unknown>> | undefined {
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A resource policy's view plus the one option the replacement-order invariant reads. */
export interface ReplacementView extends ResourceView {
    readonly deleteBeforeReplace: boolean;
}

/**
 * A command whose delete undoes its create (restore kube-proxy, put its affinity back, roll Cilium's
 * values back, remove a node's tproxy) must be replaced delete-first: the engine's default replacement
 * creates the new one and runs the old delete last, which would undo it (pulumi/pulumi
 * pkg/resource/deploy/step_generator.go: deleteBeforeReplace from the resource option, else the
 * provider's diff, and pulumi-command never asks for it).
 */
export function replacementOrderViolations(r: ReplacementView): Violation[] {
    if (r.type !== TYPE.localCommand && r.type !== TYPE.remoteCommand) return [];
    if (typeof r.props.delete !== "string" || r.deleteBeforeReplace) return [];
    return [
        {
            urn: r.urn,
            message: `${r.name} has a delete command but is replaced create-first: its old delete would undo the new create; set deleteBeforeReplace`,
        },
    ];
}

/** A file a node step stages from the node store by digest: `-f <sha256> '<name>'` (components/commands/remoteCommand.ts fileArguments). */
const FETCHED_FILE = /^ {2}-f ([0-9a-f]{64}) '([^']*)'/gm;

/**
 * The preview shows every file a tproxy apply installs: the apply fetches the bundle's files (`files/N`)
 * and its manifest from the node store by digest, so each such digest must be one of the contents the
 * node-files Stash (STEP.tproxyNodeFiles, components/tproxy/nodeFilesStash.ts) lists for that node.
 * Files carried in the text itself are shown there.
 */
export function nodeFilesShownViolations(resources: readonly ResourceView[]): Violation[] {
    const stash = resources.find((r) => r.type === TYPE.stash && r.name === STEP.tproxyNodeFiles);
    const shown = stashContents(stash?.props.input);
    const violations: Violation[] = [];
    for (const r of resources) {
        const step = stepOfName(r.name);
        if (r.type !== TYPE.remoteCommand || step?.key !== "tproxyApply" || step.node === undefined || typeof r.props.create !== "string") continue;
        const node = step.node;
        for (const [, sha, name] of r.props.create.matchAll(FETCHED_FILE)) {
            if (name !== "manifest" && !name!.startsWith("files/")) continue;
            if (shown.get(sha!)?.(node) === true) continue;
            violations.push({
                urn: r.urn,
                message: `${r.name} installs ${name} (sha256 ${sha}) from the node store, but ${stash === undefined ? `there is no ${STEP.tproxyNodeFiles} Stash` : `the ${STEP.tproxyNodeFiles} Stash does not list it for ${node}`}: the preview would not show it`,
            });
        }
    }
    return violations;
}

/** sha256 -> whether the Stash lists that content for a node (its `nodes`, or every node when a variant names none). */
function stashContents(input: unknown): Map<string, (node: string) => boolean> {
    const out = new Map<string, (node: string) => boolean>();
    if (input === null || typeof input !== "object") return out;
    const { nodes, files } = input as { nodes?: unknown; files?: unknown };
    if (!Array.isArray(nodes) || files === null || typeof files !== "object") return out;
    for (const variants of Object.values(files as Record<string, unknown>)) {
        if (!Array.isArray(variants)) continue;
        for (const v of variants as { sha256?: unknown; nodes?: unknown }[]) {
            if (typeof v.sha256 !== "string") continue;
            const whose = Array.isArray(v.nodes) ? v.nodes : nodes;
            const before = out.get(v.sha256);
            out.set(v.sha256, (node) => whose.includes(node) || before?.(node) === true);
        }
    }
    return out;
}
