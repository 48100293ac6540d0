import { test } from "node:test";
import assert from "node:assert/strict";
import { CILIUM_NAMESPACE, Scenario, agentPodName, fixture, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "../lab/hostTools";

const skip = hostToolsMissing(["jq", "timeout"]);
const gateEnv = { CILIUM_NAMESPACE, ROLLOUT_TIMEOUT: 2, EXEC_TIMEOUT: 20 } as const;
const removeEnv = { KUBE_PROXY_BACKUP_CONFIGMAP: "kube-proxy-pre-cilium-kpr-backup", POD_GONE_TIMEOUT: 5 } as const;

function kprFalse(): JsonObject {
    return fixture("cilium-status-kpr-false.json");
}

/** The gate → removal step as the program chains it: removal only runs when the gate exits 0. */
function gateThenRemove(scenario: Scenario): { gate: ReturnType<Scenario["run"]>; removed: boolean } {
    const gate = scenario.run("kpr-gate", gateEnv);
    if (gate.status !== 0) return { gate, removed: false };
    return { gate, removed: scenario.run("kube-proxy-remove", removeEnv).status === 0 };
}

test("gate passes when every agent reports KPR True with socketLB and nodePort", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", gateEnv);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.summary["ok"], true);
    assert.equal(run.summary["desired"], 3);
    const pods = run.summary["pods"] as JsonObject[];
    assert.deepEqual(pods.map((p) => p["node"]).sort(), ["m600", "m601", "storage"]);
    // Every agent was asked, in its cilium-agent container.
    const execs = scenario.calls().filter((c) => c.args.includes("exec"));
    assert.equal(execs.length, 3);
    for (const call of execs) {
        assert.ok(call.args.includes("cilium-agent"), call.args.join(" "));
        assert.deepEqual(call.args.slice(call.args.indexOf("--") + 1), ["cilium-dbg", "status", "-o", "json"]);
    }
});

test("one agent with KPR False fails the gate, names that pod and what it reported, and removal never runs", { skip }, (t) => {
    const scenario = new Scenario({ agentStatus: (node) => (node === "m601" ? kprFalse() : fixture("cilium-status-kpr-true.json")) });
    t.after(() => scenario.dispose());
    const { gate, removed } = gateThenRemove(scenario);
    assert.notEqual(gate.status, 0);
    assert.equal(removed, false);
    const bad = agentPodName(1);
    assert.match(gate.stderr, new RegExp(`pod ${bad} on node m601: kube-proxy-replacement mode=False, socketLB.enabled=false, nodePort.enabled=false`));
    assert.doesNotMatch(gate.stderr, new RegExp(`pod ${agentPodName(0)} on node`), "a healthy pod is not reported");
    const failing = (gate.summary["pods"] as JsonObject[]).filter((p) => p["ok"] === false);
    assert.deepEqual(
        failing.map((p) => p["pod"]),
        [bad],
    );
    // No delete was ever sent and kube-proxy is intact.
    assert.equal(scenario.calls().filter((c) => c.args[0] === "delete").length, 0);
    assert.ok(scenario.get("kube-system", "daemonset", "kube-proxy"));
    assert.ok(scenario.get("kube-system", "configmap", "kube-proxy"));
});

test("absent booleans count as false: mode True without socketLB.enabled fails", { skip }, (t) => {
    const partial = fixture("cilium-status-kpr-true.json");
    const kpr = partial["kube-proxy-replacement"] as JsonObject;
    const features = kpr["features"] as JsonObject;
    features["socketLB"] = {};
    const scenario = new Scenario({ agentStatus: (node) => (node === "storage" ? partial : fixture("cilium-status-kpr-true.json")) });
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(
        run.stderr,
        new RegExp(`pod ${agentPodName(2)} on node storage: kube-proxy-replacement mode=True, socketLB.enabled=false, nodePort.enabled=true`),
    );
});

test("an agent whose status cannot be read fails the gate with the reason", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    scenario.setAgent(agentPodName(0), "status", "not json at all");
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, new RegExp(`pod ${agentPodName(0)} on node m600: cilium-dbg status did not print JSON`));
});

test("gate fails, bounded, when the agent rollout never completes", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const ds = scenario.get(CILIUM_NAMESPACE, "daemonset", "cilium") as JsonObject;
    scenario.put(CILIUM_NAMESPACE, "daemonset", "cilium", { ...ds, status: { ...(ds["status"] as JsonObject), numberReady: 2, updatedNumberScheduled: 2 } });
    const run = scenario.run("kpr-gate", gateEnv, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /daemonset\/cilium in namespace default: did not roll out within 2s; kube-proxy stays/);
    assert.ok(run.seconds >= 2, `waited the rollout timeout (${run.seconds}s)`);
    assert.ok(run.seconds < 20, `bounded (${run.seconds}s)`);
    assert.equal(scenario.calls().filter((c) => c.args.includes("exec")).length, 0, "no agent is asked before the rollout is done");
});

