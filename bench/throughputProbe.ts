import { spawn, type ChildProcess } from "node:child_process";
import type { NetNs } from "../lab/netns";
import { startReady } from "../lab/tproxyLab";

/*
 * A Python TCP bulk sender and discarding receiver (iperf3 is not installed), so absolute
 * numbers are Python's ceiling on this machine; compare rows of one run, not runs of machines.
 */

const RECEIVER = String.raw`
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
while True:
    c, _ = s.accept(); n = 0
    while True:
        b = c.recv(1 << 20)
        if not b: break
        n += len(b)
    c.close()
`;
const SENDER = String.raw`
import resource, socket, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
buf = b"x" * (1 << 16); end = time.monotonic() + float(sys.argv[3]); n = 0; t0 = time.monotonic(); c0 = cpu()
while time.monotonic() < end:
    s.sendall(buf); n += len(buf)
s.close(); print(n / (time.monotonic() - t0), (cpu() - c0) / n)
`;

export interface Throughput {
    readonly gbps: number;
    /**
     * The sender's CPU time (user + system) per GB sent. The forwarding path through the
     * namespaces runs mostly in the sender's softirq context, so this prices the path itself
     * and, unlike Gbit/s, does not drop when other processes take the CPU away.
     */
    readonly cpuSecondsPerGB: number;
}

/** Starts the discarding receiver in `ns` on address:port; resolves once it listens (bounded). */
export function startReceiver(ns: NetNs, address: string, port: number): Promise<ChildProcess> {
    return startReady(ns, ["python3", "-c", RECEIVER, address, String(port)]);
}

/**
 * Sends for `seconds` from `ns` to address:port. `during` runs once, a quarter of the way
 * through, while the flow is established (to look at conntrack, or profile the sender's pid). Killed after
 * seconds + 10 s; a refused or timed-out connection rejects.
 */
export function sendFor(ns: NetNs, address: string, port: number, seconds: number, during?: (senderPid: number) => void): Promise<Throughput> {
    return new Promise((resolve, reject) => {
        const child = spawn("ip", ["netns", "exec", ns.name, "python3", "-c", SENDER, address, String(port), String(seconds)], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => {
            stdout += d.toString();
        });
        child.stderr.on("data", (d: Buffer) => {
            stderr += d.toString();
        });
        const pid = child.pid;
        const midFlow = during === undefined || pid === undefined ? undefined : setTimeout(() => during(pid), (seconds * 1000) / 4);
        const limit = setTimeout(() => child.kill("SIGKILL"), (seconds + 10) * 1000);
        child.on("exit", (code) => {
            clearTimeout(limit);
            if (midFlow !== undefined) clearTimeout(midFlow);
            const [bytesPerSecond, cpuPerByte] = stdout.trim().split(" ").map(Number);
            if (code !== 0 || !Number.isFinite(bytesPerSecond) || !Number.isFinite(cpuPerByte)) reject(new Error(`sender exited ${String(code)}: ${stderr}`));
            else resolve({ gbps: (bytesPerSecond! * 8) / 1e9, cpuSecondsPerGB: cpuPerByte! * 1e9 });
        });
    });
}

export function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
