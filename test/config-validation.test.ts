import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { validateStackConfig, type RawStackConfig } from "../components/config/validate";
import { PROJECT, rawStack, withValue, withValues } from "./support/stacks";

function issuesOf(raw: RawStackConfig) {
    const result = validateStackConfig(PROJECT, raw);
    return result.ok ? [] : result.issues;
}

function assertRejected(raw: RawStackConfig, key: string, messagePart: RegExp) {
    const issues = issuesOf(raw);
    const hit = issues.find((i) => i.key === `${PROJECT}:${key}`);
    assert.ok(hit, `expected an issue for ${key}, got: ${JSON.stringify(issues)}`);
    assert.match(hit.message, messagePart);
}

test("both example stacks are valid", () => {
    for (const stack of ["prod", "ipv6-native"]) {
        const result = validateStackConfig(PROJECT, rawStack(stack));
        assert.ok(result.ok, `${stack}: ${JSON.stringify(result.ok ? [] : result.issues)}`);
    }
});

test("prod stack is the cluster of seed 000", () => {
    const result = validateStackConfig(PROJECT, rawStack("prod"));
    assert.ok(result.ok);
    const { cluster, cilium, tproxy, nodes } = result.config;
    assert.deepEqual(
        nodes.map((n) => n.name),
        ["m600", "m601", "storage"],
    );
    assert.equal(cilium.chartVersion, "1.19.0");
    assert.equal(cilium.namespace, "default");
    assert.equal(cilium.k8sServiceHost, "172.25.4.1");
    assert.equal(cilium.k8sServicePort, 6444);
    assert.deepEqual(cluster.podCidrs, ["172.26.0.0/16"]);
    assert.deepEqual(cluster.serviceCidrs, ["172.27.0.0/16"]);
    assert.equal(cilium.routingMode, "tunnel");
    assert.equal(cilium.tunnelProtocol, "vxlan");
    assert.equal(tproxy.port, 7892);
    assert.equal(tproxy.mark, 1);
    assert.equal(tproxy.routeTable, 100);
    assert.equal(tproxy.vip4, "172.25.4.1");
});

const base = rawStack("prod");

