#!/usr/bin/env bash
# cilium-upgrade-preflight.sh
#
# Runs before the Cilium Helm release changes, on the operator's machine. It reads the version the
# release runs now and checks it against the path the program planned from config
# (components/cilium/upgradePath.ts):
#
#   same-version (UPGRADE_FROM empty or equal to CILIUM_CHART_VERSION): the release must run
#     CILIUM_CHART_VERSION (or not exist yet). Otherwise the run stops: the release would be
#     upgraded to another chart with reuse-values, which Cilium's upgrade guide says is only safe
#     with an unchanged chart version. Nothing is pre-pulled.
#   chart-upgrade (UPGRADE_FROM differs): the release must run UPGRADE_FROM (or already run
#     CILIUM_CHART_VERSION: an earlier run upgraded it, nothing left to do). Every value the
#     operator set on the running release (`helm get values`) must be among the values the program
#     sends (CILIUM_VALUES_JSON), since the upgrade does not reuse values. Then the new image is
#     pre-pulled as the guide's "Running pre-flight check" does, in its Helm form:
#       helm install cilium-preflight <chart> --version <new> --set preflight.enabled=true
#         --set agent=false --set operator.enabled=false (+ k8sServiceHost/Port when kube-proxy-free)
#     given here as one values file (the program's preflight.* values are passed on, e.g. a
#     private-registry preflight.image). The script waits until a pod of DaemonSet
#     cilium-pre-flight-check is Ready on every node that runs a Cilium agent (and the guide's cilium-pre-flight-check
#     Deployment, which validates policies, is Ready when the chart renders it), then uninstalls
#     the pre-flight release and waits for its pods to go. Helm refuses to install objects another
#     release owns, so the pre-flight release can never take over the real one's objects.
# On any failure after the install, the pre-flight release is uninstalled again: the script leaves
# the cluster as it found it (it has no delete step; nothing it creates outlives it).
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; passed as --context / --kube-context.
#   CILIUM_NAMESPACE      namespace of the Cilium release (required).
#   CILIUM_RELEASE        Helm release name. Default cilium.
#   CILIUM_CHART          chart name. Default cilium.
#   CILIUM_CHART_VERSION  the chart version this run deploys (required).
#   CILIUM_REPOSITORY     https:// or oci:// chart repository. Default https://helm.cilium.io/.
#   UPGRADE_FROM          the version the release runs before this run (cilium.upgradeFrom); empty: same version.
#   CILIUM_VALUES_JSON    the values the release will get, as JSON (required for a chart upgrade).
#   AGENT_SELECTOR        label selector of the agent pods. Default k8s-app=cilium.
#   PREFLIGHT_RELEASE     name of the pre-flight release. Default cilium-preflight.
#   PREPULL_TIMEOUT       seconds to wait for the pre-pull. Default 600.
# stdout: one JSON summary line (ok, path, running, target, prepulled, nodes). stderr: progress.
set -euo pipefail

readonly SCRIPT=cilium-upgrade-preflight
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
# shellcheck source=SCRIPTDIR/../../cilium/scripts/chart-source.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../cilium/scripts/chart-source.sh"

