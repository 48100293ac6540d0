#!/usr/bin/env bash
# Removes everything tproxy-apply.sh put on the node and restores what it recorded before
# its first touch of each item: the nft table (or its absence), our ip rules and local routes,
# every file it overwrote, unit enablement, and the directories it created. Idempotent: a node
# without the state directory is left alone.
#
# usage: tproxy-remove.sh STAGE STATE_DIR SYSTEMD
set -euo pipefail
trap '' HUP
if [ "$#" -ne 3 ]; then echo "usage: $0 STAGE STATE_DIR SYSTEMD" >&2; exit 2; fi
# STAGE ($1) holds policy-routes.sh, which ckpr_restore finds beside this script (ckpr_lib_dir).
state=$2 systemd=$3
# shellcheck source=SCRIPTDIR/tproxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tproxy-lib.sh"

if [ ! -d "$state" ]; then
    ckpr_log "$state does not exist: nothing to remove"
    exit 0
fi
[ -e "$state/.cilium-kpr-tproxy-state" ] || ckpr_die "$state is not a cilium-kpr tproxy state directory; refusing to touch it"
ckpr_lock "$state"
ckpr_disarm "$state"
if [ -d "$state/baseline" ]; then
    if ! ckpr_restore "$state/baseline" "$state" "$systemd"; then
        ckpr_die "could not restore everything (warnings above); $state is kept so delete can be re-run"
    fi
elif [ -e "$state/live" ]; then
    ckpr_die "$state/live exists without a baseline; refusing to guess the previous state"
fi
if [ -e "$state/created-dirs" ]; then
    # Deepest first; a directory someone else put files into stays.
    sort -r "$state/created-dirs" | while read -r d; do
        rmdir -- "$d" 2>/dev/null || true
    done
fi
rm -rf -- "$state"
ckpr_log "removed: node restored to its state before the first apply"
