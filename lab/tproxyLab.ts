import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { link, NetNs } from "./netns";

/**
 * A namespace lab for the tproxy ruleset: a LAN switch (bridge) joining a client and two nodes,
 * and an upstream switch joining both nodes to a sink. Every address is TEST-NET and assigned
 * here; the config's reserved sets are replaced so these destinations count as "the internet".
 *
 *   client 192.0.2.100 ──┐            ┌── node A 192.0.2.11 ─ up 203.0.113.11 ──┐
 *                        ├─ LAN br0 ──┤   (VIP 192.0.2.1)                        ├─ br1 sink 203.0.113.1
 *                        │            └── node B 192.0.2.12 ─ up 203.0.113.12 ──┘   + 198.51.100.x
 *                                                                                        + remote Pod 203.0.113.241
 */
export const LAB = {
    port: 7892,
    appPort: 8080,
    vip4: "192.0.2.1",
    vip6: "2001:db8:1::1",
    client4: "192.0.2.100",
    client6: "2001:db8:1::100",
    nodeA4: "192.0.2.11",
    nodeA6: "2001:db8:1::11",
    nodeB4: "192.0.2.12",
    nodeB6: "2001:db8:1::12",
    upA4: "203.0.113.11",
    upA6: "2001:db8:2::11",
    upB4: "203.0.113.12",
    upB6: "2001:db8:2::12",
    sinkUp4: "203.0.113.1",
    sinkUp6: "2001:db8:2::1",
    /** "Internet" destinations on the sink: reached through the VIP (A) or routed via B. */
    dest4: "198.51.100.10",
    dest6: "2001:db8:100::10",
    destViaB4: "198.51.100.20",
    destViaB6: "2001:db8:100::20",
    /** In tproxy.extraReserved. */
    extraReserved4: "198.51.100.70",
    extraReserved6: "2001:db8:100:64::1",
    /** In the Service CIDRs. */
    service4: "198.51.100.200",
    service6: "2001:db8:100:96::1",
    /** A Pod behind the upstream switch (in the Pod CIDRs, on the sink): a destination that must go direct. */
    podRemote4: "203.0.113.241",
    podRemote6: "2001:db8:200::f1",
    /** Pod source addresses on the client. */
    pod4: "203.0.113.200",
    pod6: "2001:db8:200::5",
    /** An address of node A outside every set: only the fib-local guard keeps it un-diverted. */
    nodeALocal4: "198.51.100.99",
    nodeALocal6: "2001:db8:100::99",
    mark: 0x1,
    bypassMark: 0xff,
    routeTable: 100,
    rulePriority: 1000,
    tableName: "kpr_tproxy",
} as const;

export interface LabConfigOptions {
    readonly bindMode?: "vip" | "all";
    readonly reservedV4?: readonly string[];
    readonly extraReserved?: readonly string[];
    readonly proxyUnit?: string;
}

/** A validated MigrationConfig for the lab (goes through the real validation). */
export function labConfig(options: LabConfigOptions = {}): MigrationConfig {
    const result = validateStackConfig("cilium-kpr", {
        cluster: {
            podCidrs: ["203.0.113.128/25", "2001:db8:200::/64"],
            serviceCidrs: ["198.51.100.128/25", "2001:db8:100:96::/112"],
            nodeCidrs: ["192.0.2.0/24", "203.0.113.0/26", "2001:db8:1::/64", "2001:db8:2::/64"],
        },
        cilium: {
            chartVersion: "1.19.0",
            k8sServiceHost: LAB.vip4,
            k8sServicePort: 6443,
            ipv4: { enabled: true },
            ipv6: { enabled: true },
        },
        tproxy: {
            enabled: true,
            vip4: LAB.vip4,
            vip6: LAB.vip6,
            port: LAB.port,
            mark: LAB.mark,
            bypassMark: LAB.bypassMark,
            routeTable: LAB.routeTable,
            rulePriority: LAB.rulePriority,
            tableName: LAB.tableName,
            bindMode: options.bindMode ?? "vip",
            reserved: { v4: options.reservedV4 ?? ["127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4"], v6: ["::1/128", "fe80::/10", "ff00::/8"] },
            extraReserved: options.extraReserved ?? ["198.51.100.64/26", "2001:db8:100:64::/64"],
            ...(options.proxyUnit === undefined ? {} : { proxyUnit: options.proxyUnit }),
        },
        nodes: [
            {
                name: "node-a",
                address: LAB.nodeA4,
                hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxhYi1ub2RlLWEtbm90LWEtcmVhbC1ob3N0LWtleS1h",
                vrrpInterface: "lan0",
            },
            {
                name: "node-b",
                address: LAB.nodeB4,
                hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxhYi1ub2RlLWItbm90LWEtcmVhbC1ob3N0LWtleS1i",
                vrrpInterface: "lan0",
            },
        ],
        hasSshPrivateKey: true,
    });
    if (!result.ok) throw new Error(`lab config invalid: ${JSON.stringify(result.issues)}`);
    return result.config;
}

