import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { validateStackConfig, type RawStackConfig } from "../components/config/validate";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { rawStackConfigFromEngine } from "../components/config/engineConfig";
import { PINNABLE_HOST_KEY_TYPES } from "../components/config/hostKey";
import { hostKeyProblem as policyHostKeyProblem } from "../policy/invariants";
import { recordProgramOutcome } from "../tools/mockRuntime";
import { readStackFile } from "../tools/stackFile";
import { ecdsaHostKey, ed25519HostKey, keyLine, rsaHostKey } from "./support/hostKeys";
import { hostToolsMissing } from "../lab/hostTools";
import { runProgram } from "./support/program";
import { PROJECT, ROOT, rawStack, withValue, withValues } from "./support/stacks";

function issuesOf(raw: RawStackConfig) {
    const result = validateStackConfig(PROJECT, raw);
    return result.ok ? [] : result.issues;
}

function assertRejected(raw: RawStackConfig, key: string, messagePart: RegExp) {
    const issues = issuesOf(raw);
    const atKey = issues.filter((i) => i.key === `${PROJECT}:${key}`);
    assert.ok(atKey.length > 0, `expected an issue for ${key}, got: ${JSON.stringify(issues)}`);
    if (!atKey.some((i) => messagePart.test(i.message))) assert.match(atKey.map((i) => i.message).join("\n"), messagePart);
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
    {
        name: "unknown key (typo)",
        change: { "tproxy.prot": 7892 },
        key: "tproxy.prot",
        message: /is not a setting of cilium-kpr:tproxy.*did you mean "port"\?/,
    },
    {
        name: "unknown nested key (typo)",
        change: { "cluster.kubeProxy.damonSet": "kube-proxy" },
        key: "cluster.kubeProxy.damonSet",
        message: /did you mean "daemonSet"\?/,
    },
    { name: "unknown node key", change: { "nodes[1].hostkey": "x" }, key: "nodes[1].hostkey", message: /did you mean "hostKey"\?/ },
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

// ---- issue 12 point 15: bad input that used to pass ----

const octalAndHex: { name: string; change: Record<string, unknown>; key: string; message: RegExp }[] = [
    {
        name: "octal octet in a Pod CIDR (172.026 is 172.22 to inet_aton)",
        change: { "cluster.podCidrs[0]": "172.026.0.0/16" },
        key: "cluster.podCidrs[0]",
        message: /four plain decimal numbers.*read it as 172\.22\.0\.0.*did you mean 172\.26\.0\.0\?/,
    },
    {
        name: "octal octet in a Service CIDR",
        change: { "cluster.serviceCidrs[0]": "172.027.0.0/16" },
        key: "cluster.serviceCidrs[0]",
        message: /read it as 172\.23\.0\.0.*did you mean 172\.27\.0\.0\?/,
    },
    { name: "hex octet in a node network", change: { "cluster.nodeCidrs[0]": "0xac.25.4.0/24" }, key: "cluster.nodeCidrs[0]", message: /four plain decimal/ },
    { name: "prefix with a leading zero", change: { "cluster.podCidrs[0]": "172.26.0.0/016" }, key: "cluster.podCidrs[0]", message: /not a CIDR/ },
    { name: "octal node address", change: { "nodes[0].address": "172.025.4.11" }, key: "nodes[0].address", message: /did you mean 172\.25\.4\.11\?/ },
    { name: "shortened node address", change: { "nodes[0].address": "10" }, key: "nodes[0].address", message: /four plain decimal/ },
    { name: "octal VIP", change: { "tproxy.vip4": "172.025.4.1" }, key: "tproxy.vip4", message: /did you mean 172\.25\.4\.1\?/ },
    {
        name: "octal API server address (not taken for a DNS name)",
        change: { "cilium.k8sServiceHost": "172.025.4.1" },
        key: "cilium.k8sServiceHost",
        message: /did you mean 172\.25\.4\.1\?/,
    },
    {
        name: "octal reserved range",
        change: { "tproxy.extraReserved": ["010.0.0.0/8"] },
        key: "tproxy.extraReserved[0]",
        message: /did you mean 10\.0\.0\.0\?/,
    },
    {
        name: "octal IPv4 tail of an IPv6 reserved range",
        change: { "tproxy.reserved": { v6: ["::ffff:172.027.0.0/112"] } },
        key: "tproxy.reserved.v6[0]",
        message: /four plain decimal/,
    },
    {
        name: "octal native routing CIDR",
        change: { "cilium.ipv4.nativeRoutingCidr": "172.026.0.0/16" },
        key: "cilium.ipv4.nativeRoutingCidr",
        message: /four plain decimal/,
    },
];

const overlapsAndVip: typeof octalAndHex = [
    {
        name: "node network inside the Pod CIDR",
        change: { "cluster.nodeCidrs": ["172.25.4.0/24", "172.26.10.0/24"] },
        key: "cluster.nodeCidrs[1]",
        message: /172\.26\.10\.0\/24 overlaps cluster\.podCidrs\[0\] \(172\.26\.0\.0\/16\)/,
    },
    {
        name: "node network covering the Service CIDR",
        change: { "cluster.nodeCidrs": ["172.24.0.0/14"] },
        key: "cluster.nodeCidrs[0]",
        message: /overlaps cluster\.serviceCidrs\[0\]/,
    },
    { name: "VIP equal to a node's address", change: { "tproxy.vip4": "172.25.4.12" }, key: "tproxy.vip4", message: /is the address of nodes\[1\] \(m601\)/ },
];

const chartAndRepository: typeof octalAndHex = [
    { name: "chart version with a leading space", change: { "cilium.chartVersion": " 1.19.0" }, key: "cilium.chartVersion", message: /no spaces/ },
    { name: "chart version with a trailing space", change: { "cilium.chartVersion": "1.19.0 " }, key: "cilium.chartVersion", message: /no spaces/ },
    { name: "chart version with a leading v", change: { "cilium.chartVersion": "v1.19.0" }, key: "cilium.chartVersion", message: /no leading v/ },
    { name: "chart version range", change: { "cilium.chartVersion": "^1.19.0" }, key: "cilium.chartVersion", message: /exact chart version/ },
    {
        name: "chart minor without rules",
        change: { "cilium.chartVersion": "1.20.0" },
        key: "cilium.chartVersion",
        message: /1\.20\.0 is a chart minor this program has no rules for.*allowUntestedChartVersion/,
    },
    { name: "pre-release of a minor without rules", change: { "cilium.chartVersion": "1.20.0-pre.1" }, key: "cilium.chartVersion", message: /no rules/ },
    {
        name: "repository URL with a space",
        change: { "cilium.repository": "https://helm.cilium.io/ charts" },
        key: "cilium.repository",
        message: /no spaces.*rollback/,
    },
    { name: "repository without a host", change: { "cilium.repository": "https://" }, key: "cilium.repository", message: /with a host/ },
    {
        name: "repository over ftp",
        change: { "cilium.repository": "ftp://mirror.example/cilium" },
        key: "cilium.repository",
        message: /https:\/\/, http:\/\/ or oci:\/\//,
    },
];

const typeErrors: typeof octalAndHex = [
    { name: "port as text", change: { "tproxy.port": "7892x" }, key: "tproxy.port", message: /^expected a number, got the text "7892x"$/ },
    {
        name: "chart version as a YAML number",
        change: { "cilium.chartVersion": 1.19 },
        key: "cilium.chartVersion",
        message: /^expected text, got the number 1\.19 \(put it in quotes in the stack file: "1\.19"\)$/,
    },
    { name: "boolean as text", change: { "tproxy.enabled": "on" }, key: "tproxy.enabled", message: /^expected true or false, got the text "on"$/ },
    {
        name: "misspelt choice",
        change: { "cilium.routingMode": "tunel" },
        key: "cilium.routingMode",
        message: /^must be one of "tunnel", "native"; got the text "tunel"$/,
    },
    {
        name: "list given as a map",
        change: { "cluster.podCidrs": { a: "172.26.0.0/16" } },
        key: "cluster.podCidrs",
        message: /^expected a list .*got a map of settings$/,
    },
    {
        name: "fractional timeout",
        change: { "cluster.kubeProxy.rolloutTimeoutSeconds": 90.5 },
        key: "cluster.kubeProxy.rolloutTimeoutSeconds",
        message: /whole number/,
    },
    { name: "missing required node field", change: { "nodes[0].hostKey": undefined }, key: "nodes[0].hostKey", message: /^is required$/ },
    { name: "KPR as a number", change: { "cilium.kubeProxyReplacement": 1 }, key: "cilium.kubeProxyReplacement", message: /^must be true or false$/ },
    { name: "mark as a boolean", change: { "tproxy.mark": true }, key: "tproxy.mark", message: /^must be a mark: a number such as 1 or 0x1/ },
    { name: "a section that is not a map", change: { migration: "m600" }, key: "migration", message: /^expected a map of settings .*got the text "m600"$/ },
];

for (const bad of [...octalAndHex, ...overlapsAndVip, ...chartAndRepository, ...typeErrors]) {
    test(`refused with its key: ${bad.name}`, () => {
        assertRejected(withValues(base, bad.change), bad.key, bad.message);
    });
}

test("valid inputs next to the refused ones still pass: oci repository, IPv4-mapped IPv6, a newer minor when explicitly allowed, 1.19 pre-release", () => {
    for (const change of [
        { "cilium.repository": "oci://quay.io/cilium/charts" },
        { "tproxy.reserved": { v6: ["::ffff:172.27.0.0/112"] } },
        { "cilium.chartVersion": "1.20.1", "cilium.allowUntestedChartVersion": true },
        { "cilium.chartVersion": "1.19.0-rc.1" },
        { "cilium.chartVersion": "1.14.0" },
    ]) {
        assert.deepEqual(issuesOf(withValues(base, change)), [], JSON.stringify(change));
    }
});

test("the prod stack's addresses are read as written: no octet changes between the file and the validated config", () => {
    const result = validateStackConfig(PROJECT, base);
    assert.ok(result.ok);
    assert.deepEqual(result.config.cluster.serviceCidrs, ["172.27.0.0/16"]);
    assert.deepEqual(
        result.config.nodes.map((n) => n.address),
        ["172.25.4.11", "172.25.4.12", "172.25.4.13"],
    );
});

test("an IPv4 CIDR is refused exactly when an octet or the prefix has a leading zero or is not decimal", () => {
    fc.assert(
        fc.property(
            fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }),
            fc.array(fc.constantFrom("", "0", "00", "0x"), { minLength: 4, maxLength: 4 }),
            (octets, prefixes) => {
                const text = `${octets.map((o, i) => `${prefixes[i]}${prefixes[i] === "0x" ? o.toString(16) : String(o)}`).join(".")}/32`;
                const plain = prefixes.every((p) => p === "");
                const refusedAsNonDecimal = issuesOf(withValue(base, "tproxy.extraReserved", [text])).some(
                    (i) => i.key === `${PROJECT}:tproxy.extraReserved[0]` && /four plain decimal|not a CIDR/.test(i.message),
                );
                assert.equal(refusedAsNonDecimal, !plain, text);
            },
        ),
        { numRuns: 300 },
    );
});

