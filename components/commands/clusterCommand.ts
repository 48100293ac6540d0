import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterConfig } from "../config/schema";
import { scriptText } from "./scriptFile";

/** Environment that points kubectl and helm at the same cluster and context as the Kubernetes provider. */
export function clusterEnvironment(cluster: ClusterConfig): Record<string, string> {
    const env: Record<string, string> = {};
    if (cluster.kubeconfig !== undefined) env.KUBECONFIG = cluster.kubeconfig;
    if (cluster.context !== undefined) env.KUBECTL_CONTEXT = cluster.context;
    return env;
}

export interface ClusterCommandArgs {
    readonly cluster: ClusterConfig;
    /** Script (path under components/) run on create and on update. */
    readonly create: string;
    /** Script run by `pulumi destroy` (with the environment stored in state). */
    readonly delete?: string;
    readonly environment?: Readonly<Record<string, pulumi.Input<string>>>;
    /** Any change replaces the resource, so the create script runs again. */
    readonly triggers?: pulumi.Input<unknown>[];
}

/** A local.Command that runs one of the repository's cluster scripts with bash on the operator's machine. */
export function clusterCommand(name: string, args: ClusterCommandArgs, opts: pulumi.CustomResourceOptions): command.local.Command {
    return new command.local.Command(
        name,
        {
            interpreter: ["/bin/bash", "-c"],
            create: scriptText(args.create),
            delete: args.delete === undefined ? undefined : scriptText(args.delete),
            environment: { ...clusterEnvironment(args.cluster), ...args.environment },
            triggers: args.triggers,
            addPreviousOutputInEnv: false,
        },
        opts,
    );
}
