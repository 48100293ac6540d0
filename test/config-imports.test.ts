import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";

/*
 * The layering rule of components/: config/ (validation) and the neutral modules it reads
 * (ciliumVersions/: everything that depends on the Cilium version) import no feature folder, so a
 * feature can read config and the version rules without a cycle, and config never grows a feature's logic.
 * The preflight, which runs before any feature changes anything, reads only config and the command builders.
 */
const COMPONENTS = path.join(__dirname, "..", "components");
const FEATURE_FOLDERS = ["cilium", "commands", "drift", "kubeproxy", "preflight", "tproxy", "waves"] as const;
const NEUTRAL_FOLDERS = ["config", "ciliumVersions"] as const;

function tsFilesUnder(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) return tsFilesUnder(full);
        return entry.name.endsWith(".ts") ? [full] : [];
    });
}

/** Every module specifier of an import, export-from, dynamic import() or require() in a TypeScript file. */
function importedSpecifiers(text: string): string[] {
    const patterns = [
        /\bfrom\s+["']([^"']+)["']/g,
        /\bimport\s+["']([^"']+)["']/g,
        /\bimport\(\s*["']([^"']+)["']\s*\)/g,
        /\brequire\(\s*["']([^"']+)["']\s*\)/g,
    ];
    return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]!));
}

/** The top-level folder under components/ a relative import of `file` lands in (undefined: outside components/ or a package). */
function componentFolderOf(file: string, specifier: string): string | undefined {
    if (!specifier.startsWith(".")) return undefined;
    const target = path.relative(COMPONENTS, path.resolve(path.dirname(file), specifier));
    if (target.startsWith("..")) return undefined;
    return target.split(path.sep)[0];
}

test("the import scan sees every kind of import a file can use", () => {
    const specifiers = importedSpecifiers(
        'import a from "./a";\nimport type { B } from "../b";\nexport { c } from "./c";\nimport "./d";\nconst e = await import("./e");\nrequire("./f");',
    );
    assert.deepEqual(specifiers.sort(), ["../b", "./a", "./c", "./d", "./e", "./f"]);
    assert.equal(componentFolderOf(path.join(COMPONENTS, "config", "x.ts"), "../tproxy/policyRoutes"), "tproxy");
    assert.equal(componentFolderOf(path.join(COMPONENTS, "config", "x.ts"), "./schema"), "config");
});

test("config/ and ciliumVersions/ import no feature folder of components/", () => {
    const offenders: string[] = [];
    for (const folder of NEUTRAL_FOLDERS) {
        const files = tsFilesUnder(path.join(COMPONENTS, folder));
        assert.ok(files.length > 0, `${folder}/ has TypeScript files`);
        for (const file of files) {
            for (const specifier of importedSpecifiers(readFileSync(file, "utf8"))) {
                const landsIn = componentFolderOf(file, specifier);
                if (landsIn !== undefined && (FEATURE_FOLDERS as readonly string[]).includes(landsIn)) {
                    offenders.push(`${path.relative(COMPONENTS, file)} imports ${specifier}`);
                }
            }
        }
    }
    assert.deepEqual(offenders, []);
});

test("the preflight imports no other feature: what it shares with the tproxy (the policy-route spec) is config", () => {
    const offenders: string[] = [];
    for (const file of tsFilesUnder(path.join(COMPONENTS, "preflight"))) {
        for (const specifier of importedSpecifiers(readFileSync(file, "utf8"))) {
            const landsIn = componentFolderOf(file, specifier);
            if (landsIn !== undefined && landsIn !== "preflight" && landsIn !== "commands" && (FEATURE_FOLDERS as readonly string[]).includes(landsIn)) {
                offenders.push(`${path.relative(COMPONENTS, file)} imports ${specifier}`);
            }
        }
    }
    assert.deepEqual(offenders, []);
});

test("every folder under components/ is either a feature or neutral, so a new folder takes a side", () => {
    const folders = readdirSync(COMPONENTS, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    assert.deepEqual(folders, [...FEATURE_FOLDERS, ...NEUTRAL_FOLDERS].sort());
});
