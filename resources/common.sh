# Shared settings for the resources/ scripts (sourced, not run).
RVVMM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything slow to build lives outside the clone, under one directory (XDG's cache home), each output
# keyed by the hash of its inputs: a fresh clone on the same machine reuses it, a changed input rebuilds.
#   $RVVMM_CACHE_HOME/nested      debs, kernels, L1/L2 images (build-images.sh; RVVMM_CACHE overrides)
#   $RVVMM_CACHE_HOME/l1-kernel   the project-built L1 kernel (build-l1-kernel.sh; RVVMM_KERNEL_CACHE)
#   $RVVMM_CACHE_HOME/distro      the Debian guest (build-distro.sh; RVVMM_DISTRO_CACHE)
#   $RVVMM_CACHE_HOME/fuzz-corpus the fuzzers' corpus (fuzz.sh; RVVMM_FUZZ_CORPUS)
RVVMM_CACHE_HOME=${RVVMM_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rvvmm}
RVVMM_CACHE=${RVVMM_CACHE:-$RVVMM_CACHE_HOME/nested}
export RVVMM_CACHE_HOME RVVMM_CACHE
# What is built from this clone (the composed L1 initramfs holds its rvvmm) stays in the clone.
RVVMM_L1_DIR=$RVVMM_ROOT/target/l1
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
# rvvmm_args_encode ARG...: the rvvmm.args= value that passes ARG... through L1's kernel command line
# intact (decoded by rvvmm_args_quoted in resources/l1/args.sh): arguments joined by commas, every byte
# outside [A-Za-z0-9._/:=+@-] of an argument as a \NNN octal escape.
rvvmm_args_encode() {
  local LC_ALL=C out="" a c i sep=""
  for a in "$@"; do
    out+=$sep
    sep=,
    for ((i = 0; i < ${#a}; i++)); do
      c=${a:i:1}
      case "$c" in
        [A-Za-z0-9._/:=+@-]) out+=$c ;;
        *) out+=$(printf '\\%03o' "'$c") ;;
      esac
    done
  done
  printf '%s\n' "$out"
}
