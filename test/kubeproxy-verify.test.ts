import { test } from "node:test";
import assert from "node:assert/strict";
import { CILIUM_NAMESPACE, Scenario, agentPodName, fixture, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "../lab/hostTools";

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
    const scenario = new Scenario({ agentServices: (node) => (node === "storage" ? withoutApi : services) });
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
