#!/usr/bin/env bash
# kube-proxy-exclude.sh
#
# The canary form of kube-proxy removal: instead of deleting kube-proxy, keeps its DaemonSet
# off the canary nodes only, after kpr-gate.sh has passed. Runs on the operator's machine.
# Every other node keeps kube-proxy, so one node runs on Cilium's KPR alone while the rest of
# the cluster can still fall back on kube-proxy's rules.
#
# How: each term of the pod template's required node affinity gets, per canary node,
#   matchFields: metadata.name NotIn [node]
# (one value each: the API server allows exactly one for In/NotIn on a node field; terms are
# ORed, so every non-empty term needs them; with no affinity one term is added). metadata.name
# is the Node object's name, the same field the DaemonSet controller pins its pods with, so
# no node label is needed. Changing the pod template restarts kube-proxy on every other node,
# one at a time (RollingUpdate); a DaemonSet with updateStrategy OnDelete is refused. The affinity as it was before the first exclusion is kept, as
# JSON, in the DaemonSet's annotation cilium-kpr-migration/original-affinity; the change is
# one `kubectl replace` of the object as read (its resourceVersion makes a concurrent change
# fail instead of being overwritten). Then it waits for the rollout and until no kube-proxy
# pod is left on a canary node.
#
# kube-proxy-include.sh undoes it; kube-proxy-remove.sh, when the full migration follows,
# backs up the DaemonSet with the original affinity, so a later restore brings kube-proxy
# back on every node.
#
# Completes or undoes itself: Pulumi records nothing for a create that fails, so a destroy would
# never put back an exclusion this step wrote before failing. If the rollout or the wait fails after
# this run changed the DaemonSet, the affinity (and annotation) it had before this run is written back
# (no exclusion on a first canary, the previous canary set after a change), the rollout is awaited,
# and only then does the step exit non-zero, saying whether that worked.
#
# Idempotent: a DaemonSet already excluding exactly these nodes is not written again.
# Changing the canary set recomputes the affinity from the saved original.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   CANARY_NODES             Kubernetes node names, separated by spaces (required).
#   KUBE_PROXY_NAMESPACE     Default kube-system.
#   KUBE_PROXY_DAEMONSET     Default kube-proxy.
#   KUBE_PROXY_POD_SELECTOR  label selector of kube-proxy pods. Default k8s-app=kube-proxy.
#   ROLLOUT_TIMEOUT          seconds for the rollout and for the pods to leave. Default 300.
# stdout: one JSON summary line (ok, changed, excluded[]). stderr: progress.
set -euo pipefail

