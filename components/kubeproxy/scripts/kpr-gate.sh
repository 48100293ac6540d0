#!/usr/bin/env bash
# kpr-gate.sh
#
# Proves that Cilium has taken over Service handling before kube-proxy may be removed.
# Runs on the operator's machine. Fails (exit 1) unless, within the timeouts:
#   - the agent DaemonSet and the operator Deployment have finished rolling out;
#   - the number of agent pods equals the DaemonSet's desiredNumberScheduled (and is > 0);
#   - EVERY agent reports, in `cilium-dbg status -o json` under "kube-proxy-replacement":
#     mode "True", features.socketLB.enabled true and features.nodePort.enabled true.
#     Cilium omits false booleans from that JSON, so an absent field counts as false.
# On failure it names each pod (and node) and what it reported.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   CILIUM_NAMESPACE   namespace of the Cilium release (required).
#   CILIUM_DS          agent DaemonSet. Default cilium.
#   CILIUM_OPERATOR    operator Deployment. Default cilium-operator.
#   AGENT_SELECTOR     label selector of agent pods. Default k8s-app=cilium.
#   ROLLOUT_TIMEOUT    seconds to wait for each rollout. Default 300.
#   EXEC_TIMEOUT       seconds allowed for each `kubectl exec`. Default 60.
# stdout: one JSON summary line (ok, desired, pods[]). stderr: progress and findings.
set -euo pipefail

readonly SCRIPT=kpr-gate
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name CILIUM_NAMESPACE CILIUM_DS CILIUM_OPERATOR
need_seconds ROLLOUT_TIMEOUT EXEC_TIMEOUT
need_selector AGENT_SELECTOR
KC_NAMESPACE="$CILIUM_NAMESPACE"

# A failure says kubectl's own reason (NotFound, OnDelete, ...), not a timeout that never happened.
rolled_out_or_fail() {
    log "waiting up to ${ROLLOUT_TIMEOUT}s for $1 to roll out"
    wait_rollout "$CILIUM_NAMESPACE" "$1" "$ROLLOUT_TIMEOUT" || fail "$1 in namespace ${CILIUM_NAMESPACE}: ${rollout_error}; kube-proxy stays"
}
rolled_out_or_fail "daemonset/${CILIUM_DS}"
rolled_out_or_fail "deployment/${CILIUM_OPERATOR}"

desired="$(kc get daemonset "$CILIUM_DS" -o json | jq '.status.desiredNumberScheduled // 0')"
kc get pods -l "$AGENT_SELECTOR" -o json >"$workdir/pods.json"
# Pods already being deleted (left over from the rollout) are not counted and not asked.
live_agents "$workdir/pods.json" >"$workdir/pods.txt"
count="$(wc -l <"$workdir/pods.txt" | tr -d ' ')"
if [[ "$desired" -eq 0 ]]; then fail "daemonset/${CILIUM_DS} schedules no pods; nothing proves Cilium serves Services"; fi
if [[ "$count" -ne "$desired" ]]; then
    fail "found ${count} agent pods (${AGENT_SELECTOR}) but daemonset/${CILIUM_DS} wants ${desired}; every node must be checked"
fi

kpr_of() { agent_kpr_result "$CILIUM_NAMESPACE" "$1" "$2" "$EXEC_TIMEOUT"; }
for_each_agent "$workdir/pods.txt" kpr_of >"$workdir/results.jsonl"

jq -r 'select(.ok | not)
    | "pod \(.pod) on node \(.node): "
      + (.problem // "kube-proxy-replacement mode=\(.mode), socketLB.enabled=\(.socketLB), nodePort.enabled=\(.nodePort)")' \
    "$workdir/results.jsonl" >"$workdir/problems.txt"
summary="$(jq -sc --argjson desired "$desired" '{ok: all(.[]; .ok), desired: $desired, pods: .}' "$workdir/results.jsonl")"
if [[ -s "$workdir/problems.txt" ]]; then
    while read -r line; do log "NOT READY: $line"; done <"$workdir/problems.txt"
    log "ERROR: kube-proxy replacement is not active on every agent; kube-proxy stays"
    summary_printed=true
    printf '%s\n' "$summary"
    exit 1
fi
log "all ${count} agents report kube-proxy replacement True with socketLB and nodePort enabled"
printf '%s\n' "$summary"
