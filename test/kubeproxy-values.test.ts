import { test } from "node:test";
import assert from "node:assert/strict";
import { CILIUM_NAMESPACE, DEFAULT_RELEASE, Scenario, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "../lab/hostTools";

const skip = hostToolsMissing(["jq", "timeout"]);
const SNAPSHOT = "cilium-pre-kpr-values";
const snapshotEnv = { CILIUM_NAMESPACE, SNAPSHOT_CONFIGMAP: SNAPSHOT } as const;
const restoreEnv = { CILIUM_NAMESPACE, SNAPSHOT_CONFIGMAP: SNAPSHOT, CILIUM_CHART_VERSION: "1.19.0", ROLLOUT_TIMEOUT: 3 } as const;

/** helm calls with the given verb, the leading --kube-context pair dropped. */
function helmCalls(scenario: Scenario, verb: string): string[][] {
    return scenario
        .calls()
        .filter((c) => c.tool === "helm")
        .map((c) => (c.args[0] === "--kube-context" ? c.args.slice(2) : [...c.args]))
        .filter((args) => args[0] === verb);
}

test("snapshot is taken once and never overwritten", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const first = scenario.run("cilium-values-snapshot", snapshotEnv);
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.summary, { ok: true, configMap: SNAPSHOT, created: true, releasePresent: true, chart: "cilium-1.19.0" });
    const stored = scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT) as JsonObject;
    const data = stored["data"] as Record<string, string>;
    assert.deepEqual(JSON.parse(data["values.json"] ?? ""), DEFAULT_RELEASE.values);
    assert.equal(data["release-present"], "true");

    // The migration then changes the release; a re-run must keep the pre-migration values.
    scenario.setRelease({ ...DEFAULT_RELEASE, revision: 8, values: { kubeProxyReplacement: "true", k8sServiceHost: "172.25.4.1", k8sServicePort: 6444 } });
    scenario.clearCalls();
    const second = scenario.run("cilium-values-snapshot", snapshotEnv);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.summary["created"], false);
    assert.match(second.stderr, /already exists .*kept as is/);
    assert.deepEqual(scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT), stored);
    assert.deepEqual(
        scenario.calls().filter((c) => c.args.includes("create") || c.args.includes("replace")),
        [],
    );
    assert.deepEqual(helmCalls(scenario, "get"), [], "values are not even read again");
});

test("a missing release is recorded, and restore then leaves Cilium alone and says so", { skip }, (t) => {
    const scenario = new Scenario({ release: null });
    t.after(() => scenario.dispose());
    const snap = scenario.run("cilium-values-snapshot", snapshotEnv);
    assert.equal(snap.status, 0, snap.stderr);
    assert.equal(snap.summary["releasePresent"], false);
    const data = (scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT) as JsonObject)["data"] as Record<string, string>;
    assert.equal(data["release-present"], "false");

    const restore = scenario.run("cilium-values-restore", restoreEnv);
    assert.equal(restore.status, 0, restore.stderr);
    assert.equal(restore.summary["restored"], false);
    assert.match(restore.stderr, /did not exist before the migration; leaving the release as it is/);
    assert.deepEqual(helmCalls(scenario, "upgrade"), []);
    assert.equal(scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT), undefined, "the consumed snapshot is removed");
});

test("restore is refused while kube-proxy is absent or not fully rolled out", { skip }, (t) => {
    const scenario = new Scenario({ kubeProxy: false });
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("cilium-values-snapshot", snapshotEnv).status, 0);

    const absent = scenario.run("cilium-values-restore", restoreEnv);
    assert.notEqual(absent.status, 0);
    assert.match(absent.stderr, /daemonset\/kube-proxy does not exist in kube-system; restore kube-proxy before turning kube-proxy replacement off/);

    const partial = new Scenario();
    t.after(() => partial.dispose());
    assert.equal(partial.run("cilium-values-snapshot", snapshotEnv).status, 0);
    const ds = partial.get("kube-system", "daemonset", "kube-proxy") as JsonObject;
    partial.put("kube-system", "daemonset", "kube-proxy", { ...ds, status: { ...(ds["status"] as JsonObject), numberReady: 2 } });
    const notReady = partial.run("cilium-values-restore", restoreEnv);
    assert.notEqual(notReady.status, 0);
    assert.match(notReady.stderr, /kube-proxy is not fully rolled out \(ready 2 of 3, updated 3\); refusing/);

    for (const s of [scenario, partial]) {
        assert.deepEqual(helmCalls(s, "upgrade"), [], "helm upgrade never ran");
        assert.ok(s.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT), "snapshot kept for a later attempt");
    }
});

