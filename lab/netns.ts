import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/** Runs a command and returns stdout; throws with stderr on failure. */
export function run(command: string, args: readonly string[], input?: string): string {
    const result = spawnSync(command, args, { input, encoding: "utf8" });
    if (result.status !== 0) {
        throw new Error(`${command} ${args.join(" ")} exited ${result.status}: ${result.stderr}`);
    }
    return result.stdout;
}

/**
 * A network namespace owned by one test. Names carry a random suffix so concurrent or
 * interrupted runs never collide; dispose() deletes it (and every veth end inside it).
 */
export class NetNs {
    readonly name: string;
    constructor(role: string) {
        this.name = `kpr-${role}-${randomBytes(3).toString("hex")}`;
        run("ip", ["netns", "add", this.name]);
        this.sh("ip link set lo up");
    }
    /** Runs a bash snippet inside the namespace and returns stdout. */
    sh(script: string, input?: string): string {
        return run("ip", ["netns", "exec", this.name, "bash", "-euo", "pipefail", "-c", script], input);
    }
    /** Like sh() but returns the exit status and output instead of throwing. */
    try(script: string, input?: string): { status: number; stdout: string; stderr: string } {
        const r = spawnSync("ip", ["netns", "exec", this.name, "bash", "-uo", "pipefail", "-c", script], { input, encoding: "utf8" });
        return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    }
    dispose(): void {
        try {
            execFileSync("ip", ["netns", "pids", this.name], { encoding: "utf8" })
                .split("\n")
                .filter(Boolean)
                .forEach((pid) => {
                    try {
                        process.kill(Number(pid), "SIGKILL");
                    } catch {
                        /* gone */
                    }
                });
        } catch {
            /* namespace already gone */
        }
        spawnSync("ip", ["netns", "del", this.name]);
    }
}

/** Connects two namespaces with a veth pair; returns the interface names (a side, b side). */
export function link(a: NetNs, b: NetNs, aIf: string, bIf: string): void {
    const tmpA = `v${randomBytes(4).toString("hex")}`;
    const tmpB = `v${randomBytes(4).toString("hex")}`;
    run("ip", ["link", "add", tmpA, "type", "veth", "peer", "name", tmpB]);
    run("ip", ["link", "set", tmpA, "netns", a.name]);
    run("ip", ["link", "set", tmpB, "netns", b.name]);
    a.sh(`ip link set ${tmpA} name ${aIf} && ip link set ${aIf} up`);
    b.sh(`ip link set ${tmpB} name ${bIf} && ip link set ${bIf} up`);
}
