#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# cluster-lib.sh: the prelude every cluster-side script shares. Run as a file, a script sources
# it; embedded as command text, the source line is replaced by this text
# (components/commands/scripts.ts), so each command stays one self-contained script.
#
# Expects SCRIPT, the script's name for messages. Provides:
#   log MESSAGE            progress on stderr
#   fail MESSAGE           logs, prints {"ok":false,"error":...} as the last stdout line, exits 1
#   summary_printed=true   a script that prints its own summary before `exit 1` sets this first
#   undo_hook=FUNCTION     set by a script once it has changed the cluster: if the script then fails
#                          (fail, or any failing command), FUNCTION runs with the reason first, puts
#                          back what this run changed, and says how that went in undo_outcome, which
#                          ends the error. A failed create leaves nothing in Pulumi's state, so
#                          `pulumi destroy` could not undo it: a step completes or undoes itself.
#   need_name, need_seconds, need_selector   (commands/scripts/env-checks.sh)
#   the defaults of the environment keys the cluster scripts read (below)
#   kubectl_cmd, helm_cmd  arrays pointed at KUBECTL_CONTEXT when it is set
#   kc ARGS, hm ARGS       kubectl / helm in namespace $KC_NAMESPACE (the script sets it), through tool
#   live_agents PODS_JSON  "POD NODE" for every pod of a pod list that is not being deleted
#   for_each_agent FILE FUNCTION   FUNCTION POD NODE for each line of FILE (from live_agents);
#                          their stdout, one JSON line per agent, is the function's stdout
#   agent_exec_to NS POD SECONDS FILE CMD...   runs CMD in the pod's cilium-agent container, its
#                          stdout in FILE; on failure agent_exec_error says why (kubectl's last line)
#   KPR_STATUS_JQ          how to read an agent's `cilium-dbg status -o json` (see below)
#   agent_kpr_result NS POD NODE SECONDS   one Cilium agent's KPR status as a JSON line
#   tool CMD...            runs CMD (kubectl, helm, timeout kubectl ...) keeping its stderr, so a
#                          failure is reported in the tool's own words: by tool_error, and by the
#                          exit trap when the failure ends the script
#   tool_error             the last failed tool call's reason (its last stderr line)
#   wait_rollout NS KIND/NAME SECONDS   waits for a DaemonSet/Deployment rollout; on failure
#                          rollout_error says why (kubectl's reason, or the timeout)
#   workdir                a private temporary directory, removed on exit
#   CANARY_ANNOTATION      where kube-proxy-exclude.sh keeps kube-proxy's pre-canary affinity
#   canary_exclusion_active FILE   true if the DaemonSet JSON in FILE is kept off canary nodes
#   MANAGED_BY_LABEL       label (value cilium-kpr-migration) on every object this program creates
#   created_by_us FILE     true if the object JSON in FILE carries that label and the
#                          cilium-kpr-migration/purpose annotation: only such ConfigMaps are ever
#                          adopted, overwritten or deleted at the backup/snapshot names
#
# Every script ends with one JSON summary line on stdout, failures included: `fail` prints it, and
# the EXIT trap prints {"ok":false,"error":...} when anything else (a kubectl call under set -e)
# ends the script with a non-zero status.
#
# Cluster identity: with CLUSTER_UID set (the program records the kube-system namespace's UID when
# the stack is first created and passes it to every cluster step, so it is stored in each step's
# state and used by its delete too), the script refuses to run against a cluster whose kube-system
# UID differs. pulumi-command runs a delete with the operator's current environment plus the stored
# one (pulumi-command v1.2.1 provider/pkg/provider/local/commandOutputs.go run: os.Environ() then
# in.Environment), so without a pinned context a destroy would act on whatever cluster is current.
log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
summary_printed=false
undo_hook=""
undo_outcome=""
# Runs the undo hook once (never from within itself); its own failures are reported in undo_outcome.
run_undo() {
    local hook="$undo_hook"
    undo_hook=""
    if [[ -n "$hook" ]]; then "$hook" "$1" || true; fi
}
print_failure() {
    local error="$1${undo_outcome:+. ${undo_outcome}}"
    if [[ -n "$undo_outcome" ]]; then log "$undo_outcome"; fi
    summary_printed=true
    jq -cn --arg error "$error" '{ok: false, error: $error}' || printf '{"ok":false,"error":"%s failed; see stderr"}\n' "$SCRIPT"
}
fail() {
    log "ERROR: $1"
    run_undo "$1"
    print_failure "$1"
    exit 1
}
# shellcheck source=SCRIPTDIR/../../commands/scripts/env-checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../commands/scripts/env-checks.sh"

