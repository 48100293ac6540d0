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

/** Reads Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI hands config to a program. */
export function readStackFile(root: string, stack: string): StackFile {
    const project = String((YAML.parse(readFileSync(path.join(root, "Pulumi.yaml"), "utf8")) as { name: unknown }).name);
    const file = path.join(root, `Pulumi.${stack}.yaml`);
    const parsed = (YAML.parse(readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
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
