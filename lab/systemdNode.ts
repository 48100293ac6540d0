import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { hostToolsMissing } from "./hostTools";
import { run } from "./netns";

/**
 * Lab nodes that are real Debian bookworm systems with systemd as PID 1, booted with
 * systemd-nspawn into a network namespace the test created.
 *
 * Root filesystem: built by lab/node-rootfs.sh with mmdebstrap from Debian's packages
 * and cached under /var/cache/cilium-kpr (`.ci/run` builds it before `npm test`). Every node is an
 * overlayfs whose read-only lower layer is that cached tree and whose upper layer is the node's own
 * persistent directory: files written and units enabled on the node survive a "reboot".
 *
 * Booting: `systemd-nspawn --boot --network-namespace-path=/run/netns/NS --register=no --keep-unit`.
 * This host's PID 1 is not systemd, so there is no systemd-machined to register with and no bus
 * to create a scope on (without --keep-unit nspawn stops with "Failed to open system bus");
 * for the same reason `machinectl shell` and `systemd-run -M` cannot reach the container. Commands
 * run inside with `nsenter -t LEADER -a` (every namespace of the container's PID 1, found as the
 * child of systemd-nspawn, which is its subreaper). nspawn keeps CAP_NET_ADMIN only with private
 * networking of its own making (systemd-nspawn(1), "--capability="), so it is granted explicitly.
 *
 * Power off: SIGTERM to systemd-nspawn, which asks the container's systemd to power off cleanly
 * (systemd-nspawn(1), "--kill-signal=": SIGRTMIN+4 for --boot), running every unit's ExecStop.
 * A network namespace outlives the container that joined it, so a "reboot" on the same namespace
 * would keep nft tables, ip rules and addresses that a real reboot clears: the lab (SystemdLab)
 * deletes the node's namespace and builds a fresh one before booting again.
 */

const SCRIPT = path.join(__dirname, "node-rootfs.sh");
const PATH_IN_NODE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The cached root filesystem directory node-rootfs.sh builds (it may not exist yet). */
export function nodeRootfsPath(): string {
    return run("bash", [SCRIPT, "path"]).trim();
}

/**
 * Like hostToolsMissing, plus the cached root filesystem: a reason to skip (laptop), or false.
 * Under CI=true a missing prerequisite throws, so the suite fails instead of skipping.
 */
export function systemdNodesMissing(): string | false {
    const tools = hostToolsMissing(["systemd-nspawn", "nsenter", "mount", "umount", "ip", "ssh", "ssh-keygen", "python3", "sha256sum"]);
    if (tools !== false) return tools;
    let rootfs: string;
    try {
        rootfs = nodeRootfsPath();
    } catch (error) {
        rootfs = `(${String(error)})`;
    }
    if (existsSync(path.join(rootfs, "usr/lib/systemd/systemd"))) return false;
    const reason = `the systemd lab root filesystem ${rootfs} is not built: run \`bash lab/node-rootfs.sh build\``;
    if (process.env.CI === "true") throw new Error(`CI=true but this test cannot run: ${reason} (.ci/run must build it)`);
    return reason;
}

export interface ExecResult {
    readonly status: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface BootResult {
    /** `systemctl is-system-running --wait`: "running", or "degraded" when a unit failed. */
    readonly state: string;
    /** From spawning systemd-nspawn to the end of start-up. */
    readonly elapsedMs: number;
}

/** One lab node: a persistent overlay directory, booted into a given network namespace. */
export class SystemdNode {
    readonly name: string;
    /** The machine name nspawn uses; unique per node object so concurrent runs never collide. */
    readonly machine: string;
    readonly dir: string;
    /** The node's root as seen from the host (the mounted overlay). */
    readonly root: string;
    private nspawn: ChildProcess | undefined;
    private leader: number | undefined;
    private mounted = false;

    constructor(name: string, rootfs: string = nodeRootfsPath()) {
        if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`node name ${name} must be a hostname`);
        this.name = name;
        this.machine = `kpr-${name}-${randomBytes(3).toString("hex")}`;
        this.dir = mkdtempSync(`/tmp/${this.machine}-`);
        this.root = path.join(this.dir, "merged");
        for (const d of ["upper", "work", "merged"]) mkdirSync(path.join(this.dir, d));
        run("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${rootfs},upperdir=${this.dir}/upper,workdir=${this.dir}/work`, this.root]);
        this.mounted = true;
    }

    /** Writes a file into the node's persistent tree (creating parent directories). */
    writeFile(file: string, content: string, mode = 0o644): void {
        if (!file.startsWith("/")) throw new Error(`${file} must be absolute`);
        const target = path.join(this.root, file);
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, content);
        chmodSync(target, mode);
    }

    readFile(file: string): string {
        return readFileSync(path.join(this.root, file), "utf8");
    }

    get running(): boolean {
        return this.nspawn !== undefined && this.nspawn.exitCode === null && this.nspawn.signalCode === null;
    }