test("restore with kube-proxy serving upgrades with --reset-values to the snapshot, waits, then deletes the snapshot", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("cilium-values-snapshot", snapshotEnv).status, 0);
    scenario.setRelease({ ...DEFAULT_RELEASE, revision: 8, values: { kubeProxyReplacement: "true", k8sServiceHost: "172.25.4.1", k8sServicePort: 6444 } });
    scenario.clearCalls();

    const run = scenario.run("cilium-values-restore", { ...restoreEnv, KUBECTL_CONTEXT: "prod" });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, restored: true, release: "cilium", chartVersion: "1.19.0" });
    assert.deepEqual(scenario.release(CILIUM_NAMESPACE, "cilium")?.values, DEFAULT_RELEASE.values);

    const [upgrade] = helmCalls(scenario, "upgrade");
    assert.ok(upgrade);
    assert.deepEqual(upgrade.slice(0, 3), ["upgrade", "cilium", "cilium"]);
    for (const expected of [
        ["--version", "1.19.0"],
        ["--repo", "https://helm.cilium.io/"],
        ["-n", CILIUM_NAMESPACE],
    ]) {
        const at = upgrade.indexOf(expected[0] ?? "");
        assert.equal(upgrade[at + 1], expected[1], `${expected.join(" ")} in ${upgrade.join(" ")}`);
    }
    assert.ok(upgrade.includes("--reset-values"));
    const raw = scenario.calls().find((c) => c.tool === "helm" && c.args.includes("upgrade"));
    assert.deepEqual(raw?.args.slice(0, 2), ["--kube-context", "prod"]);
    const calls = scenario.calls().map((c) => `${c.tool} ${c.args.join(" ")}`);
    const upgradeAt = calls.findIndex((c) => c.startsWith("helm ") && c.includes(" upgrade "));
    const rolloutAt = calls.findIndex((c) => c.includes("rollout status daemonset/cilium"));
    const deleteAt = calls.findIndex((c) => c.includes(`delete configmap ${SNAPSHOT}`));
    assert.ok(upgradeAt >= 0 && rolloutAt > upgradeAt && deleteAt > rolloutAt, calls.join("\n"));
    assert.equal(scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT), undefined);

    const again = scenario.run("cilium-values-restore", restoreEnv);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.summary["restored"], false);
});

test("restore uses an oci:// repository as the chart reference", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("cilium-values-snapshot", snapshotEnv).status, 0);
    const run = scenario.run("cilium-values-restore", { ...restoreEnv, CILIUM_REPOSITORY: "oci://quay.io/cilium/charts/" });
    assert.equal(run.status, 0, run.stderr);
    const [upgrade] = helmCalls(scenario, "upgrade");
    assert.equal(upgrade?.[2], "oci://quay.io/cilium/charts/cilium");
    assert.equal(upgrade?.includes("--repo"), false);
});

test("restore names kubectl's reason when the agent DaemonSet is not found, instead of a rollout timeout", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("cilium-values-snapshot", snapshotEnv).status, 0);
    const run = scenario.run("cilium-values-restore", { ...restoreEnv, CILIUM_DS: "cilium-agent", ROLLOUT_TIMEOUT: 300 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.equal(
        run.summary["error"],
        'daemonset/cilium-agent after the values were restored: Error from server (NotFound): daemonsets.apps "cilium-agent" not found; snapshot kept',
    );
    assert.ok(run.seconds < 20, `${run.seconds}s`);
    assert.ok(scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT), "snapshot kept");
});

test("the snapshot finds the release with Helm 3 and with Helm 4, in any state", { skip }, (t) => {
    for (const helmVersion of ["v3.16.3+gcfd0749", "v4.2.4+g6b9b3e4"]) {
        for (const status of ["deployed", "failed", "pending-upgrade"]) {
            const scenario = new Scenario({ release: { ...DEFAULT_RELEASE, status }, settings: { helmVersion } });
            t.after(() => scenario.dispose());
            const run = scenario.run("cilium-values-snapshot", snapshotEnv);
            assert.equal(run.status, 0, `${helmVersion} ${status}: ${run.stderr}`);
            assert.equal(run.summary["releasePresent"], true, `${helmVersion} ${status}`);
        }
    }
});

test("a ConfigMap at the snapshot name that this program did not create is neither taken as the snapshot nor restored from or deleted", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const foreign = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: SNAPSHOT, namespace: CILIUM_NAMESPACE, resourceVersion: "5" },
        data: { "release-present": "true", "values.json": '{"kubeProxyReplacement":"true"}' },
    };
    scenario.put(CILIUM_NAMESPACE, "configmap", SNAPSHOT, foreign);
    const snap = scenario.run("cilium-values-snapshot", snapshotEnv);
    assert.notEqual(snap.status, 0);
    assert.match(String(snap.summary["error"]), /configmap\/cilium-pre-kpr-values in default was not created by this program/);

    const restore = scenario.run("cilium-values-restore", restoreEnv);
    assert.notEqual(restore.status, 0);
    assert.match(String(restore.summary["error"]), /not created by this program .*not restoring values from it and not deleting it/);
    assert.deepEqual(helmCalls(scenario, "upgrade"), []);
    assert.deepEqual(scenario.get(CILIUM_NAMESPACE, "configmap", SNAPSHOT), foreign);
});
