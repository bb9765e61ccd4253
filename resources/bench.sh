#!/usr/bin/env bash
# Benchmarks (numbers, no pass/fail on speed), through the nested bench: builds what is missing (like
# run.sh), boots L1 under QEMU once with rvvmm.scenarios=bench-<name>,... (tests/scenarios/bench-*.sh) and
# prints their BENCH-* lines at the end.
#   resources/bench.sh [NAME...]     default: disk (tests/scenarios/bench-disk.sh)
#   resources/bench.sh vmm           rvvmm side by side with QEMU-KVM (tests/scenarios/bench-vmm.sh): a fresh
#                                    L1 boot per VMM and round, order rotated, RVVMM_BENCH_ROUNDS rounds
#                                    (default 3); prints a table of medians, spreads and rvvmm/QEMU ratios
#   resources/bench.sh --all         vmm, then disk disk-plic net net-plic net-vhost
# Environment: RVVMM_BENCH_TIMEOUT (seconds for the whole L1 boot, default 3600),
#   RVVMM_BENCH_DISK_MB (default 256), RVVMM_BENCH_SECONDS (randread duration, default 5),
#   RVVMM_BENCH_CORES (guest cores, default 1), and the usual RVVMM_L1_* of qemu-l1.sh.
# The whole console goes to target/bench-logs/<names>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- disk
if [ "$1" = --all ]; then
  "$0" vmm
  exec "$0" disk disk-plic net net-plic net-vhost
fi
if [ "$1" = vmm ]; then
  [ $# -eq 1 ] || { echo "bench: vmm runs on its own" >&2; exit 2; }
  exec resources/bench-vmm.sh
fi
scenarios=""
for name in "$@"; do
  [ -f "tests/scenarios/bench-$name.sh" ] || {
    have=$(for f in tests/scenarios/bench-*.sh; do f=${f##*/bench-}; printf ' %s' "${f%.sh}"; done)
    echo "bench: no benchmark '$name' (have:$have)" >&2
    exit 2
  }
  scenarios="${scenarios:+$scenarios,}bench-$name"
done
total=${RVVMM_BENCH_TIMEOUT:-3600}
append="rvvmm.scenarios=$scenarios rvvmm.timeout=$((total > 120 ? total - 60 : total))"
[ -n "${RVVMM_BENCH_DISK_MB:-}" ] && append="$append rvvmm.bench.disk_mb=$RVVMM_BENCH_DISK_MB"
[ -n "${RVVMM_BENCH_SECONDS:-}" ] && append="$append rvvmm.bench.seconds=$RVVMM_BENCH_SECONDS"
[ -n "${RVVMM_BENCH_CORES:-}" ] && append="$append rvvmm.bench.cores=$RVVMM_BENCH_CORES"

resources/setup-host.sh
resources/build-rvvmm.sh >/dev/null
resources/build-images.sh >/dev/null
resources/l1-initrd.sh >/dev/null

mkdir -p target/bench-logs
log="target/bench-logs/$(echo "$scenarios" | tr , _).log"
echo "bench: booting L1 with '$append' (console: $log, limit ${total}s)" >&2
t0=$SECONDS
set +e
timeout "$total" resources/qemu-l1.sh --append "$append" </dev/null 2>&1 | sed -u 's/\r//g' | tee "$log" |
  grep --line-buffered -E '^(RVVMM-L1-READY|RVVMM-SCENARIO-|L[12] IOBENCH|BENCH-[A-Z]*-(CONFIG|ERROR))'
qemu_rc=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - t0))
echo
echo "=== bench: $scenarios, L1 boot to poweroff ${elapsed}s (QEMU exit $qemu_rc)"
grep -E '^BENCH-[A-Z]+(-NOTE)? ' "$log" || true
status=0
for s in ${scenarios//,/ }; do
  grep -q "^RVVMM-SCENARIO-PASS $s\$" "$log" || { echo "bench: $s did not complete (see $log)" >&2; status=1; }
done
[ "$qemu_rc" -eq 124 ] && { echo "bench: L1 timed out after ${total}s" >&2; status=1; }
exit $status
