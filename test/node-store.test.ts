import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NODE_STORE_DIR, sha256Hex, storeCheckCommand, storeRef, storeRemoveCommand, storeSet, writeLocalStore } from "../components/commands/nodeStore";
import { checkCopyInputs, createCopy, CopyToRemoteError, updateCopy, type CopyInputs } from "./support/copyToRemote";
import { hostToolsMissing } from "../lab/hostTools";
import { nodeRunnerText, stagedCommand } from "../components/commands/remoteCommand";

function scratch(t: { after: (fn: () => void) => void }): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), "node-store-test-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
}

/** Runs a command text as sshd would (`sh -c`), in the user's home with HOME set. */
function sh(home: string, text: string): { status: number | null; stdout: string; stderr: string } {
    return spawnSync("sh", ["-c", text], { cwd: home, env: { PATH: process.env.PATH, HOME: home }, encoding: "utf8" });
}

const A = "#!/usr/bin/env bash\necho a\n";
const B = "#!/usr/bin/env bash\necho b\n";

test("storeSet names each distinct content by its sha256, sorted, with one digest over the set", () => {
    const set = storeSet([B, A, A]);
    assert.deepEqual(
        set.entries.map((e) => e.sha256),
        [sha256Hex(A), sha256Hex(B)].sort(),
    );
    assert.equal(set.digest, storeSet([A, B]).digest, "order and duplicates do not matter");
    assert.equal(set.manifest, set.entries.map((e) => `${e.sha256}  ${e.sha256}\n`).join(""), "the manifest is sha256sum -c input");
    assert.equal(set.digest, sha256Hex(set.manifest), "the set is named by its manifest's digest");
    assert.notEqual(set.digest, storeSet([A, `${B} `]).digest, "any content change changes the set");
});

test("writeLocalStore writes the set once, under its digest, and replaces a directory holding anything else", (t) => {
    const root = scratch(t);
    const set = storeSet([A, B]);
    const dir = writeLocalStore(root, set);
    assert.equal(dir, `${path.join(root, set.digest)}/`, "a trailing slash: CopyToRemote copies the contents");
    assert.deepEqual(readdirSync(dir).sort(), [...set.entries.map((e) => e.sha256), set.digest].sort());
    for (const e of set.entries) assert.equal(readFileSync(path.join(dir, e.sha256), "utf8"), e.content);
    assert.equal(readFileSync(path.join(dir, set.digest), "utf8"), set.manifest, "the manifest is stored under the set's digest");
    const mtime = statSync(path.join(dir, sha256Hex(A))).mtimeMs;
    assert.equal(writeLocalStore(root, set), dir);
    assert.equal(statSync(path.join(dir, sha256Hex(A))).mtimeMs, mtime, "an intact set is reused, not rewritten");

    writeFileSync(path.join(dir, sha256Hex(A)), "tampered\n");
    writeFileSync(path.join(dir, "extra"), "x");
    writeLocalStore(root, set);
    assert.equal(readFileSync(path.join(dir, sha256Hex(A)), "utf8"), A, "a changed file is restored");
    assert.ok(!existsSync(path.join(dir, "extra")), "a foreign file is gone");
    assert.deepEqual(
        readdirSync(root).filter((n) => n.startsWith(".tmp-")),
        [],
        "no temporary directory is left behind",
    );
});

