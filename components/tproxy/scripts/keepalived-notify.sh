#!/bin/bash
# keepalived notify script of cilium-kpr's transparent proxy (rendered by
# components/tproxy/keepalivedNotify.ts, which bakes the parameters in below).
#
#   keepalived-notify.sh TYPE NAME STATE [PRIORITY]
#
# Switches diverting on for exactly the families whose VIP this node really holds, and off
# otherwise, by rewriting the activation set of our nft table in one transaction. keepalived
# runs notify scripts fire-and-forget, so two calls may overlap or arrive out of order: calls
# are serialised with flock and the decision is taken from the addresses actually present,
# not from STATE alone (a late BACKUP after a newer MASTER must not switch diverting off).
# STOP/DELETED always switch off. In vip bind mode the proxy unit (if any) is started before
# diverting is switched on and stopped after it is switched off. The apply step may call
# it with STATE=RECONCILE to take the same decision without keepalived.
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
# END PARAMETERS

log() {
    logger -t cilium-kpr-tproxy -- "$*" 2>/dev/null || true
    echo "cilium-kpr-tproxy: $*" >&2
}

# The apply step calls `keepalived-notify.sh RECONCILE` after reloading the table.
if [ "$#" -eq 1 ] && [ "$1" = RECONCILE ]; then
    set -- INSTANCE "$VRRP_INSTANCE" RECONCILE
fi
if [ "$#" -lt 3 ]; then
    echo "usage: $0 TYPE NAME STATE [PRIORITY]" >&2
    exit 2
fi
name=$2
state=$3

if [ "$name" != "$VRRP_INSTANCE" ]; then
    exit 0
fi
if [ "$BIND_MODE" != "vip" ]; then
    log "$state: bind mode $BIND_MODE diverts on every node; nothing to switch"
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

exec 9>>"$LOCK_FILE"
if ! flock -w 30 9; then
    log "$state: could not lock $LOCK_FILE within 30s; activation left as it is"
    exit 1
fi

families=()
case "$state" in
    STOP | DELETED) ;;
    *)
        if [ "$state" = "MASTER" ]; then
            # keepalived adds the VIPs around the time it calls us: give them a bounded moment.
            for _ in $(seq 1 $((VIP_WAIT_SECONDS * 5))); do
                if all_vips_held; then break; fi
                sleep 0.2
            done
        fi
        if [ -n "$VIP4" ] && holds "$VIP4"; then families+=(ipv4); fi
        if [ -n "$VIP6" ] && holds "$VIP6"; then families+=(ipv6); fi
        ;;
esac

if [ "${#families[@]}" -gt 0 ] && [ -n "$PROXY_UNIT" ]; then
    if ! systemctl start "$PROXY_UNIT"; then
        log "$state: could not start $PROXY_UNIT; not diverting traffic to a proxy that is not running"
        families=()
    fi
fi

if nft list set inet "$TABLE" "$ACTIVATION_SET" >/dev/null 2>&1; then
    transaction="flush set inet $TABLE $ACTIVATION_SET"
    if [ "${#families[@]}" -gt 0 ]; then
        joined=$(IFS=,; echo "${families[*]}")
        transaction+=$'\n'"add element inet $TABLE $ACTIVATION_SET { $joined }"
    fi
    if ! nft -f - <<<"$transaction"; then
        log "$state: nft refused the activation change; switching diverting off"
        nft flush set inet "$TABLE" "$ACTIVATION_SET" || true
        families=()
    fi
else
    log "$state: table inet $TABLE with set $ACTIVATION_SET is not installed; nothing to switch"
fi

if [ "${#families[@]}" -eq 0 ] && [ -n "$PROXY_UNIT" ]; then
    systemctl stop "$PROXY_UNIT" || log "$state: could not stop $PROXY_UNIT"
fi

log "$state: diverting ${families[*]:-nothing} (VIPs ${VIP4:-none} ${VIP6:-none})"
