#!/usr/bin/env bash
# kube-proxy-remove.sh
#
# Removes kube-proxy from the cluster, after kpr-gate.sh has passed. Runs on the operator's
# machine. Before anything is deleted, the DaemonSet and ConfigMap are saved (stripped of
# status and server-set fields) into a backup ConfigMap that kube-proxy-restore.sh reads;
# the backup is read back and compared before the first delete. Both objects are deleted
# (the ConfigMap too: kubeadm upgrades re-create kube-proxy from it), then the script waits
# until no kube-proxy pod is left.
#
# Completes or undoes itself: Pulumi records nothing for a create that fails, so `pulumi destroy`
# would never restore a kube-proxy this step deleted before failing. Once it has deleted anything,
# a failure (pods that do not go, a kubectl error) puts the ConfigMap and DaemonSet back from the
# backup it just wrote and verified, waits for the rollout, and only then exits non-zero, saying
# whether kube-proxy serves again (and deleting the backup if this run created it).
#
# Idempotent: with DaemonSet and ConfigMap both gone it changes nothing and says so. After a
# partial run (say the DaemonSet deleted, the ConfigMap not) the backup keeps the copy of
# whatever is already gone and only the objects still present are refreshed in it.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   KUBE_PROXY_NAMESPACE        Default kube-system.
#   KUBE_PROXY_DAEMONSET        Default kube-proxy.
#   KUBE_PROXY_CONFIGMAP        Default kube-proxy.
#   KUBE_PROXY_BACKUP_CONFIGMAP backup ConfigMap, in KUBE_PROXY_NAMESPACE (required).
#   KUBE_PROXY_POD_SELECTOR     label selector of kube-proxy pods. Default k8s-app=kube-proxy.
#   POD_GONE_TIMEOUT            seconds to wait for the pods to disappear. Default 180.
#   ROLLOUT_TIMEOUT             seconds to wait for kube-proxy to roll out again when a failed
#                               removal puts it back. Default 300.
# stdout: one JSON summary line (ok, changed, backupConfigMap, deleted[]). stderr: progress.
set -euo pipefail

readonly SCRIPT=kube-proxy-remove
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name KUBE_PROXY_NAMESPACE KUBE_PROXY_DAEMONSET KUBE_PROXY_CONFIGMAP KUBE_PROXY_BACKUP_CONFIGMAP
need_selector KUBE_PROXY_POD_SELECTOR
need_seconds POD_GONE_TIMEOUT ROLLOUT_TIMEOUT
if [[ "$KUBE_PROXY_BACKUP_CONFIGMAP" == "$KUBE_PROXY_CONFIGMAP" ]]; then
    fail "KUBE_PROXY_BACKUP_CONFIGMAP must differ from KUBE_PROXY_CONFIGMAP"
fi

KC_NAMESPACE="$KUBE_PROXY_NAMESPACE"

