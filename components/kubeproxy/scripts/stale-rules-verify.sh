#!/usr/bin/env bash
# stale-rules-verify.sh
#
# Read-only check, run as root on one node: is any of kube-proxy's state present, in any of its
# modes, IPv4 or IPv6? Changes nothing (it never loads a kernel module: ipvsadm is only called
# while /proc/net/ip_vs exists). Also used by the drift check to notice kube-proxy coming back.
#
#   iptables  (nft and legacy backends, iptables and ip6tables) chains only kube-proxy creates:
#             KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-PROXY-FIREWALL,
#             KUBE-PROXY-CANARY, KUBE-NODE-PORT, KUBE-LOAD-BALANCER, KUBE-SOURCE-RANGES-FIREWALL,
#             KUBE-IPVS-FILTER, KUBE-IPVS-OUT-FILTER, KUBE-SVC-*, KUBE-SVL-*, KUBE-EXT-*, KUBE-FW-*,
#             KUBE-SEP-*. (KUBE-MARK-MASQ and KUBE-POSTROUTING are not looked for: kubelets before
#             1.28 create them too, and they intercept no Service traffic.)
#   ipvs      kube-proxy's virtual servers (see kube-proxy-state.sh for how they are told apart)
#   link      the kube-ipvs0 link and its addresses
#   ipsets    kube-proxy's ipsets (KUBE-CLUSTER-IP, KUBE-LOOP-BACK, ..., and their KUBE-6- names)
#   nftables  tables ip kube-proxy and ip6 kube-proxy
#
# stdout: one JSON line
#   {"ok":bool,"checked":[...],"stale":[...],"found":{"iptables":[..],"ipvsVirtualServers":[..],
#    "ipvsInterface":{"present":bool,"addresses":[..]},"ipsets":[..],"nftTables":[..]},
#    "ipvs":"not-loaded|empty|listed|unverifiable","foreignVirtualServers":[..],"unverifiable":[..],
#    "testSeams":[..]}
#   "stale" names each kind found (iptables-nft, ip6tables-legacy, ipvs, kube-ipvs0, ipsets, nftables).
# Exit 0: nothing found and every check could run. 1: something found, or a check could not run
# (its reason is in "unverifiable": a tool missing while its kernel module is loaded).
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"

readonly SCRIPT=stale-rules-verify
log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }

# shellcheck source=SCRIPTDIR/kube-proxy-state.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube-proxy-state.sh"

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
pattern='^:KUBE-(SERVICES|NODEPORTS|EXTERNAL-SERVICES|FORWARD|PROXY-FIREWALL|PROXY-CANARY|NODE-PORT|LOAD-BALANCER|SOURCE-RANGES-FIREWALL|IPVS-FILTER|IPVS-OUT-FILTER|SVC-[A-Z0-9]+|SVL-[A-Z0-9]+|EXT-[A-Z0-9]+|FW-[A-Z0-9]+|SEP-[A-Z0-9]+) '
stale=()
checked=()
iptables_found=()
for backend in nft legacy; do
    for family in "${families[@]}"; do
        tool="${family}-${backend}-save"
        if ! kp_have "$tool"; then continue; fi
        if ! "$tool" >"$workdir/save" 2>"$workdir/save.err"; then
            kp_unverifiable+=("iptables: $tool failed: $(cat "$workdir/save.err")")
            continue
        fi
        checked+=("${family}-${backend}")
        count="$(grep -c -E "$pattern" "$workdir/save" || true)"
        if [[ "$count" -gt 0 ]]; then
            log "${family}-${backend}: ${count} kube-proxy chains remain, e.g.:"
            grep -E "$pattern" "$workdir/save" | head -n 5 >&2
            stale+=("${family}-${backend}")
            iptables_found+=("${family}-${backend}")
        fi
    done
done

kp_ipvs_scan
checked+=(ipvs)
if [[ "${#KP_VS_OURS[@]}" -gt 0 ]]; then
    log "ipvs: ${#KP_VS_OURS[@]} kube-proxy virtual servers remain: ${KP_VS_OURS[*]}"
    stale+=(ipvs)
fi
if [[ "${#KP_VS_FOREIGN[@]}" -gt 0 ]]; then log "ipvs: not kube-proxy's, ignored: ${KP_VS_FOREIGN[*]}"; fi

checked+=(kube-ipvs0)
link_present=false
mapfile -t link_addresses < <(kp_ipvs_link_addresses)
if kp_ipvs_link_present; then
    link_present=true
    log "kube-ipvs0 is present with ${#link_addresses[@]} addresses"
    stale+=(kube-ipvs0)
fi

kp_scan_ipsets
checked+=(ipsets)
if [[ "${#KP_IPSETS_FOUND[@]}" -gt 0 ]]; then
    log "ipsets: ${KP_IPSETS_FOUND[*]}"
    stale+=(ipsets)
fi

kp_scan_nft
checked+=(nftables)
if [[ "${#KP_NFT_FOUND[@]}" -gt 0 ]]; then
    log "nftables: ${KP_NFT_FOUND[*]}"
    stale+=(nftables)
fi

for reason in "${kp_unverifiable[@]}"; do log "cannot verify: $reason"; done

ok=true
if [[ "${#stale[@]}" -gt 0 || "${#kp_unverifiable[@]}" -gt 0 ]]; then ok=false; fi
printf '{"ok":%s,"checked":%s,"stale":%s,"found":{"iptables":%s,"ipvsVirtualServers":%s,"ipvsInterface":{"present":%s,"addresses":%s},"ipsets":%s,"nftTables":%s},"ipvs":%s,"foreignVirtualServers":%s,"unverifiable":%s,"testSeams":%s}\n' \
    "$ok" "$(json_list "${checked[@]}")" "$(json_list "${stale[@]}")" \
    "$(json_list "${iptables_found[@]}")" "$(json_list "${KP_VS_OURS[@]}")" "$link_present" "$(json_list "${link_addresses[@]}")" \
    "$(json_list "${KP_IPSETS_FOUND[@]}")" "$(json_list "${KP_NFT_FOUND[@]}")" \
    "$(json_string "$KP_IPVS_STATUS")" "$(json_list "${KP_VS_FOREIGN[@]}")" "$(json_list "${kp_unverifiable[@]}")" "$(json_list "${kp_seams[@]}")"
if [[ "$ok" = true ]]; then
    log "no kube-proxy state in: ${checked[*]}"
    exit 0
fi
exit 1
