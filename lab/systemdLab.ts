import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { MigrationConfig } from "../components/config/validate";
import { notifyLines } from "../components/tproxy/keepalivedNotify";
import { link, NetNs, run } from "./netns";
import { sshRun, type SshResult } from "./ssh";
import { SystemdNode, type BootResult } from "./systemdNode";
import { LAB, LAB_PYTHON } from "./tproxyLab";

/**
 * The tproxy lab of tproxyLab.ts with its two nodes as real systemd machines (systemdNode.ts):
 *
 *   client 192.0.2.100 ──┐            ┌── node-a 192.0.2.11 ─ up0 203.0.113.11 ──┐
 *   (default via VIP)    ├─ LAN br0 ──┤   keepalived MASTER (prio 150)           ├─ br1 sink 203.0.113.1
 *                        │            └── node-b 192.0.2.12 ─ up0 203.0.113.12 ──┘   + "internet" 198.51.100.x
 *                                         keepalived BACKUP (prio 100)                + Pod IPs 203.0.113.241, 2001:db8:200::f1
 *
 * Every address is TEST-NET (RFC 5737 / RFC 3849) and assigned here, inside namespaces this lab
 * created; no namespace has a default route except the client (via the VIP), so nothing can leave.
 *
 * Each node runs, as real units: sshd (its own host key, root login with the lab's key only),
 * keepalived holding VIP 192.0.2.1 + 2001:db8:1::1 on lan0 with the product's notify lines,
 * Debian's stock nftables.service (its /etc/nftables.conf flushes the ruleset at boot, as on a real
 * node, and defines the lab's upstream NAT so the sink can tell which node forwarded a flow), the
 * transparent proxy stand-in on VIP:7892 (kpr-lab-proxy.service) and a wildcard-bound service on
 * port 80 that records everything it receives (kpr-lab-wildcard.service).
 *
 * Reboot: power the container off, delete its network namespace, build a fresh one with the same
 * links and addresses (what the node's own network configuration would do at boot), boot again on
 * the same persistent directory. Kernel network state (nft tables, ip rules, routes in table 100,
 * VIPs) is therefore as fresh as after a real reboot; files and enabled units persist.
 */

export const WILDCARD_PORT = 80;
export const LAB_PY_PATH = "/usr/local/lib/kpr-lab/lab.py";
export const WILDCARD_LOG = "/run/kpr-lab/wildcard.log";
export const PROXY_UNIT = "kpr-lab-proxy.service";
export const WILDCARD_UNIT = "kpr-lab-wildcard.service";

/** Records every TCP connection and UDP datagram a wildcard-bound socket receives. */
const WILDCARD_PY = String.raw`
import os, socket, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
os.makedirs(os.path.dirname(log), exist_ok=True)
lock = threading.Lock()
def record(line):
    with lock, open(log, "a") as f: f.write(line + "\n")
def tcp(s, fam):
    while True:
        c, peer = s.accept()
        record("tcp%s from %s to %s" % (fam, peer[0], c.getsockname()[0]))
        try: c.sendall(b"wildcard\n")
        except OSError: pass
        c.close()
def udp(s, fam):
    while True:
        data, peer = s.recvfrom(200)
        record("udp%s from %s" % (fam, peer[0]))
        try: s.sendto(b"wildcard\n", peer)
        except OSError: pass
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    for kind, loop in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
        s = socket.socket(fam, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        if kind == socket.SOCK_STREAM: s.listen(16)
        threading.Thread(target=loop, args=(s, "6" if fam == socket.AF_INET6 else "4"), daemon=True).start()
threading.Event().wait()
`;

export interface LabNodeSpec {
    readonly name: "node-a" | "node-b";
    readonly lan4: string;
    readonly lan6: string;
    readonly up4: string;
    readonly up6: string;
    readonly priority: number;
    readonly port: string;
    /** Locally administered MACs of lan0 and up0. */
    readonly mac: { readonly lan: string; readonly up: string };
}

