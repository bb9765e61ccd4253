# Shared settings for the resources/ scripts (sourced, not run).
RVVMM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RVVMM_CACHE=${RVVMM_CACHE:-$RVVMM_ROOT/.cache}
# trixie (default) | sid | vfio (the project-built kernel of resources/build-l1-kernel.sh: VFIO, legacy SBI;
# built or taken from its cache here, then used as its Image path) | /absolute/path/to/Image
RVVMM_L1_KERNEL=${RVVMM_L1_KERNEL:-trixie}
if [ "$RVVMM_L1_KERNEL" = vfio ]; then
  RVVMM_L1_KERNEL=$("$RVVMM_ROOT/resources/build-l1-kernel.sh" | tail -n 1) || {
    echo "resources: RVVMM_L1_KERNEL=vfio: resources/build-l1-kernel.sh failed" >&2
    exit 1
  }
fi
export RVVMM_L1_KERNEL
RVVMM_BIN=${RVVMM_BIN:-$RVVMM_ROOT/target/riscv64gc-unknown-linux-gnu/release/rvvmm}
# Name used in cache file names for the selected L1 kernel (a path becomes "custom-<hash>").
rvvmm_l1_kernel_name() {
  case "$RVVMM_L1_KERNEL" in
    trixie|sid) echo "$RVVMM_L1_KERNEL" ;;
    *) echo "custom-$(echo "$RVVMM_L1_KERNEL" | sha256sum | cut -c1-12)" ;;
  esac
}
