import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CILIUM_NAMESPACE, CLUSTER_SCRIPTS, DEFAULT_RELEASE, Scenario, scriptPath, type JsonObject } from "./support/kubeproxyScenario";
import { DEFAULT_CLUSTER_UID, HELM_GLOBAL, KUBECTL_GLOBAL, KUBECTL_VERBS, helmVerbs } from "./support/fakeKubeCluster";
import { OPERATOR_PREFLIGHT_SCRIPT } from "../components/preflight/preflightArgs";

/*
 * The stand-in kubectl/helm are held to the real tools' behaviour where the scripts touch them
 * (each behaviour cites its upstream source in fakeKubeCluster.ts). If one of these relaxes, the
 * script tests stop proving anything about the real tools.
 */

function scenario(t: { after: (fn: () => void) => void }, options: ConstructorParameters<typeof Scenario>[0] = {}): Scenario {
    const s = new Scenario(options);
    t.after(() => s.dispose());
    return s;
}

test("unknown flags are refused in kubectl's and helm's own words", (t) => {
    const s = scenario(t);
    const kubectl = s.tool("kubectl", ["-n", "kube-system", "get", "daemonset", "kube-proxy", "--all"]);
    assert.equal(kubectl.status, 1);
    assert.equal(kubectl.stderr, "error: unknown flag: --all\nSee 'kubectl get --help' for usage.\n");
    const shorthand = s.tool("kubectl", ["rollout", "status", "daemonset/cilium", "-x"]);
    assert.equal(shorthand.status, 1);
    assert.match(shorthand.stderr, /^error: unknown shorthand flag: 'x' in -x\nSee 'kubectl rollout status --help' for usage\.$/m);
    // A flag of another command is unknown here: `--timeout` belongs to delete/rollout, not get.
    assert.match(s.tool("kubectl", ["get", "pods", "--timeout=5s"]).stderr, /unknown flag: --timeout/);
});

test("Helm 4 has no `list --all`; Helm 3 has it and lists only deployed and failed releases without a state flag", (t) => {
    const helm4 = scenario(t, { release: { ...DEFAULT_RELEASE, status: "pending-upgrade" } });
    const refused = helm4.tool("helm", ["-n", CILIUM_NAMESPACE, "list", "--all", "-o", "json"]);
    assert.equal(refused.status, 1);
    assert.equal(refused.stderr, "Error: unknown flag: --all\n");
    assert.match(helm4.tool("helm", ["version", "--short"]).stdout, /^v4\./);
    const all4 = JSON.parse(helm4.tool("helm", ["-n", CILIUM_NAMESPACE, "list", "-o", "json"]).stdout) as JsonObject[];
    assert.deepEqual(
        all4.map((r) => r["status"]),
        ["pending-upgrade"],
        "Helm 4 lists every state by default",
    );

    const helm3 = scenario(t, { release: { ...DEFAULT_RELEASE, status: "pending-upgrade" }, settings: { helmVersion: "v3.16.3+gcfd0749" } });
    assert.deepEqual(JSON.parse(helm3.tool("helm", ["-n", CILIUM_NAMESPACE, "list", "-o", "json"]).stdout), [], "Helm 3 hides pending by default");
    const all3 = JSON.parse(helm3.tool("helm", ["-n", CILIUM_NAMESPACE, "list", "--all", "-o", "json"]).stdout) as JsonObject[];
    assert.equal(all3.length, 1);
});

test("replace with a stale resourceVersion gets 409 Conflict; create clears resourceVersion", (t) => {
    const s = scenario(t);
    const file = join(s.dir, "cm.json");
    const live = JSON.parse(s.tool("kubectl", ["-n", "kube-system", "get", "configmap", "kube-proxy", "-o", "json"]).stdout) as JsonObject;
    writeFileSync(file, JSON.stringify(live));
    assert.equal(s.tool("kubectl", ["-n", "kube-system", "replace", "-f", file]).status, 0, "first replace with the current version");
    const stale = s.tool("kubectl", ["-n", "kube-system", "replace", "-f", file]);
    assert.equal(stale.status, 1);
    assert.equal(
        stale.stderr,
        `Error from server (Conflict): error when replacing "${file}": Operation cannot be fulfilled on configmaps "kube-proxy": the object has been modified; please apply your changes to the latest version and try again\n`,
    );

    assert.equal(s.tool("kubectl", ["-n", "kube-system", "delete", "configmap", "kube-proxy"]).status, 0);
    const created = s.tool("kubectl", ["-n", "kube-system", "create", "-f", file]);
    assert.equal(created.status, 0, created.stderr);
    const again = s.get("kube-system", "configmap", "kube-proxy") as { metadata: { resourceVersion: string } };
    assert.notEqual(again.metadata.resourceVersion, (live["metadata"] as { resourceVersion: string }).resourceVersion);
});

