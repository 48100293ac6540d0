#!/usr/bin/env bash
# stale-rules-cleanup.sh BACKEND
#
# Runs as root on one node after kube-proxy's DaemonSet is gone. Removes kube-proxy's
# iptables chains (KUBE-*) and every rule that jumps to them, IPv4 and IPv6, and leaves
# every other chain and rule (Cilium's CILIUM_*, the operator's own) untouched.
#
#   BACKEND (arg 1)  auto | nft | legacy. auto cleans every iptables backend whose save
#                    output holds kube-proxy chains (normally exactly one).
#
# How: for each backend and family, `*-save` is read, a small awk filter turns it into a
# delete-only restore script (-D for each jump into a kube-proxy chain, then -F and -X
# for each kube-proxy chain), and `*-restore --noflush` applies it. Each table block is one
# commit, so a table either changes completely or not at all; rules that are not deleted
# are never rewritten (unlike `save | grep -v KUBE | restore`, which would reload Cilium's
# rules too and undo anything Cilium changed in between). A rule that vanished meanwhile
# makes the commit fail and the script exit non-zero; running it again re-plans.
#
# Kept on purpose, because kubelet (not kube-proxy) owns them:
#   KUBE-KUBELET-CANARY  kubelet's canary; kubelet recreates its chains when it vanishes.
#   KUBE-IPTABLES-HINT   tells tools which iptables backend the node uses.
#   KUBE-FIREWALL        kubelet's copy of the "block incoming localnet connections" rule.
#                        kube-proxy leaves net.ipv4.conf.all.route_localnet=1 behind, and this
#                        rule is what stops other hosts reaching 127.0.0.0/8 services
#                        (CVE-2020-8558). Because the canary stays, kubelet would not put
#                        it back, so it must not be deleted here.
#
# Afterwards it re-reads every backend and fails if any kube-proxy chain or jump remains.
# Idempotent: a second run finds nothing to do and changes nothing.
# Undo: none needed; a restored kube-proxy recreates its own rules on its first sync.
# stdout: one JSON summary line. stderr: progress.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"

readonly SCRIPT=stale-rules-cleanup
BACKEND="${1:-auto}"

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
# Nodes need not have jq: JSON is printed by hand; values are plain words except messages.
json_string() {
    local text="${1//\\/\\\\}"
    text="${text//\"/\\\"}"
    printf '"%s"' "${text//$'\n'/ }"
}
json_list() {
    local out="" item
    for item in "$@"; do out+="${out:+,}$(json_string "$item")"; done
    printf '[%s]' "$out"
}
die() {
    log "ERROR: $*"
    printf '{"ok":false,"error":%s}\n' "$(json_string "$*")"
    exit 1
}

case "$BACKEND" in
    auto | nft | legacy) ;;
    *) die "BACKEND must be auto, nft or legacy, got '${BACKEND}'" ;;
esac

if [[ "$(id -u)" -ne 0 ]]; then die "must run as root"; fi
if pgrep -x kube-proxy >/dev/null 2>&1; then
    die "a kube-proxy process is still running on this node; it would recreate its rules. Remove the DaemonSet first"
fi

# Prints the delete-only restore script for one `*-save` output (empty when nothing to do).
plan_removal() {
    awk '
    BEGIN {
        keep["KUBE-KUBELET-CANARY"] = 1; keep["KUBE-IPTABLES-HINT"] = 1; keep["KUBE-FIREWALL"] = 1
    }
    function removable(name) { return name ~ /^KUBE-/ && !(name in keep) }
    # The target of -j/-g, skipping quoted words (comments) so their text is never mistaken for options.
    function jump_target(line,    i, c, n, tok, inq, quoted, toks, isq) {
        n = 0; tok = ""; inq = 0; quoted = 0
        split("", toks); split("", isq)
        for (i = 1; i <= length(line); i++) {
            c = substr(line, i, 1)
            if (inq) {
                if (c == "\\") { i++; tok = tok substr(line, i, 1); continue }
                if (c == "\"") { inq = 0; continue }
                tok = tok c; continue
            }
            if (c == "\"") { inq = 1; quoted = 1; continue }
            if (c == " ") {
                if (tok != "" || quoted) { toks[++n] = tok; isq[n] = quoted }
                tok = ""; quoted = 0; continue
            }
            tok = tok c
        }
        if (tok != "" || quoted) { toks[++n] = tok; isq[n] = quoted }
        for (i = 1; i < n; i++) {
            if (!isq[i] && (toks[i] == "-j" || toks[i] == "-g" || toks[i] == "--jump" || toks[i] == "--goto")) return toks[i + 1]
        }
        return ""
    }
    /^\*/ { table = substr($0, 2); nc = 0; nd = 0; split("", chains); split("", dels); next }
    /^:/ {
        name = substr($1, 2)
        if (removable(name)) chains[++nc] = name
        next
    }
    /^-A / {
        if (!removable($2) && removable(jump_target($0))) dels[++nd] = "-D" substr($0, 3)
        next
    }
    /^COMMIT/ {
        if (nc + nd > 0) {
            print "*" table
            for (i = 1; i <= nd; i++) print dels[i]
            for (i = 1; i <= nc; i++) print "-F " chains[i]
            for (i = 1; i <= nc; i++) print "-X " chains[i]
            print "COMMIT"
        }
        next
    }
    '
}

