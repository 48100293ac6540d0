#!/usr/bin/env bash
# Applies a staged node bundle with a self-arming revert.
#
# usage: tproxy-apply.sh STAGE STATE_DIR SYSTEMD UNIT NFT_TABLE MARK TABLE PRIORITY FAMILIES REVERT_SECONDS
#   STAGE    directory holding this script, tproxy-revert.sh, tproxy-boot.sh, policy-routes.sh,
#            manifest ("INDEX KIND MODE OWNER PATH" per line) and files/INDEX
#   SYSTEMD  auto (use systemd when it runs the node) or off
#
# Protocol: record the previous state (baseline once, rollback per apply), check, arm a
# detached revert that fires after REVERT_SECONDS, apply, exit. tproxy-confirm.sh, run over
# a fresh SSH connection, disarms it. Identical content changes nothing and arms nothing.
set -euo pipefail
# Finish (or fail into the immediate revert below) even if the SSH session goes away.
trap '' HUP
if [ "$#" -ne 10 ]; then echo "usage: $0 STAGE STATE_DIR SYSTEMD UNIT NFT_TABLE MARK TABLE PRIORITY FAMILIES REVERT_SECONDS" >&2; exit 2; fi
stage=$1 state=$2 systemd=$3 unit=$4 nft_table=$5 mark=$6 rt=$7 prio=$8 families=$9 revert_after=${10}
# shellcheck source=SCRIPTDIR/tproxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tproxy-lib.sh"
if ! [[ $revert_after =~ ^[1-9][0-9]*$ ]]; then ckpr_die "REVERT_SECONDS must be a positive number"; fi
[[ $nft_table =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ckpr_die "NFT_TABLE must be an identifier"
[[ $unit =~ ^[A-Za-z0-9@_.-]+\.service$ ]] || ckpr_die "UNIT must be a .service name"
[ "$systemd" = auto ] || [ "$systemd" = off ] || ckpr_die "SYSTEMD must be auto or off"

live_line="$nft_table $mark $rt $prio $families $unit"
manifest=$stage/manifest

mkdir -p "$state"
chmod 0700 "$state"
# remove.sh deletes the state directory only when it carries this marker.
: >"$state/.cilium-kpr-tproxy-state"
ckpr_lock "$state"

# ---- read and check the manifest -------------------------------------------------------
ruleset='' activation=''
declare -a idx=() kinds=() modes=() owners=() paths=()
while read -r i kind mode owner path; do
    [[ $i =~ ^[0-9]+$ ]] || ckpr_die "bad manifest index '$i'"
    [[ $mode =~ ^0[0-7]{3}$ ]] || ckpr_die "bad mode '$mode' for $path"
    [[ $owner =~ ^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$ ]] || ckpr_die "bad owner '$owner' for $path"
    if ! [[ $path =~ ^/[A-Za-z0-9_./-]+$ ]] || [[ $path =~ (^|/)\.\.?(/|$) ]]; then ckpr_die "bad path '$path'"; fi
    [ -f "$stage/files/$i" ] || ckpr_die "staged file $i for $path is missing"
    case "$kind" in
        nft-ruleset) [ -z "$ruleset" ] || ckpr_die "more than one nft-ruleset"; ruleset=$path
            nft -c -f "$stage/files/$i" || ckpr_die "nft -c rejects the ruleset for $path"
            # The ruleset must only ever touch our own table: a `flush ruleset` or another
            # table would wipe Cilium's or kube-proxy's rules.
            if grep -qE '^[[:space:]]*flush[[:space:]]+ruleset' "$stage/files/$i"; then ckpr_die "the ruleset flushes the whole ruleset"; fi
            if grep -qE '^[[:space:]]*include[[:space:]]' "$stage/files/$i"; then ckpr_die "the ruleset includes other files"; fi
            if grep -E '^[[:space:]]*((add|create|delete|flush|destroy)[[:space:]]+)?table[[:space:]]' "$stage/files/$i" \
                | grep -vqE "^[[:space:]]*((add|create|delete|flush|destroy)[[:space:]]+)?table[[:space:]]+inet[[:space:]]+$nft_table([[:space:]{]|\$)"; then
                ckpr_die "the ruleset touches a table other than inet $nft_table"
            fi
            ;;
        script) bash -n "$stage/files/$i" || ckpr_die "bash -n rejects $path" ;;
        activation-script) bash -n "$stage/files/$i" || ckpr_die "bash -n rejects $path"; activation=$path ;;
        systemd-unit|config|file) ;;
        *) ckpr_die "unknown kind '$kind' for $path" ;;
    esac
    idx+=("$i"); kinds+=("$kind"); modes+=("$mode"); owners+=("$owner"); paths+=("$path")
