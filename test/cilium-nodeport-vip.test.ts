import { test } from "node:test";
import * as assert from "node:assert/strict";
import { validateStackConfig, type MigrationConfig, type RawStackConfig } from "../components/config/validate";
import { ciliumValues } from "../components/cilium/values";
import { expectedCiliumConfig } from "../components/ciliumVersions/chartKeys/expectedCiliumConfig";
import { operatorPreflightEnv } from "../components/preflight/preflightArgs";
import { PROJECT, rawStack, withValues } from "./support/stacks";

/*
 * cilium/cilium#37691: with KPR, Cilium 1.19 serves NodePorts only on addresses marked for NodePort in its
 * node-address table. Without --nodeport-addresses that is one address per device and family, the node IP
 * where it is (never a keepalived VIP beside it); with it, every address inside the listed CIDRs, re-evaluated when addresses
 * come and go (README "NodePort on the keepalived VIP" has the sources). cilium.nodePortAddresses sets it.
 */

function validate(raw: RawStackConfig) {
    return validateStackConfig(PROJECT, raw);
}
function valid(raw: RawStackConfig): MigrationConfig {
    const result = validate(raw);
    assert.ok(result.ok, JSON.stringify(result.ok ? [] : result.issues));
    return result.config;
}

const VIP_AND_NODES = ["172.25.4.0/24", "172.25.4.1/32"];

test("cilium.nodePortAddresses renders nodePort.addresses, which the chart turns into nodeport-addresses", () => {
    const values = ciliumValues(valid(withValues(rawStack("prod"), { "cilium.nodePortAddresses": VIP_AND_NODES })).cilium);
    assert.deepEqual(values.nodePort, { addresses: VIP_AND_NODES });
    assert.equal(expectedCiliumConfig(values).configMap["nodeport-addresses"], "172.25.4.0/24,172.25.4.1/32");
});

test("unset, nothing is rendered: Cilium keeps its default of each device's first address", () => {
    const values = ciliumValues(valid(rawStack("prod")).cilium);
    assert.equal(values.nodePort, undefined);
    assert.equal(expectedCiliumConfig(values).configMap["nodeport-addresses"], undefined);
});

test("a list that leaves out a node's own address is refused: NodePorts would stop answering there", () => {
    const result = validate(withValues(rawStack("prod"), { "cilium.nodePortAddresses": ["172.25.4.1/32"] }));
    assert.equal(result.ok, false);
    const issues = result.ok ? [] : result.issues;
    assert.deepEqual(
        issues.map((i) => i.key),
        ["cilium-kpr:cilium.nodePortAddresses", "cilium-kpr:cilium.nodePortAddresses", "cilium-kpr:cilium.nodePortAddresses"],
    );
    assert.match(issues[0]!.message, /does not cover nodes\[0\]\.address 172\.25\.4\.11/);
});

test("bad CIDRs, an empty list, a disabled family and KPR off are each named", () => {
    const bad = validate(withValues(rawStack("prod"), { "cilium.nodePortAddresses": ["172.25.4.0/33"] }));
    assert.ok(!bad.ok && bad.issues.some((i) => i.key === "cilium-kpr:cilium.nodePortAddresses[0]"), JSON.stringify(bad));
    const empty = validate(withValues(rawStack("prod"), { "cilium.nodePortAddresses": [] }));
    assert.ok(!empty.ok && empty.issues.some((i) => i.key === "cilium-kpr:cilium.nodePortAddresses"), JSON.stringify(empty));
    const v6 = validate(withValues(rawStack("prod"), { "cilium.nodePortAddresses": [...VIP_AND_NODES, "2001:db8::/64"] }));
    assert.ok(!v6.ok && v6.issues.some((i) => i.key === "cilium-kpr:cilium.nodePortAddresses[2]" && /cilium\.ipv6\.enabled is false/.test(i.message)));
    const off = validate(
        withValues(rawStack("prod"), { "cilium.nodePortAddresses": VIP_AND_NODES, "cilium.kubeProxyReplacement": false, "cilium.bpfMasquerade": false }),
    );
    assert.ok(!off.ok && off.issues.some((i) => i.key === "cilium-kpr:cilium.nodePortAddresses" && /kubeProxyReplacement true/.test(i.message)));
});

test("the operator preflight is told which keepalived VIPs will serve NodePorts, so it warns only about the others", () => {
    assert.equal(operatorPreflightEnv(valid(rawStack("prod")))["NODEPORT_VIPS_SERVED"], "");
    const served = valid(withValues(rawStack("prod"), { "cilium.nodePortAddresses": VIP_AND_NODES }));
    assert.equal(operatorPreflightEnv(served)["NODEPORT_VIPS_SERVED"], "172.25.4.1");
    const nodesOnly = valid(withValues(rawStack("prod"), { "cilium.nodePortAddresses": ["172.25.4.8/29"] }));
    assert.equal(operatorPreflightEnv(nodesOnly)["NODEPORT_VIPS_SERVED"], "", "172.25.4.1 is outside 172.25.4.8/29");
});
