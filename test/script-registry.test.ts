import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { clusterCommand } from "../components/commands/clusterCommand";
import { NODE_PATH, nodeRunnerText, remoteCommand, stagedCommand } from "../components/commands/remoteCommand";
import { SCRIPT_NAMES, preludesOf, scriptKind, scriptNameOf, scriptPath, scriptText } from "../components/commands/scripts";
import { STAGE_DIR } from "../components/commands/scriptParams";
import { runProgram } from "./support/program";

const COMPONENTS = path.join(__dirname, "..", "components");

test("every script under components/*/scripts is in the registry, and every registered script exists", () => {
    const files = readdirSync(COMPONENTS)
        .filter((folder) => statSync(path.join(COMPONENTS, folder)).isDirectory())
        .flatMap((folder) => {
            const dir = path.join(COMPONENTS, folder, "scripts");
            return statSync(dir, { throwIfNoEntry: false })?.isDirectory() ? readdirSync(dir).map((f) => path.join(dir, f)) : [];
        });
    assert.ok(files.length >= 40, `${files.length} script files`);
    for (const file of files) assert.ok(scriptNameOf(file), `${path.relative(COMPONENTS, file)} is registered`);
    assert.deepEqual(new Set(files.map((f) => scriptNameOf(f))), new Set(SCRIPT_NAMES));
    for (const name of SCRIPT_NAMES) assert.ok(statSync(scriptPath(name)).isFile(), name);
});

