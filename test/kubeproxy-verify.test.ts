import { test } from "node:test";
import assert from "node:assert/strict";
import { CILIUM_NAMESPACE, Scenario, agentPodName, fixture, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "./support/hostTools";

const skip = hostToolsMissing(["jq", "timeout"]);
const verifyEnv = { CILIUM_NAMESPACE, EXEC_TIMEOUT: 20 } as const;

test("post-migration verify passes when every agent serves kubernetes ClusterIP:443", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("post-migration-verify", verifyEnv);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary["frontends"], [{ ip: "172.27.0.1", port: 443 }]);
    assert.equal((run.summary["pods"] as JsonObject[]).length, 3);
    const execs = scenario.calls().filter((c) => c.args.includes("exec"));
    assert.equal(execs.length, 3);
    for (const call of execs) assert.deepEqual(call.args.slice(call.args.indexOf("--") + 1), ["cilium-dbg", "service", "list", "-o", "json"]);
});

test("post-migration verify names the agent that does not list the kubernetes service", { skip }, (t) => {
    const services = fixture("cilium-services.json") as unknown as JsonObject[];
    const withoutApi = services.filter((s) => ((s["spec"] as JsonObject)["frontend-address"] as JsonObject)["port"] !== 443);
    const scenario = new Scenario({ agentServices: (node) => node === "storage" ? withoutApi : services });
    t.after(() => scenario.dispose());
    const run = scenario.run("post-migration-verify", verifyEnv);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, new RegExp(`pod ${agentPodName(2)} on node storage: does not serve 172.27.0.1:443 \\(lists 1 services\\)`));
    assert.doesNotMatch(run.stderr, new RegExp(`pod ${agentPodName(0)}`));
});

test("post-migration verify requires every ClusterIP of a dual-stack kubernetes service", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const svc = fixture("kubernetes-service.json");
    const spec = svc["spec"] as JsonObject;
    scenario.put("default", "service", "kubernetes", { ...svc, spec: { ...spec, clusterIPs: ["172.27.0.1", "fd00:27::1"], ipFamilies: ["IPv4", "IPv6"] } });
    const run = scenario.run("post-migration-verify", verifyEnv);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /does not serve fd00:27::1:443/);
});

test("operator prerequisites pass with kubectl, jq and helm reaching a ready API server", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("operator-prerequisites", { NEEDS_HELM: "1", KUBECTL_CONTEXT: "prod" });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, context: "prod", serverVersion: "v1.31.4", helmVersion: "v3.16.3+gcfd0749" });
    assert.ok(scenario.calls().some((c) => c.args.join(" ").includes("get --raw /readyz")));
});

test("operator prerequisites name every missing tool", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("operator-prerequisites", { NEEDS_HELM: "1" }, { path: scenario.pathWith(["kubectl"]) });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /missing on PATH: jq helm/);
    assert.equal(run.summary["ok"], false);
    const withoutHelmNeed = scenario.run("operator-prerequisites", {}, { path: scenario.pathWith(["kubectl", "jq"]) });
    assert.equal(withoutHelmNeed.status, 0, withoutHelmNeed.stderr);
});

test("operator prerequisites fail clearly when the cluster cannot be reached", { skip }, (t) => {
    const scenario = new Scenario({ settings: { unreachable: true } });
    t.after(() => scenario.dispose());
    const run = scenario.run("operator-prerequisites", { KUBECTL_CONTEXT: "prod" });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /cannot reach the API server of context 'prod': The connection to the server .* was refused/);
});
