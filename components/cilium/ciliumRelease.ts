import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as random from "@pulumi/random";
import type { CiliumSettings } from "../config/schema";
import { ciliumValues, deepMerge, type HelmValues } from "./values";
import { upgradePath } from "./upgradePath";
import { TYPE } from "../resourceNames";

export interface CiliumReleaseArgs {
    readonly cilium: CiliumSettings;
    readonly provider: k8s.Provider;
    /** Values merged over the program's own (the node-by-node path adds KPR's health server). */
    readonly extraValues?: HelmValues;
    /**
     * Declares the step that checks the running release's version (and pre-pulls on a chart
     * upgrade) with the exact values the release will get; the release waits for it.
     */
    readonly upgradePreflight?: (values: pulumi.Output<HelmValues>) => pulumi.Resource;
}

/**
 * The Cilium Helm release with kube-proxy replacement values.
 * Retained on delete: destroying the stack must never uninstall the cluster's CNI; the values
 * snapshot's delete is what returns Cilium to its pre-migration values.
 * What must finish before the release changes anything (the values snapshot) comes in
 * `opts.dependsOn` like every step's and is declared on the Release, not on the component (see
 * NodeTproxy: the edge belongs to the resource that does the work).
 */
export class CiliumRelease extends pulumi.ComponentResource {
    readonly release: k8s.helm.v3.Release;
    /** Exactly the values the release receives. */
    readonly values: pulumi.Output<HelmValues>;

    constructor(name: string, args: CiliumReleaseArgs, opts: pulumi.ComponentResourceOptions = {}) {
        const { dependsOn, ...own } = opts;
        super(TYPE.ciliumRelease, name, {}, own);
        const { cilium } = args;

        let hashSeed: pulumi.Output<string | undefined> = pulumi.output(undefined);
        if (cilium.kubeProxyReplacement && cilium.loadBalancer.algorithm === "maglev") {
            // Generated once and kept in state: every agent must hash with the same seed.
            // Not a credential (it is readable in cilium-config), so unsecret it to keep the values diff visible.
            const seed = new random.RandomBytes(`${name}-maglev-hash-seed`, { length: 12 }, { parent: this });
            hashSeed = pulumi.unsecret(seed.base64);
        }
        this.values = hashSeed.apply((seed) => deepMerge(ciliumValues(cilium, seed), args.extraValues ?? {}));
        const upgradeCheck = args.upgradePreflight?.(this.values);

        this.release = new k8s.helm.v3.Release(
            name,
            {
                name: cilium.releaseName,
                namespace: cilium.namespace,
                chart: cilium.chart,
                version: cilium.chartVersion,
                repositoryOpts: { repo: cilium.repository },
                values: this.values,
                // Never reuse-values across chart versions (upgradePath.ts); the preflight step
                // has checked that the running release is at the version this decision assumes.
                reuseValues: upgradePath(cilium).reuseValues,
                createNamespace: false,
                // A failed upgrade rolls back to the previous release while kube-proxy is still serving.
                atomic: true,
                cleanupOnFail: false,
                maxHistory: 10,
                timeout: 900,
            },
            pulumi.mergeOptions({ parent: this, provider: args.provider, retainOnDelete: true, dependsOn }, { dependsOn: upgradeCheck ? [upgradeCheck] : [] }),
        );

        this.registerOutputs({ values: this.values, status: this.release.status });
    }
}
