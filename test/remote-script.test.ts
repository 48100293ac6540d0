import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { heredocTerminator, shellWord, stagedCommand } from "../components/commands/remoteCommand";
import { find, runProgram } from "./support/program";
import { rawStack } from "./support/stacks";

test("the command text runs the embedded script byte-exactly, with its arguments and stdin closed", () => {
    const script =
        [
            "#!/usr/bin/env bash",
            "# tricky content: $HOME `id` \\ 'quotes' \"double\" EOF",
            "CKPR_SCRIPT_X",
            "printf 'args:%s|' \"$@\"; echo",
            "if read -r line; then echo \"stdin:$line\"; else echo 'stdin:closed'; fi",
            "sha256sum \"$0\" | cut -d' ' -f1",
        ].join("\n") + "\n";
    const text = stagedCommand("test", [{ name: "test.sh", content: script }], ["auto", "172.25.4.1", "0x1"]);
    // sshd hands the text to the login shell as `sh -c TEXT`; feed it stdin that the script must not see.
    const result = spawnSync("sh", ["-c", text], { input: "must-not-be-read\n", encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    const [argsLine, stdinLine, digest] = result.stdout.split("\n");
    assert.equal(argsLine, "args:auto|args:172.25.4.1|args:0x1|");
    assert.equal(stdinLine, "stdin:closed");
    assert.equal(digest, createHash("sha256").update(script).digest("hex"));
});

test("a non-root SSH user runs the script through sudo -n; root runs it directly", (t) => {
    const text = stagedCommand("t", [{ name: "t.sh", content: "id -u\n" }], []);
    // Stand in for id and sudo with executables first on the SSH session's PATH (the runner runs in its own sh):
    // `id` says the uid, `sudo` records how it was called and runs the rest. Run the text as root (0) and as uid 1000.
    const bin = mkdtempSync(path.join(tmpdir(), "remote-script-"));
    t.after(() => rmSync(bin, { recursive: true, force: true }));
    writeFileSync(path.join(bin, "sudo"), '#!/bin/sh\necho "sudo-used $1" >&2\nshift\nexec "$@"\n', { mode: 0o755 });
    for (const [uid, expectSudo] of [
        ["0", false],
        ["1000", true],
    ] as const) {
        writeFileSync(path.join(bin, "id"), `#!/bin/sh\necho ${uid}\n`, { mode: 0o755 });
        const r = spawnSync("sh", ["-c", text], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` } });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr.includes("sudo-used -n"), expectSudo, `uid ${uid}`);
    }
});

test("arguments with shell metacharacters are refused, plain ones pass", () => {
    for (const bad of ["a b", "x;reboot", "$(id)", "`id`", "a'b", "a\nb", "a|b", "a&b", "a>b"]) {
        assert.throws(() => shellWord(bad), /refusing/, bad);
    }
    assert.equal(shellWord("2001:db8::1"), "'2001:db8::1'");
});

test("the heredoc terminator never equals a line of the content", () => {
    fc.assert(
        fc.property(fc.array(fc.oneof(fc.string(), fc.constant("CKPR_SCRIPT_")), { maxLength: 20 }), (lines) => {
            const content = lines.join("\n");
            const first = heredocTerminator("SCRIPT", content);
            const withCollision = `${content}\n${first}`;
            const second = heredocTerminator("SCRIPT", withCollision);
            assert.ok(!withCollision.split("\n").includes(second));
        }),
        { numRuns: 200 },
    );
});

test("the SSH private key never appears in command text or environment, and every remote command pins its node's host key", async () => {
    const marker = "-----BEGIN OPENSSH PRIVATE KEY----- test-marker-5f1c";
    const { resources, error } = await runProgram("prod", { sshPrivateKey: marker });
    assert.equal(error, undefined);
    const commands = resources.filter((r) => r.type.startsWith("command:"));
    assert.ok(commands.length > 0);
    for (const r of commands) {
        for (const field of ["create", "update", "delete", "environment", "stdin", "triggers"]) {
            assert.ok(!JSON.stringify(r.inputs[field] ?? "").includes("test-marker-5f1c"), `${r.name}.${field} leaks the key`);
        }
    }
    const nodes = rawStack("prod").nodes as { name: string; hostKey: string }[];
    const remote = commands.filter((r) => r.type === "command:remote:Command");
    assert.ok(remote.length >= nodes.length);
    for (const r of remote) {
        const connection = r.inputs.connection as { host: string; hostKey?: string };
        const node = nodes.find((n) => r.name.endsWith(`-${n.name}`));
        assert.ok(node, `${r.name} belongs to a node`);
        assert.equal(connection.hostKey, node.hostKey, `${r.name} pins ${node.name}'s host key`);
        assert.ok(r.secretInputs.includes("connection"), `${r.name}: the connection (with the key) is secret`);
    }
    assert.ok(find(resources, "command:remote:Command"));
});