/**
 * One Python program for every endpoint. `serve MODE IDENT PORT ADDR...` answers each TCP
 * connection and UDP datagram with "MODE IDENT dst=<local/original destination> src=<peer>".
 * MODE transparent sets IP(V6)_TRANSPARENT (a tproxy listener; UDP learns the original
 * destination from IP(V6)_RECVORIGDSTADDR and answers from it); it also prints "got PROTO dst=..
 * src=.." on stdout for everything it receives. `probe PROTO DST PORT SRC MARK TIMEOUT` sends one
 * message and prints the answer or "ERROR <exception> <text> after=<seconds>s".
 */
export const LAB_PYTHON = String.raw`
import socket, struct, sys, threading, time
IP_TRANSPARENT, IPV6_TRANSPARENT = 19, 75
IP_RECVORIGDSTADDR, IPV6_RECVORIGDSTADDR = 20, 74
SO_MARK = 36

def fam(a): return socket.AF_INET6 if ":" in a else socket.AF_INET
def fmt(addr): return ("[%s]:%d" if ":" in addr[0] else "%s:%d") % (addr[0], addr[1])

def transparent(s, f):
    if f == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    else: s.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)

def orig_dst(anc, f, default):
    for level, kind, data in anc:
        if f == socket.AF_INET and kind == IP_RECVORIGDSTADDR:
            port, raw = struct.unpack_from("!H4s", data, 2)
            return (socket.inet_ntop(socket.AF_INET, raw), port)
        if f == socket.AF_INET6 and kind == IPV6_RECVORIGDSTADDR:
            port, = struct.unpack_from("!H", data, 2)
            return (socket.inet_ntop(socket.AF_INET6, data[8:24]), port)
    return default

def serve(mode, ident, port, addrs):
    tp = mode == "transparent"
    def tcp_loop(s):
        while True:
            c, peer = s.accept()
            print("got tcp dst=%s src=%s" % (fmt(c.getsockname()), fmt(peer)), flush=True)
            try:
                c.settimeout(2)
                try: c.recv(200)
                except OSError: pass
                c.sendall(("%s %s dst=%s src=%s\n" % (mode, ident, fmt(c.getsockname()), fmt(peer))).encode())
            except OSError: pass
            finally: c.close()
    def udp_loop(s, f, a):
        while True:
            data, anc, _, peer = s.recvmsg(200, 1024)
            dst = orig_dst(anc, f, (a, port)) if tp else (a, port)
            print("got udp dst=%s src=%s" % (fmt(dst), fmt(peer)), flush=True)
            msg = ("%s %s dst=%s src=%s\n" % (mode, ident, fmt(dst), fmt(peer))).encode()
            if tp:
                r = socket.socket(f, socket.SOCK_DGRAM)
                transparent(r, f)
                r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                r.bind(dst[:2])
                r.sendto(msg, peer)
                r.close()
            else:
                s.sendto(msg, peer)
    for a in addrs:
        f = fam(a)
        t = socket.socket(f, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if f == socket.AF_INET6: t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if tp: transparent(t, f)
        t.bind((a, port)); t.listen(64)
        threading.Thread(target=tcp_loop, args=(t,), daemon=True).start()
        u = socket.socket(f, socket.SOCK_DGRAM)
        if f == socket.AF_INET6: u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if tp:
            transparent(u, f)
            if f == socket.AF_INET6: u.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, 1)
            else: u.setsockopt(socket.IPPROTO_IP, IP_RECVORIGDSTADDR, 1)
        u.bind((a, port))
        threading.Thread(target=udp_loop, args=(u, f, a), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()

def probe(proto, dst, port, src, mark, timeout):
    f = fam(dst)
    s = socket.socket(f, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    started = time.monotonic()
    try:
        s.settimeout(timeout)
        if mark: s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        if src != "-": s.bind((src, 0))
        s.connect((dst, port))
        s.sendall(b"hello\n")
        print(s.recv(300).decode().strip())
    except Exception as e:
        print("ERROR %s %s after=%.3fs" % (type(e).__name__, e, time.monotonic() - started))
    finally:
        s.close()

if sys.argv[1] == "serve":
    serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
else:
    probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6], 0), float(sys.argv[7]))
`;

