import { test } from "node:test";
import * as assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { recordProgram } from "../tools/mockRuntime";
import { nodeStoreSteps } from "../components/commands/nodeStoreSteps";
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
        nodeStoreSteps(NODE, pulumi.secret("KEY"), set, {}, root);
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
