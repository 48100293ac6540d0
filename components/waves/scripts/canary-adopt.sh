#!/usr/bin/env bash
# canary-adopt.sh: a stack whose single-shot canary already ran (migration.canaryNodes) moves to
# waves with the canary as wave 1. Its canary nodes already run on KPR alone: kube-proxy is kept off
# them by name (kube-proxy-exclude.sh) and their agents run with the release's KPR values. Before the
# pending CiliumNodeConfig exists (it selects every node without the migrated label, and the release
# upgrade that follows restarts every agent), each canary node gets the label, so its agent keeps KPR.
# Refuses a node that was not migrated by the canary (a kube-proxy pod on it, or an agent without
# KPR): then migration.canaryNodes should be dropped and the node migrated by its wave.
# No delete: handing the node back (node-handback.sh) removes the label.
# Environment: CANARY_NODES (space-separated, required); KUBECONFIG, KUBECTL_CONTEXT, CILIUM_NAMESPACE,
# CILIUM_POD_SELECTOR, KUBE_PROXY_NAMESPACE, KUBE_PROXY_POD_SELECTOR, MIGRATED_LABEL.
# stdout: one JSON line (ok, labelled[]). stderr: progress.
set -euo pipefail

readonly SCRIPT=canary-adopt
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

read -r -a canary <<<"${CANARY_NODES:-}"
((${#canary[@]} > 0)) || fail "CANARY_NODES must name at least one node"
for NODE in "${canary[@]}"; do
    need_name NODE
    [[ -z "$(kube_proxy_pods "$NODE" terminating-too)" ]] \
        || fail "$NODE still runs kube-proxy, so the canary did not migrate it: remove migration.canaryNodes and let its wave migrate it"
    resolved="$(agent_exec "$NODE" cat /tmp/cilium/config-map/kube-proxy-replacement 2>/dev/null)" || resolved="unreadable"
    [[ "$resolved" == true ]] || fail "the agent on $NODE runs with kube-proxy-replacement '$resolved', so the canary did not migrate it"
done
for NODE in "${canary[@]}"; do
    log "labelling canary node $NODE $MIGRATED_LABEL=true"
    kc label node "$NODE" "${MIGRATED_LABEL}=true" --overwrite >&2 || fail "could not label $NODE"
done
printf '%s\n' "${canary[@]}" | jq -R . | jq -sc '{ok: true, labelled: .}'
