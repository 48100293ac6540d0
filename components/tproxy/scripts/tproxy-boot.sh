#!/usr/bin/env bash
# The boot unit's ExecStart/ExecStop (rendered by policyRoutes.ts), installed by tproxy-apply.sh
# into STATE_DIR/bin (tproxy-lib.sh inlined, see components/commands/scripts.ts).
#
# usage: tproxy-boot.sh start|stop STATE_DIR RULESET ROUTES_SCRIPT ACTIVATION_SCRIPT|- NFT_TABLE MARK TABLE PRIORITY FAMILIES
#
# start  If an apply is still unconfirmed (STATE_DIR/pending) and our table is missing from the
#        kernel, the node lost its network state since that apply: it restarted inside the revert
#        window, and the armed revert (a transient timer or a detached process) died with it. The
#        last confirmed state (or none) is restored first, before anything diverts. Otherwise:
#        policy routes up, then the ruleset and its activation (this node's VIP presence, decided
#        by the keepalived notify script) in one nft transaction.
# stop   Policy routes down, then activation re-decided (nothing is routed: nothing diverts), so a
#        stopped unit means traffic passes directly. The table stays (the reboot marker above).
set -euo pipefail
if [ "$#" -ne 10 ]; then
    echo "usage: $0 start|stop STATE_DIR RULESET ROUTES_SCRIPT ACTIVATION_SCRIPT|- NFT_TABLE MARK TABLE PRIORITY FAMILIES" >&2
    exit 2
fi
action=$1 state=$2 ruleset=$3 routes=$4 activation=$5 nft_table=$6 mark=$7 rt=$8 prio=$9 families=${10}
# shellcheck source=SCRIPTDIR/tproxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tproxy-lib.sh"

# The restored configuration's activation script (from the manifest), if any.
activation_of() {
    local _i kind _m _o path
    [ -e "$1/manifest" ] || return 0
    while read -r _i kind _m _o path; do
        if [ "$kind" = activation-script ] && [ -f "$path" ]; then echo "$path"; fi
    done <"$1/manifest"
}

# After the boot-time revert of a first apply our unit's file is gone, yet systemd would keep the
# unit "active (exited)" in memory until the next boot. Stop it and reload once this start job has
# finished: a stop queued from inside the running start job would replace that job. Its ExecStop is
# "-"-prefixed (policyRoutes.ts), so the missing script is no failure.
retire_own_unit_if_gone() {
    local unit fragment
    unit=$(sed -n 's#^0::.*/\([^/]*\.service\)$#\1#p' /proc/self/cgroup)
    [ -n "$unit" ] || return 0
    fragment=$(systemctl show -P FragmentPath "$unit" 2>/dev/null || true)
    [ -n "$fragment" ] && [ ! -e "$fragment" ] || return 0
    ckpr_log "$unit's file is gone with the revert: stopping it once this start has finished"
    systemd-run --quiet --no-block --on-active=1 /bin/sh -c "systemctl stop '$unit'; systemctl daemon-reload" \
        || ckpr_log "WARNING: could not schedule the stop of $unit; it stays active (exited) until the next boot"
}

revert_unconfirmed() {
    local gen mode script
    ckpr_lock "$state"
    # Re-check under the lock: a revert or confirm may have finished meanwhile.
    [ -e "$state/pending" ] || return 1
    if nft list table inet "$nft_table" >/dev/null 2>&1; then return 1; fi
    read -r gen _ <"$state/pending"
    ckpr_log "apply $gen was not confirmed before the node restarted; restoring the last confirmed state before anything diverts"
    rm -f "$state/pending" "$state/revert-$gen.pid"
    # Under systemd (it passes $INVOCATION_ID to every process it starts for a unit: systemd commit
    # 4b58153dd221, "core: add invocation ID concept to service manager") unit enablement is restored
    # without reloading the manager or starting units: this IS the unit being started.
    mode=off
    if [ -n "${INVOCATION_ID:-}" ] && ckpr_systemd_on auto; then mode=boot; fi
    if ! ckpr_restore "$state/rollback" "$state" "$mode"; then
        echo "revert-incomplete $gen" >"$state/outcome"
        ckpr_die "apply $gen: the revert at boot could not restore everything; see the warnings above and $state/rollback"
    fi
    rm -rf "$state/rollback"
    echo "reverted $gen" >"$state/outcome"
    if [ "$mode" = boot ]; then retire_own_unit_if_gone; fi
    script=$(activation_of "$state")
    if [ -n "$script" ]; then
        bash "$script" RECONCILE || ckpr_log "WARNING: $script RECONCILE failed after the revert"
    fi
    ckpr_log "apply $gen reverted at boot"
    return 0
}

case "$action" in
    start)
        if [ -e "$state/pending" ] && ! nft list table inet "$nft_table" >/dev/null 2>&1; then
            if revert_unconfirmed; then exit 0; fi
        fi
        bash "$routes" up "$mark" "$rt" "$prio" "$families"
        if [ "$activation" != - ] && [ -f "$activation" ]; then
            bash "$activation" RECONCILE "$ruleset"
        else
            nft -f "$ruleset"
        fi
        ;;
    stop)
        bash "$routes" down "$mark" "$rt" "$prio" "$families"
        if [ "$activation" != - ] && [ -f "$activation" ]; then
            bash "$activation" RECONCILE || ckpr_log "WARNING: $activation RECONCILE failed; routes are down, so nothing is delivered to the proxy"
        fi
        ;;
    *)
        echo "usage: $0 start|stop ..." >&2
        exit 2
        ;;
esac
