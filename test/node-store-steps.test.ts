import { mock, test } from "node:test";
import * as assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { recordProgram } from "../tools/mockRuntime";
import { localStoreWriter, nodeStoreSteps } from "../components/commands/nodeStoreSteps";
import { NODE_STORE_DIR, storeCheckCommand, storeRemoveCommand, storeSet } from "../components/commands/nodeStore";
import { STEP, TYPE } from "../components/resourceNames";
import type { NodeConfig } from "../components/config/schema";

const NODE = {
    name: "n1",
    address: "192.0.2.10",
    sshPort: 2222,
    sshUser: "ops",
    hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJlcGxhY2UtbWUtd2l0aC1zc2gta2V5c2Nhbi1tNjAw",
} as unknown as NodeConfig;

test("a node store is one CopyToRemote of the set's directory (path + hash in state, no text) and a check that removes it on delete", async (t) => {
    const root = mkdtempSync(path.join(os.tmpdir(), "node-store-steps-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const set = storeSet(["#!/usr/bin/env bash\necho a\n".repeat(200), "#!/usr/bin/env bash\necho b\n"]);
    const resources = await recordProgram({ project: "p", stack: "s", config: {} }, () => {
        nodeStoreSteps(NODE, pulumi.secret("KEY"), set, {}, localStoreWriter(root));
    });
    const copy = resources.find((r) => r.name === STEP.nodeStore("n1"))!;
    const check = resources.find((r) => r.name === STEP.nodeStoreCheck("n1"))!;
    assert.equal(copy.type, TYPE.copyToRemote);
    assert.equal(copy.inputs.remotePath, NODE_STORE_DIR);
    assert.deepEqual(copy.inputs.triggers, ["192.0.2.10", "2222", "ops"], "a moved node is a new copy");
    const source = JSON.stringify(copy.inputs.source);
    assert.ok(source.includes(`${path.join(root, set.digest)}/`), source);
    assert.ok(!source.includes("echo a"), "the archive is a path, its files are not in the inputs");
    assert.ok(JSON.stringify(copy.inputs).length < 1000, `${JSON.stringify(copy.inputs).length} bytes`);
    assert.deepEqual(readdirSync(path.join(root, set.digest)).sort(), [...set.entries.map((e) => e.sha256), set.digest].sort());
    assert.deepEqual(copy.ignoreChanges, ["connection.privateKey"]);

    assert.equal(check.type, TYPE.remoteCommand);
    assert.equal(check.inputs.create, storeCheckCommand(set));
    assert.equal(check.inputs.delete, storeRemoveCommand());
    assert.deepEqual(check.dependsOn, [STEP.nodeStore("n1")]);
    assert.equal(check.inputs.triggers, undefined, "a replaced copy must not replace the check: its delete would empty the store");
    assert.equal(check.deleteBeforeReplace, true);
});

test("a program run writes (and re-reads) each distinct set once, not once per node", (t) => {
    const root = mkdtempSync(path.join(os.tmpdir(), "node-store-writer-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const shared = storeSet(["#!/usr/bin/env bash\necho a\n"]);
    const other = storeSet(["#!/usr/bin/env bash\necho b\n"]);
    const writeSet = localStoreWriter(root);
    const first = writeSet(shared);
    // The CommonJS fs object nodeStore.ts calls through (its named imports read it at each call).
    const fs = createRequire(__filename)("node:fs") as typeof import("node:fs");
    const reads = mock.method(fs, "readdirSync");
    const writes = mock.method(fs, "writeFileSync");
    t.after(() => mock.restoreAll());
    for (let node = 0; node < 5; node++) assert.equal(writeSet(shared), first);
    assert.equal(reads.mock.callCount() + writes.mock.callCount(), 0, "the shared set is neither checked nor written again");
    assert.equal(writeSet(other), `${path.join(root, other.digest)}/`);
    assert.ok(writes.mock.callCount() > 0, "another set is written");
});
