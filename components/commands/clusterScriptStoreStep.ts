import type * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";
import { clusterCommand, type ClusterTarget } from "./clusterCommand";
import { clusterStoreStdin, type ClusterScriptStore, type ClusterStoreEntry } from "./clusterScriptStore";

export interface ClusterScriptStoreStep<K extends string> extends ClusterScriptStore<K> {
    readonly step: command.local.Command;
}

/**
 * The step that writes `entries` into the cluster script store (clusterScriptStore.ts), each once, on
 * create and whenever the set changes (an update re-runs the create, which only adds). Replaced
 * create-first like any step without deleteBeforeReplace: its delete removes only the ConfigMaps its own
 * run labelled, and the new create relabels them all first, so a replacement (`pulumi up --replace`, the
 * repair for a lost entry) keeps every version. Its delete gets the writer id from the create's recorded
 * stdout (addPreviousOutputInEnv). `settingKeys`: every variable an entry carries as a baked setting
 * (the steps that run the entries then leave them out of their environment).
 */
export function clusterScriptStore<K extends string>(
    name: string,
    cluster: ClusterTarget,
    entries: readonly ClusterStoreEntry[],
    settingKeys: readonly K[],
    opts: pulumi.CustomResourceOptions,
): ClusterScriptStoreStep<K> {
    for (const entry of entries) {
        const unnamed = Object.keys(entry.settings).filter((key) => !(settingKeys as readonly string[]).includes(key));
        if (unnamed.length > 0) throw new Error(`${entry.name}'s stored copy carries ${unnamed.join(", ")}, which the store's setting keys do not name`);
    }
    const step = clusterCommand(
        name,
        {
            cluster,
            create: "waves/cluster-script-store",
            delete: "waves/cluster-script-store-remove",
            environment: {},
            stdin: clusterStoreStdin(entries),
            previousOutputInEnv: true,
        },
        opts,
    );
    return { step, entries: new Map(entries.map((entry) => [entry.name, entry] as const)), settingKeys };
}
