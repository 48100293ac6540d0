/** What the drift check found, per node and for the cluster (see tools/check.ts). */

/** Each kind of drift the check looks for. */
export type DriftKind =
    | "kube-proxy-back" // kube-proxy's DaemonSet, ConfigMap or pods are back (or back on a canary node)
    | "kube-proxy-missing" // wave path, before the last wave: kube-proxy is gone from nodes that no KPR agent serves
    | "kube-proxy-state" // kube-proxy's rules, IPVS or nft state are back on a node
    | "agent-kpr" // a Cilium agent does not report kube-proxy replacement
    | "tproxy-table" // the nft table is missing or differs from what the program would push
    | "tproxy-routes" // the policy rule or local route is missing or different
    | "tproxy-files" // an installed file differs from what the program would push
    | "activation" // diverting is switched on where the VIP is not held, or off where it is
    | "kubeadm-proxy" // kubeadm's ClusterConfiguration no longer has proxy.disabled: true
    | "wave-label" // wave path: a migrated node lost the migrated label, or a node of an undeclared wave carries it
    | "script-store" // wave path: a script the wave steps run is missing from the cluster script store, or altered
    | "node-access"; // the node could not be reached or refused us (only ever "unchecked")

export interface Finding {
    /** "cluster" or a node name. */
    readonly scope: string;
    /** drift: checked and different; unchecked: could not be checked (the reason is in detail). */
    readonly status: "drift" | "unchecked";
    readonly kind: DriftKind;
    readonly detail: string;
    /** What to run to repair it (drift only). */
    readonly repair?: string;
}

export const CLUSTER_SCOPE = "cluster";

export function drift(scope: string, kind: DriftKind, detail: string, repair: string): Finding {
    return { scope, status: "drift", kind, detail, repair };
}

export function unchecked(scope: string, kind: DriftKind, detail: string): Finding {
    return { scope, status: "unchecked", kind, detail };
}

/** 0: no drift and everything checked; 1: drift; 3: no drift found, but something could not be checked. */
export function exitCode(findings: readonly Finding[]): 0 | 1 | 3 {
    if (findings.some((f) => f.status === "drift")) return 1;
    if (findings.some((f) => f.status === "unchecked")) return 3;
    return 0;
}

/** The report: drift first, then what could not be checked, each grouped by scope; a summary line last. */
export function formatReport(stack: string, scopes: readonly string[], findings: readonly Finding[]): string {
    const lines: string[] = [];
    const drifted = findings.filter((f) => f.status === "drift");
    const skipped = findings.filter((f) => f.status === "unchecked");
    for (const scope of scopes) {
        const mine = findings.filter((f) => f.scope === scope);
        if (mine.length === 0) {
            lines.push(`${scope}: no drift`);
            continue;
        }
        for (const f of mine) {
            if (f.status === "drift") {
                lines.push(`${scope}: DRIFT ${f.kind}: ${f.detail}`);
                lines.push(`${" ".repeat(scope.length)}  repair: ${f.repair ?? "(none known)"}`);
            } else {
                lines.push(`${scope}: COULD NOT CHECK ${f.kind}: ${f.detail}`);
            }
        }
    }
    const scopeCount = (list: readonly Finding[]) => new Set(list.map((f) => f.scope)).size;
    if (drifted.length > 0) {
        lines.push(
            `stack ${stack}: DRIFT: ${drifted.length} finding(s) in ${scopeCount(drifted)} place(s)` +
                (skipped.length > 0 ? `; ${skipped.length} check(s) could not run` : ""),
        );
    } else if (skipped.length > 0) {
        lines.push(`stack ${stack}: no drift found, but ${skipped.length} check(s) could not run (see COULD NOT CHECK above); this is not a clean bill`);
    } else {
        lines.push(`stack ${stack}: no drift (cluster and ${scopes.length - 1} node(s) checked)`);
    }
    return `${lines.join("\n")}\n`;
}