// ---- host keys: one validator for the config and the policy pack ----

const ed = ed25519HostKey();
const edBlob = Buffer.from(ed.split(" ")[1]!, "base64");
const p256 = ecdsaHostKey("nistp256");
const p256Fields = { curve: Buffer.from("nistp256"), point: Buffer.from(p256.split(" ")[1]!, "base64").subarray(4 + 19 + 4 + 8 + 4) };

/** Host key lines with what is wrong with them (undefined: a key that pins). */
const HOST_KEYS: { name: string; line: string; problem: RegExp | undefined }[] = [
    { name: "ed25519", line: ed, problem: undefined },
    { name: "ecdsa nistp256", line: p256, problem: undefined },
    { name: "ecdsa nistp384", line: ecdsaHostKey("nistp384"), problem: undefined },
    { name: "ecdsa nistp521", line: ecdsaHostKey("nistp521"), problem: undefined },
    { name: "ssh-rsa", line: rsaHostKey(), problem: /ssh-rsa.*OpenSSH 8\.8.*ed25519 or ECDSA.*ssh-keyscan -t ed25519 <host>/ },
    { name: "blob of another type", line: `ecdsa-sha2-nistp256 ${ed.split(" ")[1]!}`, problem: /says ecdsa-sha2-nistp256 but the key inside is "ssh-ed25519"/ },
    { name: "truncated ed25519 (line cut short)", line: `ssh-ed25519 ${edBlob.subarray(0, edBlob.length - 6).toString("base64")}`, problem: /truncated/ },
    { name: "ed25519 of 31 bytes", line: keyLine("ssh-ed25519", [Buffer.alloc(31, 7)]), problem: /31 bytes; ed25519 keys are 32/ },
    { name: "ed25519 with trailing junk", line: keyLine("ssh-ed25519", [Buffer.alloc(32, 7), Buffer.from("x")]), problem: /trailing junk/ },
    { name: "ecdsa without its point", line: keyLine("ecdsa-sha2-nistp256", [p256Fields.curve]), problem: /truncated.*lacks its point/ },
    {
        name: "ecdsa naming another curve",
        line: keyLine("ecdsa-sha2-nistp256", [Buffer.from("nistp384"), p256Fields.point]),
        problem: /names the curve "nistp384"/,
    },
    {
        name: "ecdsa point off the curve",
        line: keyLine("ecdsa-sha2-nistp256", [p256Fields.curve, Buffer.concat([p256Fields.point.subarray(0, 64), Buffer.from([p256Fields.point[64]! ^ 1])])]),
        problem: /not on the nistp256 curve/,
    },
    { name: "ssh-dss", line: keyLine("ssh-dss", [Buffer.alloc(20, 1)]), problem: /is a ssh-dss key; pin the node's ed25519 or ECDSA key/ },
    { name: "with a comment", line: `${ed} root@m600`, problem: /without a comment/ },
    { name: "with the host in front", line: `m600 ${ed}`, problem: /not a public host key line/ },
];

test("host keys: the config refuses exactly the keys the policy pack refuses, with the same words", () => {
    for (const { name, line, problem } of HOST_KEYS) {
        const configIssues = issuesOf(withValue(base, "nodes[1].hostKey", line)).filter((i) => i.key === `${PROJECT}:nodes[1].hostKey`);
        const policyProblem = policyHostKeyProblem(line);
        if (problem === undefined) {
            assert.deepEqual(configIssues, [], name);
            assert.equal(policyProblem, undefined, name);
        } else {
            assert.equal(configIssues.length, 1, `${name}: ${JSON.stringify(configIssues)}`);
            assert.match(configIssues[0]!.message, problem, name);
            assert.equal(policyProblem, configIssues[0]!.message, `${name}: one validator, one message`);
        }
    }
});

test(
    "host keys: what the validator accepts, OpenSSH's own parser (ssh-keygen -l) accepts, and the broken ones it refuses too",
    { skip: hostToolsMissing(["ssh-keygen"]) },
    () => {
        const dir = mkdtempSync(path.join(tmpdir(), "hostkeys-"));
        try {
            for (const { name, line, problem } of HOST_KEYS) {
                if (/comment|host in front|ssh-dss/.test(name)) continue; // forms ssh-keygen reads but a pin does not take, or keys it no longer builds
                const file = path.join(dir, "key.pub");
                writeFileSync(file, `${line}\n`);
                const openssh = spawnSync("ssh-keygen", ["-l", "-f", file], { encoding: "utf8" });
                const opensshAccepts = openssh.status === 0;
                // ssh-rsa is a well-formed key OpenSSH reads; it is refused for the algorithm a pin would force.
                const weAccept = problem === undefined || name === "ssh-rsa";
                assert.equal(opensshAccepts, weAccept, `${name}: ssh-keygen says ${openssh.stdout}${openssh.stderr}`);
            }
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    },
);

// ---- every key of the stack: typos of a whole section, other namespaces, plain-text private keys ----

/** The raw config the way the program builds it from the engine's config (all keys, secret flags), from the prod stack file plus `extra`. */
function engineRaw(extra: Record<string, string>, secret: readonly string[] = ["cilium-kpr:sshPrivateKey"]): RawStackConfig {
    const file = readStackFile(ROOT, "prod");
    const all: Record<string, string> = { "cilium-kpr:sshPrivateKey": "[secret]" };
    for (const [k, v] of Object.entries(file.config)) all[`${file.project}:${k}`] = v;
    return rawStackConfigFromEngine(PROJECT, { ...all, ...extra }, (k) => secret.includes(k));
}

const OPENSSH_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

test("the prod stack read the way the program reads it (every key of the engine's config) is valid", () => {
    assert.deepEqual(issuesOf(engineRaw({})), []);
});

test("a misspelt section of the project's namespace is refused with the section it probably meant", () => {
    const tproxi = JSON.stringify({ enabled: false });
    const issues = issuesOf(engineRaw({ "cilium-kpr:tproxi": tproxi, "cilium-kpr:migraton": JSON.stringify({ canaryNodes: ["m600"] }) }));
    assert.deepEqual(
        issues.map((i) => i.key),
        ["cilium-kpr:tproxi", "cilium-kpr:migraton"],
    );
    assert.match(issues[0]!.message, /is not a setting of this program \(cilium-kpr\).*did you mean "tproxy"\?/);
    assert.match(issues[1]!.message, /did you mean "migration"\?/);
    const far = issuesOf(engineRaw({ "cilium-kpr:zzzzzz": "1" }));
    assert.match(far[0]!.message, /the settings there are: cluster, cilium, tproxy, nodes, migration, sshPrivateKey/);
});

test("a key under a misspelt project name is refused; other namespaces (providers) are left alone", () => {
    const issues = issuesOf(engineRaw({ "cilium-kp:tproxy": "{}", "kubernetes:context": "prod", "command:x": "1" }));
    assert.deepEqual(
        issues.map((i) => [i.key, i.message]),
        [["cilium-kp:tproxy", 'is in namespace "cilium-kp", which this program does not read; did you mean cilium-kpr:tproxy?']],
    );
});

test("a private key in plain text is refused under whatever key it sits; encrypted it is fine", () => {
    const plainSsh = issuesOf(engineRaw({ "cilium-kpr:sshPrivateKey": OPENSSH_PRIVATE_KEY }, []));
    assert.deepEqual(
        plainSsh.map((i) => i.key),
        ["cilium-kpr:sshPrivateKey"],
    );
    assert.match(plainSsh[0]!.message, /private key in plain text.*pulumi config set --secret sshPrivateKey/);
    // Even a value that does not look like a key is refused in plain text under sshPrivateKey.
    assert.equal(issuesOf(engineRaw({ "cilium-kpr:sshPrivateKey": "hunter2" }, [])).length, 1);
    const elsewhere = issuesOf(engineRaw({ "command:privateKey": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----" }));
    assert.deepEqual(
        elsewhere.map((i) => i.key),
        ["command:privateKey"],
    );
    assert.match(elsewhere[0]!.message, /pulumi config set --secret command:privateKey < key-file/);
    assert.deepEqual(issuesOf(engineRaw({ "cilium-kpr:sshPrivateKey": OPENSSH_PRIVATE_KEY })), [], "encrypted (secure:) is what is wanted");
    // No message shows the key itself.
    assert.ok(!JSON.stringify(plainSsh).includes("b3BlbnNzaC1rZXktdjEAAAAA"));
});

test("the program itself enumerates the engine's config: a misspelt section and a plain-text key fail the run before any resource", async () => {
    const typo = await runProgram("prod", { tproxi: { enabled: false } });
    assert.match(String(typo.error), /cilium-kpr:tproxi: is not a setting of this program.*did you mean "tproxy"\?/);
    assert.deepEqual(
        typo.resources.filter((r) => r.custom),
        [],
    );
    const file = readStackFile(ROOT, "prod");
    const plain = await recordProgramOutcome(
        { project: file.project, stack: "prod", config: { ...file.config, sshPrivateKey: OPENSSH_PRIVATE_KEY }, secretKeys: [] },
        () => freshProgram(),
    );
    assert.match(String(plain.error), /cilium-kpr:sshPrivateKey: holds a private key in plain text/);
    assert.ok(!String(plain.error).includes("b3BlbnNzaC1rZXktdjEAAAAA"), "the error does not show the key");
});

/** index.ts evaluated anew (as test/support/program.ts runProgram does), for a run with config of its own. */
function freshProgram(): unknown {
    const entry = path.join(ROOT, "index.ts");
    for (const key of Object.keys(require.cache)) {
        if (key.startsWith(path.join(ROOT, "components")) || key === entry) delete require.cache[key];
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- re-evaluating the program needs require after clearing require.cache
    return require(entry) as unknown;
}

// ---- the repository and chart version the destroy's values rollback accepts ----

const RESTORE_SCRIPT = readFileSync(path.join(ROOT, "components/kubeproxy/scripts/cilium-values-restore.sh"), "utf8");

/** The `[[ "$VAR" =~ pattern ]]` test the script applies to a variable, run by bash on each sample. */
function scriptAccepts(variable: string, samples: readonly string[]): boolean[] {
    const line = RESTORE_SCRIPT.split("\n").find((l) => l.startsWith(`[[ "$${variable}" =~ `));
    assert.ok(line, `cilium-values-restore.sh checks ${variable} with [[ =~ ]]`);
    const pattern = line.slice(`[[ "$${variable}" =~ `.length, line.indexOf(" ]]"));
    const out = execFileSync("bash", ["-c", `while IFS= read -r -d '' v; do if [[ "$v" =~ ${pattern} ]]; then echo 1; else echo 0; fi; done`], {
        input: samples.map((s) => `${s}\0`).join(""),
        encoding: "utf8",
    });
    return out
        .trim()
        .split("\n")
        .map((x) => x === "1");
}

const REPOSITORIES = [
    "https://helm.cilium.io/",
    "http://charts.internal:8080/cilium",
    "oci://quay.io/cilium/charts",
    "https://helm.cilium.io/ charts",
    "https://helm.cilium.io/\tx",
    " https://helm.cilium.io/",
    "ftp://mirror.example/cilium",
    "helm.cilium.io",
    "https:helm.cilium.io",
    "https://",
    "oci://",
    "file:///srv/charts",
];

test("every repository the config accepts, cilium-values-restore.sh accepts too (its own pattern, run by bash)", () => {
    const script = scriptAccepts("CILIUM_REPOSITORY", REPOSITORIES);
    const accepted: string[] = [];
    REPOSITORIES.forEach((url, i) => {
        const configAccepts = !issuesOf(withValue(base, "cilium.repository", url)).some((x) => x.key === `${PROJECT}:cilium.repository`);
        if (configAccepts) {
            accepted.push(url);
            assert.ok(script[i], `config accepts ${JSON.stringify(url)} but the destroy script refuses it`);
        }
    });
    assert.deepEqual(accepted, ["https://helm.cilium.io/", "http://charts.internal:8080/cilium", "oci://quay.io/cilium/charts"]);
});

test("generated repositories: config acceptance implies the script's", () => {
    fc.assert(
        fc.property(fc.constantFrom("https://", "http://", "oci://", "ftp://", "", "https:"), fc.string({ maxLength: 20 }), (scheme, rest) => {
            const url = `${scheme}${rest}`;
            if (url.includes("\0")) return;
            const configAccepts = !issuesOf(withValue(base, "cilium.repository", url)).some((x) => x.key === `${PROJECT}:cilium.repository`);
            if (configAccepts) assert.ok(scriptAccepts("CILIUM_REPOSITORY", [url])[0], JSON.stringify(url));
        }),
        { numRuns: 60 },
    );
});

test("every chart version the config accepts, cilium-values-restore.sh accepts too", () => {
    const versions = ["1.19.0", "1.19.1", "1.19.0-rc.1", "1.19.0+build.5", " 1.19.0", "1.19.0 ", "v1.19.0", "1.19", "^1.19.0", "1.19.x", "1.19.0 || 1.18.0"];
    const script = scriptAccepts("CILIUM_CHART_VERSION", versions);
    versions.forEach((v, i) => {
        const configAccepts = !issuesOf(withValue(base, "cilium.chartVersion", v)).some((x) => x.key === `${PROJECT}:cilium.chartVersion`);
        if (configAccepts) assert.ok(script[i], `config accepts ${JSON.stringify(v)} but the destroy script refuses it`);
    });
});

test("every problem of a stack is reported at once, old and new kinds together", () => {
    const raw = withValues(engineRaw({ "cilium-kpr:tproxi": "{}" }), {
        "cluster.podCidrs[0]": "172.026.0.0/16",
        "cluster.nodeCidrs": ["172.25.4.0/24", "172.27.1.0/24"],
        "cilium.chartVersion": "1.20.0",
        "tproxy.vip4": "172.25.4.13",
        "tproxy.prot": 1,
        "nodes[0].hostKey": rsaHostKey(),
        "nodes[1].address": "172.025.4.12",
    });
    const keys = issuesOf(raw)
        .map((i) => i.key)
        .sort();
    assert.deepEqual(keys, [
        "cilium-kpr:cilium.chartVersion",
        "cilium-kpr:cluster.nodeCidrs[1]",
        "cilium-kpr:cluster.podCidrs[0]",
        "cilium-kpr:nodes[0].hostKey",
        "cilium-kpr:nodes[1].address",
        "cilium-kpr:tproxi",
        "cilium-kpr:tproxy.prot",
        "cilium-kpr:tproxy.vip4",
    ]);
});

test(
    "why ssh-rsa is refused: this OpenSSH server offers no ssh-rsa host key algorithm by default, and offers every type the validator accepts",
    { skip: hostToolsMissing(["sshd", "ssh-keygen", "setpriv"]) },
    () => {
        const dir = mkdtempSync(path.join(tmpdir(), "sshd-algos-"));
        try {
            execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", path.join(dir, "rsa_host_key")]);
            // As nobody: sshd run by root insists on /run/sshd, which other tests on this machine may be removing.
            chmodSync(dir, 0o755);
            chmodSync(path.join(dir, "rsa_host_key"), 0o644);
            const asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
            const env = { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` };
            const version = spawnSync("sshd", ["-V"], { encoding: "utf8", env });
            const effective = execFileSync("setpriv", [...asNobody, "sshd", "-T", "-f", "/dev/null", "-h", path.join(dir, "rsa_host_key")], {
                encoding: "utf8",
                env,
            });
            const offered = /^hostkeyalgorithms (.*)$/m.exec(effective)?.[1]?.split(",") ?? [];
            assert.ok(offered.length > 0, effective);
            assert.ok(!offered.includes("ssh-rsa"), `${version.stderr.trim()} offers ssh-rsa: ${offered.join(",")}`);
            assert.ok(offered.includes("rsa-sha2-256"), "RSA host keys are served only with SHA-2 signatures");
            for (const type of PINNABLE_HOST_KEY_TYPES) assert.ok(offered.includes(type), type);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    },
);