test("rollout status: OnDelete fails at once, desired 0 is rolled out, a rollout in progress is waited for", (t) => {
    const s = scenario(t, { settings: { rolloutSeconds: 2 } });
    const ds = s.get("kube-system", "daemonset", "kube-proxy") as JsonObject;
    s.put("kube-system", "daemonset", "kube-proxy", { ...ds, spec: { ...(ds["spec"] as JsonObject), updateStrategy: { type: "OnDelete" } } });
    const onDelete = s.tool("kubectl", ["-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=30s"]);
    assert.equal(onDelete.status, 1);
    assert.equal(onDelete.stderr, "error: rollout status is only available for RollingUpdate strategy type\n");

    const cilium = s.get(CILIUM_NAMESPACE, "daemonset", "cilium") as JsonObject;
    s.put(CILIUM_NAMESPACE, "daemonset", "cilium", {
        ...cilium,
        status: { desiredNumberScheduled: 0, numberAvailable: 0, updatedNumberScheduled: 0, observedGeneration: 99 },
    });
    const none = s.tool("kubectl", ["-n", CILIUM_NAMESPACE, "rollout", "status", "daemonset/cilium", "--timeout=5s"]);
    assert.equal(none.status, 0, none.stderr);
    assert.equal(none.stdout, 'daemon set "cilium" successfully rolled out\n');

    // A template change under RollingUpdate takes rolloutSeconds; rollout status watches until it is done.
    s.put("kube-system", "daemonset", "kube-proxy", ds);
    const changed = JSON.parse(JSON.stringify(ds)) as { spec: { template: { metadata: { labels: Record<string, string> } } } };
    changed.spec.template.metadata.labels["changed"] = "yes";
    const file = join(s.dir, "ds.json");
    writeFileSync(file, JSON.stringify(changed));
    assert.equal(s.tool("kubectl", ["-n", "kube-system", "replace", "-f", file]).status, 0);
    const started = Date.now();
    const waited = s.tool("kubectl", ["-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=30s"]);
    assert.equal(waited.status, 0, waited.stderr);
    assert.match(
        waited.stdout,
        /Waiting for daemon set "kube-proxy" rollout to finish: 0 out of 3 new pods have been updated\.\.\.\n.*successfully rolled out/s,
    );
    assert.ok(Date.now() - started >= 1000, "it waited");

    const short = s.tool("kubectl", ["-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=1s"]);
    assert.equal(short.status, 0, "already done");
    const missing = s.tool("kubectl", ["-n", "nowhere", "rollout", "status", "daemonset/cilium", "--timeout=300s"]);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, 'Error from server (NotFound): daemonsets.apps "cilium" not found\n');
});