export interface ProbeOptions {
    readonly src?: string;
    readonly mark?: number;
    readonly timeoutSeconds?: number;
}

/** Sends one TCP or UDP message from `ns` and returns the one-line answer (or "ERROR ..."). */
export function probe(ns: NetNs, proto: "tcp" | "udp", dst: string, port: number, options: ProbeOptions = {}): string {
    const timeout = options.timeoutSeconds ?? 2;
    const r = spawnSync(
        "ip",
        [
            "netns",
            "exec",
            ns.name,
            "python3",
            "-c",
            LAB_PYTHON,
            "probe",
            proto,
            dst,
            String(port),
            options.src ?? "-",
            String(options.mark ?? 0),
            String(timeout),
        ],
        { encoding: "utf8", timeout: (timeout + 5) * 1000 },
    );
    if (r.status !== 0) throw new Error(`probe failed to run: ${r.stderr}`);
    return r.stdout.trim();
}

/** Starts a long-running process in `ns` and resolves once it printed "ready" (bounded). */
export async function startReady(ns: NetNs, args: readonly string[], timeoutMs = 5000): Promise<ChildProcess> {
    const child = spawn("ip", ["netns", "exec", ns.name, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const label = args.map((a) => (a.length > 80 ? "<program>" : a)).join(" ");
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
            child.kill("SIGKILL");
            reject(new Error(`${label} not ready in ${timeoutMs}ms: ${stderr}`));
        }, timeoutMs);
        child.stdout?.on("data", (d: Buffer) => {
            if (d.toString().includes("ready")) {
                clearTimeout(timer);
                resolve();
            }
        });
        child.on("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`${label} exited ${String(code)}: ${stderr}`));
        });
    });
    child.removeAllListeners("exit");
    return child;
}

export function startServer(ns: NetNs, mode: "transparent" | "plain", ident: string, port: number, addresses: readonly string[]): Promise<ChildProcess> {
    return startReady(ns, ["python3", "-c", LAB_PYTHON, "serve", mode, ident, String(port), ...addresses]);
}

/** Collects the "got ..." lines a serve child prints from now on: what its sockets received. */
export function recordReceived(child: ChildProcess): () => string[] {
    const lines: string[] = [];
    child.stdout?.on("data", (d: Buffer) => {
        lines.push(
            ...d
                .toString()
                .split("\n")
                .filter((l) => l.startsWith("got ")),
        );
    });
    return () => [...lines];
}

/** Stops a child and waits (bounded) until it has exited, so its sockets are closed. */
export async function stop(child: ChildProcess, timeoutMs = 3000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
}

/** Polls `check` every 200 ms until it is true or `timeoutMs` passed; returns the last result. */
export async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (check()) return true;
        if (Date.now() >= deadline) return false;
        await new Promise((r) => setTimeout(r, 200));
    }
}

export class TproxyLab {
    readonly sw: NetNs;
    readonly client: NetNs;
    readonly nodeA: NetNs;
    readonly nodeB: NetNs;
    readonly sink: NetNs;
    private readonly children: ChildProcess[] = [];

    constructor() {
        const created: NetNs[] = [];
        const make = (role: string) => {
            const ns = new NetNs(role);
            created.push(ns);
            return ns;
        };
        try {
            this.sw = make("sw");
            this.client = make("cli");
            this.nodeA = make("na");
            this.nodeB = make("nb");
            this.sink = make("sink");
            this.build();
        } catch (error) {
            created.forEach((ns) => ns.dispose());
            throw error;
        }
    }

