import * as ipaddr from "ipaddr.js";

export type Family = "ipv4" | "ipv6";

export interface Cidr {
    readonly text: string;
    readonly family: Family;
    readonly address: ipaddr.IPv4 | ipaddr.IPv6;
    readonly prefix: number;
}

/** Parses "a.b.c.d/n" or "x::/n"; returns an error message instead of throwing. */
export function parseCidr(text: string): Cidr | string {
    let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
        parsed = ipaddr.parseCIDR(text);
    } catch {
        return `"${text}" is not a CIDR (expected address/prefix, e.g. 10.0.0.0/8 or fd00::/64)`;
    }
    const [address, prefix] = parsed;
    const family: Family = address.kind();
    const network = family === "ipv4" ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
    if (network.toString() !== address.toString()) {
        return `"${text}" has host bits set; did you mean ${network.toString()}/${prefix}?`;
    }
    return { text: `${address.toString()}/${prefix}`, family, address, prefix };
}

/** Parses a plain IP address literal (no prefix). */
export function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | string {
    if (!ipaddr.isValid(text) || text.includes("/")) {
        return `"${text}" is not an IP address`;
    }
    // ipaddr.isValid accepts legacy forms like "10" or "0x0a.0.0.1"; insist on the canonical ones.
    const address = ipaddr.parse(text);
    if (address.kind() === "ipv4" && !ipaddr.IPv4.isValidFourPartDecimal(text)) {
        return `"${text}" is not a dotted-quad IPv4 address`;
    }
    return address;
}

export function cidrContains(outer: Cidr, address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    if (outer.family !== address.kind()) return false;
    return address.match([outer.address, outer.prefix] as [ipaddr.IPv4 | ipaddr.IPv6, number]);
}

export function cidrCovers(outer: Cidr, inner: Cidr): boolean {
    return outer.family === inner.family && outer.prefix <= inner.prefix && cidrContains(outer, inner.address);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
    return cidrCovers(a, b) || cidrCovers(b, a);
}
