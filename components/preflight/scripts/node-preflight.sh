#!/usr/bin/env bash
# node-preflight.sh
#
# Runs as root on each node before the migration changes anything, and changes nothing itself
# (it only reads /proc, `ip`, `nft list`, `*-save` and tool versions). It checks that the node can
# run Cilium's kube-proxy replacement and that the tproxy's policy routing has its mark, route table
# and rule priority to itself.
#
# usage: node-preflight.sh NODE TPROXY MARK TABLE PRIORITY FAMILIES IPTABLES_BACKEND [PROC_MOUNTS]
#   NODE              node name (for the report)
#   TPROXY            1 when tproxy is enabled (nft and keepalived required, routing checked), else 0
#   MARK              tproxy fwmark, lowercase hex as `ip rule` prints it (0x1)
#   TABLE             tproxy route table number
#   PRIORITY          tproxy ip rule priority
#   FAMILIES          ipv4, ipv6, ipv4,ipv6 or none: the families the tproxy routes
#   IPTABLES_BACKEND  auto, nft or legacy: the backend configured for the stale-rule cleanup
#   PROC_MOUNTS       mount table to read; default /proc/mounts (tests feed fixtures)
#
# Test seam: CKPR_PREFLIGHT_TEST_KERNEL_RELEASE replaces `uname -r` so tests can present an old
# kernel. Nothing in the program sets it; when it is set, the report says so (warning
# "kernel-release-override", kernel.source "test-override").
#
# stdout: one JSON line {"ok":..,"node":..,"failures":[{"check","message"}],"warnings":[..],...}
# stderr: human-readable lines. Exit 0 when every check passed, 1 when any failed (all are listed),
# 2 on bad arguments.
#
# Checks (failure names in brackets):
#   kernel >= 5.10 (socket LB and BPF host routing)                        [kernel]
#   bpffs mounted at /sys/fs/bpf                                            [bpffs]
#   a cgroup v2 hierarchy mounted                                           [cgroup2]
#   nft present when TPROXY=1; `destroy table` support reported             [nft]
#   keepalived present when TPROXY=1                                        [keepalived]
#   kube-proxy's iptables backend vs IPTABLES_BACKEND (when not auto)       [iptables-backend]
#   the tools the stale-rule cleanup needs for the kube-proxy state here    [cleanup-tools]
#   (ipvsadm when IPVS virtual servers exist, ipset when IPVS state does, nft always)
#   per family in FAMILIES (TPROXY=1):
#     no rule at PRIORITY other than exactly `fwmark MARK lookup TABLE`     [ip-rule-priority-<family>]
#     no other rule whose fwmark selector matches MARK                      [ip-rule-mark-<family>]
#     TABLE empty or holding only `local default dev lo`                    [route-table-<family>]
#   Our own rule and route are not conflicts: running this after our own setup passes.
set -euo pipefail

readonly MIN_KERNEL_MAJOR=5 MIN_KERNEL_MINOR=10
# `destroy table` needs nft >= 1.0.7 (userspace) and Linux >= 6.3 (NFT_MSG_DESTROY*).
readonly DESTROY_NFT=1.0.7 DESTROY_KERNEL_MAJOR=6 DESTROY_KERNEL_MINOR=3
readonly SAVE_TIMEOUT=30

usage() {
    echo "usage: $0 NODE TPROXY MARK TABLE PRIORITY FAMILIES IPTABLES_BACKEND [PROC_MOUNTS]" >&2
    exit 2
}
bad_arg() { echo "node-preflight: $1" >&2; exit 2; }

