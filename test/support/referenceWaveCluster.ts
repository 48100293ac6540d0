import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pendingNodeConfig } from "../../components/waves/pendingNodeConfig";
import { validateStackConfig } from "../../components/config/validate";
import type { FakeNodeConfig, FakeService, WaveClusterState } from "./fakeWaveCluster";
import { PROJECT, rawStack, withValue } from "./stacks";

/** The reference cluster's nodes (../shared/seeds/000_*), as the wave tests name them. */
export const REFERENCE_NODES = ["m600", "m601", "storage"];

const FIXTURES = join(__dirname, "..", "fixtures", "kubeproxy", "cluster");

export function clusterFixture(name: string): Record<string, unknown> {
    return JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as Record<string, unknown>;
}

/** The pending CiliumNodeConfig the program renders for Pulumi.prod.yaml with waves, as the stand-in holds it. */
export function pendingConfig(): FakeNodeConfig {
    const result = validateStackConfig(PROJECT, withValue(rawStack("prod"), "migration.waveSize", 1));
    assert.ok(result.ok);
    const cnc = pendingNodeConfig(result.config.cilium);
    return { name: cnc.metadata.name, namespace: cnc.metadata.namespace, nodeSelector: cnc.spec.nodeSelector, defaults: cnc.spec.defaults };
}

/**
 * The stand-in cluster as the graph leaves it before the first wave: the reference nodes (Cilium in
 * "default"), the release already carrying the final values, the pending CiliumNodeConfig in place,
 * kube-proxy's DaemonSet, the `kubernetes` Service; no pods yet (the caller schedules them after its
 * own changes). `changes` replaces top-level fields.
 */
export function referenceWaveState(changes: Partial<WaveClusterState> = {}): WaveClusterState {
    return {
        nodes: Object.fromEntries(
            REFERENCE_NODES.map((n, i) => [
                n,
                { labels: { "kubernetes.io/hostname": n }, unschedulable: false, addresses: [{ type: "InternalIP", address: `172.25.4.${10 + i}` }] },
            ]),
        ),
        ciliumNamespace: "default",
        ciliumConfig: { "kube-proxy-replacement": "true", "bpf-lb-sock": "true", "enable-bpf-masquerade": "true" },
        nodeConfigs: [pendingConfig()],
        crdVersions: ["v2alpha1", "v2"],
        kubeProxy: clusterFixture("kube-proxy-daemonset.json"),
        pods: [],
        generation: 0,
        services: [clusterFixture("kubernetes-service.json") as unknown as FakeService],
        endpointSlices: [],
        resolverOrder: "documented",
        pdbBlocks: [],
        agentNeverReady: [],
        ...changes,
    };
}

/** A wave script's summary: the JSON object on its last stdout line (every wave script ends with one); anything else fails the test. */
export function stepSummary(run: { stdout: string; stderr: string }, what: string): Record<string, unknown> {
    const last = run.stdout.trim().split("\n").pop() ?? "";
    try {
        return JSON.parse(last) as Record<string, unknown>;
    } catch {
        assert.fail(`${what}: last stdout line is not JSON: ${run.stdout}\n${run.stderr}`);
    }
}
