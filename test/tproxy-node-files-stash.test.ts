import { strict as assert } from "node:assert";
import { describe, test } from "node:test";
import { STEP, TYPE } from "../components/resourceNames";
import { sha256Hex } from "../components/commands/nodeStore";
import { validateStackConfig } from "../components/config/validate";
import { nodeTproxyBundle, renderNodeBundle, type NodeBundle } from "../components/tproxy/nodeBundle";
import { manifestPathOf } from "../components/tproxy/nodeLayout";
import { tproxyNodeFiles, type TproxyNodeFiles } from "../components/tproxy/nodeFilesStash";
import { bundleManifest, driftCheckCommand } from "../components/tproxy/tproxyCommands";
import { stashOutputs } from "../tools/mockRuntime";
import { planEntries } from "../tools/planModel";
import { creationOrder } from "../tools/mockRuntime";
import { find, runProgram } from "./support/program";
import { operations } from "./support/engineDiff";
import { PROJECT, rawStack } from "./support/stacks";

/*
 * The ruleset and the manifest moved from every node's apply text into the node store (issue 11 item 8):
 * the apply names them by digest, and one pulumi:index:Stash per stack holds the texts the preview shows.
 */

const routes = { mark: 0x1, table: 100, priority: 1000, families: ["ipv4"] as const };
function bundle(ruleset: string, keepalivedNotify?: string): NodeBundle {
    return renderNodeBundle({
        tableName: "t",
        ruleset,
        routes: { ...routes, families: [...routes.families] },
        ...(keepalivedNotify ? { keepalivedNotify } : {}),
    });
}

describe("the node-files Stash under the program's mocks", () => {
    test("prod: one Stash holds every file each apply stages, by node path; the applies name them by digest only", async () => {
        const { resources, error } = await runProgram("prod");
        assert.equal(error, undefined);
        const stashes = resources.filter((r) => r.type === TYPE.stash);
        assert.deepEqual(
            stashes.map((r) => r.name),
            [STEP.tproxyNodeFiles],
            "one per stack",
        );
        const shown = stashes[0]!.inputs.input as TproxyNodeFiles;
        assert.deepEqual(Object.keys(stashes[0]!.inputs), ["input"], "the engine's Stash takes `input` only");
        // A CLI before 3.208.0 panics in the builtin provider's Delete of a Stash; retained, the engine never calls it.
        assert.equal(stashes[0]!.retainOnDelete, true, "a rollback (destroy) with an older CLI must not reach the Stash's Delete");
        const validated = validateStackConfig(PROJECT, rawStack("prod"));
        assert.ok(validated.ok);
        const config = validated.config;
        assert.deepEqual(shown.nodes, config.nodes.map((n) => n.name).sort());
        for (const node of config.nodes) {
            const b = nodeTproxyBundle(config, node);
            const expected = [...b.files.map((f) => [f.path, f.content] as const), [manifestPathOf(b.layout), bundleManifest(b)] as const];
            assert.deepEqual(Object.keys(shown.files).sort(), expected.map(([p]) => p).sort());
            const apply = String(find(resources, TYPE.remoteCommand, STEP.tproxyApply(node.name)).inputs.create);
            for (const [path, content] of expected) {
                const variants = shown.files[path]!;
                assert.equal(variants.length, 1, `${path}: the same on every node`);
                assert.equal(variants[0]!.content, content, path);
                assert.equal(variants[0]!.sha256, sha256Hex(content), path);
                assert.equal(variants[0]!.nodes, undefined, "one content for every node: the top-level list says whose");
                assert.ok(apply.includes(`-f ${sha256Hex(content)} '`), `${node.name}'s apply fetches ${path} by digest`);
                if (content.includes("\n")) assert.ok(!apply.includes(content.trimEnd()), `${node.name}'s apply does not carry ${path}`);
            }
            assert.ok(!/^ {2}-[ib] /m.test(apply), `${node.name}'s apply carries no file`);
            assert.ok(Buffer.byteLength(apply) < 1_600, `${node.name}'s apply text is ${Buffer.byteLength(apply)} bytes`);
            // The drift check runs without the store: it still carries every file.
            const drift = driftCheckCommand(b, { vip4: config.tproxy.vip4 }, "s");
            for (const [path, content] of expected)
                assert.match(drift, new RegExp(`^  -[ib] '[a-z/0-9]+' ${sha256Hex(content)} '`, "m"), `the drift check carries ${path}`);
        }
        // The stash is the engine's builtin: its default provider is pulumi's unversioned one.
        const entry = planEntries(creationOrder(resources), PROJECT, "prod").find((e) => e.name === STEP.tproxyNodeFiles)!;
        assert.equal(entry.provider, "urn:pulumi:prod::cilium-kpr::pulumi:providers:pulumi::default");
    });

    for (const [label, overrides] of [
        ["waves with drain", { migration: { waves: [["m600"], ["m601", "storage"]], drain: true } }],
        ["stopped after wave 1", { migration: { canaryNodes: ["m600"], waves: [["m600"], ["m601", "storage"]], stopAfterWave: 1 } }],
    ] as const) {
        test(`${label}: the Stash lists exactly the nodes that get a tproxy apply`, async () => {
            const { resources, error } = await runProgram("prod", overrides);
            assert.equal(error, undefined);
            const applied = resources.filter((r) => r.type === TYPE.remoteCommand && r.name.startsWith(STEP.tproxyApply.prefix));
            assert.ok(applied.length > 0);
            assert.deepEqual(
                (find(resources, TYPE.stash, STEP.tproxyNodeFiles).inputs.input as TproxyNodeFiles).nodes,
                applied.map((r) => r.name.slice(STEP.tproxyApply.prefix.length)).sort(),
            );
        });
    }

    test("a canary stack lists its canary only; a stack without the tproxy has no Stash", async () => {
        const canary = await runProgram("prod", { migration: { canaryNodes: ["m601"] } });
        assert.deepEqual((find(canary.resources, TYPE.stash, STEP.tproxyNodeFiles).inputs.input as TproxyNodeFiles).nodes, ["m601"]);
        const off = await runProgram("ipv6-native");
        assert.equal(off.error, undefined);
        assert.equal(
            off.resources.find((r) => r.type === TYPE.stash),
            undefined,
        );
    });
});

