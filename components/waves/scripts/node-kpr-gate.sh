#!/usr/bin/env bash
# node-kpr-gate.sh: proves NODE's agent took the override, read-only.
# Requires in the node's cilium-agent container:
#  - `cilium-dbg status -o json` key kube-proxy-replacement: mode "True", features.socketLB.enabled,
#    features.nodePort.enabled (false booleans are omitted by the agent: absent means false);
#  - the config the agent started with (the init container `config` writes it to
#    /tmp/cilium/config-map, the agent's --config-dir, shared through the pod's `tmp` emptyDir, chart
#    templates/cilium-agent/daemonset.yaml) says kube-proxy-replacement "true" and its config-sources
#    do not name the pending CiliumNodeConfig (PENDING_NODE_CONFIG), which would mean the node is
#    still selected by it.
# Environment: NODE, PENDING_NODE_CONFIG (required); KUBECONFIG, KUBECTL_CONTEXT, CILIUM_NAMESPACE, CILIUM_POD_SELECTOR.
# stdout: one JSON line (ok, node, mode, configSources). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-kpr-gate
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name NODE PENDING_NODE_CONFIG

agent_exec "$NODE" cilium-dbg status -o json >"$workdir/status.json" 2>"$workdir/err" \
    || fail "cilium-dbg status on $NODE: $(tr '\n' ' ' <"$workdir/err")"
resolved="$(agent_exec "$NODE" cat /tmp/cilium/config-map/kube-proxy-replacement 2>"$workdir/err")" \
    || fail "reading the agent's resolved config on $NODE: $(tr '\n' ' ' <"$workdir/err")"
sources="$(agent_exec "$NODE" cat /tmp/cilium/config-map/config-sources 2>"$workdir/err")" \
    || fail "reading the agent's config-sources on $NODE: $(tr '\n' ' ' <"$workdir/err")"

problems="$(jq -r '."kube-proxy-replacement" as $k
    | [ (if ($k.mode // "False") != "True" then "kube-proxy-replacement mode is \($k.mode // "absent"), not True" else empty end),
        (if ($k.features.socketLB.enabled // false) != true then "socket LB is off" else empty end),
        (if ($k.features.nodePort.enabled // false) != true then "NodePort is off" else empty end) ] | join("; ")' "$workdir/status.json")"
[[ "$resolved" == true ]] || problems="${problems:+$problems; }its resolved kube-proxy-replacement is '$resolved', not 'true'"
if [[ ",$sources," == *",cilium-node-config:${CILIUM_NAMESPACE}/${PENDING_NODE_CONFIG},"* ]]; then
    problems="${problems:+$problems; }its config still comes from the pending CiliumNodeConfig ($sources)"
fi
[[ -z "$problems" ]] || fail "the agent on $NODE did not take over from kube-proxy: $problems"

log "$NODE: KPR True with socket LB and NodePort, resolved from: $sources"
jq -cn --arg node "$NODE" --arg sources "$sources" '{ok: true, node: $node, mode: "True", configSources: $sources}'
