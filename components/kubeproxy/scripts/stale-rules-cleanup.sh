#!/usr/bin/env bash
# stale-rules-cleanup.sh BACKEND
#
# Runs as root on one node after kube-proxy's DaemonSet is gone. Removes what kube-proxy leaves
# behind in each of its modes, IPv4 and IPv6, then re-reads the node and fails if any of it remains.
# Names and their kubernetes/kubernetes sources: kube-proxy-state.sh.
#
#   BACKEND (arg 1)  auto | nft | legacy. auto cleans every iptables backend whose save
#                    output holds kube-proxy chains (normally exactly one).
#
# In this order (each step needs the state the next one removes):
#   1. IPVS virtual servers that are kube-proxy's (address on kube-ipvs0, or a NodePort listed in
#      kube-proxy's ipsets), one `ipvsadm -D` each. Others (keepalived's LVS) are kept and reported.
#   2. iptables: kube-proxy's KUBE-* chains and every rule that jumps to them (iptables and IPVS modes).
#      `*-save` is read, an awk filter turns it into a delete-only restore script (-D for each jump
#      into a kube-proxy chain, then -F and -X for each kube-proxy chain), and `*-restore --noflush`
#      applies it. Each table block is one commit, so a table changes completely or not at all;
#      rules that are not deleted are never rewritten (unlike `save | grep -v KUBE | restore`, which
#      would reload Cilium's rules too). A rule that vanished meanwhile makes the commit fail and the
#      script exit non-zero; running it again re-plans.
#   3. the kube-ipvs0 link (its addresses go with it).
#   4. kube-proxy's ipsets (only after step 2: a set still used by a rule cannot be destroyed).
#   5. nftables tables ip kube-proxy and ip6 kube-proxy, in one `nft -f` transaction.
#
# Kept on purpose, because kubelet (not kube-proxy) owns them:
#   KUBE-KUBELET-CANARY  kubelet's canary; kubelet recreates its chains when it vanishes.
#   KUBE-IPTABLES-HINT   tells tools which iptables backend the node uses.
#   KUBE-FIREWALL        kubelet's copy of the "block incoming localnet connections" rule.
#                        kube-proxy leaves net.ipv4.conf.all.route_localnet=1 behind, and this
#                        rule is what stops other hosts reaching 127.0.0.0/8 services
#                        (CVE-2020-8558). Because the canary stays, kubelet would not put
#                        it back, so it must not be deleted here.
#
# A check this node's tools cannot make (ipvsadm missing while virtual servers exist, ipset or nft
# missing while their kernel module is loaded) stops the script before it changes anything.
# Idempotent: a second run finds nothing to do and changes nothing.
# Undo: none needed; a restored kube-proxy recreates its own state on its first sync.
# stdout: one JSON summary line. stderr: progress.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"

readonly SCRIPT=stale-rules-cleanup
BACKEND="${1:-auto}"

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }

# shellcheck source=SCRIPTDIR/kube-proxy-state.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube-proxy-state.sh"

die() {
    log "ERROR: $*"
    printf '{"ok":false,"error":%s}\n' "$(json_string "$*")"
    exit 1
}

case "$BACKEND" in
    auto | nft | legacy) ;;
    *) die "BACKEND must be auto, nft or legacy, got '${BACKEND}'" ;;
esac

if [[ "$(id -u)" -ne 0 ]]; then die "must run as root"; fi
if pgrep -x kube-proxy >/dev/null 2>&1; then
    die "a kube-proxy process is still running on this node; it would recreate its rules. Remove the DaemonSet first"
fi

# Families present on this node: ip6tables only when the kernel has IPv6.
families=(iptables)
if [[ -e /proc/net/if_inet6 ]]; then families+=(ip6tables); fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# Writes the removal plan for FAMILY-BACKEND to $workdir/plan (empty when that tool is not
# installed or there is nothing to remove). Not called in a subshell, so a failing save aborts.
plan_for() {
    local family="$1" backend="$2" tool="$1-$2-save"
    : >"$workdir/plan"
    if ! command -v "$tool" >/dev/null 2>&1; then return 0; fi
    # stderr kept aside: iptables-nft-save warns on every call when legacy tables also exist.
    "$tool" >"$workdir/save" 2>"$workdir/save.err" || die "$tool failed: $(cat "$workdir/save.err")"
    kp_plan_iptables_removal <"$workdir/save" >"$workdir/plan" || die "could not plan the removal for $family-$backend"
}

