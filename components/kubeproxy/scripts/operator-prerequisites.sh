#!/usr/bin/env bash
# operator-prerequisites.sh
#
# Runs on the operator's machine before anything touches the cluster: checks that the
# tools the other scripts use are on PATH and that the kubeconfig context reaches a
# healthy API server. Changes nothing.
#
# Environment:
#   KUBECONFIG       (optional) standard kubectl variable.
#   KUBECTL_CONTEXT  (optional) kubeconfig context, passed as --context.
#   NEEDS_HELM       (optional) 1 when helm is needed too (values snapshot/restore). Default 0.
#   REQUEST_TIMEOUT  (optional) seconds allowed for each API request. Default 15.
# stdout: one JSON summary line. stderr: progress and errors.
set -euo pipefail

readonly SCRIPT=operator-prerequisites
log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
# Printed without jq: jq may be the thing that is missing.
fail() {
    log "ERROR: $1"
    local text="${1//\\/\\\\}"
    printf '{"ok":false,"error":"%s"}\n' "${text//\"/\\\"}"
    exit 1
}

NEEDS_HELM="${NEEDS_HELM:-0}"
REQUEST_TIMEOUT="${REQUEST_TIMEOUT:-15}"
[[ "$NEEDS_HELM" =~ ^[01]$ ]] || fail "NEEDS_HELM must be 0 or 1 (got '${NEEDS_HELM}')"
[[ "$REQUEST_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || fail "REQUEST_TIMEOUT must be a number of seconds (got '${REQUEST_TIMEOUT}')"

tools=(kubectl jq)
if [[ "$NEEDS_HELM" == 1 ]]; then tools+=(helm); fi
missing=()
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null 2>&1; then missing+=("$tool"); fi
done
if [[ "${#missing[@]}" -gt 0 ]]; then
    fail "missing on PATH: ${missing[*]} (install them on the machine that runs pulumi)"
fi

kubectl_cmd=(kubectl --request-timeout="${REQUEST_TIMEOUT}s")
if [[ -n "${KUBECTL_CONTEXT:-}" ]]; then
    kubectl_cmd+=(--context "$KUBECTL_CONTEXT")
    context="$KUBECTL_CONTEXT"
else
    context="$(kubectl config current-context 2>/dev/null)" || fail "no KUBECTL_CONTEXT given and the kubeconfig has no current context"
fi
log "checking context '${context}'"

if ! version_json="$("${kubectl_cmd[@]}" version -o json 2>"${TMPDIR:-/tmp}/$SCRIPT.$$.err")"; then
    reason="$(tail -n 1 "${TMPDIR:-/tmp}/$SCRIPT.$$.err" 2>/dev/null || true)"
    rm -f "${TMPDIR:-/tmp}/$SCRIPT.$$.err"
    fail "cannot reach the API server of context '${context}': ${reason}"
fi
rm -f "${TMPDIR:-/tmp}/$SCRIPT.$$.err"
server_version="$(jq -r '.serverVersion.gitVersion // empty' <<<"$version_json")"
[[ -n "$server_version" ]] || fail "context '${context}' answered without a server version"

readyz="$("${kubectl_cmd[@]}" get --raw /readyz 2>&1)" || fail "API server of context '${context}' is not ready: ${readyz}"
[[ "$readyz" == ok* ]] || fail "API server of context '${context}' is not ready: ${readyz}"

helm_version=""
if [[ "$NEEDS_HELM" == 1 ]]; then
    helm_version="$(helm version --short 2>/dev/null)" || fail "helm is on PATH but 'helm version' fails"
fi

log "ok: kubectl reaches ${server_version} through '${context}'"
jq -cn --arg context "$context" --arg server "$server_version" --arg helm "$helm_version" \
    '{ok: true, context: $context, serverVersion: $server} + (if $helm == "" then {} else {helmVersion: $helm} end)'
