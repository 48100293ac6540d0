import { parseCidr, cidrCovers, type Cidr } from "../config/addresses";
import type { TproxyConfig } from "../config/schema";

/**
 * Destinations a transparent proxy must never take over: "this network", private and
 * shared address space, loopback, link-local, documentation, benchmarking, multicast and
 * reserved ranges (the reserved_ip set of the reference runbook, seed 000).
 */
export const DEFAULT_RESERVED_V4: readonly string[] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
];

export const DEFAULT_RESERVED_V6: readonly string[] = [
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

export interface FamilyCidrs {
    readonly v4: readonly string[];
    readonly v6: readonly string[];
}

/**
 * The reserved destinations for one tproxy config: `reserved.v4`/`reserved.v6` replace the
 * defaults of their family (tests route to TEST-NET addresses), `extraReserved` adds to them.
 */
export function reservedDestinations(tproxy: Pick<TproxyConfig, "reserved" | "extraReserved">): FamilyCidrs {
    const base = {
        v4: tproxy.reserved.v4 ?? DEFAULT_RESERVED_V4,
        v6: tproxy.reserved.v6 ?? DEFAULT_RESERVED_V6,
    };
    const extra = splitByFamily(tproxy.extraReserved);
    return { v4: minimalCover([...base.v4, ...extra.v4]), v6: minimalCover([...base.v6, ...extra.v6]) };
}

/** Sorts CIDRs into their family; texts are already validated CIDRs. */
export function splitByFamily(texts: readonly string[]): FamilyCidrs {
    const parsed = texts.map(mustParse);
    return {
        v4: parsed.filter((c) => c.family === "ipv4").map((c) => c.text),
        v6: parsed.filter((c) => c.family === "ipv6").map((c) => c.text),
    };
}

/**
 * Drops duplicates and ranges covered by another one, keeping the first-seen order.
 * The set is declared auto-merge too; doing it here keeps the rendered file stable and
 * readable when config lists overlapping ranges.
 */
export function minimalCover(texts: readonly string[]): string[] {
    const cidrs = texts.map(mustParse);
    const kept: Cidr[] = [];
    cidrs.forEach((candidate, i) => {
        const coveredByOther = cidrs.some((other, j) => j !== i && cidrCovers(other, candidate) && (other.prefix < candidate.prefix || j < i));
        if (!coveredByOther) kept.push(candidate);
    });
    return kept.map((c) => c.text);
}

function mustParse(text: string): Cidr {
    const parsed = parseCidr(text);
    if (typeof parsed === "string") throw new Error(`not a validated CIDR: ${parsed}`);
    return parsed;
}
