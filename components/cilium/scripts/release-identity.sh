#!/usr/bin/env bash
# release-identity.sh
#
# Records which Helm release (namespace/name) this stack manages, and refuses any later change of it.
# Changing the release name or namespace would make Pulumi replace the Release: pulumi-kubernetes
# marks .name and .namespace force-new (provider/pkg/provider/helm_release.go Diff), the replacement
# is create-before-delete, and the old one is retained, so `pulumi up` would install a second
# Cilium beside the running one. Nothing touches the cluster here: this step only compares texts,
# and everything that reads the release (values snapshot, release, gate) runs after it.
#
# Runs on create and, with the previous run's stdout in PULUMI_COMMAND_STDOUT, on every update
# (pulumi-command 1.2.1 local/commandOutputs.go: addPreviousOutputInEnv; an update with no `update`
# command runs `create`). A failed update keeps the old state (pulumi-go-provider returns no
# partial state for a plain error), so the refusal repeats until the identity is put back.
#
# Environment:
#   CILIUM_NAMESPACE, CILIUM_RELEASE   the release this run would manage (required).
#   PULUMI_COMMAND_STDOUT              what the last successful run printed (set by the provider).
# stdout: "<namespace>/<release>".
set -euo pipefail

current="${CILIUM_NAMESPACE:?CILIUM_NAMESPACE is required}/${CILIUM_RELEASE:?CILIUM_RELEASE is required}"
previous="${PULUMI_COMMAND_STDOUT:-}"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    echo "cilium-release-identity: refusing to change the Cilium release this stack manages from $previous to $current:" \
        "Pulumi would install a second Cilium beside the retained one. Put cilium.namespace and cilium.releaseName back;" \
        "to move a stack to another release, run \`pulumi destroy\` (the rollback) first." >&2
    exit 1
fi
printf '%s' "$current"