backend_has_kube_chains() {
    local family
    for family in "${families[@]}"; do
        plan_for "$family" "$1"
        if [[ -s "$workdir/plan" ]]; then return 0; fi
    done
    return 1
}

# ---- steps (called in order by the main block at the end) ----------------------------------

# The iptables backends to clean: BACKEND, or under auto every one whose save output holds kube-proxy chains.
select_backends() {
    selected=()
    case "$BACKEND" in
        auto)
            for candidate in nft legacy; do
                has=0
                backend_has_kube_chains "$candidate" || has=$?
                if [[ "$has" -eq 0 ]]; then selected+=("$candidate"); fi
            done
            ;;
        *)
            command -v "iptables-${BACKEND}-save" >/dev/null 2>&1 || die "iptables-${BACKEND}-save is not installed"
            selected=("$BACKEND")
            ;;
    esac
}

# Scan everything first, and stop before changing anything if this node cannot be cleaned completely.
stop_unless_cleanable() {
    kp_ipvs_scan
    kp_scan_ipsets
    kp_scan_nft
    if [[ "${#kp_unverifiable[@]}" -gt 0 ]]; then
        for reason in "${kp_unverifiable[@]}"; do log "cannot clean: $reason"; done
        die "nothing was changed: $(printf '%s; ' "${kp_unverifiable[@]}")"
    fi
    foreign_vs=("${KP_VS_FOREIGN[@]}")
    if [[ "${#foreign_vs[@]}" -gt 0 ]]; then log "ipvs: keeping virtual servers that are not kube-proxy's: ${foreign_vs[*]}"; fi
}

# 1. IPVS virtual servers
remove_ipvs_virtual_servers() {
    removed_vs=()
    for svc in "${KP_VS_OURS[@]}"; do
        # shellcheck disable=SC2086 # "$svc" is "-t ADDR:PORT": flag and address are two words
        if out="$("$KP_IPVSADM" -D $svc 2>&1)"; then
            removed_vs+=("$svc")
        elif [[ "$out" == *"No such service"* ]]; then
            log "ipvs: $svc vanished meanwhile"
        else
            die "ipvsadm -D $svc failed: $out"
        fi
    done
    if [[ "${#removed_vs[@]}" -gt 0 ]]; then log "ipvs: removed ${#removed_vs[@]} kube-proxy virtual servers"; fi
}

# 2. iptables
remove_iptables_chains() {
    changed=()
    for backend in "${selected[@]}"; do
        for family in "${families[@]}"; do
            plan_for "$family" "$backend"
            if [[ ! -s "$workdir/plan" ]]; then
                log "${family}-${backend}: no kube-proxy chains"
                continue
            fi
            chains="$(grep -c '^-X ' "$workdir/plan" || true)"
            jumps="$(grep -c '^-D ' "$workdir/plan" || true)"
            log "${family}-${backend}: removing ${chains} kube-proxy chains and ${jumps} jumps into them"
            if ! "${family}-${backend}-restore" --noflush --wait 10 <"$workdir/plan"; then
                die "${family}-${backend}-restore refused the removal (rules changed meanwhile?); nothing in the failing table was changed, run again"
            fi
            changed+=("${family}-${backend}")
        done
    done
    if [[ "${#selected[@]}" -eq 0 ]]; then log "no iptables backend holds kube-proxy chains"; fi
}

# 3. kube-ipvs0
remove_ipvs_link() {
    removed_link=false
    mapfile -t link_addresses < <(kp_ipvs_link_addresses)
    if kp_ipvs_link_present; then
        ip link del kube-ipvs0 || die "could not delete the kube-ipvs0 link"
        removed_link=true
        log "kube-ipvs0: deleted with its ${#link_addresses[@]} addresses"
    else
        link_addresses=()
    fi
}

