import type * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { CiliumSettings } from "../config/schema";
import { scriptText } from "../commands/scripts";
import type { ReleaseIdentityEnv } from "../commands/scriptParams";
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
            create: scriptText("cilium/release-identity"),
            environment: { CILIUM_NAMESPACE: cilium.namespace, CILIUM_RELEASE: cilium.releaseName } satisfies ReleaseIdentityEnv,
            // The update compares with what the last run printed.
            addPreviousOutputInEnv: true,
        },
        opts,
    );
}
