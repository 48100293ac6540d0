import { createRequire } from "node:module";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";

/*
 * Per-resource bookkeeping of the SDK (@pulumi/pulumi 3.248) that an offline plan never reads, and
 * that grew a 200-node plan's CPU time with every resource:
 *
 * - Every promise the SDK makes for a resource (each output property's, each RPC's) goes through
 *   `debuggablePromise` (runtime/debuggable.js, from sdk/nodejs/runtime/debuggable.ts): it tracks the
 *   promise as a leak candidate until it settles (the exit hook it schedules on its first call reports
 *   candidates still pending and fails the run), sets `err.promise` on a rejection, and defines
 *   `_debugId`, `_debugCtx` and `_debugStackTrace` (`new Error().stack`) on the promise. Those three
 *   are read only by promiseDebugString, which runs only under PULUMI_DEBUG_PROMISE_LEAKS
 *   (`debugPromiseLeaks`): ~0.15 s CPU and ~20 MB that every young-generation collection copied.
 * - Every resource's constructor captures the whole call stack (resource.js Resource.callsites, with
 *   Error.stackTraceLimit raised to Infinity) for the RegisterResourceRequest's sourcePosition and
 *   stackTrace, which the mock monitor never reads (runtime/mocks.js MockMonitor.registerResource).
 *   With the stack formatted as its header only (MockRun.errorStackFrames 0) callsites already finds
 *   no frames, but V8 still captures every frame and builds a CallSite object for each to hand to
 *   Error.prepareStackTrace (https://v8.dev/docs/stack-trace-api): ~0.15 s CPU.
 */

interface DebuggableModule {
    debugPromiseLeaks: boolean;
    debuggablePromise: <T>(p: Promise<T>, ctx: unknown) => Promise<T>;
}
interface StateModule {
    getStore(): { leakCandidates: Set<Promise<unknown>> };
}
/** Resource's static callsites(): private in the SDK's types, called as `Resource.callsites()` by Resource.stackTrace. */
interface ResourceStatics {
    callsites: () => unknown[];
}

const requireSdk = createRequire(__filename);
let leanRecording = false;
const RUNTIME_DIR = path.join(path.dirname(requireSdk.resolve("@pulumi/pulumi/package.json")), "runtime");

/**
 * Runs `body` (a recording whose stacks are formatted as their header only) with that bookkeeping
 * left out, and restores the SDK's own functions after:
 * - debuggablePromise does what the SDK's does except defining the three debug properties, and only
 *   when nothing can read them (PULUMI_DEBUG_PROMISE_LEAKS unset). The leak tracking, its exit report
 *   and `err.promise` stay, with the same promise chain (`then`, then `catch`), so settlement order is
 *   unchanged. Its first call goes to the SDK's own function, which schedules the exit report.
 * - Resource.callsites returns no frames, which is what it returns from a header-only stack.
 */
export async function withLeanSdkBookkeeping<T>(body: () => Promise<T>): Promise<T> {
    // The SDK's functions are process-wide: two overlapping recordings would restore them in the wrong
    // order and leave the lean ones installed for good.
    if (leanRecording) throw new Error("withLeanSdkBookkeeping: another recording with lean SDK bookkeeping is still running in this process");
    const debuggable = requireSdk(path.join(RUNTIME_DIR, "debuggable.js")) as DebuggableModule;
    const state = requireSdk(path.join(RUNTIME_DIR, "state.js")) as StateModule;
    const resource = pulumi.Resource as unknown as ResourceStatics;
    const sdkDebuggablePromise = debuggable.debuggablePromise;
    const sdkCallsites = resource.callsites;
    if (debuggable.debugPromiseLeaks || typeof sdkDebuggablePromise !== "function" || typeof sdkCallsites !== "function") return body();
    let scheduled = false;
    debuggable.debuggablePromise = <U>(p: Promise<U>, ctx: unknown): Promise<U> => {
        if (!scheduled) {
            scheduled = true;
            return sdkDebuggablePromise(p, ctx);
        }
        const localStore = state.getStore();
        localStore.leakCandidates.add(p);
        return p
            .then((val) => {
                localStore.leakCandidates.delete(p);
                return val;
            })
            .catch((err: unknown) => {
                localStore.leakCandidates.delete(p);
                (err as { promise?: unknown }).promise = p;
                throw err;
            });
    };
    resource.callsites = () => [];
    leanRecording = true;
    try {
        return await body();
    } finally {
        debuggable.debuggablePromise = sdkDebuggablePromise;
        resource.callsites = sdkCallsites;
        leanRecording = false;
    }
}
