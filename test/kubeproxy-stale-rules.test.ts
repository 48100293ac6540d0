import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostToolsMissing } from "./support/hostTools";
import { NetNs } from "./support/netns";
import { readScript, scriptPath } from "./support/kubeproxyScenario";

/*
 * The node-side cleanup, for real, inside a network namespace of its own (iptables state is
 * per namespace, so the host's rules are never touched). Base rules (Cilium's chains, kubelet's
 * canary/hint/KUBE-FIREWALL, the operator's own) are loaded and saved; kube-proxy's rules are
 * then loaded on top; after the cleanup the save output must equal the base save byte for byte.
 */

const RULES = join(__dirname, "fixtures", "kubeproxy", "iptables");
const CLEANUP = scriptPath("stale-rules-cleanup");
const VERIFY = scriptPath("stale-rules-verify");

type Backend = "nft" | "legacy";
type Family = "iptables" | "ip6tables";
const FAMILIES: readonly { family: Family; suffix: string }[] = [
    { family: "iptables", suffix: "v4" },
    { family: "ip6tables", suffix: "v6" },
];

function rules(name: string): string {
    return readFileSync(join(RULES, name), "utf8");
}

/** Save output without the comment lines that carry timestamps. */
function saved(ns: NetNs, family: Family, backend: Backend): string {
    return ns
        .sh(`${family}-${backend}-save 2>/dev/null`)
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .join("\n");
}

function load(ns: NetNs, backend: Backend, which: "base" | "kube-proxy"): void {
    for (const { family, suffix } of FAMILIES) {
        const flags = which === "base" ? "" : "--noflush";
        ns.sh(`${family}-${backend}-restore ${flags}`, rules(`${which}-${suffix}.rules`));
    }
}

