#!/usr/bin/env bash
# node-handback.sh: the delete of node-handover.sh. NODE goes back to kube-proxy, kube-proxy first:
#  1. remove the label MIGRATED_LABEL and wait until a kube-proxy pod is Ready on the node (kube-proxy's
#     DaemonSet must exist: after the last wave it is restored from its backup first, which destroy's
#     order guarantees); the agent still has KPR, whose eBPF hooks take Service traffic before netfilter.
#  2. restart the node's agent: the pending CiliumNodeConfig selects the node again, so the new agent
#     resolves kube-proxy-replacement "false"; wait until Ready and require `cilium-dbg status` to say
#     KPR False.
# Idempotent: an unlabelled node whose agent already runs without KPR is left alone.
#
# Environment: as node-handover.sh.
# stdout: one JSON line (ok, node, changed). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-handback
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name NODE

kpr_mode() { agent_exec "$NODE" cilium-dbg status -o json | jq -r '."kube-proxy-replacement".mode // "False"'; }

kc get node "$NODE" -o json >"$workdir/node.json" 2>"$workdir/err" || fail "node $NODE: $(tr '\n' ' ' <"$workdir/err")"
labelled="$(jq -r --arg l "$MIGRATED_LABEL" '.metadata.labels[$l] // ""' "$workdir/node.json")"
if [[ -z "$labelled" && "$(kpr_mode 2>/dev/null)" == False ]]; then
    log "$NODE is unlabelled and its agent runs without KPR; nothing to do"
    jq -cn --arg node "$NODE" '{ok: true, node: $node, changed: false}'
    exit 0
fi

kc -n "$KUBE_PROXY_NAMESPACE" get daemonset "$KUBE_PROXY_DAEMONSET" -o name >/dev/null 2>&1 \
    || fail "daemonset/$KUBE_PROXY_DAEMONSET is absent: kube-proxy cannot serve $NODE again, so its agent keeps KPR (restore kube-proxy first: destroy the kube-proxy-removal step)"

log "removing $MIGRATED_LABEL from $NODE"
kc label node "$NODE" "${MIGRATED_LABEL}-" >&2 || fail "could not remove the label from $NODE"
deadline=$((SECONDS + WAIT_TIMEOUT))
until pod="$(kube_proxy_pods "$NODE" | head -n1)" && [[ -n "$pod" ]] \
    && kc -n "$KUBE_PROXY_NAMESPACE" wait --for=condition=Ready "pod/$pod" --timeout="${WAIT_TIMEOUT}s" >&2; do
    ((SECONDS < deadline)) || fail "no Ready kube-proxy pod on $NODE after ${WAIT_TIMEOUT}s; its agent keeps KPR (the label is removed)"
    log "waiting for kube-proxy on $NODE"
    sleep 2
done

old_agent="$(agent_pod "$NODE")" || fail "no single Cilium agent pod on $NODE"
log "kube-proxy serves $NODE ($pod); restarting the Cilium agent ($old_agent) without KPR"
kc -n "$CILIUM_NAMESPACE" delete pod "$old_agent" --wait=true >&2 || fail "could not delete $old_agent"
wait_agent_ready "$NODE" "$old_agent" >/dev/null || fail "no Ready Cilium agent on $NODE within ${WAIT_TIMEOUT}s"
mode="$(kpr_mode)" || fail "cilium-dbg status failed on $NODE"
[[ "$mode" == False ]] || fail "the agent on $NODE still reports kube-proxy-replacement $mode: is the pending CiliumNodeConfig there and selecting it?"

log "$NODE is served by kube-proxy again"
jq -cn --arg node "$NODE" '{ok: true, node: $node, changed: true}'
