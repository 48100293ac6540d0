import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { MigrationConfig } from "../config/validate";
import { clusterCommand } from "../commands/clusterCommand";
import { nodeCommandOptions, nodeConnection } from "../commands/nodeConnection";
import { STEP } from "../resourceNames";
import { nodePreflightCommand, operatorPreflightEnv } from "./preflightArgs";
import { afterStore, type NodeStoreSteps } from "../commands/nodeStoreSteps";

/**
 * Read-only checks that run before anything changes: on the operator's side (tools, cluster
 * reachable with the configured context, kube-proxy mode vs the Cilium version) and on every node
 * (kernel, bpffs, cgroup v2, nft, iptables backend, our table/priority/mark unused).
 */
export function preflight(
    config: MigrationConfig,
    privateKey: pulumi.Output<string>,
    opts: pulumi.CustomResourceOptions,
    stores: ReadonlyMap<string, NodeStoreSteps> = new Map(),
): pulumi.Resource[] {
    const operator = clusterCommand(
        STEP.operatorPreflight,
        {
            cluster: config.cluster,
            create: "preflight/operator-preflight",
            environment: operatorPreflightEnv(config),
        },
        opts,
    );
    const nodes = config.nodes.map(
        (node) =>
            new command.remote.Command(
                STEP.nodePreflight(node.name),
                {
                    connection: nodeConnection(node, privateKey),
                    create: nodePreflightCommand(config, node, undefined, stores.get(node.name)?.ref),
                    addPreviousOutputInEnv: false,
                },
                pulumi.mergeOptions(afterStore(opts, stores.get(node.name)), nodeCommandOptions()),
            ),
    );
    return [operator, ...nodes];
}
