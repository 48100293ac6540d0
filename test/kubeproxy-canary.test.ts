import { test } from "node:test";
import assert from "node:assert/strict";
import { CILIUM_NAMESPACE, Scenario, withoutServerFields, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "../lab/hostTools";

const skip = hostToolsMissing(["jq", "timeout"]);
const ANNOTATION = "cilium-kpr-migration/original-affinity";
const BACKUP = "kube-proxy-pre-cilium-kpr-backup";
const excludeEnv = (nodes: string) => ({ CANARY_NODES: nodes, ROLLOUT_TIMEOUT: 4 }) as const;

function kubeProxyNodes(scenario: Scenario): string[] {
    const pods = scenario.podsIn("kube-system").filter((p) => (p["metadata"] as { labels?: Record<string, string> }).labels?.["k8s-app"] === "kube-proxy");
    return pods.map((p) => String((p["spec"] as JsonObject)["nodeName"])).sort();
}

function daemonSet(scenario: Scenario): JsonObject {
    const ds = scenario.get("kube-system", "daemonset", "kube-proxy");
    assert.ok(ds, "kube-proxy DaemonSet exists");
    return ds;
}

function affinityOf(ds: JsonObject): unknown {
    return ((ds["spec"] as JsonObject)["template"] as { spec: JsonObject }).spec["affinity"];
}

function withAffinity(ds: JsonObject, affinity: unknown): JsonObject {
    const copy = JSON.parse(JSON.stringify(ds)) as JsonObject;
    ((copy["spec"] as JsonObject)["template"] as { spec: JsonObject }).spec["affinity"] = affinity;
    return copy;
}

function writes(scenario: Scenario): string[] {
    return scenario
        .calls()
        .map((c) => c.args.join(" "))
        .filter((c) => / (create|replace|delete) /.test(` ${c} `));
}

test("exclude keeps kube-proxy off the canary node only, and include brings it back as it was", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const before = withoutServerFields(daemonSet(scenario));
    assert.deepEqual(kubeProxyNodes(scenario), ["m600", "m601", "storage"]);

    const run = scenario.run("kube-proxy-exclude", excludeEnv("m600"));
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, changed: true, excluded: ["m600"] });
    assert.deepEqual(kubeProxyNodes(scenario), ["m601", "storage"], "kube-proxy left m600 and only m600");
    const excluded = daemonSet(scenario);
    assert.deepEqual(affinityOf(excluded), {
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "NotIn", values: ["m600"] }] }],
            },
        },
    });
    assert.equal(((excluded["metadata"] as JsonObject)["annotations"] as Record<string, string>)[ANNOTATION], "null", "no affinity before");

    const include = scenario.run("kube-proxy-include", { ROLLOUT_TIMEOUT: 4 });
    assert.equal(include.status, 0, include.stderr);
    assert.deepEqual(include.summary, { ok: true, changed: true });
    assert.deepEqual(kubeProxyNodes(scenario), ["m600", "m601", "storage"]);
    assert.deepEqual(withoutServerFields(daemonSet(scenario)), before, "the DaemonSet is as it was, annotation gone");

    scenario.clearCalls();
    const again = scenario.run("kube-proxy-include", { ROLLOUT_TIMEOUT: 4 });
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.summary, { ok: true, changed: false });
    assert.deepEqual(writes(scenario), [], "a second include writes nothing");
});

test("exclude run twice writes once; a changed canary set is computed from the saved affinity", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("kube-proxy-exclude", excludeEnv("m600")).status, 0);

    scenario.clearCalls();
    const again = scenario.run("kube-proxy-exclude", excludeEnv("m600"));
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.summary["changed"], false);
    assert.deepEqual(writes(scenario), [], "nothing written the second time");

    const wider = scenario.run("kube-proxy-exclude", excludeEnv("storage m600"));
    assert.equal(wider.status, 0, wider.stderr);
    assert.deepEqual(wider.summary, { ok: true, changed: true, excluded: ["m600", "storage"] });
    assert.deepEqual(kubeProxyNodes(scenario), ["m601"]);
    const terms = (affinityOf(daemonSet(scenario)) as { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: unknown[] } } })
        .nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    assert.deepEqual(
        terms,
        [{ matchFields: ["m600", "storage"].map((node) => ({ key: "metadata.name", operator: "NotIn", values: [node] })) }],
        "one single-value requirement per node (the API server allows one value for In/NotIn on a node field), not stacked per run",
    );

    const narrower = scenario.run("kube-proxy-exclude", excludeEnv("storage"));
    assert.equal(narrower.status, 0, narrower.stderr);
    assert.deepEqual(kubeProxyNodes(scenario), ["m600", "m601"], "m600 is served by kube-proxy again");
});

