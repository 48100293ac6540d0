#!/usr/bin/env bash
# Read-only drift check of one node's tproxy (run by tools/check.ts, never by the program).
#
# usage: tproxy-drift-check.sh STAGE NFT_TABLE MARK TABLE PRIORITY FAMILIES VIP4 VIP6 ACTIVATION_SET
#   STAGE    directory holding this script, policy-routes.sh, manifest
#            ("INDEX KIND MODE OWNER PATH" per line) and files/INDEX: the bundle exactly as
#            the program would push it now (components/tproxy/nodeTproxyBundle.ts)
#   VIP4/6   the configured VIPs, "-" for none
#   ACTIVATION_SET  the set whose elements switch diverting on (ACTIVATION_SET in nftRuleset.ts)
#
# Reports facts, one tab-separated record per line; components/drift/ decides what is drift:
#   table    ok | missing | differs | unchecked REASON   (+ "tablediff LINE" records)
#   routes   ok | drift                                  (+ "routesdetail LINE" records)
#   file     ok | missing | content | mode  PATH
#   vip      FAMILY held | absent | none
#   active   FAMILIES (comma list, may be empty) | noset
# The expected table is the staged ruleset loaded by this node's own nft into a throwaway
# network namespace (unshare --net), listed the way apply records it (ckpr_table_shape, without
# the activation set's elements), so both sides are printed by the same nft and kernel.
# Nothing on the node is changed.
set -euo pipefail
if [ "$#" -ne 9 ]; then echo "usage: $0 STAGE NFT_TABLE MARK TABLE PRIORITY FAMILIES VIP4 VIP6 ACTIVATION_SET" >&2; exit 2; fi
stage=$1 nft_table=$2 mark=$3 rt=$4 prio=$5 families=$6 vip4=$7 vip6=$8 activation_set=$9
# shellcheck source=SCRIPTDIR/tproxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tproxy-lib.sh"
[[ $nft_table =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ckpr_die "NFT_TABLE must be an identifier"
[[ $activation_set =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ckpr_die "ACTIVATION_SET must be an identifier"

record() { local IFS=$'\t'; printf '%s\n' "$*"; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# ---- the files the bundle installs -------------------------------------------------------
ruleset=''
while read -r i kind mode owner path; do
    [[ $i =~ ^[0-9]+$ && $mode =~ ^0[0-7]{3}$ && $path =~ ^/ ]] || ckpr_die "bad manifest line: $i $kind $mode $owner $path"
    [ "$kind" != nft-ruleset ] || ruleset="$stage/files/$i"
    if [ ! -f "$path" ]; then
        record file missing "$path"
    elif ! cmp -s -- "$stage/files/$i" "$path"; then
        record file content "$path"
    elif [ "$(stat -c '%a %U:%G' -- "$path")" != "$(printf '%o' "$((8#$mode))") $owner" ]; then
        record file mode "$path"
    else
        record file ok "$path"
    fi
done <"$stage/manifest"
[ -n "$ruleset" ] || ckpr_die "the staged bundle has no nft-ruleset"

# ---- the table ---------------------------------------------------------------------------
# shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
if ! nft list table inet "$nft_table" >/dev/null 2>&1; then
    record table missing
elif ! unshare --net bash -c "$(declare -f ckpr_table_shape)"'; nft -f "$1" && ckpr_table_shape "$2"' _ "$ruleset" "$nft_table" \
    >"$scratch/expected" 2>"$scratch/expected.err"; then
    record table unchecked "could not render the expected table in a scratch namespace: $(tail -n 1 "$scratch/expected.err")"
else
    ckpr_table_shape "$nft_table" >"$scratch/live"
    if cmp -s "$scratch/expected" "$scratch/live"; then
        record table ok
    else
        record table differs
        # diff exits 1 when the files differ, which is the case here.
        { diff -U0 --label expected --label live "$scratch/expected" "$scratch/live" || true; } | sed -n '3,42p' | while IFS= read -r line; do
            record tablediff "$line"
        done
    fi
fi

# ---- the policy routes (the program's own check) ------------------------------------------
if detail=$(bash "$stage/policy-routes.sh" check "$mark" "$rt" "$prio" "$families" 2>&1); then
    record routes ok
else
    record routes drift
    while IFS= read -r line; do [ -z "$line" ] || record routesdetail "$line"; done <<<"$detail"
fi

# ---- activation against VIP ownership -----------------------------------------------------
# "Held" as keepalived-notify.sh's holds() decides it: present and past duplicate address detection.
for pair in "ipv4 $vip4" "ipv6 $vip6"; do
    read -r family vip <<<"$pair"
    if [ "$vip" = - ]; then
        record vip "$family" none
    elif [ -n "$(ip -o addr show to "$vip" -tentative -dadfailed 2>/dev/null)" ]; then
        record vip "$family" held
    else
        record vip "$family" absent
    fi
done
if set_text=$(nft list set inet "$nft_table" "$activation_set" 2>/dev/null); then
    elements=$(sed -n 's/^[[:space:]]*elements = { \(.*\) }$/\1/p' <<<"$set_text" | tr -d ' ')
    record active "$elements"
else
    record active noset
fi
