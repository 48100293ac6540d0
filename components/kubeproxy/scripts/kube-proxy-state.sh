#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034
# kube-proxy-state.sh: what kube-proxy leaves on a node in each of its modes, and how to find it.
# Sourced by stale-rules-cleanup.sh and stale-rules-verify.sh; embedded as command text, the source
# line is replaced by this text (components/commands/scripts.ts). Plain bash, no jq on nodes.
#
# Expects log MESSAGE. Reads only; nothing here changes the node.
#
# What kube-proxy creates (kubernetes/kubernetes, read at master):
#   iptables mode   pkg/proxy/iptables/proxier.go: KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES,
#                   KUBE-FORWARD, KUBE-POSTROUTING, KUBE-MARK-MASQ, KUBE-PROXY-FIREWALL, KUBE-PROXY-CANARY,
#                   KUBE-SVC-*, KUBE-SVL-*, KUBE-EXT-*, KUBE-FW-*, KUBE-SEP-*.
#   ipvs mode       pkg/proxy/ipvs/proxier.go: iptablesChains = KUBE-SERVICES, KUBE-POSTROUTING,
#                   KUBE-NODE-PORT, KUBE-LOAD-BALANCER, KUBE-MARK-MASQ (nat); KUBE-FORWARD, KUBE-NODE-PORT,
#                   KUBE-PROXY-FIREWALL, KUBE-SOURCE-RANGES-FIREWALL, KUBE-IPVS-FILTER, KUBE-IPVS-OUT-FILTER
#                   (filter); the dummy link defaultDummyDevice = "kube-ipvs0" holding every ClusterIP,
#                   ExternalIP and LoadBalancer IP; IPVS virtual servers; and the ipsets of ipsetInfo
#                   (pkg/proxy/ipvs/ipset.go, listed in KP_IPSETS below). For IPv6 NewIPSet renames
#                   "KUBE-" to "KUBE-6-" and truncates the name to 31 characters.
#   nftables mode   pkg/proxy/nftables/proxier.go: kubeProxyTable = "kube-proxy", one table per family
#                   (knftables families ip and ip6); nothing in iptables.
# Not kube-proxy's (kept): kubelet's KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT; Cilium's
# CILIUM_* chains and cilium_* ipsets; every nftables table other than ip/ip6 kube-proxy (the tproxy
# table inet cilium_kpr_tproxy, keepalived's, iptables-nft's own ip/ip6 filter/nat/mangle tables).
#
# Test seams (nothing in the program sets them; the reports name them when set):
#   CKPR_TEST_PROC_NET_IP_VS  path read instead of /proc/net/ip_vs (exists only while ip_vs is loaded)
#   CKPR_TEST_IPVSADM         ipvsadm command to run instead of `ipvsadm` from PATH
#
# Provides:
#   json_string TEXT, json_list ITEM...        JSON literals
#   KP_CHAIN_KEEP_AWK                          awk test for the kubelet chains kept
#   kp_plan_iptables_removal < SAVE            delete-only restore script (empty: nothing to do)
#   kp_scan_ipsets                             fills KP_IPSETS_FOUND: kube-proxy's ipsets on this node
#   kp_scan_nft                                fills KP_NFT_FOUND: "ip kube-proxy" / "ip6 kube-proxy"
#   kp_ipvs_link_addresses                     kube-ipvs0's addresses (empty when the link is absent)
#   kp_ipvs_link_present                       0 when kube-ipvs0 exists
#   kp_ipvs_scan                               fills KP_VS_OURS / KP_VS_FOREIGN (ipvsadm -S -n service
#                                              arguments, e.g. "-t 198.51.100.1:443") and KP_IPVS_STATUS
#   kp_unverifiable                            array of checks this node's tools cannot make
#   kp_seams                                   array of test seams in effect

json_string() {
    local text="${1//\\/\\\\}"
    text="${text//\"/\\\"}"
    printf '"%s"' "${text//$'\n'/ }"
}
json_list() {
    local out="" item
    for item in "$@"; do out+="${out:+,}$(json_string "$item")"; done
    printf '[%s]' "$out"
}

