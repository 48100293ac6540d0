import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterConfig, NodeConfig } from "../config/schema";
import { nodeCommandOptions, nodeConnection } from "../commands/nodeConnection";
import { remoteCommand } from "../commands/remoteCommand";
import { afterStore, type NodeStoreSteps } from "../commands/nodeStoreSteps";
import type { StoreRef } from "../commands/nodeStore";
import { STEP } from "../resourceNames";

/**
 * Removes what kube-proxy left on one node in any of its modes (iptables KUBE-* chains with the backend
 * kube-proxy used, IPVS virtual servers, kube-ipvs0, ipsets, nftables tables ip/ip6 kube-proxy) and
 * verifies none remains. Nothing to undo on destroy: a restored kube-proxy rebuilds its state.
 */
export function staleRuleCleanup(
    node: NodeConfig,
    cluster: ClusterConfig,
    privateKey: pulumi.Output<string>,
    opts: pulumi.CustomResourceOptions,
    store?: NodeStoreSteps,
): command.remote.Command {
    return new command.remote.Command(
        STEP.staleRuleCleanup(node.name),
        {
            connection: nodeConnection(node, privateKey),
            create: remoteCommand({
                title: `remove kube-proxy's leftover rules, IPVS state, ipsets and nftables tables on ${node.name}`,
                script: "kubeproxy/stale-rules-cleanup",
                args: [cluster.kubeProxy.iptablesBackend],
                store: store?.ref,
            }),
            addPreviousOutputInEnv: false,
        },
        pulumi.mergeOptions(afterStore(opts, store), nodeCommandOptions()),
    );
}

/** Read-only: fails while any kube-proxy state (chains, IPVS, kube-ipvs0, ipsets, nftables tables) remains on the node. */
export function staleRuleVerify(
    node: NodeConfig,
    privateKey: pulumi.Output<string>,
    opts: pulumi.CustomResourceOptions,
    store?: NodeStoreSteps,
): command.remote.Command {
    return new command.remote.Command(
        STEP.staleRuleVerify(node.name),
        {
            connection: nodeConnection(node, privateKey),
            create: staleRuleVerifyCommand(node.name, store?.ref),
            addPreviousOutputInEnv: false,
        },
        pulumi.mergeOptions(afterStore(opts, store), nodeCommandOptions()),
    );
}

/**
 * The verify's command text. Without a store it carries the script itself: the drift check
 * (tools/driftCheck.ts) runs it that way, so it works on a node whatever its store holds.
 */
export function staleRuleVerifyCommand(nodeName: string, store?: StoreRef): string {
    return remoteCommand({ title: `verify no kube-proxy state remains on ${nodeName}`, script: "kubeproxy/stale-rules-verify", args: [], store });
}
