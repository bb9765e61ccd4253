# Shared settings for the resources/ scripts (sourced, not run).
RVVMM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RVVMM_CACHE=${RVVMM_CACHE:-$RVVMM_ROOT/.cache}
RVVMM_L1_KERNEL=${RVVMM_L1_KERNEL:-trixie}
RVVMM_BIN=${RVVMM_BIN:-$RVVMM_ROOT/target/riscv64gc-unknown-linux-gnu/release/rvvmm}
# Name used in cache file names for the selected L1 kernel (a path becomes "custom-<hash>").
rvvmm_l1_kernel_name() {
  case "$RVVMM_L1_KERNEL" in
    trixie|sid) echo "$RVVMM_L1_KERNEL" ;;
    *) echo "custom-$(echo "$RVVMM_L1_KERNEL" | sha256sum | cut -c1-12)" ;;
  esac
}
