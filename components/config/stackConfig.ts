import * as pulumi from "@pulumi/pulumi";
import { ConfigValidationError, validateStackConfig, type MigrationConfig } from "./validate";

export interface StackConfig {
    readonly config: MigrationConfig;
    /** The SSH private key for every node; a secret output, never plain text. */
    readonly sshPrivateKey: pulumi.Output<string>;
}

/**
 * Reads and validates the stack configuration: the one place the program reads config.
 * Throws before any resource is declared, listing every problem with its config key.
 */
export function loadStackConfig(): StackConfig {
    const config = new pulumi.Config();
    const sshPrivateKey = config.getSecret("sshPrivateKey");
    const read = (key: string): unknown => {
        try {
            return config.getObject<unknown>(key);
        } catch {
            return config.get(key);
        }
    };
    const result = validateStackConfig(pulumi.getProject(), {
        cluster: read("cluster"),
        cilium: read("cilium"),
        tproxy: read("tproxy"),
        nodes: read("nodes"),
        migration: read("migration"),
        hasSshPrivateKey: sshPrivateKey !== undefined,
    });
    if (!result.ok) {
        throw new pulumi.RunError(new ConfigValidationError(result.issues).message);
    }
    return { config: result.config, sshPrivateKey: pulumi.secret(sshPrivateKey!) };
}
