import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { STEP, TYPE } from "../components/resourceNames";
import { ROTATE_SSH_KEY_ENV } from "../components/commands/nodeConnection";
import { find, runProgram } from "./support/program";
import { operations } from "./support/engineDiff";
import { rawStack } from "./support/stacks";

const changed = (ops: Map<string, string>) => [...ops].filter(([, op]) => op !== "same");

async function withEnv<T>(name: string, value: string | undefined, run: () => Promise<T>): Promise<T> {
    const saved = process.env[name];
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
    try {
        return await run();
    } finally {
        if (saved === undefined) delete process.env[name];
        else process.env[name] = saved;
    }
}

test("a new SSH key alone re-runs nothing on any node", async () => {
    const { before, after } = await withEnv(ROTATE_SSH_KEY_ENV, undefined, async () => ({
        before: (await runProgram("prod", { sshPrivateKey: "KEY-A" })).resources,
        after: (await runProgram("prod", { sshPrivateKey: "KEY-B" })).resources,
    }));
    const remote = after.filter((r) => r.type === TYPE.remoteCommand);
    assert.ok(remote.length >= 12, "every node step is remote");
    for (const r of remote) assert.equal((r.inputs.connection as Record<string, unknown>).privateKey, "KEY-B", `${r.name} receives the stack's key`);
    assert.deepEqual(changed(operations(before, after)), [], "no step runs again");
});

test(`with ${ROTATE_SSH_KEY_ENV}=1 every node step runs once with the new key (the rotation), nothing on the cluster`, async () => {
    const { before, after } = await withEnv(ROTATE_SSH_KEY_ENV, "1", async () => ({
        before: (await runProgram("prod", { sshPrivateKey: "KEY-A" })).resources,
        after: (await runProgram("prod", { sshPrivateKey: "KEY-B" })).resources,
    }));
    const ops = operations(before, after);
    for (const r of after.filter((x) => x.custom)) {
        const op = ops.get(`${r.type} ${r.name}`);
        // The node store's copy takes the new key too; its update copies nothing, the archive being unchanged
        // (pulumi-command 1.2.1 remote/copyController.go Update: needCopy only on a new hash or remotePath).
        assert.equal(op, r.type === TYPE.remoteCommand || r.type === TYPE.copyToRemote ? "update" : "same", r.name);
    }
});

test("a node's new address still re-runs that node's steps (only the key is ignored)", async () => {
    const nodes = structuredClone(rawStack("prod").nodes) as { name: string; address: string }[];
    const before = (await runProgram("prod")).resources;
    nodes[1]!.address = "172.25.4.99";
    const after = (await runProgram("prod", { nodes })).resources;
    const names = changed(operations(before, after)).map(([k]) => k.split(" ")[1]);
    for (const step of [STEP.nodePreflight, STEP.staleRuleCleanup, STEP.tproxyApply, STEP.tproxyConfirm, STEP.staleRuleVerify]) {
        assert.ok(names.includes(step("m601")), `${step("m601")} runs against the new address`);
        assert.ok(!names.includes(step("m600")), `${step("m600")} is untouched`);
    }
});

test("a new release name or namespace would replace the Release: the identity guard runs first and refuses", async () => {
    const before = (await runProgram("prod")).resources;
    const cilium = { ...(rawStack("prod").cilium as Record<string, unknown>), namespace: "kube-system" };
    const after = (await runProgram("prod", { cilium })).resources;
    const ops = operations(before, after);
    assert.equal(ops.get(`${TYPE.helmRelease} ${STEP.ciliumRelease}`), "replace", "pulumi-kubernetes replaces on a namespace change");
    assert.equal(ops.get(`${TYPE.localCommand} ${STEP.releaseIdentity}`), "update", "the guard runs again");
    const snapshot = find(after, TYPE.localCommand, STEP.valuesSnapshot);
    assert.ok(snapshot.dependsOn.includes(STEP.releaseIdentity), "the snapshot, and so the release, waits for the guard");

    // The guard's update, as the provider runs it: previous stdout in PULUMI_COMMAND_STDOUT.
    const guard = find(after, TYPE.localCommand, STEP.releaseIdentity);
    assert.equal(guard.inputs.addPreviousOutputInEnv, true);
    const run = (env: Record<string, string>) =>
        spawnSync("/bin/bash", ["-c", String(guard.inputs.create)], { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8" });
    const first = run(guard.inputs.environment as Record<string, string>);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout, "kube-system/cilium");
    const moved = run({ ...(guard.inputs.environment as Record<string, string>), PULUMI_COMMAND_STDOUT: "default/cilium" });
    assert.equal(moved.status, 1);
    assert.match(moved.stderr, /refusing to change the Cilium release this stack manages from default\/cilium to kube-system\/cilium/);
    const same = run({ ...(guard.inputs.environment as Record<string, string>), PULUMI_COMMAND_STDOUT: "kube-system/cilium" });
    assert.equal(same.status, 0, "an unchanged identity passes (e.g. after the script itself changed)");
});