kp_unverifiable=()
kp_seams=()
KP_PROC_IP_VS=/proc/net/ip_vs
if [[ -n "${CKPR_TEST_PROC_NET_IP_VS:-}" ]]; then
    KP_PROC_IP_VS=$CKPR_TEST_PROC_NET_IP_VS
    kp_seams+=("CKPR_TEST_PROC_NET_IP_VS")
fi
KP_IPVSADM=ipvsadm
if [[ -n "${CKPR_TEST_IPVSADM:-}" ]]; then
    KP_IPVSADM=$CKPR_TEST_IPVSADM
    kp_seams+=("CKPR_TEST_IPVSADM")
fi

kp_have() { command -v "$1" >/dev/null 2>&1; }

# --- iptables ---------------------------------------------------------------------------------
# kube-proxy's chains are every KUBE-* chain except the kubelet's three.
# Prints the delete-only restore script for one `*-save` output (empty when nothing to do):
# -D for each jump from a kept chain into a kube-proxy chain, then -F and -X for each kube-proxy chain.
kp_plan_iptables_removal() {
    awk '
    BEGIN {
        keep["KUBE-KUBELET-CANARY"] = 1; keep["KUBE-IPTABLES-HINT"] = 1; keep["KUBE-FIREWALL"] = 1
    }
    function removable(name) { return name ~ /^KUBE-/ && !(name in keep) }
    # The target of -j/-g, skipping quoted words (comments) so their text is never mistaken for options.
    function jump_target(line,    i, c, n, tok, inq, quoted, toks, isq) {
        n = 0; tok = ""; inq = 0; quoted = 0
        split("", toks); split("", isq)
        for (i = 1; i <= length(line); i++) {
            c = substr(line, i, 1)
            if (inq) {
                if (c == "\\") { i++; tok = tok substr(line, i, 1); continue }
                if (c == "\"") { inq = 0; continue }
                tok = tok c; continue
            }
            if (c == "\"") { inq = 1; quoted = 1; continue }
            if (c == " ") {
                if (tok != "" || quoted) { toks[++n] = tok; isq[n] = quoted }
                tok = ""; quoted = 0; continue
            }
            tok = tok c
        }
        if (tok != "" || quoted) { toks[++n] = tok; isq[n] = quoted }
        for (i = 1; i < n; i++) {
            if (!isq[i] && (toks[i] == "-j" || toks[i] == "-g" || toks[i] == "--jump" || toks[i] == "--goto")) return toks[i + 1]
        }
        return ""
    }
    /^\*/ { table = substr($0, 2); nc = 0; nd = 0; split("", chains); split("", dels); next }
    /^:/ {
        name = substr($1, 2)
        if (removable(name)) chains[++nc] = name
        next
    }
    /^-A / {
        if (!removable($2) && removable(jump_target($0))) dels[++nd] = "-D" substr($0, 3)
        next
    }
    /^COMMIT/ {
        if (nc + nd > 0) {
            print "*" table
            for (i = 1; i <= nd; i++) print dels[i]
            for (i = 1; i <= nc; i++) print "-F " chains[i]
            for (i = 1; i <= nc; i++) print "-X " chains[i]
            print "COMMIT"
        }
        next
    }
    '
}

# --- ipsets -----------------------------------------------------------------------------------
# pkg/proxy/ipvs/ipset.go constants, in ipsetInfo order (pkg/proxy/ipvs/proxier.go); KUBE-IPVS-IPS is
# kubeIPVSSet (kubernetes/kubernetes#108460, matched by KUBE-IPVS-FILTER).
KP_IPSETS=(KUBE-LOOP-BACK KUBE-CLUSTER-IP KUBE-EXTERNAL-IP KUBE-EXTERNAL-IP-LOCAL KUBE-LOAD-BALANCER
    KUBE-LOAD-BALANCER-FW KUBE-LOAD-BALANCER-LOCAL KUBE-LOAD-BALANCER-SOURCE-IP KUBE-LOAD-BALANCER-SOURCE-CIDR
    KUBE-NODE-PORT-TCP KUBE-NODE-PORT-LOCAL-TCP KUBE-NODE-PORT-UDP KUBE-NODE-PORT-LOCAL-UDP
    KUBE-NODE-PORT-SCTP-HASH KUBE-NODE-PORT-LOCAL-SCTP-HASH KUBE-HEALTH-CHECK-NODE-PORT KUBE-IPVS-IPS)

