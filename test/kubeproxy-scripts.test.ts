import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { hostToolsMissing } from "./support/hostTools";
import { CLUSTER_SCRIPTS, NODE_SCRIPTS, SCRIPTS_DIR, readScript, scriptPath } from "../components/kubeproxy/scriptFiles";

const ALL = [...CLUSTER_SCRIPTS, ...NODE_SCRIPTS];

test("every script in the folder is listed in scriptFiles.ts, and every listed one exists", () => {
    const files = readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh")).map((f) => f.slice(0, -3)).sort();
    assert.deepEqual(files, [...ALL].sort());
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
    const result = spawnSync("shellcheck", ["-x", "-s", "bash", ...ALL.map(scriptPath), join(__dirname, "support", "fake-kubectl"), join(__dirname, "support", "fake-helm")], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stdout + result.stderr);
});

test("every script parses as bash when embedded as command text (bash -n -c)", () => {
    for (const name of ALL) {
        const result = spawnSync("bash", ["-n", "-c", readScript(name)], { encoding: "utf8" });
        assert.equal(result.status, 0, `${name}: ${result.stderr}`);
    }
});