# 4. ipsets
destroy_ipsets() {
    removed_sets=()
    for set in "${KP_IPSETS_FOUND[@]}"; do
        if ! out="$(ipset destroy "$set" 2>&1)"; then
            # ipset: "The set with the given name does not exist" when it vanished meanwhile.
            if [[ "$out" == *"does not exist"* ]]; then continue; fi
            die "ipset destroy $set failed: $out (a rule that is not kube-proxy's may still use it)"
        fi
        removed_sets+=("$set")
    done
    if [[ "${#removed_sets[@]}" -gt 0 ]]; then log "ipsets: destroyed ${removed_sets[*]}"; fi
}

# 5. nftables
delete_nft_tables() {
    removed_tables=()
    if [[ "${#KP_NFT_FOUND[@]}" -gt 0 ]]; then
        : >"$workdir/nft"
        for table in "${KP_NFT_FOUND[@]}"; do printf 'delete table %s\n' "$table" >>"$workdir/nft"; done
        # One transaction: both tables go, or neither.
        out="$(nft -f "$workdir/nft" 2>&1)" || die "nft refused to delete ${KP_NFT_FOUND[*]}: $out"
        removed_tables=("${KP_NFT_FOUND[@]}")
        log "nftables: deleted ${removed_tables[*]}"
    fi
}

# Re-read everything; any kube-proxy state left fails the script.
verify_nothing_left() {
    # Every iptables backend, not only the cleaned ones: stale rules in the other backend would
    # still intercept Service traffic.
    leftovers=()
    for backend in nft legacy; do
        for family in "${families[@]}"; do
            plan_for "$family" "$backend"
            if [[ -s "$workdir/plan" ]]; then
                log "${family}-${backend} still holds kube-proxy rules:"
                cat "$workdir/plan" >&2
                leftovers+=("${family}-${backend}")
            fi
        done
    done
    kp_unverifiable=()
    kp_ipvs_scan
    if [[ "${#KP_VS_OURS[@]}" -gt 0 ]]; then leftovers+=("ipvs (${KP_VS_OURS[*]})"); fi
    if kp_ipvs_link_present; then leftovers+=(kube-ipvs0); fi
    kp_scan_ipsets
    if [[ "${#KP_IPSETS_FOUND[@]}" -gt 0 ]]; then leftovers+=("ipsets (${KP_IPSETS_FOUND[*]})"); fi
    kp_scan_nft
    if [[ "${#KP_NFT_FOUND[@]}" -gt 0 ]]; then leftovers+=("nftables (${KP_NFT_FOUND[*]})"); fi
    for reason in "${kp_unverifiable[@]}"; do leftovers+=("unverifiable: $reason"); done
    if [[ "${#leftovers[@]}" -gt 0 ]]; then
        die "kube-proxy state remains in: ${leftovers[*]}"
    fi
}

print_summary() {
    changed_any=false
    if [[ $((${#changed[@]} + ${#removed_vs[@]} + ${#removed_sets[@]} + ${#removed_tables[@]})) -gt 0 || "$removed_link" = true ]]; then changed_any=true; fi
    printf '{"ok":true,"backend":"%s","cleanedBackends":%s,"changedTables":%s,"removed":{"ipvsVirtualServers":%s,"ipvsInterface":%s,"ipvsInterfaceAddresses":%s,"ipsets":%s,"nftTables":%s},"kept":{"foreignVirtualServers":%s},"ipvs":%s,"changed":%s,"testSeams":%s}\n' \
        "$BACKEND" "$(json_list "${selected[@]}")" "$(json_list "${changed[@]}")" \
        "$(json_list "${removed_vs[@]}")" "$removed_link" "$(json_list "${link_addresses[@]}")" "$(json_list "${removed_sets[@]}")" "$(json_list "${removed_tables[@]}")" \
        "$(json_list "${foreign_vs[@]}")" "$(json_string "$KP_IPVS_STATUS")" "$changed_any" "$(json_list "${kp_seams[@]}")"
}

# ---- main ----------------------------------------------------------------------------------
select_backends
stop_unless_cleanable
remove_ipvs_virtual_servers
remove_iptables_chains
remove_ipvs_link
destroy_ipsets
delete_nft_tables
verify_nothing_left
print_summary