# The IPv6 name NewIPSet derives: "KUBE-" -> "KUBE-6-", cut to 31 characters.
kp_ipset_v6_name() {
    local name="KUBE-6-${1#KUBE-}"
    printf '%s' "${name:0:31}"
}

KP_IPSETS_FOUND=()
kp_scan_ipsets() {
    KP_IPSETS_FOUND=()
    if ! kp_have ipset; then
        # kube-proxy makes sets only in IPVS mode, whose kube-ipvs0 link or ip_vs module would be here too.
        # (/sys/module is no evidence either way: built-in modules without parameters have no entry.)
        if kp_ipvs_link_present || [[ -e "$KP_PROC_IP_VS" ]]; then
            kp_unverifiable+=("ipsets: ipset is not installed (Debian package ipset)")
        fi
        return 0
    fi
    local existing name v6
    if ! existing="$(ipset list -n 2>&1)"; then
        kp_unverifiable+=("ipsets: ipset list -n failed: ${existing}")
        return 0
    fi
    for name in "${KP_IPSETS[@]}"; do
        v6="$(kp_ipset_v6_name "$name")"
        if grep -qxF -- "$name" <<<"$existing"; then KP_IPSETS_FOUND+=("$name"); fi
        if grep -qxF -- "$v6" <<<"$existing"; then KP_IPSETS_FOUND+=("$v6"); fi
    done
}

# --- nftables ---------------------------------------------------------------------------------
KP_NFT_FOUND=()
kp_scan_nft() {
    KP_NFT_FOUND=()
    if ! kp_have nft; then
        # Nothing else shows nftables tables (iptables-nft lists only its own), and /sys/module/nf_tables is
        # absent when nf_tables is built in, so without nft kube-proxy's nftables-mode tables cannot be seen.
        kp_unverifiable+=("nftables: nft is not installed (Debian package nftables), so kube-proxy's nftables tables cannot be seen")
        return 0
    fi
    local tables
    if ! tables="$(nft list tables 2>&1)"; then
        kp_unverifiable+=("nftables: nft list tables failed: ${tables}")
        return 0
    fi
    # `nft list tables` prints "table FAMILY NAME" per table.
    mapfile -t KP_NFT_FOUND < <(awk '$1 == "table" && ($2 == "ip" || $2 == "ip6") && $3 == "kube-proxy" { print $2 " " $3 }' <<<"$tables")
}

# --- kube-ipvs0 -------------------------------------------------------------------------------
# Only the name identifies it (kube-proxy creates it as a dummy link; the type is not checked, so a
# namespace test may model it with another link type).
kp_ipvs_link_present() { ip link show dev kube-ipvs0 >/dev/null 2>&1; }

kp_ipvs_link_addresses() {
    kp_ipvs_link_present || return 0
    ip -o addr show dev kube-ipvs0 | awk '{ for (i = 1; i < NF; i++) if ($i == "inet" || $i == "inet6") { sub(/\/[0-9]+$/, "", $(i + 1)); print $(i + 1) } }'
}

# --- IPVS virtual servers ---------------------------------------------------------------------
# A virtual server is kube-proxy's when its address is on kube-ipvs0 (ClusterIP, ExternalIP,
# LoadBalancer IP: syncService binds each to the dummy link) or when it is a NodePort, i.e. its
# protocol and port are in kube-proxy's NodePort ipsets (KUBE-NODE-PORT-{TCP,UDP} and LOCAL/IPv6
# variants). Anything else (keepalived's LVS, say) is foreign and left alone.
KP_VS_OURS=()
KP_VS_FOREIGN=()
KP_IPVS_STATUS=""

