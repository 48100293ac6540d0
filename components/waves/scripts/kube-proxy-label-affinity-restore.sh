#!/usr/bin/env bash
# kube-proxy-label-affinity-restore.sh: the delete of kube-proxy-label-affinity.sh. Puts back the
# affinity saved in the annotation ORIGINAL_ANNOTATION, removes the annotation and waits for the
# rollout. Runs after every wave was handed back (destroy order), so no node carries the label and
# kube-proxy already serves every node. Nothing to do when the DaemonSet has no saved affinity.
# Environment: as kube-proxy-label-affinity.sh.
# stdout: one JSON line (ok, changed). stderr: progress.
set -euo pipefail

readonly SCRIPT=kube-proxy-label-affinity-restore
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

readonly ORIGINAL_ANNOTATION=cilium-kpr.io/pre-wave-affinity
need_name KUBE_PROXY_DAEMONSET

kp get daemonset "$KUBE_PROXY_DAEMONSET" -o json >"$workdir/ds.json" 2>"$workdir/err" \
    || fail "daemonset/$KUBE_PROXY_DAEMONSET in $KUBE_PROXY_NAMESPACE: $(tr '\n' ' ' <"$workdir/err") (restore kube-proxy first)"
if ! jq -e --arg a "$ORIGINAL_ANNOTATION" '(.metadata.annotations // {}) | has($a)' "$workdir/ds.json" >/dev/null; then
    log "daemonset/$KUBE_PROXY_DAEMONSET has no saved affinity; nothing to restore"
    jq -cn '{ok: true, changed: false}'
    exit 0
fi
labelled="$(kc get nodes -o json | jq -r --arg l "$MIGRATED_LABEL" '[.items[] | select(.metadata.labels[$l] == "true") | .metadata.name] | join(", ")')"
[[ -z "$labelled" ]] || fail "nodes still labelled $MIGRATED_LABEL=true ($labelled): hand them back first (destroy their waves)"
jq --arg a "$ORIGINAL_ANNOTATION" '
    del(.status) | (.metadata.annotations[$a] | fromjson) as $original
    | .metadata.annotations |= del(.[$a])
    | if $original == null then del(.spec.template.spec.affinity) else .spec.template.spec.affinity = $original end' \
    "$workdir/ds.json" >"$workdir/next.json" || fail "annotation $ORIGINAL_ANNOTATION is not JSON; fix it by hand"
kp replace -f "$workdir/next.json" >&2 || fail "could not update daemonset/$KUBE_PROXY_DAEMONSET"
kp rollout status "daemonset/$KUBE_PROXY_DAEMONSET" --timeout="${WAIT_TIMEOUT}s" >&2 \
    || fail "daemonset/$KUBE_PROXY_DAEMONSET did not roll out within ${WAIT_TIMEOUT}s"
jq -cn '{ok: true, changed: true}'
