import { createRequire } from "node:module";
import * as path from "node:path";

/**
 * The SDK wraps every promise it makes for a resource (each output property's, each RPC's) in
 * `debuggablePromise` (@pulumi/pulumi 3.248 runtime/debuggable.js, from sdk/nodejs/runtime/debuggable.ts):
 * it tracks the promise as a leak candidate until it settles (the exit hook it schedules on its
 * first call reports candidates still pending and fails the run), sets `err.promise` on a rejection,
 * and defines `_debugId`, `_debugCtx` and `_debugStackTrace` (`new Error().stack`) on the promise.
 * Those three are read only by promiseDebugString, which runs only under PULUMI_DEBUG_PROMISE_LEAKS
 * (`debugPromiseLeaks`). In a 200-node plan that bookkeeping was ~0.15 s CPU and ~20 MB that every
 * young-generation collection copied while the program declared its resources.
 */
interface DebuggableModule {
    debugPromiseLeaks: boolean;
    debuggablePromise: <T>(p: Promise<T>, ctx: unknown) => Promise<T>;
}
interface StateModule {
    getStore(): { leakCandidates: Set<Promise<unknown>> };
}

const requireSdk = createRequire(__filename);
const RUNTIME_DIR = path.join(path.dirname(requireSdk.resolve("@pulumi/pulumi/package.json")), "runtime");

/**
 * Runs `body` with the SDK's debuggablePromise doing what it does except defining the three debug
 * properties, when nothing can read them (PULUMI_DEBUG_PROMISE_LEAKS unset); restores the SDK's own
 * function after. The leak tracking, its exit report and `err.promise` stay, with the same promise
 * chain (`then`, then `catch`), so settlement order is unchanged. Its first call goes to the SDK's
 * own function, which schedules the exit report.
 */
export async function withLeanPromiseTracking<T>(body: () => Promise<T>): Promise<T> {
    const debuggable = requireSdk(path.join(RUNTIME_DIR, "debuggable.js")) as DebuggableModule;
    const state = requireSdk(path.join(RUNTIME_DIR, "state.js")) as StateModule;
    const sdkOwn = debuggable.debuggablePromise;
    if (debuggable.debugPromiseLeaks || typeof sdkOwn !== "function") return body();
    let scheduled = false;
    debuggable.debuggablePromise = <U>(p: Promise<U>, ctx: unknown): Promise<U> => {
        if (!scheduled) {
            scheduled = true;
            return sdkOwn(p, ctx);
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
    try {
        return await body();
    } finally {
        debuggable.debuggablePromise = sdkOwn;
    }
}
