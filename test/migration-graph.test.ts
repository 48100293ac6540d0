import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as util from "node:util";
import type { RecordedResource } from "../tools/mockRuntime";
import { creationOrder } from "../tools/mockRuntime";
import { textsDigest } from "../components/commands/triggerDigest";
import { STEP, TYPE } from "../components/resourceNames";
import type { TproxyNodeFiles } from "../components/tproxy/nodeFilesStash";
import { scriptText } from "../components/commands/scripts";
import { dependenciesOf, find, runProgram } from "./support/program";
import { rawStack } from "./support/stacks";

const NODES = ["m600", "m601", "storage"];

test("prod graph: preflight -> snapshot -> release -> gate -> removal -> cleanup -> tproxy -> verification", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    // Logical names repeat across types (the Cilium component and its release are both "cilium"): look up custom resources.
    const deps = (name: string) => resources.find((r) => r.custom && r.name === name)!.dependsOn;

    assert.deepEqual([...deps(STEP.kubeProxyRemoval)], [STEP.kprGate], "removal waits for the KPR gate");
    assert.deepEqual([...deps(STEP.kprGate)], [STEP.ciliumRelease], "the gate waits for the Helm release");
    assert.deepEqual(
        [...deps(STEP.ciliumRelease)].sort(),
        [STEP.valuesSnapshot, STEP.ciliumUpgradePreflight].sort(),
        "values are captured and the running chart version checked before the release changes",
    );
    assert.deepEqual(
        [...deps(STEP.valuesSnapshot)].sort(),
        [STEP.operatorPreflight, ...NODES.map(STEP.nodePreflight), STEP.releaseIdentity].sort(),
        "nothing changes before every preflight passed and the release identity is unchanged",
    );
    for (const node of NODES) {
        assert.deepEqual([...deps(STEP.staleRuleCleanup(node))], [STEP.kubeProxyRemoval, STEP.nodeStoreCheck(node)]);
        assert.ok(deps(STEP.tproxyApply(node)).includes(STEP.staleRuleCleanup(node)));
    }
    assert.ok(deps(STEP.tproxyApply("m601")).includes(STEP.tproxyConfirm("m600")), "one node at a time");
    for (const node of NODES) {
        assert.deepEqual(
            [...deps(STEP.staleRuleVerify(node))].sort(),
            [STEP.staleRuleCleanup(node), STEP.tproxyConfirm(node), STEP.nodeStoreCheck(node)].sort(),
            "a node's check waits for its own steps only (edges grow with nodes, not nodes²)",
        );
    }
    assert.ok(deps(STEP.tproxyApply("storage")).includes(STEP.tproxyConfirm("m601")));
    const verification = dependenciesOf(resources, STEP.verification);
    for (const name of [STEP.kubeProxyRemoval, ...NODES.map(STEP.staleRuleCleanup), ...NODES.map(STEP.tproxyConfirm), ...NODES.map(STEP.staleRuleVerify)]) {
        assert.ok(verification.has(name), `verification runs after ${name}`);
    }

    const order = creationOrder(resources).map((r) => r.name);
    const at = (name: string) => order.indexOf(name);
    assert.ok(
        at(STEP.valuesSnapshot) < at(STEP.ciliumRelease) &&
            at(STEP.ciliumRelease) < at(STEP.kprGate) &&
            at(STEP.kprGate) < at(STEP.kubeProxyRemoval) &&
            at(STEP.kubeProxyRemoval) < at(STEP.verification),
    );
});

test("destroy order: node tproxy artifacts go first, kube-proxy is restored before Cilium's values are rolled back", async () => {
    const { resources } = await runProgram("prod");
    // Pulumi deletes a resource only after everything that depends on it is deleted.
    const removalDeps = dependenciesOf(resources, STEP.kubeProxyRemoval);
    assert.ok(removalDeps.has(STEP.valuesSnapshot), "the values rollback (snapshot delete) waits for kube-proxy's restore (removal delete)");
    assert.ok(removalDeps.has(STEP.ciliumRelease));
    for (const node of NODES) {
        assert.ok(dependenciesOf(resources, STEP.tproxyApply(node)).has(STEP.kubeProxyRemoval), `${node}'s tproxy is removed before kube-proxy returns`);
    }
    const removal = find(resources, "command:local:Command", STEP.kubeProxyRemoval);
    assert.equal(removal.inputs.create, scriptText("kubeproxy/kube-proxy-remove"));
    assert.equal(removal.inputs.delete, scriptText("kubeproxy/kube-proxy-restore"), "destroy restores kube-proxy");
    const snapshot = find(resources, "command:local:Command", STEP.valuesSnapshot);
    assert.equal(snapshot.inputs.delete, scriptText("kubeproxy/cilium-values-restore"), "destroy restores Cilium's values");
    assert.equal((snapshot.inputs.environment as Record<string, string>).CILIUM_CHART_VERSION, "1.19.0");
    assert.equal(find(resources, "kubernetes:helm.sh/v3:Release").retainOnDelete, true, "the CNI is never uninstalled");
    for (const node of NODES) {
        const apply = find(resources, "command:remote:Command", STEP.tproxyApply(node));
        assert.equal(apply.deleteBeforeReplace, true, "a replaced apply restores the node before applying again");
        assert.match(String(apply.inputs.delete), /tproxy-remove\.sh/);
    }
});

