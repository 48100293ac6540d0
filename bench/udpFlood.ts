import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { NetNs } from "../lab/netns";
import { startReady } from "../lab/tproxyLab";

/*
 * Small-packet UDP: bench/udp-flood.c, compiled with Debian's gcc into a temporary directory,
 * sends from one connected socket with sendmmsg (a Python loop would spend more per packet than
 * the forwarding path itself and hide the ruleset's share). On veth every hop of the forwarding
 * path (bridge, the node's prerouting/forward/postrouting, the sink's input) runs in the sender's
 * softirq context on the sender's CPU, so the packets a node forwards per second price the whole
 * per-packet path, ruleset included. Sender and sink are pinned to different CPUs (taskset).
 */

/** 18 bytes of UDP payload: 60-byte Ethernet frames (64 on a wire, with the FCS), the smallest there are. */
export const SMALL_PAYLOAD_BYTES = 18;

export interface FloodResult {
    /** Packets the node forwarded per second of wall time: drops when other processes take the sender's CPU. */
    readonly pps: number;
    /**
     * Packets the node forwarded per second of the sender's CPU time (user + system). Without
     * CONFIG_IRQ_TIME_ACCOUNTING (this kernel) softirq work on the sender's path is charged to the
     * sender, so this prices the path itself and holds up when the machine is loaded.
     */
    readonly perCpuSecond: number;
}

export class UdpFlood {
    private readonly dir: string;
    readonly binary: string;

    constructor() {
        this.dir = mkdtempSync(path.join(tmpdir(), "kpr-udp-flood-"));
        this.binary = path.join(this.dir, "udp-flood");
        const cc = spawnSync("gcc", ["-O2", "-Wall", "-Werror", "-o", this.binary, path.join(__dirname, "udp-flood.c")], { encoding: "utf8" });
        if (cc.status !== 0) {
            this.dispose();
            throw new Error(`gcc bench/udp-flood.c (Debian package gcc): ${cc.error?.message ?? cc.stderr}`);
        }
    }

    /** Starts the discarding sink on address:port in `ns`, pinned to `cpu`; resolves once it is bound (bounded). */
    startSink(ns: NetNs, address: string, port: number, cpu: number): Promise<ChildProcess> {
        return startReady(ns, ["taskset", "-c", String(cpu), this.binary, "recv", address, String(port)]);
    }

    /**
     * Floods address:port from `ns` for `seconds`, pinned to `cpu`, and returns what left
     * `forwarder` through `egress` meanwhile (its tx counter: what the node forwarded, not what
     * the sender tried to send), per second and per second of the sender's CPU time.
     */
    floodFor(ns: NetNs, address: string, port: number, seconds: number, cpu: number, forwarder: NetNs, egress: string): FloodResult {
        const before = txPackets(forwarder, egress);
        const r = spawnSync(
            "ip",
            ["netns", "exec", ns.name, "taskset", "-c", String(cpu), this.binary, "send", address, String(port), String(seconds), String(SMALL_PAYLOAD_BYTES)],
            { encoding: "utf8", timeout: (seconds + 10) * 1000, killSignal: "SIGKILL" },
        );
        const forwarded = txPackets(forwarder, egress) - before;
        const [, elapsed, cpuSeconds] = r.stdout.trim().split(" ").map(Number);
        if (r.status !== 0 || !(elapsed! > 0) || !(cpuSeconds! > 0)) throw new Error(`udp-flood send exited ${String(r.status)}: ${r.stdout}${r.stderr}`);
        return { pps: forwarded / elapsed!, perCpuSecond: forwarded / cpuSeconds! };
    }

    dispose(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

function txPackets(ns: NetNs, device: string): number {
    return Number(ns.sh(`cat /sys/class/net/${device}/statistics/tx_packets`).trim());
}
