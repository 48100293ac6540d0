#!/usr/bin/env bash
# kubeadm-proxy-disable.sh
#
# Keeps kubeadm from bringing kube-proxy back: sets `proxy.disabled: true` in the cluster's
# kubeadm ClusterConfiguration (ConfigMap kubeadm-config in kube-system, key ClusterConfiguration),
# after kube-proxy-remove.sh. Runs on the operator's machine.
#
# Why (upstream): kubeadm 1.32.0's upgrade re-installed kube-proxy although its ConfigMap was gone
# and proxy.disabled was set (kubernetes/kubeadm#3137). kubeadm 1.33 skips an addon disabled in the
# ClusterConfiguration on upgrade (kubernetes/kubernetes#129418, cherry-picked to release-1.32 as
# #129429). `kubeadm upgrade apply|node --skip-phases=addon/kube-proxy` exists from kubeadm 1.32
# (#126032 apply phases, #127242 addon phase of upgrade node; kubeadm#1318). So the setting is
# recorded here, and the operator is told to skip the phase explicitly too.
#
# Before the edit the original ClusterConfiguration text is saved into a backup ConfigMap (never
# overwritten; read back before the edit); kubeadm-proxy-restore.sh reads it on `pulumi destroy`.
# The edit changes only the proxy block, as text, and is written with `kubectl replace` carrying
# the resourceVersion that was read, so a concurrent change (a kubeadm upgrade uploading its
# config) makes the API server answer 409 Conflict instead of being overwritten.
# A configuration it does not understand is refused (exit 1). A cluster without kubeadm-config
# (not kubeadm) or with a v1beta3 configuration (kubeadm < 1.31, no proxy.disabled) is left alone
# with a clear message (exit 0). Idempotent: with proxy already disabled nothing is written.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   KUBEADM_BACKUP_CONFIGMAP  backup ConfigMap in kube-system (required).
# stdout: one JSON summary line (ok, changed, kubeadm, proxyDisabled, backupConfigMap, operatorAction).
# stderr: progress, and the kubeadm upgrade flags the operator must use from now on.
set -euo pipefail

readonly SCRIPT=kubeadm-proxy-disable
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
# shellcheck source=SCRIPTDIR/kubeadm-config-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kubeadm-config-lib.sh"

need_backup_name

readonly OPERATOR_ACTION="from now on upgrade with 'kubeadm upgrade apply <version> --skip-phases=addon/kube-proxy' on the first control-plane node and 'kubeadm upgrade node --skip-phases=addon/kube-proxy' on every other node (kubeadm >= 1.32; older kubeadm has no such phase and skips kube-proxy because its ConfigMap is gone)"

summary() {
    jq -cn --argjson changed "$1" --argjson kubeadm "$2" --argjson disabled "$3" --arg backup "$4" --arg action "$5" \
        '{ok: true, changed: $changed, kubeadm: $kubeadm, proxyDisabled: $disabled,
          backupConfigMap: (if $backup == "" then null else $backup end),
          operatorAction: (if $action == "" then null else $action end)}'
}

kc get configmap kubeadm-config -o json --ignore-not-found >"$workdir/live.json"
if [[ ! -s "$workdir/live.json" ]]; then
    log "no configmap kubeadm-config in kube-system: not a kubeadm cluster, nothing to disable"
    summary false false null "" ""
    exit 0
fi
kubeadm_config_text "$workdir/live.json" >"$workdir/live.yaml"
[[ -s "$workdir/live.yaml" ]] || fail "configmap kubeadm-config has no ClusterConfiguration key; refusing to edit it"

api="$(kubeadm_api_version "$workdir/live.yaml")"
if [[ "$api" == kubeadm.k8s.io/v1beta3 ]]; then
    log "kubeadm-config holds a v1beta3 ClusterConfiguration (kubeadm < 1.31), which has no proxy.disabled; left unchanged."
    log "kubeadm before 1.32 skips the kube-proxy addon on upgrade while configmap/kube-proxy is absent (kubernetes#89593); after kubeadm >= 1.31 has rewritten kubeadm-config as v1beta4, run 'pulumi up' again with this step replaced."
    summary false true null "" "$OPERATOR_ACTION"
    exit 0
fi
kubeadm_require_understood "$workdir/live.yaml" "configmap kubeadm-config"
read -r start end state < <(kubeadm_proxy_block "$workdir/live.yaml")

