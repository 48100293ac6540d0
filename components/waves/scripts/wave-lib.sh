#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# wave-lib.sh: the prelude the node-by-node (wave) cluster scripts share. Sourced as a file when
# run directly; inlined in place of the source line when embedded (components/commands/scripts.ts).
#
# Expects SCRIPT (name for messages). Provides:
#   log MSG / fail MSG     progress on stderr / {"ok":false,"error":MSG} as the last stdout line, exit 1
#   need_name, need_seconds, need_selector   (commands/scripts/env-checks.sh)
#   kc ARGS                kubectl (with --context when KUBECTL_CONTEXT is set)
#   kp ARGS                kc in kube-proxy's namespace (KUBE_PROXY_NAMESPACE)
#   workdir                private temporary directory, removed on exit
#   on_failure CMD         a function run once by fail (and by an unexpected exit) before it reports:
#                          a failed create is not recorded in Pulumi state, so a script that has
#                          changed the cluster undoes itself there
#   agent_pod NODE         name of the Cilium agent pod on NODE (fails unless exactly one)
#   agent_exec NODE ARGS   runs ARGS in that pod's cilium-agent container
#   wait_agent_ready NODE OLD_POD  waits for an agent pod other than OLD_POD to be Ready on NODE
#   kube_proxy_pods NODE [terminating-too]   names of kube-proxy pods on NODE, one a line
log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
undo_hook=""
on_failure() { undo_hook="$1"; }
fail() {
    log "ERROR: $1"
    local message="$1" hook="$undo_hook"
    undo_hook=""
    if [[ -n "$hook" ]]; then
        if "$hook" >&2; then message="$message (undone: $hook)"; else message="$message (undoing it failed too: $hook; see the log above)"; fi
    fi
    jq -cn --arg error "$message" '{ok: false, error: $error}' || true
    exit 1
}
# shellcheck source=SCRIPTDIR/../../commands/scripts/env-checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../commands/scripts/env-checks.sh"

kubectl_cmd=(kubectl)
if [[ -n "${KUBECTL_CONTEXT:-}" ]]; then kubectl_cmd+=(--context "$KUBECTL_CONTEXT"); fi
kc() { "${kubectl_cmd[@]}" "$@"; }

workdir="$(mktemp -d)"
on_exit() {
    local status=$?
    if ((status != 0)) && [[ -n "$undo_hook" ]]; then
        local hook="$undo_hook"
        undo_hook=""
        "$hook" >&2 || log "undoing failed too: $hook"
        jq -cn --arg error "stopped (exit $status); undo attempted: $hook" '{ok: false, error: $error}' || true
    fi
    rm -rf "$workdir"
}
trap on_exit EXIT

# The cluster this step belongs to: with CLUSTER_UID set (the program passes the kube-system
# namespace UID recorded by its cluster-identity step, so it is stored in this step's state and its
# delete uses it too), refuse a cluster whose kube-system UID differs (as kubeproxy/scripts/cluster-lib.sh).
if [[ -n "${CLUSTER_UID:-}" ]]; then
    actual_uid="$(kc get namespace kube-system -o json | jq -r '.metadata.uid // ""')" \
        || fail "cannot read namespace kube-system to check which cluster this is"
    [[ "$actual_uid" == "$CLUSTER_UID" ]] \
        || fail "wrong cluster: this step belongs to the cluster whose kube-system namespace has UID ${CLUSTER_UID}, but ${KUBECTL_CONTEXT:-the current context} reaches one with UID ${actual_uid:-unknown}; nothing was changed"
fi

NODE="${NODE:-}"
CILIUM_NAMESPACE="${CILIUM_NAMESPACE:-kube-system}"
CILIUM_POD_SELECTOR="${CILIUM_POD_SELECTOR:-k8s-app=cilium}"
KUBE_PROXY_NAMESPACE="${KUBE_PROXY_NAMESPACE:-kube-system}"
KUBE_PROXY_DAEMONSET="${KUBE_PROXY_DAEMONSET:-kube-proxy}"
KUBE_PROXY_POD_SELECTOR="${KUBE_PROXY_POD_SELECTOR:-k8s-app=kube-proxy}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-300}"
MIGRATED_LABEL="${MIGRATED_LABEL:-cilium-kpr.io/kpr-migrated}"
need_seconds WAIT_TIMEOUT
kp() { kc -n "$KUBE_PROXY_NAMESPACE" "$@"; }

agent_pod() {
    kc -n "$CILIUM_NAMESPACE" get pods -l "$CILIUM_POD_SELECTOR" --field-selector "spec.nodeName=$1" -o json \
        | jq -r '[.items[] | select(.metadata.deletionTimestamp == null) | .metadata.name] | if length == 1 then .[0] else error("\(length) agent pods") end'
}
agent_exec() {
    local node="$1" pod
    shift
    pod="$(agent_pod "$node")" || return 1
    kc -n "$CILIUM_NAMESPACE" exec "$pod" -c cilium-agent -- "$@"
}
wait_agent_ready() {
    # Waits for the DaemonSet to start an agent pod other than OLD_POD on NODE, then for that pod to be
    # Ready (one `kubectl wait`, with what is left of WAIT_TIMEOUT).
    local node="$1" old="$2" deadline=$((SECONDS + WAIT_TIMEOUT)) pod
    while true; do
        pod="$(agent_pod "$node" 2>/dev/null || true)"
        if [[ -n "$pod" && "$pod" != "$old" ]]; then break; fi
        ((SECONDS < deadline)) || return 1
        sleep 2
    done
    kc -n "$CILIUM_NAMESPACE" wait --for=condition=Ready "pod/$pod" --timeout="$((deadline > SECONDS ? deadline - SECONDS : 1))s" >&2 || return 1
    printf '%s\n' "$pod"
}
kube_proxy_pods() {
    # With a second argument "terminating-too", pods being deleted count as well: a terminating
    # kube-proxy still runs until its grace period ends.
    kc -n "$KUBE_PROXY_NAMESPACE" get pods -l "$KUBE_PROXY_POD_SELECTOR" --field-selector "spec.nodeName=$1" -o json \
        | jq -r --arg all "${2:-}" '.items[] | select($all == "terminating-too" or .metadata.deletionTimestamp == null) | .metadata.name'
}
