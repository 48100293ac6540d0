import type { RecordedResource } from "./mockRuntime";

/** What each command step does, by its logical name (see components/resourceNames.ts). */
const COMMAND_STEPS: readonly [RegExp, (m: RegExpMatchArray) => string][] = [
    [
        /^cluster-identity$/,
        () => "record the cluster's identity (kube-system namespace UID): every later cluster step, destroy included, refuses any other cluster",
    ],
    [
        /^preflight-operator$/,
        () =>
            "operator preflight: kubectl/helm/jq present, the context reaches the cluster, kube-proxy mode fits this Cilium version (IPVS + 1.19.0/1.19.1 refused)",
    ],
    [/^preflight-(.+)$/, (m) => `node preflight on ${m[1]}: kernel, bpffs, cgroup v2, nft, iptables backend, our table/priority/mark unused`],
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
    [/^stale-rules-cleanup-(.+)$/, (m) => `remove kube-proxy's KUBE-* iptables chains on ${m[1]} (IPv4 and IPv6), verify none remains`],
    [
        /^tproxy-apply-(.+)$/,
        (m) => `push and apply the tproxy ruleset, policy routes and keepalived notify script on ${m[1]}, arming a self-revert (destroy: remove them)`,
    ],
    [/^tproxy-confirm-(.+)$/, (m) => `confirm ${m[1]} is still reachable over a fresh SSH connection, disarming the revert`],
    [/^stale-rules-verify-(.+)$/, (m) => `verify no KUBE-SVC rules remain on ${m[1]}`],
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

/** One readable line per resource for the plan's step list. */
export function describeStep(r: RecordedResource): string {
    const after = r.dependsOn.length > 0 ? `  (after ${r.dependsOn.join(", ")})` : "";
    switch (r.type) {
        case "pulumi:providers:kubernetes":
            return `kubernetes provider "${r.name}": the cluster and context every cluster step uses`;
        case "random:index/randomBytes:RandomBytes":
            return `generate ${r.name}: kept in state so every agent gets the same value${after}`;
        case "kubernetes:helm.sh/v3:Release":
            return `Helm release ${String(r.inputs.namespace)}/${String(r.inputs.name)}: chart ${String(r.inputs.chart)} ${String(r.inputs.version)} with KPR values, ${r.inputs.reuseValues === true ? "reuse-values (same chart version only)" : "full values (no reuse-values)"} (retained on destroy)${after}`;
        case "command:local:Command":
        case "command:remote:Command": {
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
