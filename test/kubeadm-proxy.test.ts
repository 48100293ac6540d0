import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Scenario, fixture, type JsonObject } from "./support/kubeproxyScenario";
import { hostToolsMissing } from "../lab/hostTools";

/*
 * kubeadm-proxy-disable.sh / -restore.sh / -status.sh against the cluster stand-in. The fixture
 * kubeadm-config is shaped as kubeadm 1.31+ uploads a v1beta4 ClusterConfiguration (keys sorted,
 * `proxy: {}` for the zero Proxy struct: cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go).
 */

const skip = hostToolsMissing(["jq", "awk"]);
const BACKUP = "kubeadm-config-pre-cilium-kpr-backup";
const env = { KUBEADM_BACKUP_CONFIGMAP: BACKUP } as const;

function withKubeadm(text?: string): Scenario {
    const scenario = new Scenario({ kubeProxy: false });
    const cm = fixture("kubeadm-config-configmap.json");
    if (text !== undefined) (cm["data"] as Record<string, string>)["ClusterConfiguration"] = text;
    scenario.put("kube-system", "configmap", "kubeadm-config", cm);
    return scenario;
}

function configText(scenario: Scenario, name = "kubeadm-config"): string {
    const cm = scenario.get("kube-system", "configmap", name);
    assert.ok(cm, `configmap ${name} exists`);
    return (cm["data"] as Record<string, string>)["ClusterConfiguration"] ?? "";
}

function writes(scenario: Scenario): string[] {
    return scenario
        .calls()
        .map((c) => c.args.join(" "))
        .filter((a) => /\b(create|replace|delete|apply|patch|edit)\b/.test(a));
}

const ORIGINAL = (fixture("kubeadm-config-configmap.json")["data"] as Record<string, string>)["ClusterConfiguration"]!;

test("disable: backs the ClusterConfiguration up, then sets proxy.disabled: true and changes no other line", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    const run = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.summary["changed"], true);
    assert.equal(run.summary["proxyDisabled"], true);
    assert.equal(run.summary["backupConfigMap"], BACKUP);

    const after = configText(scenario);
    assert.equal(after, ORIGINAL.replace("proxy: {}\n", "proxy:\n  disabled: true\n"));
    assert.equal(configText(scenario, BACKUP), ORIGINAL, "the backup holds the original text byte for byte");

    const calls = writes(scenario);
    const backupAt = calls.findIndex((c) => c.includes("create -f"));
    const replaceAt = calls.findIndex((c) => c.includes("replace -f"));
    assert.ok(backupAt >= 0 && replaceAt > backupAt, `backup written before the edit: ${calls.join(" | ")}`);

    // The operator is told how to upgrade from now on, in the step's output.
    assert.match(run.stderr, /kubeadm upgrade apply <version> --skip-phases=addon\/kube-proxy/);
    assert.match(run.stderr, /kubeadm upgrade node --skip-phases=addon\/kube-proxy/);
    assert.match(String(run.summary["operatorAction"]), /--skip-phases=addon\/kube-proxy/);
});

test("disable twice: the second run writes nothing", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("kubeadm-proxy-disable", env).status, 0);
    const once = configText(scenario);
    scenario.clearCalls();
    const again = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.summary["changed"], false);
    assert.deepEqual(writes(scenario), []);
    assert.equal(configText(scenario), once);
});

test("restore after disable puts the original text back and deletes the backup", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("kubeadm-proxy-disable", env).status, 0);
    const restore = scenario.run("kubeadm-proxy-restore", env);
    assert.equal(restore.status, 0, restore.stderr);
    assert.deepEqual(restore.summary, { ok: true, restored: true, how: "original-text", backupDeleted: true });
    assert.equal(configText(scenario), ORIGINAL);
    assert.equal(scenario.get("kube-system", "configmap", BACKUP), undefined);
    // A second restore has nothing to do.
    const again = scenario.run("kubeadm-proxy-restore", env);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.summary["restored"], false);
});

