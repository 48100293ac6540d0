import type {
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
} from "@pulumi/policy";
import { STEP } from "../components/resourceNames";
import {
    hostKeyViolations,
    kprValuesViolations,
    nodeFilesShownViolations,
    orderingViolations,
    releaseRetentionViolations,
    replacementOrderViolations,
    type ResourceView,
    type StackResourceView,
    type Violation,
} from "./invariants";

/*
 * The policies, wired from the pure invariants. Kept apart from index.ts because constructing a
 * PolicyPack starts the analyzer's gRPC server; tests import this file instead.
 * All are mandatory: a violation fails `pulumi preview` and `pulumi up`.
 */

export function resourceView(args: ResourceValidationArgs): ResourceView {
    return { urn: args.urn, type: args.type, name: args.name, props: args.props };
}

/** Dependencies as the engine records them: dependsOn plus the sources of every input (propertyDependencies). */
export function stackResourceView(r: PolicyResource): StackResourceView {
    const urns = new Set<string>(r.dependencies.map((d) => d.urn));
    for (const deps of Object.values(r.propertyDependencies)) for (const d of deps) urns.add(d.urn);
    return { urn: r.urn, type: r.type, name: r.name, props: r.props, dependsOn: [...urns] };
}

function report(violations: readonly Violation[], reportViolation: ReportViolation): void {
    for (const v of violations) reportViolation(v.message, v.urn);
}

function resourcePolicy(name: string, description: string, check: (r: ResourceView) => Violation[]): ResourceValidationPolicy {
    return {
        name,
        description,
        enforcementLevel: "mandatory",
        // The URN argument is ignored for resource policies: the violation is filed against the resource.
        validateResource: (args, reportViolation) => report(check(resourceView(args)), reportViolation),
    };
}

export const migrationOrdering: StackValidationPolicy = {
    name: "migration-step-ordering",
    description:
        "kube-proxy removal (or its canary exclusion) depends on the KPR gate, the gate on the Cilium release, and each node's stale-rule cleanup on the removal.",
    enforcementLevel: "mandatory",
    validateStack: (args: StackValidationArgs, reportViolation) => report(orderingViolations(args.resources.map(stackResourceView)), reportViolation),
};

export const ciliumReleaseRetained = resourcePolicy(
    "cilium-release-retained-on-delete",
    "The Cilium Helm release is declared by the CiliumRelease component, which retains it on delete (retainOnDelete itself is not visible to policies).",
    releaseRetentionViolations,
);

export const kprValuesComplete = resourcePolicy(
    "kpr-values-name-the-api-server",
    'Helm values with kubeProxyReplacement on carry an explicit k8sServiceHost (not "auto") and k8sServicePort.',
    kprValuesViolations,
);

export const remoteHostKeysPinned = resourcePolicy(
    "remote-commands-pin-host-keys",
    "Every remote.Command sets connection.hostKey to the node's real public host key.",
    hostKeyViolations,
);

export const commandsReplacedDeleteFirst: ResourceValidationPolicy = {
    name: "commands-with-delete-replaced-delete-first",
    description: "A command with a delete command (which undoes its create) sets deleteBeforeReplace, so a replacement cannot undo itself.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) =>
        report(replacementOrderViolations({ ...resourceView(args), deleteBeforeReplace: args.opts.deleteBeforeReplace === true }), reportViolation),
};

export const tproxyNodeFilesShown: StackValidationPolicy = {
    name: "tproxy-node-files-shown",
    description: `Every file a tproxy apply fetches from the node store by digest is listed, for its node, in the ${STEP.tproxyNodeFiles} Stash, so the preview shows it.`,
    enforcementLevel: "mandatory",
    validateStack: (args: StackValidationArgs, reportViolation) => report(nodeFilesShownViolations(args.resources.map(stackResourceView)), reportViolation),
};

export const policies = [migrationOrdering, ciliumReleaseRetained, kprValuesComplete, remoteHostKeysPinned, commandsReplacedDeleteFirst, tproxyNodeFilesShown];
