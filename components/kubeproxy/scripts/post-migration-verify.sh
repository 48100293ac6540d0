#!/usr/bin/env bash
# post-migration-verify.sh
#
# After kube-proxy is gone: every Cilium agent must list the `kubernetes` Service (namespace
# default) at each of its ClusterIPs on its https port, i.e. every node's eBPF load balancer
# serves the API server. Runs on the operator's machine; changes nothing.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   CILIUM_NAMESPACE   namespace of the Cilium agents (required).
#   CILIUM_DS          agent DaemonSet. Default cilium.
#   AGENT_SELECTOR     label selector of agent pods. Default k8s-app=cilium.
#   EXEC_TIMEOUT       seconds allowed for each `kubectl exec`. Default 60.
# stdout: one JSON summary line (ok, frontends, pods[]). stderr: progress and findings.
set -euo pipefail

readonly SCRIPT=post-migration-verify
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name CILIUM_NAMESPACE CILIUM_DS
need_selector AGENT_SELECTOR
need_seconds EXEC_TIMEOUT
KC_NAMESPACE="$CILIUM_NAMESPACE"

tool "${kubectl_cmd[@]}" -n default get service kubernetes -o json >"$workdir/service.json"
# Dual-stack clusters list one ClusterIP per family; every one must be served.
jq -c '(.spec.clusterIPs // [.spec.clusterIP]) as $ips
    | ([.spec.ports[]? | select(.name == "https") | .port] + [.spec.ports[0].port // 443] | first) as $port
    | [$ips[] | select(. != null and . != "None") | {ip: ., port: $port}]' \
    "$workdir/service.json" >"$workdir/frontends.json"
[[ "$(jq 'length' "$workdir/frontends.json")" -gt 0 ]] || fail "service default/kubernetes has no ClusterIP"
log "expecting frontends $(jq -r 'map("\(.ip):\(.port)") | join(", ")' "$workdir/frontends.json") in every agent"

desired="$(kc get daemonset "$CILIUM_DS" -o json | jq '.status.desiredNumberScheduled // 0')"
kc get pods -l "$AGENT_SELECTOR" -o json >"$workdir/pods.json"
live_agents "$workdir/pods.json" >"$workdir/pods.txt"
count="$(wc -l <"$workdir/pods.txt" | tr -d ' ')"
if [[ "$desired" -eq 0 || "$count" -ne "$desired" ]]; then
    fail "found ${count} agent pods but daemonset/${CILIUM_DS} wants ${desired}; every node must be checked"
fi

# One JSON line per agent: the frontends it lacks, or why it could not be asked.
services_of() {
    local pod=$1 node=$2
    if ! agent_exec_to "$CILIUM_NAMESPACE" "$pod" "$EXEC_TIMEOUT" "$workdir/services.json" cilium-dbg service list -o json; then
        jq -cn --arg pod "$pod" --arg node "$node" --arg reason "cilium-dbg service list failed: ${agent_exec_error}" \
            '{pod: $pod, node: $node, ok: false, problem: $reason}'
        return 0
    fi
    if ! jq -c --arg pod "$pod" --arg node "$node" --slurpfile want "$workdir/frontends.json" '
        [.[]? | .spec["frontend-address"]? // empty | {ip, port}] as $have
        | [$want[0][] | select(. as $w | $have | index([$w]) | not) | "\(.ip):\(.port)"] as $missing
        | {pod: $pod, node: $node, services: ($have | length), missing: $missing, ok: ($missing == [])}' \
        "$workdir/services.json" 2>/dev/null; then
        jq -cn --arg pod "$pod" --arg node "$node" \
            '{pod: $pod, node: $node, ok: false, problem: "cilium-dbg service list did not print a JSON list"}'
    fi
}
for_each_agent "$workdir/pods.txt" services_of >"$workdir/results.jsonl"

summary="$(jq -sc --slurpfile f "$workdir/frontends.json" '{ok: all(.[]; .ok), frontends: $f[0], pods: .}' "$workdir/results.jsonl")"
jq -r 'select(.ok | not) | "pod \(.pod) on node \(.node): " + (.problem // "does not serve \(.missing | join(", ")) (lists \(.services) services)")' \
    "$workdir/results.jsonl" >"$workdir/problems.txt"
if [[ -s "$workdir/problems.txt" ]]; then
    while read -r line; do log "NOT SERVED: $line"; done <"$workdir/problems.txt"
    summary_printed=true
    printf '%s\n' "$summary"
    exit 1
fi
log "all ${count} agents serve the kubernetes Service"
printf '%s\n' "$summary"
