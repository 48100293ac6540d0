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