    /** Boots the node into /run/netns/NETNS and waits (bounded) until start-up finished. */
    async boot(netns: string, timeoutMs = 30_000): Promise<BootResult> {
        if (this.running) throw new Error(`${this.name} is already running`);
        const started = Date.now();
        const log = openSync(path.join(this.dir, "console.log"), "a");
        // setpriv --pdeathsig: if the test process dies, nspawn gets SIGTERM and powers the node off.
        this.nspawn = spawn(
            "setpriv",
            [
                "--pdeathsig=SIGTERM",
                "--",
                "systemd-nspawn",
                "--quiet",
                "--boot",
                `--directory=${this.root}`,
                `--machine=${this.machine}`,
                `--hostname=${this.name}`,
                "--register=no",
                "--keep-unit",
                `--network-namespace-path=/run/netns/${netns}`,
                "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
                "--console=passive",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
            ],
            { stdio: ["ignore", log, log], env: { ...process.env, SYSTEMD_LOG_LEVEL: "warning" } },
        );
        closeSync(log);
        this.leader = undefined;
        const deadline = started + timeoutMs;
        while (this.leader === undefined) {
            if (!this.running) throw new Error(`${this.name}: systemd-nspawn exited early: ${this.consoleTail()}`);
            if (Date.now() > deadline) throw new Error(`${this.name}: no container init after ${timeoutMs} ms: ${this.consoleTail()}`);
            const child = spawnSync("pgrep", ["-P", String(this.nspawn.pid)], { encoding: "utf8" })
                .stdout.trim()
                .split("\n")[0];
            if (child && commandLine(child).startsWith("/usr/lib/systemd/systemd")) this.leader = Number(child);
            else await sleep(50);
        }
        let last = "";
        for (;;) {
            const remaining = deadline - Date.now();
            if (remaining <= 0) throw new Error(`${this.name}: did not finish start-up within ${timeoutMs} ms (last: ${last}): ${this.consoleTail()}`);
            const r = this.try("systemctl is-system-running --wait", Math.max(1000, remaining));
            last = `${r.status} ${r.stdout.trim()} ${r.stderr.trim()}`;
            const state = r.stdout.trim();
            if (state === "running" || state === "degraded") return { state, elapsedMs: Date.now() - started };
            // "Failed to connect to bus" while systemd is still setting up its private socket.
            await sleep(100);
        }
    }

    /** Runs a bash script inside the node as root (login-like PATH, empty environment). */
    try(script: string, timeoutMs = 60_000, input?: string): ExecResult {
        if (this.leader === undefined || !this.running) throw new Error(`${this.name} is not running`);
        const r = spawnSync(
            "nsenter",
            [
                "-t",
                String(this.leader),
                "-a",
                "--",
                "env",
                "-i",
                `PATH=${PATH_IN_NODE}`,
                "LANG=C.UTF-8",
                "/bin/bash",
                "--norc",
                "--noprofile",
                "-uo",
                "pipefail",
                "-c",
                script,
            ],
            { encoding: "utf8", input, timeout: timeoutMs, killSignal: "SIGKILL" },
        );
        return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
    }

    /** Like try() but throws on a non-zero exit, with the script's stderr. */
    sh(script: string, timeoutMs?: number, input?: string): string {
        const r = this.try(`set -e\n${script}`, timeoutMs, input);
        if (r.status !== 0) throw new Error(`${this.name}: \`${script}\` exited ${r.status}: ${r.stderr}${r.stdout}`);
        return r.stdout;
    }

    /** Clean power-off (every unit's ExecStop runs); returns how long it took. */
    async powerOff(timeoutMs = 30_000): Promise<number> {
        const child = this.nspawn;
        if (child === undefined || !this.running) return 0;
        const started = Date.now();
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        await exited;
        clearTimeout(timer);
        this.leader = undefined;
        if (Date.now() - started >= timeoutMs) throw new Error(`${this.name}: did not power off within ${timeoutMs} ms (killed)`);
        return Date.now() - started;
    }

    consoleTail(lines = 30): string {
        try {
            return readFileSync(path.join(this.dir, "console.log"), "utf8").split("\n").slice(-lines).join("\n");
        } catch {
            return "(no console log)";
        }
    }

    /** Kills the container if it still runs, unmounts the overlay, deletes the node's directory. */
    async dispose(): Promise<void> {
        if (this.running) {
            try {
                await this.powerOff(10_000);
            } catch {
                /* killed */
            }
        }
        if (this.mounted) {
            if (spawnSync("umount", [this.root]).status !== 0) spawnSync("umount", ["--lazy", this.root]);
            this.mounted = false;
        }
        rmSync(this.dir, { recursive: true, force: true });
        // nspawn leaves this (empty) directory behind when /run is not a tmpfs, as on this host.
        rmSync(`/run/systemd/nspawn/propagate/${this.machine}`, { recursive: true, force: true });
    }
}

/** /proc/PID/cmdline, or "" once the process is gone (nspawn's short-lived outer child). */
function commandLine(pid: string): string {
    try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
        return "";
    }
}