test("gate fails when fewer agent pods exist than the DaemonSet wants", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const ds = scenario.get(CILIUM_NAMESPACE, "daemonset", "cilium") as JsonObject;
    const status = ds["status"] as JsonObject;
    scenario.put(CILIUM_NAMESPACE, "daemonset", "cilium", {
        ...ds,
        status: { ...status, desiredNumberScheduled: 4, currentNumberScheduled: 4, numberReady: 4, numberAvailable: 4, updatedNumberScheduled: 4 },
    });
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /found 3 agent pods \(k8s-app=cilium\) but daemonset\/cilium wants 4/);
});

test("gate passes --context through to kubectl", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", { ...gateEnv, KUBECTL_CONTEXT: "prod-admin@m600" });
    assert.equal(run.status, 0, run.stderr);
    const calls = scenario.calls();
    assert.ok(calls.length > 0);
    for (const call of calls) assert.equal(call.args[call.args.indexOf("--context") + 1], "prod-admin@m600", call.args.join(" "));
});

test("an agent without a kube-proxy-replacement section fails as mode=absent", { skip }, (t) => {
    const scenario = new Scenario({ agentStatus: (node) => (node === "m600" ? { cilium: { state: "Ok" } } : fixture("cilium-status-kpr-true.json")) });
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(
        run.stderr,
        new RegExp(`pod ${agentPodName(0)} on node m600: kube-proxy-replacement mode=absent, socketLB.enabled=false, nodePort.enabled=false`),
    );
});

test("an agent where exec fails is reported with kubectl's error", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    scenario.failExec(agentPodName(2), 'error: unable to upgrade connection: container not found ("cilium-agent")');
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, new RegExp(`pod ${agentPodName(2)} on node storage: cilium-dbg status failed: error: unable to upgrade connection`));
});

test("mode must be True even when socketLB and nodePort report enabled", { skip }, (t) => {
    const odd = fixture("cilium-status-kpr-true.json");
    (odd["kube-proxy-replacement"] as JsonObject)["mode"] = "False";
    const scenario = new Scenario({ agentStatus: (node) => (node === "m601" ? odd : fixture("cilium-status-kpr-true.json")) });
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(
        run.stderr,
        new RegExp(`pod ${agentPodName(1)} on node m601: kube-proxy-replacement mode=False, socketLB.enabled=true, nodePort.enabled=true`),
    );
});

test("nodePort.enabled absent fails even with mode True and socketLB on", { skip }, (t) => {
    const odd = fixture("cilium-status-kpr-true.json");
    const features = (odd["kube-proxy-replacement"] as JsonObject)["features"] as JsonObject;
    features["nodePort"] = { mode: "SNAT", algorithm: "Random", acceleration: "None" };
    const scenario = new Scenario({ agentStatus: (node) => (node === "m600" ? odd : fixture("cilium-status-kpr-true.json")) });
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", gateEnv);
    assert.notEqual(run.status, 0);
    assert.match(
        run.stderr,
        new RegExp(`pod ${agentPodName(0)} on node m600: kube-proxy-replacement mode=True, socketLB.enabled=true, nodePort.enabled=false`),
    );
});

test("a wrong namespace fails the gate at once with kubectl's NotFound, not as a timeout", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("kpr-gate", { ...gateEnv, CILIUM_NAMESPACE: "kube-systen", ROLLOUT_TIMEOUT: 300 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.equal(run.summary["ok"], false);
    assert.equal(
        run.summary["error"],
        'daemonset/cilium in namespace kube-systen: Error from server (NotFound): daemonsets.apps "cilium" not found; kube-proxy stays',
    );
    assert.doesNotMatch(run.stderr, /within 300s/);
    assert.ok(run.seconds < 20, `at once (${run.seconds}s), not after the 300 s rollout timeout`);
});

test("an agent DaemonSet with updateStrategy OnDelete whose pods are not replaced fails with the reason, not kubectl's refusal", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const ds = scenario.get(CILIUM_NAMESPACE, "daemonset", "cilium") as JsonObject;
    scenario.put(CILIUM_NAMESPACE, "daemonset", "cilium", {
        ...ds,
        spec: { ...(ds["spec"] as JsonObject), updateStrategy: { type: "OnDelete" } },
        status: { ...(ds["status"] as JsonObject), updatedNumberScheduled: 1 },
    });
    const run = scenario.run("kpr-gate", { ...gateEnv, ROLLOUT_TIMEOUT: 2 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.match(
        String(run.summary["error"]),
        /^daemonset\/cilium in namespace default: did not roll out within 2s \(updateStrategy OnDelete: 1 of 3 pods run the current template, 3 available; OnDelete replaces a pod only when it is deleted\); kube-proxy stays$/,
    );
    // With every pod on the current template an OnDelete DaemonSet counts as rolled out.
    scenario.put(CILIUM_NAMESPACE, "daemonset", "cilium", { ...ds, spec: { ...(ds["spec"] as JsonObject), updateStrategy: { type: "OnDelete" } } });
    const ok = scenario.run("kpr-gate", gateEnv);
    assert.equal(ok.status, 0, ok.stderr);
});
