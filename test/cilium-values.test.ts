import { test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { validateStackConfig, type MigrationConfig, type RawStackConfig } from "../components/config/validate";
import { ciliumValues } from "../components/cilium/values";
import { valueKeyPaths } from "../components/ciliumVersions/ciliumVersions";
import { PROJECT, rawStack, withValues } from "./support/stacks";

function valid(raw: RawStackConfig): MigrationConfig {
    const result = validateStackConfig(PROJECT, raw);
    assert.ok(result.ok, JSON.stringify(result.ok ? [] : result.issues));
    return result.config;
}

test("prod: the KPR values of seed 000", () => {
    const values = ciliumValues(valid(rawStack("prod")).cilium);
    assert.deepEqual(values, {
        kubeProxyReplacement: true,
        k8sServiceHost: "172.25.4.1",
        k8sServicePort: 6444,
        socketLB: { enabled: true },
        bpf: { masquerade: true },
        routingMode: "tunnel",
        tunnelProtocol: "vxlan",
        ipv4: { enabled: true },
        ipv6: { enabled: false },
        loadBalancer: { algorithm: "random", mode: "snat" },
        rollOutCiliumPods: true,
        operator: { rollOutPods: true },
    });
});

test("a values change that only touches cilium-config restarts the agents and the operator", () => {
    // Without these the chart leaves the pod templates unchanged when only cilium-config changes, and
    // running agents keep the old settings until something else restarts them.
    for (const raw of [rawStack("prod"), rawStack("ipv6-native"), withValues(rawStack("prod"), { "cilium.operatorReplicas": 2 })]) {
        const values = ciliumValues(valid(raw).cilium);
        assert.equal(values.rollOutCiliumPods, true);
        assert.equal((values.operator as Record<string, unknown>).rollOutPods, true);
    }
    const replicas = ciliumValues(valid(withValues(rawStack("prod"), { "cilium.operatorReplicas": 2 })).cilium).operator;
    assert.deepEqual(replicas, { rollOutPods: true, replicas: 2 });
});

test("ipv6-native: the IPv6-only native-routing profile of seed 001", () => {
    const values = ciliumValues(valid(rawStack("ipv6-native")).cilium);
    assert.equal(values.kubeProxyReplacement, true);
    assert.equal(values.routingMode, "native");
    assert.equal(values.tunnelProtocol, undefined, "no tunnel protocol in native routing");
    assert.deepEqual(values.ipv4, { enabled: false });
    assert.deepEqual(values.ipv6, { enabled: true });
    assert.equal(values.ipv6NativeRoutingCIDR, "2001:db8::/32");
    assert.equal(values.autoDirectNodeRoutes, true);
    assert.equal(values.enableIPv6Masquerade, false);
    assert.deepEqual(values.bpf, { masquerade: true, lbExternalClusterIP: true });
    assert.equal(values.k8sServiceHost, "2001:db8:0:1::1");
    assert.deepEqual(values.ipam, { mode: "kubernetes" }, "extraValues are carried");
    assert.deepEqual(values.k8s, { requireIPv6PodCIDR: true, requireIPv4PodCIDR: false });
});

test("devices render as a list, not a comma string", () => {
    const values = ciliumValues(valid(withValues(rawStack("prod"), { "cilium.devices": ["bond0", "lxc+"] })).cilium);
    assert.deepEqual(values.devices, ["bond0", "lxc+"]);
});

test("maglev carries the table size and the seed from state; it refuses to render without one", () => {
    const cilium = valid(withValues(rawStack("prod"), { "cilium.loadBalancer": { algorithm: "maglev" }, "cilium.maglev": { tableSize: 65521 } })).cilium;
    const seed = Buffer.alloc(12, 7).toString("base64");
    assert.deepEqual(ciliumValues(cilium, seed).maglev, { tableSize: 65521, hashSeed: seed });
    assert.throws(() => ciliumValues(cilium), /hash seed/);
    assert.equal(ciliumValues(valid(rawStack("prod")).cilium, seed).maglev, undefined, "no maglev block with the random algorithm");
});

test("DSR over a Geneve tunnel dispatches over Geneve", () => {
    const cilium = valid(withValues(rawStack("prod"), { "cilium.tunnelProtocol": "geneve", "cilium.loadBalancer": { mode: "dsr" } })).cilium;
    assert.deepEqual(ciliumValues(cilium).loadBalancer, { algorithm: "random", mode: "dsr", dsrDispatch: "geneve" });
});

test("KPR off renders false and no socket LB or load balancer block", () => {
    const cilium = valid(withValues(rawStack("prod"), { "cilium.kubeProxyReplacement": false, "cilium.bpfMasquerade": false })).cilium;
    const values = ciliumValues(cilium);
    assert.equal(values.kubeProxyReplacement, false);
    assert.equal(values.socketLB, undefined);
    assert.equal(values.loadBalancer, undefined);
});

test("for every supported chart version and setting, values use only forms the version accepts", () => {
    const removedIn119 = ["nodePort.enabled", "hostPort.enabled", "externalIPs.enabled", "tunnel", "nativeRoutingCIDR"];
    fc.assert(
        fc.property(
            fc.constantFrom("1.14.0", "1.15.7", "1.16.3", "1.17.0", "1.18.2", "1.19.0", "1.19.1"),
            fc.constantFrom("random", "maglev"),
            fc.constantFrom("vxlan", "geneve"),
            fc.boolean(),
            fc.option(fc.array(fc.constantFrom("eth0", "bond0", "lxc+", "eth1.100"), { minLength: 1, maxLength: 3 }), { nil: undefined }),
            (version, algorithm, tunnelProtocol, externalClusterIP, devices) => {
                const cilium = valid(
                    withValues(rawStack("prod"), {
                        "cilium.chartVersion": version,
                        "cilium.loadBalancer": { algorithm, externalClusterIP },
                        "cilium.tunnelProtocol": tunnelProtocol,
                        "cilium.devices": devices,
                    }),
                ).cilium;
                const values = ciliumValues(cilium, Buffer.alloc(12).toString("base64"));
                assert.equal(typeof values.kubeProxyReplacement, "boolean", "never strict/partial/probe strings");
                assert.equal(values.k8sServiceHost, "172.25.4.1");
                assert.equal(values.k8sServicePort, 6444);
                assert.deepEqual(values.socketLB, { enabled: true });
                assert.equal((values.bpf as Record<string, unknown>).masquerade, true);
                for (const key of valueKeyPaths(values)) assert.ok(!removedIn119.includes(key), `${key} must not be rendered`);
                if (devices) assert.ok(Array.isArray(values.devices));
            },
        ),
        { numRuns: 150 },
    );
});