test("the gate re-runs when the release's values change, and runs against the provider's cluster and context", async () => {
    const cluster = { ...(rawStack("prod").cluster as Record<string, unknown>), kubeconfig: "/etc/kpr/kubeconfig", context: "prod-admin" };
    const { resources } = await runProgram("prod", { cluster });
    const gate = find(resources, "command:local:Command", STEP.kprGate);
    const release = find(resources, "kubernetes:helm.sh/v3:Release");
    const triggers = gate.inputs.triggers as string[];
    assert.equal(triggers.length, 3);
    assert.deepEqual(JSON.parse(triggers[0]!), release.inputs.values, "the gate's trigger is the release's values");
    assert.equal(triggers[1], "all nodes", "and the set of migrated nodes");
    assert.equal(triggers[2], "chart 1.19.0", "and the chart version");
    const provider = find(resources, "pulumi:providers:kubernetes");
    assert.equal(provider.inputs.kubeconfig, "/etc/kpr/kubeconfig");
    assert.equal(provider.inputs.context, "prod-admin");
    // The release-identity guard compares two texts and never reaches the cluster.
    for (const r of resources.filter((x) => x.type === "command:local:Command" && x.name !== STEP.releaseIdentity)) {
        const env = r.inputs.environment as Record<string, string>;
        assert.equal(env.KUBECONFIG, "/etc/kpr/kubeconfig", `${r.name} uses the provider's kubeconfig`);
        assert.equal(env.KUBECTL_CONTEXT, "prod-admin", `${r.name} uses the provider's context`);
    }
});

test("with kube-proxy replacement off, kube-proxy is never touched", async () => {
    const cilium = { ...(rawStack("prod").cilium as Record<string, unknown>), kubeProxyReplacement: false, bpfMasquerade: false };
    const { resources, error } = await runProgram("prod", { cilium });
    assert.equal(error, undefined);
    const names = resources.map((r) => r.name);
    for (const absent of [STEP.kprGate, STEP.kubeProxyRemoval, STEP.verification, ...NODES.map(STEP.staleRuleCleanup)]) {
        assert.ok(!names.includes(absent), `${absent} must not exist without KPR`);
    }
});

test("tproxy disabled (ipv6-native stack): no node tproxy, kube-proxy migration still complete", async () => {
    const { resources, error } = await runProgram("ipv6-native");
    assert.equal(error, undefined);
    assert.ok(!resources.some((r) => r.name.startsWith("tproxy-")));
    assert.ok(resources.some((r) => r.name === STEP.kubeProxyRemoval));
});

test("canary (migration.canaryNodes [m600]): kube-proxy is kept off m600 only, and only m600 is cleaned, proxied and checked", async () => {
    const { resources, error } = await runProgram("prod", { migration: { canaryNodes: ["m600"] } });
    assert.equal(error, undefined);
    const names = resources.filter((r) => r.custom).map((r) => r.name);
    assert.ok(!names.includes(STEP.kubeProxyRemoval), "the DaemonSet is not deleted");
    const exclusion = find(resources, "command:local:Command", STEP.kubeProxyCanaryExclusion);
    assert.deepEqual([...exclusion.dependsOn], [STEP.kprGate], "the exclusion waits for the KPR gate");
    assert.equal(exclusion.inputs.create, scriptText("kubeproxy/kube-proxy-exclude"));
    assert.equal(exclusion.inputs.delete, scriptText("kubeproxy/kube-proxy-include"), "destroy brings kube-proxy back to m600");
    assert.equal((exclusion.inputs.environment as Record<string, string>).CANARY_NODES, "m600");

    for (const step of [STEP.staleRuleCleanup, STEP.tproxyApply, STEP.tproxyConfirm, STEP.staleRuleVerify]) {
        assert.ok(names.includes(step("m600")), `${step("m600")} exists`);
        for (const other of ["m601", "storage"]) assert.ok(!names.includes(step(other)), `${step(other)} must wait for the full migration`);
    }
    assert.deepEqual(
        [...resources.find((r) => r.custom && r.name === STEP.staleRuleCleanup("m600"))!.dependsOn],
        [STEP.kubeProxyCanaryExclusion, STEP.nodeStoreCheck("m600")],
    );
    // Preflight still covers every node: the full migration follows on the same stack.
    for (const node of NODES) assert.ok(names.includes(STEP.nodePreflight(node)));
    const verification = dependenciesOf(resources, STEP.verification);
    for (const name of [STEP.kubeProxyCanaryExclusion, STEP.tproxyConfirm("m600"), STEP.staleRuleVerify("m600")]) {
        assert.ok(verification.has(name), `verification runs after ${name}`);
    }
    // Destroy: m600's tproxy goes before kube-proxy comes back to it, and kube-proxy is back before the values rollback.
    assert.ok(dependenciesOf(resources, STEP.tproxyApply("m600")).has(STEP.kubeProxyCanaryExclusion));
    assert.ok(dependenciesOf(resources, STEP.kubeProxyCanaryExclusion).has(STEP.valuesSnapshot));
});

