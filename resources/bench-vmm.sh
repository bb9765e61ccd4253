#!/usr/bin/env bash
# rvvmm side by side with QEMU-KVM (resources/bench.sh vmm): the same L2 guest and work under each VMM
# inside L1 (tests/scenarios/bench-vmm.sh), each VMM in a fresh L1 boot of its own (the position of a VM
# within one L1 boot moves its figures), the order rotated between rounds; then a table of medians,
# spreads (min..max) and rvvmm / QEMU ratios. Numbers only: nothing passes or fails on speed.
# Environment: RVVMM_BENCH_ROUNDS (default 3), RVVMM_BENCH_VMMS (default "rvvmm qemu"; "rvvmm" alone for a
#   before/after of an rvvmm change), RVVMM_BIN (the riscv64 rvvmm to measure), RVVMM_BENCH_DISK_MB (256), RVVMM_BENCH_SECONDS (5),
#   RVVMM_BENCH_TIMEOUT (seconds per L1 boot, default 1500), RVVMM_BENCH_TAG (log names, default vmm),
#   RVVMM_BENCH_PERF (1: perf profiles of seqread, randread_qd1 and VM 2's boot, rvvmm.bench.perf=1; rvvmm
#   is then measured as a copy without local labels (.L*) and mapping symbols ($x, $d) in its symbol
#   table, same code, so that perf names functions), and the usual RVVMM_L1_* of qemu-l1.sh.
# Logs: target/bench-logs/<tag>-<round>-<vmm>.log; the table also goes to target/bench-logs/<tag>-table.txt;
# the CPU profile lines (BENCH-VMM-CPU, BENCH-VMM-THREADS) to <tag>-cpu.txt and the perf reports
# (BENCH-VMM-PERF) to <tag>-perf.txt, each line prefixed round=N; after the table, the medians of the CPU
# split per VMM and phase.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${RVVMM_BENCH_ROUNDS:-3}
total=${RVVMM_BENCH_TIMEOUT:-1500}
extra=""
[ -n "${RVVMM_BENCH_DISK_MB:-}" ] && extra="$extra rvvmm.bench.disk_mb=$RVVMM_BENCH_DISK_MB"
[ -n "${RVVMM_BENCH_SECONDS:-}" ] && extra="$extra rvvmm.bench.seconds=$RVVMM_BENCH_SECONDS"
perf=${RVVMM_BENCH_PERF:-0}
[ "$perf" = 1 ] && extra="$extra rvvmm.bench.perf=1"

resources/setup-host.sh
[ -n "${RVVMM_BIN:-}" ] || resources/build-rvvmm.sh >/dev/null
if [ "$perf" = 1 ]; then
  # RISC-V objects keep their local labels (.L*, over 90 % of rvvmm's symbol table) and mapping symbols
  # ($x, $d): perf would take them for functions. The copy has neither; its loaded segments are the same.
  bin=${RVVMM_BIN:-target/riscv64gc-unknown-linux-gnu/release/rvvmm}
  mkdir -p target/bench-perf
  # shellcheck disable=SC2016 # '$x*' is a symbol pattern
  riscv64-linux-gnu-objcopy --discard-locals --wildcard --strip-symbol='$x*' --strip-symbol='$d*' \
    "$bin" target/bench-perf/rvvmm
  export RVVMM_BIN=$PWD/target/bench-perf/rvvmm
fi
RVVMM_WITH_QEMU=1 resources/build-images.sh >/dev/null
export RVVMM_L1_QEMU=1 # one initramfs for both VMMs: L1 is the same machine for each
# Sscofpmf lets L1's KVM offer its guests the SBI PMU. Without it, an L2 Linux under QEMU-KVM leaves
# scounteren.TM clear on its second hart, and user programs there die of an illegal instruction when
# they read the time (rdtime in the vDSO); rvvmm's guests are not affected, but both VMMs get the same L1.
export RVVMM_L1_CPU=${RVVMM_L1_CPU:-rv64,sscofpmf=true}
resources/l1-initrd.sh >/dev/null