test("an existing required affinity keeps its terms; the exclusion is added to each, and include restores it exactly", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const original = {
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                    { matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: ["linux"] }] },
                    { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "Exists" }] },
                ],
            },
        },
        podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] },
    };
    scenario.put("kube-system", "daemonset", "kube-proxy", withAffinity(daemonSet(scenario), original));
    const before = withoutServerFields(daemonSet(scenario));

    assert.equal(scenario.run("kube-proxy-exclude", excludeEnv("m601")).status, 0);
    assert.deepEqual(kubeProxyNodes(scenario), ["m600", "storage"], "no term lets kube-proxy back onto m601");
    const exclusion = { key: "metadata.name", operator: "NotIn", values: ["m601"] };
    assert.deepEqual(affinityOf(daemonSet(scenario)), {
        ...original,
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                    {
                        matchExpressions: original.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]!.matchExpressions,
                        matchFields: [exclusion],
                    },
                    {
                        matchExpressions: original.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[1]!.matchExpressions,
                        matchFields: [exclusion],
                    },
                ],
            },
        },
    });

    assert.equal(scenario.run("kube-proxy-include", { ROLLOUT_TIMEOUT: 4 }).status, 0);
    assert.deepEqual(withoutServerFields(daemonSet(scenario)), before);
});

test("the full removal after a canary backs kube-proxy up without the exclusion, so restore serves every node", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const before = withoutServerFields(daemonSet(scenario));
    assert.equal(scenario.run("kube-proxy-exclude", excludeEnv("m600")).status, 0);

    const remove = scenario.run("kube-proxy-remove", { KUBE_PROXY_BACKUP_CONFIGMAP: BACKUP, POD_GONE_TIMEOUT: 6 });
    assert.equal(remove.status, 0, remove.stderr);
    const saved = JSON.parse((scenario.get("kube-system", "configmap", BACKUP)?.["data"] as Record<string, string>)["daemonset.json"] ?? "") as JsonObject;
    assert.deepEqual(saved, before, "backup holds the DaemonSet as it was before the canary");

    // The canary step's delete runs after the removal (Pulumi deletes dropped resources last).
    const include = scenario.run("kube-proxy-include", { ROLLOUT_TIMEOUT: 4 });
    assert.equal(include.status, 0, include.stderr);
    assert.deepEqual(include.summary, { ok: true, changed: false });
    assert.equal(scenario.get("kube-system", "daemonset", "kube-proxy"), undefined, "include does not bring a removed kube-proxy back");

    const restore = scenario.run("kube-proxy-restore", { KUBE_PROXY_BACKUP_CONFIGMAP: BACKUP, ROLLOUT_TIMEOUT: 4 });
    assert.equal(restore.status, 0, restore.stderr);
    assert.deepEqual(kubeProxyNodes(scenario), ["m600", "m601", "storage"]);
});

test("exclude refuses a name that is not a Node, before writing anything", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-exclude", excludeEnv("m600 m602"));
    assert.notEqual(run.status, 0);
    assert.equal(run.summary["ok"], false);
    assert.match(run.stderr, /node 'm602' is not a Node of this cluster .*canaryNodes must use Kubernetes node names/);
    assert.deepEqual(writes(scenario), []);
    assert.deepEqual(kubeProxyNodes(scenario), ["m600", "m601", "storage"]);
});

test("exclude refuses when kube-proxy is already gone: a canary needs it on the other nodes", { skip }, (t) => {
    const scenario = new Scenario({ kubeProxy: false });
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-exclude", excludeEnv("m600"));
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /daemonset\/kube-proxy is absent in kube-system: a canary needs kube-proxy on the other nodes/);
    assert.deepEqual(writes(scenario), []);
});

