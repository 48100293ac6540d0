# shellcheck shell=bash
# Shared by the tproxy-*.sh scripts: sourced as a file, inlined into each when embedded (components/commands/scripts.ts).
#
# State directory (root only, 0700):
#   lock              flock(1) target; every action holds it while it touches the node
#   bin/              tproxy-revert.sh, tproxy-boot.sh and policy-routes.sh as of the last
#                     apply (the armed revert runs them; the boot unit runs tproxy-boot.sh)
#   live              "NFT_TABLE MARK TABLE PRIORITY FAMILIES UNIT" of what is applied now
#   manifest          "KIND MODE OWNER PATH" of the files installed now
#   applied.nft       `nft -s list table` right after the last apply (drift detection)
#   created-dirs      directories the apply created (removed again, if empty, on delete; a
#                     snapshot's own created-dirs lists those a revert removes)
#   baseline/         the node before our first touch of each item: what delete restores
#   rollback/         the node before the pending apply: what the armed revert restores
#   pending           "GEN LAUNCHER [PID]" while a revert is armed; written before the apply changes
#                     anything, removed by confirm, revert and delete. Found at boot (our table gone
#                     from the kernel), tproxy-boot.sh reverts to rollback/ before loading anything
#   last-gen, outcome the last apply that changed something and how it ended
#
# A snapshot records each item once (the first time it is about to be touched), so a
# snapshot taken across several applies still describes the state before the first of them.

ckpr_log() { echo "cilium-kpr-tproxy: $*"; }
ckpr_die() { echo "cilium-kpr-tproxy: ERROR: $*" >&2; exit 1; }

ckpr_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Takes the state lock on fd 9 (bounded wait).
ckpr_lock() {
    local state=$1
    exec 9>"$state/lock"
    flock -w 120 9 || ckpr_die "another tproxy action holds $state/lock for more than 120 s"
}

# 0 when systemd manages this node and MODE allows using it. MODE is auto, off, or (restore
# only) boot: run by the boot unit itself, which may change unit enablement but must neither
# reload the manager nor start or stop units (its own start job is the one running).
ckpr_systemd_on() {
    [ "$1" = auto ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# `nft -s list table` without the elements of the activation set (ACTIVATION_SET in
# nftRuleset.ts): they follow the VIP through keepalived's notify, not the applied bundle.
ckpr_table_shape() {
    nft -s list table inet "$1" 2>/dev/null \
        | awk '/^\tset tproxy_active \{/ { inset = 1 } inset && /^\t\telements = / { next } inset && /^\t\}/ { inset = 0 } { print }'
}
ckpr_key() { printf '%s' "$1" | sha256sum | cut -c1-16; }

# Records PATH (content, mode, owner, times) or its absence, once per snapshot.
ckpr_capture_file() {
    local snap=$1 path=$2 key
    key=$(ckpr_key "$path")
    mkdir -p "$snap/files"
    [ -e "$snap/files/$key.path" ] && return 0
    if [ -e "$path" ] || [ -L "$path" ]; then
        if [ ! -f "$path" ] || [ -L "$path" ]; then ckpr_die "$path exists and is not a regular file; refusing to replace it"; fi
        cp -p -- "$path" "$snap/files/$key.data"
    fi
    printf '%s\n' "$path" >"$snap/files/$key.path.tmp"
    mv -f "$snap/files/$key.path.tmp" "$snap/files/$key.path"
}

# Records `nft list table inet NAME` (with counter values) or its absence, once per snapshot.
ckpr_capture_table() {
    local snap=$1 name=$2
    mkdir -p "$snap/nft"
    if [ -e "$snap/nft/$name.nft" ] || [ -e "$snap/nft/$name.absent" ]; then return 0; fi
    if nft list table inet "$name" >"$snap/nft/$name.tmp" 2>/dev/null; then
        mv -f "$snap/nft/$name.tmp" "$snap/nft/$name.nft"
    else
        rm -f "$snap/nft/$name.tmp"
        : >"$snap/nft/$name.absent"
    fi
}

ckpr_family_flag() { if [ "$1" = ipv4 ]; then echo -4; else echo -6; fi; }
ckpr_default_prefix() { if [ "$1" = ipv4 ]; then echo 0.0.0.0/0; else echo ::/0; fi; }

# ckpr_rule_present FLAG PRIORITY MARK TABLE: our fwmark rule is there (the exact line `ip -N rule show` prints).
ckpr_rule_present() {
    ip -N "$1" rule show pref "$2" | grep -qxF -- "$(printf '%s:\tfrom all fwmark %s lookup %s' "$2" "$3" "$4")"
}
# ckpr_route_present FAMILY TABLE: our local default route via lo is in TABLE.
ckpr_route_present() {
    [ -n "$(ip "$(ckpr_family_flag "$1")" route show table "$2" exact "$(ckpr_default_prefix "$1")" type local dev lo 2>/dev/null)" ]
}

# Records, once per item, whether each of our rules ("rule FAMILY PRIORITY MARK TABLE") and
# routes ("route FAMILY TABLE") for these parameters exists. Per item, not per parameter set:
# two parameter sets can share the local route of one table.
ckpr_capture_routes() {
    local snap=$1 mark=$2 table=$3 priority=$4 families=$5 f item key present
    local -a fams
    mkdir -p "$snap/routes"
    IFS=, read -r -a fams <<<"$families"
    for f in "${fams[@]}"; do
        for item in "rule $f $priority $mark $table" "route $f $table"; do
            key=$(ckpr_key "$item")
            if [ -e "$snap/routes/$key.present" ] || [ -e "$snap/routes/$key.absent" ]; then continue; fi
            present=0
            case "$item" in
                rule*) if ckpr_rule_present "$(ckpr_family_flag "$f")" "$priority" "$mark" "$table"; then present=1; fi ;;
                route*) if ckpr_route_present "$f" "$table"; then present=1; fi ;;
            esac
            if [ "$present" = 1 ]; then echo "$item" >"$snap/routes/$key.present"; else echo "$item" >"$snap/routes/$key.absent"; fi
        done
    done
}

