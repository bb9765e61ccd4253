#!/usr/bin/env bash
# Fuzzes rvvmm's guest- and file-facing parsers (targets in fuzz/fuzz_targets, code in fuzz/src) with
# libFuzzer, each target for a bounded time, and prints one line per target:
#   FUZZ target=NAME seconds=S execs=N corpus=C result=ok|CRASH
# Stable Rust is enough: the targets are built with LLVM's sanitizer-coverage passes (-C passes=sancov-module,
# what cargo-fuzz uses) and libfuzzer-sys's bundled libFuzzer; no nightly-only sanitizer is used, so
# out-of-bounds accesses are caught by Rust's own checks (unsafe code aside), plus overflow checks and
# debug assertions, which the fuzz crate's release profile turns on.
#
# Usage: resources/fuzz.sh [TARGET...]         (default: every target)
#   RVVMM_FUZZ_SECONDS   seconds per target (default 20; the documented long run uses 600)
#   RVVMM_FUZZ_JOBS      targets fuzzed at once (default: the number of cores; each fuzzer uses one)
#   RVVMM_FUZZ_CORPUS_MAX  inputs per target above which the corpus is merged down to a minimal set that
#                        keeps its coverage (libFuzzer -merge=1; default 1000), so it never grows without bound
#   RVVMM_FUZZ_CORPUS    corpus directory, kept between runs (default ${XDG_CACHE_HOME:-~/.cache}/rvvmm/fuzz-corpus)
# A crash leaves its input in target/fuzz-artifacts/<target>/ and makes the script fail; copy it to
# fuzz/regressions/<target>/ (the fuzz crate's unit tests replay everything there) when fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${RVVMM_FUZZ_SECONDS:-20}
corpus_max=${RVVMM_FUZZ_CORPUS_MAX:-1000}
corpus_root=${RVVMM_FUZZ_CORPUS:-${RVVMM_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rvvmm}/fuzz-corpus}
artifacts=$PWD/target/fuzz-artifacts
seeds=$PWD/target/fuzz-seeds
host=x86_64-unknown-linux-gnu
all=(virtio_blk virtio_net mmio_devices plic sbi kernel_loader cmdline pci_config api virtio_pci)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# Seeds and regressions replayed without instrumentation first (the crate's unit tests).
rm -rf "$seeds"
RVVMM_FUZZ_SEEDS=$seeds cargo test --locked --manifest-path fuzz/Cargo.toml --no-default-features \
  -q -- --include-ignored >/dev/null

# cargo-fuzz's coverage flags (sanitizer "none").
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
cargo build --locked --manifest-path fuzz/Cargo.toml --release --bins --target "$host" -q
bin=fuzz/target/$host/release

for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "fuzz.sh: no target '$t' (targets: ${all[*]})" >&2; exit 2; }
done

# fuzz_one TARGET: fuzz it, merge its corpus down when it grew too large, write its FUZZ line to
# $artifacts/TARGET.result.
fuzz_one() {
  local t=$1 log rc execs ncorpus result
  mkdir -p "$corpus_root/$t" "$artifacts/$t"
  log=$artifacts/$t.log
  set +e
  "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" "$corpus_root/$t" "$seeds/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  ncorpus=$(find "$corpus_root/$t" -type f | wc -l)
  if [ $rc -eq 0 ] && [ "$ncorpus" -gt "$corpus_max" ]; then
    rm -rf "$corpus_root/$t.merge"
    mkdir -p "$corpus_root/$t.merge"
    if "$bin/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 "$corpus_root/$t.merge" "$corpus_root/$t" >"$log.merge" 2>&1; then
      rm -rf "$corpus_root/$t"
      mv "$corpus_root/$t.merge" "$corpus_root/$t"
      echo "fuzz.sh: $t: corpus merged from $ncorpus to $(find "$corpus_root/$t" -type f | wc -l) inputs" >&2
      ncorpus=$(find "$corpus_root/$t" -type f | wc -l)
    else
      rm -rf "$corpus_root/$t.merge"
      echo "fuzz.sh: $t: merging the corpus failed (see $log.merge); kept as it is" >&2
    fi
  fi
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result=CRASH
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 8 >&2
  fi
  echo "FUZZ target=$t seconds=$seconds execs=${execs:-?} corpus=$ncorpus result=$result" >"$artifacts/$t.result"
}

# One target per core at a time (each fuzzer is single-threaded); the lines come out in target order.
jobs_max=${RVVMM_FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  rm -f "$artifacts/$t.result"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
failed=0
for t in "${targets[@]}"; do
  if [ -f "$artifacts/$t.result" ]; then
    cat "$artifacts/$t.result"
    grep -q 'result=ok$' "$artifacts/$t.result" || failed=1
  else
    echo "FUZZ target=$t result=ERROR (the fuzzing job ended without a result; see $artifacts/$t.log)"
    failed=1
  fi
done
exit $failed
