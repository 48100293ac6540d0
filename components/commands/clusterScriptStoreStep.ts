import type * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import { clusterCommand, type ClusterTarget } from "./clusterCommand";
import { clusterStoreEntry, clusterStoreStdin, type ClusterScriptStore } from "./clusterScriptStore";
import type { ClusterScriptName } from "./scriptParams";

export interface ClusterScriptStoreStep extends ClusterScriptStore {
    readonly step: command.local.Command;
}

/**
 * The step that writes `scripts` into the cluster script store (clusterScriptStore.ts), each once, on
 * create and whenever the set changes (an update re-runs the create, which only adds). Replaced
 * create-first like any step without deleteBeforeReplace: its delete removes only the ConfigMaps its own
 * run labelled, and the new create relabels them all first, so a replacement (`pulumi up --replace`, the
 * repair for a lost entry) keeps every version. Its delete gets the writer id from the create's recorded
 * stdout (addPreviousOutputInEnv).
 */
export function clusterScriptStore(
    name: string,
    cluster: ClusterTarget,
    scripts: readonly ClusterScriptName[],
    opts: pulumi.CustomResourceOptions,
): ClusterScriptStoreStep {
    const entries = new Map(scripts.map((script) => [script, clusterStoreEntry(script)] as const));
    const step = clusterCommand(
        name,
        {
            cluster,
            create: "waves/cluster-script-store",
            delete: "waves/cluster-script-store-remove",
            environment: {},
            stdin: clusterStoreStdin([...entries.values()]),
            previousOutputInEnv: true,
        },
        opts,
    );
    return { step, entries };
}
