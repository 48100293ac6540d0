#!/usr/bin/env bash
# Confirms the last apply: runs over a FRESH SSH connection after tproxy-apply.sh, so reaching
# this script proves the new state still lets operators in. It checks the applied state, then
# disarms the pending revert. Fails when the apply was already reverted (or failed).
#
# usage: tproxy-confirm.sh STAGE STATE_DIR SYSTEMD
set -euo pipefail
if [ "$#" -ne 3 ]; then echo "usage: $0 STAGE STATE_DIR SYSTEMD" >&2; exit 2; fi
stage=$1 state=$2 systemd=$3
# shellcheck source=SCRIPTDIR/tproxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tproxy-lib.sh"
: "$systemd"

[ -d "$state" ] || ckpr_die "$state does not exist: nothing was applied on this node"
ckpr_lock "$state"
[ -e "$state/last-gen" ] || ckpr_die "nothing was applied on this node"
read -r gen <"$state/last-gen"
outcome=
if [ -e "$state/outcome" ]; then read -r outcome _ <"$state/outcome"; fi
pending_gen=
if [ -e "$state/pending" ]; then read -r pending_gen _ <"$state/pending"; fi

case "$outcome" in
    reverted) ckpr_die "apply $gen was reverted because it was not confirmed in time (or SSH was cut); the node is back in its previous state" ;;
    failed) ckpr_die "apply $gen failed and was reverted" ;;
    revert-incomplete) ckpr_die "apply $gen was reverted but the revert could not restore everything; inspect $state/rollback" ;;
esac

# Confirm only what is really there: the table as applied and our policy routes.
[ -e "$state/live" ] || ckpr_die "no live configuration recorded"
read -r nft_table mark rt prio families _ <"$state/live"
if ! ckpr_table_shape "$nft_table" | cmp -s - "$state/applied.nft"; then
    ckpr_die "table inet $nft_table differs from what apply $gen installed; not confirming (the armed revert will restore the previous state)"
fi
if ! drift=$(bash "$stage/policy-routes.sh" check "$mark" "$rt" "$prio" "$families"); then
    ckpr_die "policy routes are not as applied ($drift); not confirming"
fi
# The table's shape above leaves out the activation set's elements (they follow the VIP); check
# them against what this node should divert now (its VIP presence, as the notify script decides).
while read -r _ kind _ _ path; do
    [ "$kind" = activation-script ] || continue
    if ! why=$(bash "$path" CHECK 2>&1); then
        ckpr_die "diverting does not match this node's VIPs: $why; not confirming"
    fi
done <"$state/manifest"

if [ "$pending_gen" = "$gen" ]; then
    ckpr_disarm "$state"
    rm -rf "$state/rollback"
    echo "confirmed $gen" >"$state/outcome"
    ckpr_log "confirmed apply $gen; revert disarmed"
else
    ckpr_log "apply $gen already confirmed; nothing pending"
fi