need_name CILIUM_NAMESPACE CILIUM_RELEASE CILIUM_CHART
need_selector AGENT_SELECTOR
need_name PREFLIGHT_RELEASE
readonly VERSION_RE='^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'
[[ "$CILIUM_CHART_VERSION" =~ $VERSION_RE ]] || fail "CILIUM_CHART_VERSION must be an exact chart version (got '${CILIUM_CHART_VERSION}')"
[[ -z "$UPGRADE_FROM" || "$UPGRADE_FROM" =~ $VERSION_RE ]] || fail "UPGRADE_FROM must be an exact chart version (got '${UPGRADE_FROM}')"
[[ "$CILIUM_REPOSITORY" =~ ^(https?|oci)://[^[:space:]]+$ ]] || fail "CILIUM_REPOSITORY must be an https:// or oci:// URL"
need_seconds PREPULL_TIMEOUT
[[ "$PREFLIGHT_RELEASE" != "$CILIUM_RELEASE" ]] || fail "PREFLIGHT_RELEASE must differ from CILIUM_RELEASE"

KC_NAMESPACE="$CILIUM_NAMESPACE"
readonly PREFLIGHT_DS=cilium-pre-flight-check # templates/cilium-preflight/daemonset.yaml
readonly PREFLIGHT_SELECTOR=k8s-app=cilium-pre-flight-check

summary() {
    jq -cn --arg path "$1" --arg running "$2" --argjson prepulled "$3" --argjson nodes "$4" --arg target "$CILIUM_CHART_VERSION" \
        '{ok: true, path: $path, running: (if $running == "" then null else $running end), target: $target,
          prepulled: $prepulled, nodes: $nodes}'
}

# Sets release_version to the chart version release $1 runs, from `helm list` (its chart column is
# <chart>-<version>); "" if absent. Called as a plain command, never in $(...), so a helm failure
# ends the script instead of reading as "absent". The six state flags list every state in Helm 3
# and 4 alike (see cilium-values-snapshot.sh).
release_version=""
read_release_version() {
    hm list --deployed --failed --pending --superseded --uninstalling --uninstalled --max 0 \
        --filter "^${1//./\\.}\$" -o json >"$workdir/list.json"
    release_version="$(jq -r --arg name "$1" --arg chart "$CILIUM_CHART" \
        '[.[] | select(.name == $name and .status != "uninstalled")] | first // empty | .chart | ltrimstr($chart + "-")' "$workdir/list.json")"
}

read_release_version "$CILIUM_RELEASE"
running="$release_version"
[[ -z "$running" || "$running" =~ $VERSION_RE ]] || fail "cannot read the chart version of release ${CILIUM_RELEASE} (its chart column reads '$(jq -r '.[0].chart // ""' "$workdir/list.json")')"

if [[ -z "$UPGRADE_FROM" || "$UPGRADE_FROM" == "$CILIUM_CHART_VERSION" ]]; then
    if [[ -z "$running" ]]; then
        log "release ${CILIUM_RELEASE} does not exist yet; it is installed at ${CILIUM_CHART_VERSION} (nothing to pre-pull for)"
        summary install "" false 0
        exit 0
    fi
    if [[ "$running" != "$CILIUM_CHART_VERSION" ]]; then
        fail "release ${CILIUM_RELEASE} runs chart ${running}, but cilium.chartVersion is ${CILIUM_CHART_VERSION} and cilium.upgradeFrom is not set: this run would upgrade the chart with reuse-values. To upgrade, set cilium.upgradeFrom to ${running} (the release then gets the full values after an image pre-pull); to stay, set cilium.chartVersion to ${running}"
    fi
    log "release ${CILIUM_RELEASE} runs ${running}, the configured chart version: a values-only change, no image pre-pull"
    summary same-version "$running" false 0
    exit 0
fi

# Chart upgrade.
if [[ -z "$running" ]]; then
    fail "release ${CILIUM_RELEASE} does not exist in ${CILIUM_NAMESPACE}, but cilium.upgradeFrom is ${UPGRADE_FROM}: remove cilium.upgradeFrom to install ${CILIUM_CHART_VERSION}"
fi
if [[ "$running" == "$CILIUM_CHART_VERSION" ]]; then
    log "release ${CILIUM_RELEASE} already runs ${CILIUM_CHART_VERSION} (an earlier run upgraded it); no pre-pull (you may remove cilium.upgradeFrom)"
    summary chart-upgrade-done "$running" false 0
    exit 0
fi
if [[ "$running" != "$UPGRADE_FROM" ]]; then
    fail "release ${CILIUM_RELEASE} runs chart ${running}, not ${UPGRADE_FROM} as cilium.upgradeFrom says; set cilium.upgradeFrom to ${running}"
fi

[[ -n "$CILIUM_VALUES_JSON" ]] || fail "CILIUM_VALUES_JSON is required for a chart upgrade"
printf '%s' "$CILIUM_VALUES_JSON" >"$workdir/values.json"
jq -e 'type == "object"' "$workdir/values.json" >/dev/null 2>&1 || fail "CILIUM_VALUES_JSON is not a JSON object"

# Dotted paths of the leaves (scalars, lists, empty maps) of a values document.
# shellcheck disable=SC2016 # jq program
readonly LEAVES='def leaves(p): if type == "object" and length > 0 then (to_entries[] as $e | $e.value | leaves(p + [$e.key])) else p end;
    [leaves([]) | map(tostring) | join(".")] | sort'
hm get values "$CILIUM_RELEASE" -o json >"$workdir/live-values.raw"
jq 'if . == null then {} else . end' "$workdir/live-values.raw" | jq -c "$LEAVES" >"$workdir/live.keys"
jq -c "$LEAVES" "$workdir/values.json" >"$workdir/program.keys"
missing="$(jq -rn --slurpfile live "$workdir/live.keys" --slurpfile program "$workdir/program.keys" \
    '($live[0] - $program[0]) | join(", ")')"
if [[ -n "$missing" ]]; then
    fail "release ${CILIUM_RELEASE} has values set that this program does not send: ${missing}. A chart upgrade does not reuse values (Cilium upgrade guide), so they would fall back to the ${CILIUM_CHART_VERSION} chart defaults: add them to cilium.extraValues (or the typed keys), then run again"
fi
log "every value set on release ${CILIUM_RELEASE} (${running}) is among the values for ${CILIUM_CHART_VERSION}"

cilium_chart_source

# The guide's --set flags as a values file, plus what kube-proxy-free clusters need and the
# program's own preflight.* values (image overrides).
jq '{preflight: ((.preflight // {}) + {enabled: true}), agent: false, operator: {enabled: false}}
    + (if .k8sServiceHost then {k8sServiceHost} else {} end)
    + (if .k8sServicePort then {k8sServicePort} else {} end)' "$workdir/values.json" >"$workdir/preflight-values.json"

uninstall_preflight() {
    log "uninstalling the pre-flight release ${PREFLIGHT_RELEASE}"
    hm uninstall "$PREFLIGHT_RELEASE" >&2 || return 1
    local deadline=$((SECONDS + PREPULL_TIMEOUT))
    while true; do
        kc get daemonset "$PREFLIGHT_DS" -o name --ignore-not-found >"$workdir/left.txt" || return 1
        kc get pods -l "$PREFLIGHT_SELECTOR" -o name >>"$workdir/left.txt" || return 1
        if [[ ! -s "$workdir/left.txt" ]]; then return 0; fi
        if ((SECONDS >= deadline)); then
            log "pre-flight pods are still terminating after ${PREPULL_TIMEOUT}s"
            return 1
        fi
        sleep 2
    done
}
# cluster-lib's undo hook: a failure while the pre-flight release exists removes it again, so the
# step leaves the cluster as it found it (a failed create leaves nothing in Pulumi's state).
undo_preflight() {
    if uninstall_preflight; then
        undo_outcome="the pre-flight release ${PREFLIGHT_RELEASE} was removed again"
    else
        undo_outcome="the pre-flight release ${PREFLIGHT_RELEASE} could not be removed (${tool_error:-pods still terminating}); remove it with: helm uninstall ${PREFLIGHT_RELEASE} -n ${CILIUM_NAMESPACE}"
    fi
}

read_release_version "$PREFLIGHT_RELEASE"
if [[ -n "$release_version" ]]; then
    # Only a pre-flight release (the guide's three values) is removed; any other release at that name is refused.
    hm get values "$PREFLIGHT_RELEASE" -o json >"$workdir/leftover-values.json"
    jq -e '.preflight.enabled == true and .agent == false and .operator.enabled == false' "$workdir/leftover-values.json" >/dev/null \
        || fail "release ${PREFLIGHT_RELEASE} exists in ${CILIUM_NAMESPACE} and is not a Cilium pre-flight release (preflight.enabled=true, agent=false, operator.enabled=false); refusing to remove it. Remove it yourself or set another name"
    log "a pre-flight release ${PREFLIGHT_RELEASE} is left from an earlier run; removing it first"
    uninstall_preflight || fail "could not remove the leftover pre-flight release ${PREFLIGHT_RELEASE}: ${tool_error:-pods still terminating}"
fi

log "pre-pulling Cilium ${CILIUM_CHART_VERSION} on every node: helm install ${PREFLIGHT_RELEASE} (preflight.enabled=true, agent=false, operator.enabled=false)"
undo_hook=undo_preflight
hm install "$PREFLIGHT_RELEASE" "$chart_ref" --version "$CILIUM_CHART_VERSION" "${repo_args[@]}" -f "$workdir/preflight-values.json" >&2 \
    || fail "helm install of the pre-flight release failed; the release ${CILIUM_RELEASE} was not changed"

# The nodes that need the image: those running a Cilium agent (the guide: as many READY pre-flight
# pods as Cilium pods). A pod counts as Ready by its Ready condition (kubelet's pod status).
kc get pods -l "$AGENT_SELECTOR" -o json \
    | jq -c '[.items[] | select(.metadata.deletionTimestamp == null) | .spec.nodeName // empty] | unique' >"$workdir/agent-nodes.json"
agents="$(jq 'length' "$workdir/agent-nodes.json")"
[[ "$agents" -gt 0 ]] || fail "no Cilium agent pod (${AGENT_SELECTOR}) in ${CILIUM_NAMESPACE}; cannot tell which nodes need the image"
# shellcheck disable=SC2016 # jq program
readonly READY_NODES='[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True")) | .spec.nodeName // empty] | unique'
deadline=$((SECONDS + PREPULL_TIMEOUT))
while true; do
    kc get pods -l "$PREFLIGHT_SELECTOR" -o json >"$workdir/pf-pods.json"
    jq -c "$READY_NODES" "$workdir/pf-pods.json" >"$workdir/ready-nodes.json"
    missing="$(jq -rn --slurpfile need "$workdir/agent-nodes.json" --slurpfile have "$workdir/ready-nodes.json" '$need[0] - $have[0] | join(" ")')"
    kc get deployment "$PREFLIGHT_DS" -o json --ignore-not-found >"$workdir/pf-deploy.json"
    deploy_ready=true
    if [[ -s "$workdir/pf-deploy.json" ]] && ! jq -e '(.status.readyReplicas // 0) >= (.spec.replicas // 1)' "$workdir/pf-deploy.json" >/dev/null; then
        deploy_ready=false
    fi
    if [[ -z "$missing" && "$deploy_ready" == true ]]; then break; fi
    if ((SECONDS >= deadline)); then
        # Each agent node without a Ready pre-flight pod, with what its pod is waiting for.
        jq -r --arg missing "$missing" '($missing | split(" ")) as $nodes | [.items[] | select(.spec.nodeName as $n | $nodes | index($n))
            | {node: .spec.nodeName, text: "\(.metadata.name): \([.status.containerStatuses[]?.state.waiting.reason // empty] | join(",") | if . == "" then (.status.phase // "?") else . end)"}]
            | group_by(.node) | map({node: .[0].node, text: (map(.text) | join(", "))}) as $found
            | $nodes[] as $n | ($found | map(select(.node == $n)) | first // {text: "no pre-flight pod"}) | "\($n) (\(.text))"' \
            "$workdir/pf-pods.json" >"$workdir/not-ready.txt" || true
        detail="$(paste -sd ';' "$workdir/not-ready.txt")"
        [[ "$deploy_ready" == true ]] \
            || detail="${detail:+${detail}; }the pre-flight Deployment that validates network policies is not Ready (kubectl -n ${CILIUM_NAMESPACE} logs deploy/${PREFLIGHT_DS})"
        fail "the ${CILIUM_CHART_VERSION} image is not Ready on every agent node after ${PREPULL_TIMEOUT}s: ${detail}; the release ${CILIUM_RELEASE} was not changed"
    fi
    log "waiting for the pre-flight pods on ${agents} agent nodes${missing:+ (not yet: ${missing})}"
    sleep 3
done
nodes="$agents"
log "the ${CILIUM_CHART_VERSION} image is Ready on all ${nodes} agent nodes"
undo_hook=""
uninstall_preflight || fail "the pre-pull succeeded but the pre-flight release ${PREFLIGHT_RELEASE} could not be removed: ${tool_error:-pods still terminating}; remove it with: helm uninstall ${PREFLIGHT_RELEASE} -n ${CILIUM_NAMESPACE}"
summary chart-upgrade "$running" true "$nodes"
