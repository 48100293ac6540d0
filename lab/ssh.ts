import { spawnSync } from "node:child_process";
import type { NetNs } from "./netns";

export interface SshResult {
    readonly status: number;
    readonly stdout: string;
    readonly stderr: string;
    readonly elapsedMs: number;
}

export interface SshLogin {
    /** The namespace ssh runs in (the only place that reaches the lab node). */
    readonly from: NetNs;
    /** The client's private key file. */
    readonly identity: string;
    /** The known_hosts file the host key is pinned against. */
    readonly knownHosts: string;
    /** The node's address; the login is root@address. */
    readonly address: string;
    readonly connectTimeoutSeconds: number;
    /** With ServerAliveInterval=1: how many missed keepalives end the session. */
    readonly serverAliveCountMax: number;
    /** `-o` options placed before the lab's defaults (ssh keeps the first value given for an option). */
    readonly options?: readonly string[];
    /** Hard limit for the whole ssh run (then SIGKILL). */
    readonly timeoutMs: number;
}

/**
 * `command` on a lab node through a fresh ssh connection, as remote.Command makes one: no config
 * file, key login as root, the host key pinned (StrictHostKeyChecking=yes, only our known_hosts),
 * never interactive.
 */
export function sshRun(login: SshLogin, command: string): SshResult {
    const started = Date.now();
    const r = spawnSync(
        "ip",
        [
            "netns",
            "exec",
            login.from.name,
            "ssh",
            "-F",
            "/dev/null",
            ...(login.options ?? []).flatMap((o) => ["-o", o]),
            "-i",
            login.identity,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            `UserKnownHostsFile=${login.knownHosts}`,
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "BatchMode=yes",
            "-o",
            `ConnectTimeout=${login.connectTimeoutSeconds}`,
            "-o",
            "ServerAliveInterval=1",
            "-o",
            `ServerAliveCountMax=${login.serverAliveCountMax}`,
            `root@${login.address}`,
            command,
        ],
        { encoding: "utf8", timeout: login.timeoutMs, killSignal: "SIGKILL" },
    );
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", elapsedMs: Date.now() - started };
}
