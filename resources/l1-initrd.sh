#!/usr/bin/env bash
# Compose the L1 initramfs: the cached base image (busybox, modules, L2 kernel + initrd; built by
# build-images.sh) followed by a small overlay cpio with /init, /bin/rvvmm and the test scenarios.
# Linux unpacks concatenated gzip'd cpio archives in order. Prints the path of the result.
# RVVMM_L1_QEMU=1: QEMU-KVM too (images/l1-qemu.cpio.gz of `build-images.sh --with-qemu`, between the
# base and the overlay), written to target/l1/l1-<name>-qemu.cpio.gz; the default output is left alone.
# The result stays in the clone (target/l1/): it holds this clone's rvvmm; the base comes from the cache.
set -euo pipefail
. "$(dirname "$0")/common.sh"
name=$(rvvmm_l1_kernel_name)
base="$RVVMM_CACHE/images/l1-base-$name.cpio.gz"
mkdir -p "$RVVMM_L1_DIR"
out="$RVVMM_L1_DIR/l1-$name.cpio.gz"
extra=()
if [ "${RVVMM_L1_QEMU:-0}" = 1 ]; then
  qemu="$RVVMM_CACHE/images/l1-qemu.cpio.gz"
  [ -f "$qemu" ] || { echo "l1-initrd: missing $qemu: run resources/build-images.sh --with-qemu" >&2; exit 1; }
  extra=("$qemu")
  out="$RVVMM_L1_DIR/l1-$name-qemu.cpio.gz"
fi
[ -f "$base" ] || { echo "l1-initrd: missing $base: run resources/build-images.sh" >&2; exit 1; }
[ -x "$RVVMM_BIN" ] || { echo "l1-initrd: missing $RVVMM_BIN: run resources/build-rvvmm.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/scenarios"
install -m 0755 "$RVVMM_ROOT/resources/l1/init" "$work/root/init"
# Under usr/: the base image's /lib is a symlink to usr/lib, which a /lib directory in this archive would
# replace (taking every kernel module out of reach).
install -D -m 0644 "$RVVMM_ROOT/resources/l1/args.sh" "$work/root/usr/lib/rvvmm/args.sh"
install -m 0755 "$RVVMM_BIN" "$work/root/bin/rvvmm"
cp "$RVVMM_ROOT"/tests/scenarios/*.sh "$work/root/scenarios/"
# Bare-metal test guests, assembled with the riscv64 cross toolchain.
mkdir -p "$work/root/guests"
for mode in 0 1 2 3 4; do
  riscv64-linux-gnu-gcc -nostdlib -nostartfiles -static -march=rv64gc -mabi=lp64d -DMODE=$mode \
    -Wl,-Ttext=0x80200000 -Wl,--build-id=none -o "$work/sbi.elf" "$RVVMM_ROOT/tests/guests/sbi-test.S"
  riscv64-linux-gnu-objcopy -O binary "$work/sbi.elf" "$work/root/guests/sbi-test-$mode.bin"
done
# The bare-metal Rust test kernel (tests/guests/baremetal), as an ELF and as a raw binary.
bm=$RVVMM_ROOT/tests/guests/baremetal
(cd "$bm" && cargo build --quiet --release --target-dir "$RVVMM_ROOT/target/baremetal") >&2
bm_elf=$RVVMM_ROOT/target/baremetal/riscv64gc-unknown-none-elf/release/rvvmm-baremetal-test
install -m 0644 "$bm_elf" "$work/root/guests/bm.elf"
riscv64-linux-gnu-objcopy -O binary "$bm_elf" "$work/root/guests/bm.bin"
# Disk benchmark tool (tests/scenarios/bench-disk.sh), a static riscv64 Linux program.
riscv64-linux-gnu-gcc -static -O2 -o "$work/root/guests/iobench" "$RVVMM_ROOT/tests/guests/iobench.c"
# Opens a tap and hands its fd to rvvmm (--net fd=N), as an orchestrator does (tests/guests/tapfd.c).
riscv64-linux-gnu-gcc -static -O2 -Wall -Werror -o "$work/root/guests/tapfd" "$RVVMM_ROOT/tests/guests/tapfd.c"
# vsock stream check (tests/guests/vsock-test.c): runs in L1 and, handed over as a raw disk, in L2.
riscv64-linux-gnu-gcc -static -O2 -Wall -Werror -o "$work/root/guests/vsock-test" "$RVVMM_ROOT/tests/guests/vsock-test.c"
# The side-by-side benchmark's clock, TCP and round-trip tool (tests/scenarios/bench-vmm.sh).
riscv64-linux-gnu-gcc -static -O2 -Wall -Werror -o "$work/root/guests/vmbench" "$RVVMM_ROOT/tests/guests/vmbench.c"
for l in lib lib64 sbin; do
  [ ! -e "$work/root/$l" ] || { echo "l1-initrd: the overlay must not hold /$l (a symlink in the base image)" >&2; exit 1; }
done
(cd "$work/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$work/overlay.cpio.gz"
cat "$base" "${extra[@]}" "$work/overlay.cpio.gz" > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