readonly SCRIPT=kube-proxy-exclude
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name KUBE_PROXY_NAMESPACE KUBE_PROXY_DAEMONSET
need_selector KUBE_PROXY_POD_SELECTOR
need_seconds ROLLOUT_TIMEOUT
read -r -a canary <<<"${CANARY_NODES:-}"
[[ "${#canary[@]}" -gt 0 ]] || fail "CANARY_NODES must name at least one node"
for node in "${canary[@]}"; do
    [[ "$node" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || fail "CANARY_NODES: '$node' is not a Kubernetes node name"
done

KC_NAMESPACE="$KUBE_PROXY_NAMESPACE"

# A name that is not a Node would exclude nothing and leave kube-proxy where it is.
for node in "${canary[@]}"; do
    tool "${kubectl_cmd[@]}" get node "$node" -o name >/dev/null \
        || fail "node '$node' is not a Node of this cluster (${tool_error}); migration.canaryNodes must use Kubernetes node names"
done
printf '%s\n' "${canary[@]}" | jq -R . | jq -sc 'unique' >"$workdir/canary.json"

kc get daemonset "$KUBE_PROXY_DAEMONSET" -o json --ignore-not-found >"$workdir/ds.live"
[[ -s "$workdir/ds.live" ]] \
    || fail "daemonset/${KUBE_PROXY_DAEMONSET} is absent in ${KUBE_PROXY_NAMESPACE}: a canary needs kube-proxy on the other nodes (restore it, or leave migration.canaryNodes empty for the full migration)"

strategy="$(jq -r '.spec.updateStrategy.type // "RollingUpdate"' "$workdir/ds.live")"
[[ "$strategy" == RollingUpdate ]] \
    || fail "daemonset/${KUBE_PROXY_DAEMONSET} uses updateStrategy ${strategy}: its rollout cannot be awaited, so a canary is refused; use RollingUpdate or the full migration"

# The affinity before any exclusion: the saved one, or the live one on a first run.
jq --arg a "$CANARY_ANNOTATION" '
    if (.metadata.annotations // {}) | has($a) then .metadata.annotations[$a] | fromjson
    else .spec.template.spec.affinity // null end' "$workdir/ds.live" >"$workdir/original.json" \
    || fail "annotation ${CANARY_ANNOTATION} on daemonset/${KUBE_PROXY_DAEMONSET} is not JSON; fix or remove it by hand"
jq -e 'type == "object" or type == "null"' "$workdir/original.json" >/dev/null \
    || fail "annotation ${CANARY_ANNOTATION} on daemonset/${KUBE_PROXY_DAEMONSET} is not an affinity object; fix or remove it by hand"

# Required node affinity with the canary nodes excluded from every term.
jq -c --slurpfile nodes "$workdir/canary.json" '
    ($nodes[0] | map({key: "metadata.name", operator: "NotIn", values: [.]})) as $exclude
    | (. // {})
    | .nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms |=
        (if (. // []) == [] then [{matchFields: $exclude}]
         else map(if . == {} then . else .matchFields = ((.matchFields // []) + $exclude) end) end)' \
    "$workdir/original.json" >"$workdir/desired.json"

if jq -e --slurpfile want "$workdir/desired.json" --arg a "$CANARY_ANNOTATION" \
    '(.spec.template.spec.affinity == $want[0]) and ((.metadata.annotations // {}) | has($a))' \
    "$workdir/ds.live" >/dev/null; then
    changed=false
    log "daemonset/${KUBE_PROXY_DAEMONSET} already keeps off $(jq -r 'join(", ")' "$workdir/canary.json"); not written"
else
    changed=true
    jq --arg a "$CANARY_ANNOTATION" --slurpfile original "$workdir/original.json" --slurpfile want "$workdir/desired.json" '
        del(.status)
        | .metadata.annotations = ((.metadata.annotations // {}) + {($a): ($original[0] | tojson)})
        | .spec.template.spec.affinity = $want[0]' "$workdir/ds.live" >"$workdir/ds.next"
    log "keeping daemonset/${KUBE_PROXY_DAEMONSET} off $(jq -r 'join(", ")' "$workdir/canary.json")"
    kc replace -f "$workdir/ds.next" >&2
    undo_hook=put_affinity_back
fi

# The undo of a failed exclusion: the affinity and annotation as this run found them, rollout awaited.
put_affinity_back() {
    local manual="run components/kubeproxy/scripts/kube-proxy-include.sh (same KUBECONFIG/KUBECTL_CONTEXT) before anything turns kube-proxy replacement off"
    log "the exclusion failed ($1); putting back the affinity daemonset/${KUBE_PROXY_DAEMONSET} had before this run"
    if ! kc get daemonset "$KUBE_PROXY_DAEMONSET" -o json >"$workdir/undo.live"; then
        undo_outcome="Putting the affinity back ALSO failed (${tool_error}); kube-proxy may still be kept off the canary nodes: ${manual}"
        return 1
    fi
    # As this run found it: a first exclusion goes away entirely, a changed canary set goes back to the old one.
    jq --arg a "$CANARY_ANNOTATION" --slurpfile before "$workdir/ds.live" '
        ($before[0].metadata.annotations // {}) as $was
        | del(.status)
        | if $was | has($a) then .metadata.annotations[$a] = $was[$a] else del(.metadata.annotations[$a]) end
        | if .metadata.annotations == {} then del(.metadata.annotations) else . end
        | ($before[0].spec.template.spec.affinity // null) as $affinity
        | if $affinity == null then del(.spec.template.spec.affinity) else .spec.template.spec.affinity = $affinity end' \
        "$workdir/undo.live" >"$workdir/undo.json"
    if ! kc replace -f "$workdir/undo.json" >&2; then
        undo_outcome="Putting the affinity back ALSO failed (${tool_error}); kube-proxy is still kept off the canary nodes: ${manual}"
        return 1
    fi
    if ! wait_rollout "$KUBE_PROXY_NAMESPACE" "daemonset/${KUBE_PROXY_DAEMONSET}" "$ROLLOUT_TIMEOUT"; then
        undo_outcome="The affinity of daemonset/${KUBE_PROXY_DAEMONSET} was put back, but its rollout: ${rollout_error}; check its pods before anything else"
        return 1
    fi
    undo_outcome="kube-proxy's affinity was put back as this run found it and it has rolled out: the cluster is as before this step, which recorded nothing, so there is nothing for pulumi destroy to undo; fix the cause and run pulumi up again"
}

wait_rollout "$KUBE_PROXY_NAMESPACE" "daemonset/${KUBE_PROXY_DAEMONSET}" "$ROLLOUT_TIMEOUT" \
    || fail "daemonset/${KUBE_PROXY_DAEMONSET}: ${rollout_error}"

deadline=$((SECONDS + ROLLOUT_TIMEOUT))
while true; do
    kc get pods -l "$KUBE_PROXY_POD_SELECTOR" -o json \
        | jq -r --slurpfile nodes "$workdir/canary.json" '.items[] | select(.spec.nodeName as $n | $nodes[0] | index($n)) | "\(.metadata.name) on \(.spec.nodeName)"' \
            >"$workdir/left"
    if [[ ! -s "$workdir/left" ]]; then break; fi
    if ((SECONDS >= deadline)); then
        fail "kube-proxy pods still on canary nodes after ${ROLLOUT_TIMEOUT}s: $(paste -sd, "$workdir/left")"
    fi
    log "waiting for $(paste -sd, "$workdir/left") to terminate"
    sleep 2
done

undo_hook=""
log "kube-proxy runs on every node but $(jq -r 'join(", ")' "$workdir/canary.json")"
jq -cn --argjson changed "$changed" --slurpfile nodes "$workdir/canary.json" '{ok: true, changed: $changed, excluded: $nodes[0]}'
