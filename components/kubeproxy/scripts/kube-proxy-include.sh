#!/usr/bin/env bash
# kube-proxy-include.sh
#
# Undoes kube-proxy-exclude.sh (the delete of the canary step, run by `pulumi destroy` or
# when the canary set is emptied): puts back the pod template's affinity saved in the
# DaemonSet's annotation cilium-kpr-migration/original-affinity, drops the annotation, and
# waits until kube-proxy has rolled out on every node again. Runs on the operator's machine.
#
# Changes nothing when the DaemonSet carries no saved affinity (never excluded, or already
# included), and nothing when the DaemonSet is gone: then the full migration has removed
# kube-proxy, and kube-proxy-restore.sh brings it back from its backup (with the original
# affinity; kube-proxy-remove.sh saved it that way).
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   KUBE_PROXY_NAMESPACE     Default kube-system.
#   KUBE_PROXY_DAEMONSET     Default kube-proxy.
#   ROLLOUT_TIMEOUT          seconds to wait for the rollout. Default 300.
# stdout: one JSON summary line (ok, changed). stderr: progress.
set -euo pipefail

readonly SCRIPT=kube-proxy-include
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name KUBE_PROXY_NAMESPACE KUBE_PROXY_DAEMONSET
need_seconds ROLLOUT_TIMEOUT
KC_NAMESPACE="$KUBE_PROXY_NAMESPACE"

kc get daemonset "$KUBE_PROXY_DAEMONSET" -o json --ignore-not-found >"$workdir/ds.live"
if [[ ! -s "$workdir/ds.live" ]]; then
    log "daemonset/${KUBE_PROXY_DAEMONSET} is absent (removed by the full migration); nothing to include"
    jq -cn '{ok: true, changed: false}'
    exit 0
fi
if ! canary_exclusion_active "$workdir/ds.live"; then
    log "daemonset/${KUBE_PROXY_DAEMONSET} carries no ${CANARY_ANNOTATION}; nothing to undo"
    jq -cn '{ok: true, changed: false}'
    exit 0
fi

jq --arg a "$CANARY_ANNOTATION" '.metadata.annotations[$a] | fromjson' "$workdir/ds.live" >"$workdir/original.json" \
    || fail "annotation ${CANARY_ANNOTATION} on daemonset/${KUBE_PROXY_DAEMONSET} is not JSON; fix the affinity by hand"
jq -e 'type == "object" or type == "null"' "$workdir/original.json" >/dev/null \
    || fail "annotation ${CANARY_ANNOTATION} on daemonset/${KUBE_PROXY_DAEMONSET} is not an affinity object; fix the affinity by hand"

jq --arg a "$CANARY_ANNOTATION" --slurpfile original "$workdir/original.json" '
    del(.status)
    | del(.metadata.annotations[$a])
    | if .metadata.annotations == {} then del(.metadata.annotations) else . end
    | if $original[0] == null then del(.spec.template.spec.affinity) else .spec.template.spec.affinity = $original[0] end' \
    "$workdir/ds.live" >"$workdir/ds.next"
log "putting back the affinity of daemonset/${KUBE_PROXY_DAEMONSET} from before the canary"
kc replace -f "$workdir/ds.next" >&2

wait_rollout "$KUBE_PROXY_NAMESPACE" "daemonset/${KUBE_PROXY_DAEMONSET}" "$ROLLOUT_TIMEOUT" \
    || fail "daemonset/${KUBE_PROXY_DAEMONSET}: ${rollout_error}; its affinity is already restored, check its pods"
log "kube-proxy runs on every node again"
jq -cn '{ok: true, changed: true}'
