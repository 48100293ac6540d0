import type { NodeConfig } from "../config/schema";

/**
 * How the drift check reaches a node with OpenSSH, pinned the way the program's connection is
 * (components/commands/nodeConnection.ts): pulumi-command parses nodes[].hostKey with
 * ssh.ParseAuthorizedKey and accepts only that key (ssh.FixedHostKey), offering only its algorithm
 * (design.md, "pulumi-command 1.2.1"). Here a known_hosts holding exactly that key, with
 * StrictHostKeyChecking=yes and HostKeyAlgorithms set to the key's type, does the same
 * (ssh_config(5): StrictHostKeyChecking, UserKnownHostsFile, GlobalKnownHostsFile, HostKeyAlgorithms).
 */

/** The known_hosts line for the node: `[address]:port` unless the port is 22 (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT). */
export function knownHostsLine(node: NodeConfig): string {
    const host = node.sshPort === 22 ? node.address : `[${node.address}]:${node.sshPort}`;
    return `${host} ${node.hostKey}\n`;
}

export function hostKeyType(node: NodeConfig): string {
    return node.hostKey.split(" ")[0]!;
}

/** Seconds to wait for the TCP connection, as the program's perDialTimeout. */
export const CONNECT_TIMEOUT_SECONDS = 15;

/** ssh's argv (without the program name) to run `command` on the node as the configured user. */
export function sshArgs(node: NodeConfig, files: { readonly knownHosts: string; readonly privateKey: string }, command: string): string[] {
    const options = [
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=yes",
        `UserKnownHostsFile=${files.knownHosts}`,
        "GlobalKnownHostsFile=/dev/null",
        `HostKeyAlgorithms=${hostKeyType(node)}`,
        "UpdateHostKeys=no",
        "BatchMode=yes",
        `ConnectTimeout=${CONNECT_TIMEOUT_SECONDS}`,
        "ServerAliveInterval=15",
        "ServerAliveCountMax=4",
    ];
    return [
        "-F",
        "/dev/null",
        "-i",
        files.privateKey,
        ...options.flatMap((o) => ["-o", o]),
        "-p",
        String(node.sshPort),
        "-l",
        node.sshUser,
        node.address,
        command,
    ];
}
