import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PENDING_NODE_CONFIG_NAME } from "../components/waves/pendingNodeConfig";
import { MIGRATED_LABEL } from "../components/waves/wavePlan";
import { isScriptName, scriptPath } from "../components/commands/scripts";
import { connectFromNode, scheduleKubeProxy, startAgent, type FakeService, type WaveClusterState } from "./support/fakeWaveCluster";
import { clusterFixture, REFERENCE_NODES, referenceWaveState, stepSummary } from "./support/referenceWaveCluster";
import { NODE_CONFIG_CHECK_ENV } from "../components/ciliumVersions/ciliumVersions";
import { TYPE, WAVE_STEP } from "../components/resourceNames";
import { find, runProgram } from "./support/program";

/*
 * The wave scripts (components/waves/scripts/) run for real against the stand-in kubectl of
 * test/support/fakeWaveCluster.ts, on a cluster shaped like the reference one (m600, m601, storage;
 * Cilium in "default"), with the release already carrying the final values and the pending
 * CiliumNodeConfig in place, as the graph leaves them before the first wave.
 */

const ROOT = join(__dirname, "..");
const NODES = REFERENCE_NODES;

class WaveLab {
    readonly dir = mkdtempSync(join(tmpdir(), "waves-"));
    readonly stateFile = join(this.dir, "state.json");
    private readonly bin = join(this.dir, "bin");

    constructor(adjust: (s: WaveClusterState) => void = () => {}) {
        mkdirSync(this.bin);
        symlinkSync(join(ROOT, "test", "support", "fake-wave-kubectl.sh"), join(this.bin, "kubectl"));
        const state = referenceWaveState({
            services: [
                clusterFixture("kubernetes-service.json") as unknown as FakeService,
                { metadata: { name: "web", namespace: "default" }, spec: { type: "NodePort", ports: [{ port: 80, nodePort: 30000 }] } },
            ],
            // The API servers' endpoints, as the API server publishes them for the `kubernetes` Service.
            endpointSlices: [
                {
                    metadata: { name: "kubernetes", namespace: "default", labels: { "kubernetes.io/service-name": "kubernetes" } },
                    addressType: "IPv4",
                    endpoints: [
                        { addresses: ["172.25.4.10"], conditions: { ready: true } },
                        { addresses: ["172.25.4.11"], conditions: { ready: true } },
                    ],
                    ports: [{ name: "https", port: 6443, protocol: "TCP" }],
                },
            ],
        });
        adjust(state);
        scheduleKubeProxy(state);
        for (const n of NODES) startAgent(state, n);
        this.write(state);
    }

    state(): WaveClusterState {
        return JSON.parse(readFileSync(this.stateFile, "utf8")) as WaveClusterState;
    }
    write(state: WaveClusterState): void {
        writeFileSync(this.stateFile, JSON.stringify(state));
    }
    update(change: (s: WaveClusterState) => void): void {
        const s = this.state();
        change(s);
        this.write(s);
    }

    run(script: string, env: Record<string, string> = {}): { status: number; summary: Record<string, unknown>; stderr: string } {
        const name = `waves/${script}`;
        assert.ok(isScriptName(name), `${name} is in the script registry`);
        const result = spawnSync("bash", [scriptPath(name)], {
            encoding: "utf8",
            env: {
                PATH: `${this.bin}:${process.env.PATH}`,
                FAKE_WAVE_STATE: this.stateFile,
                CILIUM_NAMESPACE: "default",
                PENDING_NODE_CONFIG: PENDING_NODE_CONFIG_NAME,
                // Long enough for a few polls of the stand-in (each kubectl call starts a node process).
                WAIT_TIMEOUT: "20",
                ...env,
            },
        });
        return { status: result.status ?? -1, summary: stepSummary(result, script), stderr: result.stderr };
    }