# Fields the API server sets; recreating an object with them fails or misleads. A DaemonSet
# that a canary kept off some nodes (kube-proxy-exclude.sh) is saved with the affinity it had
# before, so a restore brings kube-proxy back on every node.
# shellcheck disable=SC2016 # $original and $canary are jq variables
readonly STRIP='
    del(.status)
    | del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
          .metadata.generation, .metadata.managedFields, .metadata.selfLink,
          .metadata.deletionTimestamp, .metadata.deletionGracePeriodSeconds,
          .metadata.ownerReferences)
    | del(.metadata.annotations["deprecated.daemonset.template.generation"])
    | if (.metadata.annotations // {}) | has($canary) then
          (.metadata.annotations[$canary] | fromjson) as $original
          | del(.metadata.annotations[$canary])
          | if $original == null then del(.spec.template.spec.affinity)
            else .spec.template.spec.affinity = $original end
      else . end
    | if (.metadata.annotations // {}) == {} then del(.metadata.annotations) else . end
    | if .spec.template.metadata? then del(.spec.template.metadata.creationTimestamp) else . end'

# --ignore-not-found: an absent object prints nothing, any other error still fails.
kc get daemonset "$KUBE_PROXY_DAEMONSET" -o json --ignore-not-found >"$workdir/ds.live"
kc get configmap "$KUBE_PROXY_CONFIGMAP" -o json --ignore-not-found >"$workdir/cm.live"
kc get configmap "$KUBE_PROXY_BACKUP_CONFIGMAP" -o json --ignore-not-found >"$workdir/backup.live"

# Someone else's ConfigMap at the backup name is neither adopted nor overwritten.
if [[ -s "$workdir/backup.live" ]] && ! created_by_us "$workdir/backup.live"; then
    fail "$(not_ours "$KUBE_PROXY_BACKUP_CONFIGMAP" "$KUBE_PROXY_NAMESPACE"); refusing to adopt or overwrite it, nothing changed. Set cluster.kubeProxy.backupConfigMap to an unused name"
fi

wait_for_pods_gone() {
    local deadline=$((SECONDS + POD_GONE_TIMEOUT)) remaining
    while true; do
        remaining="$(kc get pods -l "$KUBE_PROXY_POD_SELECTOR" -o name | wc -l | tr -d ' ')"
        if [[ "$remaining" -eq 0 ]]; then return 0; fi
        if ((SECONDS >= deadline)); then
            fail "${remaining} kube-proxy pods (${KUBE_PROXY_POD_SELECTOR}) still exist after ${POD_GONE_TIMEOUT}s"
        fi
        log "waiting for ${remaining} kube-proxy pods to terminate"
        sleep 2
    done
}

if [[ ! -s "$workdir/ds.live" && ! -s "$workdir/cm.live" ]]; then
    backup_note="no backup"
    if [[ -s "$workdir/backup.live" ]]; then backup_note="backup ${KUBE_PROXY_BACKUP_CONFIGMAP} kept"; fi
    log "daemonset/${KUBE_PROXY_DAEMONSET} and configmap/${KUBE_PROXY_CONFIGMAP} are already absent; nothing changed (${backup_note})"
    wait_for_pods_gone
    jq -cn --arg backup "$KUBE_PROXY_BACKUP_CONFIGMAP" --argjson kept "$([[ -s "$workdir/backup.live" ]] && echo true || echo false)" \
        '{ok: true, changed: false, backupConfigMap: (if $kept then $backup else null end), deleted: []}'
    exit 0
fi

# The backup's data: what an earlier partial run saved, refreshed with every object still present.
if [[ -s "$workdir/backup.live" ]]; then
    jq '.data // {}' "$workdir/backup.live" >"$workdir/data.json"
else
    echo '{}' >"$workdir/data.json"
fi
if [[ -s "$workdir/ds.live" ]]; then
    jq -c --arg canary "$CANARY_ANNOTATION" "$STRIP" "$workdir/ds.live" >"$workdir/ds.stripped"
    jq --rawfile ds "$workdir/ds.stripped" '.["daemonset.json"] = ($ds | rtrimstr("\n"))' "$workdir/data.json" >"$workdir/data.next"
    mv "$workdir/data.next" "$workdir/data.json"
fi
if [[ -s "$workdir/cm.live" ]]; then
    jq -c --arg canary "$CANARY_ANNOTATION" "$STRIP" "$workdir/cm.live" >"$workdir/cm.stripped"
    jq --rawfile cm "$workdir/cm.stripped" '.["configmap.json"] = ($cm | rtrimstr("\n"))' "$workdir/data.json" >"$workdir/data.next"
    mv "$workdir/data.next" "$workdir/data.json"
fi
jq -e 'has("daemonset.json")' "$workdir/data.json" >/dev/null \
    || fail "the backup would hold no copy of daemonset/${KUBE_PROXY_DAEMONSET}; refusing to delete anything"

jq -n --arg name "$KUBE_PROXY_BACKUP_CONFIGMAP" --arg ns "$KUBE_PROXY_NAMESPACE" \
    --arg taken "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --slurpfile data "$workdir/data.json" '{
        apiVersion: "v1", kind: "ConfigMap",
        metadata: {name: $name, namespace: $ns,
            labels: {"app.kubernetes.io/managed-by": "cilium-kpr-migration"},
            annotations: {"cilium-kpr-migration/purpose": "kube-proxy as it was before Cilium replaced it; read by kube-proxy-restore.sh",
                          "cilium-kpr-migration/taken-at": $taken}},
        data: $data[0]}' >"$workdir/backup.json"
if [[ -s "$workdir/backup.live" ]]; then
    log "refreshing backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP}"
    # With the resourceVersion read above: a concurrent change fails (409) instead of being overwritten.
    jq --slurpfile live "$workdir/backup.live" '.metadata.resourceVersion = $live[0].metadata.resourceVersion' \
        "$workdir/backup.json" >"$workdir/backup.next"
    kc replace -f "$workdir/backup.next" >&2
else
    log "writing backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP}"
    kc create -f "$workdir/backup.json" >&2
fi

kc get configmap "$KUBE_PROXY_BACKUP_CONFIGMAP" -o json | jq -S '.data' >"$workdir/backup.readback"
if ! jq -S . "$workdir/data.json" | cmp -s - "$workdir/backup.readback"; then
    fail "backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP} does not read back as written; nothing deleted"
fi

backup_created=true
if [[ -s "$workdir/backup.live" ]]; then backup_created=false; fi

# The undo of a failed removal: every object absent again comes back from the verified backup data.
put_kube_proxy_back() {
    local kind name key recreated=()
    log "the removal failed ($1); putting kube-proxy back from backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP}"
    for kind in configmap daemonset; do
        name="$KUBE_PROXY_CONFIGMAP" key=configmap.json
        if [[ "$kind" == daemonset ]]; then name="$KUBE_PROXY_DAEMONSET" key=daemonset.json; fi
        if ! kc get "$kind" "$name" -o name --ignore-not-found >"$workdir/undo.live"; then
            undo_outcome="Putting kube-proxy back ALSO failed (${tool_error}); kube-proxy may be down: run components/kubeproxy/scripts/kube-proxy-restore.sh with KUBE_PROXY_BACKUP_CONFIGMAP=${KUBE_PROXY_BACKUP_CONFIGMAP} (same KUBECONFIG/KUBECTL_CONTEXT) now"
            return 1
        fi
        if [[ -s "$workdir/undo.live" ]] || ! jq -e --arg key "$key" 'has($key)' "$workdir/data.json" >/dev/null; then continue; fi
        jq -r --arg key "$key" '.[$key]' "$workdir/data.json" >"$workdir/undo.json"
        if ! kc create -f "$workdir/undo.json" >&2; then
            undo_outcome="Putting kube-proxy back ALSO failed: recreating ${kind}/${name}: ${tool_error}; kube-proxy may be down: run components/kubeproxy/scripts/kube-proxy-restore.sh with KUBE_PROXY_BACKUP_CONFIGMAP=${KUBE_PROXY_BACKUP_CONFIGMAP} (same KUBECONFIG/KUBECTL_CONTEXT) now"
            return 1
        fi
        recreated+=("${kind}/${name}")
    done
    if ! wait_rollout "$KUBE_PROXY_NAMESPACE" "daemonset/${KUBE_PROXY_DAEMONSET}" "$ROLLOUT_TIMEOUT"; then
        undo_outcome="kube-proxy was recreated from backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP} (${recreated[*]:-nothing was missing}) but daemonset/${KUBE_PROXY_DAEMONSET}: ${rollout_error}; check its pods before anything else; the backup is kept"
        return 1
    fi
    if [[ "$backup_created" == true ]]; then kc delete configmap "$KUBE_PROXY_BACKUP_CONFIGMAP" --ignore-not-found >&2 || true; fi
    undo_outcome="kube-proxy was put back (${recreated[*]:-nothing was missing}) and has rolled out: the cluster is as before this step, which recorded nothing, so there is nothing for pulumi destroy to undo; fix the cause and run pulumi up again"
}

deleted=()
undo_hook=put_kube_proxy_back
if [[ -s "$workdir/ds.live" ]]; then
    log "deleting daemonset/${KUBE_PROXY_DAEMONSET}"
    kc delete daemonset "$KUBE_PROXY_DAEMONSET" --ignore-not-found --timeout="${POD_GONE_TIMEOUT}s" >&2
    deleted+=("daemonset/${KUBE_PROXY_DAEMONSET}")
fi
if [[ -s "$workdir/cm.live" ]]; then
    log "deleting configmap/${KUBE_PROXY_CONFIGMAP}"
    kc delete configmap "$KUBE_PROXY_CONFIGMAP" --ignore-not-found --timeout="${POD_GONE_TIMEOUT}s" >&2
    deleted+=("configmap/${KUBE_PROXY_CONFIGMAP}")
fi
wait_for_pods_gone
undo_hook=""

log "kube-proxy removed; backup in configmap/${KUBE_PROXY_BACKUP_CONFIGMAP} (namespace ${KUBE_PROXY_NAMESPACE})"
printf '%s\n' "${deleted[@]}" | jq -R . | jq -sc --arg backup "$KUBE_PROXY_BACKUP_CONFIGMAP" \
    '{ok: true, changed: true, backupConfigMap: $backup, deleted: .}'
