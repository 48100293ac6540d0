#!/usr/bin/env bash
# node-services.sh: NODE's agent serves Services, read-only. In the node's cilium-agent container,
# `cilium-dbg service list -o json` must hold the `kubernetes` Service's ClusterIP frontend (read from
# the API) with at least one backend, and, if the cluster has a NodePort Service, a NodePort frontend
# with a backend; that is the table its eBPF programs answer from on that node.
# Environment: NODE (required); KUBECONFIG, KUBECTL_CONTEXT, CILIUM_NAMESPACE, CILIUM_POD_SELECTOR.
# stdout: one JSON line (ok, node, clusterIP, nodePort). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-services
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

NODE="${NODE:-}"
need_name NODE

cluster_ip="$(kc -n default get service kubernetes -o json | jq -r '.spec.clusterIP')" || fail "could not read Service default/kubernetes"
node_port="$(kc get services -A -o json | jq -r '[.items[] | select(.spec.type == "NodePort") | .spec.ports[].nodePort] | first // empty')" \
    || fail "could not list Services"
agent_exec "$NODE" cilium-dbg service list -o json >"$workdir/services.json" 2>"$workdir/err" \
    || fail "cilium-dbg service list on $NODE: $(tr '\n' ' ' <"$workdir/err")"

jq -e --arg ip "$cluster_ip" 'any(.[]; .spec["frontend-address"].ip == $ip and .spec["frontend-address"].port == 443 and ((.spec["backend-addresses"] // []) | length) > 0)' \
    "$workdir/services.json" >/dev/null || fail "the agent on $NODE does not serve the kubernetes ClusterIP $cluster_ip:443 with a backend"
if [[ -n "$node_port" ]]; then
    jq -e --argjson port "$node_port" 'any(.[]; .spec.flags.type == "NodePort" and .spec["frontend-address"].port == $port and ((.spec["backend-addresses"] // []) | length) > 0)' \
        "$workdir/services.json" >/dev/null || fail "the agent on $NODE does not serve NodePort $node_port with a backend"
fi
log "$NODE serves ClusterIP $cluster_ip:443${node_port:+ and NodePort $node_port}"
jq -cn --arg node "$NODE" --arg ip "$cluster_ip" --arg port "$node_port" '{ok: true, node: $node, clusterIP: $ip, nodePort: (if $port == "" then null else ($port | tonumber) end)}'