# cluster-lib's undo hook: a failed create leaves nothing in Pulumi's state, so a failure after this
# run changed something puts back what it changed (kubeadm-config as read, a backup it created).
backup_created=false
edited=false
undo_disable() {
    local done=()
    if [[ "$edited" == true ]]; then
        if ! kc get configmap kubeadm-config -o json >"$workdir/undo.json"; then
            done+=("kubeadm-config could not be read to put it back (${tool_error}); backup kept")
            backup_created=false
        elif ! kubeadm_config_text "$workdir/undo.json" | cmp -s - "$workdir/next.yaml"; then
            done+=("kubeadm-config was changed by someone else since; left as it is, backup kept")
            backup_created=false
        else
            jq --rawfile text "$workdir/live.yaml" 'del(.metadata.managedFields) | .data.ClusterConfiguration = $text' \
                "$workdir/undo.json" >"$workdir/undo.next.json"
            if kc replace -f "$workdir/undo.next.json" >&2; then
                done+=("kubeadm-config put back as it was")
            else
                done+=("kubeadm-config could NOT be put back (${tool_error}); backup kept")
                backup_created=false
            fi
        fi
    fi
    if [[ "$backup_created" == true ]]; then
        if kc delete configmap "$KUBEADM_BACKUP_CONFIGMAP" --ignore-not-found >&2; then done+=("backup removed"); else done+=("backup could not be removed (${tool_error})"); fi
    fi
    undo_outcome="undone: $(
        IFS=';'
        echo "${done[*]:-nothing to undo}"
    )"
}

kc get configmap "$KUBEADM_BACKUP_CONFIGMAP" -o json --ignore-not-found >"$workdir/backup.json"
if [[ -s "$workdir/backup.json" ]] && ! created_by_us "$workdir/backup.json"; then
    fail "$(not_ours "$KUBEADM_BACKUP_CONFIGMAP" kube-system); refusing to adopt it as the backup, nothing changed"
fi
if [[ "$state" == disabled ]]; then
    if [[ -s "$workdir/backup.json" ]]; then
        log "proxy.disabled is already true; backup configmap/${KUBEADM_BACKUP_CONFIGMAP} kept; nothing changed"
    else
        # Disabled before this program ran: record that, so the restore leaves it disabled.
        log "proxy.disabled is already true (set before this program ran); recording that in configmap/${KUBEADM_BACKUP_CONFIGMAP}"
    fi
fi

if [[ ! -s "$workdir/backup.json" ]]; then
    jq -n --arg name "$KUBEADM_BACKUP_CONFIGMAP" --arg taken "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        --arg rv "$(jq -r '.metadata.resourceVersion // ""' "$workdir/live.json")" \
        --rawfile text "$workdir/live.yaml" '{
            apiVersion: "v1", kind: "ConfigMap",
            metadata: {name: $name, namespace: "kube-system",
                labels: {"app.kubernetes.io/managed-by": "cilium-kpr-migration"},
                annotations: {"cilium-kpr-migration/purpose": "kubeadm ClusterConfiguration before proxy.disabled was set; read by kubeadm-proxy-restore.sh",
                              "cilium-kpr-migration/taken-at": $taken,
                              "cilium-kpr-migration/source-resource-version": $rv}},
            data: {ClusterConfiguration: $text}}' >"$workdir/backup.new.json"
    log "saving the ClusterConfiguration into configmap/${KUBEADM_BACKUP_CONFIGMAP}"
    kc create -f "$workdir/backup.new.json" >&2
    backup_created=true
    undo_hook=undo_disable
    kc get configmap "$KUBEADM_BACKUP_CONFIGMAP" -o json >"$workdir/backup.json"
    kubeadm_config_text "$workdir/backup.json" | cmp -s - "$workdir/live.yaml" \
        || fail "backup configmap/${KUBEADM_BACKUP_CONFIGMAP} does not read back as written; kubeadm-config not changed"
fi

if [[ "$state" == disabled ]]; then
    undo_hook=""
    log "kube-proxy addon: $OPERATOR_ACTION"
    summary false true true "$KUBEADM_BACKUP_CONFIGMAP" "$OPERATOR_ACTION"
    exit 0
fi

kubeadm_replace_lines "$workdir/live.yaml" "$start" "$end" "$KUBEADM_PROXY_DISABLED_BLOCK" >"$workdir/next.yaml"
# The object as read (its resourceVersion included, managedFields dropped), with only the text changed.
jq --rawfile text "$workdir/next.yaml" 'del(.metadata.managedFields) | .data.ClusterConfiguration = $text' \
    "$workdir/live.json" >"$workdir/next.json"
log "setting proxy.disabled: true in configmap/kubeadm-config (resourceVersion $(jq -r '.metadata.resourceVersion' "$workdir/live.json"))"
undo_hook=undo_disable
if ! kc replace -f "$workdir/next.json" >&2; then
    fail "could not update configmap/kubeadm-config: ${tool_error} (a 409 Conflict means it changed while this ran: run again)"
fi
edited=true

kc get configmap kubeadm-config -o json >"$workdir/after.json"
kubeadm_config_text "$workdir/after.json" >"$workdir/after.yaml"
read -r _ _ after_state < <(kubeadm_proxy_block "$workdir/after.yaml" || true)
[[ "${after_state:-}" == disabled ]] || fail "configmap/kubeadm-config does not read back with proxy.disabled: true"

undo_hook=""
log "proxy.disabled: true set in kubeadm-config; original kept in configmap/${KUBEADM_BACKUP_CONFIGMAP}"
log "kube-proxy addon: $OPERATOR_ACTION"
summary true true true "$KUBEADM_BACKUP_CONFIGMAP" "$OPERATOR_ACTION"
