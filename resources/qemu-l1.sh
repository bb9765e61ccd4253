#!/usr/bin/env bash
# Boot the L1 riscv64 host under qemu-system-riscv64 (TCG) with the composed initramfs.
# Usage: qemu-l1.sh [--machine aia|plic] [--smp N] [--mem SIZE] [--append "k=v ..."] [--interactive]
# Defaults come from RVVMM_L1_MACHINE (aia), RVVMM_L1_SMP (2), RVVMM_L1_MEM (4G), RVVMM_L1_KERNEL (trixie).
# --interactive moves QEMU's escape key to Ctrl-] so that Ctrl-A reaches rvvmm inside L1.
set -euo pipefail
. "$(dirname "$0")/common.sh"
machine=${RVVMM_L1_MACHINE:-aia}
smp=${RVVMM_L1_SMP:-2}
mem=${RVVMM_L1_MEM:-4G}
append=""
interactive=0
while [ $# -gt 0 ]; do
  case "$1" in
    --machine) machine=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --interactive) interactive=1; shift ;;
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
initrd="$RVVMM_CACHE/images/l1-$name.cpio.gz"
for f in "$kernel" "$initrd"; do
  [ -f "$f" ] || { echo "qemu-l1: missing $f (run resources/build-images.sh and resources/l1-initrd.sh)" >&2; exit 1; }
done
extra=()
[ "$interactive" = 1 ] && extra+=(-echr 0x1d)
exec qemu-system-riscv64 -machine "$mopt" -cpu rv64 -smp "$smp" -m "$mem" -nographic -no-reboot \
  "${extra[@]}" -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=-1 $append"