kp_nodeports() {
    local proto=$1 set name
    kp_have ipset || return 0
    for set in "KUBE-NODE-PORT-${proto}" "KUBE-NODE-PORT-LOCAL-${proto}"; do
        for name in "$set" "$(kp_ipset_v6_name "$set")"; do
            # bitmap:port members print one port per line after "Members:".
            # A set that does not exist lists nothing.
            { ipset list "$name" 2>/dev/null || true; } | awk 'found && /^[0-9]+$/ { print } /^Members:/ { found = 1 }'
        done
    done
}

# SCTP NodePorts are kept per node address: hash:ip,port members "ADDR,sctp:PORT" (ipsetWithIptablesChain).
kp_sctp_nodeports() {
    local set name
    kp_have ipset || return 0
    for set in KUBE-NODE-PORT-SCTP-HASH KUBE-NODE-PORT-LOCAL-SCTP-HASH; do
        for name in "$set" "$(kp_ipset_v6_name "$set")"; do
            { ipset list "$name" 2>/dev/null || true; } | awk 'found && /,sctp:[0-9]+$/ { print } /^Members:/ { found = 1 }'
        done
    done
}

kp_ipvs_scan() {
    KP_VS_OURS=()
    KP_VS_FOREIGN=()
    # /proc/net/ip_vs exists only while the ip_vs module is loaded; ipvsadm would modprobe it, so it is
    # not called at all when the file is absent (kube-proxy's own CleanupLeftovers avoids that too).
    if [[ ! -e "$KP_PROC_IP_VS" ]]; then
        KP_IPVS_STATUS=not-loaded
        return 0
    fi
    if ! kp_have "$KP_IPVSADM"; then
        local count
        count="$(awk '$1 ~ /^(TCP|UDP|SCTP|FWM)$/' "$KP_PROC_IP_VS" | wc -l)"
        if [[ "$count" -gt 0 ]]; then
            KP_IPVS_STATUS=unverifiable
            kp_unverifiable+=("ipvs: ${count} virtual servers in ${KP_PROC_IP_VS} and ipvsadm is not installed (Debian package ipvsadm), so they can be neither attributed nor removed; install ipvsadm, or run \`kube-proxy --cleanup\` on the node")
        else
            KP_IPVS_STATUS=empty
        fi
        return 0
    fi
    local saved line svc flag addr port proto addresses tcp udp sctp
    if ! saved="$("$KP_IPVSADM" -S -n 2>&1)"; then
        KP_IPVS_STATUS=unverifiable
        kp_unverifiable+=("ipvs: ipvsadm -S -n failed: ${saved}")
        return 0
    fi
    addresses="$(kp_ipvs_link_addresses)"
    tcp="$(kp_nodeports TCP)"
    udp="$(kp_nodeports UDP)"
    sctp="$(kp_sctp_nodeports)"
    # Save format (ipvsadm.c print_service_entry, FMT_RULE): "-A -t ADDR:PORT -s SCHED ...", -u for UDP,
    # --sctp-service for SCTP (ipvsadm 1.31), "-f MARK" for fwmark services; IPv6 addresses in brackets;
    # "-a ..." lines are real servers and go with their service. A service line not understood is
    # reported as not kube-proxy's rather than skipped.
    while IFS= read -r line; do
        [[ "$line" == "-A "* ]] || continue
        if ! [[ "$line" =~ ^-A\ (-t|-u|--sctp-service)\ ([^ ]+) ]]; then
            KP_VS_FOREIGN+=("${line#-A }")
            continue
        fi
        flag=${BASH_REMATCH[1]} svc=${BASH_REMATCH[2]}
        port=${svc##*:} addr=${svc%:*} addr=${addr#[} addr=${addr%]}
        case "$flag" in -t) proto=$tcp ;; -u) proto=$udp ;; *) proto="" ;; esac
        if grep -qxF -- "$addr" <<<"$addresses" || grep -qxF -- "$port" <<<"$proto" || grep -qxF -- "$addr,sctp:$port" <<<"$sctp"; then
            KP_VS_OURS+=("$flag $svc")
        else
            KP_VS_FOREIGN+=("$flag $svc")
        fi
    done <<<"$saved"
    KP_IPVS_STATUS=listed
}