const SPECS: readonly LabNodeSpec[] = [
    {
        name: "node-a",
        lan4: LAB.nodeA4,
        lan6: LAB.nodeA6,
        up4: LAB.upA4,
        up6: LAB.upA6,
        priority: 150,
        port: "pa",
        mac: { lan: "02:6b:70:72:0a:01", up: "02:6b:70:72:0b:01" },
    },
    {
        name: "node-b",
        lan4: LAB.nodeB4,
        lan6: LAB.nodeB6,
        up4: LAB.upB4,
        up6: LAB.upB6,
        priority: 100,
        port: "pb",
        mac: { lan: "02:6b:70:72:0a:02", up: "02:6b:70:72:0b:02" },
    },
];

export class LabNode {
    readonly spec: LabNodeSpec;
    readonly machine: SystemdNode;
    /** The node's current network namespace (replaced on every reboot). */
    ns: NetNs | undefined;
    readonly knownHosts: string;
    /** Boot timings, first boot included. */
    readonly boots: BootResult[] = [];

    constructor(spec: LabNodeSpec, machine: SystemdNode, knownHosts: string) {
        this.spec = spec;
        this.machine = machine;
        this.knownHosts = knownHosts;
    }

    get name(): string {
        return this.spec.name;
    }
    sh(script: string, timeoutMs?: number): string {
        return this.machine.sh(script, timeoutMs);
    }
    try(script: string, timeoutMs?: number): ReturnType<SystemdNode["try"]> {
        return this.machine.try(script, timeoutMs);
    }
}

export class SystemdLab {
    readonly config: MigrationConfig;
    readonly dir: string;
    readonly sw: NetNs;
    readonly client: NetNs;
    readonly sink: NetNs;
    readonly a: LabNode;
    readonly b: LabNode;
    private readonly clientKey: string;

    /** Creates the switches, client and sink, and provisions (does not boot) both nodes. */
    constructor(config: MigrationConfig) {
        this.config = config;
        this.dir = mkdtempSync("/tmp/kpr-systemdlab-");
        this.clientKey = path.join(this.dir, "client_key");
        const created: Array<{ dispose(): unknown }> = [];
        try {
            this.sw = new NetNs("ssw");
            created.push(this.sw);
            this.client = new NetNs("scli");
            created.push(this.client);
            this.sink = new NetNs("ssink");
            created.push(this.sink);
            this.buildSwitchesClientSink();
            run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kpr-systemdlab-client", "-f", this.clientKey]);
            const [a, b] = SPECS.map((spec) => {
                const machine = new SystemdNode(spec.name);
                created.push({ dispose: () => void machine.dispose() });
                return this.provision(spec, machine);
            });
            this.a = a!;
            this.b = b!;
        } catch (error) {
            for (const c of created.reverse()) c.dispose();
            rmSync(this.dir, { recursive: true, force: true });
            throw error;
        }
    }

    get nodes(): readonly LabNode[] {
        return [this.a, this.b];
    }

    private buildSwitchesClientSink(): void {
        const { sw, client, sink } = this;
        sw.sh("ip link add br0 type bridge mcast_snooping 0 && ip link set br0 up");
        sink.sh("ip link add br1 type bridge mcast_snooping 0 && ip link set br1 up");
        link(client, sw, "lan0", "pc");
        sw.sh("ip link set pc master br0");
        client.sh(
            [
                `ip addr add ${LAB.client4}/24 dev lan0 && ip addr add ${LAB.client6}/64 dev lan0 nodad`,
                `ip route add default via ${LAB.vip4} && ip -6 route add default via ${LAB.vip6}`,
                // The backup node as an ordinary router for these two.
                `ip route add ${LAB.destViaB4}/32 via ${LAB.nodeB4} && ip -6 route add ${LAB.destViaB6}/128 via ${LAB.nodeB6}`,
            ].join("\n"),
        );
        sink.sh(
            [
                `ip addr add ${LAB.sinkUp4}/26 dev br1 && ip addr add ${LAB.sinkUp6}/64 dev br1 nodad`,
                ...[LAB.dest4, LAB.destViaB4, LAB.podRemote4].map((a) => `ip addr add ${a}/32 dev lo`),
                ...[LAB.dest6, LAB.destViaB6, LAB.podRemote6].map((a) => `ip addr add ${a}/128 dev lo`),
            ].join("\n"),
        );
    }

