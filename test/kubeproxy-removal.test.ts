import { test } from "node:test";
import assert from "node:assert/strict";
import { Scenario, fixture, withoutServerFields, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "../lab/hostTools";

const skip = hostToolsMissing(["jq", "timeout"]);
const BACKUP = "kube-proxy-pre-cilium-kpr-backup";
const removeEnv = { KUBE_PROXY_BACKUP_CONFIGMAP: BACKUP, POD_GONE_TIMEOUT: 6 } as const;
const restoreEnv = { KUBE_PROXY_BACKUP_CONFIGMAP: BACKUP, ROLLOUT_TIMEOUT: 3 } as const;

function backupData(scenario: Scenario): Record<string, string> {
    const backup = scenario.get("kube-system", "configmap", BACKUP);
    assert.ok(backup, "backup configmap exists");
    return backup["data"] as Record<string, string>;
}

/** kube-proxy pods left (the scenario names them kube-proxy-ax7q0, -bx7q1, -cx7q2). */
function countPods(scenario: Scenario): number {
    let count = 0;
    for (let i = 0; i < 3; i++) if (scenario.get("kube-system", "pod", `kube-proxy-${String.fromCharCode(97 + i)}x7q${i}`)) count++;
    return count;
}

test("remove writes the backup before deleting, then deletes DaemonSet and ConfigMap and waits for the pods", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const ds = scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject;
    const cm = scenario.get("kube-system", "configmap", "kube-proxy") as JsonObject;

    const run = scenario.run("kube-proxy-remove", removeEnv);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, changed: true, backupConfigMap: BACKUP, deleted: ["daemonset/kube-proxy", "configmap/kube-proxy"] });

    const calls = scenario.calls().map((c) => c.args.join(" "));
    const backupWrite = calls.findIndex((c) => c.startsWith("-n kube-system create -f"));
    const firstDelete = calls.findIndex((c) => c.includes(" delete "));
    assert.ok(backupWrite >= 0, "backup created");
    assert.ok(firstDelete > backupWrite, `backup written (call ${backupWrite}) before the first delete (call ${firstDelete})`);

    const data = backupData(scenario);
    assert.deepEqual(JSON.parse(data["daemonset.json"] ?? ""), withoutServerFields(ds));
    assert.deepEqual(JSON.parse(data["configmap.json"] ?? ""), withoutServerFields(cm));
    const savedDs = JSON.parse(data["daemonset.json"] ?? "") as JsonObject;
    assert.equal("status" in savedDs, false);
    assert.equal(JSON.stringify(savedDs).includes("deprecated.daemonset.template.generation"), false);
    assert.equal(JSON.stringify(savedDs).includes("resourceVersion"), false);

    assert.equal(scenario.get("kube-system", "daemonset", "kube-proxy"), undefined);
    assert.equal(scenario.get("kube-system", "configmap", "kube-proxy"), undefined);
    assert.equal(countPods(scenario), 0);
});

test("remove with kube-proxy already gone changes nothing and says so", { skip }, (t) => {
    const scenario = new Scenario({ kubeProxy: false });
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-remove", removeEnv);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.summary["changed"], false);
    assert.match(run.stderr, /already absent; nothing changed \(no backup\)/);
    const writes = scenario.calls().filter((c) => ["create", "replace", "delete"].some((verb) => c.args.includes(verb)));
    assert.deepEqual(writes, []);
    assert.equal(scenario.get("kube-system", "configmap", BACKUP), undefined);
});

test("remove then restore recreates identical objects and deletes the backup", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const before = {
        ds: withoutServerFields(scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject),
        cm: withoutServerFields(scenario.get("kube-system", "configmap", "kube-proxy") as JsonObject),
    };
    assert.equal(scenario.run("kube-proxy-remove", removeEnv).status, 0);

    const restore = scenario.run("kube-proxy-restore", restoreEnv);
    assert.equal(restore.status, 0, restore.stderr);
    assert.deepEqual(restore.summary, { ok: true, recreated: ["configmap/kube-proxy", "daemonset/kube-proxy"], backupDeleted: true });
    const after = {
        ds: withoutServerFields(scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject),
        cm: withoutServerFields(scenario.get("kube-system", "configmap", "kube-proxy") as JsonObject),
    };
    assert.deepEqual(after, before);
    assert.equal(scenario.get("kube-system", "configmap", BACKUP), undefined);
    // The backup was only deleted after the rollout was confirmed.
    const calls = scenario.calls().map((c) => c.args.join(" "));
    const rollout = calls.findIndex((c) => c.includes("rollout status daemonset/kube-proxy"));
    const backupDelete = calls.findIndex((c) => c.includes(`delete configmap ${BACKUP}`));
    assert.ok(rollout >= 0 && backupDelete > rollout, "backup deleted after rollout status");

    // A second restore finds kube-proxy serving and does nothing.
    const again = scenario.run("kube-proxy-restore", restoreEnv);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.summary, { ok: true, recreated: [], backupDeleted: false });
    assert.match(again.stderr, /already present and rolled out/);
});

