#!/usr/bin/env bash
# The root filesystem of the systemd lab nodes (lab/systemdNode.ts): Debian bookworm
# from Debian's own packages, built with mmdebstrap, cached under CACHE_DIR so a reused machine
# finds it again. The cache key is a hash of this file, so changing the package list or the
# build steps below builds a new one.
#
# usage: node-rootfs.sh path    prints the directory the lab boots (may not exist yet)
#        node-rootfs.sh build   builds the tarball and unpacks it, unless both are cached
#
# The tarball (rootfs-KEY.tar) is the cache artifact; rootfs-KEY/ is it unpacked, which the lab
# uses read-only as the lower layer of every node's overlay. Both appear atomically (temp + rename).
set -euo pipefail

CACHE_DIR=${KPR_ROOTFS_CACHE:-/var/cache/cilium-kpr}
SUITE=bookworm
MIRRORS=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)
# What the product's node scripts call (components/tproxy/scripts/*.sh, the unit in
# components/tproxy/policyRoutes.ts): bash, nft, ip, flock/setsid (util-linux), sha256sum/od/
# install/stat (coreutils), cmp (diffutils), awk (mawk), logger (bsdutils), systemctl/systemd-run.
# Plus what a node runs: systemd as PID 1, sshd, keepalived; and the lab's python3 endpoints.
PACKAGES=(
    systemd systemd-sysv dbus
    openssh-server
    nftables iproute2 iptables
    keepalived
    python3
    util-linux bsdutils diffutils coreutils mawk procps
)

key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
dir="$CACHE_DIR/rootfs-$key"
tarball="$dir.tar"

case "${1:-}" in
    path)
        echo "$dir"
        exit 0
        ;;
    build) ;;
    *)
        echo "usage: $0 path|build" >&2
        exit 2
        ;;
esac

if [ -d "$dir" ]; then
    echo "node rootfs: cached at $dir"
    exit 0
fi
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock -w 1800 9
if [ -d "$dir" ]; then
    echo "node rootfs: cached at $dir"
    exit 0
fi

started=$(date +%s)
if [ ! -f "$tarball" ]; then
    include=$(IFS=,; echo "${PACKAGES[*]}")
    # Customize hooks (run on the finished tree, "$1" is its root):
    # - no SSH host keys: every node gets its own, written by the lab before the first boot;
    # - no machine-id: systemd-nspawn hands each container one;
    # - no gettys (nobody logs in on the console) and no periodic jobs during a test;
    # - sshd as the plain ssh.service (bookworm enables ssh.socket too, which conflicts with it);
    # - an empty keepalived.conf keeps keepalived.service off (ConditionFileNotEmpty) until a test
    #   writes one.
    # shellcheck disable=SC2016 # mmdebstrap expands "$1" in its hooks, not this shell
    mmdebstrap --variant=minbase --include="$include" --format=tar \
        --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
        --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id' \
        --customize-hook='chroot "$1" systemctl mask console-getty.service getty@.service serial-getty@.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer' \
        --customize-hook='chroot "$1" systemctl disable ssh.socket' \
        --customize-hook='mkdir -p "$1"/etc/keepalived && : >"$1"/etc/keepalived/keepalived.conf' \
        "$SUITE" "$tarball.tmp" "${MIRRORS[@]}"
    mv -f "$tarball.tmp" "$tarball"
fi
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
tar -C "$dir.tmp" --numeric-owner -xpf "$tarball"
mv "$dir.tmp" "$dir"
echo "node rootfs: built $dir in $(($(date +%s) - started)) s"
# Older builds (another package list) are dead weight on a reused machine.
for old in "$CACHE_DIR"/rootfs-*; do
    case "$old" in
        "$dir" | "$tarball") ;;
        *) rm -rf -- "$old" ;;
    esac
done
