import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import type * as command from "@pulumi/command";
import type { StackConfig } from "./config/stackConfig";
import { CiliumRelease } from "./cilium/ciliumRelease";
import { releaseIdentityGuard } from "./cilium/releaseIdentity";
import { withClusterIdentity } from "./commands/clusterCommand";
import { clusterIdentity } from "./commands/clusterIdentity";
import { preflight } from "./preflight/preflight";
import {
    ciliumUpgradePreflight,
    kprGate,
    kubeadmProxyDisabled,
    kubeProxyCanaryExclusion,
    kubeProxyRemoval,
    postMigrationVerification,
    valuesSnapshot,
} from "./kubeproxy/kubeProxyMigration";
import { staleRuleCleanup, staleRuleVerify } from "./kubeproxy/staleRuleCleanup";
import { STEP, TYPE } from "./resourceNames";
import { NodeTproxy } from "./tproxy/nodeTproxy";
import { migratedNodes, migrationScope } from "./config/migratedNodes";
import { localStoreWriter, nodeStoreSteps } from "./commands/nodeStoreSteps";
import { nodeStoreSet } from "./nodeStoreContents";
import { tproxyNodeFilesStash } from "./tproxy/nodeFilesStash";
import { usesWaves, wavesScope } from "./waves/wavePlan";
import { waveReleaseValues } from "./waves/pendingNodeConfig";
import { preReleaseSteps, waveGraph, type WaveGraph } from "./waves/waveGraph";

/** One migrated node's own steps; which exist depends on the path and the config. */
export interface MigratedNodeSteps {
    /** kube-proxy's leftovers removed from the node (not without KPR). */
    readonly cleanup?: command.remote.Command;
    readonly tproxy?: NodeTproxy;
    /** Read-only: no kube-proxy state left on the node (single-shot path with KPR). */
    readonly verify?: command.remote.Command;
}

/**
 * The whole migration as one resource graph (see ../shared/design.md):
 * preflight -> values snapshot -> Cilium release (KPR values) -> KPR gate -> kube-proxy removal
 * -> stale-rule cleanup[node] -> node tproxy[node] -> verification.
 * With `migration.canaryNodes` the removal is a canary exclusion (kube-proxy kept off those nodes
 * only) and the per-node steps run on the canary nodes only.
 * `pulumi destroy` walks it backwards, and that walk is the rollback.
 *
 * This constructor decides the order: every step function and component takes what it waits for
 * in `opts.dependsOn` from here and keeps it (components/kubeproxy/kubeProxyMigration.ts).
 */
export class CiliumKprMigration extends pulumi.ComponentResource {
    readonly provider: k8s.Provider;
    readonly cilium: CiliumRelease;
    readonly kprGate?: command.local.Command;
    /** The full removal, or with canary nodes the exclusion from those nodes. */
    readonly kubeProxyRemoval?: command.local.Command;
    /** kubeadm's proxy.disabled, set once kube-proxy is removed from every node (not during a canary). */
    readonly kubeadmProxyDisabled?: command.local.Command;
    /** Each migrated node's own steps, by node name. */
    readonly nodes: ReadonlyMap<string, MigratedNodeSteps>;
    readonly verification?: command.local.Command;
    /** The node-by-node path's steps (`migration.waves` / `migration.waveSize`). */
    readonly waves?: WaveGraph;

