import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as command from "@pulumi/command";
import { recordProgram, type RecordedResource } from "../tools/mockRuntime";
import { readStackFile } from "../tools/stackFile";
import { validateStackConfig, type MigrationConfig } from "../components/config/validate";
import { STEP, TYPE } from "../components/resourceNames";
import {
    ciliumUpgradePreflight,
    kprGate,
    kubeadmProxyDisabled,
    kubeProxyCanaryExclusion,
    kubeProxyRemoval,
    postMigrationVerification,
    valuesSnapshot,
} from "../components/kubeproxy/kubeProxyMigration";
import { staleRuleCleanup, staleRuleVerify } from "../components/kubeproxy/staleRuleCleanup";
import { preflight } from "../components/preflight/preflight";
import { releaseIdentityGuard } from "../components/cilium/releaseIdentity";
import { CiliumRelease } from "../components/cilium/ciliumRelease";
import { NodeTproxy } from "../components/tproxy/nodeTproxy";
import { nodeStoreSteps } from "../components/commands/nodeStoreSteps";
import { nodeStoreSet } from "../components/nodeStoreContents";
import { PROJECT, rawStack, ROOT } from "./support/stacks";

/**
 * Every step function and component takes what it waits for in `opts.dependsOn` and keeps it: the
 * graph in components/migration.ts decides the order, and a step that replaced the caller's list
 * (as kprGate, kubeProxyRemoval, kubeProxyCanaryExclusion, kubeadmProxyDisabled and
 * postMigrationVerification once did) would silently drop an ordering edge the graph asked for.
 */

const CALLER = ["caller-first", "caller-second"];

function prodConfig(): MigrationConfig {
    const result = validateStackConfig(PROJECT, rawStack("prod"));
    assert.ok(result.ok, JSON.stringify(result));
    return result.config;
}

/** Runs `declare` under Pulumi's mocks with two resources to wait for; returns what was recorded. */
async function declared(declare: (config: MigrationConfig, opts: pulumi.CustomResourceOptions) => void): Promise<RecordedResource[]> {
    const file = readStackFile(ROOT, "prod");
    return recordProgram({ project: file.project, stack: "prod", config: file.config, secretKeys: file.secretKeys }, () => {
        const dependsOn = CALLER.map((name) => new command.local.Command(name, { create: "true" }));
        declare(prodConfig(), { dependsOn });
    });
}

const byName = (resources: readonly RecordedResource[], name: string, type?: string) =>
    resources.find((r) => r.name === name && (type === undefined || r.type === type))!;

test("every cluster and node step function keeps the caller's dependsOn and its other options", async () => {
    const key = pulumi.secret("not-a-key");
    const resources = await declared((config, opts) => {
        const values = pulumi.output({ kubeProxyReplacement: true });
        valuesSnapshot(config, opts);
        ciliumUpgradePreflight(config, values, opts);
        kprGate({ config, values, scope: ["all nodes"] }, opts);
        kubeProxyRemoval(config, opts);
        kubeProxyCanaryExclusion(config, opts);
        kubeadmProxyDisabled(config, opts);
        postMigrationVerification(config, opts);
        releaseIdentityGuard(config.cilium, opts);
        preflight(config, key, opts);
        staleRuleCleanup(config.nodes[0]!, config.cluster, key, { ...opts, ignoreChanges: ["environment"] });
        staleRuleVerify(config.nodes[0]!, key, opts);
        nodeStoreSteps(config.nodes[1]!, key, nodeStoreSet(config, config.nodes[1]!), { ...opts, ignoreChanges: ["triggers"] });
    });
    const node = "m600";
    const steps = [
        STEP.valuesSnapshot,
        STEP.ciliumUpgradePreflight,
        STEP.kprGate,
        STEP.kubeProxyRemoval,
        STEP.kubeProxyCanaryExclusion,
        STEP.kubeadmProxyDisabled,
        STEP.verification,
        STEP.releaseIdentity,
        STEP.operatorPreflight,
        STEP.nodePreflight(node),
        STEP.nodePreflight("m601"),
        STEP.staleRuleCleanup(node),
        STEP.staleRuleVerify(node),
    ];
    for (const name of steps) assert.deepEqual(byName(resources, name).dependsOn, CALLER, `${name} keeps the caller's dependsOn`);
    // Its own options are merged over the caller's, not instead of them.
    for (const name of [STEP.valuesSnapshot, STEP.kubeProxyRemoval, STEP.kubeProxyCanaryExclusion, STEP.kubeadmProxyDisabled]) {
        assert.equal(byName(resources, name).deleteBeforeReplace, true, `${name} is replaced delete-first`);
    }
    assert.deepEqual(byName(resources, STEP.staleRuleCleanup(node)).ignoreChanges, ["environment", "connection.privateKey"]);
    assert.deepEqual(byName(resources, STEP.nodePreflight(node)).ignoreChanges, ["connection.privateKey"]);
    // The node store's copy and check: the caller's edges and options stay, the check adds its own copy.
    assert.deepEqual(byName(resources, STEP.nodeStore("m601")).dependsOn, CALLER);
    assert.deepEqual(byName(resources, STEP.nodeStore("m601")).ignoreChanges, ["triggers", "connection.privateKey"]);
    assert.deepEqual(byName(resources, STEP.nodeStoreCheck("m601")).dependsOn, [...CALLER, STEP.nodeStore("m601")]);
    assert.equal(byName(resources, STEP.nodeStoreCheck("m601")).deleteBeforeReplace, true);
});

test("the components hand the caller's dependsOn to the child that must wait, and keep their own", async () => {
    const resources = await declared((config, opts) => {
        const provider = new k8s.Provider("cluster", {});
        new CiliumRelease(
            STEP.ciliumRelease,
            { cilium: config.cilium, provider, upgradePreflight: () => new command.local.Command("upgrade-check", { create: "true" }) },
            opts,
        );
        new NodeTproxy(STEP.nodeTproxy("m600"), { config, node: config.nodes[0]!, privateKey: pulumi.secret("not-a-key") }, opts);
    });
    assert.deepEqual(byName(resources, STEP.ciliumRelease, TYPE.helmRelease).dependsOn, [...CALLER, "upgrade-check"]);
    assert.deepEqual(byName(resources, STEP.tproxyApply("m600")).dependsOn, CALLER);
    assert.deepEqual(byName(resources, STEP.tproxyConfirm("m600")).dependsOn, [STEP.tproxyApply("m600")]);
    // The edge is declared on the child that does the work, where the plan and the policy pack read it.
    assert.deepEqual(byName(resources, STEP.ciliumRelease, TYPE.ciliumRelease).dependsOn, []);
    assert.deepEqual(byName(resources, STEP.nodeTproxy("m600"), TYPE.nodeTproxy).dependsOn, []);
});
