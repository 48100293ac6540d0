#!/usr/bin/env bash
# kubeadm-proxy-status.sh
#
# Read-only: reports whether kubeadm's ClusterConfiguration (ConfigMap kubeadm-config in
# kube-system) has `proxy.disabled: true`, as kubeadm-proxy-disable.sh sets it, and whether its
# backup ConfigMap exists. Changes nothing (only `kubectl get`). For drift checks.
#
# Environment:
#   KUBECONFIG, KUBECTL_CONTEXT (optional) which cluster; the context is passed as --context.
#   KUBEADM_BACKUP_CONFIGMAP  backup ConfigMap in kube-system (required).
# stdout: one JSON line:
#   {"ok":true,"kubeadm":false}                                  no kubeadm-config: not kubeadm
#   {"ok":true,"kubeadm":true,"apiVersion":...,"understood":bool,"proxyDisabled":true|false|null,"backup":bool}
# proxyDisabled is null when the text is not one this program edits (v1beta3, other shapes).
# Exit 1 only when the cluster cannot be read.
set -euo pipefail

readonly SCRIPT=kubeadm-proxy-status
# shellcheck source=SCRIPTDIR/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
# shellcheck source=SCRIPTDIR/kubeadm-config-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kubeadm-config-lib.sh"

kc get configmap kubeadm-config -o json --ignore-not-found >"$workdir/live.json"
if [[ ! -s "$workdir/live.json" ]]; then
    jq -cn '{ok: true, kubeadm: false}'
    exit 0
fi
kc get configmap "$KUBEADM_BACKUP_CONFIGMAP" -o name --ignore-not-found >"$workdir/backup.name"
kubeadm_config_text "$workdir/live.json" >"$workdir/live.yaml"
api="$(kubeadm_api_version "$workdir/live.yaml")"
state=""
if [[ "$api" == "$KUBEADM_API_VERSION" ]]; then
    read -r _ _ state < <(kubeadm_proxy_block "$workdir/live.yaml" || true)
fi
jq -cn --arg api "$api" --arg state "$state" --argjson backup "$([[ -s "$workdir/backup.name" ]] && echo true || echo false)" \
    '{ok: true, kubeadm: true, apiVersion: (if $api == "" then null else $api end), understood: ($state != ""),
      proxyDisabled: (if $state == "" then null else ($state == "disabled") end), backup: $backup}'
