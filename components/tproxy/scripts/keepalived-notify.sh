#!/bin/bash
# keepalived notify script of cilium-kpr's transparent proxy (rendered by
# components/tproxy/keepalivedNotify.ts, which bakes the parameters in below).
#
#   keepalived-notify.sh TYPE NAME STATE [PRIORITY]     keepalived's notify call
#   keepalived-notify.sh RECONCILE [RULESET_FILE]       the apply step and the boot unit
#   keepalived-notify.sh CHECK                          the confirm step
#
# Switches diverting on for exactly the families that should divert now, and off otherwise, by
# rewriting the activation set of our nft table in one transaction. A family diverts when
#   - vip bind mode: this node really holds its VIP (all mode: it has a VIP configured), and
#   - our policy rule and local route for it are present (marked packets reach the listener;
#     the boot unit's ExecStop takes them down, so a stopped unit means nothing diverts).
# keepalived runs notify scripts fire-and-forget, so two calls may overlap or arrive out of
# order: calls are serialised with flock and the decision is taken from the addresses and routes
# actually present, not from STATE alone (a late BACKUP after a newer MASTER must not switch
# diverting off). STOP/DELETED always switch off. In vip bind mode the proxy unit (if any) is
# started before diverting is switched on and stopped after it is switched off.
# RECONCILE takes the same decision without keepalived; with RULESET_FILE it loads the ruleset
# and the activation in ONE nft transaction, so no load ever leaves the set empty on the VIP
# holder. CHECK changes nothing and exits 1 when the activation differs from that decision.
# A missing table is tolerated (keepalived may notify before the boot unit loaded it: the
# unit's own RECONCILE, under the same lock, then takes the decision).
set -euo pipefail

# BEGIN PARAMETERS (renderKeepalivedNotify replaces this block with validated literals)
TABLE="${KPR_TPROXY_TABLE:?}"
ACTIVATION_SET="${KPR_TPROXY_ACTIVATION_SET:-tproxy_active}"
VRRP_INSTANCE="${KPR_TPROXY_VRRP_INSTANCE:?}"
BIND_MODE="${KPR_TPROXY_BIND_MODE:-vip}"
VIP4="${KPR_TPROXY_VIP4:-}"
VIP6="${KPR_TPROXY_VIP6:-}"
PROXY_UNIT="${KPR_TPROXY_PROXY_UNIT:-}"
LOCK_FILE="${KPR_TPROXY_LOCK_FILE:-/run/cilium-kpr-tproxy.lock}"
VIP_WAIT_SECONDS="${KPR_TPROXY_VIP_WAIT_SECONDS:-5}"
MARK="${KPR_TPROXY_MARK:-0x1}"
ROUTE_TABLE="${KPR_TPROXY_ROUTE_TABLE:-100}"
RULE_PRIORITY="${KPR_TPROXY_RULE_PRIORITY:-1000}"
# END PARAMETERS

log() {
    logger -t cilium-kpr-tproxy -- "$*" 2>/dev/null || true
    echo "cilium-kpr-tproxy: $*" >&2
}

ruleset=''
check=0
case "${1:-}" in
    RECONCILE)
        [ "$#" -le 2 ] || { echo "usage: $0 RECONCILE [RULESET_FILE]" >&2; exit 2; }
        ruleset=${2:-}
        set -- INSTANCE "$VRRP_INSTANCE" RECONCILE
        ;;
    CHECK)
        [ "$#" -eq 1 ] || { echo "usage: $0 CHECK" >&2; exit 2; }
        check=1
        set -- INSTANCE "$VRRP_INSTANCE" CHECK
        ;;
esac
if [ "$#" -lt 3 ]; then
    echo "usage: $0 TYPE NAME STATE [PRIORITY] | RECONCILE [RULESET_FILE] | CHECK" >&2
    exit 2
fi
name=$2
state=$3

if [ "$name" != "$VRRP_INSTANCE" ]; then
    exit 0
fi

# A usable VIP: present and past duplicate address detection.
holds() {
    [ -n "$(ip -o addr show to "$1" -tentative -dadfailed 2>/dev/null)" ]
}

all_vips_held() {
    if [ -n "$VIP4" ] && ! holds "$VIP4"; then return 1; fi
    if [ -n "$VIP6" ] && ! holds "$VIP6"; then return 1; fi
    return 0
}