    kubeProxyOn(): string[] {
        return this.state()
            .pods.filter((p) => p.app === "kube-proxy" && p.terminating === undefined)
            .map((p) => p.nodeName)
            .sort();
    }
    agentKpr(node: string): string | undefined {
        return this.state().pods.find((p) => p.app === "cilium" && p.nodeName === node)?.config?.["kube-proxy-replacement"];
    }
    labelled(node: string): boolean {
        return this.state().nodes[node]!.labels[MIGRATED_LABEL] === "true";
    }
    close(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

function ok(run: { status: number; summary: Record<string, unknown>; stderr: string }): Record<string, unknown> {
    assert.equal(run.status, 0, `${JSON.stringify(run.summary)}\n${run.stderr}`);
    assert.equal(run.summary.ok, true);
    return run.summary;
}
function failed(run: { status: number; summary: Record<string, unknown>; stderr: string }, message: RegExp): void {
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.summary.ok, false);
    assert.match(String(run.summary.error), message);
}

test("preflight: a cluster without the CiliumNodeConfig CRD, or without its v2, is refused", () => {
    const absent = new WaveLab((s) => (s.crdVersions = null));
    failed(absent.run("node-config-crd-check", NODE_CONFIG_CHECK_ENV), /no CiliumNodeConfig CRD .*NotFound.*Cilium >= 1\.16/);
    absent.close();
    const alphaOnly = new WaveLab((s) => (s.crdVersions = ["v2alpha1"]));
    failed(alphaOnly.run("node-config-crd-check", NODE_CONFIG_CHECK_ENV), /does not serve cilium\.io\/v2 \(served: v2alpha1\)/);
    alphaOnly.close();
    const lab = new WaveLab();
    assert.deepEqual(ok(lab.run("node-config-crd-check", NODE_CONFIG_CHECK_ENV)).versions, ["v2alpha1", "v2"]);
    lab.close();
});

test("pending gate: passes while the CiliumNodeConfig keeps KPR off, fails when cilium-config wins the merge", () => {
    const lab = new WaveLab();
    assert.deepEqual(ok(lab.run("pending-gate")).checked, NODES);
    lab.close();
    // The resolver version that merges v2 CiliumNodeConfigs before cilium-config: the override does not take effect.
    const reordered = new WaveLab((s) => (s.resolverOrder = "configMapLast"));
    failed(reordered.run("pending-gate"), /does not keep KPR off: m600: KPR mode True; m600: resolved kube-proxy-replacement 'true'.*no node is touched/);
    reordered.close();
    const withoutConfig = new WaveLab((s) => (s.nodeConfigs = []));
    failed(withoutConfig.run("pending-gate"), /config-sources 'config-map:default\/cilium-config' do not include the pending CiliumNodeConfig/);
    withoutConfig.close();
});

test("a wave on m600: affinity, handover, gate, services; handback returns it to kube-proxy; the other nodes are untouched", () => {
    const lab = new WaveLab();
    assert.equal(ok(lab.run("kube-proxy-label-affinity")).changed, true);
    assert.equal(ok(lab.run("kube-proxy-label-affinity")).changed, false, "idempotent");
    assert.deepEqual(lab.kubeProxyOn(), NODES.slice().sort(), "no node labelled yet: kube-proxy everywhere");

    failed(lab.run("node-kpr-gate", { NODE: "m600" }), /did not take over from kube-proxy: kube-proxy-replacement mode is False.*pending CiliumNodeConfig/);

    const handover = ok(lab.run("node-handover", { NODE: "m600" }));
    assert.equal(handover.changed, true);
    assert.equal(lab.labelled("m600"), true);
    assert.deepEqual(lab.kubeProxyOn(), ["m601", "storage"]);
    assert.equal(lab.agentKpr("m600"), "true");
    assert.equal(lab.agentKpr("m601"), "false", "other agents keep KPR off");
    assert.equal(lab.state().agentRestartedBesideKubeProxy, undefined, "the agent restarted only once kube-proxy's pod had terminated");
    assert.equal(ok(lab.run("node-handover", { NODE: "m600" })).changed, false, "idempotent");

    assert.match(String(ok(lab.run("node-kpr-gate", { NODE: "m600" })).configSources), /^config-map:default\/cilium-config$/);
    assert.deepEqual(ok(lab.run("node-services", { NODE: "m600" })), {
        ok: true,
        node: "m600",
        clusterIP: "172.27.0.1",
        nodePort: 30001,
        nodeAddresses: ["172.25.4.10"],
    });
    assert.deepEqual(checkObjects(lab.state()), [], "the check Service and its EndpointSlice are gone again");
    assert.deepEqual(ok(lab.run("pending-gate")).checked, ["m601", "storage"]);

    failed(lab.run("kube-proxy-label-affinity-restore"), /still labelled cilium-kpr\.io\/kpr-migrated=true \(m600\)/);
    assert.equal(ok(lab.run("node-handback", { NODE: "m600" })).changed, true);
    assert.equal(lab.labelled("m600"), false);
    assert.deepEqual(lab.kubeProxyOn(), NODES.slice().sort());
    assert.equal(lab.agentKpr("m600"), "false");
    assert.equal(ok(lab.run("node-handback", { NODE: "m600" })).changed, false, "idempotent");
    assert.equal(ok(lab.run("kube-proxy-label-affinity-restore")).changed, true);
    const affinity = (lab.state().kubeProxy!.spec as { template: { spec: { affinity?: unknown } } }).template.spec.affinity;
    assert.deepEqual(affinity, (clusterFixture("kube-proxy-daemonset.json").spec as { template: { spec: { affinity?: unknown } } }).template.spec.affinity);
    lab.close();
});

/** What node-services.sh created and has not removed. */
function checkObjects(state: WaveClusterState): string[] {
    return [...state.services.map((s) => `service/${s.metadata.name}`), ...state.endpointSlices.map((e) => `endpointslice/${e.metadata.name}`)].filter((n) =>
        n.includes("node-check"),
    );
}

/** Whether a connection from `node` to the kubernetes ClusterIP completes in the stand-in (see connectFromNode). */
function served(state: WaveClusterState, node: string): boolean {
    try {
        connectFromNode(state, node, "172.27.0.1", 443);
        return true;
    } catch {
        return false;
    }
}

const QUICK = { CONNECT_TIMEOUT: "1", WAIT_TIMEOUT: "3" };

test("node check: real connections from the node's agent container, through a check Service it creates and removes", () => {
    const lab = new WaveLab();
    ok(lab.run("kube-proxy-label-affinity"));
    ok(lab.run("node-handover", { NODE: "m600" }));
    const summary = ok(lab.run("node-services", { NODE: "m600" }));
    assert.equal(summary.nodePort, 30001, "a NodePort the API server allocated for the check Service (30000 is taken by web)");
    const calls = readFileSync(`${lab.stateFile}.calls`, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as string[]);
    const connects = calls.filter((c) => c.includes("exec")).map((c) => c.slice(c.indexOf("--") + 1));
    assert.deepEqual(
        connects.filter((c) => c[0] === "timeout"),
        [
            ["timeout", "5", "bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"', "node-check", "172.27.0.1", "443"],
            ["timeout", "5", "bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"', "node-check", "172.25.4.10", "30001"],
        ],
        "one connection to the ClusterIP, one to the node's own address and the check NodePort",
    );
    const created = calls.filter((c) => c[0] === "create");
    assert.equal(created.length, 2, "the check Service, then its EndpointSlice");
    assert.deepEqual(checkObjects(lab.state()), []);
    // The Service is named after the node (hashed: node names may be longer than a Service name may be).
    assert.ok(calls.some((c) => c.join(" ").match(/^-n default delete service cilium-kpr-node-check-[0-9a-f]{12} --ignore-not-found$/)));

    // A node still on kube-proxy is served too: the check is about the node, the KPR gate about its agent.
    ok(lab.run("node-services", { NODE: "m601" }));

    // A leftover check Service of an interrupted run is replaced, not a reason to fail.
    lab.update((s) => {
        const name = calls.find((c) => c[0] === "-n" && c[2] === "delete" && c[3] === "service")![4]!;
        s.services.push({ metadata: { name, namespace: "default", uid: "uid-leftover" }, spec: { type: "NodePort", ports: [{ port: 443, nodePort: 31999 }] } });
    });
    assert.equal(ok(lab.run("node-services", { NODE: "m600" })).nodePort, 30001);
    assert.deepEqual(checkObjects(lab.state()), []);
    lab.close();
});

test("node check fails on a node served by neither kube-proxy nor a KPR agent, and on a NodePort the agent does not serve", () => {
    const lab = new WaveLab((s) => (s.nodePortUnserved = ["storage"]));
    ok(lab.run("kube-proxy-label-affinity"));
    // m601 labelled by hand: kube-proxy leaves it, but its agent was never restarted, so it still runs without KPR.
    lab.update((s) => {
        s.nodes.m601!.labels["cilium-kpr.io/kpr-migrated"] = "true";
        scheduleKubeProxy(s);
        s.pods = s.pods.filter((p) => p.terminating === undefined);
    });
    assert.equal(served(lab.state(), "m601"), false);
    failed(lab.run("node-services", { NODE: "m601", ...QUICK }), /^m601 does not serve the kubernetes ClusterIP 172\.27\.0\.1:443: no answer within 1s$/);
    assert.deepEqual(checkObjects(lab.state()), [], "nothing created before the ClusterIP answered");

    ok(lab.run("node-handover", { NODE: "storage" }));
    failed(
        lab.run("node-services", { NODE: "storage", ...QUICK }),
        /^storage does not serve NodePort 30001 on its address 172\.25\.4\.12 \(check Service default\/cilium-kpr-node-check-[0-9a-f]{12}\): node-check: line 1: \/dev\/tcp\/172\.25\.4\.12\/30001: Connection refused \(undone: remove_check_service\)$/,
    );
    assert.deepEqual(checkObjects(lab.state()), [], "the check Service is removed when the check fails too");

    // An admission policy that forbids NodePort Services: the step fails with the API server's words.
    lab.update((s) => (s.denyNodePortServices = "validate.kyverno.svc-fail"));
    failed(
        lab.run("node-services", { NODE: "m600", ...QUICK }),
        /^could not create the check Service default\/cilium-kpr-node-check-[0-9a-f]{12}: .*admission webhook "validate\.kyverno\.svc-fail" denied the request: NodePort Services are not allowed/,
    );
    assert.deepEqual(checkObjects(lab.state()), []);
    lab.close();
});

test("a failing node check stops the wave with its node still served and the later waves untouched", () => {
    // Wave 1 = [m600] runs its steps in the graph's order; the node check fails on m600.
    const lab = new WaveLab((s) => (s.nodePortUnserved = ["m600"]));
    const agentsBefore = lab.state().pods.filter((p) => p.app === "cilium" && p.nodeName !== "m600");
    ok(lab.run("kube-proxy-label-affinity"));
    ok(lab.run("pending-gate"));
    ok(lab.run("node-handover", { NODE: "m600" }));
    ok(lab.run("node-kpr-gate", { NODE: "m600" }));
    failed(lab.run("node-services", { NODE: "m600", ...QUICK }), /^m600 does not serve NodePort 30001 on its address 172\.25\.4\.10/);
    // The graph starts wave 2 only after m600's node check (test/waves-graph.test.ts), so nothing else runs.
    const state = lab.state();
    for (const node of NODES) assert.equal(served(state, node), true, `${node} is served`);
    assert.equal(lab.agentKpr("m600"), "true", "m600 stays on its KPR agent");
    assert.deepEqual(lab.kubeProxyOn(), ["m601", "storage"]);
    assert.equal(lab.labelled("m601") || lab.labelled("storage"), false, "no node of a later wave is labelled");
    assert.deepEqual(
        state.pods.filter((p) => p.app === "cilium" && p.nodeName !== "m600"),
        agentsBefore,
        "no agent of a later wave was restarted",
    );
    assert.deepEqual(checkObjects(state), []);
    lab.close();
});

test("steps in the wrong order fail: handover before kube-proxy's affinity, handback after kube-proxy was removed", () => {
    const lab = new WaveLab();
    failed(lab.run("node-handover", { NODE: "m600" }), /does not keep kube-proxy off nodes labelled .* kube-proxy-label-affinity step must run first/);
    assert.equal(lab.labelled("m600"), false, "refused before labelling");
    assert.deepEqual(lab.kubeProxyOn(), NODES.slice().sort());

    ok(lab.run("kube-proxy-label-affinity"));
    ok(lab.run("node-handover", { NODE: "m600" }));
    lab.update((s) => {
        s.kubeProxy = null;
        scheduleKubeProxy(s);
    });
    failed(lab.run("node-handback", { NODE: "m600" }), /daemonset\/kube-proxy is absent: kube-proxy cannot serve m600 again/);
    assert.equal(lab.labelled("m600"), true, "the node keeps its KPR agent");
    assert.equal(lab.agentKpr("m600"), "true");
    lab.close();

    // The pending object deleted before the nodes were handed back: the agent would come back with KPR.
    const early = new WaveLab();
    ok(early.run("kube-proxy-label-affinity"));
    ok(early.run("node-handover", { NODE: "m601" }));
    early.update((s) => (s.nodeConfigs = []));
    failed(early.run("node-handback", { NODE: "m601" }), /the agent on m601 still reports kube-proxy-replacement True: is the pending CiliumNodeConfig there/);
    assert.deepEqual(early.kubeProxyOn(), NODES.slice().sort(), "kube-proxy serves m601 again all the same (it came back first)");
    early.close();
});

test("a handover whose new agent never gets Ready hands the node back to kube-proxy itself", () => {
    const stuck = new WaveLab((s) => (s.agentNeverReady = ["m600"]));
    ok(stuck.run("kube-proxy-label-affinity"));
    failed(stuck.run("node-handover", { NODE: "m600" }), /^no Ready Cilium agent on m600 within 20s \(undoing it failed too: hand_back; see the log above\)$/);
    assert.equal(stuck.labelled("m600"), false, "label removed again");
    assert.deepEqual(stuck.kubeProxyOn(), NODES.slice().sort(), "kube-proxy back on m600");
    stuck.close();
});

test("drain honours PodDisruptionBudgets: a blocked drain fails and uncordons; uncordon undoes a drain", () => {
    const lab = new WaveLab((s) => (s.pdbBlocks = ["m601"]));
    ok(lab.run("node-drain", { NODE: "m600", DRAIN_TIMEOUT: "30" }));
    assert.equal(lab.state().nodes.m600!.unschedulable, true);
    ok(lab.run("node-uncordon", { NODE: "m600" }));
    assert.equal(lab.state().nodes.m600!.unschedulable, false);
    failed(lab.run("node-drain", { NODE: "m601", DRAIN_TIMEOUT: "30" }), /could not drain m601 within 30s .*PodDisruptionBudget/);
    assert.equal(lab.state().nodes.m601!.unschedulable, false, "uncordoned again");
    const calls = readFileSync(`${lab.stateFile}.calls`, "utf8");
    assert.match(calls, /\["drain","m601","--ignore-daemonsets","--delete-emptydir-data","--timeout=30s"\]/);
    assert.doesNotMatch(calls, /--disable-eviction|--force/);
    lab.close();
});

test("a canary that already ran is adopted as wave 1: its node is labelled, kube-proxy's name exclusion becomes the label one", () => {
    const canaryAffinity = {
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "NotIn", values: ["m600"] }] }],
            },
        },
    };
    const lab = new WaveLab((s) => {
        const ds = s.kubeProxy as { metadata: { annotations?: Record<string, string> }; spec: { template: { spec: { affinity?: unknown } } } };
        // As kube-proxy-exclude.sh leaves it: pre-canary affinity (none) saved, m600 excluded by name.
        ds.metadata.annotations = { ...ds.metadata.annotations, "cilium-kpr-migration/original-affinity": "null" };
        ds.spec.template.spec.affinity = canaryAffinity;
    });
    // The fake's scheduler reads matchExpressions only; place the canary state by hand: no kube-proxy on m600.
    lab.update((s) => (s.pods = s.pods.filter((p) => !(p.app === "kube-proxy" && p.nodeName === "m600"))));
    failed(lab.run("canary-adopt", { CANARY_NODES: "m601" }), /m601 still runs kube-proxy, so the canary did not migrate it/);
    assert.equal(lab.labelled("m601"), false);
    // m600's agent resolved KPR "false" (the pending object selected it when it started): refuse too.
    failed(lab.run("canary-adopt", { CANARY_NODES: "m600" }), /the agent on m600 runs with kube-proxy-replacement 'false'/);
    lab.update((s) => {
        for (const p of s.pods) if (p.app === "cilium" && p.nodeName === "m600") p.config = { ...p.config, "kube-proxy-replacement": "true" };
    });
    assert.deepEqual(ok(lab.run("canary-adopt", { CANARY_NODES: "m600" })).labelled, ["m600"]);
    assert.equal(lab.labelled("m600"), true);

    ok(lab.run("kube-proxy-label-affinity"));
    const ds = lab.state().kubeProxy as { metadata: { annotations: Record<string, string> }; spec: { template: { spec: { affinity?: unknown } } } };
    assert.equal(ds.metadata.annotations["cilium-kpr-migration/original-affinity"], undefined, "the canary's saved affinity is taken over");
    assert.equal(ds.metadata.annotations["cilium-kpr.io/pre-wave-affinity"], "null");
    assert.deepEqual(ds.spec.template.spec.affinity, {
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: MIGRATED_LABEL, operator: "NotIn", values: ["true"] }] }],
            },
        },
    });
    assert.deepEqual(lab.kubeProxyOn(), ["m601", "storage"], "kube-proxy stays off the canary node");
    assert.equal(ok(lab.run("node-handover", { NODE: "m600" })).changed, false, "the canary node is not migrated again");
    lab.close();
});

