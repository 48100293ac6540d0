import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { ClusterConfig } from "../config/schema";
import type { ClusterScriptName, ScriptEnv } from "./scriptParams";
import { scriptText } from "./scripts";
import { storeRunnerFor, type ClusterScriptStore } from "./clusterScriptStore";

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

/** A script's environment, each value possibly known only at deployment time. */
export type EnvInputs<N extends ClusterScriptName> = { readonly [K in keyof ScriptEnv<N>]: pulumi.Input<ScriptEnv<N>[K]> };

/**
 * A cluster step: the script it runs on create (and update) and on delete, by registry name
 * (components/commands/scripts.ts), and one environment, typed by those scripts: the delete runs
 * with what was stored at create, so the environment must be the create's and the delete's at once.
 * The kubectl target (KUBECONFIG, KUBECTL_CONTEXT, CLUSTER_UID) comes from `cluster`.
 */
export interface ClusterCommandArgs<C extends ClusterScriptName, D extends ClusterScriptName, U extends ClusterScriptName, K extends string = never> {
    readonly cluster: ClusterTarget;
    /** Run on create, and on update unless `update` is given. */
    readonly create: C;
    /**
     * Run on update instead of the create (pulumi-command v1.2.1 local/commandController.go Update:
     * "Use Create command if Update is unspecified"). Carried in the text, never fetched from the
     * store: an update runs only during an `up`, from the repository of that run.
     */
    readonly update?: U;
    /** Run by `pulumi destroy` (with the environment stored in state). */
    readonly delete?: D;
    /** Without the settings the store's copies carry (`store`'s K): those are in the scripts the step fetches. */
    readonly environment: Omit<EnvInputs<C> & EnvInputs<D> & EnvInputs<U>, K>;
    /** Any change replaces the resource, so the create script runs again. */
    readonly triggers?: pulumi.Input<unknown>[];
    /** Give the script its previous stdout as PULUMI_COMMAND_STDOUT when an update re-runs it (and the delete). */
    readonly previousOutputInEnv?: boolean;
    /** Written to the script's stdin (stored in state like every input). */
    readonly stdin?: pulumi.Input<string>;
    /**
     * Run the scripts from this cluster script store (clusterScriptStore.ts) instead of carrying them:
     * the step's texts are a fetch-check-run of each script's digest, and the step depends on the store,
     * so the store exists before it runs and is removed only after its delete. The store's copies carry
     * the stack's settings (K), so the environment leaves them out. The update (carried) is not fetched.
     */
    readonly store?: ClusterScriptStore<K>;
}

/** The process environment of a typed script environment: numbers as their decimal text, unset fields left out. */
function environmentOf(env: object): Record<string, pulumi.Input<string>> {
    const out: Record<string, pulumi.Input<string>> = {};
    for (const [key, value] of Object.entries(env) as [string, pulumi.Input<string | number> | undefined][]) {
        if (value === undefined) continue;
        out[key] = typeof value === "string" ? value : typeof value === "number" ? String(value) : pulumi.output(value).apply(String);
    }
    return out;
}

/** A local.Command that runs one of the repository's cluster scripts with bash on the operator's machine. */
export function clusterCommand<C extends ClusterScriptName, D extends ClusterScriptName = C, U extends ClusterScriptName = C, K extends string = never>(
    name: string,
    args: ClusterCommandArgs<C, D, U, K>,
    opts: pulumi.CustomResourceOptions,
): command.local.Command {
    const store = args.store;
    const baked = (store?.settingKeys ?? []).filter((key) => Object.hasOwn(args.environment, key));
    if (baked.length > 0) throw new Error(`${name}: ${baked.join(", ")} come from the cluster script store's copies, not the step's environment`);
    const text = (script: ClusterScriptName) => (store === undefined ? scriptText(script) : storeRunnerFor(store, script));
    return new command.local.Command(
        name,
        {
            interpreter: ["/bin/bash", "-c"],
            create: text(args.create),
            ...(args.update === undefined ? {} : { update: scriptText(args.update) }),
            delete: args.delete === undefined ? undefined : text(args.delete),
            environment: {
                ...clusterEnvironment(args.cluster),
                ...(args.cluster.identity === undefined ? {} : { CLUSTER_UID: args.cluster.identity }),
                ...environmentOf(args.environment),
            },
            triggers: args.triggers,
            addPreviousOutputInEnv: args.previousOutputInEnv ?? false,
            ...(args.stdin === undefined ? {} : { stdin: args.stdin }),
        },
        store === undefined ? opts : pulumi.mergeOptions(opts, { dependsOn: [store.step] }),
    );
}
