#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# kubeadm-config-lib.sh: what the kubeadm-config scripts share (kubeadm-proxy-disable.sh,
# kubeadm-proxy-restore.sh, kubeadm-proxy-status.sh). Sourced as a file, inlined when embedded
# (components/commands/scripts.ts). Needs cluster-lib.sh first (fail, log, need_name, kc).
#
# The kubeadm-config ConfigMap (kube-system) holds the cluster's ClusterConfiguration as YAML text
# under the key ClusterConfiguration. kubeadm writes it by marshalling the v1beta4 struct
# (cmd/kubeadm/app/phases/uploadconfig, sigs.k8s.io/yaml: keys sorted, two-space indent). In
# v1beta4 (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go) the field is
#     Proxy Proxy `json:"proxy,omitempty"`;  type Proxy struct { Disabled bool `json:"disabled,omitempty"` }
# so kubeadm writes either `proxy: {}` or `proxy:` followed by `  disabled: true`. v1beta3 has no
# proxy field at all. These functions edit only that one block, as text, and refuse anything else:
# no YAML library is needed, and every other byte of the configuration is kept as it is.

readonly KUBEADM_API_VERSION=kubeadm.k8s.io/v1beta4
readonly KUBEADM_PROXY_DISABLED_BLOCK=$'proxy:\n  disabled: true'

# Every kubeadm-config script names the backup ConfigMap and works in kube-system.
need_name KUBEADM_BACKUP_CONFIGMAP
KC_NAMESPACE=kube-system

# The scripts that write the backup: its name is not kubeadm-config itself.
need_backup_name() {
    [[ "$KUBEADM_BACKUP_CONFIGMAP" != kubeadm-config ]] || fail "KUBEADM_BACKUP_CONFIGMAP must differ from kubeadm-config"
}

# The configuration's API version (from its one top-level apiVersion line), or "" if there is none.
kubeadm_api_version() {
    awk '/^apiVersion: / { n++; v = $2 } END { if (n == 1) print v }' "$1"
}

# Prints "START END STATE" for the top-level proxy block of a v1beta4 ClusterConfiguration text:
# STATE is disabled or enabled. Prints nothing and returns 1 for any shape kubeadm does not write
# (a second document, no or several proxy keys, flow style with content, other keys under proxy).
kubeadm_proxy_block() {
    awk -v api="$KUBEADM_API_VERSION" '
        /^---/ { docs++ }
        $0 == "apiVersion: " api { apis++ }
        $0 == "kind: ClusterConfiguration" { kinds++ }
        inblock && /^ / { body[++lines] = $0; end = NR; next }
        { inblock = 0 }
        /^proxy:/ {
            found++; start = NR; end = NR
            if ($0 == "proxy: {}") state = "enabled"
            else if ($0 == "proxy:") { inblock = 1; state = "block" }
            else state = "unknown"
        }
        END {
            if (docs > 0 || apis != 1 || kinds != 1 || found != 1) exit 1
            if (state == "block") {
                if (lines != 1) exit 1
                if (body[1] == "  disabled: true") state = "disabled"
                else if (body[1] == "  disabled: false") state = "enabled"
                else exit 1
            }
            if (state == "unknown") exit 1
            print start, end, state
        }' "$1"
}

# Writes FILE with lines START..END replaced by BLOCK (which may span lines) to stdout.
kubeadm_replace_lines() {
    awk -v s="$2" -v e="$3" -v block="$4" 'NR == s { print block } NR >= s && NR <= e { next } { print }' "$1"
}

# The ClusterConfiguration text of a ConfigMap JSON file, byte for byte (jq -j adds no newline).
kubeadm_config_text() {
    jq -j '.data.ClusterConfiguration // empty' "$1"
}

# Refuses, with the reason, a kubeadm-config text these scripts do not edit.
kubeadm_require_understood() {
    local file="$1" what="$2" api
    api="$(kubeadm_api_version "$file")"
    [[ "$api" == "$KUBEADM_API_VERSION" ]] \
        || fail "${what} has apiVersion '${api:-none}', not ${KUBEADM_API_VERSION}; refusing to edit it (set proxy.disabled by hand, see README 'kube-proxy stays gone')"
    kubeadm_proxy_block "$file" >/dev/null \
        || fail "${what}: its proxy block is not 'proxy: {}' or 'proxy:' + '  disabled: true|false' as kubeadm writes it (or the text holds several documents or proxy keys); refusing to edit it"
}
