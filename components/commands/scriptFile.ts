import { readFileSync } from "node:fs";
import * as path from "node:path";

const COMPONENTS = path.resolve(__dirname, "..");

/**
 * The text of a script kept as a real file under components/ (so it can be read, shellchecked and
 * executed by tests); resources embed exactly this text.
 */
export function scriptText(relativePath: string): string {
    const file = path.resolve(COMPONENTS, relativePath);
    if (!file.startsWith(COMPONENTS + path.sep)) throw new Error(`script path escapes components/: ${relativePath}`);
    return readFileSync(file, "utf8");
}
