#!/bin/sh
# mmdebstrap --customize-hook for the Debian guest image (resources/build-distro.sh): runs on L0 with the
# finished riscv64 root filesystem at $1 (programs inside run through qemu-user; binfmt_misc).
# $2: the ssh public key that may log in as root.
set -eu
root=$1
pubkey=$2

echo debian-rvvmm >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	debian-rvvmm
::1		localhost ip6-localhost ip6-loopback
HOSTS

# The root filesystem is rvvmm's first --disk (virtio-blk, /dev/vda): whole disk, no partition table.
cat >"$root/etc/fstab" <<'FSTAB'
# <file system> <mount point> <type> <options> <dump> <pass>
LABEL=debian-root / ext4 errors=remount-ro 0 1
FSTAB

# DHCP on every wired interface (rvvmm's virtio-net is enp0s? on PCI, eth0 / end0 on virtio-mmio).
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/20-wired.network" <<'NET'
[Match]
Name=e*

[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1

# The known test login: root / rvvmm on the console; ssh with the key of the bench (no passwords over ssh).
echo 'root:rvvmm' | chroot "$root" chpasswd
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$pubkey" "$root/root/.ssh/authorized_keys"

# minbase has no locales: C.UTF-8 is built into glibc (without this file pam_env warns at every login).
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"

# A VM has no hardware clock to keep in sync and no wall clock worth waiting for.
chroot "$root" systemctl mask systemd-timesyncd.service >/dev/null 2>&1 || true

# Built under emulation: no apt caches or logs of the build in the image.
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* "$root/var/log/"*.log
