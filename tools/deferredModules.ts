import Module, { createRequire } from "node:module";
import * as path from "node:path";

/**
 * Packages @pulumi/pulumi loads at start-up for function serialization only (`pulumi.runtime.serializeFunction`,
 * `computeCodePaths`, used by "magic functions" such as @pulumi/aws lambdas), which this program never calls:
 * the SDK's runtime/index.js requires runtime/closure/serializeClosure.js and codePaths.js eagerly
 * (@pulumi/pulumi 3.248; upstream sdk/nodejs/runtime/index.ts), which require
 * - typescript-shim.js -> typescript (9 MB of source; closure/parseFunction.js, `ts` used only inside functions),
 * - @npmcli/arborist (~470 modules) and normalize-package-data (closure/codePaths.js, used only inside functions).
 * Under tsx each loaded .js file that mentions import/export is also scanned with es-module-lexer, whose wasm
 * memory grows to 4 bytes per character of the largest file and never shrinks (tsx 4.23 dist/register-*.cjs
 * `isESM`, dist/lexer-*.cjs `parse`): typescript.js alone left 37 MB of it. Together that was ~70 MB of a
 * 3-node plan's 210 MB and ~0.3 s of its start-up.
 */
const requireModule = createRequire(__filename);
const PULUMI_DIR = path.dirname(requireModule.resolve("@pulumi/pulumi/package.json"));
const CLOSURE_DIR = path.join(PULUMI_DIR, "runtime", "closure");
/** The files as the SDK's own require() finds them; one an SDK version no longer has is not deferred. */
export const UNUSED_SDK_MODULES: readonly string[] = ["../../typescript-shim", "@npmcli/arborist", "normalize-package-data"].flatMap((request) => {
    try {
        return [requireModule.resolve(request, { paths: [CLOSURE_DIR] })];
    } catch {
        return [];
    }
});

/**
 * Puts a stand-in for `file` into require.cache ("Adding or replacing entries is also possible",
 * https://nodejs.org/api/modules.html#requirecache): `require(file)` returns a proxy that loads the real
 * module on first use (a property read, `in`, key listing) and then forwards to it, so a caller that
 * does use the module gets the real one. It answers `__esModule` without loading so TypeScript's
 * `__importStar`/`__importDefault` (as in codePaths.js) keep the proxy, and `default` is the module
 * itself when it has none, which is what `__importDefault` would have made of a CommonJS module.
 * A module already loaded is left alone. Returns whether the stand-in was installed.
 */
export function deferModule(file: string): boolean {
    if (requireModule.cache[file] !== undefined) return false;
    let real: object | undefined;
    const load = (): object => {
        if (real === undefined) {
            delete requireModule.cache[file];
            real = Object(requireModule(file)) as object;
        }
        return real;
    };
    const exports = new Proxy(
        {},
        {
            get: (_target, key) => {
                if (key === "__esModule") return true;
                const loaded = load();
                return key === "default" && !("default" in loaded) ? loaded : (Reflect.get(loaded, key) as unknown);
            },
            has: (_target, key) => key in load(),
            ownKeys: () => Reflect.ownKeys(load()),
            getOwnPropertyDescriptor: (_target, key) => {
                const descriptor = Reflect.getOwnPropertyDescriptor(load(), key);
                // A proxy may report a property its (empty) target lacks only as configurable.
                return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
            },
        },
    );
    const standIn = new Module(file);
    standIn.filename = file;
    standIn.loaded = true;
    standIn.exports = exports;
    requireModule.cache[file] = standIn;
    return true;
}

/** Defers UNUSED_SDK_MODULES; must run before @pulumi/pulumi is first loaded. */
export function deferUnusedSdkModules(): void {
    for (const file of UNUSED_SDK_MODULES) deferModule(file);
}

// Importing this module defers them: tools/plan.ts imports it before anything that loads @pulumi/pulumi.
deferUnusedSdkModules();