test("restore after a kubeadm upgrade re-uploaded the config: only the proxy block goes back, the new version stays", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    assert.equal(scenario.run("kubeadm-proxy-disable", env).status, 0);
    // What `kubeadm upgrade apply v1.32.2` leaves behind: the same text with the new kubernetesVersion.
    const cm = scenario.get("kube-system", "configmap", "kubeadm-config") as JsonObject;
    const upgraded = configText(scenario).replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.32.2");
    scenario.put("kube-system", "configmap", "kubeadm-config", { ...cm, data: { ClusterConfiguration: upgraded } });

    const restore = scenario.run("kubeadm-proxy-restore", env);
    assert.equal(restore.status, 0, restore.stderr);
    assert.equal(restore.summary["how"], "proxy-block-only");
    assert.equal(configText(scenario), ORIGINAL.replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.32.2"));
});

test("proxy already disabled before the migration: disable records it, restore leaves it disabled", { skip }, (t) => {
    const disabled = ORIGINAL.replace("proxy: {}\n", "proxy:\n  disabled: true\n");
    const scenario = withKubeadm(disabled);
    t.after(() => scenario.dispose());
    const run = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.summary["changed"], false);
    assert.equal(configText(scenario, BACKUP), disabled);
    assert.ok(!writes(scenario).some((c) => c.includes("replace")), "kubeadm-config itself is not written");
    const restore = scenario.run("kubeadm-proxy-restore", env);
    assert.equal(restore.status, 0, restore.stderr);
    assert.equal(restore.summary["how"], "unchanged-was-disabled");
    assert.equal(configText(scenario), disabled);
});

test("not a kubeadm cluster (no kubeadm-config): disable and restore skip with a clear message and write nothing", { skip }, (t) => {
    const scenario = new Scenario({ kubeProxy: false });
    t.after(() => scenario.dispose());
    const run = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.summary, { ok: true, changed: false, kubeadm: false, proxyDisabled: null, backupConfigMap: null, operatorAction: null });
    assert.match(run.stderr, /not a kubeadm cluster/);
    assert.equal(scenario.run("kubeadm-proxy-restore", env).status, 0);
    assert.deepEqual(writes(scenario), []);
});

test("a v1beta3 ClusterConfiguration (no proxy field) is left alone with the reason", { skip }, (t) => {
    const scenario = withKubeadm(ORIGINAL.replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3").replace("proxy: {}\n", ""));
    t.after(() => scenario.dispose());
    const run = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.summary["changed"], false);
    assert.match(run.stderr, /v1beta3 .* no proxy\.disabled/);
    assert.deepEqual(writes(scenario), []);
});

for (const [what, text] of [
    ["flow style with content", ORIGINAL.replace("proxy: {}", "proxy: {disabled: false}")],
    ["an unknown key under proxy", ORIGINAL.replace("proxy: {}", "proxy:\n  mode: ipvs")],
    ["two proxy keys", `${ORIGINAL}proxy: {}\n`],
    ["two documents", `${ORIGINAL}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n`],
    ["no proxy key", ORIGINAL.replace("proxy: {}\n", "")],
] as const) {
    test(`a configuration it does not understand (${what}) is refused and nothing is written`, { skip }, (t) => {
        const scenario = withKubeadm(text);
        t.after(() => scenario.dispose());
        const run = scenario.run("kubeadm-proxy-disable", env);
        assert.equal(run.status, 1, run.stdout);
        assert.equal(run.summary["ok"], false);
        assert.match(String(run.summary["error"]), /refusing to edit it/);
        assert.deepEqual(writes(scenario), []);
        assert.equal(configText(scenario), text);
    });
}

