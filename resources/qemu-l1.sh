#!/usr/bin/env bash
# Boot the L1 riscv64 host under qemu-system-riscv64 (TCG) with the composed initramfs.
# Usage: qemu-l1.sh [--machine aia|plic] [--smp N] [--mem SIZE] [--append "k=v ..."] [--interactive]
#                   [--pci-passthrough DIR] [--with-qemu] [--distro DIR]
# --pci-passthrough DIR gives L1 a RISC-V IOMMU (riscv-iommu-pci, L1's 0000:00:01.0) with two PCI devices
# behind it for VFIO tests, each in an IOMMU group of its own:
#   0000:00:02.0 virtio-blk-pci (1af4:1042), backed by DIR/pt-disk.img: the file as it is (the test runner
#                writes known data there before each boot), or 64 MiB of fresh random data when it does
#                not exist. Its sha256 at boot goes to DIR/pt-disk.img.sha256 and to L1's command line as
#                rvvmm.pt_disk_sha256=.
#   0000:00:03.0 virtio-net-pci (1af4:1041, MAC 52:54:00:12:34:56) on QEMU's user-mode network (DHCP
#                10.0.2.15, gateway 10.0.2.2; a TCP echo service, `cat` run by QEMU, at 10.0.2.100:7777).
# Both are modern-only (disable-legacy=on: memory BARs, MSI-X) and iommu_platform=on (else QEMU's virtio
# devices bypass the IOMMU). Needs an L1 kernel with the RISC-V IOMMU driver: RVVMM_L1_KERNEL=vfio.
# Defaults come from RVVMM_L1_MACHINE (aia), RVVMM_L1_SMP (2), RVVMM_L1_MEM (4G), RVVMM_L1_KERNEL (trixie),
# RVVMM_L1_PCI (DIR for --pci-passthrough; none), RVVMM_L1_CPU (QEMU's -cpu for L1; rv64).
# --with-qemu (or RVVMM_L1_QEMU=1) boots the initramfs that also holds QEMU-KVM for L1
# (target/l1/l1-<name>-qemu.cpio.gz: `build-images.sh --with-qemu`, then `RVVMM_L1_QEMU=1 l1-initrd.sh`).
# --distro DIR gives L1 the Debian guest of resources/build-distro.sh as two virtio-blk disks: DIR/root.img
# (serial rvvmm-distro-root; written by the guest: pass a copy) and DIR/boot.tar read-only (serial
# rvvmm-distro-boot: the guest's kernel, initramfs and the ssh key, a tar that L1 unpacks from the disk).
# --interactive moves QEMU's escape key to Ctrl-] so that Ctrl-A reaches rvvmm inside L1.
set -euo pipefail
. "$(dirname "$0")/common.sh"
machine=${RVVMM_L1_MACHINE:-aia}
smp=${RVVMM_L1_SMP:-2}
mem=${RVVMM_L1_MEM:-4G}
append=""
interactive=0
ptdir=${RVVMM_L1_PCI:-}
with_qemu=${RVVMM_L1_QEMU:-0}
distro=""
while [ $# -gt 0 ]; do
  case "$1" in
    --machine) machine=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --interactive) interactive=1; shift ;;
    --pci-passthrough) ptdir=$2; shift 2 ;;
    --with-qemu) with_qemu=1; shift ;;
    --distro) distro=$2; shift 2 ;;
    *) echo "qemu-l1: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$machine" in
  aia) mopt="virt,aia=aplic-imsic,aia-guests=4" ;;
  plic) mopt="virt" ;;
  *) echo "qemu-l1: --machine must be aia or plic" >&2; exit 2 ;;
esac
name=$(rvvmm_l1_kernel_name)
kernel="$RVVMM_CACHE/images/l1-Image-$name"
initrd="$RVVMM_L1_DIR/l1-$name.cpio.gz"
hint="resources/build-images.sh and resources/l1-initrd.sh"
if [ "$with_qemu" = 1 ]; then
  initrd="$RVVMM_L1_DIR/l1-$name-qemu.cpio.gz"
  hint="resources/build-images.sh --with-qemu and RVVMM_L1_QEMU=1 resources/l1-initrd.sh"
fi
for f in "$kernel" "$initrd"; do
  [ -f "$f" ] || { echo "qemu-l1: missing $f (run $hint)" >&2; exit 1; }
done
extra=()
cpu=${RVVMM_L1_CPU:-rv64}
[ "$interactive" = 1 ] && extra+=(-echr 0x1d)
if [ -n "$ptdir" ]; then
  mkdir -p "$ptdir"
  disk="$ptdir/pt-disk.img"
  [ -f "$disk" ] || head -c $((64 << 20)) /dev/urandom >"$disk"
  sha256sum "$disk" | cut -d' ' -f1 >"$disk.sha256"
  append="$append rvvmm.pt_disk_sha256=$(cat "$disk.sha256")"
  # Sscofpmf lets L1's KVM offer L2 the SBI PMU; without it an L2 Linux never sets scounteren.TM and its
  # user programs cannot read the time (udhcpc and ping die of an illegal instruction).
  cpu=rv64,sscofpmf=true
  extra+=(-device riscv-iommu-pci,addr=01.0
    -drive "file=$disk,if=none,id=ptdisk,format=raw,cache=writethrough"
    -device virtio-blk-pci,drive=ptdisk,addr=02.0,disable-legacy=on,iommu_platform=on
    -netdev "user,id=ptnet,net=10.0.2.0/24,guestfwd=tcp:10.0.2.100:7777-cmd:cat"
    -device virtio-net-pci,netdev=ptnet,addr=03.0,disable-legacy=on,iommu_platform=on,mac=52:54:00:12:34:56,romfile=)
fi
if [ -n "$distro" ]; then
  for f in "$distro/root.img" "$distro/boot.tar"; do
    [ -f "$f" ] || { echo "qemu-l1: missing $f (resources/build-distro.sh builds it)" >&2; exit 1; }
  done
  extra+=(-drive "file=$distro/root.img,if=none,id=droot,format=raw,cache=writeback"
    -device virtio-blk-device,drive=droot,serial=rvvmm-distro-root
    -drive "file=$distro/boot.tar,if=none,id=dboot,format=raw,readonly=on"
    -device virtio-blk-device,drive=dboot,serial=rvvmm-distro-boot)
fi
exec qemu-system-riscv64 -machine "$mopt" -cpu "$cpu" -smp "$smp" -m "$mem" -nographic -no-reboot \
  "${extra[@]}" -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=-1 $append"