    constructor(name: string, stack: StackConfig, opts?: pulumi.ComponentResourceOptions) {
        super(TYPE.migration, name, {}, opts);
        const { sshPrivateKey } = stack;
        const child = { parent: this };
        // Every cluster step gets the cluster's recorded identity and refuses any other cluster.
        const config = withClusterIdentity(stack.config, clusterIdentity(stack.config.cluster, child));

        this.provider = new k8s.Provider(
            STEP.provider,
            {
                kubeconfig: config.cluster.kubeconfig,
                context: config.cluster.context,
            },
            child,
        );

        // Each node's store (commands/nodeStore.ts) holds the scripts its steps fetch by digest; every node
        // step depends on it, so destroy removes it after their deletes.
        const writeSet = localStoreWriter();
        const stores = new Map(config.nodes.map((node) => [node.name, nodeStoreSteps(node, sshPrivateKey, nodeStoreSet(config, node), child, writeSet)]));
        // A failed preflight stops the run before the release changes anything.
        const checks = preflight(config, sshPrivateKey, child, stores);
        tproxyNodeFilesStash(config, migratedNodes(config), child);
        const identity = releaseIdentityGuard(config.cilium, child);

        if (usesWaves(config.migration)) {
            // Node by node (components/waves/): the pending CiliumNodeConfig exists before the values snapshot,
            // so destroy restores the values before it deletes that object, and before the release gets its
            // final values, so no agent of an unmigrated node starts with KPR.
            const graphArgs = { config, provider: this.provider, sshPrivateKey, parent: this, stores };
            const pre = preReleaseSteps(graphArgs, checks);
            const snapshot = valuesSnapshot(config, { ...child, dependsOn: [...checks, identity, pre.pendingNodeConfig] });
            this.cilium = new CiliumRelease(
                STEP.ciliumRelease,
                {
                    cilium: config.cilium,
                    provider: this.provider,
                    extraValues: waveReleaseValues(),
                    upgradePreflight: (values) => ciliumUpgradePreflight(config, values, { ...child, dependsOn: [snapshot] }),
                },
                { ...child, dependsOn: [snapshot] },
            );
            this.waves = waveGraph(graphArgs, this.cilium.release, pre.pendingNodeConfig);
            this.nodes = this.waves.nodes;
            if (!this.waves.complete) {
                // Stopped after an earlier wave (migration.stopAfterWave): kube-proxy stays for the other nodes.
                this.registerOutputs({ ciliumValues: this.cilium.values });
                return;
            }
            // After the last wave: every agent gated, then kube-proxy backed up and deleted (its backup keeps
            // the label affinity, so a restore on destroy brings it back on no migrated node).
            this.kprGate = kprGate(
                // As on the single-shot path, a chart upgrade restarts every agent on the new version: check them all again.
                { config, values: this.cilium.values, scope: [wavesScope(this.waves.waves), `chart ${config.cilium.chartVersion}`] },
                { ...child, dependsOn: [this.cilium.release, ...this.waves.lastWave] },
            );
            this.kubeProxyRemoval = kubeProxyRemoval(config, { ...child, dependsOn: [this.kprGate] });
            this.kubeadmProxyDisabled = kubeadmProxyDisabled(config, { ...child, dependsOn: [this.kubeProxyRemoval] });
            this.verification = postMigrationVerification(config, { ...child, dependsOn: [this.kubeProxyRemoval, this.kubeadmProxyDisabled] });
            this.registerOutputs({ ciliumValues: this.cilium.values });
            return;
        }

        const snapshot = valuesSnapshot(config, { ...child, dependsOn: [...checks, identity] });

        this.cilium = new CiliumRelease(
            STEP.ciliumRelease,
            {
                cilium: config.cilium,
                provider: this.provider,
                upgradePreflight: (values) => ciliumUpgradePreflight(config, values, { ...child, dependsOn: [snapshot] }),
            },
            { ...child, dependsOn: [snapshot] },
        );

        // Without KPR there is nothing to take over from kube-proxy: it must stay.
        const canary = config.migration.canaryNodes.length > 0;
        if (config.cilium.kubeProxyReplacement) {
            this.kprGate = kprGate(
                // A chart upgrade restarts every agent on the new version: check them all again.
                { config, values: this.cilium.values, scope: [migrationScope(config), `chart ${config.cilium.chartVersion}`] },
                { ...child, dependsOn: [this.cilium.release] },
            );
            const afterGate = { ...child, dependsOn: [this.kprGate] };
            this.kubeProxyRemoval = canary ? kubeProxyCanaryExclusion(config, afterGate) : kubeProxyRemoval(config, afterGate);
            if (!canary) this.kubeadmProxyDisabled = kubeadmProxyDisabled(config, { ...child, dependsOn: [this.kubeProxyRemoval] });
        }

        const removal = this.kubeProxyRemoval;
        const nodes = new Map<string, MigratedNodeSteps>();
        const tproxies: NodeTproxy[] = [];
        migratedNodes(config).forEach((node, i) => {
            const cleanup = removal && staleRuleCleanup(node, config.cluster, sshPrivateKey, { ...child, dependsOn: [removal] }, stores.get(node.name));
            // Nodes change `nodeConcurrency` at a time (default one): each waits for the node
            // `nodeConcurrency` places before it to be confirmed reachable, so a bad change stops early.
            const previous = tproxies[i - config.tproxy.nodeConcurrency];
            const tproxy = config.tproxy.enabled
                ? new NodeTproxy(
                      STEP.nodeTproxy(node.name),
                      { config, node, privateKey: sshPrivateKey, store: stores.get(node.name) },
                      { ...child, dependsOn: [cleanup ?? this.cilium.release, ...(previous ? [previous.confirm] : [])] },
                  )
                : undefined;
            if (tproxy) tproxies.push(tproxy);
            // Each node is checked after its own steps only: waiting for every node's steps would add
            // nodes² dependency edges (500,000 at 500 nodes) to the plan and the state.
            const verify =
                removal &&
                staleRuleVerify(node, sshPrivateKey, { ...child, dependsOn: [cleanup, tproxy?.confirm].filter((r) => r !== undefined) }, stores.get(node.name));
            nodes.set(node.name, { cleanup, tproxy, verify });
        });
        this.nodes = nodes;

        if (removal) {
            const clusterSteps = [removal, ...(this.kubeadmProxyDisabled ? [this.kubeadmProxyDisabled] : [])];
            const nodeChecks = [...nodes.values()].flatMap((n) => (n.verify ? [n.verify] : []));
            this.verification = postMigrationVerification(config, { ...child, dependsOn: [...clusterSteps, ...nodeChecks] });
        }

        this.registerOutputs({ ciliumValues: this.cilium.values });
    }
}
