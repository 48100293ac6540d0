#!/usr/bin/env bash
# pending-gate.sh: before any node moves, proves the pending CiliumNodeConfig overrides the release's
# final values on every node not yet labelled, read-only. Reports exist of CiliumNodeConfig overrides
# not taking effect (kubernetes/kops#17269; one stored version of Cilium's resolver merges v2
# CiliumNodeConfigs before cilium-config, so cilium-config would win): this is where that shows,
# while kube-proxy still serves every node. Per agent on an unlabelled node it requires `cilium-dbg
# status` mode False, the resolved kube-proxy-replacement "false" and config-sources naming
# cilium-node-config:CILIUM_NAMESPACE/PENDING_NODE_CONFIG.
# Environment: PENDING_NODE_CONFIG (required); KUBECONFIG, KUBECTL_CONTEXT, CILIUM_NAMESPACE,
# CILIUM_POD_SELECTOR, MIGRATED_LABEL.
# stdout: one JSON line (ok, checked[]). stderr: progress.
set -euo pipefail

readonly SCRIPT=pending-gate
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name PENDING_NODE_CONFIG

kc get nodes -o json >"$workdir/nodes.json" || fail "could not list nodes"
mapfile -t pending < <(jq -r --arg l "$MIGRATED_LABEL" '.items[] | select((.metadata.labels[$l] // "") != "true") | .metadata.name' "$workdir/nodes.json")
problems=()
for node in "${pending[@]}"; do
    mode="$(agent_exec "$node" cilium-dbg status -o json 2>/dev/null | jq -r '."kube-proxy-replacement".mode // "False"')" || mode="unreadable"
    resolved="$(agent_exec "$node" cat /tmp/cilium/config-map/kube-proxy-replacement 2>/dev/null)" || resolved="unreadable"
    sources="$(agent_exec "$node" cat /tmp/cilium/config-map/config-sources 2>/dev/null)" || sources="unreadable"
    [[ "$mode" == False ]] || problems+=("$node: KPR mode $mode")
    [[ "$resolved" == false ]] || problems+=("$node: resolved kube-proxy-replacement '$resolved'")
    [[ ",$sources," == *",cilium-node-config:${CILIUM_NAMESPACE}/${PENDING_NODE_CONFIG},"* ]] \
        || problems+=("$node: config-sources '$sources' do not include the pending CiliumNodeConfig")
done
if ((${#problems[@]} > 0)); then
    fail "the pending CiliumNodeConfig ${CILIUM_NAMESPACE}/${PENDING_NODE_CONFIG} does not keep KPR off: $(printf '%s; ' "${problems[@]}")no node is touched; see README 'Per-node migration: how Cilium resolves its config'"
fi
log "every agent on an unmigrated node runs without KPR from the pending CiliumNodeConfig: ${pending[*]:-none}"
printf '%s\n' "${pending[@]}" | jq -R 'select(length > 0)' | jq -sc '{ok: true, checked: .}'
