#!/usr/bin/env bash
# For people on x86_64: build what is missing, boot the nested riscv64 host (L1) under QEMU and start rvvmm
# there with the Debian guest kernel, attached to this terminal.
#   In the guest: `poweroff` ends the VM.  Ctrl-A x: stop rvvmm from the outside (back to the L1 shell).
#   In the L1 shell: `poweroff` ends QEMU.  Ctrl-] x: kill QEMU at once.
# Extra rvvmm options: resources/run.sh --cores 1 --memory 256M  (passed through rvvmm.args).
set -euo pipefail
cd "$(dirname "$0")/.."
resources/setup-host.sh
resources/build-rvvmm.sh >/dev/null
resources/build-images.sh >/dev/null
resources/l1-initrd.sh >/dev/null
args=""
[ $# -gt 0 ] && args="rvvmm.args=$(IFS=,; echo "$*")"
exec resources/qemu-l1.sh --interactive --append "rvvmm.run=1 $args"
