import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterConfig, NodeConfig } from "../config/schema";
import { nodeCommandOptions, nodeConnection } from "../commands/nodeConnection";
import { remoteScriptCommand } from "../commands/remoteScript";
import { scriptText } from "../commands/scriptFile";
import { STEP } from "../resourceNames";

/**
 * Removes kube-proxy's leftover KUBE-* iptables chains on one node, with the backend kube-proxy used,
 * and verifies none remains. Nothing to undo on destroy: a restored kube-proxy rebuilds its rules.
 */
export function staleRuleCleanup(
    node: NodeConfig,
    cluster: ClusterConfig,
    privateKey: pulumi.Output<string>,
    opts: pulumi.CustomResourceOptions,
): command.remote.Command {
    return new command.remote.Command(
        STEP.staleRuleCleanup(node.name),
        {
            connection: nodeConnection(node, privateKey),
            create: remoteScriptCommand(`remove kube-proxy's stale iptables rules on ${node.name}`, scriptText("kubeproxy/scripts/stale-rules-cleanup.sh"), [
                cluster.kubeProxy.iptablesBackend,
            ]),
            addPreviousOutputInEnv: false,
        },
        { ...opts, ...nodeCommandOptions() },
    );
}

/** Read-only: fails while any KUBE-SVC/KUBE-SEP/KUBE-SERVICES/KUBE-NODEPORTS rule remains on the node. */
export function staleRuleVerify(node: NodeConfig, privateKey: pulumi.Output<string>, opts: pulumi.CustomResourceOptions): command.remote.Command {
    return new command.remote.Command(
        STEP.staleRuleVerify(node.name),
        {
            connection: nodeConnection(node, privateKey),
            create: remoteScriptCommand(`verify no kube-proxy Service rules remain on ${node.name}`, scriptText("kubeproxy/scripts/stale-rules-verify.sh"), []),
            addPreviousOutputInEnv: false,
        },
        { ...opts, ...nodeCommandOptions() },
    );
}
