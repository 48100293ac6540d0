#!/usr/bin/env bash
# node-services.sh: NODE serves a ClusterIP and a NodePort, proven by opening TCP connections on it.
#
# The connections are opened from NODE's Cilium agent container: the agent pod runs with
# `hostNetwork: true` (chart templates/cilium-agent/daemonset.yaml), so this is the node's own
# network namespace, and its image has bash and coreutils' timeout (cilium-runtime: ubuntu:24.04 plus
# iproute2, iptables, ipset, kmod, ca-certificates, jq; images/runtime/Dockerfile,
# install-runtime-deps.sh; no curl or nc), hence bash's /dev/tcp. A connection that completes its
# handshake proves that whatever serves Services on the node (the KPR agent's socket LB, which
# translates connect() calls of every process, bpf/bpf_sock.c) sent it to a live backend:
#  1. the `kubernetes` Service's ClusterIP and port (always there, backed by the API servers);
#  2. a NodePort on each of the node's InternalIPs of the Service's family. The NodePort belongs to a
#     check Service this script creates and deletes again: `cilium-kpr-node-check-<hash of NODE>` in
#     CILIUM_NAMESPACE, type NodePort, no selector, with one EndpointSlice that copies the API
#     servers' endpoints from the `kubernetes` Service (so it needs no pod or image), owned by the
#     Service (garbage-collected with it). Because the Service is created after the node's kube-proxy
#     left, only the node's agent can have programmed it: kube-proxy's leftover rules cannot answer.
#     It exists for the seconds the check takes; a leftover of an interrupted run is replaced.
# Each connection is retried until WAIT_TIMEOUT (a new Service takes a moment to be programmed),
# each attempt bounded by CONNECT_TIMEOUT seconds. Nothing else is changed.
# Environment: NODE (required); KUBECONFIG, KUBECTL_CONTEXT, CILIUM_NAMESPACE, CILIUM_POD_SELECTOR,
#   WAIT_TIMEOUT, CONNECT_TIMEOUT (default 5).
# stdout: one JSON line (ok, node, clusterIP, nodePort, nodeAddresses). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-services
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name NODE
CONNECT_TIMEOUT="${CONNECT_TIMEOUT:-5}"
[[ "$CONNECT_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || fail "CONNECT_TIMEOUT must be a whole number of seconds"
check_service="cilium-kpr-node-check-$(printf '%s' "$NODE" | sha256sum | cut -c1-12)"

# connect IP PORT: one TCP handshake from the node's network namespace, retried until WAIT_TIMEOUT.
# On failure the last attempt's words are in $workdir/connect.err.
connect() {
    local deadline=$((SECONDS + WAIT_TIMEOUT)) status
    while true; do
        status=0
        # $1/$2 inside the single quotes are the inner bash's arguments, not this script's.
        # shellcheck disable=SC2016
        agent_exec "$NODE" timeout "$CONNECT_TIMEOUT" bash -c 'exec 3<>"/dev/tcp/$1/$2"' node-check "$1" "$2" \
            >/dev/null 2>"$workdir/connect.err" || status=$?
        ((status == 0)) && return 0
        ((status == 124)) && printf 'no answer within %ss\n' "$CONNECT_TIMEOUT" >>"$workdir/connect.err"
        ((SECONDS < deadline)) || return 1
        sleep 2
    done
}
# The connection's own words (bash's, or the timeout), not kubectl's "command terminated with exit code N".
last_error() {
    { grep -v -e '^$' -e '^command terminated with exit code' "$workdir/connect.err" || tail -n 1 "$workdir/connect.err"; } | tail -n 1
}

remove_check_service() {
    kc -n "$CILIUM_NAMESPACE" delete endpointslice "$check_service" --ignore-not-found >/dev/null \
        && kc -n "$CILIUM_NAMESPACE" delete service "$check_service" --ignore-not-found >/dev/null
}

kc -n default get service kubernetes -o json >"$workdir/kubernetes.json" || fail "could not read Service default/kubernetes"
read -r cluster_ip cluster_port family < <(jq -r '.spec.ports as $p | [.spec.clusterIP, ((($p | map(select(.name == "https"))) + $p)[0].port),
    (.spec.ipFamilies[0] // "IPv4")] | map(tostring) | join(" ")' "$workdir/kubernetes.json") || true
[[ -n "${family:-}" && "$cluster_port" =~ ^[0-9]+$ ]] || fail "Service default/kubernetes has no ClusterIP and port"

log "connecting to the kubernetes ClusterIP $cluster_ip:$cluster_port from $NODE"
connect "$cluster_ip" "$cluster_port" \
    || fail "$NODE does not serve the kubernetes ClusterIP $cluster_ip:$cluster_port: $(last_error)"

kc get node "$NODE" -o json >"$workdir/node.json" || fail "could not read node $NODE"
mapfile -t addresses < <(jq -r --arg family "$family" '.status.addresses // [] | .[] | select(.type == "InternalIP")
    | .address | select((contains(":") and $family == "IPv6") or (contains(":") | not) and $family == "IPv4")' "$workdir/node.json")
((${#addresses[@]} > 0)) || fail "node $NODE has no $family InternalIP in .status.addresses to reach a NodePort on"

kc -n default get endpointslices -l kubernetes.io/service-name=kubernetes -o json >"$workdir/api-slices.json" \
    || fail "could not read the kubernetes Service's EndpointSlices"
jq -c --arg family "$family" '[.items[] | select(.addressType == $family)] | {
        endpoints: [.[].endpoints[] | select(.conditions.ready != false) | {addresses: .addresses}],
        ports: [.[].ports[]? | select(.name == "https")] | unique | .[:1]}' "$workdir/api-slices.json" >"$workdir/api.json"
jq -e '(.endpoints | length) > 0 and (.ports | length) == 1' "$workdir/api.json" >/dev/null \
    || fail "the kubernetes Service has no ready $family endpoint with an https port to back the check Service"

on_failure remove_check_service
remove_check_service || fail "could not remove the leftover check Service $CILIUM_NAMESPACE/$check_service"
jq -n --arg name "$check_service" --arg ns "$CILIUM_NAMESPACE" --arg node "$NODE" --arg family "$family" '{
    apiVersion: "v1", kind: "Service",
    metadata: {name: $name, namespace: $ns,
        labels: {"app.kubernetes.io/managed-by": "cilium-kpr", "cilium-kpr.io/node-check": "true"},
        annotations: {"cilium-kpr.io/node-check-for": $node}},
    spec: {type: "NodePort", ipFamilies: [$family], ipFamilyPolicy: "SingleStack",
        ports: [{name: "https", protocol: "TCP", port: 443}]}}' >"$workdir/service.json"
kc create -f "$workdir/service.json" -o json >"$workdir/created.json" 2>"$workdir/err" \
    || fail "could not create the check Service $CILIUM_NAMESPACE/$check_service: $(tr '\n' ' ' <"$workdir/err")"
node_port="$(jq -r '.spec.ports[0].nodePort' "$workdir/created.json")"
jq -n --slurpfile api "$workdir/api.json" --slurpfile svc "$workdir/created.json" --arg family "$family" '$svc[0] as $s | {
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
    metadata: {name: $s.metadata.name, namespace: $s.metadata.namespace,
        labels: {"kubernetes.io/service-name": $s.metadata.name, "endpointslice.kubernetes.io/managed-by": "cilium-kpr.io"},
        ownerReferences: [{apiVersion: "v1", kind: "Service", name: $s.metadata.name, uid: $s.metadata.uid}]},
    addressType: $family, endpoints: $api[0].endpoints, ports: $api[0].ports}' >"$workdir/slice.json"
kc create -f "$workdir/slice.json" >/dev/null 2>"$workdir/err" \
    || fail "could not create the check Service's EndpointSlice: $(tr '\n' ' ' <"$workdir/err")"

for address in "${addresses[@]}"; do
    log "connecting to NodePort $address:$node_port (check Service $CILIUM_NAMESPACE/$check_service) from $NODE"
    connect "$address" "$node_port" \
        || fail "$NODE does not serve NodePort $node_port on its address $address (check Service $CILIUM_NAMESPACE/$check_service): $(last_error)"
done

on_failure ""
remove_check_service || fail "the check passed, but the check Service $CILIUM_NAMESPACE/$check_service could not be removed"
log "$NODE serves ClusterIP $cluster_ip:$cluster_port and NodePort $node_port on ${addresses[*]}"
printf '%s\n' "${addresses[@]}" | jq -cR --arg node "$NODE" --arg ip "$cluster_ip" --argjson port "$node_port" -s \
    '{ok: true, node: $node, clusterIP: $ip, nodePort: $port, nodeAddresses: (split("\n") | map(select(. != "")))}'
