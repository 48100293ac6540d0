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