[ "$#" -eq 7 ] || [ "$#" -eq 8 ] || usage
node=$1 tproxy=$2 mark=$3 table=$4 priority=$5 families=$6 backend=$7 mounts_file=${8:-/proc/mounts}
[[ $node =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || bad_arg "NODE must be a plain host name, got '$node'"
[[ $tproxy =~ ^[01]$ ]] || bad_arg "TPROXY must be 0 or 1, got '$tproxy'"
[[ $mark =~ ^0x[0-9a-f]{1,8}$ ]] || bad_arg "MARK must be lowercase hex like 0x1, got '$mark'"
[[ $table =~ ^[0-9]{1,10}$ ]] || bad_arg "TABLE must be a number, got '$table'"
[[ $priority =~ ^[0-9]{1,5}$ ]] || bad_arg "PRIORITY must be a number, got '$priority'"
[[ $families =~ ^((ipv4|ipv6)(,(ipv4|ipv6))?|none)$ ]] || bad_arg "FAMILIES must be ipv4, ipv6, ipv4,ipv6 or none, got '$families'"
[[ $backend =~ ^(auto|nft|legacy)$ ]] || bad_arg "IPTABLES_BACKEND must be auto, nft or legacy, got '$backend'"
[[ $mounts_file =~ ^[A-Za-z0-9_./-]+$ ]] || bad_arg "PROC_MOUNTS must be a plain path, got '$mounts_file'"

log() { echo "node-preflight[$node]: $*" >&2; }

# shellcheck source=SCRIPTDIR/preflight-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/preflight-lib.sh"
have() { command -v "$1" >/dev/null 2>&1; }

# 0 when version $1 >= version $2 (dotted numbers).
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}
kernel_at_least() { [ "$kernel_major" -gt "$1" ] || { [ "$kernel_major" -eq "$1" ] && [ "$kernel_minor" -ge "$2" ]; }; }
# Chains only kube-proxy creates (kubelet also creates a few KUBE-* chains of its own).
readonly KUBE_PROXY_CHAINS='^:KUBE-(SERVICES|NODEPORTS|PROXY-CANARY|EXTERNAL-SERVICES) '

# ---- checks (called in order by the main block at the end; each records failures and warnings) ----

check_kernel() {
    kernel_source="uname"
    if [ -n "${CKPR_PREFLIGHT_TEST_KERNEL_RELEASE:-}" ]; then
        kernel_release=$CKPR_PREFLIGHT_TEST_KERNEL_RELEASE
        kernel_source=test-override
        warn_check kernel-release-override "kernel release taken from CKPR_PREFLIGHT_TEST_KERNEL_RELEASE ('$kernel_release'), not uname -r; this is a test seam"
    else
        kernel_release=$(uname -r)
    fi
    kernel_major=0 kernel_minor=0
    if [[ $kernel_release =~ ^([0-9]+)\.([0-9]+) ]]; then
        kernel_major=$((10#${BASH_REMATCH[1]})) kernel_minor=$((10#${BASH_REMATCH[2]}))
        if [ "$kernel_major" -lt "$MIN_KERNEL_MAJOR" ] || { [ "$kernel_major" -eq "$MIN_KERNEL_MAJOR" ] && [ "$kernel_minor" -lt "$MIN_KERNEL_MINOR" ]; }; then
            fail_check kernel "kernel $kernel_release is older than $MIN_KERNEL_MAJOR.$MIN_KERNEL_MINOR, which socket LB and BPF host routing need; upgrade the kernel before migrating"
        else
            log "kernel $kernel_release ok (>= $MIN_KERNEL_MAJOR.$MIN_KERNEL_MINOR)"
        fi
    else
        fail_check kernel "cannot read a version from kernel release '$kernel_release'"
    fi
}

check_mounts() {
    bpffs=0 cgroup_mode=none
    cgroup2_mounts=()
    if mounts=$(cat -- "$mounts_file" 2>/dev/null); then
        if awk '$2 == "/sys/fs/bpf" && $3 == "bpf" { found = 1 } END { exit !found }' <<<"$mounts"; then
            bpffs=1
            log "bpffs mounted at /sys/fs/bpf"
        else
            fail_check bpffs "no bpf filesystem mounted at /sys/fs/bpf ($mounts_file); Cilium's maps would not survive an agent restart: mount it persistently (e.g. a sys-fs-bpf.mount unit) first"
        fi
        mapfile -t cgroup2_mounts < <(awk '$3 == "cgroup2" { print $2 }' <<<"$mounts")
        if [ "${#cgroup2_mounts[@]}" -eq 0 ]; then
            fail_check cgroup2 "no cgroup v2 hierarchy is mounted ($mounts_file); socket LB attaches to cgroup v2"
        elif printf '%s\n' "${cgroup2_mounts[@]}" | grep -qxF /sys/fs/cgroup; then
            cgroup_mode=unified
            log "cgroup v2 unified at /sys/fs/cgroup"
        else
            cgroup_mode=hybrid
            warn_check cgroup2-hybrid "cgroup v2 is mounted only at ${cgroup2_mounts[*]} beside cgroup v1; socket LB sees only processes in that hierarchy"
        fi
    else
        fail_check bpffs "cannot read the mount table $mounts_file"
        fail_check cgroup2 "cannot read the mount table $mounts_file"
    fi
}

check_nft() {
    nft_present=0 nft_version="" destroy_table=0
    if have nft; then
        nft_present=1
        nft_version=$(nft --version 2>/dev/null | sed -n 's/^nftables v\([0-9][0-9.]*\).*/\1/p' | head -n 1)
        if [ -n "$nft_version" ] && version_at_least "$nft_version" "$DESTROY_NFT" && kernel_at_least "$DESTROY_KERNEL_MAJOR" "$DESTROY_KERNEL_MINOR"; then
            destroy_table=1
        fi
        log "nft ${nft_version:-(unknown version)}; destroy table $(if [ "$destroy_table" = 1 ]; then echo available; else echo "unavailable (needs nft >= $DESTROY_NFT and Linux >= $DESTROY_KERNEL_MAJOR.$DESTROY_KERNEL_MINOR)"; fi)"
    elif [ "$tproxy" = 1 ]; then
        fail_check nft "nft is not installed; the tproxy ruleset needs it (install the nftables package)"
    else
        log "nft not installed (not needed: tproxy disabled)"
    fi
}

check_iptables_backends() {
    iptables_default=absent
    if have iptables; then
        case "$(iptables -V 2>/dev/null || true)" in
            *nf_tables*) iptables_default=nft ;;
            *legacy*) iptables_default=legacy ;;
            *) iptables_default=unknown ;;
        esac
    fi
    kube_proxy_backends=()
    backend_details=""
    for b in legacy nft; do
        chains=0 tools_found=0
        for tool in "iptables-$b-save" "ip6tables-$b-save"; do
            have "$tool" || continue
            tools_found=1
            dump=$(timeout "$SAVE_TIMEOUT" "$tool" 2>/dev/null || true)
            n=$(grep -cE "$KUBE_PROXY_CHAINS" <<<"$dump" || true)
            chains=$((chains + n))
        done
        backend_details+="${backend_details:+,}\"$b\":{\"tools\":$(json_bool "$tools_found"),\"kubeProxyChains\":$chains}"
        if [ "$chains" -gt 0 ]; then kube_proxy_backends+=("$b"); fi
    done
    kube_proxy_nftables=0
    if [ "$nft_present" = 1 ] && nft list tables 2>/dev/null | grep -qE '^table ip6? kube-proxy$'; then
        kube_proxy_nftables=1
    fi
    log "iptables default backend: $iptables_default; kube-proxy chains in: ${kube_proxy_backends[*]:-none}$(if [ "$kube_proxy_nftables" = 1 ]; then echo "; kube-proxy nftables tables present"; fi)"
    if [ "${#kube_proxy_backends[@]}" -eq 2 ]; then
        warn_check iptables-both-backends "kube-proxy chains exist in both the legacy and the nft backend; the stale-rule cleanup must cover both"
    fi
    if [ "$backend" != auto ] && [ "${#kube_proxy_backends[@]}" -gt 0 ] && ! printf '%s\n' "${kube_proxy_backends[@]}" | grep -qxF "$backend"; then
        fail_check iptables-backend "cluster.kubeProxy.iptablesBackend is '$backend' but kube-proxy's chains are in '${kube_proxy_backends[*]}'; the cleanup would miss them (set it to auto or ${kube_proxy_backends[0]})"
    fi
}

