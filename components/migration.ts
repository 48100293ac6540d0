import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import type * as command from "@pulumi/command";
import type { StackConfig } from "./config/stackConfig";
import { migratedNodes } from "./config/migratedNodes";
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
import { nodeStoreSteps } from "./commands/nodeStoreSteps";
import { nodeStoreSet } from "./nodeStoreContents";
import { clusterCommand } from "./commands/clusterCommand";
import { usesWaves, wavesScope } from "./waves/wavePlan";
import { waveReleaseValues } from "./waves/pendingNodeConfig";
import { preReleaseSteps, waveSteps, type WaveGraph } from "./waves/waveGraph";

/**
 * The whole migration as one resource graph (see ../shared/design.md):
 * preflight -> values snapshot -> Cilium release (KPR values) -> KPR gate -> kube-proxy removal
 * -> stale-rule cleanup[node] -> node tproxy[node] -> verification.
 * With `migration.canaryNodes` the removal is a canary exclusion (kube-proxy kept off those nodes
 * only) and the per-node steps run on the canary nodes only.
 * `pulumi destroy` walks it backwards, and that walk is the rollback.
 */
export class CiliumKprMigration extends pulumi.ComponentResource {
    readonly provider: k8s.Provider;
    readonly cilium: CiliumRelease;
    readonly kprGate?: command.local.Command;
    /** The full removal, or with canary nodes the exclusion from those nodes. */
    readonly kubeProxyRemoval?: command.local.Command;
    /** kubeadm's proxy.disabled, set once kube-proxy is removed from every node (not during a canary). */
    readonly kubeadmProxyDisabled?: command.local.Command;
    readonly staleRuleCleanups: command.remote.Command[] = [];
    readonly nodeTproxies: NodeTproxy[] = [];
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
        const stores = new Map(config.nodes.map((node) => [node.name, nodeStoreSteps(node, sshPrivateKey, nodeStoreSet(config, node), child)]));
        // A failed preflight stops the run before the release changes anything.
        const checks = preflight(config, sshPrivateKey, child, stores);
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
                    dependsOn: [snapshot],
                    extraValues: waveReleaseValues(),
                    upgradePreflight: (values) => ciliumUpgradePreflight(config, values, { ...child, dependsOn: [snapshot] }),
                },
                child,
            );
            this.waves = waveSteps(graphArgs, this.cilium.release, pre.pendingNodeConfig);
            for (const steps of this.waves.nodes.values()) {
                this.staleRuleCleanups.push(steps.cleanup);
                if (steps.tproxy) this.nodeTproxies.push(steps.tproxy);
            }
            if (!this.waves.complete) {
                // Stopped after an earlier wave (migration.stopAfterWave): kube-proxy stays for the other nodes.
                this.registerOutputs({ ciliumValues: this.cilium.values });
                return;
            }
            // After the last wave: every agent gated, then kube-proxy backed up and deleted (its backup keeps
            // the label affinity, so a restore on destroy brings it back on no migrated node).
            this.kprGate = clusterCommand(
                STEP.kprGate,
                {
                    cluster: config.cluster,
                    create: "kubeproxy/kpr-gate",
                    environment: { CILIUM_NAMESPACE: config.cilium.namespace },
                    triggers: [this.cilium.values.apply((v) => JSON.stringify(v)), wavesScope(this.waves.waves)],
                },
                { ...child, dependsOn: [this.cilium.release, ...this.waves.lastWave] },
            );
            this.kubeProxyRemoval = kubeProxyRemoval(config, this.kprGate, child);
            this.kubeadmProxyDisabled = kubeadmProxyDisabled(config, this.kubeProxyRemoval, child);
            this.verification = postMigrationVerification(config, [this.kubeProxyRemoval, this.kubeadmProxyDisabled], child);
            this.registerOutputs({ ciliumValues: this.cilium.values });
            return;
        }

        const snapshot = valuesSnapshot(config, { ...child, dependsOn: [...checks, identity] });

        this.cilium = new CiliumRelease(
            STEP.ciliumRelease,
            {
                cilium: config.cilium,
                provider: this.provider,
                dependsOn: [snapshot],
                upgradePreflight: (values) => ciliumUpgradePreflight(config, values, { ...child, dependsOn: [snapshot] }),
            },
            child,
        );

        const migrated = migratedNodes(config);
        const cleanups = new Map<string, command.remote.Command>();

        // Without KPR there is nothing to take over from kube-proxy: it must stay.
        if (config.cilium.kubeProxyReplacement) {
            this.kprGate = kprGate({ config, release: this.cilium.release, values: this.cilium.values }, child);
            this.kubeProxyRemoval =
                config.migration.canaryNodes.length === 0
                    ? kubeProxyRemoval(config, this.kprGate, child)
                    : kubeProxyCanaryExclusion(config, this.kprGate, child);
            if (config.migration.canaryNodes.length === 0) this.kubeadmProxyDisabled = kubeadmProxyDisabled(config, this.kubeProxyRemoval, child);
            for (const node of migrated) {
                const cleanup = staleRuleCleanup(node, config.cluster, sshPrivateKey, { ...child, dependsOn: [this.kubeProxyRemoval] }, stores.get(node.name));
                cleanups.set(node.name, cleanup);
                this.staleRuleCleanups.push(cleanup);
            }
        }

        if (config.tproxy.enabled) {
            // Nodes change `nodeConcurrency` at a time (default one): each waits for the node
            // `nodeConcurrency` places before it to be confirmed reachable, so a bad change stops early.
            migrated.forEach((node, i) => {
                const cleanup = cleanups.get(node.name);
                const previous = this.nodeTproxies[i - config.tproxy.nodeConcurrency];
                this.nodeTproxies.push(
                    new NodeTproxy(
                        STEP.nodeTproxy(node.name),
                        {
                            config,
                            node,
                            privateKey: sshPrivateKey,
                            dependsOn: [...(cleanup ? [cleanup] : [this.cilium.release]), ...(previous ? [previous.confirm] : [])],
                            store: stores.get(node.name),
                        },
                        child,
                    ),
                );
            });
        }

        if (this.kubeProxyRemoval) {
            // Each node is checked after its own steps only: waiting for every node's steps would add
            // nodes² dependency edges (500,000 at 500 nodes) to the plan and the state.
            const nodeChecks = migrated.map((node, i) =>
                staleRuleVerify(
                    node,
                    sshPrivateKey,
                    {
                        ...child,
                        dependsOn: [cleanups.get(node.name), this.nodeTproxies[i]?.confirm].filter((r) => r !== undefined),
                    },
                    stores.get(node.name),
                ),
            );
            const clusterSteps = [this.kubeProxyRemoval, ...(this.kubeadmProxyDisabled ? [this.kubeadmProxyDisabled] : [])];
            this.verification = postMigrationVerification(config, [...clusterSteps, ...nodeChecks], child);
        }

        this.registerOutputs({ ciliumValues: this.cilium.values });
    }
}
