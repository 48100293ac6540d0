#!/usr/bin/env bash
# cilium-values-restore.sh
#
# The undo of cilium-values-snapshot.sh (runs on `pulumi destroy`, on the operator's machine,
# after kube-proxy-restore.sh): upgrades the Cilium release back to the values recorded in
# the snapshot ConfigMap (`helm upgrade --reset-values -f snapshot`), waits for the agent
# DaemonSet to roll out, then deletes the snapshot.
# Refuses while kube-proxy is not serving (DaemonSet absent or not fully ready): turning
# kube-proxy replacement off first would leave every Service unserved.
# No snapshot: nothing to do (already restored). Snapshot recording that the release did not
# exist: the release is left alone (never uninstall the CNI) and the snapshot is deleted.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; passed as --context / --kube-context.
#   CILIUM_NAMESPACE     namespace of the Cilium release (required).
#   CILIUM_RELEASE       Helm release name. Default cilium.
#   CILIUM_CHART         chart name. Default cilium.
#   CILIUM_CHART_VERSION exact chart version to upgrade with (required).
#   CILIUM_REPOSITORY    chart repository URL (https://... or oci://...). Default https://helm.cilium.io/.
#   CILIUM_DS            agent DaemonSet. Default cilium.
#   SNAPSHOT_CONFIGMAP   snapshot ConfigMap in CILIUM_NAMESPACE (required).
#   KUBE_PROXY_NAMESPACE Default kube-system.
#   KUBE_PROXY_DAEMONSET Default kube-proxy.
#   ROLLOUT_TIMEOUT      seconds to wait for the agents to roll out. Default 300.
# stdout: one JSON summary line (ok, restored, ...). stderr: progress.
set -euo pipefail

readonly SCRIPT=cilium-values-restore
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
# shellcheck source=SCRIPTDIR/../../cilium/scripts/chart-source.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../cilium/scripts/chart-source.sh"

need_name CILIUM_NAMESPACE CILIUM_RELEASE CILIUM_CHART CILIUM_DS SNAPSHOT_CONFIGMAP KUBE_PROXY_NAMESPACE KUBE_PROXY_DAEMONSET
[[ "$CILIUM_CHART_VERSION" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || fail "CILIUM_CHART_VERSION must be an exact version such as 1.19.0 (got '${CILIUM_CHART_VERSION}')"
[[ "$CILIUM_REPOSITORY" =~ ^(https?|oci)://[^[:space:]]+$ ]] || fail "CILIUM_REPOSITORY must be an https:// or oci:// URL"
need_seconds ROLLOUT_TIMEOUT
KC_NAMESPACE="$CILIUM_NAMESPACE"

kc get configmap "$SNAPSHOT_CONFIGMAP" -o json --ignore-not-found >"$workdir/snapshot.json"
if [[ ! -s "$workdir/snapshot.json" ]]; then
    log "no snapshot configmap/${SNAPSHOT_CONFIGMAP} in ${CILIUM_NAMESPACE}: nothing to restore (already restored?)"
    jq -cn '{ok: true, restored: false, reason: "no snapshot"}'
    exit 0
fi

created_by_us "$workdir/snapshot.json" \
    || fail "$(not_ours "$SNAPSHOT_CONFIGMAP" "$CILIUM_NAMESPACE"); not restoring values from it and not deleting it"

delete_snapshot() {
    kc delete configmap "$SNAPSHOT_CONFIGMAP" --ignore-not-found >&2
}

if [[ "$(jq -r '.data["release-present"] // ""' "$workdir/snapshot.json")" != "true" ]]; then
    log "the snapshot records that release ${CILIUM_RELEASE} did not exist before the migration; leaving the release as it is (the CNI is never uninstalled)"
    delete_snapshot
    jq -cn '{ok: true, restored: false, reason: "release did not exist before the migration"}'
    exit 0
fi
jq -e '.data["values.json"] | fromjson | type == "object"' "$workdir/snapshot.json" >/dev/null \
    || fail "snapshot configmap/${SNAPSHOT_CONFIGMAP} holds no valid values.json; not touching the release"

tool "${kubectl_cmd[@]}" -n "$KUBE_PROXY_NAMESPACE" get daemonset "$KUBE_PROXY_DAEMONSET" -o json --ignore-not-found >"$workdir/kube-proxy.json"
if [[ ! -s "$workdir/kube-proxy.json" ]]; then
    fail "daemonset/${KUBE_PROXY_DAEMONSET} does not exist in ${KUBE_PROXY_NAMESPACE}; restore kube-proxy before turning kube-proxy replacement off"
fi
if canary_exclusion_active "$workdir/kube-proxy.json"; then
    fail "daemonset/${KUBE_PROXY_DAEMONSET} is still kept off the canary nodes (annotation ${CANARY_ANNOTATION}); turning kube-proxy replacement off now would leave them with neither. Put kube-proxy back first with kube-proxy-include.sh"
fi
serving="$(jq -r '.status as $s | if ($s.desiredNumberScheduled // 0) > 0
        and ($s.numberReady // 0) == $s.desiredNumberScheduled
        and ($s.updatedNumberScheduled // 0) == $s.desiredNumberScheduled
        and ($s.observedGeneration // 0) >= (.metadata.generation // 0)
    then "yes" else "ready \($s.numberReady // 0) of \($s.desiredNumberScheduled // 0), updated \($s.updatedNumberScheduled // 0)" end' \
    "$workdir/kube-proxy.json")"
if [[ "$serving" != yes ]]; then
    fail "kube-proxy is not fully rolled out (${serving}); refusing to turn kube-proxy replacement off"
fi

jq -r '.data["values.json"]' "$workdir/snapshot.json" >"$workdir/values.json"
cilium_chart_source
log "upgrading release ${CILIUM_RELEASE} to its pre-migration values (chart ${CILIUM_CHART} ${CILIUM_CHART_VERSION}; before the migration it ran $(jq -r '.data.chart // "?"' "$workdir/snapshot.json"))"
tool "${helm_cmd[@]}" upgrade "$CILIUM_RELEASE" "$chart_ref" --version "$CILIUM_CHART_VERSION" "${repo_args[@]}" \
    -n "$CILIUM_NAMESPACE" --reset-values -f "$workdir/values.json" >&2 \
    || fail "helm upgrade of ${CILIUM_RELEASE} failed: ${tool_error}; snapshot kept"

log "waiting up to ${ROLLOUT_TIMEOUT}s for daemonset/${CILIUM_DS} to roll out"
wait_rollout "$CILIUM_NAMESPACE" "daemonset/${CILIUM_DS}" "$ROLLOUT_TIMEOUT" \
    || fail "daemonset/${CILIUM_DS} after the values were restored: ${rollout_error}; snapshot kept"
delete_snapshot
log "Cilium runs with its pre-migration values again"
jq -cn --arg release "$CILIUM_RELEASE" --arg version "$CILIUM_CHART_VERSION" \
    '{ok: true, restored: true, release: $release, chartVersion: $version}'
