import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { NODE_PREFLIGHT_SCRIPT } from "../components/preflight/preflightArgs";
import { hostToolsMissing } from "../lab/hostTools";
import { NetNs } from "../lab/netns";

/*
 * node-preflight.sh executed for real inside network namespaces this test creates: the ip rules,
 * routes and iptables chains it inspects are the namespace's own. Mount tables come from
 * fixtures (PROC_MOUNTS argument) and an old kernel from the documented test seam.
 */

const MOUNTS = path.join(__dirname, "fixtures", "preflight", "mounts");
const POLICY_ROUTES = path.join(__dirname, "..", "components", "tproxy", "scripts", "policy-routes.sh");
const TOOLS = ["ip", "nft", "keepalived", "iptables-legacy-save", "iptables-nft-save", "bash"] as const;

interface Check {
    readonly check: string;
    readonly message: string;
}
interface NodeReport {
    readonly ok: boolean;
    readonly node: string;
    readonly failures: readonly Check[];
    readonly warnings: readonly Check[];
    readonly kernel: { readonly release: string; readonly source: string };
    readonly mounts: { readonly bpffs: boolean; readonly cgroup2: readonly string[]; readonly cgroupMode: string };
    readonly nft: { readonly present: boolean; readonly version: string; readonly destroyTable: boolean };
    readonly iptables: { readonly default: string; readonly configured: string; readonly kubeProxyBackends: readonly string[] };
    readonly keepalived: { readonly required: boolean; readonly present: boolean };
    readonly policyRouting: {
        readonly families: readonly string[];
        readonly state: Readonly<Record<string, { readonly ourRule: boolean; readonly ourRoute: boolean }>>;
    };
}

interface Options {
    readonly tproxy?: "0" | "1";
    readonly families?: string;
    readonly backend?: string;
    readonly mounts?: string;
    readonly kernel?: string;
    readonly path?: string;
}

interface Run {
    readonly status: number;
    readonly report: NodeReport;
    readonly stderr: string;
}

function preflight(ns: NetNs, options: Options = {}): Run {
    const args = [
        "n1",
        options.tproxy ?? "1",
        "0x1",
        "100",
        "1000",
        options.families ?? "ipv4,ipv6",
        options.backend ?? "auto",
        path.join(MOUNTS, options.mounts ?? "ready"),
    ];
    const env: string[] = [];
    if (options.kernel !== undefined) env.push(`CKPR_PREFLIGHT_TEST_KERNEL_RELEASE=${options.kernel}`);
    if (options.path !== undefined) env.push(`PATH=${options.path}`);
    const r = spawnSync("ip", ["netns", "exec", ns.name, "env", ...env, "/bin/bash", NODE_PREFLIGHT_SCRIPT, ...args], { encoding: "utf8", timeout: 60_000 });
    const lines = r.stdout.split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, `exactly one JSON line on stdout, got:\n${r.stdout}\nstderr:\n${r.stderr}`);
    return { status: r.status ?? -1, report: JSON.parse(lines[0]!) as NodeReport, stderr: r.stderr };
}

const names = (checks: readonly Check[]) => checks.map((c) => c.check).sort();

function withNs(body: (ns: NetNs) => void): void {
    const ns = new NetNs("pf");
    try {
        body(ns);
    } finally {
        ns.dispose();
    }
}

const skip = hostToolsMissing(TOOLS);

