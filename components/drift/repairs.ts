import * as path from "node:path";
import type { NodeConfig } from "../config/schema";
import { scriptPath } from "../commands/scripts";
import type { ClusterScriptName } from "../commands/scriptParams";
import { STEP, WAVE_STEP } from "../resourceNames";
import { DEFAULT_NODE_LAYOUT } from "../tproxy/nodeLayout";

/** One step of the program as the offline plan computes it (tools/check.ts fills these from the mock run). */
export interface PlannedStep {
    readonly urn: string;
    /** The environment a local command step runs with (kubectl target and the script's settings). */
    readonly environment: Readonly<Record<string, string>>;
}

export interface RepairContext {
    readonly stack: string;
    /** By logical name (components/resourceNames.ts). */
    readonly steps: ReadonlyMap<string, PlannedStep>;
}

/**
 * The repository script each cluster step runs as its create (test/drift-repairs.test.ts checks
 * this against the command text the program really embeds).
 */
export const CLUSTER_STEP_SCRIPTS: Readonly<Record<string, ClusterScriptName>> = {
    [STEP.kprGate]: "kubeproxy/kpr-gate",
    [STEP.kubeProxyRemoval]: "kubeproxy/kube-proxy-remove",
    [STEP.kubeProxyCanaryExclusion]: "kubeproxy/kube-proxy-exclude",
};

/** A script's file relative to the repository root, as an operator runs it from there. */
function repositoryPath(name: ClusterScriptName): string {
    return path.relative(path.resolve(__dirname, "..", ".."), scriptPath(name));
}