# stale-rules-cleanup.sh removes kube-proxy's state in every mode, and stops before changing anything
# when it cannot see some of it (components/kubeproxy/scripts/kube-proxy-state.sh). Find that here,
# before the migration starts: IPVS virtual servers need ipvsadm, kube-proxy's ipsets (IPVS mode only:
# kube-ipvs0 or the ip_vs module is there) need ipset, nftables tables need nft.
# Test seam: CKPR_TEST_PROC_NET_IP_VS replaces /proc/net/ip_vs (exists only while ip_vs is loaded).
check_cleanup_tools() {
    proc_ip_vs=/proc/net/ip_vs
    if [ -n "${CKPR_TEST_PROC_NET_IP_VS:-}" ]; then
        proc_ip_vs=$CKPR_TEST_PROC_NET_IP_VS
        warn_check proc-ip-vs-override "IPVS state read from CKPR_TEST_PROC_NET_IP_VS ('$proc_ip_vs'), not /proc/net/ip_vs; this is a test seam"
    fi
    ipvs_loaded=0 ipvs_services=0 ipvs_link=0 missing_tools=()
    if [ -e "$proc_ip_vs" ]; then
        ipvs_loaded=1
        ipvs_services=$(awk '$1 ~ /^(TCP|UDP|SCTP|FWM)$/' "$proc_ip_vs" | wc -l)
    fi
    if have ip && ip link show dev kube-ipvs0 >/dev/null 2>&1; then ipvs_link=1; fi
    if [ "$ipvs_services" -gt 0 ] && ! have ipvsadm; then missing_tools+=("ipvsadm ($ipvs_services IPVS virtual servers)"); fi
    if { [ "$ipvs_link" = 1 ] || [ "$ipvs_loaded" = 1 ]; } && ! have ipset; then
        missing_tools+=("ipset (kube-proxy IPVS mode ipsets may exist)")
    fi
    # Without nft nothing shows nftables tables (and /sys/module/nf_tables is absent when it is built in).
    # With tproxy on, the nft check above already fails.
    if [ "$tproxy" = 0 ] && ! have nft; then missing_tools+=("nftables (nft, to see kube-proxy's nftables tables)"); fi
    if [ "${#missing_tools[@]}" -gt 0 ]; then
        fail_check cleanup-tools "the stale-rule cleanup could not see all of kube-proxy's state on this node; install: ${missing_tools[*]}"
    fi
    if [ "$ipvs_link" = 1 ]; then
        warn_check kube-proxy-ipvs-state "kube-ipvs0 exists (kube-proxy IPVS mode state, $ipvs_services virtual servers); the stale-rule cleanup removes it once kube-proxy is gone. With Cilium 1.19 see cilium/cilium#44464"
    fi
}

