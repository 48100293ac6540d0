import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

// `pulumi preview --policy-pack ./policy` (and `pulumi up`) run this pack; every policy is mandatory.
export const pack = new PolicyPack("cilium-kpr-safety", {
    description:
        "Safety invariants of the kube-proxy to Cilium KPR migration: step ordering, a retained CNI release, KPR values that name the API server, pinned SSH host keys, every tproxy node file shown in the preview.",
    enforcementLevel: "mandatory",
    policies,
});
