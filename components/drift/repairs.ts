import * as path from "node:path";
import type { NodeConfig } from "../config/schema";
import { scriptPath } from "../commands/scripts";
import type { ClusterScriptName } from "../commands/scriptParams";
import { STEP } from "../resourceNames";
import { KEEPALIVED_NOTIFY_PATH } from "../tproxy/keepalivedNotify";

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
        `ssh -p ${node.sshPort} ${node.sshUser}@${node.address} ${sudo}${KEEPALIVED_NOTIFY_PATH} RECONCILE ` +
        `(switches diverting to match the VIPs held now); if it recurs, check that keepalived.conf carries plan/${ctx.stack}/nodes/${node.name}/keepalived-snippet.conf`
    );
}

/** The kubeadm-proxy-disabled step is deleteBeforeReplace: its old delete restores the backup, then create sets the flag again. */
export function kubeadmProxyRepair(ctx: RepairContext): string {
    const replace = replaceCommand(ctx, [STEP.kubeadmProxyDisabled]);
    return `${replace ?? "kubectl -n kube-system edit configmap kubeadm-config (ClusterConfiguration: proxy: {disabled: true})"}; until then run kubeadm upgrade only with --skip-phases=addon/kube-proxy`;
}
