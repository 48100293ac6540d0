import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { NodeConfig } from "../config/schema";
import { STEP } from "../resourceNames";
import { nodeCommandOptions, nodeConnection } from "./nodeConnection";
import { NODE_STORE_DIR, storeCheckCommand, storeRef, storeRemoveCommand, writeLocalStore, type StoreRef, type StoreSet } from "./nodeStore";

/** Where the program writes the sets it copies (gitignored): the engine hashes them at registration. */
export const LOCAL_STORE_ROOT = path.resolve(__dirname, "..", "..", ".cilium-kpr", "node-store");

/**
 * Writes each distinct set into `localRoot` once per program run and returns its directory: every node of a
 * stack usually holds the same set, and writeLocalStore re-reads and re-hashes an existing directory on
 * every call (about 0.5 ms per node in a 200-node plan, bench/plan-scale.ts).
 */
export function localStoreWriter(localRoot: string = LOCAL_STORE_ROOT): (set: StoreSet) => string {
    const written = new Map<string, string>();
    return (set) => {
        let dir = written.get(set.digest);
        if (dir === undefined) {
            dir = writeLocalStore(localRoot, set);
            written.set(set.digest, dir);
        }
        return dir;
    };
}

export interface NodeStoreSteps {
    /** What the node's step texts fetch from. */
    readonly ref: StoreRef;
    readonly copy: command.remote.CopyToRemote;
    /** Every node step depends on this: it exists once the store holds the set, and is deleted last. */
    readonly check: command.remote.Command;
}

/**
 * Fills one node's store (nodeStore.ts) and checks it. CopyToRemote (pulumi-command 1.2.1
 * remote/copyController.go) copies again only when the archive's hash or the remote path changes, not
 * when the connection does, so the connection's address, port and user are triggers: a moved node is a
 * replacement, which copies. Its delete runs nothing; the check's delete removes the store, after every
 * node step's delete (they depend on the check).
 */
export function nodeStoreSteps(
    node: NodeConfig,
    privateKey: pulumi.Output<string>,
    set: StoreSet,
    opts: pulumi.CustomResourceOptions,
    writeSet: (set: StoreSet) => string = localStoreWriter(),
): NodeStoreSteps {
    const connection = nodeConnection(node, privateKey);
    const copy = new command.remote.CopyToRemote(
        STEP.nodeStore(node.name),
        {
            connection,
            source: new pulumi.asset.FileArchive(writeSet(set)),
            remotePath: NODE_STORE_DIR,
            triggers: [node.address, String(node.sshPort), node.sshUser],
        },
        pulumi.mergeOptions(opts, nodeCommandOptions()),
    );
    const check = new command.remote.Command(
        STEP.nodeStoreCheck(node.name),
        {
            connection,
            create: storeCheckCommand(set),
            delete: storeRemoveCommand(),
            // No trigger on the copy: a replaced copy on the same host (`pulumi up --replace` to restore a damaged
            // store) would replace the check too, and its delete would remove the store the copy just filled. A
            // moved node updates the check (the connection is an input), which then checks the new host; the old
            // host keeps its store.
            addPreviousOutputInEnv: false,
        },
        // Delete-first like every step with a delete (policy pack): a replaced check removes the store, then the
        // new check refuses until the copy is replaced too (README "The node store").
        pulumi.mergeOptions(opts, { ...nodeCommandOptions(), dependsOn: [copy], deleteBeforeReplace: true }),
    );
    return { ref: storeRef(set), copy, check };
}

/** A node step's options: its own, plus a dependency on the node's store (merged, never replaced). */
export function afterStore(opts: pulumi.CustomResourceOptions, store: NodeStoreSteps | undefined): pulumi.CustomResourceOptions {
    if (store === undefined) return opts;
    const deps = opts.dependsOn;
    if (deps !== undefined && !Array.isArray(deps) && !pulumi.Resource.isInstance(deps)) {
        throw new Error("afterStore needs dependsOn as a resource or an array of resources");
    }
    const list: pulumi.Input<pulumi.Resource>[] = deps === undefined ? [] : Array.isArray(deps) ? deps : [deps];
    return { ...opts, dependsOn: [...list, store.check] };
}