done <"$manifest"
[ -n "$ruleset" ] || ckpr_die "the bundle has no nft-ruleset"
for s in tproxy-revert.sh tproxy-boot.sh policy-routes.sh; do bash -n "$stage/$s" || ckpr_die "bash -n rejects $s"; done

# ---- anything to do? ---------------------------------------------------------------------
same_file() {
    local src=$1 mode=$2 owner=$3 path=$4
    [ -f "$path" ] && cmp -s -- "$src" "$path" \
        && [ "$(stat -c '%a %U:%G' -- "$path")" = "$(printf '%o' "$((8#$mode))") $owner" ]
}
unchanged=1
if [ ! -e "$state/live" ] || [ "$(cat "$state/live")" != "$live_line" ]; then unchanged=0; fi
if [ "$unchanged" = 1 ] && ! cmp -s "$manifest" "$state/manifest"; then unchanged=0; fi
if [ "$unchanged" = 1 ]; then
    for n in "${!idx[@]}"; do
        same_file "$stage/files/${idx[$n]}" "${modes[$n]}" "${owners[$n]}" "${paths[$n]}" || { unchanged=0; break; }
    done
fi
if [ "$unchanged" = 1 ] && ! ckpr_table_shape "$nft_table" | cmp -s - "$state/applied.nft"; then unchanged=0; fi
if [ "$unchanged" = 1 ]; then
    if ! drift=$(bash "$stage/policy-routes.sh" check "$mark" "$rt" "$prio" "$families"); then
        ckpr_log "policy routes drifted; restoring them: $drift"
        bash "$stage/policy-routes.sh" up "$mark" "$rt" "$prio" "$families"
    fi
    ckpr_log "unchanged: table inet $nft_table, policy routes and files already match; nothing armed"
    exit 0
fi

# ---- record the previous state -----------------------------------------------------------
declare -a old_paths=()
if [ -e "$state/manifest" ]; then
    while read -r _ _ _ _ p; do old_paths+=("$p"); done <"$state/manifest"
fi
old_table='' old_mark='' old_rt='' old_prio='' old_fams='' old_unit=''
if [ -e "$state/live" ]; then read -r old_table old_mark old_rt old_prio old_fams old_unit <"$state/live"; fi

if [ ! -e "$state/pending" ]; then rm -rf "$state/rollback"; fi
for snap in "$state/baseline" "$state/rollback"; do
    mkdir -p "$snap"
    ckpr_capture_table "$snap" "$nft_table"
    [ -z "$old_table" ] || ckpr_capture_table "$snap" "$old_table"
    ckpr_capture_routes "$snap" "$mark" "$rt" "$prio" "$families"
    [ -z "$old_table" ] || ckpr_capture_routes "$snap" "$old_mark" "$old_rt" "$old_prio" "$old_fams"
    ckpr_capture_unit "$snap" "$unit" "$systemd"
    [ -z "$old_unit" ] || ckpr_capture_unit "$snap" "$old_unit" "$systemd"
    for p in "${paths[@]}" "${old_paths[@]}"; do ckpr_capture_file "$snap" "$p"; done
done
# Only a revert puts our bookkeeping back; delete removes the whole state directory.
ckpr_capture_bookkeeping "$state/rollback" "$state"

# ---- arm the revert ------------------------------------------------------------------------
mkdir -p "$state/bin"
for s in tproxy-revert.sh tproxy-boot.sh policy-routes.sh; do
    install -m 0700 "$stage/$s" "$state/bin/$s.new" && mv -f "$state/bin/$s.new" "$state/bin/$s"
done
gen="$(date -u +%Y%m%d%H%M%S)-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
# From here on any failure restores the rollback at once (and stops whatever revert is armed).
revert_now() {
    local status=$?
    [ "$status" -ne 0 ] || return 0
    ckpr_log "apply $gen failed (exit $status); restoring the previous state now"
    set +e
    ckpr_disarm "$state"
    if ckpr_restore "$state/rollback" "$state" "$systemd"; then
        rm -rf "$state/rollback"
        echo "failed $gen" >"$state/outcome"
    else
        echo "revert-incomplete $gen" >"$state/outcome"
        ckpr_log "ERROR: the previous state could not be fully restored; see the warnings above and $state/rollback"
    fi
    exit "$status"
}
trap revert_now EXIT
ckpr_disarm "$state"
if ckpr_systemd_on "$systemd" && command -v systemd-run >/dev/null 2>&1; then
    # A transient timer outlives the SSH session's scope (logind may kill it on logout).
    systemd-run --quiet --unit="ckpr-tproxy-revert-$gen" --on-active="${revert_after}s" \
        --timer-property=AccuracySec=1s --description="cilium-kpr tproxy: revert unconfirmed apply $gen" \
        /bin/bash "$state/bin/tproxy-revert.sh" "$state" "$gen" "$systemd"
    echo "$gen systemd" >"$state/pending"
else
    setsid bash "$state/bin/tproxy-revert.sh" "$state" "$gen" "$systemd" "$revert_after" \
        </dev/null >>"$state/revert.log" 2>&1 9>&- &
    echo "$gen setsid $!" >"$state/pending"
fi
echo "$gen" >"$state/last-gen"
echo "pending $gen" >"$state/outcome"

# ---- apply ---------------------------------------------------------------------------------
for n in "${!idx[@]}"; do
    p=${paths[$n]}
    dir=$(dirname -- "$p")
    if [ ! -d "$dir" ]; then
        # Record each directory we create, outermost first, so delete can remove them again.
        missing=() d=$dir
        while [ ! -d "$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname -- "$d"); done
        for d in "${missing[@]}"; do
            mkdir -m 0755 -- "$d"
            echo "$d" >>"$state/created-dirs"
            echo "$d" >>"$state/rollback/created-dirs"
        done
    fi
    if ! same_file "$stage/files/${idx[$n]}" "${modes[$n]}" "${owners[$n]}" "$p"; then
        ckpr_install_file "$stage/files/${idx[$n]}" "${modes[$n]}" "${owners[$n]}" "$p"
    fi
done
for p in "${old_paths[@]}"; do
    keep=0
    for q in "${paths[@]}"; do [ "$p" != "$q" ] || keep=1; done
    [ "$keep" = 1 ] || rm -f -- "$p"
done

if [ -n "$old_table" ] && [ "$old_mark $old_rt $old_prio $old_fams" != "$mark $rt $prio $families" ]; then
    bash "$stage/policy-routes.sh" down "$old_mark" "$old_rt" "$old_prio" "$old_fams"
fi
# Routes first: the activation decision below requires them (nothing diverts unless routed).
bash "$stage/policy-routes.sh" up "$mark" "$rt" "$prio" "$families"
if [ -n "$activation" ]; then
    # The table and its activation (this node's VIP presence now, as keepalived's notify would
    # decide) in one nft transaction, under the notify script's lock: no moment with the table
    # loaded and the set empty on the VIP holder, and no race with a concurrent notify.
    bash "$activation" RECONCILE "$ruleset"
else
    nft -f "$ruleset"
fi
if [ -n "$old_table" ] && [ "$old_table" != "$nft_table" ] && nft list table inet "$old_table" >/dev/null 2>&1; then
    nft delete table inet "$old_table"
fi

if ckpr_systemd_on "$systemd"; then
    systemctl daemon-reload
    if [ -n "$old_unit" ] && [ "$old_unit" != "$unit" ]; then systemctl disable "$old_unit" 2>/dev/null || true; fi
    systemctl enable "$unit"
    # Starting is idempotent (routes up, the same table and activation in one transaction); it
    # makes the unit active so its ExecStop runs on shutdown. A running unit is left alone.
    systemctl -q is-active "$unit" || systemctl start "$unit"
fi

echo "$live_line" >"$state/live.new" && mv -f "$state/live.new" "$state/live"
cp "$manifest" "$state/manifest.new" && mv -f "$state/manifest.new" "$state/manifest"
ckpr_table_shape "$nft_table" >"$state/applied.nft.new" && mv -f "$state/applied.nft.new" "$state/applied.nft"
if [ -e "$state/created-dirs" ]; then sort -u "$state/created-dirs" >"$state/created-dirs.new" && mv -f "$state/created-dirs.new" "$state/created-dirs"; fi

trap - EXIT
ckpr_log "applied $gen: table inet $nft_table, policy routes ($families, fwmark $mark table $rt priority $prio), ${#paths[@]} file(s)"
ckpr_log "revert armed: fires in ${revert_after}s unless confirmed over a fresh SSH connection"