mkdir -p target/bench-logs
tag=${RVVMM_BENCH_TAG:-vmm}
all=target/bench-logs/$tag-all.txt
cpu=target/bench-logs/$tag-cpu.txt
perflog=target/bench-logs/$tag-perf.txt
: >"$all"
: >"$cpu"
: >"$perflog"
read -r -a vmms <<<"${RVVMM_BENCH_VMMS:-rvvmm qemu}"
for r in $(seq "$rounds"); do
  # Rotate: round 1 in the given order, round 2 reversed, ...
  order=("${vmms[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#vmms[@]} - 1; i >= 0; i--)); do order+=("${vmms[$i]}"); done
  fi
  for v in "${order[@]}"; do
    log=target/bench-logs/$tag-$r-$v.log
    echo "bench: round $r/$rounds, $v (console: $log)" >&2
    set +e
    timeout "$total" resources/qemu-l1.sh --append "rvvmm.scenarios=bench-vmm rvvmm.bench.vmm=$v rvvmm.timeout=$((total - 60))$extra" \
      </dev/null 2>&1 | sed -u 's/\r//g' >"$log"
    set -e
    grep -E '^BENCH-VMM-(CONFIG|ERROR|DONE|NOTE)' "$log" >&2 || true
    grep -q '^RVVMM-SCENARIO-PASS bench-vmm$' "$log" || echo "bench: round $r $v did not complete (see $log)" >&2
    grep -E '^BENCH-VMM ' "$log" | sed "s/^/round=$r /" >>"$all"
    grep -E '^BENCH-VMM-(CPU|THREADS) ' "$log" | sed "s/^/round=$r /" >>"$cpu" || true
    grep -E '^BENCH-VMM-PERF ' "$log" | sed "s/^/round=$r /" >>"$perflog" || true
  done
done

table=target/bench-logs/$tag-table.txt
{
  echo "rvvmm vs QEMU-KVM, $rounds round(s), each VMM in a fresh L1; median (min..max); ratio = the first VMM that is not QEMU / QEMU, medians"
  awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
      if (f["value"] == "") next
      v = f["vmm"]; if (!(v in vseen)) { vseen[v] = 1; vm[++nv] = v }
      key = f["metric"]; unit[key] = f["unit"]
      n[key, v]++; val[key, v, n[key, v]] = f["value"] + 0
      if (!(key in order)) { order[key] = ++count; names[count] = key } }
    function median(k, v,   m, i, j, t, a) {
      m = n[k, v]; if (m == 0) return ""
      for (i = 1; i <= m; i++) a[i] = val[k, v, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      lo[k, v] = a[1]; hi[k, v] = a[m]
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    END {
      # Columns: every VMM in order of appearance; the ratio is the first one that is not QEMU against QEMU.
      for (i = 1; i <= nv; i++) if (vm[i] != "qemu" && mine == "") mine = vm[i]
      printf "%-22s %-7s", "metric", "unit"; for (i = 1; i <= nv; i++) printf " %-26s", vm[i]
      printf " %-8s %s\n", "ratio", "better"
      for (c = 1; c <= count; c++) {
        k = names[c]
        printf "%-22s %-7s", k, unit[k]
        for (i = 1; i <= nv; i++) {
          m = median(k, vm[i]); med[vm[i]] = m
          printf " %-26s", (m == "") ? "-" : sprintf("%g (%g..%g)", m, lo[k, vm[i]], hi[k, vm[i]]) }
        a = med[mine]; b = med["qemu"]
        ratio = (a != "" && b != "" && b != 0) ? sprintf("%.2fx", a / b) : "-"
        better = (k ~ /^(boot|io_vm_boot|startup|mem_)/) ? "lower" : "higher"
        printf " %-8s %s\n", ratio, better } }' "$all"
  [ -s "$cpu" ] || exit 0
  echo
  echo "CPU split per phase, median of $rounds round(s): percent of all L1 harts' time (user without guest;"
  echo "guest = L1 running L2 vcpus); vmm_s = the VMM process's CPU seconds (user+sys) in the phase"
  awk '
    { delete f
      for (i = 1; i <= NF; i++) { e = index($i, "="); if (e) f[substr($i, 1, e - 1)] = substr($i, e + 1) } }
    $2 == "BENCH-VMM-CPU" {
      key = f["vmm"] SUBSEP f["phase"]
      if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
      for (c = 1; c <= nc; c++) { m = ++n[key, c]; val[key, c, m] = f[col[c]] + 0 } }
    $2 == "BENCH-VMM-THREADS" {
      for (i = 5; i <= NF; i++) if ($i ~ /^total:/) {
        split(substr($i, 7), us, "/"); key = f["vmm"] SUBSEP f["phase"]
        m = ++nt[key]; tval[key, m] = (us[1] + us[2]) / 1000 } }
    function med(a, m,   i, j, t) {
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    BEGIN { nc = split("secs user sys guest idle iowait irq+softirq", col, " ") }
    END {
      printf "%-16s %-16s %6s %6s %6s %6s %6s %6s %6s %7s\n", "vmm", "phase", "secs", "user%", "sys%", "guest%", "idle%", "iowt%", "irq+si", "vmm_s"
      for (k = 1; k <= nk; k++) {
        key = keys[k]; split(key, vp, SUBSEP)
        printf "%-16s %-16s", vp[1], vp[2]
        for (c = 1; c <= nc; c++) {
          m = n[key, c]; delete a; for (i = 1; i <= m; i++) a[i] = val[key, c, i]
          printf(c == 1 ? " %6.2f" : " %6.1f", med(a, m)) }
        m = nt[key]; delete a; for (i = 1; i <= m; i++) a[i] = tval[key, i]
        if (m) printf " %7.2f\n", med(a, m); else printf " %7s\n", "-" } }' "$cpu"
} | tee "$table"
