import type { Family } from "./addresses";
import type { TproxyConfig } from "./schema";

/*
 * The policy routes the tproxy needs, derived from the tproxy config alone: both the node bundle
 * (components/tproxy/) and the node preflight (components/preflight/) read it.
 */

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
