#!/usr/bin/env bash
# The project's whole test suite, from a fresh Debian 12 x86_64 machine:
#   1. install host packages and the Rust riscv64 target      (setup-host.sh)
#   2. lint: cargo fmt --check, clippy for host and riscv64
#   3. host unit tests (arch-neutral crates, CLI, bench helpers), then fuzzing: every target of fuzz/ for
#      RVVMM_FUZZ_SECONDS (default 20) each                    (fuzz.sh)
#   4. build the static riscv64 rvvmm                           (build-rvvmm.sh)
#   5. build the L1/L2 images (cached in ~/.cache/rvvmm/nested)  (build-images.sh)
#   6. the project's L1 kernel for the vfio host kind (cached in ~/.cache/rvvmm/l1-kernel; build-l1-kernel.sh,
#      started in the background after stage 1, at low priority), whose Image path reaches the nested tests
#      as RVVMM_L1_VFIO_KERNEL
#   7. the Debian guest (root disk, kernel, initramfs; cached in ~/.cache/rvvmm/distro; build-distro.sh,
#      started in the background after stage 1), whose directory reaches the nested tests as
#      RVVMM_DISTRO_DIR
#   8. nested tests: boot L1 under QEMU, run rvvmm on its /dev/kvm (cargo test --test nested -- --ignored):
#      first the hosts on Debian's L1 kernel (while stages 6 and 7 may still be building), then, once
#      those are ready, the vfio host and the Debian guest
# Each stage prints its wall time. Set RVVMM_SKIP_LINT=1 to skip stage 2.
set -euo pipefail
cd "$(dirname "$0")/.."
stage() {
  local name=$1; shift
  local t0=$SECONDS rc=0
  echo "=== [test.sh] $name"
  "$@" || rc=$?
  echo "=== [test.sh] $name: $((SECONDS - t0)) s$([ "$rc" -eq 0 ] || echo ", failed ($rc)")"
  return "$rc"
}
lint() {
  cargo fmt --all -- --check
  cargo clippy --locked --workspace --all-targets -- -D warnings
  cargo clippy --locked --workspace --all-targets --target riscv64gc-unknown-linux-gnu -- -D warnings
  (cd fuzz && cargo fmt -- --check && cargo clippy --locked --all-targets -- -D warnings)
}
stage "setup host" resources/setup-host.sh
# The Debian guest image is built in the background from here (mostly one core: dpkg under qemu-user)
# while lint, unit tests and fuzzing (one core per target) run; its stage below waits for it.
# The L1 kernel too (cold: a kernel build at low priority, soaking up the core that single-threaded stages
# such as fuzzing leave idle; warm: a second).
mkdir -p target
nice -n 10 resources/build-distro.sh >target/build-distro.out 2>target/build-distro.log &
distro_pid=$!
resources/build-l1-kernel.sh >target/build-l1-kernel.out 2>target/build-l1-kernel.log &
kernel_pid=$!
[ "${RVVMM_SKIP_LINT:-0}" = 1 ] || stage "lint" lint
stage "host unit tests" cargo test --locked --workspace
stage "fuzz" resources/fuzz.sh
stage "build riscv64 rvvmm" resources/build-rvvmm.sh
stage "build images" resources/build-images.sh
build_l1_kernel() {
  wait "$kernel_pid" || {
    cat target/build-l1-kernel.log
    echo "resources/build-l1-kernel.sh failed (its log is above)"
    return 1
  }
  tail -n 2 target/build-l1-kernel.log
  RVVMM_L1_VFIO_KERNEL=$(tail -n 1 target/build-l1-kernel.out)
  export RVVMM_L1_VFIO_KERNEL
  echo "RVVMM_L1_VFIO_KERNEL=$RVVMM_L1_VFIO_KERNEL"
}
build_distro() {
  wait "$distro_pid" || {
    cat target/build-distro.log
    echo "resources/build-distro.sh failed (its log is above)"
    return 1
  }
  tail -n 3 target/build-distro.log
  RVVMM_DISTRO_DIR=$(tail -n 1 target/build-distro.out)
  export RVVMM_DISTRO_DIR
  echo "RVVMM_DISTRO_DIR=$RVVMM_DISTRO_DIR"
}
nested() { cargo test --locked --test nested -- --ignored --test-threads=1 --nocapture "$@"; }
# The hosts that boot Debian's own L1 kernel (the AIA and PLIC hosts: most scenarios) need neither the
# project's L1 kernel nor the Debian guest: on a cold machine they run while those two are still being built
# (the builds run at low priority and take the CPU the nested QEMU leaves idle while its guests wait), and
# only the vfio and Debian-guest hosts wait for them. A run with test name filters waits for both first.
status=0
if [ $# -eq 0 ]; then
  stage "nested tests (Debian's L1 kernel)" nested --skip vfio_ --skip debian_guest_ || status=$?
  stage "build L1 kernel" build_l1_kernel
  stage "build Debian guest" build_distro
  stage "nested tests (the project's L1 kernel, the Debian guest)" nested vfio_ debian_guest_ || status=$?
else
  stage "build L1 kernel" build_l1_kernel
  stage "build Debian guest" build_distro
  stage "nested tests" nested "$@" || status=$?
fi
[ "$status" -eq 0 ] || { echo "=== [test.sh] nested tests failed (see above) after $SECONDS s"; exit "$status"; }
echo "=== [test.sh] all stages passed in $SECONDS s"
