import * as pulumi from "@pulumi/pulumi";
import { rawStackConfigFromEngine } from "./engineConfig";
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
    // Every key, so that keys this program does not read (typos) are refused, not ignored.
    const raw = rawStackConfigFromEngine(pulumi.getProject(), pulumi.runtime.allConfig(), isConfigSecret);
    const result = validateStackConfig(pulumi.getProject(), raw);
    if (!result.ok) {
        throw new pulumi.RunError(new ConfigValidationError(result.issues).message);
    }
    return { config: result.config, sshPrivateKey: pulumi.secret(sshPrivateKey!) };
}

/**
 * Whether the engine passed a key as a secret: @pulumi/pulumi's runtime/config.js isConfigSecret
 * (reads PULUMI_CONFIG_SECRET_KEYS; also set by runtime.setAllConfig under the mocks). It is marked
 * internal, so its declaration is not shipped; refuse to run rather than guess if it ever goes away.
 */
function isConfigSecret(fullKey: string): boolean {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an internal export without a declaration
    const runtimeConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret?: unknown };
    if (typeof runtimeConfig.isConfigSecret !== "function") {
        throw new pulumi.RunError("@pulumi/pulumi no longer exports runtime/config isConfigSecret; cannot tell plain-text config from secrets");
    }
    return (runtimeConfig.isConfigSecret as (key: string) => boolean)(fullKey);
}