test("a clean node passes, reports what it found, and a run after our own policy routes still passes", { skip }, () => {
    withNs((ns) => {
        const first = preflight(ns);
        assert.equal(first.status, 0, first.stderr);
        assert.equal(first.report.ok, true);
        assert.deepEqual(first.report.failures, []);
        assert.equal(first.report.node, "n1");
        assert.equal(first.report.kernel.source, "uname");
        assert.deepEqual(first.report.mounts, { bpffs: true, cgroup2: ["/sys/fs/cgroup"], cgroupMode: "unified" });
        assert.equal(first.report.nft.present, true);
        assert.match(first.report.nft.version, /^\d+\.\d+\.\d+$/);
        assert.deepEqual(first.report.policyRouting.families, ["ipv4", "ipv6"]);
        assert.deepEqual(first.report.policyRouting.state["ipv4"], { ourRule: false, ourRoute: false });
        assert.match(first.stderr, /preflight passed/);

        // The tproxy's real setup script puts our rule and route in place: they are not conflicts.
        ns.sh(`bash ${POLICY_ROUTES} up 0x1 100 1000 ipv4,ipv6`);
        const again = preflight(ns);
        assert.equal(again.status, 0, again.stderr);
        assert.deepEqual(again.report.failures, []);
        assert.deepEqual(again.report.policyRouting.state, {
            ipv4: { ourRule: true, ourRoute: true },
            ipv6: { ourRule: true, ourRoute: true },
        });
    });
});

test("a foreign rule at our priority fails ip-rule-priority-<family> and names the rule", { skip }, () => {
    withNs((ns) => {
        ns.sh("ip -4 rule add pref 1000 fwmark 0x7 lookup 300");
        const r = preflight(ns);
        assert.equal(r.status, 1);
        assert.equal(r.report.ok, false);
        assert.deepEqual(names(r.report.failures), ["ip-rule-priority-ipv4"]);
        assert.match(r.report.failures[0]!.message, /priority 1000 .*fwmark 0x7 lookup 300/);
        assert.match(r.stderr, /FAIL ip-rule-priority-ipv4:/);
    });
});

test("a foreign rule selecting our mark fails ip-rule-mark-<family>; Cilium-style and disjoint masks do not", { skip }, () => {
    withNs((ns) => {
        // Not conflicts: Cilium's mask 0xf00 (our mark has none of its bits) and a mask our mark does not satisfy.
        ns.sh("ip -4 rule add pref 9 fwmark 0x200/0xf00 lookup 2004");
        ns.sh("ip -6 rule add pref 600 fwmark 0x3/0xf lookup 300");
        const clean = preflight(ns);
        assert.equal(clean.status, 0, clean.stderr);

        ns.sh("ip -6 rule add pref 500 fwmark 0x1/0x1 lookup 300");
        const r = preflight(ns);
        assert.equal(r.status, 1);
        assert.deepEqual(names(r.report.failures), ["ip-rule-mark-ipv6"]);
        assert.match(r.report.failures[0]!.message, /500: from all fwmark 0x1\/0x1 lookup 300/);
    });
});

test("a route in our table fails route-table-<family> and names the route", { skip }, () => {
    withNs((ns) => {
        ns.sh("ip -4 route add 192.0.2.0/24 dev lo table 100");
        const r = preflight(ns);
        assert.equal(r.status, 1);
        assert.deepEqual(names(r.report.failures), ["route-table-ipv4"]);
        assert.match(r.report.failures[0]!.message, /table 100 .*192\.0\.2\.0\/24/);
    });
});

test("routing conflicts are checked only for the families the tproxy uses, and not at all when it is off", { skip }, () => {
    withNs((ns) => {
        ns.sh("ip -6 route add 2001:db8::/32 dev lo table 100");
        assert.deepEqual(names(preflight(ns).report.failures), ["route-table-ipv6"]);
        const v4only = preflight(ns, { families: "ipv4" });
        assert.equal(v4only.status, 0, v4only.stderr);
        assert.deepEqual(v4only.report.policyRouting.families, ["ipv4"]);
        const off = preflight(ns, { tproxy: "0", families: "none" });
        assert.equal(off.status, 0, off.stderr);
        assert.deepEqual(off.report.policyRouting.families, []);
    });
});

test("kernel older than 5.10 fails (through the test seam, which the report flags); 5.10 passes", { skip }, () => {
    withNs((ns) => {
        const old = preflight(ns, { kernel: "5.4.0-150-generic" });
        assert.equal(old.status, 1);
        assert.deepEqual(names(old.report.failures), ["kernel"]);
        assert.match(old.report.failures[0]!.message, /5\.4\.0-150-generic is older than 5\.10/);
        assert.equal(old.report.kernel.source, "test-override");
        assert.deepEqual(names(old.report.warnings), ["kernel-release-override"]);
        assert.deepEqual(names(preflight(ns, { kernel: "5.9.16" }).report.failures), ["kernel"]);
        const boundary = preflight(ns, { kernel: "5.10.0-28-amd64" });
        assert.equal(boundary.status, 0, boundary.stderr);
        // destroy table needs Linux >= 6.3 whatever nft says.
        assert.equal(boundary.report.nft.destroyTable, false);
    });
});