function quoted(word: string): string {
    return /^[A-Za-z0-9_.:/@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function step(ctx: RepairContext, name: string): PlannedStep | undefined {
    return ctx.steps.get(name);
}

/** `pulumi up --replace` of the named steps (URNs from the offline plan); undefined if one is not in the program. */
export function replaceCommand(ctx: RepairContext, names: readonly string[]): string | undefined {
    const urns = names.map((n) => step(ctx, n)?.urn);
    if (urns.some((u) => u === undefined)) return undefined;
    return `pulumi up --stack ${quoted(ctx.stack)} ${urns.map((u) => `--replace ${quoted(u!)}`).join(" ")}`;
}

/** The step's script run by hand with exactly the environment the program gives it (from the repository root). */
export function clusterScriptCommand(ctx: RepairContext, name: string): string | undefined {
    const planned = step(ctx, name);
    const script = CLUSTER_STEP_SCRIPTS[name];
    if (planned === undefined || script === undefined) return undefined;
    const env = Object.entries(planned.environment).map(([k, v]) => `${k}=${quoted(v)}`);
    return [...env, "bash", repositoryPath(script)].join(" ");
}

/**
 * kube-proxy back. Not `pulumi up --replace` of the removal: created before the old one is deleted
 * (the default, design.md), the old delete restores kube-proxy after the new create; deleted first,
 * it restores kube-proxy and removes it again without asking the gate. The gate first, as in the
 * program, then the removal (or, during a canary, the exclusion); both scripts are idempotent.
 */
export function kubeProxyRepair(ctx: RepairContext, canary: boolean): string {
    const gate = clusterScriptCommand(ctx, STEP.kprGate);
    const removal = clusterScriptCommand(ctx, canary ? STEP.kubeProxyCanaryExclusion : STEP.kubeProxyRemoval);
    if (gate === undefined || removal === undefined) return "the program does not remove kube-proxy in this stack (cilium.kubeProxyReplacement is false)";
    return (
        `${gate} && ${removal}   ` +
        "(the program's own create scripts, idempotent; not pulumi up --replace, whose old delete restores kube-proxy); " +
        "then run kubeadm upgrade only with --skip-phases=addon/kube-proxy"
    );
}

export function staleStateRepair(ctx: RepairContext, node: string): string {
    return (
        replaceCommand(ctx, [STEP.staleRuleCleanup(node)]) ??
        `no stale-rule cleanup step for ${node} in this stack (is it a canary-excluded or unmigrated node?)`
    );
}

export function agentKprRepair(ctx: RepairContext): string {
    const replace = replaceCommand(ctx, [STEP.kprGate]);
    return (
        `pulumi preview --stack ${quoted(ctx.stack)} --refresh --diff (shows whether the release's values were changed outside the program), ` +
        `then ${replace === undefined ? `pulumi up --stack ${quoted(ctx.stack)} --refresh` : `${replace} --refresh`} ` +
        "(re-applies the values and re-runs the gate on every agent); a CiliumNodeConfig overriding kube-proxy-replacement for that node also shows as this"
    );
}

/** A wave step's script run by hand with exactly the environment the program gives that step. */
function waveScriptCommand(ctx: RepairContext, name: string, script: string, settings: Readonly<Record<string, string>> = {}): string | undefined {
    const planned = step(ctx, name);
    if (planned === undefined) return undefined;
    const env = { ...settings, ...planned.environment };
    return [...Object.entries(env).map(([k, v]) => `${k}=${quoted(v)}`), "bash", script].join(" ");
}

/**
 * A migrated node that lost its label (its agent would resolve the pending CiliumNodeConfig, KPR off, at
 * its next restart) or runs kube-proxy again: the node's own handover script, idempotent, labels it,
 * waits until kube-proxy has left it and restarts its agent unless it already resolved KPR "true".
 * `settings`: what the script's stored copy carries (waves/waveStoreEntries.ts) and the step's environment
 * therefore does not; the repository's file would otherwise run with its own defaults.
 */
export function waveHandoverRepair(ctx: RepairContext, node: string, settings: Readonly<Record<string, string>>): string {
    return (
        waveScriptCommand(ctx, WAVE_STEP.handover(node), "components/waves/scripts/node-handover.sh", settings) ??
        `no handover step for ${node} in this stack (is its wave declared?)`
    );
}

/**
 * The cluster script store lost or had an entry altered: its step again, create-first (the default), writes
 * every current script back and replaces an altered one; its old delete removes nothing (see
 * components/waves/scripts/cluster-script-store.sh).
 */
export function waveScriptStoreRepair(ctx: RepairContext): string {
    const replace = replaceCommand(ctx, [WAVE_STEP.clusterScriptStore]);
    return replace === undefined
        ? "no cluster-script-store step in this stack"
        : `${replace} (writes the current scripts back; an older version's script, needed only by a delete recorded before a script change, is not among them: run that delete's script by hand from a checkout of that version, README "The cluster script store")`;
}

/** kube-proxy's DaemonSet lost the label affinity (e.g. kubeadm upgrade rewrote it): the affinity step's script, idempotent. */
export function waveAffinityRepair(ctx: RepairContext): string {
    return (
        waveScriptCommand(ctx, WAVE_STEP.kubeProxyLabelAffinity, "components/waves/scripts/kube-proxy-label-affinity.sh") ??
        "no kube-proxy-label-affinity step in this stack"
    );
}

/**
 * kube-proxy's DaemonSet or ConfigMap deleted before the last wave: no backup exists yet (the program
 * backs kube-proxy up only after the last wave), so it is re-created the way it was installed, then the
 * label affinity is put back so it stays off the migrated nodes.
 */
export function waveKubeProxyRecreateRepair(ctx: RepairContext): string {
    return `re-create kube-proxy as it was installed (kubeadm: \`kubeadm init phase addon kube-proxy --config <your kubeadm config>\` on a control-plane node), then ${waveAffinityRepair(ctx)}`;
}

/**
 * A node of a wave the stack does not declare (yet) that was labelled or whose agent runs with KPR:
 * give it back to kube-proxy as the handback does (label off, kube-proxy Ready there, then the agent
 * restarted so it resolves the pending CiliumNodeConfig).
 */
export function waveHandbackRepair(node: string, agentPod: string | undefined, ciliumNamespace: string, label: string): string {
    return (
        `kubectl label node ${quoted(node)} ${quoted(`${label}-`)}, wait until its kube-proxy pod is Ready, ` +
        `then kubectl -n ${quoted(ciliumNamespace)} delete pod ${agentPod === undefined ? `<the Cilium agent on ${quoted(node)}>` : quoted(agentPod)} ` +
        "(node-handback.sh's steps; or declare its wave and pulumi up)"
    );
}

/**
 * The apply and its confirm together: the confirm disarms the revert the re-apply arms, and is named
 * so it runs whether or not the engine replaces it as a dependent of the delete-before-replace apply.
 */
export function tproxyRepair(ctx: RepairContext, node: string): string {
    return replaceCommand(ctx, [STEP.tproxyApply(node), STEP.tproxyConfirm(node)]) ?? `no tproxy step for ${node} in this stack`;
}

export function activationRepair(ctx: RepairContext, node: NodeConfig): string {
    const sudo = node.sshUser === "root" ? "" : "sudo -n ";
    return (
        `ssh -p ${node.sshPort} ${node.sshUser}@${node.address} ${sudo}${DEFAULT_NODE_LAYOUT.keepalivedNotifyPath} RECONCILE ` +
        `(switches diverting to match the VIPs held now); if it recurs, check that keepalived.conf carries plan/${ctx.stack}/nodes/${node.name}/keepalived-snippet.conf`
    );
}

/** The kubeadm-proxy-disabled step is deleteBeforeReplace: its old delete restores the backup, then create sets the flag again. */
export function kubeadmProxyRepair(ctx: RepairContext): string {
    const replace = replaceCommand(ctx, [STEP.kubeadmProxyDisabled]);
    return `${replace ?? "kubectl -n kube-system edit configmap kubeadm-config (ClusterConfiguration: proxy: {disabled: true})"}; until then run kubeadm upgrade only with --skip-phases=addon/kube-proxy`;
}