# Our policy rule and local route for FAMILY are present: marked packets are delivered locally.
routed() {
    local flag=-4 prefix=0.0.0.0/0 rules
    if [ "$1" = ipv6 ]; then flag=-6 prefix=::/0; fi
    rules=$(ip -N "$flag" rule show pref "$RULE_PRIORITY" 2>/dev/null) || return 1
    grep -qxF -- "$(printf '%s:\tfrom all fwmark %s lookup %s' "$RULE_PRIORITY" "$MARK" "$ROUTE_TABLE")" <<<"$rules" \
        && [ -n "$(ip "$flag" route show table "$ROUTE_TABLE" exact "$prefix" type local dev lo 2>/dev/null)" ]
}

# Should FAMILY (with VIP address VIP) divert now?
wanted() {
    local family=$1 vip=$2
    [ -n "$vip" ] || return 1
    if [ "$BIND_MODE" = vip ] && ! holds "$vip"; then return 1; fi
    routed "$family"
}

exec 9>>"$LOCK_FILE"
if ! flock -w 30 9; then
    log "$state: could not lock $LOCK_FILE within 30s; activation left as it is"
    exit 1
fi

families=()
case "$state" in
    STOP | DELETED) ;;
    *)
        if [ "$state" = "MASTER" ] && [ "$BIND_MODE" = vip ]; then
            # keepalived adds the VIPs around the time it calls us: give them a bounded moment.
            for _ in $(seq 1 $((VIP_WAIT_SECONDS * 5))); do
                if all_vips_held; then break; fi
                sleep 0.2
            done
        fi
        if wanted ipv4 "$VIP4"; then families+=(ipv4); fi
        if wanted ipv6 "$VIP6"; then families+=(ipv6); fi
        ;;
esac

if [ "$check" = 1 ]; then
    if ! listing=$(nft list set inet "$TABLE" "$ACTIVATION_SET" 2>/dev/null); then
        echo "table inet $TABLE with set $ACTIVATION_SET is not installed" >&2
        exit 1
    fi
    have=$(printf '%s\n' "$listing" | sed -n 's/^[[:space:]]*elements = { \(.*\) }$/\1/p' | tr -d ' ' | tr ',' '\n' | sort | paste -sd, -)
    want=$(printf '%s\n' "${families[@]}" | sed '/^$/d' | sort | paste -sd, -)
    if [ "$have" != "$want" ]; then
        echo "activation is '${have:-nothing}' but this node should divert '${want:-nothing}' (bind mode $BIND_MODE, VIPs ${VIP4:-none} ${VIP6:-none})" >&2
        exit 1
    fi
    echo "activation matches: diverting ${want:-nothing}"
    exit 0
fi

if [ "$BIND_MODE" = vip ] && [ "${#families[@]}" -gt 0 ] && [ -n "$PROXY_UNIT" ]; then
    if ! systemctl start "$PROXY_UNIT"; then
        log "$state: could not start $PROXY_UNIT; not diverting traffic to a proxy that is not running"
        families=()
    fi
fi

transaction="flush set inet $TABLE $ACTIVATION_SET"
if [ "${#families[@]}" -gt 0 ]; then
    joined=$(IFS=,; echo "${families[*]}")
    transaction+=$'\n'"add element inet $TABLE $ACTIVATION_SET { $joined }"
fi
if [ -n "$ruleset" ]; then
    # The table and its activation in one transaction: a failure leaves the previous table.
    if ! { cat -- "$ruleset"; printf '%s\n' "$transaction"; } | nft -f -; then
        log "$state: nft refused $ruleset"
        exit 1
    fi
elif nft list set inet "$TABLE" "$ACTIVATION_SET" >/dev/null 2>&1; then
    if ! nft -f - <<<"$transaction"; then
        log "$state: nft refused the activation change; switching diverting off"
        nft flush set inet "$TABLE" "$ACTIVATION_SET" || true
        families=()
    fi
else
    log "$state: table inet $TABLE with set $ACTIVATION_SET is not installed; nothing to switch"
fi

if [ "$BIND_MODE" = vip ] && [ "${#families[@]}" -eq 0 ] && [ -n "$PROXY_UNIT" ]; then
    systemctl stop "$PROXY_UNIT" || log "$state: could not stop $PROXY_UNIT"
fi

log "$state: diverting ${families[*]:-nothing} (bind mode $BIND_MODE, VIPs ${VIP4:-none} ${VIP6:-none})"
