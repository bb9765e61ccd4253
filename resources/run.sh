#!/usr/bin/env bash
# For people on x86_64: build what is missing, boot the nested riscv64 host (L1) under QEMU and start rvvmm
# there, attached to this terminal.
#   resources/run.sh [rvvmm options]   the Debian guest kernel with the project's busybox initramfs
#   resources/run.sh --distro          Debian trixie with systemd from a virtio-blk root disk
#                                      (resources/build-distro.sh); login root / rvvmm on the console
#   resources/run.sh --distro-ssh      the same guest in the background and an L1 shell: `guest-ssh`
#                                      logs in to it over the tap (DHCP from L1's udhcpd)
#   In the guest: `poweroff` ends the VM.  Ctrl-A x: stop rvvmm from the outside (back to the L1 shell).
#   In the L1 shell: `poweroff` ends QEMU.  Ctrl-] x: kill QEMU at once.
# Extra rvvmm options: resources/run.sh --cores 1 --memory 256M --cmdline "console=ttyS0 quiet"
# (passed through L1's kernel command line as rvvmm.args, each argument intact: commas, spaces and quotes
# included; resources/common.sh rvvmm_args_encode).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=run
case "${1:-}" in
  --distro) mode=console; shift ;;
  --distro-ssh) mode=background; shift ;;
esac
resources/setup-host.sh
. resources/common.sh
resources/build-rvvmm.sh >/dev/null
resources/build-images.sh >/dev/null
resources/l1-initrd.sh >/dev/null
args=""
[ $# -gt 0 ] && args="rvvmm.args=$(rvvmm_args_encode "$@")"
if [ "$mode" = run ]; then
  exec resources/qemu-l1.sh --interactive --append "rvvmm.run=1 $args"
fi
built=$(resources/build-distro.sh | tail -n 1)
# The guest writes to its disk: it gets a copy of the built image, kept across runs in target/distro
# (delete target/distro/root.img for a fresh one).
mkdir -p target/distro
[ -f target/distro/root.img ] || cp --sparse=always "$built/root.img" target/distro/root.img
cp "$built/boot.tar" target/distro/boot.tar
exec resources/qemu-l1.sh --interactive --distro target/distro --append "rvvmm.distro=$mode $args"
