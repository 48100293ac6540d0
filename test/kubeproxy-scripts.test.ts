import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { hostToolsMissing } from "./support/hostTools";
import { readFileSync } from "node:fs";
import {
    CLUSTER_SCRIPTS,
    KUBEPROXY_PRELUDES,
    MINIMAL_CLUSTER_ENV,
    NODE_SCRIPTS,
    SCRIPTS_DIR,
    Scenario,
    readScript,
    scriptPath,
} from "./support/kubeproxyScenario";

const CLUSTER_SCRIPT_PRELUDE = "cluster-lib";

const ALL = [...CLUSTER_SCRIPTS, ...NODE_SCRIPTS];

test("every script in the folder is listed in the script registry (components/commands/scripts.ts), and every listed one exists", () => {
    const files = readdirSync(SCRIPTS_DIR)
        .filter((f) => f.endsWith(".sh"))
        .map((f) => f.slice(0, -3))
        .sort();
    assert.deepEqual(files, [...ALL, ...KUBEPROXY_PRELUDES].sort());
    assert.deepEqual(KUBEPROXY_PRELUDES.sort(), ["cluster-lib", "kube-proxy-state", "kubeadm-config-lib"]);
});

test("cluster scripts source the shared prelude as files, and carry it inlined (no source line) when embedded", () => {
    const prelude = readFileSync(join(SCRIPTS_DIR, `${CLUSTER_SCRIPT_PRELUDE}.sh`), "utf8");
    for (const name of CLUSTER_SCRIPTS) {
        assert.match(
            readFileSync(scriptPath(name), "utf8"),
            /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/cluster-lib\.sh"$/m,
            `${name} sources the prelude`,
        );
        const embedded = readScript(name);
        assert.ok(embedded.includes("\nfail() {\n"), `${name}: prelude inlined`);
        assert.equal(embedded.split("\nneed_name() {").length, 2, `${name}: prelude inlined once`);
    }
    assert.doesNotMatch(prelude, /^set -e/m, "the prelude leaves shell options to the script");
});

test("an embedded script (bash -c, prelude inlined) behaves like the file it came from", { skip: hostToolsMissing(["jq", "timeout"]) }, (t) => {
    const asFile = new Scenario();
    const embedded = new Scenario();
    t.after(() => {
        asFile.dispose();
        embedded.dispose();
    });
    const env = { KUBE_PROXY_BACKUP_CONFIGMAP: "kube-proxy-pre-cilium-kpr-backup", POD_GONE_TIMEOUT: 6 } as const;
    const fromFile = asFile.run("kube-proxy-remove", env);
    const fromText = embedded.run("kube-proxy-remove", env, { embedded: true });
    assert.equal(fromText.status, 0, fromText.stderr);
    assert.deepEqual(fromText.summary, fromFile.summary);
    assert.equal(embedded.get("kube-system", "daemonset", "kube-proxy"), undefined);
    // Outside its folder the embedded text cannot source anything, so a passing run proves the inlining.
    const bad = embedded.run("kube-proxy-restore", { KUBE_PROXY_BACKUP_CONFIGMAP: "kube-proxy" }, { embedded: true });
    assert.match(bad.stderr, /^kube-proxy-restore: ERROR: /m, "fail() from the inlined prelude");
});

test("every script is strict bash, executable, and self-contained (no source)", () => {
    for (const name of ALL) {
        const text = readScript(name);
        assert.ok(text.startsWith("#!/usr/bin/env bash\n"), name);
        assert.match(text, /^set -euo pipefail$/m, name);
        assert.doesNotMatch(text, /^\s*(source|\.)\s+/m, `${name} sources another file`);
        assert.ok((statSync(scriptPath(name)).mode & 0o111) !== 0, `${name} is executable`);
    }
});

test("every script passes shellcheck -x", { skip: hostToolsMissing(["shellcheck"]) }, () => {
    const result = spawnSync(
        "shellcheck",
        ["-x", "-s", "bash", ...ALL.map(scriptPath), join(__dirname, "support", "fake-kubectl"), join(__dirname, "support", "fake-helm")],
        { encoding: "utf8" },
    );
    assert.equal(result.status, 0, result.stdout + result.stderr);
});

test("every script parses as bash when embedded as command text (bash -n -c)", () => {
    for (const name of ALL) {
        const result = spawnSync("bash", ["-n", "-c", readScript(name)], { encoding: "utf8" });
        assert.equal(result.status, 0, `${name}: ${result.stderr}`);
    }
});

test(
    "every cluster script ends with its JSON summary when a kubectl call fails, naming kubectl's reason",
    { skip: hostToolsMissing(["jq", "timeout"]) },
    (t) => {
        const scenario = new Scenario({ settings: { unreachable: true } });
        t.after(() => scenario.dispose());
        for (const name of CLUSTER_SCRIPTS) {
            const run = scenario.run(name, MINIMAL_CLUSTER_ENV[name]);
            assert.notEqual(run.status, 0, name);
            const lines = run.stdout.trim().split("\n");
            assert.equal(lines.length, 1, `${name}: one stdout line, got ${JSON.stringify(run.stdout)}`);
            assert.equal(run.summary["ok"], false, `${name}: ${run.stdout}`);
            // kubectl's wording, or helm's for a script whose first call is helm.
            assert.match(
                String(run.summary["error"]),
                /The connection to the server 192\.0\.2\.1:6443 was refused|Kubernetes cluster unreachable: .*connection refused/,
                name,
            );
            assert.match(run.stderr, new RegExp(`^${name}: ERROR: .*(was refused|connection refused)`, "m"), `${name} says it on stderr too`);
        }
    },
);