test("an exclusion whose canary pod never leaves puts the affinity back, waits, then fails saying kube-proxy serves every node again", { skip }, (t) => {
    const scenario = new Scenario({ settings: { podsLinger: true } });
    t.after(() => scenario.dispose());
    const before = withoutServerFields(daemonSet(scenario));
    const run = scenario.run("kube-proxy-exclude", { CANARY_NODES: "m600", ROLLOUT_TIMEOUT: 3 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.equal(run.summary["ok"], false);
    assert.match(
        String(run.summary["error"]),
        /^kube-proxy pods still on canary nodes after 3s: kube-proxy-ax7q0 on m600\. kube-proxy's affinity was put back as this run found it and it has rolled out: the cluster is as before this step, which recorded nothing, so there is nothing for pulumi destroy to undo/,
    );
    assert.ok(run.seconds < 30, `bounded (${run.seconds}s)`);
    const after = withoutServerFields(daemonSet(scenario));
    assert.deepEqual(after, before, "the DaemonSet is as it was, annotation gone");
});

test("a failed change of the canary set goes back to the previous canary set, not further", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("kube-proxy-exclude", excludeEnv("m600")).status, 0);
    const previous = withoutServerFields(daemonSet(scenario));
    scenario.updateSettings({ podsLinger: true });
    const run = scenario.run("kube-proxy-exclude", { CANARY_NODES: "m600 m601", ROLLOUT_TIMEOUT: 3 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.match(String(run.summary["error"]), /still on canary nodes .* on m601\. kube-proxy's affinity was put back as this run found it/);
    assert.deepEqual(withoutServerFields(daemonSet(scenario)), previous, "m600 still excluded, m601 not");
});

test("if putting the affinity back fails as well, the error says kube-proxy is still kept off the canary and how to fix it", { skip }, (t) => {
    const message = 'Error from server (Forbidden): daemonsets.apps "kube-proxy" is forbidden: User "ci" cannot update resource "daemonsets"';
    // The first replace (the exclusion) succeeds; every later one is refused.
    const scenario = new Scenario({ settings: { podsLinger: true, failures: [{ when: ["replace"], message, allow: 1 }] } });
    t.after(() => scenario.dispose());
    const run = scenario.run("kube-proxy-exclude", { CANARY_NODES: "m600", ROLLOUT_TIMEOUT: 3 }, { timeoutSeconds: 60 });
    assert.notEqual(run.status, 0);
    assert.match(
        String(run.summary["error"]),
        /Putting the affinity back ALSO failed .*Forbidden.*kube-proxy is still kept off the canary nodes: run components\/kubeproxy\/scripts\/kube-proxy-include\.sh/,
    );
});

test("while kube-proxy is kept off a canary, neither the values rollback nor kube-proxy-restore counts it as serving", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const snapshot = { CILIUM_NAMESPACE, SNAPSHOT_CONFIGMAP: "cilium-pre-kpr-values" } as const;
    assert.equal(scenario.run("cilium-values-snapshot", snapshot).status, 0);
    // The exclusion's create wrote the DaemonSet, then failed: Pulumi recorded nothing, and a destroy follows.
    assert.equal(scenario.run("kube-proxy-exclude", excludeEnv("m601")).status, 0);

    scenario.clearCalls();
    const rollback = scenario.run("cilium-values-restore", { ...snapshot, CILIUM_CHART_VERSION: "1.19.0", ROLLOUT_TIMEOUT: 3 });
    assert.notEqual(rollback.status, 0, "KPR must not be turned off while m601 has no kube-proxy");
    assert.match(rollback.stderr, /still kept off the canary nodes .*kube-proxy-include\.sh/);
    assert.deepEqual(
        scenario.calls().filter((c) => c.tool === "helm" && c.args.includes("upgrade")),
        [],
        "no helm upgrade",
    );

    const restore = scenario.run("kube-proxy-restore", { KUBE_PROXY_BACKUP_CONFIGMAP: BACKUP, ROLLOUT_TIMEOUT: 3 });
    assert.notEqual(restore.status, 0, "not 'already present and rolled out'");
    assert.match(restore.stderr, /kept off canary nodes .*kube-proxy-include\.sh/);

    assert.equal(scenario.run("kube-proxy-include", { ROLLOUT_TIMEOUT: 4 }).status, 0);
    const after = scenario.run("cilium-values-restore", { ...snapshot, CILIUM_CHART_VERSION: "1.19.0", ROLLOUT_TIMEOUT: 3 });
    assert.equal(after.status, 0, after.stderr);
});

test("exclude refuses a DaemonSet with updateStrategy OnDelete before writing (its rollout cannot be awaited)", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const ds = daemonSet(scenario);
    scenario.put("kube-system", "daemonset", "kube-proxy", { ...ds, spec: { ...(ds["spec"] as JsonObject), updateStrategy: { type: "OnDelete" } } });
    const run = scenario.run("kube-proxy-exclude", excludeEnv("m600"));
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /updateStrategy OnDelete/);
    assert.deepEqual(writes(scenario), []);
});

test("an empty node selector term (matches nothing) stays empty: the exclusion does not widen it", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const original = {
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{}, { matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: ["linux"] }] }],
            },
        },
    };
    scenario.put("kube-system", "daemonset", "kube-proxy", withAffinity(daemonSet(scenario), original));
    assert.equal(scenario.run("kube-proxy-exclude", excludeEnv("m600")).status, 0);
    const terms = (affinityOf(daemonSet(scenario)) as typeof original).nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    assert.deepEqual(terms[0], {});
    assert.deepEqual(kubeProxyNodes(scenario), ["m601", "storage"]);
});