# Records our own bookkeeping files (live, manifest, applied.nft), once per snapshot.
ckpr_capture_bookkeeping() {
    local snap=$1 state=$2 name
    mkdir -p "$snap/state"
    [ -e "$snap/state/done" ] && return 0
    for name in live manifest applied.nft; do
        if [ -e "$state/$name" ]; then cp -p "$state/$name" "$snap/state/$name"; fi
    done
    : >"$snap/state/done"
}

# Records whether UNIT is enabled, once per snapshot.
ckpr_capture_unit() {
    local snap=$1 unit=$2 systemd=$3
    mkdir -p "$snap/units"
    [ -e "$snap/units/$unit" ] && return 0
    if ckpr_systemd_on "$systemd" && systemctl -q is-enabled "$unit" 2>/dev/null; then
        echo enabled >"$snap/units/$unit"
    else
        echo disabled >"$snap/units/$unit"
    fi
}

# Replaces PATH atomically with SRC's bytes (temp file in the same directory + rename).
ckpr_install_file() {
    local src=$1 mode=$2 owner=$3 path=$4 tmp
    tmp="$path.ckpr-new.$$"
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" -- "$src" "$tmp"
    mv -f -- "$tmp" "$path"
}

ckpr_replace_table() {
    local name=$1 definition=$2
    { printf 'table inet %s {}\ndelete table inet %s\n' "$name" "$name"; cat -- "$definition"; } | nft -f -
}

# Runs one restore step; a failure is logged and remembered, and the restore goes on with the
# next step (a half-finished restore is worse than one that did all it could).
ckpr_try() {
    if ! "$@"; then
        ckpr_log "warning: restore step failed: $*"
        ckpr_restore_ok=0
    fi
}

ckpr_put_back() {
    local data=$1 path=$2
    cp -p -- "$data" "$path.ckpr-restore.$$" && mv -f -- "$path.ckpr-restore.$$" "$path"
}

ckpr_add_rule() {
    local flag=$1 priority=$2 mark=$3 table=$4
    if ! ckpr_rule_present "$flag" "$priority" "$mark" "$table"; then
        ip "$flag" rule add pref "$priority" fwmark "$mark" lookup "$table"
    fi
}

ckpr_add_route() {
    local fam=$1 table=$2
    if ! ckpr_route_present "$fam" "$table"; then
        ip "$(ckpr_family_flag "$fam")" route replace local "$(ckpr_default_prefix "$fam")" dev lo table "$table"
    fi
}

ckpr_del_rule() {
    local flag=$1 priority=$2 mark=$3 table=$4 tries=0
    while ckpr_rule_present "$flag" "$priority" "$mark" "$table"; do
        tries=$((tries + 1))
        [ "$tries" -le 32 ] || return 1
        ip "$flag" rule del pref "$priority" from all fwmark "$mark" lookup "$table"
    done
}

ckpr_del_route() {
    local fam=$1 table=$2
    if ckpr_route_present "$fam" "$table"; then
        ip "$(ckpr_family_flag "$fam")" route del local "$(ckpr_default_prefix "$fam")" dev lo table "$table"
    fi
}

ckpr_drop_table() {
    if nft list table inet "$1" >/dev/null 2>&1; then nft delete table inet "$1"; fi
}