# The defaults of the cluster steps' environment (each script's header says which keys it reads): a
# key left unset or empty gets its default here, "" for one the program always passes (required).
: "${CILIUM_NAMESPACE:=}" "${CILIUM_RELEASE:=cilium}" "${CILIUM_CHART:=cilium}" "${CILIUM_CHART_VERSION:=}"
: "${CILIUM_REPOSITORY:=https://helm.cilium.io/}" "${CILIUM_VALUES_JSON:=}" "${UPGRADE_FROM:=}"
: "${CILIUM_DS:=cilium}" "${CILIUM_OPERATOR:=cilium-operator}" "${AGENT_SELECTOR:=k8s-app=cilium}"
: "${PREFLIGHT_RELEASE:=cilium-preflight}" "${SNAPSHOT_CONFIGMAP:=}"
: "${KUBE_PROXY_NAMESPACE:=kube-system}" "${KUBE_PROXY_DAEMONSET:=kube-proxy}" "${KUBE_PROXY_CONFIGMAP:=kube-proxy}"
: "${KUBE_PROXY_BACKUP_CONFIGMAP:=}" "${KUBE_PROXY_POD_SELECTOR:=k8s-app=kube-proxy}" "${KUBEADM_BACKUP_CONFIGMAP:=}"
: "${ROLLOUT_TIMEOUT:=300}" "${POD_GONE_TIMEOUT:=180}" "${EXEC_TIMEOUT:=60}" "${PREPULL_TIMEOUT:=600}" "${MIGRATED_LABEL:=}"

live_agents() {
    jq -r '.items[] | select(.metadata.deletionTimestamp == null) | "\(.metadata.name) \(.spec.nodeName // "unscheduled")"' "$1"
}
for_each_agent() {
    local pod node
    while read -r pod node; do
        "$2" "$pod" "$node"
    done <"$1"
}
agent_exec_error=""
agent_exec_to() {
    local namespace=$1 pod=$2 exec_timeout=$3 out=$4
    shift 4
    if timeout "$exec_timeout" "${kubectl_cmd[@]}" -n "$namespace" exec -c cilium-agent "$pod" -- \
        "$@" >"$out" 2>"$workdir/exec.err" </dev/null; then
        return 0
    fi
    agent_exec_error="$(tail -n 1 "$workdir/exec.err")"
    return 1
}

# KPR_STATUS_JQ reads `cilium-dbg status -o json` into {mode, socketLB, nodePort, active}: mode "True"
# with socket LB and NodePort enabled, false booleans being omitted by the agent. It is the text of
# KPR_STATUS_JQ in components/ciliumVersions/ciliumVersions.ts, where the version-dependent shapes
# live (test/cilium-versions.test.ts holds the two equal).
# shellcheck disable=SC2016 # a jq program: $kpr is jq's variable
readonly KPR_STATUS_JQ='(if type == "object" then .["kube-proxy-replacement"] else null end) as $kpr | {mode: ($kpr.mode // null), socketLB: ($kpr.features.socketLB.enabled == true), nodePort: ($kpr.features.nodePort.enabled == true)} | .active = (.mode == "True" and .socketLB and .nodePort)'