test("a deleted DaemonSet's pods terminate gracefully, then are gone", (t) => {
    const s = scenario(t, { settings: { podGraceSeconds: 2 } });
    assert.equal(s.tool("kubectl", ["-n", "kube-system", "delete", "daemonset", "kube-proxy"]).status, 0);
    const terminating = JSON.parse(s.tool("kubectl", ["-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "-o", "json"]).stdout) as {
        items: { metadata: { deletionTimestamp?: string } }[];
    };
    assert.equal(terminating.items.length, 3, "still there, terminating");
    for (const pod of terminating.items) assert.match(pod.metadata.deletionTimestamp ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
    assert.equal(s.tool("kubectl", ["-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "-o", "name"]).stdout, "");
});

test("the kube-system namespace carries the cluster's UID; an object in a missing namespace is NotFound", (t) => {
    const s = scenario(t, { settings: { clusterUid: "11111111-2222-4333-8444-555555555555" } });
    const ns = JSON.parse(s.tool("kubectl", ["get", "namespace", "kube-system", "-o", "json"]).stdout) as { metadata: { uid: string } };
    assert.equal(ns.metadata.uid, "11111111-2222-4333-8444-555555555555");
    assert.notEqual(ns.metadata.uid, DEFAULT_CLUSTER_UID);
    const file = join(s.dir, "cm.json");
    writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "nowhere" }, data: {} }));
    const created = s.tool("kubectl", ["create", "-f", file]);
    assert.equal(created.stderr, `Error from server (NotFound): error when creating "${file}": namespaces "nowhere" not found\n`);
});

/** Logical lines (continuations joined) of a script. */
function logicalLines(text: string): string[] {
    return text.replace(/\\\n\s*/g, " ").split("\n");
}

type Tables = {
    readonly global: Readonly<Record<string, { readonly takesValue: boolean }>>;
    readonly verbs: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
};

/**
 * Every flag a script passes to kubectl or helm where it calls them (kc, hm, tool "${kubectl_cmd[@]}",
 * kube, ...), with the command it belongs to (one or two words, as the fake's tables key them).
 */
function flagsPassed(text: string, tables: { kubectl: Tables; helm: Tables }): { tool: "kubectl" | "helm"; verb: string; flag: string; line: string }[] {
    const markers: [RegExp, "kubectl" | "helm"][] = [
        [/(?:^|[\s(])(?:kc|kube) /g, "kubectl"],
        [/"\$\{kubectl_cmd\[@\]\}"/g, "kubectl"],
        [/(?:^|[\s(])kubectl /g, "kubectl"],
        [/(?:^|[\s(])hm /g, "helm"],
        [/"\$\{helm_cmd\[@\]\}"/g, "helm"],
        [/(?:^|[\s(])helm /g, "helm"],
    ];
    const found: { tool: "kubectl" | "helm"; verb: string; flag: string; line: string }[] = [];
    for (const line of logicalLines(text)) {
        if (/^\s*#/.test(line)) continue;
        for (const [marker, tool] of markers) {
            for (const m of line.matchAll(marker)) {
                const rest = line.slice((m.index ?? 0) + m[0].length).split(/\s(?:\||;|&&|\|\||[0-9]?>|--\s)/)[0] ?? "";
                const tokens = rest.split(/\s+/).filter(Boolean);
                const { global, verbs } = tables[tool];
                const words: string[] = [];
                for (let k = 0; k < tokens.length && words.length < 2; k++) {
                    const token = tokens[k] ?? "";
                    if (token.startsWith("-")) {
                        if (!token.includes("=") && global[token]?.takesValue) k++;
                    } else words.push(token);
                }
                const two = words.join(" ");
                const verb = verbs[two] ? two : (words[0] ?? "");
                for (const f of rest.matchAll(/(?:^|\s)(--?[a-zA-Z][a-zA-Z-]*)(?==|\s|$)/g)) found.push({ tool, verb, flag: f[1] ?? "", line });
            }
        }
    }
    return found;
}

test("every kubectl/helm flag in the scripts is one its command has in kubectl 1.35 / Helm 4 (as the fake models them, with upstream citations)", () => {
    const tables = { kubectl: { global: KUBECTL_GLOBAL, verbs: KUBECTL_VERBS }, helm: { global: HELM_GLOBAL, verbs: helmVerbs(4) } };
    const files = [
        ...CLUSTER_SCRIPTS.map((name) => scriptPath(name)),
        join(__dirname, "..", "components", "kubeproxy", "scripts", "cluster-lib.sh"),
        OPERATOR_PREFLIGHT_SCRIPT,
    ];
    let checked = 0;
    for (const file of files) {
        for (const { tool, verb, flag, line } of flagsPassed(readFileSync(file, "utf8"), tables)) {
            checked++;
            const known = flag in tables[tool].global || flag in (tables[tool].verbs[verb] ?? {});
            assert.ok(known, `${file}: \`${tool} ${verb}\` has no flag ${flag} (line: ${line.trim()})`);
        }
    }
    assert.ok(checked > 30, `found ${checked} flags`);
    // The scan sees a flag of the wrong command (Helm 4's list has no --all, though get values has one),
    // and ignores jq's flags after a pipe and the command after exec's `--`.
    const scan = [
        ...flagsPassed("hm list --all -o json | jq -r --arg x 1", tables),
        ...flagsPassed("kc exec -c agent pod -- cilium-dbg status -o json", tables),
    ];
    assert.deepEqual(
        scan.map((f) => `${f.verb} ${f.flag}`),
        ["list --all", "list -o", "exec -c"],
    );
    assert.equal("--all" in (tables.helm.verbs["list"] ?? {}), false);
});