# ckpr_restore_routes SNAP add|del: adds each rule and route SNAP recorded present, or deletes each
# it recorded absent (ckpr_capture_routes).
ckpr_restore_routes() {
    local snap=$1 op=$2 recorded=absent f kind fam a b c
    if [ "$op" = add ]; then recorded=present; fi
    for f in "$snap"/routes/*."$recorded"; do
        [ -e "$f" ] || continue
        read -r kind fam a b c <"$f"
        if [ "$kind" = rule ]; then
            ckpr_try "ckpr_${op}_rule" "$(ckpr_family_flag "$fam")" "$a" "$b" "$c"
        else
            ckpr_try "ckpr_${op}_route" "$fam" "$a"
        fi
    done
}

# Puts back everything SNAP recorded. The live configuration (STATE/live) is taken down
# first, so items that exist now but not in SNAP disappear. Best effort: every step runs;
# returns 1 if any step failed (the caller keeps its records so the restore can be retried).
ckpr_restore() {
    local snap=$1 state=$2 systemd=$3 bin=$ckpr_lib_dir
    local live_table live_mark live_rt live_prio live_fams live_unit f unit status path key name
    ckpr_restore_ok=1
    if [ -e "$state/live" ]; then
        read -r live_table live_mark live_rt live_prio live_fams live_unit <"$state/live"
        if ckpr_systemd_on "$systemd" && systemctl -q is-active "$live_unit" 2>/dev/null; then
            # Runs the unit's ExecStop (routes down) so systemd's view matches the node.
            ckpr_try systemctl stop "$live_unit"
        fi
        ckpr_try bash "$bin/policy-routes.sh" down "$live_mark" "$live_rt" "$live_prio" "$live_fams"
        : "$live_table"
    fi
    if ckpr_systemd_on "$systemd" || [ "$systemd" = boot ]; then
        # Disable while the unit file still exists, or its wants/ symlink would be left dangling.
        local no_reload=()
        if [ "$systemd" = boot ]; then no_reload=(--no-reload); fi
        for unit in "$snap"/units/*; do
            [ -e "$unit" ] || continue
            read -r status <"$unit"
            if [ "$status" != enabled ]; then systemctl disable "${no_reload[@]}" "${unit##*/}" 2>/dev/null || true; fi
        done
    fi
    for f in "$snap"/files/*.path; do
        [ -e "$f" ] || continue
        path=$(cat -- "$f")
        key=${f##*/}; key=${key%.path}
        if [ -e "$snap/files/$key.data" ]; then
            ckpr_try ckpr_put_back "$snap/files/$key.data" "$path"
        else
            ckpr_try rm -f -- "$path"
        fi
    done
    if [ -s "$snap/created-dirs" ]; then
        # Deepest first; a directory someone else put files into stays.
        sort -r "$snap/created-dirs" | while read -r f; do rmdir -- "$f" 2>/dev/null || true; done
    fi
    for f in "$snap"/nft/*; do
        [ -e "$f" ] || continue
        name=${f##*/}
        case "$name" in
            *.nft) ckpr_try ckpr_replace_table "${name%.nft}" "$f" ;;
            *.absent) ckpr_try ckpr_drop_table "${name%.absent}" ;;
        esac
    done
    ckpr_restore_routes "$snap" add
    # Items recorded absent go again (an apply that failed after bringing routes up has no
    # live record yet, so the live take-down above does not cover them).
    ckpr_restore_routes "$snap" del
    if [ -e "$snap/state/done" ]; then
        for f in live manifest applied.nft; do
            if [ -e "$snap/state/$f" ]; then ckpr_try cp -p "$snap/state/$f" "$state/$f"; else rm -f "$state/$f"; fi
        done
    fi
    if ckpr_systemd_on "$systemd"; then
        ckpr_try systemctl daemon-reload
        for unit in "$snap"/units/*; do
            [ -e "$unit" ] || continue
            read -r status <"$unit"
            if [ "$status" = enabled ]; then
                ckpr_try systemctl enable "${unit##*/}"
                ckpr_try systemctl start "${unit##*/}"
            fi
        done
    elif [ "$systemd" = boot ]; then
        # The tables and routes above are the restored kernel state; the unit only needs enabling.
        for unit in "$snap"/units/*; do
            [ -e "$unit" ] || continue
            read -r status <"$unit"
            if [ "$status" = enabled ]; then ckpr_try systemctl enable --no-reload "${unit##*/}"; fi
        done
    fi
    [ "$ckpr_restore_ok" = 1 ]
}

# Stops an armed revert (if any) and forgets it. Caller holds the lock.
ckpr_disarm() {
    local state=$1 gen launcher pid
    [ -e "$state/pending" ] || return 0
    read -r gen launcher pid <"$state/pending"
    case "$launcher" in
        systemd)
            systemctl stop "ckpr-tproxy-revert-$gen.timer" 2>/dev/null || true
            systemctl stop "ckpr-tproxy-revert-$gen.service" 2>/dev/null || true
            ;;
        setsid)
            if [ -n "${pid:-}" ] && grep -qa tproxy-revert "/proc/$pid/cmdline" 2>/dev/null; then
                kill -TERM -- "-$pid" 2>/dev/null || true
            fi
            ;;
    esac
    rm -f "$state/pending" "$state/revert-$gen.pid"
}