const skip = hostToolsMissing(["ip", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"]);

for (const backend of ["nft", "legacy"] as const) {
    test(`stale-rules cleanup removes kube-proxy's chains with iptables-${backend}, IPv4 and IPv6, and nothing else`, { skip }, (t) => {
        const ns = new NetNs("kpclean");
        t.after(() => ns.dispose());
        load(ns, backend, "base");
        const base = FAMILIES.map(({ family }) => saved(ns, family, backend));
        load(ns, backend, "kube-proxy");
        const loaded = FAMILIES.map(({ family }) => saved(ns, family, backend));
        for (const [i, text] of loaded.entries()) {
            assert.notEqual(text, base[i], "kube-proxy rules were loaded");
            assert.match(text, /^:KUBE-SVC-NPX46M4PTMTKRN6Y /m);
            assert.match(text, /^-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES$/m);
        }

        const before = ns.try(`bash ${VERIFY}`);
        assert.equal(before.status, 1, "verify fails while KUBE-SVC chains exist");
        assert.match(before.stdout, new RegExp(`"stale":\\[[^\\]]*"iptables-${backend}"`));
        assert.match(before.stdout, new RegExp(`"ip6tables-${backend}"`));

        const first = ns.try(`bash ${CLEANUP} auto`);
        assert.equal(first.status, 0, first.stderr);
        const summary = JSON.parse(first.stdout.trim()) as { cleanedBackends: string[]; changedTables: string[]; changed: boolean };
        assert.deepEqual(summary.cleanedBackends, [backend], "auto picked the backend holding KUBE- chains");
        assert.deepEqual(summary.changedTables, [`iptables-${backend}`, `ip6tables-${backend}`]);

        const after = FAMILIES.map(({ family }) => saved(ns, family, backend));
        assert.deepEqual(after, base, "everything but kube-proxy's rules is byte-identical");
        assert.match(after[0] ?? "", /^:KUBE-FIREWALL /m, "kubelet's KUBE-FIREWALL stays");
        assert.match(after[0] ?? "", /^:KUBE-KUBELET-CANARY /m, "kubelet's canary stays");
        for (const text of after) {
            // The operator's rule mentions "-j KUBE-SERVICES" inside a comment; it must survive as text.
            const withoutNote = text
                .split("\n")
                .filter((l) => !l.includes("operator note"))
                .join("\n");
            assert.doesNotMatch(withoutNote, /KUBE-(SVC|SEP|EXT|SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|FORWARD|PROXY)/);
            assert.match(text, /CILIUM_PRE_mangle/);
            assert.match(text, /OPERATOR-SSH/);
        }

        const second = ns.try(`bash ${CLEANUP} auto`);
        assert.equal(second.status, 0, second.stderr);
        assert.equal((JSON.parse(second.stdout.trim()) as { changed: boolean }).changed, false, "second run changes nothing");
        assert.deepEqual(
            FAMILIES.map(({ family }) => saved(ns, family, backend)),
            base,
        );

        const verified = ns.try(`bash ${VERIFY}`);
        assert.equal(verified.status, 0, verified.stderr);
    });
}

test("an explicit backend cleans that backend and still fails while the other one holds kube-proxy chains", { skip }, (t) => {
    const ns = new NetNs("kpclean");
    t.after(() => ns.dispose());
    load(ns, "nft", "base");
    load(ns, "nft", "kube-proxy");
    load(ns, "legacy", "base");
    load(ns, "legacy", "kube-proxy");
    const run = ns.try(`bash ${CLEANUP} nft`);
    assert.equal(run.status, 1);
    assert.match(run.stdout, /kube-proxy state remains in: iptables-legacy ip6tables-legacy/);
    assert.doesNotMatch(saved(ns, "iptables", "nft"), /KUBE-SVC-/);
    const both = ns.try(`bash ${CLEANUP} auto`);
    assert.equal(both.status, 0, both.stderr);
    assert.doesNotMatch(saved(ns, "iptables", "legacy"), /KUBE-SVC-/);
});

test("a namespace without kube-proxy rules is left alone", { skip }, (t) => {
    const ns = new NetNs("kpclean");
    t.after(() => ns.dispose());
    load(ns, "nft", "base");
    const base = saved(ns, "iptables", "nft");
    const run = ns.try(`bash ${CLEANUP} auto`);
    assert.equal(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout.trim()) as CleanupSummary;
    assert.deepEqual(summary.cleanedBackends, []);
    assert.deepEqual(summary.changedTables, []);
    assert.equal(summary.changed, false);
    assert.deepEqual(summary.removed, { ipvsVirtualServers: [], ipvsInterface: false, ipvsInterfaceAddresses: [], ipsets: [], nftTables: [] });
    assert.equal(saved(ns, "iptables", "nft"), base);
});

test("a bad backend argument is refused before anything is read", { skip }, (t) => {
    const ns = new NetNs("kpclean");
    t.after(() => ns.dispose());
    const run = ns.try(`bash ${CLEANUP} ipvs`);
    assert.equal(run.status, 1);
    assert.match(run.stdout, /BACKEND must be auto, nft or legacy/);
});

/* ---------------------------------------------------------------------------------------------
 * Every kube-proxy mode: IPVS (virtual servers, kube-ipvs0, ipsets, its iptables chains) and
 * nftables (tables ip/ip6 kube-proxy), IPv4 and IPv6, with the real ipset, nft, ip and iptables
 * inside a namespace of the test's own. Only the IPVS virtual servers go through the stand-in
 * test/support/fake-ipvsadm: this kernel has no IPVS (no /proc/net/ip_vs).
 * ------------------------------------------------------------------------------------------- */

const FIXTURES = join(__dirname, "fixtures", "kubeproxy");
const FAKE_IPVSADM = join(__dirname, "support", "fake-ipvsadm");

interface CleanupSummary {
    ok: boolean;
    cleanedBackends: string[];
    changedTables: string[];
    removed: { ipvsVirtualServers: string[]; ipvsInterface: boolean; ipvsInterfaceAddresses: string[]; ipsets: string[]; nftTables: string[] };
    kept: { foreignVirtualServers: string[] };
    ipvs: string;
    changed: boolean;
    testSeams: string[];
}
interface VerifyReport {
    ok: boolean;
    stale: string[];
    found: {
        iptables: string[];
        ipvsVirtualServers: string[];
        ipvsInterface: { present: boolean; addresses: string[] };
        ipsets: string[];
        nftTables: string[];
    };
    ipvs: string;
    foreignVirtualServers: string[];
    unverifiable: string[];
}

/** kube-proxy's IPVS table on the node, in ipvsadm's save format (what `ipvsadm -S -n` prints). */
const VIRTUAL_SERVERS = [
    "-A -t 192.0.2.10:30080 -s rr",
    "-a -t 192.0.2.10:30080 -r 203.0.113.10:80 -m -w 1",
    "-A -t 192.0.2.200:80 -s wlc",
    "-a -t 192.0.2.200:80 -r 192.0.2.21:80 -g -w 1",
    "-A -t 198.51.100.1:443 -s rr",
    "-a -t 198.51.100.1:443 -r 192.0.2.11:6443 -m -w 1",
    "-A -t 198.51.100.80:80 -s rr",
    "-a -t 198.51.100.80:80 -r 203.0.113.10:80 -m -w 1",
    "-A -u 198.51.100.10:53 -s rr",
    "-A -t [2001:db8:27::1]:443 -s rr",
    "-a -t [2001:db8:27::1]:443 -r [2001:db8:2::11]:6443 -m -w 1",
    "-A -t [2001:db8:2::10]:30080 -s rr",
    "-A --sctp-service 192.0.2.10:30090 -s rr",
    "-A -f 7 -s wlc",
];
/** keepalived's LVS services (one by address, one by fwmark): not on kube-ipvs0, no NodePort. They must stay. */
const FOREIGN_VS = ["-t 192.0.2.200:80", "-f 7 -s wlc"];
const KUBE_PROXY_VS = [
    "-t 192.0.2.10:30080",
    "-t 198.51.100.1:443",
    "-t 198.51.100.80:80",
    "-u 198.51.100.10:53",
    "-t [2001:db8:27::1]:443",
    "-t [2001:db8:2::10]:30080",
    "--sctp-service 192.0.2.10:30090",
];
const KUBE_IPVS0_ADDRESSES = ["198.51.100.1", "198.51.100.10", "198.51.100.80", "2001:db8:27::1"];

/** A node in a namespace with kube-proxy's IPVS-mode state on top of the base state. */
class IpvsNode {
    readonly ns = new NetNs("kpipvs");
    readonly dir = mkdtempSync(join(tmpdir(), "kpipvs-"));
    readonly state = join(this.dir, "ipvs.save");
    readonly proc = join(this.dir, "proc_net_ip_vs");
    /** The link type standing in for kube-proxy's dummy: dummy where the kernel has it, else a bridge. */
    readonly linkType: string;
    constructor(readonly backend: Backend) {
        const dummy = this.ns.try("ip link add kp-probe type dummy && ip link del kp-probe");
        this.linkType = dummy.status === 0 ? "dummy" : "bridge";
    }
    loadBase(): void {
        load(this.ns, this.backend, "base");
        this.ns.sh(`nft -f ${join(FIXTURES, "nftables", "base.nft")}`);
        // Cilium's own ipset (pkg/datapath/tables/ipset.go names it cilium_node_set_v4): not kube-proxy's.
        this.ns.sh("ipset create cilium_node_set_v4 hash:ip family inet && ipset add cilium_node_set_v4 192.0.2.11");
    }
    loadKubeProxy(): void {
        this.ns.sh("ipset restore", readFileSync(join(FIXTURES, "ipvs", "ipsets.restore"), "utf8"));
        for (const { family, suffix } of FAMILIES) {
            this.ns.sh(`${family}-${this.backend}-restore --noflush`, readFileSync(join(FIXTURES, "ipvs", `ipvs-${suffix}.rules`), "utf8"));
        }
        // pkg/proxy/ipvs/netlink_linux.go: kube-ipvs0 stays down and holds each service address as a host address.
        this.ns.sh(`ip link add kube-ipvs0 type ${this.linkType}`);
        for (const a of KUBE_IPVS0_ADDRESSES) this.ns.sh(`ip addr add ${a}/${a.includes(":") ? 128 : 32} dev kube-ipvs0${a.includes(":") ? " nodad" : ""}`);
        writeFileSync(this.state, VIRTUAL_SERVERS.join("\n") + "\n");
        // ip_vs_ctl.c ip_vs_info_seq_show: the file exists while the module is loaded; its content is not read when ipvsadm is there.
        writeFileSync(
            this.proc,
            "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n",
        );
    }
    env(ipvsadm: string = FAKE_IPVSADM): string {
        return `CKPR_TEST_IPVSADM=${ipvsadm} CKPR_TEST_PROC_NET_IP_VS=${this.proc} FAKE_IPVSADM_STATE=${this.state}`;
    }
    run(script: string, arg = "", ipvsadm?: string): { status: number; stdout: string; stderr: string } {
        return this.ns.try(`${this.env(ipvsadm)} bash ${script} ${arg}`);
    }
    snapshot(): { iptables: string[]; nft: string; ipsets: string; link: string; ipvs: string } {
        return {
            iptables: FAMILIES.map(({ family }) => saved(this.ns, family, this.backend)),
            nft: this.ns.sh("nft list table inet cilium_kpr_tproxy && nft list table ip operator-filter"),
            ipsets: this.ns.sh("ipset list -n | sort"),
            link: this.ns.sh("ip -o link show | awk '{print $2}' | sort"),
            ipvs: readFileSync(this.state, "utf8"),
        };
    }
    dispose(): void {
        this.ns.dispose();
        rmSync(this.dir, { recursive: true, force: true });
    }
}

const skipModes = hostToolsMissing(["ip", "ipset", "nft", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"]);

for (const backend of ["nft", "legacy"] as const) {
    test(
        `IPVS mode (iptables-${backend}): kube-proxy's virtual servers, kube-ipvs0, ipsets and chains go, IPv4 and IPv6; keepalived's virtual server, Cilium's ipset and the tproxy table stay`,
        { skip: skipModes },
        (t) => {
            const node = new IpvsNode(backend);
            t.after(() => node.dispose());
            node.loadBase();
            writeFileSync(node.state, "");
            writeFileSync(node.proc, "");
            const base = node.snapshot();
            node.loadKubeProxy();
            writeFileSync(node.state, VIRTUAL_SERVERS.join("\n") + "\n");

            const before = node.run(VERIFY);
            assert.equal(before.status, 1, before.stderr);
            const found = JSON.parse(before.stdout.trim()) as VerifyReport;
            assert.deepEqual(found.stale, [`iptables-${backend}`, `ip6tables-${backend}`, "ipvs", "kube-ipvs0", "ipsets"]);
            assert.deepEqual(found.found.ipvsVirtualServers, KUBE_PROXY_VS);
            assert.deepEqual(found.foreignVirtualServers, FOREIGN_VS);
            assert.deepEqual(found.found.ipvsInterface, { present: true, addresses: KUBE_IPVS0_ADDRESSES });
            assert.equal(found.found.ipsets.length, 34, "17 sets per family (ipsetInfo)");
            assert.ok(found.found.ipsets.includes("KUBE-6-LOAD-BALANCER-SOURCE-CID"), "IPv6 names cut to 31 characters as NewIPSet does");

            const first = node.run(CLEANUP, "auto");
            assert.equal(first.status, 0, first.stderr + first.stdout);
            const summary = JSON.parse(first.stdout.trim()) as CleanupSummary;
            assert.deepEqual(summary.cleanedBackends, [backend]);
            assert.deepEqual(summary.changedTables, [`iptables-${backend}`, `ip6tables-${backend}`]);
            assert.deepEqual(summary.removed.ipvsVirtualServers, KUBE_PROXY_VS);
            assert.equal(summary.removed.ipvsInterface, true);
            assert.deepEqual(summary.removed.ipvsInterfaceAddresses, KUBE_IPVS0_ADDRESSES);
            assert.deepEqual([...summary.removed.ipsets].sort(), [...found.found.ipsets].sort());
            assert.deepEqual(summary.removed.nftTables, []);
            assert.deepEqual(summary.kept.foreignVirtualServers, FOREIGN_VS);
            assert.deepEqual(summary.testSeams, ["CKPR_TEST_PROC_NET_IP_VS", "CKPR_TEST_IPVSADM"]);
            assert.equal(summary.changed, true);

            const after = node.snapshot();
            assert.deepEqual(after.iptables, base.iptables, "iptables: everything but kube-proxy's chains is byte-identical");
            assert.equal(after.nft, base.nft, "the tproxy table and the operator's table are untouched");
            assert.equal(after.ipsets, base.ipsets, "only Cilium's ipset is left");
            assert.equal(after.link, base.link, "kube-ipvs0 is gone");
            assert.equal(
                after.ipvs,
                "-A -t 192.0.2.200:80 -s wlc\n-a -t 192.0.2.200:80 -r 192.0.2.21:80 -g -w 1\n-A -f 7 -s wlc\n",
                "keepalived's virtual servers and their real server stay",
            );

            const second = node.run(CLEANUP, "auto");
            assert.equal(second.status, 0, second.stderr);
            const again = JSON.parse(second.stdout.trim()) as CleanupSummary;
            assert.equal(again.changed, false, "second run changes nothing");
            assert.deepEqual(again.removed.ipvsVirtualServers, []);
            assert.deepEqual(node.snapshot(), after);

            const verified = node.run(VERIFY);
            assert.equal(verified.status, 0, verified.stderr + verified.stdout);
            assert.deepEqual((JSON.parse(verified.stdout.trim()) as VerifyReport).foreignVirtualServers, FOREIGN_VS);
        },
    );
}

test("nftables mode: tables ip kube-proxy and ip6 kube-proxy go in one transaction; the tproxy table and other tables stay", { skip: skipModes }, (t) => {
    const ns = new NetNs("kpnft");
    t.after(() => ns.dispose());
    load(ns, "nft", "base");
    ns.sh(`nft -f ${join(FIXTURES, "nftables", "base.nft")}`);
    const base = ns.sh("nft list ruleset");
    ns.sh(`nft -f ${join(FIXTURES, "nftables", "kube-proxy.nft")}`);
    assert.match(ns.sh("nft list tables"), /^table ip kube-proxy$/m);

    const before = ns.try(`bash ${VERIFY}`);
    assert.equal(before.status, 1);
    const found = JSON.parse(before.stdout.trim()) as VerifyReport;
    assert.deepEqual(found.stale, ["nftables"], "nftables mode leaves nothing in iptables");
    assert.deepEqual(found.found.nftTables, ["ip kube-proxy", "ip6 kube-proxy"]);

    const run = ns.try(`bash ${CLEANUP} auto`);
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const summary = JSON.parse(run.stdout.trim()) as CleanupSummary;
    assert.deepEqual(summary.removed.nftTables, ["ip kube-proxy", "ip6 kube-proxy"]);
    assert.deepEqual(summary.cleanedBackends, []);
    assert.equal(summary.ipvs, "not-loaded", "no /proc/net/ip_vs: ipvsadm is never called (it would load the module)");
    assert.equal(ns.sh("nft list ruleset"), base, "the whole ruleset is back to what it was, byte for byte");

    const again = ns.try(`bash ${CLEANUP} auto`);
    assert.equal((JSON.parse(again.stdout.trim()) as CleanupSummary).changed, false);
    assert.equal(ns.try(`bash ${VERIFY}`).status, 0);
});

test("without ipvsadm, virtual servers in /proc/net/ip_vs stop the cleanup before it changes anything, and verify says why", { skip: skipModes }, (t) => {
    const node = new IpvsNode("nft");
    t.after(() => node.dispose());
    node.loadBase();
    node.loadKubeProxy();
    // net/netfilter/ipvs/ip_vs_ctl.c ip_vs_info_seq_show: "%s  %08X:%04X %s " per service, hex address and port.
    writeFileSync(
        node.proc,
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  C6336401:01BB rr \n  -> C000020B:192B      Masq    1      0          0         \n",
    );
    const loaded = node.snapshot();
    const missing = join(node.dir, "no-ipvsadm-here");

    const run = node.run(CLEANUP, "auto", missing);
    assert.equal(run.status, 1);
    assert.match(run.stdout, /nothing was changed: ipvs: 1 virtual servers in .* ipvsadm is not installed \(Debian package ipvsadm\).*kube-proxy --cleanup/);
    assert.deepEqual(node.snapshot(), loaded, "iptables, ipsets, kube-ipvs0 all untouched");

    const verify = node.run(VERIFY, "", missing);
    assert.equal(verify.status, 1);
    const report = JSON.parse(verify.stdout.trim()) as VerifyReport;
    assert.equal(report.ipvs, "unverifiable");
    assert.match(report.unverifiable.join("\n"), /ipvsadm is not installed/);
});

test("without ipvsadm and without the ip_vs module, everything else is cleaned", { skip: skipModes }, (t) => {
    const node = new IpvsNode("nft");
    t.after(() => node.dispose());
    node.loadBase();
    node.loadKubeProxy();
    rmSync(node.proc);
    const run = node.run(CLEANUP, "auto", join(node.dir, "no-ipvsadm-here"));
    assert.equal(run.status, 0, run.stderr + run.stdout);
    const summary = JSON.parse(run.stdout.trim()) as CleanupSummary;
    assert.equal(summary.ipvs, "not-loaded");
    assert.equal(summary.removed.ipvsInterface, true);
    assert.equal(summary.removed.ipsets.length, 34);
    assert.equal(node.ns.sh("ipset list -n"), "cilium_node_set_v4\n");
});

test("a rule that is not kube-proxy's still using a kube-proxy ipset stops the cleanup with the set's name", { skip: skipModes }, (t) => {
    const node = new IpvsNode("nft");
    t.after(() => node.dispose());
    node.loadBase();
    node.loadKubeProxy();
    node.ns.sh("iptables-nft -A OPERATOR-SSH -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT");
    const run = node.run(CLEANUP, "auto");
    assert.equal(run.status, 1);
    assert.match(run.stdout, /ipset destroy KUBE-CLUSTER-IP failed: .*in use by a kernel component.*not kube-proxy's/);
    assert.match(node.ns.sh("iptables-nft-save -t filter"), /OPERATOR-SSH -m set --match-set KUBE-CLUSTER-IP/, "the operator's rule is left as it was");
});

/* The stand-in itself: as strict as ipvsadm where the scripts touch it (ipvsadm.c, see its header). */
test("fake-ipvsadm fails like ipvsadm: unknown options, a missing service, no IPVS in the kernel", () => {
    const dir = mkdtempSync(join(tmpdir(), "fakeipvs-"));
    try {
        const env = { ...process.env, FAKE_IPVSADM_STATE: join(dir, "state") };
        const ipvsadm = (args: string[], extra: Record<string, string> = {}) => spawnSync(FAKE_IPVSADM, args, { env: { ...env, ...extra }, encoding: "utf8" });
        assert.equal(ipvsadm(["-A", "-t", "198.51.100.1:443", "-s", "rr"]).status, 0);
        assert.equal(ipvsadm(["-Sn"]).stdout, "-A -t 198.51.100.1:443 -s rr\n");
        const unknown = ipvsadm(["--bogus"]);
        assert.deepEqual([unknown.status, unknown.stderr], [255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"]);
        const later = ipvsadm(["-S", "-n", "--bogus"]);
        assert.deepEqual([later.status, later.stderr], [255, "--bogus: unknown option\n"]);
        const gone = ipvsadm(["-D", "-t", "198.51.100.9:443"]);
        assert.deepEqual([gone.status, gone.stderr], [255, "No such service\n"]);
        const noSvc = ipvsadm(["-D"]);
        assert.deepEqual([noSvc.status, noSvc.stderr], [2, "You need to supply the 'service-address' option for the 'delete-service' command\n"]);
        assert.equal(ipvsadm(["-D", "-t", "198.51.100.1:443"]).status, 0);
        assert.equal(ipvsadm(["-Sn"]).stdout, "");
        const noModule = ipvsadm(["-Sn"], { FAKE_IPVSADM_NO_MODULE: "1" });
        assert.equal(noModule.status, 2);
        assert.match(
            noModule.stderr,
            /^Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module\?\n$/,
        );
        assert.equal(ipvsadm(["-S"]).status, 99, "name resolution is not modelled: refused, not guessed");
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("the embedded cleanup and verify (prelude inlined, run away from their folder) work like the files", { skip: skipModes }, (t) => {
    const ns = new NetNs("kpemb");
    const dir = mkdtempSync(join(tmpdir(), "kpemb-"));
    t.after(() => {
        ns.dispose();
        rmSync(dir, { recursive: true, force: true });
    });
    const cleanup = join(dir, "cleanup.sh");
    const verify = join(dir, "verify.sh");
    writeFileSync(cleanup, readScript("stale-rules-cleanup"));
    writeFileSync(verify, readScript("stale-rules-verify"));
    ns.sh(`nft -f ${join(FIXTURES, "nftables", "kube-proxy.nft")}`);
    assert.equal(ns.try(`bash ${verify}`).status, 1);
    const run = ns.try(`bash ${cleanup} auto`);
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.deepEqual((JSON.parse(run.stdout.trim()) as CleanupSummary).removed.nftTables, ["ip kube-proxy", "ip6 kube-proxy"]);
    assert.equal(ns.try(`bash ${verify}`).status, 0);
});
