# The Debian guest's side of L1 (sourced by tests/scenarios/distro.sh and by resources/l1/init for
# `resources/run.sh --distro`): its disks from `resources/qemu-l1.sh --distro`, a tap with a DHCP server
# (busybox udhcpd) that always leases $DISTRO_IP to the guest's MAC, and the rvvmm command line.
DISTRO_MAC=52:54:00:d1:57:00
DISTRO_IP=192.168.77.10
DISTRO_TAP=dtap0
DISTRO_CMDLINE="root=/dev/vda ro console=ttyS0 quiet"

# distro_setup DIR: find the two disks (by their serials), unpack the boot tar into DIR/boot (kernel,
# initramfs, ssh key), bring up the tap and the DHCP server. Sets $DISTRO_ROOT_DEV and $DISTRO_DIR.
distro_setup() {
  DISTRO_DIR=$1
  mkdir -p "$DISTRO_DIR/boot"
  modprobe -q virtio_mmio 2>/dev/null
  modprobe -q virtio_blk 2>/dev/null
  modprobe -q tun 2>/dev/null
  DISTRO_ROOT_DEV=""
  boot_dev=""
  i=0
  while [ -z "$DISTRO_ROOT_DEV" ] || [ -z "$boot_dev" ]; do
    for d in /sys/block/vd*; do
      [ -e "$d/serial" ] || continue
      case "$(cat "$d/serial")" in
        rvvmm-distro-root) DISTRO_ROOT_DEV=/dev/${d##*/} ;;
        rvvmm-distro-boot) boot_dev=/dev/${d##*/} ;;
      esac
    done
    i=$((i + 1))
    if [ "$i" -gt 20 ]; then
      echo "DISTRO-NO-DISKS root=$DISTRO_ROOT_DEV boot=$boot_dev: L1 needs resources/qemu-l1.sh --distro DIR"
      return 1
    fi
    [ -n "$DISTRO_ROOT_DEV" ] && [ -n "$boot_dev" ] || sleep 0.5
  done
  echo "DISTRO-DISKS root=$DISTRO_ROOT_DEV boot=$boot_dev"
  tar -xf "$boot_dev" -C "$DISTRO_DIR/boot" || return 1
  chmod 600 "$DISTRO_DIR/boot/id_ed25519"
  # A persistent tap (it outlives each rvvmm, as the DHCP server on it does).
  tunctl -t "$DISTRO_TAP" >/dev/null || return 1
  ip addr add 192.168.77.1/24 dev "$DISTRO_TAP"
  ip link set "$DISTRO_TAP" up
  cat >"$DISTRO_DIR/udhcpd.conf" <<CONF
start 192.168.77.10
end 192.168.77.20
interface $DISTRO_TAP
lease_file $DISTRO_DIR/udhcpd.leases
option subnet 255.255.255.0
option lease 600
static_lease $DISTRO_MAC $DISTRO_IP
CONF
  touch "$DISTRO_DIR/udhcpd.leases"
  udhcpd -f "$DISTRO_DIR/udhcpd.conf" >"$DISTRO_DIR/udhcpd.log" 2>&1 &
  # ssh into the guest from L1: `guest-ssh [command]`.
  cat >/bin/guest-ssh <<SSH
#!/bin/sh
exec ssh -i $DISTRO_DIR/boot/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \\
  -o ConnectTimeout=10 -o BatchMode=yes \\
  -o LogLevel=ERROR root@$DISTRO_IP "\$@"
SSH
  chmod 755 /bin/guest-ssh
}

# distro_rvvmm_args: prints rvvmm's options for the Debian guest (all but --cmdline: $DISTRO_CMDLINE).
distro_rvvmm_args() {
  echo "--kernel $DISTRO_DIR/boot/vmlinux --initrd $DISTRO_DIR/boot/initrd.img --cores 2 --memory 1G" \
    "--disk path=$DISTRO_ROOT_DEV --net tap=$DISTRO_TAP,mac=$DISTRO_MAC --rng"
}