const badInputs: { name: string; change: Record<string, unknown>; key: string; message: RegExp }[] = [
    { name: "malformed CIDR", change: { "cluster.podCidrs[0]": "172.26.0.0/33" }, key: "cluster.podCidrs[0]", message: /not a CIDR/ },
    {
        name: "CIDR with host bits",
        change: { "cluster.serviceCidrs[0]": "172.27.0.1/16" },
        key: "cluster.serviceCidrs[0]",
        message: /host bits.*172\.27\.0\.0\/16/,
    },
    { name: "tproxy port 65536", change: { "tproxy.port": 65536 }, key: "tproxy.port", message: /1 to 65535/ },
    { name: "API server port 0", change: { "cilium.k8sServicePort": 0 }, key: "cilium.k8sServicePort", message: /1 to 65535/ },
    {
        name: "missing API server host with KPR",
        change: { "cilium.k8sServiceHost": undefined },
        key: "cilium.k8sServiceHost",
        message: /required when kubeProxyReplacement/,
    },
    {
        name: "missing API server port with KPR",
        change: { "cilium.k8sServicePort": undefined },
        key: "cilium.k8sServicePort",
        message: /required when kubeProxyReplacement/,
    },
    { name: "auto API server host", change: { "cilium.k8sServiceHost": "auto" }, key: "cilium.k8sServiceHost", message: /cluster-info/ },
    {
        name: "API server host inside the Service CIDR",
        change: { "cilium.k8sServiceHost": "172.27.0.1" },
        key: "cilium.k8sServiceHost",
        message: /inside the Service CIDR/,
    },
    { name: "mark overlapping Cilium's mask", change: { "tproxy.mark": "0x200" }, key: "tproxy.mark", message: /0x0?f00/ },
    { name: "bypass mark overlapping Cilium's mask", change: { "tproxy.bypassMark": 0xf00 }, key: "tproxy.bypassMark", message: /Cilium's mark mask/ },
    { name: "mark equal to bypass mark", change: { "tproxy.bypassMark": 1 }, key: "tproxy.bypassMark", message: /equals tproxy.mark/ },
    { name: "route table Cilium uses", change: { "tproxy.routeTable": 2004 }, key: "tproxy.routeTable", message: /Cilium uses/ },
    { name: "route table the kernel reserves", change: { "tproxy.routeTable": 254 }, key: "tproxy.routeTable", message: /kernel reserves/ },
    { name: "rule priority Cilium uses", change: { "tproxy.rulePriority": 100 }, key: "tproxy.rulePriority", message: /Cilium uses/ },
    { name: "VIP outside every node network", change: { "tproxy.vip4": "10.9.9.9" }, key: "tproxy.vip4", message: /outside every cluster.nodeCidrs/ },
    { name: "IPv6 address as vip4", change: { "tproxy.vip4": "2001:db8::1" }, key: "tproxy.vip4", message: /not an IPv4 address/ },
    { name: "duplicate node name", change: { "nodes[1].name": "m600" }, key: "nodes[1].name", message: /already used by nodes\[0\]/ },
    { name: "duplicate node address", change: { "nodes[2].address": "172.25.4.11" }, key: "nodes[2].address", message: /already used by nodes\[0\]/ },
    { name: "node name with a shell metacharacter", change: { "nodes[0].name": "m600;reboot" }, key: "nodes[0].name", message: /shell metacharacters/ },
    { name: "node outside node networks", change: { "nodes[0].address": "192.168.9.9" }, key: "nodes[0].address", message: /outside every cluster.nodeCidrs/ },
    { name: "interface name with a space", change: { "cilium.devices": ["bond0", "eth0 eth1"] }, key: "cilium.devices[1]", message: /interface name/ },
    {
        name: "vrrp interface with command substitution",
        change: { "nodes[0].vrrpInterface": "bond0$(id)" },
        key: "nodes[0].vrrpInterface",
        message: /interface name/,
    },
    { name: "host key that is not a key line", change: { "nodes[0].hostKey": "m600 ssh-ed25519 AAAA" }, key: "nodes[0].hostKey", message: /public host key/ },
    {
        name: "kubeProxyReplacement strict",
        change: { "cilium.kubeProxyReplacement": "strict" },
        key: "cilium.kubeProxyReplacement",
        message: /removed in Cilium 1\.16/,
    },
    {
        name: "nodePort.enabled on 1.19",
        change: { "cilium.extraValues": { nodePort: { enabled: true } } },
        key: "cilium.extraValues.nodePort.enabled",
        message: /no longer exists in chart 1\.19\.0/,
    },
    {
        name: "typed key through extraValues",
        change: { "cilium.extraValues": { k8sServiceHost: "10.0.0.1" } },
        key: "cilium.extraValues.k8sServiceHost",
        message: /set from cilium.k8sServiceHost/,
    },
    { name: "maglev table size not accepted", change: { "cilium.maglev": { tableSize: 16000 } }, key: "cilium.maglev.tableSize", message: /prime sizes/ },
    { name: "chart version not semver", change: { "cilium.chartVersion": "1.19" }, key: "cilium.chartVersion", message: /exact chart version/ },
    { name: "chart too old for boolean KPR", change: { "cilium.chartVersion": "1.13.4" }, key: "cilium.chartVersion", message: /older than 1\.14\.0/ },
    { name: "DSR over VXLAN", change: { "cilium.loadBalancer": { mode: "dsr" } }, key: "cilium.loadBalancer.mode", message: /native/ },
    { name: "unknown key (typo)", change: { "tproxy.prot": 7892 }, key: "tproxy", message: /Unrecognized key.*prot/ },
    {
        name: "Pod CIDR overlapping the Service CIDR",
        change: { "cluster.serviceCidrs[0]": "172.26.128.0/17" },
        key: "cluster.serviceCidrs[0]",
        message: /overlaps cluster.podCidrs\[0\]/,
    },
    {
        name: "kube-proxy rollout timeout too short to restart it anywhere",
        change: { "cluster.kubeProxy.rolloutTimeoutSeconds": 5 },
        key: "cluster.kubeProxy.rolloutTimeoutSeconds",
        message: /30/,
    },
    {
        name: "canary node that is not a node",
        change: { "migration.canaryNodes": ["m602"] },
        key: "migration.canaryNodes[0]",
        message: /"m602" is not one of the nodes/,
    },
    {
        name: "canary node listed twice",
        change: { "migration.canaryNodes": ["m600", "m600"] },
        key: "migration.canaryNodes[1]",
        message: /already listed at migration.canaryNodes\[0\]/,
    },
    {
        name: "canary of every node",
        change: { "migration.canaryNodes": ["m600", "m601", "storage"] },
        key: "migration.canaryNodes",
        message: /lists every node, which is no canary/,
    },
    {
        name: "canary without KPR",
        change: { "cilium.kubeProxyReplacement": false, "cilium.bpfMasquerade": false, "migration.canaryNodes": ["m600"] },
        key: "migration.canaryNodes",
        message: /needs cilium.kubeProxyReplacement true/,
    },
    {
        name: "canary node name with a shell metacharacter",
        change: { "migration.canaryNodes": ["m600;id"] },
        key: "migration.canaryNodes[0]",
        message: /shell metacharacters/,
    },
    {
        name: "BPF masquerade without KPR",
        change: { "cilium.kubeProxyReplacement": false },
        key: "cilium.bpfMasquerade",
        message: /needs kubeProxyReplacement true/,
    },
];

for (const bad of badInputs) {
    test(`refused with its key: ${bad.name}`, () => {
        assertRejected(withValues(base, bad.change), bad.key, bad.message);
    });
}

test("missing SSH key is reported without showing any value", () => {
    assertRejected({ ...base, hasSshPrivateKey: false }, "sshPrivateKey", /pulumi config set --secret/);
});

test("native routing with masquerade needs the native routing CIDR", () => {
    const raw = withValues(rawStack("ipv6-native"), { "cilium.ipv6.nativeRoutingCidr": undefined, "cilium.ipv6.masquerade": true });
    assertRejected(raw, "cilium.ipv6.nativeRoutingCidr", /needs the native routing CIDR/);
});

test("IPv6-only cluster without an IPv6 Pod CIDR is refused", () => {
    assertRejected(withValue(rawStack("ipv6-native"), "cluster.podCidrs", ["10.0.0.0/16"]), "cluster.podCidrs", /no IPv6 Pod CIDR/);
});

test("all problems are reported at once, across sections", () => {
    const raw = withValues(base, {
        "cluster.podCidrs[0]": "not-a-cidr",
        "cilium.k8sServiceHost": undefined,
        "tproxy.port": 70000,
        "nodes[1].name": "bad name",
        "nodes[2].address": "172.25.4.11",
    });
    const keys = issuesOf(raw)
        .map((i) => i.key)
        .sort();
    assert.deepEqual(keys, [
        `${PROJECT}:cilium.k8sServiceHost`,
        `${PROJECT}:cluster.podCidrs[0]`,
        `${PROJECT}:nodes[1].name`,
        `${PROJECT}:nodes[2].address`,
        `${PROJECT}:tproxy.port`,
    ]);
});

test("a port is accepted exactly when it is a whole number from 1 to 65535", () => {
    fc.assert(
        fc.property(fc.integer({ min: -100000, max: 200000 }), (port) => {
            const rejected = issuesOf(withValue(base, "tproxy.port", port)).some((i) => i.key === `${PROJECT}:tproxy.port`);
            assert.equal(rejected, port < 1 || port > 65535);
        }),
        { numRuns: 300 },
    );
});

test("a mark is accepted exactly when it avoids Cilium's 0x0f00 bits (and is not the bypass mark)", () => {
    fc.assert(
        fc.property(fc.integer({ min: 1, max: 0xffffffff }), (mark) => {
            const raw = withValues(base, { "tproxy.mark": mark, "tproxy.bypassMark": mark === 0xff ? 0xfe : 0xff });
            const rejected = issuesOf(raw).some((i) => i.key === `${PROJECT}:tproxy.mark`);
            assert.equal(rejected, (mark & 0x0f00) !== 0);
        }),
        { numRuns: 300 },
    );
});

test("any well-formed IPv4 network is accepted as a Pod CIDR and normalised", () => {
    fc.assert(
        fc.property(fc.ipV4(), fc.integer({ min: 8, max: 30 }), (address, prefix) => {
            const octets = address.split(".").map(Number);
            const value = (((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!) >>> 0;
            const network = prefix === 0 ? 0 : (value & (~0 << (32 - prefix))) >>> 0;
            const text = [24, 16, 8, 0].map((s) => (network >>> s) & 255).join(".") + `/${prefix}`;
            const issues = issuesOf(withValues(base, { "cluster.podCidrs[0]": text })).filter(
                (i) => i.key.includes("podCidrs[0]") && /CIDR|host bits/.test(i.message),
            );
            assert.deepEqual(issues, []);
        }),
        { numRuns: 200 },
    );
});
