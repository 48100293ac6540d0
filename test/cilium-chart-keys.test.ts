import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import fc from "fast-check";
import * as semver from "semver";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { ciliumValues } from "../components/cilium/values";
import { REMOVED_KEYS, valueKeyPaths } from "../components/ciliumVersions/ciliumVersions";
import { chartKeySet1190, chartKeyVerdict } from "../components/ciliumVersions/chartKeys/chartKeySet";
import { CONFIG_MAPPINGS, expectedCiliumConfig } from "../components/ciliumVersions/chartKeys/expectedCiliumConfig";

const ROOT = join(__dirname, "..");
const KEYS = chartKeySet1190();
const SEED = "AAECAwQFBgcICQoL"; // base64 of 12 bytes

function loadStack(file: string): MigrationConfig {
    const doc = parse(readFileSync(join(ROOT, file), "utf8")) as { config: Record<string, unknown> };
    const c = doc.config;
    const result = validateStackConfig("cilium-kpr", {
        cluster: c["cilium-kpr:cluster"],
        cilium: c["cilium-kpr:cilium"],
        tproxy: c["cilium-kpr:tproxy"],
        nodes: c["cilium-kpr:nodes"],
        hasSshPrivateKey: true,
    });
    if (!result.ok) assert.fail(`${file} does not validate: ${JSON.stringify(result.issues)}`);
    return result.config;
}

function missingKeys(values: Record<string, unknown>): string[] {
    return valueKeyPaths(values).filter((p) => chartKeyVerdict(KEYS, p) !== "present");
}

test("the key checker itself: real keys pass, removed and misspelled keys do not", () => {
    for (const p of ["kubeProxyReplacement", "bpf.masquerade", "socketLB.enabled", "maglev.hashSeed", "devices", "loadBalancer.mode"]) {
        assert.equal(chartKeyVerdict(KEYS, p), "present", p);
    }
    for (const p of ["kubeProxyReplacment", "bpf.masquarade", "socketLB.enable", "nodePort.enabled", "hostPort.enabled", "tunnel"]) {
        assert.equal(chartKeyVerdict(KEYS, p), "absent", p);
    }
});

for (const file of ["Pulumi.prod.yaml", "Pulumi.ipv6-native.yaml"]) {
    test(`every value key ciliumValues emits for ${file} exists in chart 1.19.0`, () => {
        const values = ciliumValues(loadStack(file).cilium, SEED);
        assert.deepEqual(missingKeys(values), []);
        assert.ok(valueKeyPaths(values).length > 8);
    });
}

test("removed keys in ciliumVersions.ts are really absent from the 1.19.0 values", () => {
    for (const { key, removedIn } of REMOVED_KEYS) {
        if (semver.gt(removedIn, "1.19.0")) continue;
        assert.equal(chartKeyVerdict(KEYS, key), "absent", key);
    }
    // nodePort survives as a section (range, addresses, ...) but without `enabled`; hostPort and externalIPs are gone entirely.
    assert.ok(KEYS.topLevelKeys.has("nodePort"));
    assert.ok(!KEYS.topLevelKeys.has("hostPort"));
    assert.ok(!KEYS.topLevelKeys.has("externalIPs"));
});

test("every template mapping reads a key that exists in chart 1.19.0", () => {
    for (const m of CONFIG_MAPPINGS) assert.equal(chartKeyVerdict(KEYS, m.value), "present", m.value);
});

test("prod stack: the chart model gives KPR true, BPF masquerade true and the API VIP in the agent env", () => {
    const expected = expectedCiliumConfig(ciliumValues(loadStack("Pulumi.prod.yaml").cilium, SEED));
    assert.equal(expected.configMap["kube-proxy-replacement"], "true");
    assert.equal(expected.configMap["enable-bpf-masquerade"], "true");
    assert.equal(expected.configMap["bpf-lb-sock"], "true");
    assert.equal(expected.configMap["routing-mode"], "tunnel");
    assert.equal(expected.configMap["tunnel-protocol"], "vxlan");
    assert.equal(expected.agentEnv["KUBERNETES_SERVICE_HOST"], "172.25.4.1");
    assert.equal(expected.agentEnv["KUBERNETES_SERVICE_PORT"], "6444");
    // The 1.19 chart has no cilium-config key for the API server address.
    assert.ok(!Object.keys(expected.configMap).some((k) => k.includes("service-host")));
});