test("a ruleset change (tproxy.port) shows once, in the Stash, as an update; each node's copy, check and apply update and its confirm is replaced", async () => {
    const tproxy = rawStack("prod").tproxy as Record<string, unknown>;
    const before = await runProgram("prod");
    const after = await runProgram("prod", { tproxy: { ...tproxy, port: 7893 } });
    assert.equal(after.error, undefined);
    const changed = [...operations(before.resources, after.resources)].filter(([, op]) => op !== "same").sort(([a], [b]) => (a < b ? -1 : 1));
    const nodes = ["m600", "m601", "storage"];
    assert.deepEqual(
        changed,
        [
            ...nodes.map((n) => [`${TYPE.remoteCommand} ${STEP.nodeStoreCheck(n)}`, "update"]),
            ...nodes.map((n) => [`${TYPE.remoteCommand} ${STEP.tproxyApply(n)}`, "update"]),
            ...nodes.map((n) => [`${TYPE.remoteCommand} ${STEP.tproxyConfirm(n)}`, "replace"]),
            ...nodes.map((n) => [`${TYPE.copyToRemote} ${STEP.nodeStore(n)}`, "update"]),
            [`${TYPE.stash} ${STEP.tproxyNodeFiles}`, "update"],
        ].sort(([a], [b]) => (a! < b! ? -1 : 1)),
    );
    const files = (r: typeof before) => (find(r.resources, TYPE.stash, STEP.tproxyNodeFiles).inputs.input as TproxyNodeFiles).files;
    const differing = Object.keys(files(after)).filter((path) => JSON.stringify(files(before)[path]) !== JSON.stringify(files(after)[path]));
    assert.deepEqual(differing, ["/etc/cilium-kpr-tproxy/tproxy.nft"], "only the ruleset's text differs");
    assert.match(files(after)[differing[0]!]![0]!.content, /:7893\b/);
});

describe("tproxyNodeFiles: which nodes get which content", () => {
    test("one content per path: no per-node lists; differing contents: each variant names its nodes", () => {
        const same = tproxyNodeFiles([
            { node: "b", bundle: bundle("table inet t {}\n") },
            { node: "a", bundle: bundle("table inet t {}\n") },
        ]);
        assert.deepEqual(same.nodes, ["a", "b"]);
        const rulesetPath = bundle("x\n").layout.rulesetPath;
        assert.deepEqual(same.files[rulesetPath], [
            { kind: "nft-ruleset", mode: "0600", owner: "root:root", sha256: sha256Hex("table inet t {}\n"), content: "table inet t {}\n" },
        ]);

        const differ = tproxyNodeFiles([
            { node: "c", bundle: bundle("table inet t { # c\n}\n") },
            { node: "a", bundle: bundle("table inet t { # a\n}\n") },
            { node: "b", bundle: bundle("table inet t { # c\n}\n") },
        ]);
        assert.deepEqual(
            differ.files[rulesetPath]!.map((v) => [v.nodes, v.content]),
            [
                [["a"], "table inet t { # a\n}\n"],
                [["b", "c"], "table inet t { # c\n}\n"],
            ],
        );
        assert.equal(differ.files[bundle("x\n").layout.unitPath]!.length, 1, "the unit is the same on all three");
    });

    test("a file only some nodes get names them; a node listed twice is refused", () => {
        const notify = "#!/bin/bash\nexit 0\n";
        const files = tproxyNodeFiles([
            { node: "a", bundle: bundle("r\n", notify) },
            { node: "b", bundle: bundle("r\n") },
        ]);
        const notifyPath = bundle("r\n", notify).layout.keepalivedNotifyPath;
        assert.deepEqual(
            files.files[notifyPath]!.map((v) => v.nodes),
            [["a"]],
        );
        const manifests = files.files[manifestPathOf(bundle("r\n").layout)]!;
        assert.deepEqual(
            manifests.map((v) => [v.kind, v.nodes]),
            [
                ["manifest", ["a"]],
                ["manifest", ["b"]],
            ],
        );
        assert.throws(
            () =>
                tproxyNodeFiles([
                    { node: "a", bundle: bundle("r\n") },
                    { node: "a", bundle: bundle("r\n") },
                ]),
            /a node appears twice/,
        );
    });
});

describe("the mock runtime's Stash is as strict as the engine's builtin (pkg/resource/deploy/builtins.go)", () => {
    test("input only, required; create returns it as input and output", () => {
        assert.deepEqual(stashOutputs("s", { input: { a: 1 } }), { input: { a: 1 }, output: { a: 1 } });
        assert.throws(() => stashOutputs("s", { input: 1, value: 2 }), /unknown property "value"/);
        assert.throws(() => stashOutputs("s", {}), /missing required property "input"/);
    });
});
