import type { MigrationConfig } from "../config/validate";
import type { NodeConfig } from "../config/schema";
import { ACTIVATION_SET } from "./nftRuleset";
import { markText } from "./policyRoutes";
import { scriptPath, scriptText } from "../commands/scripts";

/**
 * Where the notify script is installed. keepalived's enable_script_security refuses a script
 * unless it and every directory above it are root-owned and not group/world-writable:
 * install it as root:root with KEEPALIVED_NOTIFY_MODE into /etc/keepalived (root:root 0755).
 */
export const KEEPALIVED_NOTIFY_PATH = "/etc/keepalived/cilium-kpr-tproxy-notify.sh";
export const KEEPALIVED_NOTIFY_MODE = 0o755;
export const KEEPALIVED_NOTIFY_OWNER = "root:root";
/** Serialises notify calls; the apply step should hold it too while it reloads the table. */
export const KEEPALIVED_NOTIFY_LOCK_PATH = "/run/cilium-kpr-tproxy.lock";
/** The script as kept in the repo (parameters read from KPR_TPROXY_* environment variables). */
export const KEEPALIVED_NOTIFY_SOURCE = scriptPath("tproxy/keepalived-notify");

export interface KeepalivedNotifyOptions {
    /** Overrides KEEPALIVED_NOTIFY_LOCK_PATH (tests). */
    readonly lockPath?: string;
    /** Seconds a MASTER call waits for keepalived to add the VIPs (default 5). */
    readonly vipWaitSeconds?: number;
}

const PARAMETER_BLOCK = /# BEGIN PARAMETERS[^\n]*\n[\s\S]*?# END PARAMETERS\n/;
const SAFE_LITERAL = /^[A-Za-z0-9_.:@/-]*$/;

/** The installed script: the repo file with its parameter block replaced by literals. */
export function renderKeepalivedNotify(config: MigrationConfig, options: KeepalivedNotifyOptions = {}): string {
    const { tproxy } = config;
    const parameters: ReadonlyArray<readonly [string, string]> = [
        ["TABLE", tproxy.tableName],
        ["ACTIVATION_SET", ACTIVATION_SET],
        ["VRRP_INSTANCE", tproxy.vrrpInstance],
        ["BIND_MODE", tproxy.bindMode],
        ["VIP4", tproxy.vip4 ?? ""],
        ["VIP6", tproxy.vip6 ?? ""],
        ["PROXY_UNIT", tproxy.proxyUnit ?? ""],
        ["LOCK_FILE", options.lockPath ?? KEEPALIVED_NOTIFY_LOCK_PATH],
        ["VIP_WAIT_SECONDS", String(options.vipWaitSeconds ?? 5)],
        // A family diverts only while our policy rule and local route for it are present.
        ["MARK", markText(tproxy.mark)],
        ["ROUTE_TABLE", String(tproxy.routeTable)],
        ["RULE_PRIORITY", String(tproxy.rulePriority)],
    ];
    for (const [name, value] of parameters) {
        // Config validation already restricts these; refuse anything that would need quoting.
        if (!SAFE_LITERAL.test(value)) throw new Error(`notify script parameter ${name}=${JSON.stringify(value)} is not a plain literal`);
    }
    const source = scriptText("tproxy/keepalived-notify");
    if (!PARAMETER_BLOCK.test(source)) throw new Error(`${KEEPALIVED_NOTIFY_SOURCE} lost its parameter block`);
    const block = [
        "# BEGIN PARAMETERS (baked in by renderKeepalivedNotify from the validated stack config)",
        ...parameters.map(([name, value]) => `${name}='${value}'`),
        "# END PARAMETERS",
        "",
    ].join("\n");
    return source.replace(PARAMETER_BLOCK, block);
}

/** The notify lines keepalived needs inside the VRRP instance; STATE is passed explicitly. */
export function notifyLines(config: MigrationConfig, scriptPath = KEEPALIVED_NOTIFY_PATH): string[] {
    const instance = config.tproxy.vrrpInstance;
    return (["master", "backup", "fault", "stop"] as const).map((event) => `notify_${event} "${scriptPath} INSTANCE ${instance} ${event.toUpperCase()}"`);
}

export const TRACK_SCRIPT_NAME = "cilium_kpr_tproxy_proxy";

/**
 * What an operator adds to /etc/keepalived/keepalived.conf on `node`. We do not own that file.
 * With tproxy.proxyUnit set, a track_script puts a node whose proxy unit FAILED into FAULT, so the
 * VIP (and with it diverting) moves to a node with a working proxy. It checks is-failed, not
 * is-active: on BACKUP nodes the unit is stopped on purpose and they must stay eligible.
 */
export function keepalivedSnippet(config: MigrationConfig, node: NodeConfig): string {
    const { tproxy } = config;
    const iface = node.vrrpInterface === undefined ? "" : ` (interface ${node.vrrpInterface})`;
    const lines = [
        `# cilium-kpr tproxy activation for node ${node.name}: merge into /etc/keepalived/keepalived.conf,`,
        `# then reload keepalived. Needs ${KEEPALIVED_NOTIFY_PATH} installed ${KEEPALIVED_NOTIFY_OWNER} mode ${KEEPALIVED_NOTIFY_MODE.toString(8)}.`,
        "global_defs {",
        "    script_user root",
        "    enable_script_security",
        "}",
    ];
    if (tproxy.proxyUnit !== undefined) {
        lines.push(
            `vrrp_script ${TRACK_SCRIPT_NAME} {`,
            `    script "/bin/sh -c '! /bin/systemctl is-failed --quiet ${tproxy.proxyUnit}'"`,
            "    interval 2",
            "    fall 2",
            "    rise 2",
            "}",
        );
    }
    lines.push(
        `# inside your existing vrrp_instance ${tproxy.vrrpInstance}${iface}, which holds ${[tproxy.vip4, tproxy.vip6].filter((v) => v !== undefined).join(" and ")}:`,
    );
    lines.push(`vrrp_instance ${tproxy.vrrpInstance} {`);
    lines.push(...notifyLines(config).map((l) => `    ${l}`));
    if (tproxy.proxyUnit !== undefined) lines.push("    track_script {", `        ${TRACK_SCRIPT_NAME}`, "    }");
    lines.push("}");
    return `${lines.join("\n")}\n`;
}
