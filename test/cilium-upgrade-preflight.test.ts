import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CILIUM_NAMESPACE, DEFAULT_RELEASE, Scenario } from "./support/kubeproxyScenario";
import type { FakeRelease } from "./support/fakeKubeCluster";
import { hostToolsMissing } from "../lab/hostTools";
import { valueKeyPaths } from "../components/ciliumVersions/ciliumVersions";
import { chartKeySet1190, chartKeyVerdict } from "../components/ciliumVersions/chartKeys/chartKeySet";

/*
 * cilium-upgrade-preflight.sh against the cluster stand-in: the release runs DEFAULT_RELEASE
 * (chart 1.19.0, values ipam.mode, kubeProxyReplacement, routingMode, tunnelProtocol,
 * operator.replicas); agents on m600, m601, storage.
 */

const skip = hostToolsMissing(["jq", "timeout"]);

/** The program's values for the upgrade: every key the running release has, plus KPR settings. */
const PROGRAM_VALUES = {
    kubeProxyReplacement: true,
    k8sServiceHost: "172.25.4.1",
    k8sServicePort: 6444,
    routingMode: "tunnel",
    tunnelProtocol: "vxlan",
    ipam: { mode: "kubernetes" },
    operator: { replicas: 2 },
};

function upgradeEnv(extra: Record<string, string | number> = {}) {
    return {
        CILIUM_NAMESPACE,
        CILIUM_CHART_VERSION: "1.19.1",
        UPGRADE_FROM: "1.19.0",
        CILIUM_VALUES_JSON: JSON.stringify(PROGRAM_VALUES),
        PREPULL_TIMEOUT: 6,
        ...extra,
    };
}

function helmCalls(scenario: Scenario, verb: string): string[][] {
    return scenario
        .calls()
        .filter((c) => c.tool === "helm" && c.args.includes(verb))
        .map((c) => [...c.args]);
}

function installs(scenario: Scenario): FakeRelease[] {
    const file = join(scenario.dir, "helm-installs.log");
    if (!existsSync(file)) return [];
    return readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as FakeRelease);
}

function preflightLeft(scenario: Scenario): string[] {
    return [
        ...(scenario.get(CILIUM_NAMESPACE, "daemonset", "cilium-pre-flight-check") ? ["daemonset"] : []),
        ...(scenario.release(CILIUM_NAMESPACE, "cilium-preflight") ? ["release"] : []),
        ...scenario
            .podsIn(CILIUM_NAMESPACE)
            .filter((p) => ((p["metadata"] as { labels?: Record<string, string> }).labels ?? {})["k8s-app"] === "cilium-pre-flight-check")
            .map((p) => String((p["metadata"] as { name: string }).name)),
    ];
}

test("same chart version: only the running version is read, nothing is pre-pulled or written", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("cilium-upgrade-preflight", { CILIUM_NAMESPACE, CILIUM_CHART_VERSION: "1.19.0", UPGRADE_FROM: "" });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, path: "same-version", running: "1.19.0", target: "1.19.0", prepulled: false, nodes: 0 });
    assert.deepEqual(helmCalls(scenario, "install"), []);
    assert.deepEqual(installs(scenario), []);
});

test("config says same version but the release runs another chart: refused before anything changes", { skip }, (t) => {
    const scenario = new Scenario({ release: { ...DEFAULT_RELEASE, chart: "cilium-1.18.6", appVersion: "1.18.6" } });
    t.after(() => scenario.dispose());
    const run = scenario.run("cilium-upgrade-preflight", { CILIUM_NAMESPACE, CILIUM_CHART_VERSION: "1.19.0" });
    assert.equal(run.status, 1, run.stdout);
    assert.match(String(run.summary["error"]), /runs chart 1\.18\.6, but cilium\.chartVersion is 1\.19\.0 and cilium\.upgradeFrom is not set/);
    assert.match(String(run.summary["error"]), /set cilium\.upgradeFrom to 1\.18\.6/);
    assert.deepEqual(installs(scenario), []);
});

test("chart upgrade: the new image is Ready on every node before the step ends, then the pre-flight is removed", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const run = scenario.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, path: "chart-upgrade", running: "1.19.0", target: "1.19.1", prepulled: true, nodes: 3 });

    const [installed, ...more] = installs(scenario);
    assert.equal(more.length, 0);
    assert.equal(installed?.name, "cilium-preflight");
    assert.equal(installed?.chart, "cilium-1.19.1", "the new chart version is pre-pulled");
    assert.deepEqual(installed?.values, {
        preflight: { enabled: true },
        agent: false,
        operator: { enabled: false },
        k8sServiceHost: "172.25.4.1",
        k8sServicePort: 6444,
    });
    // Every key the pre-pull sets exists in the 1.19 chart (the upgrade guide's --set keys plus the kube-proxy-free ones).
    const keys = chartKeySet1190();
    for (const path of valueKeyPaths(installed?.values ?? {})) assert.equal(chartKeyVerdict(keys, path), "present", path);

    // Install, wait, uninstall, in that order; the pre-flight is gone afterwards and the real release untouched.
    const order = scenario
        .calls()
        .map((c) => `${c.tool} ${c.args.join(" ")}`)
        .filter((c) => / (install|uninstall) cilium-preflight|get pods -l k8s-app=cilium-pre-flight-check/.test(c));
    assert.match(order[0] ?? "", / install cilium-preflight/);
    const uninstallAt = order.findIndex((c) => c.includes(" uninstall cilium-preflight"));
    const waitedAt = order.findIndex((c) => c.includes("get pods -l k8s-app=cilium-pre-flight-check"));
    assert.ok(waitedAt > 0 && uninstallAt > waitedAt, order.join("\n"));
    assert.deepEqual(preflightLeft(scenario), []);
    assert.equal(
        scenario.release(CILIUM_NAMESPACE, "cilium")?.revision,
        DEFAULT_RELEASE.revision,
        "the release itself is changed by the Helm release step, not here",
    );
});

