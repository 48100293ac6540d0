import type * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { CiliumSettings } from "../config/schema";
import { scriptText } from "../commands/scriptFile";
import { STEP } from "../resourceNames";

/**
 * Refuses a change of the Cilium release's name or namespace (which would replace the Release, i.e.
 * install a second Cilium): see scripts/release-identity.sh. Touches no cluster; the values snapshot,
 * and so the release and everything after it, wait for it.
 */
export function releaseIdentityGuard(cilium: CiliumSettings, opts: pulumi.CustomResourceOptions): command.local.Command {
    return new command.local.Command(
        STEP.releaseIdentity,
        {
            interpreter: ["/bin/bash", "-c"],
            create: scriptText("cilium/scripts/release-identity.sh"),
            environment: { CILIUM_NAMESPACE: cilium.namespace, CILIUM_RELEASE: cilium.releaseName },
            // The update compares with what the last run printed.
            addPreviousOutputInEnv: true,
        },
        opts,
    );
}