test("the CopyToRemote stand-in copies a directory's contents like the provider (trailing slash), refusing what Check refuses", (t) => {
    const dir = scratch(t);
    const home = path.join(dir, "home");
    mkdirSync(home);
    const first = storeSet([A, B]);
    const src = writeLocalStore(path.join(dir, "local"), first);
    const archive = (p: string, hash: string) => ({ kind: "fileArchive" as const, path: p, hash });
    const inputs: CopyInputs = { source: archive(src, "h1"), remotePath: NODE_STORE_DIR };
    createCopy({ home }, inputs);
    const store = path.join(home, NODE_STORE_DIR);
    assert.deepEqual(readdirSync(store).sort(), [sha256Hex(A), sha256Hex(B), first.digest].sort(), "dir/ -> dest/x for x in dir, parents made");
    assert.equal(statSync(store).mode & 0o777, 0o755, "sftp-server mkdir: 0777 & ~umask 022");
    assert.equal(statSync(path.join(store, sha256Hex(A))).mode & 0o777, 0o644, "sftp-server open: 0666 & ~umask 022");

    // Without the trailing slash the provider copies the directory itself into dest.
    createCopy({ home }, { remotePath: "other", source: archive(src.replace(/\/$/, ""), "h1") });
    assert.ok(existsSync(path.join(home, "other", first.digest, sha256Hex(A))));
    // ... and fails where that directory's name is taken by a file (here: the set's manifest).
    assert.throws(() => createCopy({ home }, { ...inputs, source: archive(src.replace(/\/$/, ""), "h1") }), /exists but is not a directory/);

    // A later set adds files; nothing is removed (no delete, overwrite only).
    const newer = writeLocalStore(path.join(dir, "local"), storeSet([A, "#!/usr/bin/env bash\necho c\n"]));
    assert.equal(updateCopy({ home }, inputs, { ...inputs, source: archive(newer, "h2") }), "copied");
    assert.ok(existsSync(path.join(store, sha256Hex(B))), "the old version's file stays for the deletes stored with it");
    assert.equal(updateCopy({ home }, inputs, { ...inputs, source: archive("/nonexistent/", "h1") }), "unchanged", "same hash and path: no copy");

    writeFileSync(path.join(dir, "file"), "x");
    assert.throws(() => createCopy({ home }, { ...inputs, remotePath: path.join(dir, "file") }), /exists but is not a directory/);
    assert.deepEqual(checkCopyInputs({ source: { kind: "assetArchive", hash: "h" }, remotePath: "x" }), [
        "archive: archive must be a path to a file or directory",
    ]);
    assert.throws(() => createCopy({ home }, { ...inputs, source: { kind: "fileArchive", path: path.join(dir, "missing/"), hash: "h" } }), CopyToRemoteError);
});

test(
    "store check passes on a complete store, names the missing or changed file otherwise; removal leaves the home as found",
    { skip: hostToolsMissing(["sh", "sha256sum"]) },
    (t) => {
        const dir = scratch(t);
        const home = path.join(dir, "home");
        mkdirSync(home);
        const set = storeSet([A, B]);
        const src = writeLocalStore(path.join(dir, "local"), set);
        createCopy({ home }, { source: { kind: "fileArchive", path: src, hash: set.digest }, remotePath: NODE_STORE_DIR });

        const ok = sh(home, storeCheckCommand(set));
        assert.equal(ok.status, 0, ok.stderr);
        assert.match(ok.stdout, new RegExp(`node store holds set ${set.digest}`));

        writeFileSync(path.join(home, NODE_STORE_DIR, sha256Hex(A)), "changed\n");
        const changed = sh(home, storeCheckCommand(set));
        assert.notEqual(changed.status, 0);
        assert.match(changed.stdout + changed.stderr, new RegExp(`${sha256Hex(A)}: FAILED`));
        rmSync(path.join(home, NODE_STORE_DIR, sha256Hex(A)));
        const missing = sh(home, storeCheckCommand(set));
        assert.notEqual(missing.status, 0);
        assert.match(missing.stdout + missing.stderr, new RegExp(`${sha256Hex(A)}: No such file or directory`));

        const removed = sh(home, storeRemoveCommand());
        assert.equal(removed.status, 0, removed.stderr);
        assert.deepEqual(readdirSync(home), [], "store and its .cilium-kpr parent are gone");
        assert.equal(sh(home, storeRemoveCommand()).status, 0, "removing twice is fine");
    },
);

