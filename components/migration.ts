import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import type { StackConfig } from "./config/stackConfig";
import { CiliumRelease } from "./cilium/ciliumRelease";

/**
 * The whole migration as one resource graph (see ../shared/design.md):
 * preflight -> values snapshot -> Cilium release (KPR values) -> KPR gate -> kube-proxy removal
 * -> stale-rule cleanup[node] -> node tproxy[node] -> verification.
 * `pulumi destroy` walks it backwards, and that walk is the rollback.
 */
export class CiliumKprMigration extends pulumi.ComponentResource {
    readonly provider: k8s.Provider;
    readonly cilium: CiliumRelease;

    constructor(name: string, stack: StackConfig, opts?: pulumi.ComponentResourceOptions) {
        super("cilium-kpr:index:Migration", name, {}, opts);
        const { config } = stack;

        this.provider = new k8s.Provider("cluster", {
            kubeconfig: config.cluster.kubeconfig,
            context: config.cluster.context,
        }, { parent: this });

        this.cilium = new CiliumRelease("cilium", {
            cilium: config.cilium,
            provider: this.provider,
        }, { parent: this });

        this.registerOutputs({ ciliumValues: this.cilium.values });
    }
}
