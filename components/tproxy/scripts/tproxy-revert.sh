#!/usr/bin/env bash
# Restores the node to the state recorded before apply GEN unless that apply was confirmed.
# Launched by tproxy-apply.sh, detached from the SSH session (systemd-run timer, or setsid
# with DELAY when systemd is not running), so it fires even if the new state cut SSH.
#
# usage: tproxy-revert.sh STATE_DIR GEN SYSTEMD(auto|off) [DELAY_SECONDS]
set -euo pipefail
if [ "$#" -lt 3 ] || [ "$#" -gt 4 ]; then echo "usage: $0 STATE_DIR GEN SYSTEMD [DELAY_SECONDS]" >&2; exit 2; fi
state=$1 gen=$2 systemd=$3 delay=${4:-}
# shellcheck source=SCRIPTDIR/tproxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tproxy-lib.sh"

if [ -n "$delay" ]; then
    [[ $delay =~ ^[0-9]+$ ]] || ckpr_die "DELAY_SECONDS must be a number"
    echo "$$" >"$state/revert-$gen.pid"
    sleep "$delay" &
    wait "$!"
fi

ckpr_lock "$state"
pending_gen=
if [ -e "$state/pending" ]; then read -r pending_gen _ <"$state/pending"; fi
if [ "$pending_gen" != "$gen" ]; then
    ckpr_log "apply $gen is no longer pending (confirmed or superseded); nothing to revert"
    rm -f "$state/revert-$gen.pid"
    exit 0
fi
ckpr_log "apply $gen was not confirmed in time; restoring the previous state"
rm -f "$state/pending" "$state/revert-$gen.pid"
if ckpr_restore "$state/rollback" "$state" "$systemd"; then
    rm -rf "$state/rollback"
    echo "reverted $gen" >"$state/outcome"
    ckpr_log "apply $gen reverted"
else
    # The rollback record stays for an operator (or the next delete) to finish from.
    echo "revert-incomplete $gen" >"$state/outcome"
    ckpr_die "apply $gen: the revert could not restore everything; see the warnings above and $state/rollback"
fi
