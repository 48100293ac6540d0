import type { MigrationConfig } from "../config/validate";
import type { NodeConfig } from "../config/schema";
import { divertedFamilies, nftRulesetInput, type NfFamily } from "../tproxy/nftRuleset";
import { drift, unchecked, type Finding } from "./findings";
import { activationRepair, staleStateRepair, tproxyRepair, type RepairContext } from "./repairs";

/** One finished remote run: exit status and output. */
export interface RemoteRun {
    readonly status: number;
    readonly stdout: string;
    readonly stderr: string;
}

/** ssh exits 255 for its own errors (connection, authentication, host key), never for the remote command's. */
export const SSH_ERROR_STATUS = 255;

function lastLine(text: string): string {
    return (
        text
            .trim()
            .split("\n")
            .filter((l) => l.trim() !== "")
            .pop() ?? ""
    );
}

/** ssh's own failure as a reason, or undefined when the remote command ran. */
export function sshFailure(node: NodeConfig, run: RemoteRun): Finding | undefined {
    if (run.status !== SSH_ERROR_STATUS) return undefined;
    const words = lastLine(run.stderr) || "ssh failed without a message";
    if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i.test(run.stderr)) {
        return unchecked(
            node.name,
            "node-access",
            `REFUSED: ${node.address} did not present the host key pinned in nodes[].hostKey (${node.hostKey.split(" ")[0]}); nothing was run (ssh: ${words})`,
        );
    }
    return unchecked(node.name, "node-access", `could not reach ${node.sshUser}@${node.address}:${node.sshPort} (ssh: ${words})`);
}

/**
 * stale-rules-verify.sh (the program's own stale-rules-verify-<node> step) prints one JSON line:
 * ok; "stale" names each kind of kube-proxy state found (iptables-nft, ipvs, kube-ipvs0, ipsets,
 * nftables, ...) with details under "found"; "unverifiable" lists checks that could not run; "error"
 * when nothing could run.
 */
export function staleStateFindings(node: NodeConfig, run: RemoteRun, ctx: RepairContext): Finding[] {
    let summary: Record<string, unknown>;
    try {
        summary = JSON.parse(lastLine(run.stdout)) as Record<string, unknown>;
    } catch {
        return [unchecked(node.name, "kube-proxy-state", `the stale-rule check printed no summary (exit ${run.status}): ${lastLine(run.stderr)}`)];
    }
    if (summary.ok === true && run.status === 0) return [];
    if (typeof summary.error === "string") return [unchecked(node.name, "kube-proxy-state", `the stale-rule check could not run: ${summary.error}`)];
    const strings = (value: unknown): string[] => (Array.isArray(value) ? value.map((v) => (typeof v === "string" ? v : JSON.stringify(v))) : []);
    const stale = strings(summary.stale);
    const unverifiable = strings(summary.unverifiable);
    const findings: Finding[] = [];
    if (stale.length > 0 || unverifiable.length === 0) {
        const text = summary.found === undefined ? "" : JSON.stringify(summary.found);
        const found = text === "" ? "" : ` (${text.length > 400 ? `${text.slice(0, 400)}...` : text})`;
        findings.push(
            drift(
                node.name,
                "kube-proxy-state",
                `kube-proxy state is back: ${stale.join(", ") || "see the check's output"}${found}`,
                staleStateRepair(ctx, node.name),
            ),
        );
    }
    for (const reason of unverifiable) findings.push(unchecked(node.name, "kube-proxy-state", reason));
    return findings;
}

/** The records tproxy-drift-check.sh prints: tab-separated, the first field names the record. */
export function parseRecords(stdout: string): string[][] {
    return stdout
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => l.split("\t"));
}

/** Families whose diverting should be on: every diverted family in `all` mode, those whose VIP the node holds in `vip` mode. */
export function expectedActivation(config: MigrationConfig, held: ReadonlySet<NfFamily>): NfFamily[] {
    const families = divertedFamilies(nftRulesetInput(config));
    return config.tproxy.bindMode === "all" ? families : families.filter((f) => held.has(f));
}

/** The node's tproxy against what the program would push, from tproxy-drift-check.sh's records. */
export function tproxyFindings(config: MigrationConfig, node: NodeConfig, run: RemoteRun, ctx: RepairContext): Finding[] {
    const records = parseRecords(run.stdout);
    if (run.status !== 0 || !records.some((r) => r[0] === "active")) {
        return [unchecked(node.name, "tproxy-table", `the tproxy check did not finish (exit ${run.status}): ${lastLine(run.stderr)}`)];
    }
    const findings: Finding[] = [];
    const repair = tproxyRepair(ctx, node.name);
    const table = config.tproxy.tableName;

    const files = records.filter((r) => r[0] === "file" && r[1] !== "ok");
    if (files.length > 0) {
        const what = { missing: "missing", content: "content differs", mode: "mode or owner differs" } as Record<string, string>;
        findings.push(drift(node.name, "tproxy-files", files.map((r) => `${r[2]} ${what[r[1] ?? ""] ?? r[1]}`).join("; "), repair));
    }

    const tableState = records.find((r) => r[0] === "table");
    if (tableState?.[1] === "missing") findings.push(drift(node.name, "tproxy-table", `table inet ${table} is missing`, repair));
    else if (tableState?.[1] === "differs") {
        const diff = records.filter((r) => r[0] === "tablediff").map((r) => r.slice(1).join("\t").trim());
        findings.push(drift(node.name, "tproxy-table", `table inet ${table} differs from the rendered ruleset: ${diff.slice(0, 8).join(" | ")}`, repair));
    } else if (tableState?.[1] !== "ok") findings.push(unchecked(node.name, "tproxy-table", tableState?.slice(2).join(" ") || "no table record"));

    if (records.find((r) => r[0] === "routes")?.[1] !== "ok") {
        const detail = records.filter((r) => r[0] === "routesdetail").map((r) => r.slice(1).join(" "));
        findings.push(drift(node.name, "tproxy-routes", detail.join("; ") || "policy routes differ", repair));
    }

    // Only meaningful while the table (and so the set) is there; a missing table is reported above.
    const active = records.find((r) => r[0] === "active")?.[1] ?? "noset";
    if (active !== "noset") {
        const held = new Set(records.filter((r) => r[0] === "vip" && r[2] === "held").map((r) => r[1] as NfFamily));
        const want = expectedActivation(config, held);
        const have = active
            .split(",")
            .filter((f) => f !== "")
            .sort();
        if (want.join(",") !== have.join(",")) {
            const vipOf = (f: NfFamily) => (f === "ipv4" ? config.tproxy.vip4 : config.tproxy.vip6);
            const holds = divertedFamilies(nftRulesetInput(config)).map((f) => `${String(vipOf(f))} ${held.has(f) ? "held" : "not held"}`);
            findings.push(
                drift(
                    node.name,
                    "activation",
                    `diverting ${have.join(",") || "nothing"} but should divert ${want.join(",") || "nothing"} (bind mode ${config.tproxy.bindMode}; ${holds.join(", ")})`,
                    activationRepair(ctx, node),
                ),
            );
        }
    }
    return findings;
}
