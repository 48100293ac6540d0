import { createHash } from "node:crypto";
import type { RecordedResource } from "./mockRuntime";
import { hostKeyFingerprint, type PlanEntry } from "./planModel";
import { STEP, stepOfName, TYPE, type StepKey, type WaveStepKey } from "../components/resourceNames";
import { storedScriptsOf, storeRunnerDigest } from "../components/commands/clusterScriptStore";

/** Steps that are not commands, or whose text depends on more than the node (described in describeStep). */
type DescribedElsewhere = "migration" | "provider" | "ciliumRelease" | "nodeTproxy" | "ciliumUpgradePreflight";

/**
 * What each step does, by its key in components/resourceNames.ts (a new step there must get its line
 * here, or the type check fails); `node` is the node of a per-node step.
 */
const STEP_TEXT: Readonly<Record<Exclude<StepKey, DescribedElsewhere>, (node: string) => string>> = {
    clusterIdentity: () => "record the cluster's identity (kube-system namespace UID): every later cluster step, destroy included, refuses any other cluster",
    operatorPreflight: () =>
        "operator preflight: kubectl/helm/jq present, the context reaches the cluster, kube-proxy mode fits this Cilium version (IPVS + any 1.19.x refused, cilium#44464)",
    nodeStore: (node) => `copy the node scripts and tproxy files (one file per sha256) into ${node}'s node store over SFTP; adds files, never removes any`,
    nodeStoreCheck: (node) =>
        `check that ${node}'s node store holds every script and file its steps fetch by sha256 (destroy: remove the store, after every node step)`,
    nodePreflight: (node) => `node preflight on ${node}: kernel, bpffs, cgroup v2, nft, iptables backend, our table/priority/mark unused`,
    releaseIdentity: () => "record the Cilium release's namespace/name; on a later up refuse any other (a new one would install a second Cilium)",
    valuesSnapshot: () => "snapshot the release's pre-migration values into the cluster (destroy: restore them once kube-proxy serves)",
    kprGate: () => "KPR gate: Cilium rollout done and EVERY agent reports KubeProxyReplacement True, socket LB and NodePort",
    kubeProxyRemoval: () =>
        "back up kube-proxy (DaemonSet + ConfigMap) into the cluster, delete it, wait for its pods to go (destroy: restore and wait for rollout)",
    kubeProxyCanaryExclusion: () =>
        "canary: keep kube-proxy's DaemonSet off the canary nodes only (saved affinity), wait for their pods to go (destroy: put the affinity back, wait for rollout)",
    kubeadmProxyDisabled: () =>
        "set proxy.disabled: true in kube-system/kubeadm-config (backup first; skipped on non-kubeadm clusters); from now on run kubeadm upgrade apply/node with --skip-phases=addon/kube-proxy (destroy: put the proxy block back)",
    staleRuleCleanup: (node) =>
        `remove kube-proxy's leftovers on ${node} (iptables chains, IPVS virtual servers, kube-ipvs0, ipsets, nftables tables; IPv4 and IPv6), verify none remains`,
    tproxyApply: (node) =>
        `push and apply the tproxy ruleset, policy routes and keepalived notify script on ${node}, arming a self-revert (destroy: remove them)`,
    tproxyConfirm: (node) => `confirm ${node} is still reachable over a fresh SSH connection, disarming the revert`,
    tproxyNodeFiles: () =>
        "show the texts of every file the tproxy applies push (ruleset, routes script, unit, networkd drop-in, notify script, manifest), once per stack; a Stash: changes nothing on any node",
    staleRuleVerify: (node) => `verify no kube-proxy state remains on ${node} (read-only)`,
    verification: () => "every agent lists services, the kubernetes Service among them",
};

