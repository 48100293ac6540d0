import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import type { RawStackConfig } from "../components/config/validate";

export interface StackFile {
    readonly project: string;
    /** Bare keys (no project prefix) to values as Pulumi stores them: JSON for objects, text for scalars. */
    readonly config: Record<string, string>;
    readonly secretKeys: string[];
    /** Secrets the program reads that the stack file does not hold; the plan uses "[secret]" for them. */
    readonly placeholderSecrets: string[];
}

export const SECRET_PLACEHOLDER = "[secret]";
/** Secret keys the program reads (see components/config/stackConfig.ts). */
const PROGRAM_SECRETS = ["sshPrivateKey"];

/** A stack or project file the plan cannot read the way Pulumi does; the message names the file (and line). */
export class StackFileError extends Error {}

/**
 * Plain (unquoted) scalars that the Pulumi CLI reads differently from YAML 1.2 (which the `yaml`
 * package, and so the plan, follows). The CLI parses stack files with gopkg.in/yaml.v3
 * (pulumi/pulumi sdk/go/common/encoding/marshal.go yamlMarshaler.Unmarshal, from
 * workspace/loaders.go LoadProjectStackBytes); its resolve.go (go-yaml v3 branch, resolve()) strips
 * `_` and parses numbers with strconv.ParseInt(s, 0, 64) (so `0100` is octal 64, `0b11` binary,
 * `1_000` 1000) and parses YYYY-MM-DD... as a timestamp. Older CLIs used gopkg.in/yaml.v2, whose
 * resolve table also makes `yes`/`no`/`on`/`off`/`y`/`n` booleans; YAML 1.2 reads all of these as
 * text or decimal. The plan refuses them rather than show something a real run would not do.
 */
const AMBIGUOUS_SCALARS: readonly [RegExp, string][] = [
    [/^[-+]?0[0-9_]+$/, "a number with a leading zero is octal to Pulumi (YAML 1.1 rules) and decimal in YAML 1.2"],
    [/^[-+]?0[bB][0-1_]+$/, "0b... is a binary number to Pulumi and text in YAML 1.2"],
    [/^[-+]?[0-9][0-9a-fA-FxXoO]*_[0-9a-fA-F_.]*$/, "Pulumi drops the `_` and reads a number; YAML 1.2 reads text"],
    [/^[-+]0[xXoO][0-9a-fA-F_]+$/, "a signed hex or octal number is a number to Pulumi and text in YAML 1.2"],
    [/^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/, "a boolean to Pulumi CLIs that read YAML 1.1 (gopkg.in/yaml.v2), text to YAML 1.2"],
    [/^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?$/, "a timestamp to Pulumi, text in YAML 1.2"],
];

/** Every unquoted scalar whose meaning depends on the YAML version, as "file:line:col: problem". */
function ambiguousScalars(doc: YAML.Document, lines: YAML.LineCounter, file: string): string[] {
    const found: string[] = [];
    const check = (node: unknown) => {
        if (!YAML.isScalar(node) || node.type !== YAML.Scalar.PLAIN || node.range === undefined || node.range === null) return;
        const text = node.source ?? String(node.value);
        for (const [pattern, why] of AMBIGUOUS_SCALARS) {
            if (!pattern.test(text)) continue;
            const { line, col } = lines.linePos(node.range[0]);
            found.push(
                `${file}:${line}:${col}: \`${text}\` is ambiguous: ${why}; quote it ("${text}") for text, or write the value plainly (true/false, a decimal number)`,
            );
            break;
        }
    };
    // Keys are scalars too: the visitor reaches them as well as values.
    YAML.visit(doc, {
        Scalar: (_key, node) => {
            check(node);
        },
    });
    return [...new Set(found)];
}

/** Parses one YAML file as the plan needs it, or throws a StackFileError naming the file. */
function readYamlFile(file: string): unknown {
    const shown = path.relative(process.cwd(), file) || file;
    let text: string;
    try {
        text = readFileSync(file, "utf8");
    } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new StackFileError(code === "ENOENT" ? `${shown}: no such file` : `${shown}: ${(err as Error).message}`);
    }
    const lines = new YAML.LineCounter();
    const doc = YAML.parseDocument(text, { lineCounter: lines, keepSourceTokens: true, prettyErrors: false });
    if (doc.errors.length > 0) {
        const first = doc.errors[0]!;
        const { line, col } = lines.linePos(first.pos[0]);
        throw new StackFileError(`${shown}:${line}:${col}: YAML syntax error: ${first.message.split("\n")[0]}`);
    }
    const ambiguous = ambiguousScalars(doc, lines, shown);
    if (ambiguous.length > 0) throw new StackFileError(ambiguous.join("\n"));
    return doc.toJS();
}

/** Reads Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI hands config to a program. */
export function readStackFile(root: string, stack: string): StackFile {
    const project = String(((readYamlFile(path.join(root, "Pulumi.yaml")) ?? {}) as { name?: unknown }).name);
    const file = path.join(root, `Pulumi.${stack}.yaml`);
    const parsed = (readYamlFile(file) ?? {}) as { config?: Record<string, unknown> };
    const config: Record<string, string> = {};
    const secretKeys: string[] = [];
    for (const [fullKey, value] of Object.entries(parsed.config ?? {})) {
        const [namespace, key] = fullKey.includes(":") ? (fullKey.split(":", 2) as [string, string]) : [project, fullKey];
        if (namespace !== project) continue;
        if (value !== null && typeof value === "object" && "secure" in value) {
            config[key] = SECRET_PLACEHOLDER;
            secretKeys.push(key);
        } else {
            config[key] = typeof value === "string" ? value : JSON.stringify(value);
        }
    }
    const placeholderSecrets = PROGRAM_SECRETS.filter((k) => !(k in config));
    for (const key of placeholderSecrets) {
        config[key] = SECRET_PLACEHOLDER;
        secretKeys.push(key);
    }
    return { project, config, secretKeys, placeholderSecrets };
}

/** The stack's config as the raw (unvalidated) object validateStackConfig takes. */
export function rawStackConfig(config: Readonly<Record<string, string>>): RawStackConfig {
    const parse = (key: string): unknown => (config[key] === undefined ? undefined : JSON.parse(config[key]));
    return {
        cluster: parse("cluster"),
        cilium: parse("cilium"),
        tproxy: parse("tproxy"),
        nodes: parse("nodes"),
        migration: parse("migration"),
        hasSshPrivateKey: config.sshPrivateKey !== undefined,
    };
}
