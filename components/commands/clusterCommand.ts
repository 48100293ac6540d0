import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterConfig } from "../config/schema";
import { scriptText } from "./scriptFile";

/**
 * The cluster a step runs against: the configured kubeconfig/context and, once recorded, the
 * cluster's identity (the kube-system namespace UID, see withClusterIdentity).
 */
export interface ClusterTarget extends ClusterConfig {
    readonly identity?: pulumi.Input<string>;
}

/** Environment that points kubectl and helm at the same cluster and context as the Kubernetes provider. */
export function clusterEnvironment(cluster: ClusterConfig): Record<string, string> {
    const env: Record<string, string> = {};
    if (cluster.kubeconfig !== undefined) env.KUBECONFIG = cluster.kubeconfig;
    if (cluster.context !== undefined) env.KUBECTL_CONTEXT = cluster.context;
    return env;
}

/**
 * The config every cluster step is built from, carrying the identity recorded by the cluster-identity
 * step: each step then gets it as CLUSTER_UID, so it is stored in the step's state and its delete
 * refuses another cluster too. (Local commands run with the operator's environment plus the stored
 * one, pulumi-command v1.2.1 provider/pkg/provider/local/commandOutputs.go run(); with no pinned
 * context, "the cluster" is whatever the kubeconfig's current context is at that moment.)
 */
export function withClusterIdentity<C extends { readonly cluster: ClusterConfig }>(config: C, identity: pulumi.Input<string>): C {
    const cluster: ClusterTarget = { ...config.cluster, identity };
    return { ...config, cluster };
}

export interface ClusterCommandArgs {
    readonly cluster: ClusterTarget;
    /** Script (path under components/) run on create and on update. */
    readonly create: string;
    /** Script run by `pulumi destroy` (with the environment stored in state). */
    readonly delete?: string;
    readonly environment?: Readonly<Record<string, pulumi.Input<string>>>;
    /** Any change replaces the resource, so the create script runs again. */
    readonly triggers?: pulumi.Input<unknown>[];
    /** Give the script its previous stdout as PULUMI_COMMAND_STDOUT when an update re-runs it. */
    readonly previousOutputInEnv?: boolean;
}

/** A local.Command that runs one of the repository's cluster scripts with bash on the operator's machine. */
export function clusterCommand(name: string, args: ClusterCommandArgs, opts: pulumi.CustomResourceOptions): command.local.Command {
    return new command.local.Command(
        name,
        {
            interpreter: ["/bin/bash", "-c"],
            create: scriptText(args.create),
            delete: args.delete === undefined ? undefined : scriptText(args.delete),
            environment: {
                ...clusterEnvironment(args.cluster),
                ...(args.cluster.identity === undefined ? {} : { CLUSTER_UID: args.cluster.identity }),
                ...args.environment,
            },
            triggers: args.triggers,
            addPreviousOutputInEnv: args.previousOutputInEnv ?? false,
        },
        opts,
    );
}
