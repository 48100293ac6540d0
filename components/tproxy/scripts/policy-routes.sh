#!/usr/bin/env bash
# Policy routing that sends packets carrying the tproxy mark to the local stack:
#   ip rule  pref PRIORITY fwmark MARK lookup TABLE        (one per family)
#   ip route local default dev lo table TABLE              (one per family)
#
# usage: policy-routes.sh up|down|check MARK TABLE PRIORITY FAMILIES
#   MARK      hex mark as ip prints it (0x1)
#   FAMILIES  comma list of ipv4, ipv6
#
# up     idempotent: adds only what is missing (no churn); refuses when PRIORITY holds a rule that is not ours.
# down   removes exactly our rule and route per family; anything else at PRIORITY or in TABLE stays.
# check  exits 0 when exactly our rule and route are present per family, 1 (and says why) on drift.
set -euo pipefail

usage() { echo "usage: $0 up|down|check MARK TABLE PRIORITY FAMILIES" >&2; exit 2; }
[ "$#" -eq 5 ] || usage
action=$1 mark=$2 table=$3 priority=$4 families=$5
[[ $mark =~ ^0x[0-9a-f]+$ ]] || { echo "MARK must be lowercase hex like 0x1, got '$mark'" >&2; exit 2; }
[[ $table =~ ^[0-9]+$ ]] || { echo "TABLE must be a number, got '$table'" >&2; exit 2; }
[[ $priority =~ ^[0-9]+$ ]] || { echo "PRIORITY must be a number, got '$priority'" >&2; exit 2; }
[[ $families =~ ^(ipv4|ipv6)(,(ipv4|ipv6))?$ ]] || { echo "FAMILIES must be ipv4, ipv6 or ipv4,ipv6, got '$families'" >&2; exit 2; }

# The exact line `ip -N rule show` prints for our rule.
our_rule_line=$(printf '%s:\tfrom all fwmark %s lookup %s' "$priority" "$mark" "$table")

family_flag() { if [ "$1" = ipv4 ]; then echo -4; else echo -6; fi; }
default_prefix() { if [ "$1" = ipv4 ]; then echo 0.0.0.0/0; else echo ::/0; fi; }

rules_at_priority() { ip -N "$(family_flag "$1")" rule show pref "$priority"; }
count_ours() { rules_at_priority "$1" | grep -cxF -- "$our_rule_line" || true; }
count_foreign() { rules_at_priority "$1" | grep -vcxF -- "$our_rule_line" || true; }
route_present() {
    [ -n "$(ip "$(family_flag "$1")" route show table "$table" exact "$(default_prefix "$1")" type local dev lo 2>/dev/null)" ]
}

up_family() {
    local f=$1 flag foreign ours
    flag=$(family_flag "$f")
    foreign=$(count_foreign "$f")
    if [ "$foreign" -ne 0 ]; then
        echo "$f: ip rule priority $priority already holds a rule that is not ours:" >&2
        rules_at_priority "$f" >&2
        return 1
    fi
    if [ "$f" = ipv6 ] && ! ip -o link show lo | grep -q '[<,]UP[,>]'; then
        echo "ipv6: lo is down; the local default route needs it up" >&2
        return 1
    fi
    ours=$(count_ours "$f")
    if [ "$ours" -eq 0 ]; then
        ip "$flag" rule add pref "$priority" fwmark "$mark" lookup "$table"
    fi
    if ! route_present "$f"; then
        ip "$flag" route replace local "$(default_prefix "$f")" dev lo table "$table"
    fi
}

down_family() {
    local f=$1 flag tries=0
    flag=$(family_flag "$f")
    while [ "$(count_ours "$f")" -gt 0 ]; do
        tries=$((tries + 1))
        [ "$tries" -le 32 ] || { echo "$f: could not remove our ip rule" >&2; return 1; }
        ip "$flag" rule del pref "$priority" from all fwmark "$mark" lookup "$table"
    done
    if route_present "$f"; then
        ip "$flag" route del local "$(default_prefix "$f")" dev lo table "$table"
    fi
}

check_family() {
    local f=$1 ours foreign drift=0
    ours=$(count_ours "$f")
    foreign=$(count_foreign "$f")
    if [ "$ours" -ne 1 ]; then echo "drift: $f has $ours rule(s) 'fwmark $mark lookup $table' at priority $priority, want 1"; drift=1; fi
    if [ "$foreign" -ne 0 ]; then echo "drift: $f has $foreign foreign rule(s) at priority $priority"; drift=1; fi
    if ! route_present "$f"; then echo "drift: $f table $table lacks 'local default dev lo'"; drift=1; fi
    return "$drift"
}

IFS=, read -r -a family_list <<<"$families"
status=0
for f in "${family_list[@]}"; do
    case "$action" in
        up) up_family "$f" ;;
        down) down_family "$f" ;;
        check) check_family "$f" || status=1 ;;
        *) usage ;;
    esac
done
exit "$status"
