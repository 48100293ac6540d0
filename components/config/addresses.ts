import * as ipaddr from "ipaddr.js";

export type Family = "ipv4" | "ipv6";

export interface Cidr {
    readonly text: string;
    readonly family: Family;
    readonly address: ipaddr.IPv4 | ipaddr.IPv6;
    readonly prefix: number;
}

/**
 * Why an address text is not in the one form this program reads, or undefined if it is: IPv4 as four
 * decimal octets without leading zeros. ipaddr.js (like inet_aton) also accepts octal ("027" is 23),
 * hex ("0xac") and shortened ("10") forms, so `172.027.0.0/16` would silently become 172.23.0.0/16;
 * an IPv4 tail of an IPv6 address ("::ffff:172.027.0.1") is held to the same rule.
 */
function nonDecimalProblem(text: string): string | undefined {
    const ipv4Part = text.includes(":") ? (text.includes(".") ? text.slice(text.lastIndexOf(":") + 1) : undefined) : text;
    if (ipv4Part === undefined || ipaddr.IPv4.isValidFourPartDecimal(ipv4Part)) return undefined;
    const readAs = ipaddr.IPv4.isValid(ipv4Part) ? ` (other tools would read it as ${ipaddr.IPv4.parse(ipv4Part).toString()})` : "";
    const octets = ipv4Part.split(".");
    const decimal = octets.length === 4 && octets.every((o) => /^[0-9]+$/.test(o)) ? octets.map((o) => String(Number(o))).join(".") : undefined;
    const suggestion = decimal !== undefined && ipaddr.IPv4.isValidFourPartDecimal(decimal) ? `; did you mean ${decimal}?` : "";
    return `"${text}" must be written as four plain decimal numbers: a leading zero makes a number octal and 0x hex${readAs}${suggestion}`;
}

/** Whether a text is meant as an IP address (any form ipaddr.js or inet_aton accepts), not a DNS name. */
export function looksLikeAddress(text: string): boolean {
    return ipaddr.isValid(text) || /^[0-9.]+$/.test(text);
}

/** Parses "a.b.c.d/n" or "x::/n"; returns an error message instead of throwing. */
export function parseCidr(text: string): Cidr | string {
    const slash = text.indexOf("/");
    const addressText = slash < 0 ? text : text.slice(0, slash);
    const prefixText = slash < 0 ? "" : text.slice(slash + 1);
    if (slash < 0 || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || !ipaddr.isValid(addressText)) {
        return `"${text}" is not a CIDR (expected address/prefix, e.g. 10.0.0.0/8 or fd00::/64)`;
    }
    const notDecimal = nonDecimalProblem(addressText);
    if (notDecimal !== undefined) return notDecimal;
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
    const notDecimal = nonDecimalProblem(text);
    if (notDecimal !== undefined) return notDecimal;
    return ipaddr.parse(text);
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