test("every wave script refuses another cluster than the one its step recorded", () => {
    const lab = new WaveLab((s) => (s.kubeSystemUid = "uid-of-another-cluster"));
    for (const script of ["node-config-crd-check", "kube-proxy-label-affinity", "node-handover", "node-handback", "node-drain"]) {
        failed(
            lab.run(script, { NODE: "m600", CLUSTER_UID: "uid-recorded-by-the-stack" }),
            /^wrong cluster: this step belongs to the cluster whose kube-system namespace has UID uid-recorded-by-the-stack, but the current context reaches one with UID uid-of-another-cluster; nothing was changed$/,
        );
    }
    assert.equal(lab.labelled("m600"), false);
    assert.equal(lab.state().nodes.m600!.unschedulable, false);
    lab.close();
});

test("drain and uncordon run once, on the node's wave: their update (a new script digest, another timeout) leaves the node as it is", async () => {
    const outcome = await runProgram("prod", { migration: { waveSize: 1, drain: true } });
    assert.equal(outcome.error, undefined, String(outcome.error));
    const lab = new WaveLab();
    ok(lab.run("node-drain", { NODE: "m600", DRAIN_TIMEOUT: "30" }));
    ok(lab.run("node-uncordon", { NODE: "m600" }));
    const runUpdate = (step: string) => {
        const r = find(outcome.resources, TYPE.localCommand, step);
        assert.equal(typeof r.inputs.update, "string", `${step} has an update text (without it pulumi-command re-runs the create)`);
        assert.notEqual(r.inputs.update, r.inputs.create);
        const run = spawnSync("bash", ["-c", String(r.inputs.update)], {
            encoding: "utf8",
            env: { PATH: `${join(lab.dir, "bin")}:${process.env.PATH}`, FAKE_WAVE_STATE: lab.stateFile, NODE: "m600" },
        });
        assert.equal(run.status, 0, run.stderr);
        assert.deepEqual(JSON.parse(run.stdout), { ok: true, node: "m600", changed: false });
    };
    for (const cordoned of [false, true]) {
        // An operator may have cordoned the node since its wave: the uncordon's update must not undo that.
        lab.update((s) => (s.nodes.m600!.unschedulable = cordoned));
        const state = lab.state();
        const calls = readFileSync(`${lab.stateFile}.calls`, "utf8");
        runUpdate(WAVE_STEP.drain("m600"));
        runUpdate(WAVE_STEP.uncordon("m600"));
        assert.deepEqual(lab.state(), state, "no node drained, cordoned or uncordoned");
        assert.equal(readFileSync(`${lab.stateFile}.calls`, "utf8"), calls, "no kubectl call at all");
    }
    lab.close();
});