# Families present on this node: ip6tables only when the kernel has IPv6.
families=(iptables)
if [[ -e /proc/net/if_inet6 ]]; then families+=(ip6tables); fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# Writes the removal plan for FAMILY-BACKEND to $workdir/plan (empty when that tool is not
# installed or there is nothing to remove). Not called in a subshell, so a failing save aborts.
plan_for() {
    local family="$1" backend="$2" tool="$1-$2-save"
    : >"$workdir/plan"
    if ! command -v "$tool" >/dev/null 2>&1; then return 0; fi
    # stderr kept aside: iptables-nft-save warns on every call when legacy tables also exist.
    "$tool" >"$workdir/save" 2>"$workdir/save.err" || die "$tool failed: $(cat "$workdir/save.err")"
    plan_removal <"$workdir/save" >"$workdir/plan" || die "could not plan the removal for $family-$backend"
}

backend_has_kube_chains() {
    local family
    for family in "${families[@]}"; do
        plan_for "$family" "$1"
        if [[ -s "$workdir/plan" ]]; then return 0; fi
    done
    return 1
}

selected=()
case "$BACKEND" in
    auto)
        for candidate in nft legacy; do
            has=0
            backend_has_kube_chains "$candidate" || has=$?
            if [[ "$has" -eq 0 ]]; then selected+=("$candidate"); fi
        done
        ;;
    *)
        command -v "iptables-${BACKEND}-save" >/dev/null 2>&1 || die "iptables-${BACKEND}-save is not installed"
        selected=("$BACKEND")
        ;;
esac

changed=()
for backend in "${selected[@]}"; do
    for family in "${families[@]}"; do
        plan_for "$family" "$backend"
        if [[ ! -s "$workdir/plan" ]]; then
            log "${family}-${backend}: no kube-proxy chains"
            continue
        fi
        chains="$(grep -c '^-X ' "$workdir/plan" || true)"
        jumps="$(grep -c '^-D ' "$workdir/plan" || true)"
        log "${family}-${backend}: removing ${chains} kube-proxy chains and ${jumps} jumps into them"
        if ! "${family}-${backend}-restore" --noflush --wait 10 <"$workdir/plan"; then
            die "${family}-${backend}-restore refused the removal (rules changed meanwhile?); nothing in the failing table was changed, run again"
        fi
        changed+=("${family}-${backend}")
    done
done
if [[ "${#selected[@]}" -eq 0 ]]; then log "no iptables backend holds kube-proxy chains; nothing to do"; fi

# Verify every backend, not only the cleaned ones: stale rules in the other backend would
# still intercept Service traffic.
leftovers=()
for backend in nft legacy; do
    for family in "${families[@]}"; do
        plan_for "$family" "$backend"
        if [[ -s "$workdir/plan" ]]; then
            log "${family}-${backend} still holds kube-proxy rules:"
            cat "$workdir/plan" >&2
            leftovers+=("${family}-${backend}")
        fi
    done
done
if [[ "${#leftovers[@]}" -gt 0 ]]; then
    die "kube-proxy rules remain in: ${leftovers[*]}"
fi

changed_any=false
if [[ "${#changed[@]}" -gt 0 ]]; then changed_any=true; fi
printf '{"ok":true,"backend":"%s","cleanedBackends":%s,"changedTables":%s,"changed":%s}\n' \
    "$BACKEND" "$(json_list "${selected[@]}")" "$(json_list "${changed[@]}")" "$changed_any"