test("the node runner stages a stored file by digest and fails naming it when the store lacks it", { skip: hostToolsMissing(["sh"]) }, (t) => {
    const dir = scratch(t);
    const home = path.join(dir, "home");
    const store = path.join(home, NODE_STORE_DIR);
    mkdirSync(store, { recursive: true });
    const runner = nodeRunnerText();
    writeFileSync(path.join(store, sha256Hex(runner)), runner);
    writeFileSync(path.join(store, sha256Hex(A)), A);
    const ref = storeRef(storeSet([runner, A, B]));
    const stage = (name: string, content: string) => sh(home, stagedCommand("t", [{ name, content }], [], ref));
    const fetched = stage("a.sh", A);
    assert.equal(fetched.status, 0, fetched.stderr);
    assert.equal(fetched.stdout, "a\n");
    const missing = stage("b.sh", B);
    assert.equal(missing.status, 1);
    const refusal = `cilium-kpr: b.sh (sha256 ${sha256Hex(B)}) is missing from the node store ${home}/${NODE_STORE_DIR} or differs (node-store step); nothing was run`;
    assert.match(missing.stderr, /cp: cannot stat .*No such file or directory/, "cp says what is missing");
    assert.equal(missing.stderr.trim().split("\n").pop(), refusal);
    // A store file that no longer matches its name is refused, not staged for running.
    writeFileSync(path.join(store, sha256Hex(B)), A);
    const changed = stage("b.sh", B);
    assert.equal(changed.status, 1);
    assert.match(changed.stderr, /b\.sh: FAILED/);
    assert.equal(changed.stderr.trim().split("\n").pop(), refusal);
    assert.throws(() => stagedCommand("t", [{ name: "../a.sh", content: A }], [], ref), /bad staged file name/);
    assert.throws(() => storeRef(storeSet([runner]), "../x"), /without "\.\."/);
});

test(
    "a store whose runner is missing or changed refuses before anything runs, naming the node-store step",
    { skip: hostToolsMissing(["sh", "sha256sum"]) },
    (t) => {
        const dir = scratch(t);
        const home = path.join(dir, "home");
        const store = path.join(home, NODE_STORE_DIR);
        mkdirSync(store, { recursive: true });
        const runner = nodeRunnerText();
        const marker = path.join(dir, "ran");
        const script = `#!/usr/bin/env bash\ntouch ${marker}\n`;
        writeFileSync(path.join(store, sha256Hex(script)), script);
        const text = stagedCommand("t", [{ name: "s.sh", content: script }], [], storeRef(storeSet([runner, script])));
        const refusal = `cilium-kpr: the node runner (sha256 ${sha256Hex(runner)}) is missing from the node store ${store} or differs (node-store step); nothing was run`;
        const missing = sh(home, text);
        assert.equal(missing.status, 1);
        assert.equal(missing.stderr.trim(), refusal);
        assert.equal(missing.stdout, "");
        // One byte changed anywhere is refused: at its start, and in its last line. (The text checks what it read, which is
        // what runs: `$(cat)` drops final newlines, which change nothing sh runs, and the check adds back exactly one.)
        for (const changed of [`#${runner}`, runner.replace(/exit "\$ckpr_status"\n$/, 'exit "$ckpr_status" \n')]) {
            assert.notEqual(changed, runner);
            writeFileSync(path.join(store, sha256Hex(runner)), changed);
            const r = sh(home, text);
            assert.equal(r.status, 1, JSON.stringify(changed.slice(-30)));
            assert.equal(r.stderr.trim(), refusal);
        }
        assert.equal(existsSync(marker), false, "the script never ran");
        writeFileSync(path.join(store, sha256Hex(runner)), runner);
        assert.equal(sh(home, text).status, 0);
        assert.equal(existsSync(marker), true);
        assert.throws(() => stagedCommand("t", [{ name: "s.sh", content: script }], [], storeRef(storeSet([script]))), /lacks the node runner/);
    },
);
