#!/usr/bin/env bash
# kube-proxy-restore.sh
#
# The undo of kube-proxy-remove.sh (runs on `pulumi destroy`, on the operator's machine):
# recreates kube-proxy's ConfigMap and DaemonSet from the backup ConfigMap, waits until the
# DaemonSet has rolled out, and only then deletes the backup.
# If the DaemonSet is already present and rolled out it says so and exits 0 (a leftover
# backup is deleted). Without a DaemonSet and without a backup it fails with a clear error.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   KUBE_PROXY_NAMESPACE        Default kube-system.
#   KUBE_PROXY_DAEMONSET        Default kube-proxy.
#   KUBE_PROXY_CONFIGMAP        Default kube-proxy.
#   KUBE_PROXY_BACKUP_CONFIGMAP backup ConfigMap written by kube-proxy-remove.sh (required).
#   ROLLOUT_TIMEOUT             seconds to wait for the DaemonSet to roll out. Default 300.
# stdout: one JSON summary line (ok, recreated[], backupDeleted). stderr: progress.
set -euo pipefail

readonly SCRIPT=kube-proxy-restore
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_name KUBE_PROXY_NAMESPACE KUBE_PROXY_DAEMONSET KUBE_PROXY_CONFIGMAP KUBE_PROXY_BACKUP_CONFIGMAP
need_seconds ROLLOUT_TIMEOUT
KC_NAMESPACE="$KUBE_PROXY_NAMESPACE"

kc get daemonset "$KUBE_PROXY_DAEMONSET" -o json --ignore-not-found >"$workdir/ds.live"
kc get configmap "$KUBE_PROXY_CONFIGMAP" -o json --ignore-not-found >"$workdir/cm.live"
kc get configmap "$KUBE_PROXY_BACKUP_CONFIGMAP" -o json --ignore-not-found >"$workdir/backup.live"

# A ConfigMap at the backup name that this program did not write is neither read nor deleted.
foreign_backup=""
if [[ -s "$workdir/backup.live" ]] && ! created_by_us "$workdir/backup.live"; then
    foreign_backup="$(not_ours "$KUBE_PROXY_BACKUP_CONFIGMAP" "$KUBE_PROXY_NAMESPACE")"
    log "${foreign_backup}; not using or deleting it"
    : >"$workdir/backup.live"
fi

rolled_out() {
    jq -e '.status as $s | ($s.desiredNumberScheduled // 0) > 0
        and ($s.numberReady // 0) == $s.desiredNumberScheduled
        and ($s.updatedNumberScheduled // 0) == $s.desiredNumberScheduled
        and ($s.observedGeneration // 0) >= (.metadata.generation // 0)' "$1" >/dev/null
}

delete_backup() {
    if [[ -s "$workdir/backup.live" ]]; then
        log "deleting backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP}"
        kc delete configmap "$KUBE_PROXY_BACKUP_CONFIGMAP" --ignore-not-found >&2
        backup_deleted=true
    fi
}
backup_deleted=false

if [[ -s "$workdir/ds.live" ]] && canary_exclusion_active "$workdir/ds.live"; then
    fail "daemonset/${KUBE_PROXY_DAEMONSET} is kept off canary nodes (annotation ${CANARY_ANNOTATION}); put it back on every node with kube-proxy-include.sh, then run this again"
fi
if [[ -s "$workdir/ds.live" && -s "$workdir/cm.live" ]] && rolled_out "$workdir/ds.live"; then
    log "daemonset/${KUBE_PROXY_DAEMONSET} is already present and rolled out; nothing to restore"
    delete_backup
    jq -cn --argjson deleted "$backup_deleted" '{ok: true, recreated: [], backupDeleted: $deleted}'
    exit 0
fi

if [[ ! -s "$workdir/backup.live" ]]; then
    if [[ ! -s "$workdir/ds.live" ]]; then
        if [[ -n "$foreign_backup" ]]; then fail "daemonset/${KUBE_PROXY_DAEMONSET} is absent and ${foreign_backup}, so it is not used; recreate kube-proxy by hand (kubeadm init phase addon kube-proxy) before turning kube-proxy replacement off"; fi
        fail "daemonset/${KUBE_PROXY_DAEMONSET} is absent and there is no backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP} in ${KUBE_PROXY_NAMESPACE}; recreate kube-proxy by hand (kubeadm init phase addon kube-proxy) before turning kube-proxy replacement off"
    fi
    if [[ ! -s "$workdir/cm.live" ]]; then
        fail "configmap/${KUBE_PROXY_CONFIGMAP} is absent and there is no backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP}"
    fi
fi

# Recreates KIND from the backup's KEY when it is absent. The ConfigMap goes first: the pods mount it.
recreated=()
recreate() {
    local kind="$1" name="$2" key="$3" live="$4"
    if [[ -s "$live" ]]; then return 0; fi
    jq -e --arg key "$key" '.data[$key] // empty' "$workdir/backup.live" >/dev/null \
        || fail "backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP} has no ${key}; cannot recreate ${kind}/${name}"
    jq -r --arg key "$key" '.data[$key]' "$workdir/backup.live" >"$workdir/${key}"
    jq -e --arg kind "$kind" --arg name "$name" '(.kind | ascii_downcase) == $kind and .metadata.name == $name' \
        "$workdir/${key}" >/dev/null || fail "backup ${key} does not hold ${kind}/${name}"
    log "recreating ${kind}/${name} from the backup"
    kc create -f "$workdir/${key}" >&2
    recreated+=("${kind}/${name}")
}
recreate configmap "$KUBE_PROXY_CONFIGMAP" configmap.json "$workdir/cm.live"
recreate daemonset "$KUBE_PROXY_DAEMONSET" daemonset.json "$workdir/ds.live"

log "waiting up to ${ROLLOUT_TIMEOUT}s for daemonset/${KUBE_PROXY_DAEMONSET} to roll out"
wait_rollout "$KUBE_PROXY_NAMESPACE" "daemonset/${KUBE_PROXY_DAEMONSET}" "$ROLLOUT_TIMEOUT" \
    || fail "daemonset/${KUBE_PROXY_DAEMONSET}: ${rollout_error}; backup configmap/${KUBE_PROXY_BACKUP_CONFIGMAP} kept"
delete_backup

log "kube-proxy is serving again"
printf '%s\n' "${recreated[@]}" | jq -R 'select(. != "")' | jq -sc --argjson deleted "$backup_deleted" \
    '{ok: true, recreated: ., backupDeleted: $deleted}'