test("ipv6 stack: native routing CIDR, no IPv6 masquerade, external ClusterIP", () => {
    const expected = expectedCiliumConfig(ciliumValues(loadStack("Pulumi.ipv6-native.yaml").cilium, SEED));
    assert.equal(expected.configMap["enable-ipv4"], "false");
    assert.equal(expected.configMap["enable-ipv6"], "true");
    assert.equal(expected.configMap["ipv6-native-routing-cidr"], "2001:db8::/32");
    assert.equal(expected.configMap["enable-ipv6-masquerade"], "false");
    assert.equal(expected.configMap["bpf-lb-external-clusterip"], "true");
    assert.equal(expected.configMap["auto-direct-node-routes"], "true");
    assert.equal(expected.agentEnv["KUBERNETES_SERVICE_HOST"], "2001:db8:0:1::1");
});

test("the model enforces the template's own failures", () => {
    assert.throws(() => expectedCiliumConfig({ kubeProxyReplacement: "strict" }), /true or false/);
    assert.throws(() => expectedCiliumConfig({ kubeProxyReplacement: true, routingMode: "native", ipv6: { enabled: true } }), /ipv6NativeRoutingCIDR/);
    assert.equal(expectedCiliumConfig({ kubeProxyReplacement: true, devices: ["eth0", "wg0"] }).configMap["devices"], "eth0 wg0");
});

const rawCilium = fc.record(
    {
        chartVersion: fc.constant("1.19.0"),
        kubeProxyReplacement: fc.boolean(),
        k8sServiceHost: fc.constant("172.25.4.1"),
        k8sServicePort: fc.integer({ min: 1, max: 65535 }),
        routingMode: fc.constantFrom("tunnel", "native"),
        tunnelProtocol: fc.constantFrom("vxlan", "geneve"),
        ipv4: fc.record({ enabled: fc.constant(true), nativeRoutingCidr: fc.constant("172.26.0.0/16"), masquerade: fc.boolean() }),
        ipv6: fc.record({ enabled: fc.boolean(), nativeRoutingCidr: fc.constant("2001:db8::/96"), masquerade: fc.boolean() }),
        devices: fc.option(fc.array(fc.constantFrom("eth0", "bond0", "wg0", "en+"), { minLength: 1, maxLength: 3 }), { nil: undefined }),
        loadBalancer: fc.record({
            algorithm: fc.constantFrom("random", "maglev"),
            mode: fc.constantFrom("snat", "dsr", "hybrid"),
            externalClusterIP: fc.boolean(),
        }),
        bpfMasquerade: fc.boolean(),
        hostLegacyRouting: fc.boolean(),
        autoDirectNodeRoutes: fc.boolean(),
        operatorReplicas: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    },
    { requiredKeys: ["chartVersion"] },
);

test("generated valid configs emit only 1.19.0 keys and never hit a template failure", () => {
    let checked = 0;
    fc.assert(
        fc.property(rawCilium, (raw) => {
            const result = validateStackConfig("cilium-kpr", {
                cluster: { podCidrs: ["172.26.0.0/16", "2001:db8::/112"], serviceCidrs: ["172.27.0.0/16", "2001:db8:10::/112"], nodeCidrs: ["172.25.4.0/24"] },
                cilium: JSON.parse(JSON.stringify(raw)) as unknown,
                nodes: [{ name: "n1", address: "172.25.4.11", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNoYXJ0LWtleXMtdGVzdC1ub3QtYS1ob3N0LWtleS0x" }],
                hasSshPrivateKey: true,
            });
            if (!result.ok) return; // invalid combinations are validate.ts's business
            checked++;
            const values = ciliumValues(result.config.cilium, SEED);
            assert.deepEqual(missingKeys(values), []);
            const expected = expectedCiliumConfig(values);
            assert.equal(expected.configMap["kube-proxy-replacement"], String(result.config.cilium.kubeProxyReplacement));
        }),
        { numRuns: 300, seed: 1190 },
    );
    assert.ok(checked > 30, `only ${checked} generated configs validated`);
});
