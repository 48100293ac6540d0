import { TOP_LEVEL_KEYS, type RawStackConfig, type StackKey } from "./validate";

/** The first line of a PEM ("-----BEGIN RSA PRIVATE KEY-----") or OpenSSH ("-----BEGIN OPENSSH PRIVATE KEY-----") private key. */
const PRIVATE_KEY_HEADER = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * The raw stack configuration from every config key the engine hands the program: full keys
 * ("cilium-kpr:tproxy") to values as text, objects as JSON, the way the Pulumi CLI passes them in
 * PULUMI_CONFIG (what @pulumi/pulumi's runtime.allConfig() returns) with the secret ones listed in
 * PULUMI_CONFIG_SECRET_KEYS. Values are parsed the way Config.getObject does (JSON, else the text).
 */
export function rawStackConfigFromEngine(project: string, all: Readonly<Record<string, string>>, isSecret: (fullKey: string) => boolean): RawStackConfig {
    const read = (name: string): unknown => {
        const text = all[`${project}:${name}`];
        if (text === undefined) return undefined;
        try {
            return JSON.parse(text) as unknown;
        } catch {
            return text;
        }
    };
    const stackKeys: StackKey[] = Object.entries(all).map(([key, value]) => ({ key, secret: isSecret(key), holdsPrivateKey: PRIVATE_KEY_HEADER.test(value) }));
    const sections = Object.fromEntries(TOP_LEVEL_KEYS.filter((k) => k !== "sshPrivateKey").map((k) => [k, read(k)]));
    return { ...sections, hasSshPrivateKey: all[`${project}:sshPrivateKey`] !== undefined, stackKeys };
}