test("chart upgrade with the image unpullable on one node: fails naming the node, removes the pre-flight, leaves the release", { skip }, (t) => {
    const scenario = new Scenario({ settings: { imagePullFailsOn: ["storage"] } });
    t.after(() => scenario.dispose());
    const run = scenario.run("cilium-upgrade-preflight", upgradeEnv({ PREPULL_TIMEOUT: 3 }));
    assert.equal(run.status, 1, run.stdout);
    assert.match(String(run.summary["error"]), /not Ready on every agent node/);
    assert.match(String(run.summary["error"]), /storage \(cilium-pre-flight-check-[a-z0-9]+: ErrImagePull\)/);
    assert.match(String(run.summary["error"]), /release cilium was not changed/);
    assert.deepEqual(preflightLeft(scenario), [], "the failed pre-pull is cleaned up");
    assert.equal(scenario.release(CILIUM_NAMESPACE, "cilium")?.chart, "cilium-1.19.0");
});

test("chart upgrade: values set on the release that the program would drop are refused before any pre-pull", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    const withoutIpam: Record<string, unknown> = { ...PROGRAM_VALUES };
    delete withoutIpam["ipam"];
    const run = scenario.run("cilium-upgrade-preflight", upgradeEnv({ CILIUM_VALUES_JSON: JSON.stringify(withoutIpam) }));
    assert.equal(run.status, 1, run.stdout);
    assert.match(String(run.summary["error"]), /values set that this program does not send: ipam\.mode\./);
    assert.match(String(run.summary["error"]), /add them to cilium\.extraValues/);
    assert.deepEqual(installs(scenario), []);
});

test("chart upgrade: the release must run upgradeFrom; one already at the target skips the pre-pull", { skip }, (t) => {
    const other = new Scenario({ release: { ...DEFAULT_RELEASE, chart: "cilium-1.18.6", appVersion: "1.18.6" } });
    const done = new Scenario({ release: { ...DEFAULT_RELEASE, chart: "cilium-1.19.1", appVersion: "1.19.1" } });
    t.after(() => {
        other.dispose();
        done.dispose();
    });
    const wrong = other.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(wrong.status, 1, wrong.stdout);
    assert.match(String(wrong.summary["error"]), /runs chart 1\.18\.6, not 1\.19\.0 as cilium\.upgradeFrom says/);
    const again = done.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.summary["path"], "chart-upgrade-done");
    assert.deepEqual(installs(done), []);
});

test("a pre-flight release left by an interrupted run is removed before the new pre-pull", { skip }, (t) => {
    const scenario = new Scenario();
    t.after(() => scenario.dispose());
    // The interrupted run: the pre-flight installed, never removed.
    const first = scenario.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(first.status, 0, first.stderr);
    const leftover = installs(scenario)[0]!;
    scenario.setRelease(leftover);
    const run = scenario.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /left from an earlier run; removing it first/);
    assert.deepEqual(preflightLeft(scenario), []);
    // Another release at that name is not touched.
    scenario.setRelease({ ...DEFAULT_RELEASE, name: "cilium-preflight", values: { some: "thing" } });
    const refused = scenario.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(refused.status, 1, refused.stdout);
    assert.match(String(refused.summary["error"]), /is not a Cilium pre-flight release .* refusing to remove it/);
    assert.ok(scenario.release(CILIUM_NAMESPACE, "cilium-preflight"), "left alone");
});

test("a release that does not exist yet is installed fresh on the same-version path, refused with upgradeFrom", { skip }, (t) => {
    const scenario = new Scenario({ release: null });
    t.after(() => scenario.dispose());
    const fresh = scenario.run("cilium-upgrade-preflight", { CILIUM_NAMESPACE, CILIUM_CHART_VERSION: "1.19.0" });
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.equal(fresh.summary["path"], "install");
    const upgrade = scenario.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(upgrade.status, 1);
    assert.match(String(upgrade.summary["error"]), /does not exist .* remove cilium\.upgradeFrom/);
});

test("a server error while waiting ends the step with kubectl's reason, and the pre-flight is removed again", { skip }, (t) => {
    const scenario = new Scenario({
        settings: {
            failures: [
                {
                    when: ["get", "deployment", "cilium-pre-flight-check"],
                    message: "Error from server (InternalError): an error on the server has prevented the request from succeeding",
                },
            ],
        },
    });
    t.after(() => scenario.dispose());
    const run = scenario.run("cilium-upgrade-preflight", upgradeEnv());
    assert.equal(run.status, 1, run.stdout);
    assert.match(String(run.summary["error"]), /InternalError/);
    assert.match(String(run.summary["error"]), /the pre-flight release cilium-preflight was removed again/);
    assert.deepEqual(preflightLeft(scenario), []);
});
