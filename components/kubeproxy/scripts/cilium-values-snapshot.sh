#!/usr/bin/env bash
# cilium-values-snapshot.sh
#
# Before this program first upgrades the Cilium release, records the values the operator had
# set on it (`helm get values -o json`) in a ConfigMap next to the release, so that
# `pulumi destroy` (cilium-values-restore.sh) can return Cilium to them even if the Pulumi
# state is lost. If the release does not exist yet, that fact is recorded instead.
# An existing snapshot is never overwritten: a re-run reports the stored one and exits 0.
# The snapshot is created with `kubectl create`, so two concurrent runs cannot both write.
#
# Note: the values land in a ConfigMap (readable by whoever may read ConfigMaps in
# CILIUM_NAMESPACE); keep secrets out of Helm values (use existing Secrets instead).
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; passed as --context / --kube-context.
#   CILIUM_NAMESPACE    namespace of the Cilium release (required).
#   CILIUM_RELEASE      Helm release name. Default cilium.
#   SNAPSHOT_CONFIGMAP  name of the snapshot ConfigMap in CILIUM_NAMESPACE (required).
# stdout: one JSON summary line (ok, configMap, created, releasePresent, chart). stderr: progress.
set -euo pipefail

readonly SCRIPT=cilium-values-snapshot
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name CILIUM_NAMESPACE CILIUM_RELEASE SNAPSHOT_CONFIGMAP
KC_NAMESPACE="$CILIUM_NAMESPACE"

report_existing() {
    log "snapshot configmap/${SNAPSHOT_CONFIGMAP} already exists (taken $(jq -r '.data["taken-at"] // "at an unknown time"' "$1")); kept as is"
    jq -c --arg name "$SNAPSHOT_CONFIGMAP" '{ok: true, configMap: $name, created: false,
        releasePresent: (.data["release-present"] == "true"), chart: (.data.chart // null)}' "$1"
}

kc get configmap "$SNAPSHOT_CONFIGMAP" -o json --ignore-not-found >"$workdir/existing.json"
if [[ -s "$workdir/existing.json" ]]; then
    # Only a snapshot this program took is kept as the pre-migration values.
    created_by_us "$workdir/existing.json" \
        || fail "$(not_ours "$SNAPSHOT_CONFIGMAP" "$CILIUM_NAMESPACE"); refusing to take it for the pre-migration values, nothing changed"
    report_existing "$workdir/existing.json"
    exit 0
fi

# helm list (all states) tells "absent" apart from "cannot ask"; helm status would not.
# Every state is named explicitly because `--all` exists only in Helm 3: Helm 4 removed it and lists
# every state by default (helm/helm commit 8a73d9798, pkg/cmd/list.go), while Helm 3 without a state
# flag lists only deployed and failed releases (v3 pkg/action/list.go SetStateMask). These six flags
# exist in both, and list the latest revision of a release in any state (filterLatestReleases runs
# before the state mask).
hm list --deployed --failed --pending --superseded --uninstalling --uninstalled --max 0 \
    --filter "^${CILIUM_RELEASE//./\\.}\$" -o json >"$workdir/releases.json"
jq -c --arg name "$CILIUM_RELEASE" '[.[] | select(.name == $name)] | first // empty' \
    "$workdir/releases.json" >"$workdir/release.json"

if [[ -s "$workdir/release.json" ]]; then
    present=true
    chart="$(jq -r '.chart // ""' "$workdir/release.json")"
    log "release ${CILIUM_RELEASE} (${chart}, $(jq -r '.status // "?"' "$workdir/release.json")) found; saving its values"
    hm get values "$CILIUM_RELEASE" -o json >"$workdir/values.raw"
    # A release without user values prints null.
    jq -c 'if . == null then {} else . end' "$workdir/values.raw" >"$workdir/values.json"
else
    present=false
    chart=""
    log "release ${CILIUM_RELEASE} does not exist in ${CILIUM_NAMESPACE}; recording that (restore will leave Cilium alone)"
    echo '{}' >"$workdir/values.json"
fi

jq -n --arg name "$SNAPSHOT_CONFIGMAP" --arg ns "$CILIUM_NAMESPACE" --arg release "$CILIUM_RELEASE" \
    --arg present "$present" --arg chart "$chart" --arg taken "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --rawfile values "$workdir/values.json" '{
        apiVersion: "v1", kind: "ConfigMap",
        metadata: {name: $name, namespace: $ns,
            labels: {"app.kubernetes.io/managed-by": "cilium-kpr-migration"},
            annotations: {"cilium-kpr-migration/purpose": "Helm values of the Cilium release before the kube-proxy replacement migration; read by cilium-values-restore.sh"}},
        data: {release: $release, "release-present": $present, chart: $chart, "taken-at": $taken,
               "values.json": ($values | rtrimstr("\n"))}}' >"$workdir/snapshot.json"

if ! kc create -f "$workdir/snapshot.json" >&2 2>"$workdir/create.err"; then
    # Lost a race with another run: the first snapshot wins.
    kc get configmap "$SNAPSHOT_CONFIGMAP" -o json --ignore-not-found >"$workdir/existing.json"
    if [[ -s "$workdir/existing.json" ]] && created_by_us "$workdir/existing.json"; then
        report_existing "$workdir/existing.json"
        exit 0
    fi
    fail "could not create configmap/${SNAPSHOT_CONFIGMAP}: $(cat "$workdir/create.err")"
fi

log "snapshot saved in configmap/${SNAPSHOT_CONFIGMAP} (namespace ${CILIUM_NAMESPACE})"
jq -cn --arg name "$SNAPSHOT_CONFIGMAP" --argjson present "$present" --arg chart "$chart" \
    '{ok: true, configMap: $name, created: true, releasePresent: $present, chart: (if $chart == "" then null else $chart end)}'
