#!/bin/sh
# cilium-kpr's node runner: how every node step runs its script (components/commands/remoteCommand.ts).
# The step's command text checks this file's sha256 (the node store holds it under that name), then
# runs it as `sh -c "$runner" cilium-kpr-runner STORE FILE... -- ARG...`, where each FILE is
#   -f SHA256 NAME          copy the store's file SHA256 to NAME and check its sha256 there,
#   -i NAME SHA256 TEXT     write TEXT (carried in the command text) to NAME and check its sha256,
#   -b NAME SHA256 BASE64   the same for a text carried base64-encoded (bytes outside ASCII),
# NAME relative to a private stage directory. The first FILE is the script: it runs with bash as root
# (`sudo -n` for a non-root SSH user: no password prompt can hang the run), PATH pinned (nodes' sbin
# directories, where nft, ip, iptables and systemctl live, are not on a non-login SSH PATH
# everywhere), stdin closed, and the ARGs, of which one that is exactly {stage} stands for the stage
# directory. A file that is missing or differs stops the step before anything runs.
# Output: the script's stderr as it is written, its stdout held back until it ends, so a failure's
# reason comes first; then the script's exit status.
set -eu
umask 077
ckpr_store=$1
shift
ckpr_stage=$(mktemp -d "${TMPDIR:-/tmp}/ckpr.XXXXXXXX")
trap 'rm -rf "$ckpr_stage"' EXIT
ckpr_script=

ckpr_refuse() {
    echo "cilium-kpr: $1; nothing was run" >&2
    exit 1
}

# ckpr_place NAME: makes NAME's directory in the stage; the first file placed is the script.
ckpr_place() {
    case $1 in
    */*) mkdir -p "$ckpr_stage/${1%/*}" ;;
    esac
    [ -n "$ckpr_script" ] || ckpr_script=$1
}

# ckpr_check SHA256 NAME: the staged file has that digest.
ckpr_check() {
    printf '%s  %s\n' "$1" "$2" | (cd "$ckpr_stage" && sha256sum --quiet --strict -c - >&2)
}

while [ "$#" -gt 0 ]; do
    case $1 in
    -f)
        ckpr_place "$3"
        if ! { cp -- "$ckpr_store/$2" "$ckpr_stage/$3" && ckpr_check "$2" "$3"; }; then
            ckpr_refuse "$3 (sha256 $2) is missing from the node store $ckpr_store or differs (node-store step)"
        fi
        shift 3
        ;;
    -i | -b)
        ckpr_place "$2"
        if [ "$1" = -i ]; then
            printf '%s' "$4" >"$ckpr_stage/$2"
        else
            printf '%s' "$4" | base64 -d >"$ckpr_stage/$2"
        fi
        ckpr_check "$3" "$2" || ckpr_refuse "a staged file does not match its checksum"
        shift 4
        ;;
    --)
        shift
        break
        ;;
    *) ckpr_refuse "the node runner does not know the argument '$1'" ;;
    esac
done
[ -n "$ckpr_script" ] || ckpr_refuse "the node runner was given no script"

for ckpr_arg; do
    shift
    if [ "$ckpr_arg" = "{stage}" ]; then set -- "$@" "$ckpr_stage"; else set -- "$@" "$ckpr_arg"; fi
done
set -- env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash "$ckpr_stage/$ckpr_script" "$@"
if [ "$(id -u)" -ne 0 ]; then set -- sudo -n "$@"; fi

ckpr_status=0
"$@" </dev/null >"$ckpr_stage/.stdout" || ckpr_status=$?
cat "$ckpr_stage/.stdout"
exit "$ckpr_status"
