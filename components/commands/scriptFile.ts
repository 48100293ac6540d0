import { readFileSync } from "node:fs";
import * as path from "node:path";

const COMPONENTS = path.resolve(__dirname, "..");

/**
 * How a script pulls in a shared prelude from its own folder. Run as a file, bash sources it;
 * embedded, the two lines are replaced by the prelude's text, so the command stays self-contained.
 */
const SOURCED_PRELUDE = /^# shellcheck source=SCRIPTDIR\/([a-z0-9-]+\.sh)\nsource "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/\1"\n/gm;

const cache = new Map<string, string>();

function componentFile(relativePath: string): string {
    const file = path.resolve(COMPONENTS, relativePath);
    if (!file.startsWith(COMPONENTS + path.sep)) throw new Error(`script path escapes components/: ${relativePath}`);
    return file;
}

function preludeText(file: string): string {
    const text = readFileSync(file, "utf8");
    if (/^\s*(source|\.)\s/m.test(text)) throw new Error(`${path.basename(file)} is a prelude and must not source another file`);
    // Its shebang and shellcheck directive only matter when the prelude is checked on its own.
    return text.replace(/^#!.*\n/, "").replace(/^# shellcheck shell=.*\n/m, "");
}

/**
 * The text of a script kept as a real file under components/ (so it can be read, shellchecked and
 * executed by tests), with any shared prelude it sources inlined; resources embed exactly this text.
 */
export function scriptText(relativePath: string): string {
    const file = componentFile(relativePath);
    let text = cache.get(file);
    if (text === undefined) {
        text = readFileSync(file, "utf8").replace(SOURCED_PRELUDE, (_line, prelude: string) => preludeText(path.join(path.dirname(file), prelude)));
        cache.set(file, text);
    }
    return text;
}
