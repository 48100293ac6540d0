import { createHash } from "node:crypto";
import type { RecordedResource } from "./mockRuntime";
import { hostKeyFingerprint, type PlanEntry } from "./planModel";

/** What each command step does, by its logical name (see components/resourceNames.ts). */
const COMMAND_STEPS: readonly [RegExp, (m: RegExpMatchArray) => string][] = [
    [
        /^cluster-identity$/,
        () => "record the cluster's identity (kube-system namespace UID): every later cluster step, destroy included, refuses any other cluster",
    ],
    [
        /^preflight-operator$/,
        () =>
            "operator preflight: kubectl/helm/jq present, the context reaches the cluster, kube-proxy mode fits this Cilium version (IPVS + any 1.19.x refused, cilium#44464)",
    ],
    [
        /^node-store-check-(.+)$/,
        (m) => `check that ${m[1]}'s node store holds every script its steps fetch by sha256 (destroy: remove the store, after every node step)`,
    ],
    [/^node-store-(.+)$/, (m) => `copy the node scripts (one file per sha256) into ${m[1]}'s node store over SFTP; adds files, never removes any`],
    [/^preflight-(.+)$/, (m) => `node preflight on ${m[1]}: kernel, bpffs, cgroup v2, nft, iptables backend, our table/priority/mark unused`],
    [/^cilium-release-identity$/, () => "record the Cilium release's namespace/name; on a later up refuse any other (a new one would install a second Cilium)"],
    [/^cilium-values-snapshot$/, () => "snapshot the release's pre-migration values into the cluster (destroy: restore them once kube-proxy serves)"],
    [/^kpr-gate$/, () => "KPR gate: Cilium rollout done and EVERY agent reports KubeProxyReplacement True, socket LB and NodePort"],
    [
        /^kube-proxy-removal$/,
        () => "back up kube-proxy (DaemonSet + ConfigMap) into the cluster, delete it, wait for its pods to go (destroy: restore and wait for rollout)",
    ],
    [
        /^kube-proxy-canary-exclusion$/,
        () =>
            "canary: keep kube-proxy's DaemonSet off the canary nodes only (saved affinity), wait for their pods to go (destroy: put the affinity back, wait for rollout)",
    ],
    [
        /^kubeadm-proxy-disabled$/,
        () =>
            "set proxy.disabled: true in kube-system/kubeadm-config (backup first; skipped on non-kubeadm clusters); from now on run kubeadm upgrade apply/node with --skip-phases=addon/kube-proxy (destroy: put the proxy block back)",
    ],
    [
        /^stale-rules-cleanup-(.+)$/,
        (m) =>
            `remove kube-proxy's leftovers on ${m[1]} (iptables chains, IPVS virtual servers, kube-ipvs0, ipsets, nftables tables; IPv4 and IPv6), verify none remains`,
    ],
    [
        /^tproxy-apply-(.+)$/,
        (m) => `push and apply the tproxy ruleset, policy routes and keepalived notify script on ${m[1]}, arming a self-revert (destroy: remove them)`,
    ],
    [/^tproxy-confirm-(.+)$/, (m) => `confirm ${m[1]} is still reachable over a fresh SSH connection, disarming the revert`],
    [/^stale-rules-verify-(.+)$/, (m) => `verify no kube-proxy state remains on ${m[1]} (read-only)`],
    [/^post-migration-verification$/, () => "every agent lists services, the kubernetes Service among them"],
];

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
        case "kubernetes:helm.sh/v3:Release":
            return `Helm release ${String(r.inputs.namespace)}/${String(r.inputs.name)}: chart ${String(r.inputs.chart)} ${String(r.inputs.version)} with KPR values, ${r.inputs.reuseValues === true ? "reuse-values (same chart version only)" : "full values (no reuse-values)"} (retained on destroy)${after}`;
        case "command:local:Command":
        case "command:remote:Command":
        case "command:remote:CopyToRemote": {
            if (r.name === "cilium-upgrade-preflight") return `${r.name}: ${ciliumUpgradeText(r)}${after}`;
            for (const [pattern, text] of COMMAND_STEPS) {
                const m = r.name.match(pattern);
                if (m) return `${r.name}: ${text(m)}${after}`;
            }
            return `${r.name} [${r.type}]${after}`;
        }
        default:
            return `${r.name} [${r.type}]${after}`;
    }
}

/** A value shown in a step file's header: short text as is, long text by its size and digest. */
function shown(value: unknown): string {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (text.length <= 160 && !text.includes("\n")) return JSON.stringify(text);
    return `sha256:${createHash("sha256").update(text).digest("hex").slice(0, 16)} (${Buffer.byteLength(text)} bytes)`;
}

const lastName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

/**
 * The text of `steps/<name>.<phase>.sh`: a header with everything that decides what the step does
 * besides its command text (where it runs, its environment or SSH connection, its triggers, what it
 * waits for, how it is replaced), then the command text exactly as the provider runs it. The SSH
 * private key is never written: only that one is used.
 */
export function stepFileText(entry: PlanEntry, r: RecordedResource, phase: "create" | "delete"): string {
    const lines = [`# cilium-kpr offline plan: ${r.name}, ${phase}`, `# urn: ${entry.urn}`];
    lines.push(
        phase === "create"
            ? "# runs: on `pulumi up` when created, and again (as an update) whenever any input other than triggers changes"
            : "# runs: on `pulumi destroy` (and before a replacement), with the command, environment and connection stored at the last successful create/update",
    );
    if (r.type === "command:remote:Command") {
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
    lines.push("# ---- command text, exactly as the provider runs it ----");
    return `${lines.join("\n")}\n${String(r.inputs[phase])}`;
}
