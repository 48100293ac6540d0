#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# cluster-lib.sh: the prelude every cluster-side script shares. Run as a file, a script sources
# it; embedded as command text, the source line is replaced by this text
# (components/commands/scriptFile.ts), so each command stays one self-contained script.
#
# Expects SCRIPT, the script's name for messages. Provides:
#   log MESSAGE            progress on stderr
#   fail MESSAGE           logs, prints {"ok":false,"error":...} as the last stdout line, exits 1
#   need_name VAR          fails unless $VAR is a Kubernetes object name
#   agent_kpr_result NS POD NODE SECONDS   one Cilium agent's KPR status as a JSON line
#   kubectl_cmd, helm_cmd  arrays pointed at KUBECTL_CONTEXT when it is set
#   workdir                a private temporary directory, removed on exit
#   CANARY_ANNOTATION      where kube-proxy-exclude.sh keeps kube-proxy's pre-canary affinity
#   canary_exclusion_active FILE   true if the DaemonSet JSON in FILE is kept off canary nodes
log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
fail() {
    log "ERROR: $1"
    jq -cn --arg error "$1" '{ok: false, error: $error}' || true
    exit 1
}
need_name() {
    [[ "${!1:-}" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || fail "$1 must be a Kubernetes object name (got '${!1:-}')"
}

# agent_kpr_result NAMESPACE POD NODE EXEC_TIMEOUT
# The per-agent KPR check of kpr-gate.sh (also run by the drift check, components/drift/):
# prints one JSON line for the agent. `cilium-dbg status -o json` reports, under
# "kube-proxy-replacement", mode "True" and features.socketLB/nodePort.enabled; Cilium omits
# false booleans, so an absent field counts as false. ok is true only when all three hold;
# checked is false when the status could not be read at all (exec failed, or not JSON).
agent_kpr_result() {
    local namespace=$1 pod=$2 node=$3 exec_timeout=$4 reason
    if ! timeout "$exec_timeout" "${kubectl_cmd[@]}" -n "$namespace" exec -c cilium-agent "$pod" -- \
        cilium-dbg status -o json >"$workdir/status.json" 2>"$workdir/exec.err" </dev/null; then
        reason="$(tail -n 1 "$workdir/exec.err")"
        jq -cn --arg pod "$pod" --arg node "$node" --arg reason "cilium-dbg status failed: ${reason}" \
            '{pod: $pod, node: $node, ok: false, checked: false, problem: $reason}'
        return 0
    fi
    if ! jq -c --arg pod "$pod" --arg node "$node" '
        (if type == "object" then .["kube-proxy-replacement"] else null end) as $kpr
        | {pod: $pod, node: $node, checked: true,
           mode: ($kpr.mode // "absent"),
           socketLB: ($kpr.features.socketLB.enabled == true),
           nodePort: ($kpr.features.nodePort.enabled == true)}
        | .ok = (.mode == "True" and .socketLB and .nodePort)' \
        "$workdir/status.json" 2>/dev/null; then
        jq -cn --arg pod "$pod" --arg node "$node" \
            '{pod: $pod, node: $node, ok: false, checked: false, problem: "cilium-dbg status did not print JSON"}'
    fi
}

readonly CANARY_ANNOTATION=cilium-kpr-migration/original-affinity
canary_exclusion_active() {
    jq -e --arg a "$CANARY_ANNOTATION" '(.metadata.annotations // {}) | has($a)' "$1" >/dev/null
}

kubectl_cmd=(kubectl)
helm_cmd=(helm)
if [[ -n "${KUBECTL_CONTEXT:-}" ]]; then
    kubectl_cmd+=(--context "$KUBECTL_CONTEXT")
    helm_cmd+=(--kube-context "$KUBECTL_CONTEXT")
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
