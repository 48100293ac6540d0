import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import type { NodeConfig } from "../config/schema";

/**
 * SSH connection to a node: the host key is always pinned (an unset key means unchecked), and the
 * private key travels only in the connection, a secret, never in command text.
 */
export function nodeConnection(node: NodeConfig, privateKey: pulumi.Output<string>): command.types.input.remote.ConnectionArgs {
    return {
        host: node.address,
        port: node.sshPort,
        user: node.sshUser,
        privateKey: pulumi.secret(privateKey),
        hostKey: node.hostKey,
        dialErrorLimit: 5,
        perDialTimeout: 15,
    };
}

/** Set to 1 for the one `pulumi up` that moves every node step onto a new SSH key (README "Rotating the SSH key"). */
export const ROTATE_SSH_KEY_ENV = "CILIUM_KPR_ROTATE_SSH_KEY";

/**
 * Options for every remote.Command. `connection` is an input, and any input change re-runs `create`
 * (pulumi-command 1.2.1 remote/commandController.go Update), so a new key alone would re-run every
 * node step on every node. Ignoring the key (the engine puts the stored value back before diffing:
 * pulumi/pulumi pkg/resource/deploy/step_generator.go processIgnoreChanges, which reaches into
 * secrets) makes a key change a no-op; each step keeps the key it last ran with, for its re-runs and
 * its delete. Host, port, user and host key still count as changes.
 */
export function nodeCommandOptions(env: NodeJS.ProcessEnv = process.env): pulumi.CustomResourceOptions {
    return env[ROTATE_SSH_KEY_ENV] === "1" ? {} : { ignoreChanges: ["connection.privateKey"] };
}