check_keepalived() {
    keepalived_present=0 keepalived_version=""
    if have keepalived; then
        keepalived_present=1
        keepalived_version=$(keepalived --version 2>&1 | sed -n 's/^Keepalived v\([0-9][0-9.]*\).*/\1/p' | head -n 1 || true)
    fi
    if [ "$tproxy" = 1 ] && [ "$keepalived_present" = 0 ]; then
        fail_check keepalived "keepalived is not installed; with tproxy enabled it holds the VIP and runs the notify script"
    fi
}

family_flag() { if [ "$1" = ipv4 ]; then echo -4; else echo -6; fi; }
default_prefix() { if [ "$1" = ipv4 ]; then echo 0.0.0.0/0; else echo ::/0; fi; }

# Prints the foreign rules (one per line) whose fwmark selector matches packets carrying MARK.
# `fwmark V/M` matches when (MARK & M) == V; without /M the mask is all ones. V == 0 selects
# "no mark bits under M" (Cilium style), which is not a use of our mark.
rules_matching_mark() {
    local line value mask want
    want=$((mark))
    while IFS= read -r line; do
        [ "$line" = "$our_rule_line" ] && continue
        [[ $line =~ fwmark\ (0x[0-9a-f]+)(/(0x[0-9a-f]+))? ]] || continue
        value=$((BASH_REMATCH[1]))
        mask=$((${BASH_REMATCH[3]:-0xffffffff}))
        if [ "$value" -ne 0 ] && [ $((want & mask)) -eq "$value" ]; then printf '%s\n' "$line"; fi
    done
}

one_line() { sed 's/[[:space:]]*$//' | tr '\t\n' ' ;' | sed 's/;$//; s/;/; /g'; }

