import { test } from "node:test";
import * as assert from "node:assert/strict";
import type { RecordedResource } from "../tools/mockRuntime";
import { STEP } from "../components/resourceNames";
import { scriptText } from "../components/commands/scripts";
import { dependenciesOf, find, runProgram } from "./support/program";
import { rawStack } from "./support/stacks";
import { describeStep } from "../tools/planSteps";

/*
 * The graph of issue 10 points 2 (kubeadm's proxy.disabled) and 4 (Cilium chart upgrades), under
 * Pulumi's mock runtime (test/migration-graph.test.ts style).
 */

test("kubeadm proxy.disabled is set after kube-proxy's removal and put back before kube-proxy is restored", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const step = find(resources, "command:local:Command", STEP.kubeadmProxyDisabled);
    assert.deepEqual([...step.dependsOn], [STEP.kubeProxyRemoval], "runs once kube-proxy is gone");
    assert.equal(step.inputs.create, scriptText("kubeproxy/kubeadm-proxy-disable"));
    assert.equal(step.inputs.delete, scriptText("kubeproxy/kubeadm-proxy-restore"), "destroy restores kubeadm's proxy block");
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

function withCilium(changes: Readonly<Record<string, unknown>>): Record<string, unknown> {
    return { ...(rawStack("prod").cilium as Record<string, unknown>), ...changes };
}

test("same chart version: the release may reuse values, and the upgrade preflight only checks the running version", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const release = find(resources, "kubernetes:helm.sh/v3:Release");
    assert.equal(release.inputs.reuseValues, true);
    assert.ok(release.dependsOn.includes(STEP.ciliumUpgradePreflight), "the release waits for the upgrade preflight");
    const step = find(resources, "command:local:Command", STEP.ciliumUpgradePreflight);
    assert.ok(step.dependsOn.includes(STEP.valuesSnapshot));
    assert.equal(step.inputs.create, scriptText("kubeproxy/cilium-upgrade-preflight"));
    assert.equal(step.inputs.delete, undefined, "nothing it creates outlives it");
    const env = step.inputs.environment as Record<string, string>;
    assert.equal(env.UPGRADE_FROM, "", "same-version path");
    assert.equal(env.CILIUM_CHART_VERSION, "1.19.0");
    assert.deepEqual(JSON.parse(env.CILIUM_VALUES_JSON ?? ""), release.inputs.values, "it sees exactly the values the release gets");
});

test("chart upgrade (cilium.upgradeFrom): reuse-values is off and the preflight is told the running version", async () => {
    const { resources, error } = await runProgram("prod", { cilium: withCilium({ chartVersion: "1.19.1", upgradeFrom: "1.19.0" }) });
    assert.equal(error, undefined);
    const release = find(resources, "kubernetes:helm.sh/v3:Release");
    assert.equal(release.inputs.reuseValues, false, "Cilium's upgrade guide: reuse-values only with an unchanged chart version");
    assert.equal(release.inputs.version, "1.19.1");
    const env = find(resources, "command:local:Command", STEP.ciliumUpgradePreflight).inputs.environment as Record<string, string>;
    assert.equal(env.UPGRADE_FROM, "1.19.0");
    assert.equal(env.CILIUM_CHART_VERSION, "1.19.1");
    const gate = (rs: readonly RecordedResource[]) => find(rs, "command:local:Command", STEP.kprGate).inputs.triggers as string[];
    const before = await runProgram("prod");
    assert.notDeepEqual(gate(resources), gate(before.resources), "the KPR gate checks every agent again after a chart upgrade");
    // upgradeFrom equal to chartVersion is the same-version path.
    const same = await runProgram("prod", { cilium: withCilium({ upgradeFrom: "1.19.0" }) });
    assert.equal(find(same.resources, "kubernetes:helm.sh/v3:Release").inputs.reuseValues, true);
});

test("reuseValues: true across chart versions, or a skipped minor release, is a config error naming the key", async () => {
    const reuse = await runProgram("prod", { cilium: withCilium({ chartVersion: "1.19.1", upgradeFrom: "1.18.6", reuseValues: true }) });
    assert.match(String(reuse.error), /cilium-kpr:cilium\.reuseValues: must not be true while upgrading the chart from 1\.18\.6 to 1\.19\.1/);
    const skip = await runProgram("prod", { cilium: withCilium({ upgradeFrom: "1.17.4" }) });
    assert.match(String(skip.error), /cilium-kpr:cilium\.upgradeFrom: 1\.17\.4 -> 1\.19\.0 skips a minor release/);
    const bad = await runProgram("prod", { cilium: withCilium({ upgradeFrom: "1.18" }) });
    assert.match(String(bad.error), /cilium-kpr:cilium\.upgradeFrom: must be an exact chart version/);
});

test("the plan says which path a run takes", async () => {
    const line = (rs: readonly RecordedResource[], type: string, name?: string) => describeStep(find(rs, type, name));
    const same = await runProgram("prod");
    assert.match(line(same.resources, "command:local:Command", STEP.ciliumUpgradePreflight), /must run chart 1\.19\.0 already .* no image pre-pull/);
    assert.match(line(same.resources, "kubernetes:helm.sh/v3:Release"), /chart cilium 1\.19\.0 .* reuse-values/);
    const upgrade = await runProgram("prod", { cilium: withCilium({ chartVersion: "1.19.1", upgradeFrom: "1.19.0" }) });
    assert.match(
        line(upgrade.resources, "command:local:Command", STEP.ciliumUpgradePreflight),
        /chart upgrade 1\.19\.0 -> 1\.19\.1: .* 1\.19\.1 image is pre-pulled/,
    );
    assert.match(line(upgrade.resources, "kubernetes:helm.sh/v3:Release"), /chart cilium 1\.19\.1 .* full values \(no reuse-values\)/);
});

test("wave path: a chart upgrade makes the final KPR gate check every agent again, as on the single-shot path", async () => {
    const waves = { migration: { waves: [["m600"], ["m601", "storage"]] } };
    const gate = (rs: readonly RecordedResource[]) => find(rs, "command:local:Command", STEP.kprGate).inputs.triggers as string[];
    const before = await runProgram("prod", waves);
    assert.equal(before.error, undefined);
    const upgrade = await runProgram("prod", { ...waves, cilium: withCilium({ chartVersion: "1.19.1", upgradeFrom: "1.19.0" }) });
    assert.equal(upgrade.error, undefined);
    assert.notDeepEqual(gate(upgrade.resources), gate(before.resources), "a new chart version is a new trigger");
    assert.ok(gate(upgrade.resources).includes("chart 1.19.1"));
});