test("a mount table without bpffs at /sys/fs/bpf and without cgroup v2 fails both; hybrid cgroups only warn", { skip }, () => {
    withNs((ns) => {
        const r = preflight(ns, { mounts: "no-bpffs-no-cgroup2" });
        assert.equal(r.status, 1);
        assert.deepEqual(names(r.report.failures), ["bpffs", "cgroup2"]);
        assert.deepEqual(r.report.mounts, { bpffs: false, cgroup2: [], cgroupMode: "none" });
        const hybrid = preflight(ns, { mounts: "hybrid-cgroup" });
        assert.equal(hybrid.status, 0, hybrid.stderr);
        assert.deepEqual(names(hybrid.report.warnings), ["cgroup2-hybrid"]);
        assert.equal(hybrid.report.mounts.cgroupMode, "hybrid");
    });
});

test("without nft and keepalived the tproxy cannot run: both fail when it is enabled; with it off the cleanup still needs nft", { skip }, () => {
    withNs((ns) => {
        // /usr/sbin and /sbin hold nft and keepalived; ip is in /usr/bin.
        const r = preflight(ns, { path: "/usr/bin:/bin" });
        assert.equal(r.status, 1);
        assert.deepEqual(names(r.report.failures), ["keepalived", "nft"]);
        assert.equal(r.report.keepalived.present, false);
        // With the tproxy off nft is still needed, by the stale-rule cleanup, to see kube-proxy's nftables tables.
        const off = preflight(ns, { path: "/usr/bin:/bin", tproxy: "0", families: "none" });
        assert.equal(off.status, 1, off.stderr);
        assert.deepEqual(names(off.report.failures), ["cleanup-tools"]);
        assert.match(off.report.failures[0]!.message, /install: nftables/);
        assert.equal(off.report.nft.present, false);
    });
});