test("a second remove after a partial first run keeps the saved copy of what is already gone", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const cm = withoutServerFields(scenario.get("kube-system", "configmap", "kube-proxy") as JsonObject);
    const ds = withoutServerFields(scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject);
    // First run saved both and deleted the DaemonSet, then died before deleting the ConfigMap.
    assert.equal(scenario.run("kube-proxy-remove", removeEnv).status, 0);
    scenario.put("kube-system", "configmap", "kube-proxy", fixture("kube-proxy-configmap.json"));

    const run = scenario.run("kube-proxy-remove", removeEnv);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary["deleted"], ["configmap/kube-proxy"]);
    const data = backupData(scenario);
    assert.deepEqual(JSON.parse(data["daemonset.json"] ?? ""), ds, "the DaemonSet copy survived the second run");
    assert.deepEqual(JSON.parse(data["configmap.json"] ?? ""), cm);
});

test("restore without DaemonSet and without backup fails with a clear error", { skip }, (t) => {
    const scenario = new Scenario({ kubeProxy: false });
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-restore", restoreEnv);
    assert.notEqual(run.status, 0);
    assert.equal(run.summary["ok"], false);
    assert.match(run.stderr, /daemonset\/kube-proxy is absent and there is no backup configmap\/kube-proxy-pre-cilium-kpr-backup in kube-system/);
});

test("restore keeps the backup when kube-proxy does not roll out, bounded", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("kube-proxy-remove", removeEnv).status, 0);
    // A DaemonSet that exists but never becomes ready (e.g. image pull failing).
    const saved = JSON.parse(backupData(scenario)["daemonset.json"] ?? "") as JsonObject;
    scenario.put("kube-system", "daemonset", "kube-proxy", {
        ...saved,
        metadata: { ...(saved["metadata"] as JsonObject), generation: 1 },
        status: { desiredNumberScheduled: 3, numberReady: 0, updatedNumberScheduled: 3, observedGeneration: 1 },
    });
    const run = scenario.run("kube-proxy-restore", restoreEnv, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /did not roll out within 3s; backup configmap\/kube-proxy-pre-cilium-kpr-backup kept/);
    assert.ok(run.seconds < 20, `bounded (${run.seconds}s)`);
    assert.ok(scenario.get("kube-system", "configmap", BACKUP), "backup kept");
});

test(
    "a removal whose pods never terminate puts kube-proxy back, waits for it, and then fails saying so (a failed create leaves destroy nothing to undo)",
    { skip },
    (t) => {
        const scenario = new Scenario({ settings: { podsLinger: true } });
        t.after(() => scenario.dispose());
        const before = {
            ds: withoutServerFields(scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject),
            cm: withoutServerFields(scenario.get("kube-system", "configmap", "kube-proxy") as JsonObject),
        };
        const run = scenario.run("kube-proxy-remove", { ...removeEnv, POD_GONE_TIMEOUT: 3, ROLLOUT_TIMEOUT: 10 }, { timeoutSeconds: 60 });
        assert.notEqual(run.status, 0);
        // What the operator sees in `pulumi up`: the cause, then that kube-proxy serves again.
        assert.equal(run.summary["ok"], false);
        assert.match(
            String(run.summary["error"]),
            /^3 kube-proxy pods \(k8s-app=kube-proxy\) still exist after 3s\. kube-proxy was put back \(configmap\/kube-proxy daemonset\/kube-proxy\) and has rolled out: the cluster is as before this step, which recorded nothing, so there is nothing for pulumi destroy to undo/,
        );
        assert.ok(run.seconds < 30, `bounded (${run.seconds}s)`);
        const after = {
            ds: withoutServerFields(scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject),
            cm: withoutServerFields(scenario.get("kube-system", "configmap", "kube-proxy") as JsonObject),
        };
        assert.deepEqual(after, before, "kube-proxy is back as it was");
        const running = scenario
            .podsIn("kube-system")
            .filter((p) => (p["metadata"] as JsonObject)["deletionTimestamp"] === undefined)
            .map((p) => (p["spec"] as JsonObject)["nodeName"]);
        assert.deepEqual(running.sort(), ["m600", "m601", "storage"], "a running kube-proxy pod on every node");
        assert.equal(scenario.get("kube-system", "configmap", BACKUP), undefined, "the backup this run created is gone again");
    },
);

