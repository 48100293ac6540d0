import { test } from "node:test";
import * as assert from "node:assert/strict";
import type { RecordedResource } from "../tools/mockRuntime";
import { STEP } from "../components/resourceNames";
import { scriptText } from "../components/commands/scriptFile";
import { find, runProgram } from "./support/program";
import { rawStack } from "./support/stacks";

/*
 * The graph of issue 10 points 2 (kubeadm's proxy.disabled) and 4 (Cilium chart upgrades), under
 * Pulumi's mock runtime (test/migration-graph.test.ts style).
 */

/** Everything `name` waits for, directly or through its dependencies (Pulumi deletes in the reverse order). */
function dependenciesOf(resources: readonly RecordedResource[], name: string): Set<string> {
    const byName = new Map(resources.filter((r) => r.custom).map((r) => [r.name, r]));
    const seen = new Set<string>();
    const walk = (n: string) => {
        for (const dep of byName.get(n)?.dependsOn ?? []) {
            if (!seen.has(dep)) {
                seen.add(dep);
                walk(dep);
            }
        }
    };
    walk(name);
    return seen;
}

test("kubeadm proxy.disabled is set after kube-proxy's removal and put back before kube-proxy is restored", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const step = find(resources, "command:local:Command", STEP.kubeadmProxyDisabled);
    assert.deepEqual([...step.dependsOn], [STEP.kubeProxyRemoval], "runs once kube-proxy is gone");
    assert.equal(step.inputs.create, scriptText("kubeproxy/scripts/kubeadm-proxy-disable.sh"));
    assert.equal(step.inputs.delete, scriptText("kubeproxy/scripts/kubeadm-proxy-restore.sh"), "destroy restores kubeadm's proxy block");
    assert.equal((step.inputs.environment as Record<string, string>).KUBEADM_BACKUP_CONFIGMAP, "kubeadm-config-pre-cilium-kpr-backup");
    assert.equal(step.deleteBeforeReplace, true, "a replacement restores before it disables again (else the old delete undoes the new create)");
    // Destroy walks dependencies backwards: the step is deleted before the removal's delete restores kube-proxy.
    assert.ok(dependenciesOf(resources, STEP.kubeadmProxyDisabled).has(STEP.kubeProxyRemoval));
    assert.ok(dependenciesOf(resources, STEP.verification).has(STEP.kubeadmProxyDisabled), "the verification runs after it");
});

test("kubeadm proxy.disabled is not touched during a canary or without kube-proxy replacement", async () => {
    const canary = await runProgram("prod", { migration: { canaryNodes: ["m600"] } });
    assert.equal(canary.error, undefined);
    assert.ok(!canary.resources.some((r) => r.name === STEP.kubeadmProxyDisabled), "kube-proxy still runs on the other nodes");
    const cilium = { ...(rawStack("prod").cilium as Record<string, unknown>), kubeProxyReplacement: false, bpfMasquerade: false };
    const noKpr = await runProgram("prod", { cilium });
    assert.equal(noKpr.error, undefined);
    assert.ok(!noKpr.resources.some((r) => r.name === STEP.kubeadmProxyDisabled));
});
