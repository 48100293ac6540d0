#!/usr/bin/env bash
# node-drain.sh: cordons NODE and drains it before its handover, so pods with long-lived
# connections move to another node first. `kubectl drain` evicts through the Eviction API, which
# refuses an eviction that would break a PodDisruptionBudget ("Cannot evict pod as it would violate
# the pod's disruption budget"; kubectl retries until --timeout), so budgets are honoured, never
# bypassed (no --disable-eviction, no --force). DaemonSet pods (Cilium, kube-proxy) stay
# (--ignore-daemonsets); emptyDir data of evicted pods is lost (--delete-emptydir-data), as any
# eviction loses it. A drain that does not finish in DRAIN_TIMEOUT uncordons the node again.
# Its delete (and the uncordon step's create) is node-uncordon.sh.
# Environment: NODE (required); DRAIN_TIMEOUT (seconds, default 600); KUBECONFIG, KUBECTL_CONTEXT.
# stdout: one JSON line (ok, node). stderr: progress.
set -euo pipefail

readonly SCRIPT=node-drain
# shellcheck source=SCRIPTDIR/wave-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wave-lib.sh"

need_name NODE
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-600}"
need_seconds DRAIN_TIMEOUT

was_cordoned="$(kc get node "$NODE" -o json | jq -r '.spec.unschedulable // false')" || fail "node $NODE not found"
uncordon_again() { [[ "$was_cordoned" == true ]] || kc uncordon "$NODE" >&2; }
on_failure uncordon_again

log "draining $NODE (PodDisruptionBudgets honoured, at most ${DRAIN_TIMEOUT}s)"
kc drain "$NODE" --ignore-daemonsets --delete-emptydir-data --timeout="${DRAIN_TIMEOUT}s" >&2 \
    || fail "could not drain $NODE within ${DRAIN_TIMEOUT}s (a PodDisruptionBudget or a pod without a controller may block it; see above)"
undo_hook=""
jq -cn --arg node "$NODE" '{ok: true, node: $node}'
