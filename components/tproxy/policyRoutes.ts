import * as path from "node:path";
import type { Family } from "../config/addresses";
import type { TproxyConfig } from "../config/schema";
import { nodeScript } from "./nodeScripts";

/** Where the tproxy artifacts live on a node. Tests point every path into a scratch directory. */
export interface NodeLayout {
    /** Root-only directory with the lock, the recorded previous state and the revert machinery. */
    readonly stateDir: string;
    readonly rulesetPath: string;
    readonly routesScriptPath: string;
    /** The oneshot unit; its file name is the unit name. */
    readonly unitPath: string;
    readonly networkdDropInPath: string;
    readonly nftPath: string;
    readonly bashPath: string;
}

export const DEFAULT_NODE_LAYOUT: NodeLayout = {
    stateDir: "/var/lib/cilium-kpr-tproxy",
    rulesetPath: "/etc/cilium-kpr-tproxy/tproxy.nft",
    routesScriptPath: "/usr/local/lib/cilium-kpr-tproxy/policy-routes.sh",
    unitPath: "/etc/systemd/system/cilium-kpr-tproxy.service",
    networkdDropInPath: "/etc/systemd/networkd.conf.d/50-cilium-kpr-tproxy.conf",
    nftPath: "/usr/sbin/nft",
    bashPath: "/bin/bash",
};

/** fwmark -> table -> `local default dev lo`, one rule and one route per family. */
export interface PolicyRouteSpec {
    readonly mark: number;
    readonly table: number;
    readonly priority: number;
    readonly families: readonly Family[];
}

/** The families the proxy serves: one per configured VIP. */
export function policyRouteSpec(tproxy: TproxyConfig): PolicyRouteSpec {
    const families: Family[] = [];
    if (tproxy.vip4 !== undefined) families.push("ipv4");
    if (tproxy.vip6 !== undefined) families.push("ipv6");
    return { mark: tproxy.mark, table: tproxy.routeTable, priority: tproxy.rulePriority, families };
}

/** Mark as `ip rule` prints it (lowercase hex), which policy-routes.sh compares against. */
export function markText(mark: number): string {
    return `0x${mark.toString(16)}`;
}

/** The positional arguments MARK TABLE PRIORITY FAMILIES of policy-routes.sh. */
export function policyRouteArgs(spec: PolicyRouteSpec): [string, string, string, string] {
    if (!Number.isInteger(spec.mark) || spec.mark < 1 || spec.mark > 0xffffffff) throw new Error(`mark ${spec.mark} is not a 32-bit mark`);
    if (!Number.isInteger(spec.table) || spec.table < 1) throw new Error(`route table ${spec.table} is not a table number`);
    if (!Number.isInteger(spec.priority) || spec.priority < 1 || spec.priority > 32765) throw new Error(`rule priority ${spec.priority} is out of range`);
    const families = [...new Set(spec.families)].sort();
    if (families.length === 0) throw new Error("policy routes need at least one family (set tproxy.vip4 and/or tproxy.vip6)");
    return [markText(spec.mark), String(spec.table), String(spec.priority), families.join(",")];
}

export function unitNameOf(layout: NodeLayout): string {
    const name = path.posix.basename(layout.unitPath);
    if (!/^[A-Za-z0-9@_.-]+\.service$/.test(name)) throw new Error(`${layout.unitPath} does not name a .service unit`);
    return name;
}

export interface PolicyRoutesArtifacts {
    /** policy-routes.sh, installed at layout.routesScriptPath. */
    readonly script: string;
    readonly unit: string;
    readonly networkdDropIn: string;
}

/** What the boot unit loads besides the policy routes. */
export interface BootUnitTargets {
    /** The nft table the ruleset defines: its absence at start marks a node that restarted. */
    readonly tableName: string;
    /** The keepalived notify script, which loads the ruleset together with its activation; none: plain `nft -f`. */
    readonly activationScriptPath?: string;
}

/** tproxy-boot.sh, which tproxy-apply.sh installs into the state directory beside tproxy-lib.sh. */
export function bootScriptPath(layout: NodeLayout): string {
    return path.posix.join(layout.stateDir, "bin", "tproxy-boot.sh");
}

/**
 * The boot-time persistence of the tproxy data path, plus the networkd drop-in that stops
 * systemd-networkd from deleting our "foreign" ip rules. The unit is a oneshot whose ExecStart
 * (tproxy-boot.sh start) first reverts an apply that was never confirmed when the node restarted
 * inside its revert window, then brings the policy routes up and loads the table together with
 * its activation (this node's VIP presence) in one transaction; ExecStop takes the routes down
 * and switches diverting off.
 */
export function renderPolicyRoutes(spec: PolicyRouteSpec, layout: NodeLayout, targets: BootUnitTargets): PolicyRoutesArtifacts {
    const args = policyRouteArgs(spec).join(" ");
    const boot = (action: "start" | "stop") =>
        [
            layout.bashPath,
            bootScriptPath(layout),
            action,
            layout.stateDir,
            layout.rulesetPath,
            layout.routesScriptPath,
            targets.activationScriptPath ?? "-",
            targets.tableName,
            args,
        ].join(" ");
    const unit = `# Generated by cilium-kpr-migration; changes are overwritten on the next apply.
[Unit]
Description=cilium-kpr tproxy: nftables table and policy routes (fwmark ${markText(spec.mark)} -> table ${spec.table})
# After networkd: it may drop foreign rules while it configures links. After nftables.service:
# the stock /etc/nftables.conf starts with "flush ruleset", which would wipe our table.
After=network-online.target systemd-networkd.service nftables.service
Wants=network-online.target
# keepalived's notify switches diverting on in the table this unit loads: load it first. The
# unit decides activation from the VIPs present itself too, so either order converges.
Before=keepalived.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${boot("start")}
# Stopping takes the policy routes down and switches diverting off: traffic then passes directly.
# "-": after a boot-time revert of a first apply the script is gone and the stop has nothing to do.
ExecStop=-${boot("stop")}

[Install]
WantedBy=multi-user.target
`;
    const networkdDropIn = `# Generated by cilium-kpr-migration.
# systemd-networkd (>= 248) deletes ip rules it did not create whenever it (re)configures a link,
# which would silently remove the tproxy rule "fwmark ${markText(spec.mark)} lookup ${spec.table}".
# networkd reads this file when it starts; until its next restart the unit above and
# \`policy-routes.sh check\` are what notice and repair a removed rule.
[Network]
ManageForeignRoutingPolicyRules=no
`;
    return { script: nodeScript("policy-routes.sh"), unit, networkdDropIn };
}
