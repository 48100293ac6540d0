import * as pulumi from "@pulumi/pulumi";
import type { ClusterConfig } from "../config/schema";
import { STEP } from "../resourceNames";
import { clusterCommand } from "./clusterCommand";

/** The UID in cluster-identity.sh's summary line ({"ok":true,"clusterUid":...}). */
export function clusterUidOf(stdout: string): string {
    const last = stdout.trim().split("\n").pop() ?? "";
    const parsed: unknown = JSON.parse(last);
    const uid = typeof parsed === "object" && parsed !== null && "clusterUid" in parsed ? parsed.clusterUid : undefined;
    if (typeof uid !== "string" || uid === "") throw new Error(`cluster-identity printed no clusterUid: ${last}`);
    return uid;
}

/**
 * The first cluster step: records the cluster's identity (kube-system namespace UID) so every later
 * cluster step, and its delete, can refuse another cluster. On an update it gets its previous output
 * and refuses a different cluster (see the script).
 */
export function clusterIdentity(cluster: ClusterConfig, opts: pulumi.CustomResourceOptions): pulumi.Output<string> {
    const step = clusterCommand(STEP.clusterIdentity, { cluster, create: "kubeproxy/cluster-identity", environment: {}, previousOutputInEnv: true }, opts);
    return step.stdout.apply(clusterUidOf);
}