test("a concurrent change between read and write is refused by resourceVersion, not overwritten", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    // A kubectl that lets another writer (a kubeadm upgrade) update kubeadm-config just before our replace.
    const bin = join(scenario.dir, "racing-bin");
    const racer = join(bin, "kubectl");
    mkdirSync(bin);
    writeFileSync(
        racer,
        [
            "#!/usr/bin/env bash",
            'if [[ " $* " == *" replace "* ]]; then',
            `  f="${scenario.dir}/objects/kube-system/configmap/kubeadm-config.json"`,
            '  jq \'.metadata.resourceVersion = "999999" | .data.ClusterConfiguration |= sub("v1.31.4"; "v1.32.2")\' "$f" >"$f.tmp" && mv "$f.tmp" "$f"',
            "fi",
            `exec ${join(__dirname, "support", "fake-kubectl")} "$@"`,
            "",
        ].join("\n"),
    );
    chmodSync(racer, 0o755);
    const run = scenario.run("kubeadm-proxy-disable", env, { path: `${bin}:${scenario.dir}/bin:${process.env["PATH"] ?? "/usr/bin:/bin"}` });
    assert.equal(run.status, 1, run.stderr);
    assert.match(String(run.summary["error"]), /409|Conflict|modified/i);
    const text = configText(scenario);
    assert.match(text, /kubernetesVersion: v1\.32\.2/, "the other writer's change survives");
    assert.match(text, /^proxy: \{\}$/m, "and ours was not applied over it");
});

test("status is read-only and reports proxy.disabled before and after", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    const before = scenario.run("kubeadm-proxy-status", env);
    assert.equal(before.status, 0, before.stderr);
    assert.deepEqual(before.summary, { ok: true, kubeadm: true, apiVersion: "kubeadm.k8s.io/v1beta4", understood: true, proxyDisabled: false, backup: false });
    assert.deepEqual(writes(scenario), []);
    assert.equal(scenario.run("kubeadm-proxy-disable", env).status, 0);
    const after = scenario.run("kubeadm-proxy-status", env);
    assert.deepEqual(after.summary, { ok: true, kubeadm: true, apiVersion: "kubeadm.k8s.io/v1beta4", understood: true, proxyDisabled: true, backup: true });
    const none = new Scenario({ kubeProxy: false });
    t.after(() => none.dispose());
    assert.deepEqual(none.run("kubeadm-proxy-status", env).summary, { ok: true, kubeadm: false });
});

test("a ConfigMap at the backup's name that this program did not create is neither adopted nor restored from", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    scenario.put("kube-system", "configmap", BACKUP, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: BACKUP, namespace: "kube-system" },
        data: { ClusterConfiguration: ORIGINAL.replace("proxy: {}\n", "proxy:\n  disabled: true\n") },
    });
    const run = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(run.status, 1, run.stdout);
    assert.match(String(run.summary["error"]), /was not created by this program/);
    const restore = scenario.run("kubeadm-proxy-restore", env);
    assert.equal(restore.status, 1, restore.stdout);
    assert.match(String(restore.summary["error"]), /refusing to restore from it/);
    assert.deepEqual(writes(scenario), []);
    assert.equal(configText(scenario), ORIGINAL);
});

test("a failure after the backup was written removes it again: the failed step leaves nothing behind", { skip }, (t) => {
    const scenario = withKubeadm();
    t.after(() => scenario.dispose());
    // The backup's read-back fails (its first read, with --ignore-not-found, still answers).
    const failures = [
        {
            when: ["get", "configmap", BACKUP],
            message: "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
            allow: 1,
        },
    ];
    writeFileSync(join(scenario.dir, "settings.json"), JSON.stringify({ nodes: scenario.nodes, failures }));
    const run = scenario.run("kubeadm-proxy-disable", env);
    assert.equal(run.status, 1, run.stdout);
    assert.match(String(run.summary["error"]), /ServiceUnavailable/);
    assert.match(String(run.summary["error"]), /undone: backup removed/);
    assert.equal(scenario.get("kube-system", "configmap", BACKUP), undefined);
    assert.equal(configText(scenario), ORIGINAL);
});
