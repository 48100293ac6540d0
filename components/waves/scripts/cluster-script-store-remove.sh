#!/usr/bin/env bash
# cluster-script-store-remove.sh: the delete of cluster-script-store.sh. Removes the store's ConfigMaps
# labelled with the writer id its create printed (PULUMI_COMMAND_STDOUT, which pulumi-command gives a
# delete: v1.2.1 provider/pkg/provider/local/commandOutputs.go run(), unless addPreviousOutputInEnv is
# false). Every wave step depends on the store, so `pulumi destroy` runs this after their deletes. When
# the store step is replaced, the new create relabels every ConfigMap with its own id first, so the old
# delete finds nothing to remove.
#
# Environment: PULUMI_COMMAND_STDOUT; KUBECONFIG, KUBECTL_CONTEXT, CLUSTER_UID.
# stdout: one JSON line (ok, writer, removed: ConfigMap names). stderr: progress.
set -euo pipefail

readonly SCRIPT=cluster-script-store-remove
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

# shellcheck source=SCRIPTDIR/script-store-names.sh
source "$(dirname "${BASH_SOURCE[0]}")/script-store-names.sh"

writer="$(printf '%s\n' "${PULUMI_COMMAND_STDOUT:-}" | sed '/^[[:space:]]*$/d' | tail -n 1 | jq -r '.writer // ""' 2>/dev/null || true)"
[[ "$writer" =~ ^[0-9a-f]{16}$ ]] \
    || fail "the store step's recorded output names no writer id; nothing was removed. Once no step needs the store: kubectl -n $STORE_NAMESPACE delete configmap -l $STORE_LABEL=true"

kc -n "$STORE_NAMESPACE" get configmap -l "$WRITER_LABEL=$writer" -o json >"$workdir/cms.json" 2>"$workdir/err" \
    || fail "cannot list the store's ConfigMaps: $(tail -n 1 "$workdir/err")"
if [[ "$(jq '.items | length' "$workdir/cms.json")" -gt 0 ]]; then
    kc -n "$STORE_NAMESPACE" delete configmap -l "$WRITER_LABEL=$writer" >&2 2>"$workdir/err" \
        || fail "cannot delete the store's ConfigMaps: $(tail -n 1 "$workdir/err")"
fi
jq -c --arg writer "$writer" '{ok: true, writer: $writer, removed: [.items[].metadata.name]}' "$workdir/cms.json"
