#!/usr/bin/env bash
# kube-proxy-label-affinity.sh: keeps kube-proxy's DaemonSet off nodes labelled MIGRATED_LABEL=true,
# by label (Cilium's "KubeProxyReplacement Rollout": required node affinity NotIn on a migration label),
# before the first wave. No node carries the label yet, so kube-proxy stays on every node; the change
# to its pod template restarts it node by node (RollingUpdate), which this waits for.
# Every term of requiredDuringSchedulingIgnoredDuringExecution gets the requirement (terms are ORed);
# with no terms, one term is added. The affinity as it was is kept as JSON in the annotation
# ORIGINAL_ANNOTATION for kube-proxy-label-affinity-restore.sh; the write is one `kubectl replace` of
# the object as read (a concurrent change fails on its resourceVersion). OnDelete is refused (its
# rollout cannot be awaited). Idempotent.
# A stack moving from the single-shot canary (kube-proxy-exclude.sh kept kube-proxy off the canary
# nodes by name and saved the affinity before that in CANARY_ANNOTATION): the affinity before the
# canary is the one kept and extended, and CANARY_ANNOTATION is dropped, so the canary's own undo
# (kube-proxy-include.sh, run when its step leaves the program) finds nothing to do. The canary
# nodes carry the label by then (canary-adopt.sh runs first), so kube-proxy stays off them.
# Environment: KUBECONFIG, KUBECTL_CONTEXT, KUBE_PROXY_NAMESPACE, KUBE_PROXY_DAEMONSET, MIGRATED_LABEL, WAIT_TIMEOUT.
# stdout: one JSON line (ok, changed). stderr: progress.
set -euo pipefail

readonly SCRIPT=kube-proxy-label-affinity
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

readonly ORIGINAL_ANNOTATION=cilium-kpr.io/pre-wave-affinity
readonly CANARY_ANNOTATION=cilium-kpr-migration/original-affinity
need_name KUBE_PROXY_DAEMONSET KUBE_PROXY_NAMESPACE

kp get daemonset "$KUBE_PROXY_DAEMONSET" -o json >"$workdir/ds.json" 2>"$workdir/err" \
    || fail "daemonset/$KUBE_PROXY_DAEMONSET in $KUBE_PROXY_NAMESPACE: $(tr '\n' ' ' <"$workdir/err")"
[[ "$(jq -r '.spec.updateStrategy.type // "RollingUpdate"' "$workdir/ds.json")" == RollingUpdate ]] \
    || fail "daemonset/$KUBE_PROXY_DAEMONSET does not use RollingUpdate: its rollout cannot be awaited"

jq --arg a "$ORIGINAL_ANNOTATION" --arg c "$CANARY_ANNOTATION" '(.metadata.annotations // {}) as $an
    | if $an | has($a) then $an[$a] | fromjson elif $an | has($c) then $an[$c] | fromjson else .spec.template.spec.affinity // null end' \
    "$workdir/ds.json" >"$workdir/original.json" || fail "annotation $ORIGINAL_ANNOTATION or $CANARY_ANNOTATION is not JSON; fix or remove it by hand"
jq -c --arg l "$MIGRATED_LABEL" '
    {key: $l, operator: "NotIn", values: ["true"]} as $r
    | (. // {})
    | .nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms |=
        (if (. // []) == [] then [{matchExpressions: [$r]}] else map(.matchExpressions = ((.matchExpressions // []) + [$r])) end)' \
    "$workdir/original.json" >"$workdir/desired.json"

if jq -e --slurpfile want "$workdir/desired.json" --arg a "$ORIGINAL_ANNOTATION" --arg c "$CANARY_ANNOTATION" \
    '.spec.template.spec.affinity == $want[0] and ((.metadata.annotations // {}) | has($a) and (has($c) | not))' "$workdir/ds.json" >/dev/null; then
    changed=false
    log "daemonset/$KUBE_PROXY_DAEMONSET already stays off nodes labelled $MIGRATED_LABEL=true"
else
    changed=true
    jq --arg a "$ORIGINAL_ANNOTATION" --arg c "$CANARY_ANNOTATION" --slurpfile original "$workdir/original.json" --slurpfile want "$workdir/desired.json" '
        del(.status) | .metadata.annotations = ((.metadata.annotations // {}) + {($a): ($original[0] | tojson)} | del(.[$c]))
        | .spec.template.spec.affinity = $want[0]' "$workdir/ds.json" >"$workdir/next.json"
    log "keeping daemonset/$KUBE_PROXY_DAEMONSET off nodes labelled $MIGRATED_LABEL=true"
    kp replace -f "$workdir/next.json" >&2 || fail "could not update daemonset/$KUBE_PROXY_DAEMONSET"
fi
kp rollout status "daemonset/$KUBE_PROXY_DAEMONSET" --timeout="${WAIT_TIMEOUT}s" >&2 \
    || fail "daemonset/$KUBE_PROXY_DAEMONSET did not roll out within ${WAIT_TIMEOUT}s (kube-proxy keeps serving every node; no node is labelled yet)"
jq -cn --argjson changed "$changed" '{ok: true, changed: $changed}'
