import { test } from "node:test";
import assert from "node:assert/strict";
import { clusterUidOf } from "../components/commands/clusterIdentity";
import { STEP, TYPE } from "../components/resourceNames";
import { DEFAULT_CLUSTER_UID } from "./support/fakeKubeCluster";
import { hostToolsMissing } from "./support/hostTools";
import { runProgram } from "./support/program";
import { CLUSTER_SCRIPTS, MINIMAL_CLUSTER_ENV, readScript, Scenario, type JsonObject } from "./support/kubeproxyScenario";

/*
 * A destroy runs each step's stored delete with the operator's current environment plus the stored
 * one (pulumi-command v1.2.1 local/commandOutputs.go run()); with no pinned kube context it would act
 * on whatever cluster is current. The cluster's identity (kube-system namespace UID) is recorded at
 * create and every cluster step, its delete included, refuses any other cluster.
 */

const skip = hostToolsMissing(["jq", "timeout"]);
const OTHER_UID = "0b7d4c2e-9a51-4f3e-8c6d-1e2f3a4b5c6d";

function writes(scenario: Scenario): string[] {
    return scenario
        .calls()
        .map((c) => `${c.tool} ${c.args.join(" ")}`)
        .filter((c) => / (create|replace|delete|upgrade) /.test(` ${c} `));
}

test("every cluster step refuses a cluster whose kube-system UID is not the recorded one, before changing anything", { skip }, (t) => {
    const scenario = new Scenario({ settings: { clusterUid: OTHER_UID } });
    t.after(() => scenario.dispose());
    for (const name of CLUSTER_SCRIPTS.filter((n) => n !== "cluster-identity")) {
        const run = scenario.run(name, { ...MINIMAL_CLUSTER_ENV[name], CLUSTER_UID: DEFAULT_CLUSTER_UID, KUBECTL_CONTEXT: "admin@other" });
        assert.notEqual(run.status, 0, name);
        assert.equal(
            run.summary["error"],
            `wrong cluster: this step belongs to the cluster whose kube-system namespace has UID ${DEFAULT_CLUSTER_UID}, but context admin@other reaches one with UID ${OTHER_UID}; nothing was changed. Point KUBECONFIG/KUBECTL_CONTEXT (or cluster.context in the stack) at the cluster this stack migrated`,
            name,
        );
    }
    assert.deepEqual(writes(scenario), []);
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"));
    assert.ok(scenario.calls().length > 0);
});

test("on the recorded cluster the steps run, the delete (restore) included", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const remove = scenario.run("kube-proxy-remove", { ...MINIMAL_CLUSTER_ENV["kube-proxy-remove"], CLUSTER_UID: DEFAULT_CLUSTER_UID, POD_GONE_TIMEOUT: 10 });
    assert.equal(remove.status, 0, remove.stderr);
    const restore = scenario.run("kube-proxy-restore", { ...MINIMAL_CLUSTER_ENV["kube-proxy-restore"], CLUSTER_UID: DEFAULT_CLUSTER_UID, ROLLOUT_TIMEOUT: 10 });
    assert.equal(restore.status, 0, restore.stderr);
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"));
});

test("cluster-identity prints the kube-system UID, and on a re-run refuses a different cluster than it recorded", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const first = scenario.run("cluster-identity", {});
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.summary, { ok: true, clusterUid: DEFAULT_CLUSTER_UID });
    assert.equal(clusterUidOf(first.stdout), DEFAULT_CLUSTER_UID);

    const same = scenario.run("cluster-identity", { PULUMI_COMMAND_STDOUT: first.stdout.trim() });
    assert.equal(same.status, 0, same.stderr);

    const other = new Scenario({ settings: { clusterUid: OTHER_UID } });
    t.after(() => other.dispose());
    const moved = other.run("cluster-identity", { PULUMI_COMMAND_STDOUT: first.stdout.trim() });
    assert.notEqual(moved.status, 0);
    assert.match(
        String(moved.summary["error"]),
        new RegExp(`migrated the cluster whose kube-system namespace has UID ${DEFAULT_CLUSTER_UID}; the configured cluster has UID ${OTHER_UID}`),
    );
});

test("the program records the identity first and passes it as CLUSTER_UID to every cluster step", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const locals = resources.filter((r) => r.type === TYPE.localCommand);
    const identity = locals.find((r) => r.name === STEP.clusterIdentity);
    assert.ok(identity, "a cluster-identity step");
    assert.equal(identity.inputs["create"], readScript("cluster-identity"));
    assert.equal(identity.inputs["addPreviousOutputInEnv"], true, "it sees what it recorded before");
    // cilium-release-identity touches no cluster: it compares the release name with its own last output.
    const steps = locals.filter((r) => r !== identity && r.name !== STEP.releaseIdentity);
    assert.ok(steps.length >= 4, steps.map((s) => s.name).join(", "));
    for (const step of steps) {
        const env = step.inputs["environment"] as JsonObject;
        assert.equal(env["CLUSTER_UID"], "(kube-system UID, recorded at the first up)", `${step.name} carries the recorded identity`);
    }
    // With it in each step's inputs it is stored in state, so the delete (restore) checks it too.
    const removal = steps.find((s) => s.name === STEP.kubeProxyRemoval);
    assert.ok(removal?.inputs["delete"], "the removal has a delete that reads CLUSTER_UID from its stored environment");
});
