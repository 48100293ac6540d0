import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { link, NetNs, run } from "./netns";
import { sshRun, type SshResult } from "./ssh";
import { NODE_FILES } from "../components/tproxy/nodeBundle";
import { DEFAULT_NODE_LAYOUT, type NodeLayout } from "../components/tproxy/nodeLayout";

export interface SshOptions {
    /** known_hosts file to pin against (defaults to the lab's real host key). */
    readonly knownHosts?: string;
    /** Hard limit for the whole ssh run. */
    readonly timeoutMs?: number;
    /** `-o` options placed before the lab's defaults (ssh keeps the first value given for an option). */
    readonly options?: readonly string[];
}

/** Which host key the lab's sshd presents. */
export type LabHostKey = "host_key" | "other_host_key";

/** The TEST-NET-1 addresses the lab assigns inside its own namespaces. */
export const LAB_CLIENT_ADDRESS = "192.0.2.1";
export const LAB_NODE_ADDRESS = "192.0.2.2";

/**
 * A real sshd in a "node" namespace and an ssh client in a "client" namespace, joined by a
 * veth pair on 192.0.2.0/24. Host and client keys are generated per lab; the client pins the
 * host key (StrictHostKeyChecking=yes, its own known_hosts) and logs in as root with a key.
 */
export class SshLab {
    readonly client: NetNs;
    readonly node: NetNs;
    /** Scratch directory (keys, sshd config, and the node's file tree under root/). */
    readonly dir: string;
    /** Where the "node" keeps its files: tests point the NodeLayout here. */
    readonly root: string;
    readonly knownHosts: string;
    /** A known_hosts that pins a different key for the node's address. */
    readonly wrongKnownHosts: string;
    /** The public host keys ("ssh-ed25519 AAAA..."), as a stack's nodes[].hostKey holds them. */
    readonly publicKey: Readonly<Record<LabHostKey, string>>;
    private readonly clientKey: string;
    private sshd: ChildProcess | undefined;
    private createdPrivsepDir = false;

    constructor() {
        this.dir = mkdtempSync(path.join(tmpdir(), "kpr-sshlab-"));
        this.root = path.join(this.dir, "root");
        this.knownHosts = path.join(this.dir, "known_hosts");
        this.wrongKnownHosts = path.join(this.dir, "known_hosts.wrong");
        this.clientKey = path.join(this.dir, "client_key");
        this.client = new NetNs("sshc");
        this.node = new NetNs("sshn");
        try {
            link(this.client, this.node, "eth0", "eth0");
            this.client.sh(`ip addr add ${LAB_CLIENT_ADDRESS}/24 dev eth0`);
            this.node.sh(`ip addr add ${LAB_NODE_ADDRESS}/24 dev eth0`);
            for (const name of ["host_key", "other_host_key", "client_key"]) {
                run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `kpr-lab-${name}`, "-f", path.join(this.dir, name)]);
            }
            const pinned = (file: string) => readFileSync(file, "utf8").trim().split(" ").slice(0, 2).join(" ");
            this.publicKey = {
                host_key: pinned(path.join(this.dir, "host_key.pub")),
                other_host_key: pinned(path.join(this.dir, "other_host_key.pub")),
            };
            writeFileSync(this.knownHosts, `${LAB_NODE_ADDRESS} ${this.publicKey.host_key}\n`);
            writeFileSync(this.wrongKnownHosts, `${LAB_NODE_ADDRESS} ${this.publicKey.other_host_key}\n`);
            writeFileSync(path.join(this.dir, "authorized_keys"), readFileSync(`${this.clientKey}.pub`, "utf8"), { mode: 0o600 });
            for (const key of ["host_key", "other_host_key"] as const)
                writeFileSync(
                    path.join(this.dir, `sshd_config.${key}`),
                    [
                        `ListenAddress ${LAB_NODE_ADDRESS}:22`,
                        `HostKey ${path.join(this.dir, key)}`,
                        `PidFile ${path.join(this.dir, "sshd.pid")}`,
                        `AuthorizedKeysFile ${path.join(this.dir, "authorized_keys")}`,
                        "PermitRootLogin prohibit-password",
                        "PubkeyAuthentication yes",
                        "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no",
                        "UsePAM no",
                        "StrictModes no",
                        "LogLevel ERROR",
                        "",
                    ].join("\n"),
                );
            mkdirSync(this.root, { mode: 0o755 });
        } catch (error) {
            this.dispose();
            throw error;
        }
    }

    /** Starts sshd presenting `hostKey` and waits (bounded) until a login pinned to that key works. */
    async start(hostKey: LabHostKey = "host_key"): Promise<void> {
        if (!existsSync("/run/sshd")) {
            // sshd's privilege-separation directory; Debian creates it at service start.
            mkdirSync("/run/sshd", { mode: 0o755 });
            this.createdPrivsepDir = true;
        }
        this.sshd = spawn("ip", ["netns", "exec", this.node.name, "/usr/sbin/sshd", "-D", "-e", "-f", path.join(this.dir, `sshd_config.${hostKey}`)], {
            stdio: ["ignore", "ignore", "pipe"],
        });
        let log = "";
        this.sshd.stderr?.on("data", (chunk: Buffer) => {
            log += chunk.toString();
        });
        const deadline = Date.now() + 10_000;
        for (;;) {
            const probe = this.ssh("true", { timeoutMs: 3000, knownHosts: hostKey === "host_key" ? this.knownHosts : this.wrongKnownHosts });
            if (probe.status === 0) return;
            if (Date.now() > deadline) throw new Error(`sshd did not accept a pinned login within 10 s: ${probe.stderr}\nsshd: ${log}`);
            await sleep(200);
        }
    }

    /** Stops sshd and waits (bounded) until it has exited. */
    async stop(): Promise<void> {
        const sshd = this.sshd;
        if (!sshd || sshd.exitCode !== null || sshd.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => sshd.once("exit", () => resolve()));
        sshd.kill("SIGTERM");
        await Promise.race([exited, sleep(5000)]);
    }

    /** Runs `command` on the node through a fresh ssh connection from the client namespace. */
    ssh(command: string, options: SshOptions = {}): SshResult {
        return sshRun(
            {
                from: this.client,
                identity: this.clientKey,
                knownHosts: options.knownHosts ?? this.knownHosts,
                address: LAB_NODE_ADDRESS,
                connectTimeoutSeconds: 2,
                serverAliveCountMax: 2,
                ...(options.options === undefined ? {} : { options: options.options }),
                timeoutMs: options.timeoutMs ?? 60_000,
            },
            command,
        );
    }

    dispose(): void {
        if (this.sshd && this.sshd.exitCode === null) this.sshd.kill("SIGKILL");
        this.node.dispose();
        this.client.dispose();
        rmSync(this.dir, { recursive: true, force: true });
        if (this.createdPrivsepDir) {
            try {
                rmdirSync("/run/sshd");
            } catch {
                /* another sshd uses it now */
            }
        }
    }
}

/**
 * The product's node layout with the state directory and every file of the bundle (NODE_FILES)
 * moved under a lab root, so a lab node's files never touch the host's /etc.
 */
export function layoutUnder(root: string): NodeLayout {
    const under = (p: string) => path.join(root, p);
    return {
        ...DEFAULT_NODE_LAYOUT,
        stateDir: under(DEFAULT_NODE_LAYOUT.stateDir),
        ...Object.fromEntries(NODE_FILES.map((file) => [file.path, under(DEFAULT_NODE_LAYOUT[file.path])])),
    };
}
