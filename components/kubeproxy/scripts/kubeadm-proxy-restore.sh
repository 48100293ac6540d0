#!/usr/bin/env bash
# kubeadm-proxy-restore.sh
#
# The undo of kubeadm-proxy-disable.sh (runs on `pulumi destroy`, before kube-proxy is restored):
# puts the kubeadm ClusterConfiguration's proxy block back to what the backup ConfigMap recorded,
# then deletes the backup.
#   - kubeadm-config unchanged since the edit: the backup's text is written back byte for byte.
#   - kubeadm-config changed since (a `kubeadm upgrade` re-uploads it with a new
#     kubernetesVersion): only the proxy block is put back; every other change is kept, because
#     writing the old text would roll the cluster's recorded version back.
#   - the backup says proxy was already disabled before the migration, or proxy is no longer
#     disabled: nothing is written.
# The write is a `kubectl replace` carrying the resourceVersion that was read (409 on a concurrent
# change: run again). Without a backup (nothing was changed: not kubeadm, v1beta3, or already
# restored) it changes nothing and says so. A current text it does not understand is refused and
# the backup kept.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   KUBEADM_BACKUP_CONFIGMAP  backup ConfigMap in kube-system written by kubeadm-proxy-disable.sh (required).
# stdout: one JSON summary line (ok, restored, how, backupDeleted). stderr: progress.
set -euo pipefail

readonly SCRIPT=kubeadm-proxy-restore
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
# shellcheck source=SCRIPTDIR/kubeadm-config-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kubeadm-config-lib.sh"

need_backup_name

summary() {
    jq -cn --argjson restored "$1" --arg how "$2" --argjson deleted "$3" \
        '{ok: true, restored: $restored, how: $how, backupDeleted: $deleted}'
}
delete_backup() {
    log "deleting backup configmap/${KUBEADM_BACKUP_CONFIGMAP}"
    kc delete configmap "$KUBEADM_BACKUP_CONFIGMAP" --ignore-not-found >&2
}

kc get configmap "$KUBEADM_BACKUP_CONFIGMAP" -o json --ignore-not-found >"$workdir/backup.json"
if [[ ! -s "$workdir/backup.json" ]]; then
    log "no backup configmap/${KUBEADM_BACKUP_CONFIGMAP}: kubeadm-config was not changed by this program (or is already restored); nothing to do"
    summary false none false
    exit 0
fi
if ! created_by_us "$workdir/backup.json"; then
    fail "$(not_ours "$KUBEADM_BACKUP_CONFIGMAP" kube-system); refusing to restore from it or delete it; kubeadm-config left as it is"
fi
kubeadm_config_text "$workdir/backup.json" >"$workdir/original.yaml"
kubeadm_require_understood "$workdir/original.yaml" "backup configmap/${KUBEADM_BACKUP_CONFIGMAP}"
read -r o_start o_end o_state < <(kubeadm_proxy_block "$workdir/original.yaml")

kc get configmap kubeadm-config -o json --ignore-not-found >"$workdir/live.json"
if [[ ! -s "$workdir/live.json" ]]; then
    fail "configmap kubeadm-config is gone but backup configmap/${KUBEADM_BACKUP_CONFIGMAP} exists; restore it by hand from the backup (backup kept)"
fi
kubeadm_config_text "$workdir/live.json" >"$workdir/live.yaml"
kubeadm_require_understood "$workdir/live.yaml" "configmap kubeadm-config"
read -r l_start l_end l_state < <(kubeadm_proxy_block "$workdir/live.yaml")

if [[ "$o_state" == disabled ]]; then
    log "proxy.disabled was already true before the migration; kubeadm-config left as it is"
    delete_backup
    summary false unchanged-was-disabled true
    exit 0
fi
if [[ "$l_state" != disabled ]]; then
    log "proxy is not disabled in kubeadm-config any more; nothing to restore"
    delete_backup
    summary false unchanged-not-disabled true
    exit 0
fi

# What the disable step wrote: the original with only its proxy block replaced.
kubeadm_replace_lines "$workdir/original.yaml" "$o_start" "$o_end" "$KUBEADM_PROXY_DISABLED_BLOCK" >"$workdir/as-edited.yaml"
if cmp -s "$workdir/as-edited.yaml" "$workdir/live.yaml"; then
    how=original-text
    cp "$workdir/original.yaml" "$workdir/next.yaml"
else
    how=proxy-block-only
    log "kubeadm-config changed since the backup (e.g. a kubeadm upgrade); putting back only the proxy block and keeping the other changes"
    original_block="$(sed -n "${o_start},${o_end}p" "$workdir/original.yaml")"
    kubeadm_replace_lines "$workdir/live.yaml" "$l_start" "$l_end" "$original_block" >"$workdir/next.yaml"
fi

jq --rawfile text "$workdir/next.yaml" 'del(.metadata.managedFields) | .data.ClusterConfiguration = $text' \
    "$workdir/live.json" >"$workdir/next.json"
log "restoring the proxy block of configmap/kubeadm-config (resourceVersion $(jq -r '.metadata.resourceVersion' "$workdir/live.json"))"
if ! kc replace -f "$workdir/next.json" >&2; then
    fail "could not update configmap/kubeadm-config: ${tool_error} (a 409 Conflict means it changed while this ran: run again); backup kept"
fi
kc get configmap kubeadm-config -o json >"$workdir/after.json"
kubeadm_config_text "$workdir/after.json" | cmp -s - "$workdir/next.yaml" \
    || fail "configmap/kubeadm-config does not read back as written; backup kept"

delete_backup
log "kubeadm-config's proxy block restored (${how}); kubeadm upgrades manage kube-proxy again"
summary true "$how" true