    private build(): void {
        const { sw, client, nodeA, nodeB, sink } = this;
        sw.sh("ip link add br0 type bridge mcast_snooping 0 && ip link set br0 up");
        sink.sh("ip link add br1 type bridge mcast_snooping 0 && ip link set br1 up");
        link(client, sw, "lan0", "pc");
        link(nodeA, sw, "lan0", "pa");
        link(nodeB, sw, "lan0", "pb");
        sw.sh("for p in pc pa pb; do ip link set $p master br0; done");
        link(nodeA, sink, "up0", "pa");
        link(nodeB, sink, "up0", "pb");
        sink.sh("for p in pa pb; do ip link set $p master br1; done");

        client.sh(
            [
                `ip addr add ${LAB.client4}/24 dev lan0 && ip addr add ${LAB.client6}/64 dev lan0 nodad`,
                `ip addr add ${LAB.pod4}/32 dev lo && ip addr add ${LAB.pod6}/128 dev lo`,
                `ip route add default via ${LAB.vip4} && ip -6 route add default via ${LAB.vip6}`,
                `ip route add ${LAB.destViaB4}/32 via ${LAB.nodeB4} && ip -6 route add ${LAB.destViaB6}/128 via ${LAB.nodeB6}`,
            ].join("\n"),
        );
        for (const [node, lan4, lan6, up4, up6] of [
            [nodeA, LAB.nodeA4, LAB.nodeA6, LAB.upA4, LAB.upA6],
            [nodeB, LAB.nodeB4, LAB.nodeB6, LAB.upB4, LAB.upB6],
        ] as const) {
            node.sh(
                [
                    "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
                    `ip addr add ${lan4}/24 dev lan0 && ip addr add ${lan6}/64 dev lan0 nodad`,
                    `ip addr add ${up4}/26 dev up0 && ip addr add ${up6}/64 dev up0 nodad`,
                    `ip route add 198.51.100.0/24 via ${LAB.sinkUp4} && ip -6 route add 2001:db8:100::/48 via ${LAB.sinkUp6}`,
                    `ip route add 203.0.113.128/25 via ${LAB.client4} && ip -6 route add 2001:db8:200::/64 via ${LAB.client6}`,
                    `ip route add 203.0.113.240/28 via ${LAB.sinkUp4} && ip -6 route add 2001:db8:200::f0/124 via ${LAB.sinkUp6}`,
                    // The lab's upstream gateway NAT: the sink then tells which node forwarded a flow.
                    "nft -f - <<'NFT'\ntable inet lab_nat {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname \"up0\" masquerade\n\t}\n}\nNFT",
                ].join("\n"),
            );
        }
        nodeA.sh(`ip addr add ${LAB.nodeALocal4}/32 dev lo && ip addr add ${LAB.nodeALocal6}/128 dev lo`);
        sink.sh(
            [
                `ip addr add ${LAB.sinkUp4}/26 dev br1 && ip addr add ${LAB.sinkUp6}/64 dev br1 nodad`,
                ...[LAB.dest4, LAB.destViaB4, LAB.extraReserved4, LAB.service4, LAB.podRemote4].map((a) => `ip addr add ${a}/32 dev lo`),
                ...[LAB.dest6, LAB.destViaB6, LAB.extraReserved6, LAB.service6, LAB.podRemote6].map((a) => `ip addr add ${a}/128 dev lo`),
                `ip route add 192.0.2.0/24 via ${LAB.upA4} && ip -6 route add 2001:db8:1::/64 via ${LAB.upA6}`,
            ].join("\n"),
        );
    }

    /** What B2's policy routes do, by hand: marked packets are delivered locally via lo. */
    policyRouting(node: NetNs): void {
        node.sh(
            [
                `ip -4 rule add pref ${LAB.rulePriority} fwmark ${LAB.mark} lookup ${LAB.routeTable}`,
                `ip -6 rule add pref ${LAB.rulePriority} fwmark ${LAB.mark} lookup ${LAB.routeTable}`,
                `ip -4 route replace local 0.0.0.0/0 dev lo table ${LAB.routeTable}`,
                `ip -6 route replace local ::/0 dev lo table ${LAB.routeTable}`,
            ].join("\n"),
        );
    }

    addVips(node: NetNs): void {
        node.sh(`ip addr add ${LAB.vip4}/24 dev lan0 && ip addr add ${LAB.vip6}/64 dev lan0 nodad`);
    }

    /** Loads an nft file inside `node`; returns the exit status and stderr. */
    nft(node: NetNs, text: string): { status: number; stderr: string } {
        const r = node.try("nft -f -", text);
        return { status: r.status, stderr: r.stderr };
    }

    async serve(ns: NetNs, mode: "transparent" | "plain", ident: string, port: number, addresses: readonly string[]): Promise<ChildProcess> {
        const child = await startServer(ns, mode, ident, port, addresses);
        this.children.push(child);
        return child;
    }

    /** The sink's application servers on every sink address. */
    serveSink(): Promise<ChildProcess> {
        return this.serve(this.sink, "plain", "sink", LAB.appPort, [
            LAB.sinkUp4,
            LAB.sinkUp6,
            LAB.dest4,
            LAB.dest6,
            LAB.destViaB4,
            LAB.destViaB6,
            LAB.extraReserved4,
            LAB.extraReserved6,
            LAB.service4,
            LAB.service6,
            LAB.podRemote4,
            LAB.podRemote6,
        ]);
    }

    track(child: ChildProcess): void {
        this.children.push(child);
    }

    dispose(): void {
        for (const child of this.children) {
            try {
                child.kill("SIGKILL");
            } catch {
                /* gone */
            }
        }
        for (const ns of [this.client, this.nodeA, this.nodeB, this.sink, this.sw]) ns.dispose();
    }
}