test("going from the canary to the full migration re-runs the cluster-wide checks and changes nothing else of the canary's", async () => {
    const canary = await runProgram("prod", { migration: { canaryNodes: ["m600"] } });
    const full = await runProgram("prod");
    const key = (r: RecordedResource) => `${r.type} ${r.name}`;
    const fullKeys = new Set(full.resources.map(key));
    const dropped = canary.resources.map(key).filter((k) => !fullKeys.has(k));
    assert.deepEqual(
        dropped,
        [`command:local:Command ${STEP.kubeProxyCanaryExclusion}`],
        "only the exclusion leaves the program (its delete is a no-op once the DaemonSet is gone)",
    );
    // Pulumi diffs inputs, not dependencies: only an input change makes a kept resource run again.
    const changed = canary.resources
        .filter((r) => fullKeys.has(key(r)))
        .filter((r) => !util.isDeepStrictEqual(r.inputs, full.resources.find((f) => key(f) === key(r))!.inputs))
        .map((r) => r.name)
        .sort();
    assert.deepEqual(
        changed,
        [STEP.kprGate, STEP.tproxyNodeFiles, STEP.verification].sort(),
        "the gate re-checks every agent before the DaemonSet is deleted, the verification runs again; m600's steps are untouched",
    );
    // The node-files Stash (shown in the preview, changes nothing on a node) lists the new nodes; the files are the same.
    const stash = (resources: readonly RecordedResource[]) => find(resources, TYPE.stash, STEP.tproxyNodeFiles).inputs.input as TproxyNodeFiles;
    assert.deepEqual(stash(canary.resources).nodes, ["m600"]);
    assert.deepEqual(stash(full.resources).nodes, ["m600", "m601", "storage"]);
    assert.deepEqual(stash(canary.resources).files, stash(full.resources).files);
    const gate = (resources: readonly RecordedResource[]) => (find(resources, "command:local:Command", STEP.kprGate).inputs.triggers as string[])[1];
    assert.equal(gate(canary.resources), "canary: m600");
    assert.equal(gate(full.resources), "all nodes");
});

test("every step whose delete undoes its create is replaced delete-first (the engine's default is create, then the old delete)", async () => {
    // pulumi/pulumi pkg/resource/deploy/step_generator.go (generateStepsFromDiff): without the
    // deleteBeforeReplace option a replacement creates the new resource first and deletes the old one
    // last, so the old delete (restore kube-proxy, put its affinity back, roll the values back) would
    // undo what the new create just did.
    for (const canaryNodes of [[], ["m600"]]) {
        const { resources, error } = await runProgram("prod", { migration: { canaryNodes } });
        assert.equal(error, undefined);
        const withDelete = resources.filter((r) => r.custom && typeof r.inputs.delete === "string");
        const names = withDelete.map((r) => r.name).sort();
        const expected = [
            STEP.valuesSnapshot,
            canaryNodes.length === 0 ? STEP.kubeProxyRemoval : STEP.kubeProxyCanaryExclusion,
            // kubeadm's proxy.disabled is set only once kube-proxy is gone for good, never during a canary.
            ...(canaryNodes.length === 0 ? [STEP.kubeadmProxyDisabled] : []),
            ...(canaryNodes.length === 0 ? NODES : canaryNodes).map(STEP.tproxyApply),
            // Every node's store: its delete removes the store once every node step's delete ran.
            ...NODES.map(STEP.nodeStoreCheck),
        ].sort();
        assert.deepEqual(names, expected, "the steps with a delete");
        for (const r of withDelete) assert.equal(r.deleteBeforeReplace, true, `${r.name}: a replacement must run the old delete before the new create`);
    }
});

test("a node's confirm re-runs whenever its apply runs again, also when only the apply's delete text changes", async () => {
    const { resources } = await runProgram("prod");
    for (const node of NODES) {
        const apply = find(resources, "command:remote:Command", STEP.tproxyApply(node));
        const confirm = find(resources, "command:remote:Command", STEP.tproxyConfirm(node));
        // pulumi-command 1.2.1 remote/commandController.go Update: any input change re-runs `create` (no
        // `update` command), which arms the revert again; only a changed trigger replaces (re-runs) the confirm.
        // The trigger is a digest of both texts (state keeps every input), so it changes when either does.
        const [create, del] = [apply.inputs.create as string, apply.inputs.delete as string];
        assert.deepEqual(confirm.inputs.triggers, [textsDigest([create, del])]);
        assert.notEqual(textsDigest([create, `${del}\n`]), textsDigest([create, del]), "a changed delete text changes the trigger");
        assert.notEqual(textsDigest([`${create}\n`, del]), textsDigest([create, del]), "a changed create text changes the trigger");
    }
});