# agent_kpr_result NAMESPACE POD NODE EXEC_TIMEOUT
# The per-agent KPR check of kpr-gate.sh (also run by the drift check, components/drift/):
# prints one JSON line for the agent through KPR_STATUS_JQ. ok is true only when mode, socket LB
# and NodePort all hold; checked is false when the status could not be read at all (exec failed, or not JSON).
agent_kpr_result() {
    local namespace=$1 pod=$2 node=$3 exec_timeout=$4
    if ! agent_exec_to "$namespace" "$pod" "$exec_timeout" "$workdir/status.json" cilium-dbg status -o json; then
        jq -cn --arg pod "$pod" --arg node "$node" --arg reason "cilium-dbg status failed: ${agent_exec_error}" \
            '{pod: $pod, node: $node, ok: false, checked: false, problem: $reason}'
        return 0
    fi
    if ! jq -c --arg pod "$pod" --arg node "$node" "(${KPR_STATUS_JQ}) as \$kpr"'
        | {pod: $pod, node: $node, checked: true, mode: ($kpr.mode // "absent"), socketLB: $kpr.socketLB, nodePort: $kpr.nodePort}
        | .ok = $kpr.active' \
        "$workdir/status.json" 2>/dev/null; then
        jq -cn --arg pod "$pod" --arg node "$node" \
            '{pod: $pod, node: $node, ok: false, checked: false, problem: "cilium-dbg status did not print JSON"}'
    fi
}

readonly CANARY_ANNOTATION=cilium-kpr-migration/original-affinity
canary_exclusion_active() {
    jq -e --arg a "$CANARY_ANNOTATION" '(.metadata.annotations // {}) | has($a)' "$1" >/dev/null
}
readonly MANAGED_BY_LABEL=app.kubernetes.io/managed-by
readonly MANAGED_BY=cilium-kpr-migration
readonly PURPOSE_ANNOTATION=cilium-kpr-migration/purpose
created_by_us() {
    jq -e --arg l "$MANAGED_BY_LABEL" --arg v "$MANAGED_BY" --arg a "$PURPOSE_ANNOTATION" \
        '(.metadata.labels // {})[$l] == $v and ((.metadata.annotations // {}) | has($a))' "$1" >/dev/null
}
not_ours() {
    printf 'configmap/%s in %s was not created by this program (it lacks label %s=%s and annotation %s)' \
        "$1" "$2" "$MANAGED_BY_LABEL" "$MANAGED_BY" "$PURPOSE_ANNOTATION"
}

kubectl_cmd=(kubectl)
helm_cmd=(helm)
if [[ -n "${KUBECTL_CONTEXT:-}" ]]; then
    kubectl_cmd+=(--context "$KUBECTL_CONTEXT")
    helm_cmd+=(--kube-context "$KUBECTL_CONTEXT")
fi
KC_NAMESPACE=""
kc() { tool "${kubectl_cmd[@]}" -n "${KC_NAMESPACE:?the script sets KC_NAMESPACE before calling kc}" "$@"; }
hm() { tool "${helm_cmd[@]}" -n "${KC_NAMESPACE:?the script sets KC_NAMESPACE before calling hm}" "$@"; }

workdir="$(mktemp -d)"
tool_error=""
failed_command=""
tool() {
    local status=0
    "$@" 2>"$workdir/tool.err" || status=$?
    cat "$workdir/tool.err" >&2
    if ((status == 0)); then
        rm -f "$workdir/tool-error"
        return 0
    fi
    tool_error="$(sed '/^[[:space:]]*$/d' "$workdir/tool.err" | tail -n 1)"
    if [[ -z "$tool_error" ]]; then
        tool_error="exit status ${status}"
        if ((status == 124)); then tool_error="no answer in time (killed by timeout)"; fi
    fi
    # A file, so the reason survives the subshell of $(...) or a pipeline.
    printf '%s: %s\n' "${*}" "$tool_error" >"$workdir/tool-error"
    return "$status"
}
on_error() {
    if [[ -z "$failed_command" ]]; then failed_command="$1"; fi
}
on_exit() {
    local status=$? reason
    if ((status != 0)) && [[ "$summary_printed" != true ]]; then
        if [[ -s "$workdir/tool-error" ]]; then
            reason="$(cat "$workdir/tool-error")"
        else
            reason="failed (exit status ${status}) at: ${failed_command:-an unknown command}"
        fi
        log "ERROR: $reason"
        run_undo "$reason"
        print_failure "$reason"
    fi
    rm -rf "$workdir"
}
set -o errtrace
trap 'on_error "$BASH_COMMAND"' ERR
trap on_exit EXIT

# wait_rollout NAMESPACE KIND/NAME SECONDS: 0 once rolled out. kubectl's `rollout status` refuses a
# DaemonSet with updateStrategy OnDelete at once ("rollout status is only available for RollingUpdate
# strategy type", kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go), so for those the
# status is polled with the same rule (generation observed, updated == available == desired).
rollout_error=""
wait_rollout() {
    local namespace="$1" ref="$2" seconds="$3" deadline
    rollout_error=""
    if [[ "$ref" == daemonset/* ]]; then
        if ! tool "${kubectl_cmd[@]}" -n "$namespace" get "$ref" -o json >"$workdir/rollout.json"; then
            rollout_error="$tool_error"
            return 1
        fi
        if [[ "$(jq -r '.spec.updateStrategy.type // "RollingUpdate"' "$workdir/rollout.json")" == OnDelete ]]; then
            deadline=$((SECONDS + seconds))
            while true; do
                if jq -e '.status as $s | (.metadata.generation // 0) <= ($s.observedGeneration // 0)
                    and ($s.updatedNumberScheduled // 0) >= ($s.desiredNumberScheduled // 0)
                    and ($s.numberAvailable // 0) >= ($s.desiredNumberScheduled // 0)' "$workdir/rollout.json" >/dev/null; then
                    return 0
                fi
                if ((SECONDS >= deadline)); then
                    rollout_error="did not roll out within ${seconds}s ($(jq -r '.status as $s | "updateStrategy OnDelete: \($s.updatedNumberScheduled // 0) of \($s.desiredNumberScheduled // 0) pods run the current template, \($s.numberAvailable // 0) available; OnDelete replaces a pod only when it is deleted"' "$workdir/rollout.json"))"
                    return 1
                fi
                sleep 2
                if ! tool "${kubectl_cmd[@]}" -n "$namespace" get "$ref" -o json >"$workdir/rollout.json"; then
                    rollout_error="$tool_error"
                    return 1
                fi
            done
        fi
    fi
    # `timeout` bounds the wait even if kubectl ignores its own --timeout (e.g. a hung connection).
    if tool timeout "$((seconds + 30))" "${kubectl_cmd[@]}" -n "$namespace" rollout status "$ref" --timeout="${seconds}s" >&2; then
        return 0
    fi
    if [[ "$tool_error" == *"timed out waiting for the condition"* ]]; then
        rollout_error="did not roll out within ${seconds}s"
    else
        rollout_error="kubectl rollout status failed: ${tool_error}"
    fi
    return 1
}

# The cluster this step belongs to (see above). kubectl_cmd is final here: scripts never change it.
if [[ -n "${CLUSTER_UID:-}" ]]; then
    tool "${kubectl_cmd[@]}" get namespace kube-system -o json >"$workdir/kube-system.json" \
        || fail "cannot read namespace kube-system to check which cluster this is: ${tool_error}"
    actual_uid="$(jq -r '.metadata.uid // ""' "$workdir/kube-system.json")"
    if [[ "$actual_uid" != "$CLUSTER_UID" ]]; then
        where="the current kubeconfig context"
        if [[ -n "${KUBECTL_CONTEXT:-}" ]]; then where="context ${KUBECTL_CONTEXT}"; fi
        fail "wrong cluster: this step belongs to the cluster whose kube-system namespace has UID ${CLUSTER_UID}, but ${where} reaches one with UID ${actual_uid:-unknown}; nothing was changed. Point KUBECONFIG/KUBECTL_CONTEXT (or cluster.context in the stack) at the cluster this stack migrated"
    fi
fi
