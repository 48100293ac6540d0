import { test } from "node:test";
import * as assert from "node:assert/strict";
import { describeStep } from "../tools/planSteps";
import { STEP, WAVE_STEP } from "../components/resourceNames";
import { runProgram } from "./support/program";

const WAVES = [["m600"], ["m601", "storage"]];

test("the offline plan describes every step of the single-shot, canary and wave programs by its name in resourceNames.ts", async () => {
    for (const migration of [{}, { canaryNodes: ["m600"] }, { waves: WAVES, drain: true }, { canaryNodes: ["m600"], waves: WAVES }]) {
        const { resources, error } = await runProgram("prod", { migration });
        assert.equal(error, undefined, String(error));
        for (const r of resources.filter((x) => x.custom)) {
            const line = describeStep(r, []);
            assert.ok(line.startsWith(r.type === "pulumi:providers:kubernetes" || r.type === "kubernetes:helm.sh/v3:Release" ? "" : `${r.name}: `), line);
            assert.doesNotMatch(line, /\[[a-z0-9]+:[^\]]*\]$/i, `${r.name} has a description, not just its type`);
        }
    }
});

test("a step is described by what it is, not by a name prefix it happens to share (preflight-cilium-node-config-crd is no node preflight)", async () => {
    const { resources } = await runProgram("prod", { migration: { waves: WAVES } });
    const line = (name: string) =>
        describeStep(
            resources.find((r) => r.custom && r.name === name)!,
            [],
        );
    assert.match(line(WAVE_STEP.nodeConfigCrdCheck), /^preflight-cilium-node-config-crd: preflight: the API server serves CiliumNodeConfig as cilium\.io\/v2/);
    assert.match(line(STEP.nodePreflight("m600")), /^preflight-m600: node preflight on m600: kernel/);
    assert.match(line(WAVE_STEP.agentGate("m601")), /^kpr-gate-m601: m601's agent reports KPR True/);
    assert.match(line(STEP.kprGate), /^kpr-gate: KPR gate: Cilium rollout done and EVERY agent/);
    assert.match(
        line(STEP.tproxyApply("storage")),
        /^tproxy-apply-storage: push and apply the tproxy ruleset, policy routes and keepalived notify script on storage/,
    );
});