/** The node-by-node path's steps (components/waves/waveSteps.ts lists what each create and delete does). */
const WAVE_STEP_TEXT: Readonly<Record<WaveStepKey, (node: string) => string>> = {
    nodeConfigCrdCheck: () => "preflight: the API server serves CiliumNodeConfig as cilium.io/v2 (read-only)",
    canaryAdoption: () => "label the nodes the single-shot canary already migrated, before the pending CiliumNodeConfig exists, so their agents keep KPR",
    pendingNodeConfig: () =>
        "CiliumNodeConfig keeping kube-proxy-replacement false on every node without the migrated label (destroy: delete it, after the values are restored)",
    kubeProxyLabelAffinity: () =>
        "keep kube-proxy's DaemonSet off nodes with the migrated label (required node affinity), wait for its rollout (destroy: put the saved affinity back)",
    pendingGate: () => "every agent on a node without the migrated label reports KPR False under the pending CiliumNodeConfig (read-only)",
    clusterScriptStore: () =>
        "write the per-node wave steps' scripts into kube-system, one immutable ConfigMap per sha256; adds, never removes (destroy: remove them, after every wave step)",
    drain: (node) => `cordon and drain ${node}, honouring PodDisruptionBudgets (destroy: uncordon it)`,
    handover: (node) =>
        `hand ${node} to Cilium: label it, wait for its kube-proxy pod to go, restart its agent (destroy: unlabel, wait for kube-proxy Ready, restart the agent without KPR)`,
    agentGate: (node) => `${node}'s agent reports KPR True, socket LB and NodePort, and started with KPR "true" (read-only)`,
    nodeServices: (node) => `${node}'s agent serves the kubernetes Service's ClusterIP and a NodePort (read-only)`,
    uncordon: (node) => `uncordon ${node} after its wave (destroy: cordon and drain it again)`,
};

/** The line for a resource named as one of the program's steps, if it is one with a line of its own. */
function stepText(name: string): string | undefined {
    const step = stepOfName(name);
    if (step === undefined) return undefined;
    const node = step.node ?? "";
    if (step.path === "waves") return WAVE_STEP_TEXT[step.key](node);
    return step.key in STEP_TEXT ? STEP_TEXT[step.key as keyof typeof STEP_TEXT](node) : undefined;
}

/** Which Cilium path the run takes, from the step's environment (see components/cilium/upgradePath.ts). */
function ciliumUpgradeText(r: RecordedResource): string {
    const env = (r.inputs.environment ?? {}) as Record<string, unknown>;
    const from = typeof env["UPGRADE_FROM"] === "string" ? env["UPGRADE_FROM"] : "";
    const to = String(env["CILIUM_CHART_VERSION"]);
    return from === "" || from === to
        ? `the release must run chart ${to} already (else the run stops): values-only change, no image pre-pull`
        : `chart upgrade ${from} -> ${to}: the release must run ${from}, every value set on it must be in the program's values, then the ${to} image is pre-pulled on every node (cilium-pre-flight-check) and removed`;
}

/** One readable line per resource for the plan's step list; `waitsFor` defaults to its explicit dependencies. */
export function describeStep(r: RecordedResource, waitsFor: readonly string[] = r.dependsOn): string {
    const after = waitsFor.length > 0 ? `  (after ${waitsFor.join(", ")})` : "";
    switch (r.type) {
        case "pulumi:providers:kubernetes":
            return `kubernetes provider "${r.name}": the cluster and context every cluster step uses`;
        case "random:index/randomBytes:RandomBytes":
            return `generate ${r.name}: kept in state so every agent gets the same value${after}`;
        case TYPE.helmRelease:
            return `Helm release ${String(r.inputs.namespace)}/${String(r.inputs.name)}: chart ${String(r.inputs.chart)} ${String(r.inputs.version)} with KPR values, ${r.inputs.reuseValues === true ? "reuse-values (same chart version only)" : "full values (no reuse-values)"} (retained on destroy)${after}`;
        default: {
            const isCommand = r.type === TYPE.localCommand || r.type === TYPE.remoteCommand || r.type === TYPE.copyToRemote;
            const text = isCommand && r.name === STEP.ciliumUpgradePreflight ? ciliumUpgradeText(r) : stepText(r.name);
            return text === undefined ? `${r.name} [${r.type}]${after}` : `${r.name}: ${text}${after}`;
        }
    }
}

/** A value shown in a step file's header: short text as is, long text by its size and digest. */
function shown(value: unknown): string {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (text.length <= 160 && !text.includes("\n")) return JSON.stringify(text);
    return `sha256:${createHash("sha256").update(text).digest("hex").slice(0, 16)} (${Buffer.byteLength(text)} bytes)`;
}

const lastName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

/** Where `npm run plan` writes each script of the cluster script store, relative to the plan directory. */
export function storedScriptFile(sha256: string): string {
    return `steps/cluster-scripts/${sha256}.sh`;
}

/**
 * The scripts a cluster script store step writes (its stdin, components/commands/clusterScriptStore.ts),
 * as files of the plan: a per-node wave step carries only the digest, so this is where its script is read.
 */
