import { cidrContains, parseAddress, parseCidr } from "../config/addresses";

/**
 * Whether Cilium serves NodePorts on `address` once it is on one of Cilium's devices, given
 * cilium.nodePortAddresses (the agent's --nodeport-addresses). Cilium 1.19 marks an address for NodePort
 * when it lies in one of those CIDRs (pkg/datapath/tables/node_address.go, getAddressesFromDevice); with none
 * given, one address per device and family is used (the Kubernetes node IP where it is), never a VIP beside it.
 */
export function servesNodePortsOn(nodePortAddresses: readonly string[] | undefined, address: string): boolean {
    if (nodePortAddresses === undefined) return false;
    const ip = parseAddress(address);
    if (typeof ip === "string") return false;
    return nodePortAddresses.some((text) => {
        const cidr = parseCidr(text);
        return typeof cidr !== "string" && cidrContains(cidr, ip);
    });
}
