import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as YAML from "yaml";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { validateStackConfig } from "../components/config/validate";
import { ciliumValues } from "../components/cilium/values";
import { TYPE } from "../components/resourceNames";
import { find, runProgram } from "./support/program";
import { PROJECT, ROOT, rawStack } from "./support/stacks";

test("prod: the Cilium release gets exactly the rendered KPR values and is retained on delete", async () => {
    const { resources, error } = await runProgram("prod");
    assert.equal(error, undefined);
    const migration = find(resources, TYPE.migration);
    const component = find(resources, TYPE.ciliumRelease, "cilium");
    assert.equal(component.parent, migration.name);
    const release = find(resources, "kubernetes:helm.sh/v3:Release", "cilium");
    assert.equal(release.parent, "cilium", "the release is a child of the Cilium component");
    assert.equal(release.retainOnDelete, true, "destroy must never uninstall the CNI");
    assert.equal(release.inputs.name, "cilium");
    assert.equal(release.inputs.namespace, "default");
    assert.equal(release.inputs.chart, "cilium");
    assert.equal(release.inputs.version, "1.19.0");
    assert.deepEqual(release.inputs.repositoryOpts, { repo: "https://helm.cilium.io/" });
    assert.equal(release.inputs.reuseValues, true, "an adopted release keeps values this program does not set");
    const result = validateStackConfig(PROJECT, rawStack("prod"));
    assert.ok(result.ok);
    assert.deepEqual(release.inputs.values, ciliumValues(result.config.cilium));
    assert.equal(
        resources.some((r) => r.type === "random:index/randomBytes:RandomBytes"),
        false,
        "no seed without maglev",
    );
});

test("maglev: one hash seed is generated in state and reaches the values", async () => {
    const cilium = { ...(rawStack("prod").cilium as Record<string, unknown>), loadBalancer: { algorithm: "maglev" } };
    const { resources, error } = await runProgram("prod", { cilium });
    assert.equal(error, undefined);
    const seeds = resources.filter((r) => r.type === "random:index/randomBytes:RandomBytes");
    assert.equal(seeds.length, 1);
    assert.equal(seeds[0]!.inputs.length, 12);
    const release = find(resources, "kubernetes:helm.sh/v3:Release");
    const maglev = (release.inputs.values as { maglev: { hashSeed: string; tableSize: number } }).maglev;
    assert.equal(Buffer.from(maglev.hashSeed, "base64").length, 12);
    assert.equal(maglev.tableSize, 16381);
});

test("invalid config: every problem is reported with its key and no resource is declared", async () => {
    const raw = rawStack("prod");
    const tproxy = { ...(raw.tproxy as Record<string, unknown>), port: 65536 };
    const cilium = { ...(raw.cilium as Record<string, unknown>), k8sServiceHost: undefined };
    const { resources, error } = await runProgram("prod", { tproxy, cilium });
    assert.ok(error instanceof Error);
    assert.match(error.message, /cilium-kpr:tproxy\.port: must be a port from 1 to 65535/);
    assert.match(error.message, /cilium-kpr:cilium\.k8sServiceHost: is required/);
    assert.deepEqual(
        resources.map((r) => r.type),
        [],
        "nothing may be declared before validation passes",
    );
});

test("the IPv6 stack runs under mocks", async () => {
    const { resources, error } = await runProgram("ipv6-native");
    assert.equal(error, undefined);
    const release = find(resources, "kubernetes:helm.sh/v3:Release");
    assert.equal((release.inputs.values as Record<string, unknown>).ipv6NativeRoutingCIDR, "2001:db8::/32");
});

test("Pulumi.yaml is a TypeScript nodejs project", () => {
    const project = YAML.parse(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as {
        name: string;
        runtime: { name: string; options: { typescript: boolean } };
    };
    assert.equal(project.name, PROJECT);
    assert.equal(project.runtime.name, "nodejs");
    assert.equal(project.runtime.options.typescript, true);
});