test("no embedded script still sources a file: every prelude it sources as a file is inlined once", () => {
    // `source x` or `. x` in command position, also inside a quoted `bash -c '. "$1" ...'` (how
    // tproxy-drift-check.sh once read tproxy-lib.sh).
    const sourcesAFile = /(^\s*|[;&|({'"]\s*|\b(then|do|else)\s+)(source\s+\S|\.\s+(["$~]|[\w./-]+\.sh\b))/m;
    let inlined = 0;
    for (const name of SCRIPT_NAMES) {
        const text = scriptText(name);
        const line = text.split("\n").find((l) => !/^\s*#/.test(l) && sourcesAFile.test(l));
        assert.equal(line, undefined, `${name} embeds a line that sources a file: ${line}`);
        for (const prelude of preludesOf(name)) {
            assert.equal(scriptKind(prelude), "prelude", `${name} sources ${prelude}`);
            // The prelude's first line of code (after its header comments) appears exactly once.
            const marker = scriptText(prelude)
                .split("\n")
                .find((l) => l.trim() !== "" && !l.startsWith("#"))!;
            assert.equal(text.split(marker).length, 2, `${name}: ${prelude} inlined once`);
            inlined++;
        }
    }
    assert.ok(inlined >= 30, `${inlined} prelude inclusions`);
});

test("a prelude may source a prelude: inlined where it is sourced, and refused when one script would reach it twice", async (t) => {
    // The loader in a scratch components tree (scripts.ts resolves the scripts from its own folder).
    const root = mkdtempSync(path.join(os.tmpdir(), "script-loader-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const write = (file: string, text: string) => {
        mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        writeFileSync(path.join(root, file), text);
    };
    const sources = (relative: string) => `# shellcheck source=SCRIPTDIR/${relative}\nsource "$(dirname "\${BASH_SOURCE[0]}")/${relative}"\n`;
    mkdirSync(path.join(root, "commands"));
    copyFileSync(path.join(COMPONENTS, "commands", "scripts.ts"), path.join(root, "commands", "scripts.ts"));
    write("commands/scripts/env-checks.sh", "#!/usr/bin/env bash\n# shellcheck shell=bash\nchecks_body\n");
    write("waves/scripts/wave-lib.sh", `#!/usr/bin/env bash\n# shellcheck shell=bash\nwave_body\n${sources("../../commands/scripts/env-checks.sh")}`);
    write("kubeproxy/scripts/cluster-lib.sh", `#!/usr/bin/env bash\n# shellcheck shell=bash\n${sources("../../commands/scripts/env-checks.sh")}`);
    write("waves/scripts/node-uncordon.sh", `#!/usr/bin/env bash\n${sources("wave-lib.sh")}main\n`);
    write("waves/scripts/node-drain.sh", `#!/usr/bin/env bash\n${sources("wave-lib.sh")}${sources("../../kubeproxy/scripts/cluster-lib.sh")}main\n`);
    const loader = (await import(path.join(root, "commands", "scripts.ts"))) as typeof import("../components/commands/scripts");
    assert.equal(loader.scriptText("waves/node-uncordon"), "#!/usr/bin/env bash\nwave_body\nchecks_body\nmain\n");
    assert.deepEqual(loader.preludesOf("waves/node-uncordon"), ["waves/wave-lib", "commands/env-checks"]);
    assert.throws(() => loader.scriptText("waves/node-drain"), /commands\/env-checks\.sh is sourced twice by one script/);
});

test("embedded scripts parse as bash (bash -n)", () => {
    for (const name of SCRIPT_NAMES.filter((n) => scriptKind(n) !== "prelude")) {
        const r = spawnSync("bash", ["-n", "-c", scriptText(name)], { encoding: "utf8" });
        assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    }
});

test("a remote step runs its script with the pinned PATH, whatever PATH the SSH session has", () => {
    const text = stagedCommand("path", [{ name: "p.sh", content: 'printf "%s\\n" "$PATH" "$1"\n' }], [STAGE_DIR]);
    const r = spawnSync("sh", ["-c", text], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
    assert.equal(r.status, 0, r.stderr);
    const [pathSeen, stage] = r.stdout.split("\n");
    assert.equal(pathSeen, NODE_PATH);
    assert.match(stage!, /\/ckpr\.[A-Za-z0-9]{8}$/, "STAGE_DIR is the stage directory");
});

test("a failing script's stderr comes before its stdout in the step's output, its exit status and stdout unchanged", () => {
    // pulumi-command puts the step's stdout and stderr, interleaved as written, into the error (remoteCommand.ts).
    const script = 'echo progress; echo \'{"ok":false}\'; echo "the reason" >&2; exit 3\n';
    const text = stagedCommand("fails", [{ name: "f.sh", content: script }], []);
    const combined = spawnSync("sh", ["-c", `exec 2>&1\n${text}`], { encoding: "utf8" });
    assert.equal(combined.status, 3);
    assert.equal(combined.stdout, 'the reason\nprogress\n{"ok":false}\n');
    const apart = spawnSync("sh", ["-c", text], { encoding: "utf8" });
    assert.equal(apart.stdout, 'progress\n{"ok":false}\n');
    assert.equal(apart.stderr, "the reason\n");
});

test("a staged file that does not match its checksum stops the step before its script runs, saying so on stderr", () => {
    const text = remoteCommand({ title: "t", script: "kubeproxy/stale-rules-verify", args: [] });
    const corrupted = text.replace(/^set -euo pipefail$/m, "set -euo pipefail; echo SHOULD-NOT-RUN");
    assert.notEqual(corrupted, text);
    const r = spawnSync("sh", ["-c", corrupted], { encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.doesNotMatch(r.stdout, /SHOULD-NOT-RUN/);
    assert.match(r.stderr, /stale-rules-verify\.sh: FAILED/);
    assert.match(r.stderr, /a staged file does not match its checksum; nothing was run/);
    assert.equal(r.stdout, "", "stdout stays the script's");
});

test("every remote command the program declares is built by the one builder: staged, checked, PATH pinned, sudo -n, stdin closed", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    // The node store's check reads the SSH user's own store as that user and stages nothing (commands/nodeStore.ts).
    const storeChecks = resources.filter((r) => r.type === "command:remote:Command" && r.name.startsWith("node-store-check-"));
    assert.equal(storeChecks.length, 3);
    for (const r of storeChecks) {
        assert.match(String(r.inputs.create), /^sha256sum --quiet --strict -c [0-9a-f]{64}$/m, `${r.name} checks every stored file`);
        assert.doesNotMatch(`${String(r.inputs.create)}${String(r.inputs.delete)}`, /sudo/, `${r.name} runs as the SSH user`);
    }
    const remote = resources.filter((r) => r.type === "command:remote:Command" && !storeChecks.includes(r));
    assert.ok(remote.length >= 6);
    // The runner, once: stages and checks every file it is given, then runs the first with bash, sudo -n when not
    // root, the pinned PATH and stdin closed (commands/scripts/node-runner.sh).
    const runner = nodeRunnerText();
    assert.match(runner, /^ {8}if ! \{ cp -- "\$ckpr_store\/\$2" "\$ckpr_stage\/\$3" && ckpr_check "\$2" "\$3"; \}; then$/m, "checks what it fetched");
    assert.match(runner, /^ {8}ckpr_check "\$3" "\$2" \|\| ckpr_refuse "a staged file does not match its checksum"$/m, "checks what it staged");
    assert.match(runner, new RegExp(`^set -- env PATH=${NODE_PATH.replace(/[/.]/g, "\\$&")} bash "\\$ckpr_stage/\\$ckpr_script" "\\$@"$`, "m"));
    assert.match(runner, /^if \[ "\$\(id -u\)" -ne 0 \]; then set -- sudo -n "\$@"; fi$/m);
    assert.match(runner, /^"\$@" <\/dev\/null >"\$ckpr_stage\/\.stdout" \|\| ckpr_status=\$\?$/m);
    const runnerSha = createHash("sha256").update(runner).digest("hex");
    for (const r of remote) {
        for (const field of ["create", "delete"] as const) {
            const text = r.inputs[field];
            if (text === undefined) continue;
            assert.equal(typeof text, "string", `${r.name}.${field}`);
            // Every node step runs the node store's runner, checked by its digest before it runs.
            assert.match(text as string, new RegExp(`^ckpr_store="\\$HOME"/'\\.cilium-kpr/node-store' ckpr_runner=${runnerSha}$`, "m"), `${r.name}.${field}`);
            assert.match(
                text as string,
                /^ckpr_r=\$\(cat -- "\$ckpr_store\/\$ckpr_runner" 2>\/dev\/null\) && \[ "\$\(printf '%s\\n' "\$ckpr_r" \| sha256sum\)" = "\$ckpr_runner {2}-" \] \|\|$/m,
                `${r.name}.${field} checks the runner`,
            );
            assert.match(text as string, /^exec sh -c "\$ckpr_r" cilium-kpr-runner "\$ckpr_store" \\$/m, `${r.name}.${field} runs the runner`);
            const staged = (text as string).match(/^ {2}-[fib] /gm) ?? [];
            assert.ok(staged.length > 0, `${r.name}.${field} stages its script`);
        }
    }
});

/*
 * Compile-time checks, run by `tsc --noEmit -p .` (the first step of `npm test`): each
 * `@ts-expect-error` line must be a type error, or tsc fails. Never called.
 */
export function scriptParametersAreTyped(): void {
    const cluster = { kubeProxy: { namespace: "kube-system" } } as Parameters<typeof clusterCommand>[1]["cluster"];
    clusterCommand("ok", { cluster, create: "kubeproxy/kpr-gate", environment: { CILIUM_NAMESPACE: "kube-system" } }, {});
    const gate = "kubeproxy/kpr-gate";
    // @ts-expect-error -- kubeadm's backup ConfigMap is another script's environment, not kpr-gate.sh's
    clusterCommand("wrong-env", { cluster, create: gate, environment: { CILIUM_NAMESPACE: "n", KUBEADM_BACKUP_CONFIGMAP: "b" } }, {});
    // @ts-expect-error -- the delete runs with the create's stored environment: kube-proxy-restore.sh needs its backup ConfigMap
    clusterCommand("delete-env", { cluster, create: "kubeproxy/kpr-gate", delete: "kubeproxy/kube-proxy-restore", environment: { CILIUM_NAMESPACE: "n" } }, {});
    // @ts-expect-error -- a node script is no cluster step
    clusterCommand("node-script", { cluster, create: "tproxy/tproxy-apply", environment: {} }, {});
    remoteCommand({ title: "ok", script: "kubeproxy/stale-rules-cleanup", args: ["nft"] });
    // @ts-expect-error -- stale-rules-cleanup.sh takes the iptables backend, not another script's arguments
    remoteCommand({ title: "wrong-args", script: "kubeproxy/stale-rules-cleanup", args: [STAGE_DIR, "/var/lib/x", "auto"] });
    // @ts-expect-error -- a cluster script does not run on a node
    remoteCommand({ title: "cluster-script", script: "kubeproxy/kpr-gate", args: [] });
}
