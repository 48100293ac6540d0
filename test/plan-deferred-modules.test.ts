import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { createRequire } from "node:module";
import * as path from "node:path";
import { deferModule, UNUSED_SDK_MODULES } from "../tools/deferredModules";
import { ROOT } from "./support/stacks";

/** Files that are in require.cache only when the real package was loaded (the stand-ins sit at the entry files). */
const LOADED_ONLY_BY_THE_REAL_PACKAGES = [
    /\/node_modules\/typescript\//,
    /\/node_modules\/@npmcli\/arborist\/lib\/arborist\//,
    /\/normalize-package-data\/lib\/fixer\.js$/,
];

/** Run in the plan process: writes the loaded module files to stderr when it exits. */
const REPORT_MODULES =
    'data:text/javascript,import { createRequire } from "node:module"; const cache = createRequire(process.cwd() + "/").cache; ' +
    'process.on("exit", () => process.stderr.write("\\nloaded modules: " + JSON.stringify(Object.keys(cache)) + "\\n"));';

test("the offline plan runs without loading typescript, @npmcli/arborist or normalize-package-data", (t) => {
    // All three resolve where the SDK requires them from (one that no longer does would silently not be deferred).
    assert.deepEqual(
        UNUSED_SDK_MODULES.map((file) => path.relative(path.join(ROOT, "node_modules"), file)),
        [
            path.join("@pulumi", "pulumi", "typescript-shim.js"),
            path.join("@npmcli", "arborist", "lib", "index.js"),
            path.join("normalize-package-data", "lib", "normalize.js"),
        ],
    );
    const dir = mkdtempSync(path.join(os.tmpdir(), "plan-deferred-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const run = spawnSync(
        process.execPath,
        ["--import", "tsx", "--import", REPORT_MODULES, path.join(ROOT, "tools", "plan.ts"), "--stack", "prod", "--out", dir],
        {
            cwd: ROOT,
            encoding: "utf8",
            timeout: 60_000,
        },
    );
    assert.equal(run.status, 0, run.stderr);
    const report = /^loaded modules: (.*)$/m.exec(run.stderr);
    assert.ok(report, run.stderr);
    const loaded = JSON.parse(report[1]!) as string[];
    assert.ok(
        loaded.some((file) => file.endsWith(path.join("@pulumi", "pulumi", "runtime", "closure", "parseFunction.js"))),
        "the SDK's closure code is loaded",
    );
    for (const pattern of LOADED_ONLY_BY_THE_REAL_PACKAGES) {
        assert.deepEqual(
            loaded.filter((file) => pattern.test(file)),
            [],
            `${String(pattern)}: loaded`,
        );
    }
});

const requireModule = createRequire(__filename);

test("a deferred module loads on first use and then is the real module, also through TypeScript's import helpers", (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "deferred-module-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const counter = "__deferredModuleTestLoads";
    const globals = globalThis as unknown as Record<string, number>;
    globals[counter] = 0;
    const objectModule = path.join(dir, "object.js"),
        functionModule = path.join(dir, "function.js");
    writeFileSync(objectModule, `globalThis.${counter}++; module.exports = { answer: 42 };\n`);
    writeFileSync(functionModule, `globalThis.${counter}++; module.exports = function normalize() { return "called"; };\n`);

    assert.equal(deferModule(objectModule), true);
    const deferred = requireModule(objectModule) as { answer: number; __esModule: boolean };
    assert.equal(deferred.__esModule, true, "answered without loading, so __importStar keeps the stand-in");
    assert.equal(globals[counter], 0, "not loaded by require or __esModule");
    assert.equal(deferred.answer, 42);
    assert.equal(globals[counter], 1, "loaded on first use");
    assert.deepEqual(Object.keys(deferred), ["answer"]);
    assert.equal("answer" in deferred, true);
    assert.deepEqual(requireModule(objectModule), { answer: 42 }, "require now returns the real module");
    assert.equal(globals[counter], 1, "loaded once");

    assert.equal(deferModule(functionModule), true);
    const imported = requireModule(functionModule) as { default: () => string };
    assert.equal(globals[counter], 1);
    assert.equal(imported.default(), "called", "`default` is the CommonJS module itself, as __importDefault makes it");
    assert.equal(globals[counter], 2);

    assert.equal(deferModule(objectModule), false, "a module already loaded is left alone");
    assert.deepEqual(requireModule(objectModule), { answer: 42 });
});

test("with the SDK's unused modules deferred, pulumi.runtime.serializeFunction still works (it loads typescript when called)", () => {
    const script = [
        'require("./tools/deferredModules");',
        'const pulumi = require("@pulumi/pulumi");',
        'const typescriptLoaded = () => Object.keys(require.cache).some((file) => file.endsWith("typescript/lib/typescript.js"));',
        "const before = typescriptLoaded();",
        "pulumi.runtime.serializeFunction(() => 6 * 7).then((fn) => console.log(JSON.stringify({ before, after: typescriptLoaded(), text: fn.text })));",
    ].join("\n");
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { before: boolean; after: boolean; text: string };
    assert.equal(result.before, false, "typescript is not loaded with the SDK");
    assert.equal(result.after, true, "serializeFunction loaded it through the stand-in");
    assert.match(result.text, /return \(\) => 6 \* 7;/);
});
