#!/usr/bin/env bash
# node-handover.sh NODE's Service traffic moves from kube-proxy to its Cilium agent with KPR.
#
# Cilium's order ("Per-node configuration", example "KubeProxyReplacement Rollout"):
#  1. label the node MIGRATED_LABEL=true: kube-proxy's required node affinity (NotIn on that label,
#     kube-proxy-label-affinity.sh) takes its pod off the node, and the pending CiliumNodeConfig
#     (selector NotIn on the same label) stops selecting it; wait until no kube-proxy pod is left there.
#     kube-proxy leaves its iptables rules behind when it exits (kubernetes/kubernetes#102314), so
#     the node keeps being served by them until step 2.
#  2. delete the node's agent pod: a CiliumNodeConfig only takes effect when the agent pod is
#     re-created (its init container resolves cilium-config + CiliumNodeConfigs at start); wait until
#     the new agent pod is Ready.
# Before labelling, it refuses if kube-proxy's DaemonSet does not exclude the label (the pod would stay).
# A failure after the label undoes it (node-handback.sh's steps): Pulumi records nothing for a failed
# create, so nothing else would. Idempotent: a labelled node whose agent already resolved KPR "true"
# is left alone.
#
# Environment: NODE (required); KUBECONFIG, KUBECTL_CONTEXT; CILIUM_NAMESPACE, CILIUM_POD_SELECTOR,
# KUBE_PROXY_NAMESPACE, KUBE_PROXY_DAEMONSET, KUBE_PROXY_POD_SELECTOR, MIGRATED_LABEL, WAIT_TIMEOUT.
# stdout: one JSON line (ok, node, changed, agentPod). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-handover
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name NODE KUBE_PROXY_DAEMONSET

kc get node "$NODE" -o json >"$workdir/node.json" 2>"$workdir/err" || fail "node $NODE: $(tr '\n' ' ' <"$workdir/err")"
labelled="$(jq -r --arg l "$MIGRATED_LABEL" '.metadata.labels[$l] // ""' "$workdir/node.json")"
if [[ "$labelled" == true ]] && [[ "$(agent_exec "$NODE" cat /tmp/cilium/config-map/kube-proxy-replacement 2>/dev/null)" == true ]]; then
    log "$NODE is labelled and its agent already resolved kube-proxy-replacement=true; nothing to do"
    jq -cn --arg node "$NODE" --arg pod "$(agent_pod "$NODE")" '{ok: true, node: $node, changed: false, agentPod: $pod}'
    exit 0
fi

# kube-proxy must leave the node when it is labelled, or the node would run both after the restart.
if kc -n "$KUBE_PROXY_NAMESPACE" get daemonset "$KUBE_PROXY_DAEMONSET" -o json >"$workdir/ds.json" 2>/dev/null; then
    jq -e --arg l "$MIGRATED_LABEL" '
        (.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms // []) as $terms
        | ($terms | length) > 0
          and ($terms | all((.matchExpressions // []) | any(.key == $l and .operator == "NotIn" and (.values | index("true")))))' \
        "$workdir/ds.json" >/dev/null \
        || fail "daemonset/$KUBE_PROXY_DAEMONSET does not keep kube-proxy off nodes labelled $MIGRATED_LABEL=true; the kube-proxy-label-affinity step must run first"
fi

old_agent="$(agent_pod "$NODE")" || fail "no single Cilium agent pod on $NODE"

hand_back() {
    log "handing $NODE back to kube-proxy"
    kc label node "$NODE" "${MIGRATED_LABEL}-" >&2 || return 1
    local deadline=$((SECONDS + WAIT_TIMEOUT)) pod
    until pod="$(kube_proxy_pods "$NODE" | head -n1)" && [[ -n "$pod" ]] \
        && kc -n "$KUBE_PROXY_NAMESPACE" wait --for=condition=Ready "pod/$pod" --timeout="${WAIT_TIMEOUT}s" >&2; do
        ((SECONDS < deadline)) || return 1
        sleep 2
    done
    local current
    current="$(agent_pod "$NODE")" || return 1
    kc -n "$CILIUM_NAMESPACE" delete pod "$current" --wait=true >&2 || return 1
    wait_agent_ready "$NODE" "$current" >/dev/null
}
on_failure hand_back

log "labelling $NODE $MIGRATED_LABEL=true"
kc label node "$NODE" "${MIGRATED_LABEL}=true" --overwrite >&2 || fail "could not label $NODE"

deadline=$((SECONDS + WAIT_TIMEOUT))
while [[ -n "$(kube_proxy_pods "$NODE" terminating-too)" ]]; do
    ((SECONDS < deadline)) || fail "kube-proxy is still on $NODE after ${WAIT_TIMEOUT}s"
    log "waiting for kube-proxy to leave $NODE"
    sleep 2
done

log "restarting the Cilium agent on $NODE ($old_agent) so it re-reads its config"
kc -n "$CILIUM_NAMESPACE" delete pod "$old_agent" --wait=true >&2 || fail "could not delete $old_agent"
new_agent="$(wait_agent_ready "$NODE" "$old_agent")" || fail "no Ready Cilium agent on $NODE within ${WAIT_TIMEOUT}s"

undo_hook=""
log "$NODE: kube-proxy gone, agent $new_agent Ready"
jq -cn --arg node "$NODE" --arg pod "$new_agent" '{ok: true, node: $node, changed: true, agentPod: $pod}'