test("when putting kube-proxy back fails too, the error says kube-proxy may be down and how to restore it", { skip }, (t) => {
    // The recreated DaemonSet's rollout takes far longer than the wait allows.
    const scenario = new Scenario({ settings: { podsLinger: true, rolloutSeconds: 600 } });
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-remove", { ...removeEnv, POD_GONE_TIMEOUT: 2, ROLLOUT_TIMEOUT: 2 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.match(
        String(run.summary["error"]),
        /still exist after 2s\. kube-proxy was recreated from backup configmap\/kube-proxy-pre-cilium-kpr-backup \(configmap\/kube-proxy daemonset\/kube-proxy\) but daemonset\/kube-proxy: did not roll out within 2s; check its pods before anything else; the backup is kept$/,
    );
    assert.ok(scenario.get("kube-system", "configmap", BACKUP), "backup kept for kube-proxy-restore.sh");
});

test("remove refuses a backup name equal to the kube-proxy ConfigMap", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-remove", { KUBE_PROXY_BACKUP_CONFIGMAP: "kube-proxy" });
    assert.notEqual(run.status, 0);
    assert.deepEqual(scenario.calls(), []);
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"));
});

test("restore of an OnDelete kube-proxy waits for its pods and succeeds instead of reporting kubectl's refusal as a timeout", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const ds = scenario.get("kube-system", "daemonset", "kube-proxy") as JsonObject;
    scenario.put("kube-system", "daemonset", "kube-proxy", { ...ds, spec: { ...(ds["spec"] as JsonObject), updateStrategy: { type: "OnDelete" } } });
    assert.equal(scenario.run("kube-proxy-remove", removeEnv).status, 0);

    const run = scenario.run("kube-proxy-restore", { ...restoreEnv, ROLLOUT_TIMEOUT: 300 }, { timeoutSeconds: 60 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, recreated: ["configmap/kube-proxy", "daemonset/kube-proxy"], backupDeleted: true });
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"), "kube-proxy is back");
    assert.ok(run.seconds < 20, `no timeout waited (${run.seconds}s)`);
});

/** A ConfigMap someone else keeps at the backup name. */
function foreignConfigMap(name: string, namespace: string): JsonObject {
    return {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace, resourceVersion: "77", labels: { app: "someone-else" } },
        data: { "daemonset.json": "{}", "note": "not ours" },
    };
}

test("remove neither adopts nor overwrites a ConfigMap at the backup name that it did not create", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const foreign = foreignConfigMap(BACKUP, "kube-system");
    scenario.put("kube-system", "configmap", BACKUP, foreign);
    const run = scenario.run("kube-proxy-remove", removeEnv);
    assert.notEqual(run.status, 0);
    assert.match(
        String(run.summary["error"]),
        /configmap\/kube-proxy-pre-cilium-kpr-backup in kube-system was not created by this program .*refusing to adopt or overwrite it/,
    );
    assert.deepEqual(scenario.get("kube-system", "configmap", BACKUP), foreign, "left as it was");
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"), "kube-proxy untouched");
    assert.deepEqual(
        scenario.calls().filter((c) => ["create", "replace", "delete"].some((verb) => c.args.includes(verb))),
        [],
    );
});

test("restore neither reads nor deletes a ConfigMap at the backup name that it did not create", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const foreign = foreignConfigMap(BACKUP, "kube-system");
    scenario.put("kube-system", "configmap", BACKUP, foreign);
    const serving = scenario.run("kube-proxy-restore", restoreEnv);
    assert.equal(serving.status, 0, serving.stderr);
    assert.deepEqual(serving.summary, { ok: true, recreated: [], backupDeleted: false });
    assert.deepEqual(scenario.get("kube-system", "configmap", BACKUP), foreign, "not deleted");

    const gone = new Scenario({ kubeProxy: false });
    t.after(() => gone.dispose());
    gone.put("kube-system", "configmap", BACKUP, foreign);
    const run = gone.run("kube-proxy-restore", restoreEnv);
    assert.notEqual(run.status, 0);
    assert.match(
        String(run.summary["error"]),
        /daemonset\/kube-proxy is absent and configmap\/kube-proxy-pre-cilium-kpr-backup in kube-system was not created by this program/,
    );
    assert.deepEqual(gone.get("kube-system", "configmap", BACKUP), foreign);
    assert.equal(gone.get("kube-system", "daemonset", "kube-proxy"), undefined, "nothing recreated from it");
});

test("a kubectl error after the DaemonSet is deleted also puts kube-proxy back before the step fails", { skip }, (t) => {
    const message = "Error from server (InternalError): an error on the server has prevented the request from succeeding (delete configmaps kube-proxy)";
    const scenario = new Scenario({ settings: { failures: [{ when: ["delete", "configmap", "kube-proxy"], message }] } });
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-remove", { ...removeEnv, ROLLOUT_TIMEOUT: 10 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    const error = String(run.summary["error"]);
    assert.ok(error.includes(message), error);
    assert.match(error, /kube-proxy was put back \(daemonset\/kube-proxy\) and has rolled out/);
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"));
    assert.ok(scenario.get("kube-system", "configmap", "kube-proxy"));
});
