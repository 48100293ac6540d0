import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { recordProgramOutcome } from "../tools/mockRuntime";
import { withLeanSdkBookkeeping } from "../tools/leanSdkBookkeeping";
import { ROOT } from "./support/stacks";

/** The SDK's own promise bookkeeping (@pulumi/pulumi runtime/debuggable.js and state.js; internal, so typed here). */
interface Debuggable {
    debuggablePromise: <T>(p: Promise<T>, ctx: unknown) => Promise<T>;
}
const requireSdk = createRequire(path.join(ROOT, "package.json"));
const RUNTIME_DIR = path.join(path.dirname(requireSdk.resolve("@pulumi/pulumi/package.json")), "runtime");
const debuggable = requireSdk(path.join(RUNTIME_DIR, "debuggable.js")) as Debuggable;
const state = requireSdk(path.join(RUNTIME_DIR, "state.js")) as { getStore(): { leakCandidates: Set<Promise<unknown>> } };

/** Resource.callsites is private in the SDK's types. */
const resourceStatics = pulumi.Resource as unknown as { callsites: () => unknown[] };

test("recording with errorStackFrames 0 tracks the SDK's promises without their debug properties, and restores the SDK's function after", async () => {
    const sdkOwn = debuggable.debuggablePromise;
    let first: Promise<unknown> | undefined, second: Promise<unknown> | undefined, rejected: Promise<unknown> | undefined;
    let during: unknown;
    let candidatesWhilePending: boolean | undefined;
    let caught: { promise?: unknown } | undefined;
    await recordProgramOutcome({ project: "p", stack: "s", config: {}, errorStackFrames: 0 }, async () => {
        during = debuggable.debuggablePromise;
        first = Promise.resolve(1);
        const firstTracked = debuggable.debuggablePromise(first, "first");
        second = Promise.resolve(2);
        const secondTracked = debuggable.debuggablePromise(second, "second");
        candidatesWhilePending = state.getStore().leakCandidates.has(second);
        assert.deepEqual(await Promise.all([firstTracked, secondTracked]), [1, 2]);
        rejected = Promise.reject(new Error("rejected"));
        await debuggable.debuggablePromise(rejected, "rejected").catch((err: { promise?: unknown }) => {
            caught = err;
        });
    });
    assert.notEqual(during, sdkOwn, "the lean function while the program runs");
    assert.equal(debuggable.debuggablePromise, sdkOwn, "the SDK's own function after");
    for (const p of [first!, second!])
        assert.ok(
            !("_debugStackTrace" in p) && !("_debugCtx" in p),
            "the program's promises get no debug properties (the SDK's own first call, which schedules the exit report, came before)",
        );
    assert.equal(candidatesWhilePending, true, "a pending promise is a leak candidate");
    assert.equal(state.getStore().leakCandidates.has(second!), false, "a settled one is not");
    assert.equal(state.getStore().leakCandidates.has(rejected!), false);
    assert.equal(caught?.promise, rejected, "a rejection names its promise, as the SDK's does");

    // Recordings for tests (errorStackFrames unset) keep the SDK's own function.
    await recordProgramOutcome({ project: "p", stack: "s", config: {} }, () => {
        during = debuggable.debuggablePromise;
    });
    assert.equal(during, sdkOwn);
});

test("recording with errorStackFrames 0 captures no call stack per resource, and restores Resource.callsites after", async () => {
    const sdkOwn = resourceStatics.callsites;
    let during: unknown;
    let frames: unknown[] | undefined;
    await recordProgramOutcome({ project: "p", stack: "s", config: {}, errorStackFrames: 0 }, () => {
        during = resourceStatics.callsites;
        frames = resourceStatics.callsites();
    });
    assert.notEqual(during, sdkOwn, "the SDK's capture is not run while the program runs");
    assert.deepEqual(frames, [], "no frames, as a header-only stack gives the SDK's own");
    assert.equal(resourceStatics.callsites, sdkOwn, "the SDK's own after");
    assert.ok(resourceStatics.callsites().length > 0, "which finds frames again");
});

test("promises the program leaves pending are still reported when the plan's recording exits", () => {
    const script = [
        'const { recordProgram } = require("./tools/mockRuntime");',
        `const debuggable = require(${JSON.stringify(path.join(RUNTIME_DIR, "debuggable.js"))});`,
        "recordProgram({ project: 'p', stack: 's', config: {}, errorStackFrames: 0 }, () => {",
        "    debuggable.debuggablePromise(new Promise(() => {}), 'never settles');",
        "    debuggable.debuggablePromise(new Promise(() => {}), 'never settles either');",
        "}).then(() => console.log('recorded'));",
    ].join("\n");
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    assert.match(run.stdout, /^recorded$/m, run.stderr);
    // runtime/debuggable.js leakedPromises: both the SDK-tracked promise and the lean-tracked one are counted.
    assert.match(run.stderr, /The Pulumi runtime detected that 2 promises were still active/);
    assert.equal(run.status, 1, "the SDK fails a run that leaks promises");
});

test("a second lean recording while one runs is refused, and the first still restores the SDK's functions", async () => {
    const sdkOwn = debuggable.debuggablePromise;
    const sdkCallsites = resourceStatics.callsites;
    let nested: unknown;
    await withLeanSdkBookkeeping(async () => {
        nested = await withLeanSdkBookkeeping(() => Promise.resolve("ran")).catch((err: Error) => err);
        assert.notEqual(debuggable.debuggablePromise, sdkOwn, "the outer recording is still lean");
    });
    assert.ok(nested instanceof Error && /another recording/.test(nested.message), String(nested));
    assert.equal(debuggable.debuggablePromise, sdkOwn);
    assert.equal(resourceStatics.callsites, sdkCallsites);
});
