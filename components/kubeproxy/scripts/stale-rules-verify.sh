#!/usr/bin/env bash
# stale-rules-verify.sh
#
# Read-only check, run as root on one node: exits non-zero while any iptables backend
# (nft or legacy, IPv4 or IPv6) still holds kube-proxy's Service chains (KUBE-SERVICES,
# KUBE-NODEPORTS, KUBE-SVC-*, KUBE-SEP-*) or a rule that jumps to one. Such leftovers keep
# DNATing Service traffic to stale endpoints behind Cilium's back.
# Changes nothing. stdout: one JSON summary line. stderr: what was found.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"

readonly SCRIPT=stale-rules-verify
log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }

if [[ "$(id -u)" -ne 0 ]]; then
    log "ERROR: must run as root (iptables-save needs it)"
    printf '{"ok":false,"error":"must run as root"}\n'
    exit 1
fi

families=(iptables)
if [[ -e /proc/net/if_inet6 ]]; then families+=(ip6tables); fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# Chain declarations suffice: a rule can only jump to a chain that exists in its table, and
# matching on rule text could mistake a comment for a jump.
pattern='^:KUBE-(SERVICES|NODEPORTS|SVC-[A-Z0-9]+|SEP-[A-Z0-9]+) '
stale=()
checked=()
for backend in nft legacy; do
    for family in "${families[@]}"; do
        tool="${family}-${backend}-save"
        if ! command -v "$tool" >/dev/null 2>&1; then continue; fi
        if ! "$tool" >"$workdir/save" 2>"$workdir/save.err"; then
            log "ERROR: $tool failed: $(cat "$workdir/save.err")"
            printf '{"ok":false,"error":"%s failed"}\n' "$tool"
            exit 1
        fi
        checked+=("\"${family}-${backend}\"")
        count="$(grep -c -E "$pattern" "$workdir/save" || true)"
        if [[ "$count" -gt 0 ]]; then
            log "${family}-${backend}: ${count} kube-proxy Service chains remain, e.g.:"
            grep -E "$pattern" "$workdir/save" | head -n 5 >&2
            stale+=("\"${family}-${backend}\"")
        fi
    done
done

join() { local IFS=,; printf '%s' "$*"; }
if [[ "${#stale[@]}" -gt 0 ]]; then
    printf '{"ok":false,"checked":[%s],"stale":[%s]}\n' "$(join "${checked[@]}")" "$(join "${stale[@]}")"
    exit 1
fi
log "no kube-proxy Service rules in: $(join "${checked[@]}")"
printf '{"ok":true,"checked":[%s],"stale":[]}\n' "$(join "${checked[@]}")"
