import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { RecordedResource } from "../tools/mockRuntime";
import { urnOf } from "../tools/planModel";
import { STEP, stepOfName, TYPE, WAVE_STEP } from "../components/resourceNames";
import { runProgram } from "./support/program";
import { PROJECT, ROOT } from "./support/stacks";

/**
 * Every resource's identity (its URN: parent types, type, name) and what it explicitly waits for,
 * for the stack shapes the program builds, against a recorded list. A changed URN makes Pulumi delete
 * the old resource (running its delete: restore kube-proxy, remove a node's tproxy) and create a new
 * one, so restructuring the program must leave this list exactly as it was. The list was recorded
 * before the per-node walk and the step functions were restructured (issue 11 item 4).
 *
 * A deliberate new, renamed or re-ordered step changes the list: regenerate it with
 * `RESOURCE_IDENTITY_WRITE=1 node --import tsx --test test/resource-identity.test.ts` and review its diff.
 */
const FIXTURE = path.join(ROOT, "test", "fixtures", "resource-identity.txt");

const SHAPES: readonly { readonly label: string; readonly stack: string; readonly overrides: Readonly<Record<string, unknown>> }[] = [
    { label: "prod (single shot, tproxy on every node)", stack: "prod", overrides: {} },
    { label: "prod, canary m600", stack: "prod", overrides: { migration: { canaryNodes: ["m600"] } } },
    {
        label: "prod, waves [[m600], [m601, storage]] with drain",
        stack: "prod",
        overrides: { migration: { waves: [["m600"], ["m601", "storage"]], drain: true } },
    },
    {
        label: "prod, canary m600 adopted as wave 1, stop after wave 1",
        stack: "prod",
        overrides: { migration: { canaryNodes: ["m600"], waves: [["m600"], ["m601", "storage"]], stopAfterWave: 1 } },
    },
    { label: "ipv6-native (tproxy off)", stack: "ipv6-native", overrides: {} },
];

/** One line per resource, sorted by URN: `urn` then the options that decide its identity and order. */
function identityLines(stack: string, resources: readonly RecordedResource[]): string[] {
    const byKey = new Map(resources.map((r) => [r.key, r]));
    const urn = (key: string) => urnOf(byKey.get(key)!, byKey, PROJECT, stack);
    return resources
        .map((r) => {
            const options = [
                r.providerKey === undefined ? "" : ` provider=${byKey.get(r.providerKey)!.name}`,
                r.deleteBeforeReplace ? " deleteBeforeReplace" : "",
                r.retainOnDelete ? " retainOnDelete" : "",
                r.protect ? " protect" : "",
                r.ignoreChanges.length > 0 ? ` ignoreChanges=${r.ignoreChanges.join(",")}` : "",
            ].join("");
            const deps = r.dependsOnKeys.map((k) => `\n    after ${urn(k)}`).join("");
            return `  ${urn(r.key)}${options}${deps}`;
        })
        .sort();
}

async function currentIdentity(): Promise<string> {
    const sections: string[] = [];
    for (const shape of SHAPES) {
        const { resources, error } = await runProgram(shape.stack, shape.overrides);
        assert.equal(error, undefined, `${shape.label}: ${String(error)}`);
        sections.push(`# ${shape.label}: ${resources.length} resources`, ...identityLines(shape.stack, resources));
    }
    return `${sections.join("\n")}\n`;
}

test("every resource keeps its URN, options and explicit dependencies (prod, canary, waves, ipv6-native)", async () => {
    const current = await currentIdentity();
    if (process.env.RESOURCE_IDENTITY_WRITE === "1") writeFileSync(FIXTURE, current);
    const recorded = readFileSync(FIXTURE, "utf8");
    const missing = recorded.split("\n").filter((l) => !current.split("\n").includes(l));
    const added = current.split("\n").filter((l) => !recorded.split("\n").includes(l));
    assert.deepEqual({ missing, added }, { missing: [], added: [] }, "resource identities changed (see the comment at the top of this file)");
    assert.equal(current, recorded);
});

test("every component type token is spelled once, in components/resourceNames.ts, and the program registers no other", async () => {
    const literal = /["'`]cilium-kpr:index:/;
    const sources = (dir: string): string[] =>
        readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
            e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : [],
        );
    const spelled = ["index.ts", ...sources("components"), ...sources("policy"), ...sources("tools")].filter((f) =>
        literal.test(readFileSync(path.join(ROOT, f), "utf8")),
    );
    assert.deepEqual(spelled, [path.join("components", "resourceNames.ts")]);
    const { resources } = await runProgram("prod", { migration: { waves: [["m600"], ["m601", "storage"]] } });
    const components = new Set(resources.filter((r) => !r.custom).map((r) => r.type));
    assert.deepEqual([...components].sort(), [TYPE.ciliumRelease, TYPE.migration, TYPE.nodeTproxy].sort());
});

test("stepOfName finds the step and node of every name the program declares, fixed names before per-node prefixes", async () => {
    for (const shape of SHAPES) {
        const { resources } = await runProgram(shape.stack, shape.overrides);
        for (const r of resources) {
            const step = stepOfName(r.name);
            assert.ok(step, `${r.name} is a named step`);
            const names: Record<string, string | ((node: string) => string)> = step.path === "single" ? STEP : WAVE_STEP;
            const name = names[step.key]!;
            assert.equal(typeof name === "function" ? name(step.node!) : name, r.name, `${r.name} resolves to ${JSON.stringify(step)}`);
        }
    }
    assert.deepEqual(stepOfName("preflight-operator"), { path: "single", key: "operatorPreflight" });
    assert.deepEqual(stepOfName(WAVE_STEP.nodeConfigCrdCheck), { path: "waves", key: "nodeConfigCrdCheck" });
    assert.deepEqual(stepOfName("tproxy-apply-m600"), { path: "single", key: "tproxyApply", node: "m600" });
    assert.deepEqual(stepOfName("tproxy-m600"), { path: "single", key: "nodeTproxy", node: "m600" });
    assert.deepEqual(stepOfName("kpr-gate-m600"), { path: "waves", key: "agentGate", node: "m600" });
    assert.equal(stepOfName("tproxy-"), undefined);
    assert.equal(stepOfName("something-else"), undefined);
});