test("IPVS state on the node: a warning, and a failure naming ipvsadm and ipset when the cleanup could not remove it", { skip }, () => {
    withNs((ns) => {
        const dir = mkdtempSync(path.join(tmpdir(), "pf-ipvs-"));
        try {
            // net/netfilter/ipvs/ip_vs_ctl.c ip_vs_info_seq_show: one line per virtual service.
            const proc = path.join(dir, "ip_vs");
            writeFileSync(
                proc,
                "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  C6336401:01BB rr \n",
            );
            // kube-proxy's dummy link; this kernel has no dummy links, and only the name matters here.
            ns.sh("ip link add kube-ipvs0 type bridge && ipset create kp-probe hash:ip && ipset destroy kp-probe");
            const env = `CKPR_TEST_PROC_NET_IP_VS=${proc}`;
            const run = (p?: string) => {
                const r = spawnSync(
                    "ip",
                    [
                        "netns",
                        "exec",
                        ns.name,
                        "env",
                        env,
                        ...(p ? [`PATH=${p}`] : []),
                        "/bin/bash",
                        NODE_PREFLIGHT_SCRIPT,
                        "n1",
                        "0",
                        "0x1",
                        "100",
                        "1000",
                        "none",
                        "auto",
                        path.join(MOUNTS, "ready"),
                    ],
                    { encoding: "utf8" },
                );
                return JSON.parse(r.stdout.trim()) as NodeReport & { kubeProxyIpvs: { loaded: boolean; virtualServers: number; interface: boolean } };
            };
            const withTools = run();
            assert.deepEqual(names(withTools.failures), []);
            assert.deepEqual(names(withTools.warnings), ["kube-proxy-ipvs-state", "proc-ip-vs-override"]);
            assert.deepEqual(withTools.kubeProxyIpvs, { loaded: true, virtualServers: 1, interface: true });
            // A directory with only the tools the script itself needs: no ipvsadm, no ipset (nft kept).
            const bin = path.join(dir, "bin");
            mkdirSync(bin);
            for (const tool of ["ip", "nft", "awk", "wc", "grep", "sed", "sort", "head", "cat", "uname", "timeout", "tr", "dirname", "env"]) {
                const found = spawnSync("sh", ["-c", `command -v ${tool} || PATH=/usr/sbin:/sbin command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
                if (found) symlinkSync(found, path.join(bin, tool));
            }
            const without = run(bin);
            assert.deepEqual(names(without.failures), ["cleanup-tools"]);
            assert.match(without.failures[0]!.message, /install: ipvsadm \(1 IPVS virtual servers\) ipset/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

test("kube-proxy's iptables backend is found by its chains; a configured backend that misses them fails", { skip }, () => {
    withNs((ns) => {
        ns.sh("iptables-legacy -t nat -N KUBE-SERVICES && iptables-legacy -t nat -N KUBE-POSTROUTING");
        const auto = preflight(ns);
        assert.equal(auto.status, 0, auto.stderr);
        assert.deepEqual(auto.report.iptables.kubeProxyBackends, ["legacy"]);
        assert.equal(preflight(ns, { backend: "legacy" }).status, 0);
        const wrong = preflight(ns, { backend: "nft" });
        assert.equal(wrong.status, 1);
        assert.deepEqual(names(wrong.report.failures), ["iptables-backend"]);
        assert.match(wrong.report.failures[0]!.message, /'nft' but kube-proxy's chains are in 'legacy'/);

        ns.sh("iptables-nft -t nat -N KUBE-PROXY-CANARY");
        const both = preflight(ns);
        assert.deepEqual(both.report.iptables.kubeProxyBackends, ["legacy", "nft"]);
        assert.deepEqual(names(both.report.warnings), ["iptables-both-backends"]);
    });
});

test("kubelet's own KUBE-* chains are not taken for kube-proxy", { skip }, () => {
    withNs((ns) => {
        ns.sh("iptables-nft -t nat -N KUBE-KUBELET-CANARY && iptables-nft -t filter -N KUBE-FIREWALL");
        const r = preflight(ns, { backend: "legacy" });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.report.iptables.kubeProxyBackends, []);
    });
});

test("every failure is listed in one run, on stdout as JSON and on stderr by name", { skip }, () => {
    withNs((ns) => {
        ns.sh("ip -4 rule add pref 1000 lookup 300 && ip -4 rule add pref 1500 fwmark 0x1 lookup 301 && ip -6 route add 2001:db8::/32 dev lo table 100");
        const r = preflight(ns, { kernel: "4.19.0", mounts: "no-bpffs-no-cgroup2" });
        assert.equal(r.status, 1);
        const expected = ["bpffs", "cgroup2", "ip-rule-mark-ipv4", "ip-rule-priority-ipv4", "kernel", "route-table-ipv6"];
        assert.deepEqual(names(r.report.failures), expected);
        for (const name of expected) assert.match(r.stderr, new RegExp(`FAIL ${name}:`));
        assert.match(r.stderr, /preflight FAILED \(6\)/);
    });
});

test("bad arguments are refused with usage, before any check", { skip: hostToolsMissing(["bash"]) }, () => {
    for (const args of [
        ["n1", "1", "0x1", "100", "1000", "ipv4"],
        ["n1;reboot", "1", "0x1", "100", "1000", "ipv4", "auto"],
        ["n1", "1", "1", "100", "1000", "ipv4", "auto"],
        ["n1", "1", "0x1", "100", "1000", "ipv5", "auto"],
        ["n1", "1", "0x1", "100", "1000", "ipv4", "iptables"],
    ]) {
        const r = spawnSync("bash", [NODE_PREFLIGHT_SCRIPT, ...args], { encoding: "utf8" });
        assert.equal(r.status, 2, `args ${args.join(" ")}: ${r.stderr}`);
        assert.equal(r.stdout, "");
    }
});