check_family() {
    local f=$1 flag rules at_priority foreign_at_priority mark_users routes ours_route foreign_routes our_rule=0 our_route=0
    flag=$(family_flag "$f")
    if ! rules=$(ip -N "$flag" rule show 2>&1); then
        fail_check "ip-rule-priority-$f" "cannot list $f ip rules: $rules"
        routing_json+="${routing_json:+,}\"$f\":{\"ourRule\":false,\"ourRoute\":false}"
        return 0
    fi
    at_priority=$(awk -v p="$priority:" '$1 == p' <<<"$rules")
    if grep -qxF -- "$our_rule_line" <<<"$at_priority"; then our_rule=1; fi
    foreign_at_priority=$(grep -vxF -- "$our_rule_line" <<<"$at_priority" || true)
    if [ -n "$foreign_at_priority" ]; then
        fail_check "ip-rule-priority-$f" "ip rule priority $priority is taken by a rule that is not ours ($(one_line <<<"$foreign_at_priority")); choose another tproxy.rulePriority"
    fi
    mark_users=$(rules_matching_mark <<<"$rules")
    if [ -n "$mark_users" ]; then
        fail_check "ip-rule-mark-$f" "another ip rule already selects fwmark $mark ($(one_line <<<"$mark_users")); choose another tproxy.mark"
    fi
    # A table that was never used does not exist ("FIB table does not exist"): that is empty.
    routes=$(ip "$flag" route show table "$table" 2>/dev/null || true)
    ours_route=$(ip "$flag" route show table "$table" exact "$(default_prefix "$f")" type local dev lo 2>/dev/null || true)
    if [ -n "$ours_route" ]; then our_route=1; fi
    foreign_routes=$(grep -vE '^local default dev lo( |$)' <<<"$routes" | sed '/^[[:space:]]*$/d' || true)
    if [ -n "$foreign_routes" ]; then
        fail_check "route-table-$f" "route table $table already holds routes that are not ours ($(one_line <<<"$foreign_routes")); choose another tproxy.routeTable"
    fi
    if [ -z "$foreign_at_priority" ] && [ -z "$mark_users" ] && [ -z "$foreign_routes" ]; then
        log "$f: priority $priority, mark $mark and table $table are free$(if [ "$our_rule$our_route" != 00 ]; then echo " (our own rule/route present)"; fi)"
    fi
    routing_json+="${routing_json:+,}\"$f\":{\"ourRule\":$(json_bool "$our_rule"),\"ourRoute\":$(json_bool "$our_route")}"
}

check_policy_routing() {
    our_rule_line=$(printf '%s:\tfrom all fwmark %s lookup %s' "$priority" "$mark" "$table")
    routing_json=""
    checked_families=()
    if [ "$tproxy" = 1 ] && [ "$families" != none ]; then
        if have ip; then
            IFS=, read -r -a checked_families <<<"$families"
            for f in "${checked_families[@]}"; do check_family "$f"; done
        else
            fail_check iproute2 "ip (iproute2) is not installed"
        fi
    else
        log "policy routing not checked (tproxy disabled)"
    fi
}

# The JSON report on stdout; exit 0 when nothing failed (warnings allowed), 1 otherwise.
report() {
    ok=1
    [ "$failure_count" -eq 0 ] || ok=0
    printf '{"ok":%s,"node":%s,"failures":[%s],"warnings":[%s],' "$(json_bool "$ok")" "$(json_str "$node")" "$failures_json" "$warnings_json"
    printf '"kernel":{"release":%s,"source":%s,"minimum":"%s.%s"},' "$(json_str "$kernel_release")" "$(json_str "$kernel_source")" "$MIN_KERNEL_MAJOR" "$MIN_KERNEL_MINOR"
    printf '"mounts":{"bpffs":%s,"cgroup2":%s,"cgroupMode":"%s"},' "$(json_bool "$bpffs")" "$(json_list "${cgroup2_mounts[@]}")" "$cgroup_mode"
    printf '"nft":{"present":%s,"version":%s,"destroyTable":%s},' "$(json_bool "$nft_present")" "$(json_str "$nft_version")" "$(json_bool "$destroy_table")"
    printf '"iptables":{"default":"%s","configured":"%s","kubeProxyBackends":%s,"kubeProxyNftables":%s,%s},' \
        "$iptables_default" "$backend" "$(json_list "${kube_proxy_backends[@]}")" "$(json_bool "$kube_proxy_nftables")" "$backend_details"
    printf '"kubeProxyIpvs":{"loaded":%s,"virtualServers":%s,"interface":%s},' "$(json_bool "$ipvs_loaded")" "$ipvs_services" "$(json_bool "$ipvs_link")"
    printf '"keepalived":{"required":%s,"present":%s,"version":%s},' "$(json_bool "$tproxy")" "$(json_bool "$keepalived_present")" "$(json_str "$keepalived_version")"
    printf '"policyRouting":{"mark":"%s","table":%s,"priority":%s,"families":%s,"state":{%s}}}\n' \
        "$mark" "$table" "$priority" "$(json_list "${checked_families[@]}")" "$routing_json"

    if [ "$ok" = 1 ]; then
        log "preflight passed"
        exit 0
    fi
    log "preflight FAILED ($failure_count): node unchanged; fix the failures above and re-run"
    exit 1
}

# ---- main ----------------------------------------------------------------------------------
check_kernel
check_mounts
check_nft
check_iptables_backends
check_cleanup_tools
check_keepalived
check_policy_routing
report
