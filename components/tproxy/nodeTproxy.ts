import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { MigrationConfig } from "../config/validate";
import type { NodeConfig } from "../config/schema";
import { nodeCommandOptions, nodeConnection } from "../commands/nodeConnection";
import { outputsDigest } from "../commands/triggerDigest";
import { afterStore, type NodeStoreSteps } from "../commands/nodeStoreSteps";
import { STEP, TYPE } from "../resourceNames";
import { nodeTproxyBundle } from "./nodeBundle";
import { applyCommand, confirmCommand, deleteCommand, remoteSettings } from "./tproxyCommands";

export interface NodeTproxyArgs {
    readonly config: MigrationConfig;
    readonly node: NodeConfig;
    readonly privateKey: pulumi.Output<string>;
    /** The node's store (commands/nodeStoreSteps.ts): the texts fetch their scripts from it. */
    readonly store?: NodeStoreSteps;
}

/**
 * The tproxy artifacts on one node: nftables table, policy routes with their boot unit, and the
 * keepalived notify script. Apply arms a self-revert; confirm, over a fresh SSH connection, disarms it.
 * With the node's store, the texts name every file by sha256 and `pulumi preview` shows the files once
 * per stack (nodeFilesStash.ts); delete restores the node.
 * What it waits for (this node's stale-rule cleanup, the previous node's confirm) comes in
 * `opts.dependsOn` like every step's and is declared on the apply, not on the component: the SDK sends
 * a resource's own dependsOn only (sdk/nodejs/runtime/resource.ts prepareResource), so on the component
 * the edge would be missing from the apply's recorded dependencies, which the plan and the policy pack read.
 */
export class NodeTproxy extends pulumi.ComponentResource {
    readonly apply: command.remote.Command;
    /** Done once the node proved reachable after the change; the next node waits for it. */
    readonly confirm: command.remote.Command;

    constructor(name: string, args: NodeTproxyArgs, opts: pulumi.ComponentResourceOptions = {}) {
        const { dependsOn, ...own } = opts;
        super(TYPE.nodeTproxy, name, {}, own);
        const { config, node } = args;
        const bundle = nodeTproxyBundle(config, node);
        const settings = remoteSettings(config.tproxy);
        const connection = nodeConnection(node, args.privateKey);

        this.apply = new command.remote.Command(
            STEP.tproxyApply(node.name),
            {
                connection,
                create: applyCommand(bundle, settings, args.store?.ref),
                // Fetches the store's copy of the scripts it was created with: the store keeps every version.
                delete: deleteCommand(bundle, settings, args.store?.ref),
                addPreviousOutputInEnv: false,
            },
            {
                ...nodeCommandOptions(),
                ...afterStore({ dependsOn }, args.store),
                parent: this,
                // The old delete restores the node as it was before the first apply: it must run before a
                // replacement applies, or it would tear the new apply down.
                deleteBeforeReplace: true,
            },
        );

        this.confirm = new command.remote.Command(
            STEP.tproxyConfirm(node.name),
            {
                connection,
                create: confirmCommand(bundle, settings, args.store?.ref),
                // Re-confirm whenever the apply ran again: any change of the apply's inputs re-runs its
                // create (pulumi-command 1.2.1 remote/commandController.go Update: no `update` command, so
                // `create` runs), which arms the revert again. The connection is an input of both. A digest,
                // not the texts: triggers are stored in state like any input.
                triggers: [outputsDigest([this.apply.create, this.apply.delete])],
                addPreviousOutputInEnv: false,
            },
            { ...nodeCommandOptions(), parent: this, dependsOn: [this.apply] },
        );

        this.registerOutputs({});
    }
}
