#!/usr/bin/env bash
# Build the Debian guest: a Debian trixie riscv64 root filesystem (ext4, whole disk, no partition table)
# with systemd, udev, systemd-networkd (DHCP), openssh-server, Debian's kernel and its initramfs, made by
# mmdebstrap from Debian's packages. Maintainer scripts run under qemu-user through binfmt_misc (registered
# here if the machine has not: the "F" flag opens the interpreter now, so it works inside the chroot).
#
# Outputs, in ${RVVMM_DISTRO_CACHE:-${XDG_CACHE_HOME:-~/.cache}/rvvmm/distro}/<hash>/, where <hash> covers every input
# (this script, resources/distro/*, the date of the trixie archive's Release file in apt's lists):
#   root.img      the root filesystem (2 GiB sparse, label debian-root); copy it before writing to it
#   vmlinux       the guest kernel (Debian's linux-image-riscv64: a flat Image), initrd.img its initramfs
#   id_ed25519    the ssh key that logs in as root (its .pub is in root.img's /root/.ssh/authorized_keys)
#   boot.tar      vmlinux, initrd.img and id_ed25519 in one tar: L1 reads it from its second disk
# The console login is root / rvvmm. Prints the directory as the last line of stdout.
set -euo pipefail
shopt -s inherit_errexit

START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=trixie
MIRROR=http://deb.debian.org/debian
DCACHE=${RVVMM_DISTRO_CACHE:-${RVVMM_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rvvmm}/distro}
# What the image holds beyond mmdebstrap's minbase (apt, dpkg and the Essential set).
PACKAGES=(systemd-sysv udev dbus libpam-systemd openssh-server iproute2 iputils-ping e2fsprogs procps
  kmod linux-image-riscv64 initramfs-tools zstd)
log() { echo "[build-distro +$((SECONDS - START))s] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
for t in mmdebstrap mke2fs ssh-keygen tar sha256sum flock; do
  command -v "$t" >/dev/null || die "$t not found: run resources/setup-host.sh"
done

release=/var/lib/apt/lists/deb.debian.org_debian_dists_${SUITE}_InRelease
[ -f "$release" ] || die "no $release: run resources/setup-host.sh (it adds the riscv64 $SUITE sources)"
archive_date=$(sed -n 's/^Date: //p' "$release" | head -n 1)
inputs_hash=$(
  {
    echo "$SUITE $archive_date ${PACKAGES[*]}"
    sha256sum "${BASH_SOURCE[0]}" "$REPO"/resources/distro/* | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
out=$DCACHE/$inputs_hash
if [ -f "$out/boot.tar" ]; then
  log "cached: $out ($SUITE of $archive_date)"
  echo "$out"
  exit 0
fi

# riscv64 programs must run here for the maintainer scripts.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null ||
    die "binfmt_misc is not mounted at $binfmt and cannot be mounted here: the riscv64 maintainer scripts cannot run"
fi
if [ ! -e "$binfmt/qemu-riscv64" ]; then
  conf=/usr/lib/binfmt.d/qemu-riscv64.conf
  [ -f "$conf" ] || die "no $conf: run resources/setup-host.sh (it installs qemu-user-static)"
  log "registering qemu-riscv64 with binfmt_misc"
  grep -v '^#' "$conf" | head -n 1 >"$binfmt/register" || die "cannot register $conf with binfmt_misc"
fi

mkdir -p "$DCACHE"
exec 9>"$DCACHE/.lock"
flock 9
if [ -f "$out/boot.tar" ]; then # built by a concurrent run while we waited
  echo "$out"
  exit 0
fi
# remove_tree DIR: unmount whatever an interrupted mmdebstrap left mounted below DIR (its chroot's /proc,
# /sys, /dev), deepest first, then delete DIR without ever crossing into another filesystem.
remove_tree() {
  [ -e "$1" ] || return 0
  findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$1"
}
for stale in "$DCACHE"/tmp.*; do remove_tree "$stale"; done
work=$(mktemp -d "$DCACHE/tmp.XXXXXX")
trap 'remove_tree "$work"' EXIT
mkdir "$work/out"

ssh-keygen -q -t ed25519 -N '' -C rvvmm-bench -f "$work/out/id_ed25519"

include=$(IFS=,; echo "${PACKAGES[*]}")
log "mmdebstrap $SUITE riscv64 (minbase + $include)"
# The initramfs: only what a virtio-blk root needs (MODULES=list), zstd-compressed; written before the
# kernel's postinst runs update-initramfs. Not a conffile of initramfs-tools, so dpkg never asks.
mmdebstrap --mode=root --arch=riscv64 --variant=minbase --components=main \
  --include="$include" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
  --setup-hook='printf "MODULES=list\nCOMPRESS=zstd\n" >"$1/etc/initramfs-tools/conf.d/rvvmm.conf"' \
  --setup-hook='printf "virtio_mmio\nvirtio_pci\nvirtio_blk\next4\ncrc32c_generic\n" >"$1/usr/share/initramfs-tools/modules.d/rvvmm"' \
  --customize-hook="$REPO/resources/distro/customize.sh \"\$1\" $work/out/id_ed25519.pub" \
  "$SUITE" "$work/root" "$MIRROR" >&2 || die "mmdebstrap failed"

kernel=$(find "$work/root/boot" -maxdepth 1 -name 'vmlinu*-riscv64' | sort | tail -n 1)
[ -n "$kernel" ] || die "no kernel in the image's /boot"
initrd=$(find "$work/root/boot" -maxdepth 1 -name 'initrd.img-*-riscv64' | sort | tail -n 1)
[ -n "$initrd" ] || die "no initramfs in the image's /boot"
cp "$kernel" "$work/out/vmlinux"
cp "$initrd" "$work/out/initrd.img"
log "kernel $(basename "$kernel") ($(du -h "$work/out/vmlinux" | cut -f1)), initramfs $(du -h "$work/out/initrd.img" | cut -f1)"

log "mke2fs: root.img from $(du -sh "$work/root" | cut -f1)"
mke2fs -q -t ext4 -L debian-root -d "$work/root" "$work/out/root.img" 2G || die "mke2fs failed"
tar -C "$work/out" -cf "$work/out/boot.tar" vmlinux initrd.img id_ed25519
mv "$work/out" "$out"
log "built $out"
echo "$out"