    /** The node's own files, written once into its persistent tree before the first boot. */
    private provision(spec: LabNodeSpec, machine: SystemdNode): LabNode {
        const hostKey = path.join(this.dir, `${spec.name}_host_key`);
        run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `kpr-systemdlab-${spec.name}`, "-f", hostKey]);
        machine.writeFile("/etc/ssh/ssh_host_ed25519_key", readFileSync(hostKey, "utf8"), 0o600);
        machine.writeFile("/etc/ssh/ssh_host_ed25519_key.pub", readFileSync(`${hostKey}.pub`, "utf8"));
        machine.writeFile(
            "/etc/ssh/sshd_config.d/kpr-lab.conf",
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
        );
        machine.writeFile("/etc/hostname", `${spec.name}\n`);
        machine.writeFile("/root/.ssh/authorized_keys", readFileSync(`${this.clientKey}.pub`, "utf8"), 0o600);
        run("chmod", ["0700", path.join(machine.root, "root/.ssh")]);
        const knownHosts = path.join(this.dir, `${spec.name}.known_hosts`);
        writeFileSync(knownHosts, `${spec.lan4} ${readFileSync(`${hostKey}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")}\n`);

        // Debian's stock nftables.service loads this at boot (it starts with flush ruleset, like the stock file).
        machine.writeFile(
            "/etc/nftables.conf",
            '#!/usr/sbin/nft -f\nflush ruleset\n\n# The lab\'s upstream NAT: the sink sees which node forwarded a flow.\ntable inet lab_nat {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname "up0" masquerade\n\t}\n}\n',
            0o755,
        );
        machine.writeFile("/etc/keepalived/keepalived.conf", this.keepalivedConf(spec));
        machine.writeFile(LAB_PY_PATH, LAB_PYTHON);
        machine.writeFile("/usr/local/lib/kpr-lab/wildcard.py", WILDCARD_PY);
        const { vip4, vip6, port } = this.config.tproxy;
        machine.writeFile(
            `/etc/systemd/system/${PROXY_UNIT}`,
            `[Unit]\nDescription=lab stand-in for the transparent proxy (IP_TRANSPARENT listener on the VIPs)\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/python3 ${LAB_PY_PATH} serve transparent proxy-${spec.name} ${port} ${String(vip4)} ${String(vip6)}\n\n[Install]\nWantedBy=multi-user.target\n`,
        );
        machine.writeFile(
            `/etc/systemd/system/${WILDCARD_UNIT}`,
            `[Unit]\nDescription=lab: a service bound to 0.0.0.0 and [::] port ${WILDCARD_PORT} that records what it receives\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/python3 /usr/local/lib/kpr-lab/wildcard.py ${WILDCARD_PORT} ${WILDCARD_LOG}\n\n[Install]\nWantedBy=multi-user.target\n`,
        );
        // The lab configures the node's links from outside (plugIn), like a static ifupdown setup, so
        // no network manager in the node would ever report "online": nothing waits for one.
        run("ln", ["-sf", "/dev/null", path.join(machine.root, "etc/systemd/system/systemd-networkd-wait-online.service")]);
        mkdirSync(path.join(machine.root, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
        for (const unit of [PROXY_UNIT, WILDCARD_UNIT]) {
            run("ln", ["-sf", `/etc/systemd/system/${unit}`, path.join(machine.root, "etc/systemd/system/multi-user.target.wants", unit)]);
        }
        return new LabNode(spec, machine, knownHosts);
    }

    /** A keepalived.conf as an operator has it after merging the product's snippet into the VRRP instance. */
    keepalivedConf(spec: LabNodeSpec): string {
        const { vip4, vip6, vrrpInstance } = this.config.tproxy;
        return [
            "global_defs {",
            `    router_id ${spec.name}`,
            "    script_user root",
            "    enable_script_security",
            "}",
            `vrrp_instance ${vrrpInstance} {`,
            `    state ${spec.priority === 150 ? "MASTER" : "BACKUP"}`,
            "    interface lan0",
            "    virtual_router_id 51",
            `    priority ${spec.priority}`,
            "    advert_int 1",
            "    virtual_ipaddress {",
            `        ${String(vip4)}/24 dev lan0`,
            "    }",
            "    virtual_ipaddress_excluded {",
            `        ${String(vip6)}/64 dev lan0`,
            "    }",
            ...notifyLines(this.config).map((l) => `    ${l}`),
            "}",
            "",
        ].join("\n");
    }

    /** A fresh network namespace for `node`: links to both switches, addresses, routes, forwarding. */
    private plugIn(node: LabNode): void {
        const { spec } = node;
        const ns = new NetNs(spec.name === "node-a" ? "sna" : "snb");
        try {
            link(ns, this.sw, "lan0", spec.port);
            this.sw.sh(`ip link set ${spec.port} master br0`);
            link(ns, this.sink, "up0", spec.port);
            this.sink.sh(`ip link set ${spec.port} master br1`);
            ns.sh(
                [
                    // A NIC keeps its MAC across a reboot; neighbours' ARP/NDP caches rely on it.
                    `ip link set lan0 address ${spec.mac.lan} && ip link set up0 address ${spec.mac.up}`,
                    "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
                    `ip addr add ${spec.lan4}/24 dev lan0 && ip addr add ${spec.lan6}/64 dev lan0 nodad`,
                    `ip addr add ${spec.up4}/26 dev up0 && ip addr add ${spec.up6}/64 dev up0 nodad`,
                    `ip route add 198.51.100.0/24 via ${LAB.sinkUp4} && ip -6 route add 2001:db8:100::/48 via ${LAB.sinkUp6}`,
                    // The Pod network lives behind the upstream switch in this lab.
                    `ip route add 203.0.113.128/25 via ${LAB.sinkUp4} && ip -6 route add 2001:db8:200::/64 via ${LAB.sinkUp6}`,
                ].join("\n"),
            );
        } catch (error) {
            ns.dispose();
            throw error;
        }
        node.ns = ns;
    }

    /** Plugs `node` into a fresh namespace and boots it. */
    async boot(node: LabNode): Promise<BootResult> {
        if (node.ns === undefined) this.plugIn(node);
        const result = await node.machine.boot(node.ns!.name);
        node.boots.push(result);
        return result;
    }

    /** Power off (clean), drop the namespace with every trace of kernel network state, boot again. */
    async reboot(node: LabNode): Promise<{ powerOffMs: number; boot: BootResult }> {
        const powerOffMs = await node.machine.powerOff();
        node.ns?.dispose();
        node.ns = undefined;
        const boot = await this.boot(node);
        return { powerOffMs, boot };
    }

    /** `command` on `node` through a fresh, host-key-pinned ssh connection from the client (as remote.Command does). */
    ssh(node: LabNode, command: string, timeoutMs = 60_000): SshResult {
        return sshRun(
            {
                from: this.client,
                identity: this.clientKey,
                knownHosts: node.knownHosts,
                address: node.spec.lan4,
                connectTimeoutSeconds: 3,
                serverAliveCountMax: 3,
                timeoutMs,
            },
            command,
        );
    }

    async dispose(): Promise<void> {
        for (const node of this.nodes) {
            await node.machine.dispose();
            node.ns?.dispose();
        }
        for (const ns of [this.client, this.sink, this.sw]) ns.dispose();
        rmSync(this.dir, { recursive: true, force: true });
    }
}