export function storedScripts(r: RecordedResource): { file: string; text: string }[] {
    const scripts = typeof r.inputs.stdin === "string" ? storedScriptsOf(r.inputs.stdin) : undefined;
    return (scripts ?? []).map((s) => ({ file: storedScriptFile(s.sha256), text: s.text }));
}

/**
 * The text of `steps/<name>.<phase>.sh`: a header with everything that decides what the step does
 * besides its command text (where it runs, its environment or SSH connection, its triggers, what it
 * waits for, how it is replaced), then the command text exactly as the provider runs it. The SSH
 * private key is never written: only that one is used.
 */
export function stepFileText(entry: PlanEntry, r: RecordedResource, phase: "create" | "update" | "delete"): string {
    const lines = [`# cilium-kpr offline plan: ${r.name}, ${phase}`, `# urn: ${entry.urn}`];
    const ownUpdate = typeof r.inputs.update === "string";
    lines.push(
        phase === "create"
            ? ownUpdate
                ? "# runs: on `pulumi up` when created (a later change of any input other than triggers runs the update text instead)"
                : "# runs: on `pulumi up` when created, and again (as an update) whenever any input other than triggers changes"
            : phase === "update"
              ? "# runs: on `pulumi up` instead of the create, whenever any input other than triggers changes"
              : "# runs: on `pulumi destroy` (and before a replacement), with the command, environment and connection stored at the last successful create/update",
    );
    if (r.type === TYPE.remoteCommand) {
        const c = (r.inputs.connection ?? {}) as { host?: string; port?: number; user?: string; hostKey?: unknown; privateKey?: unknown };
        const hostKey = typeof c.hostKey === "string" ? hostKeyFingerprint(c.hostKey) : "NONE (unchecked)";
        lines.push(`# over SSH: ${c.user ?? "root"}@${c.host ?? "?"} port ${c.port ?? 22}`);
        lines.push(`#   host key pinned: ${hostKey}`);
        lines.push(`#   private key: ${c.privateKey === undefined ? "none" : "[secret] (the stack's sshPrivateKey; never shown)"}`);
    } else {
        const interpreter = Array.isArray(r.inputs.interpreter) ? (r.inputs.interpreter as string[]).join(" ") : "/bin/sh -c";
        lines.push(`# locally on the operator's machine: ${interpreter} <command text>`);
        lines.push("# environment: the operator's own, plus:");
        const env = r.secretInputs.includes("environment") ? undefined : ((r.inputs.environment ?? {}) as Record<string, unknown>);
        if (env === undefined) lines.push("#   [secret]");
        else for (const [k, v] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) lines.push(`#   ${k}=${shown(v)}`);
        if (env !== undefined && /\b(kubectl|helm)\b/.test(String(r.inputs[phase])) && env.KUBECONFIG === undefined && env.KUBECTL_CONTEXT === undefined) {
            lines.push("#   (no KUBECONFIG or KUBECTL_CONTEXT: kubectl and helm act on the operator's current kubeconfig context)");
        }
    }
    if (Array.isArray(r.inputs.triggers)) {
        const from = entry.propertyDependencies.triggers ?? [];
        lines.push(`# triggers (a change replaces the step, so it runs again)${from.length > 0 ? `, from ${from.map(lastName).join(", ")}` : ""}:`);
        for (const t of r.inputs.triggers as unknown[]) lines.push(`#   ${shown(t)}`);
    }
    if (entry.ignoreChanges.length > 0) lines.push(`# ignored when they change: ${entry.ignoreChanges.join(", ")}`);
    lines.push(`# waits for: ${entry.waitsFor.length === 0 ? "nothing" : entry.waitsFor.map(lastName).join(", ")}`);
    if (typeof r.inputs.delete === "string")
        lines.push(
            `# replacement: ${entry.deleteBeforeReplace ? "the old delete runs first, then the new create" : "the new create runs first, then the old delete"}`,
        );
    const digest = storeRunnerDigest(String(r.inputs[phase]));
    if (digest !== undefined) lines.push(`# the script it fetches by sha256 and runs: ${storedScriptFile(digest)} (written by the cluster-script-store step)`);
    lines.push("# ---- command text, exactly as the provider runs it ----");
    return `${lines.join("\n")}\n${String(r.inputs[phase])}`;
}
