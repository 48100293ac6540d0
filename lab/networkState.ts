/** What the tproxy apply may change in a node's kernel network state, as text. */
export interface NetworkState {
    readonly ruleset: string;
    readonly rules4: string;
    readonly rules6: string;
    /** The policy routing table's routes, IPv4 then IPv6 (empty when the table does not exist). */
    readonly routeTable: string;
}

/**
 * Reads NetworkState through `sh` (a command runner inside the node). `nftList` says how the
 * ruleset is listed: `-a` shows rule handles, so a re-created rule reads differently; `-s` leaves
 * counter values out.
 */
export function networkState(sh: (script: string) => string, nftList: "-a" | "-s", routeTable: number): NetworkState {
    return {
        ruleset: sh(`nft ${nftList} list ruleset`),
        rules4: sh("ip -4 rule show"),
        rules6: sh("ip -6 rule show"),
        routeTable: sh(`{ ip -4 route show table ${routeTable} || true; ip -6 route show table ${routeTable} || true; } 2>/dev/null`),
    };
}
