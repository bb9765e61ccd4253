# Benchmark, not a test (run by resources/bench.sh, not by the suite): virtio-blk throughput of the L2
# guest versus the same I/O on the backing file in L1. Asserts nothing about speed; fails only when
# something breaks (iobench error, missing result, rvvmm exit status).
#   L1: /guests/iobench on disk.img, a file in L1's tmpfs (buffered I/O: a memory-backed ceiling).
#   L2: the same binary on /dev/vda (O_DIRECT) in a guest started with --disk path=disk.img.
# The guest gets the binary on a second, read-only raw disk (the binary padded to 512-byte sectors).
# Tunables (L1 kernel command line): rvvmm.bench.disk_mb=N (default 256), rvvmm.bench.seconds=N (randread,
# default 5), rvvmm.bench.cores=N (guest cores, default 1: rvvmm's I/O thread gets the other L1 hart),
# rvvmm.bench.repeat=N (runs of each mode on each side, default 3; the best one counts: on a busy L0 the
# L1 harts lose time to other processes, and the best run is the least disturbed).
# Output: one line per mode, `BENCH-DISK <irqchip> <mode> L1=<v> L2=<v> ratio=<L2/L1> unit=MiB/s|IOPS`.
. /scenarios/lib.sh
mb=256
secs=5
cores=1
repeat=3
# shellcheck disable=SC2013 # words, not lines
for w in $(cat /proc/cmdline); do
  case "$w" in
    rvvmm.bench.disk_mb=*) mb=${w#*=} ;;
    rvvmm.bench.seconds=*) secs=${w#*=} ;;
    rvvmm.bench.cores=*) cores=${w#*=} ;;
    rvvmm.bench.repeat=*) repeat=${w#*=} ;;
  esac
done
tool=/guests/iobench
[ -x "$tool" ] || { echo "BENCH-DISK-ERROR $tool is missing (rebuild with resources/l1-initrd.sh)"; exit 1; }
echo "BENCH-DISK-CONFIG size_mb=$mb randread_seconds=$secs guest_cores=$cores guest_memory=512M repeat=$repeat l1_harts=$(grep -c '^processor' /proc/cpuinfo)"

# --- L1: the file itself.
dd if=/dev/zero of=disk.img bs=1M count="$mb" 2>/dev/null || { echo "BENCH-DISK-ERROR cannot create disk.img"; exit 1; }
for m in seqwrite seqread randread; do
  arg=$mb
  [ "$m" = randread ] && arg="$secs $mb"
  for _ in $(seq "$repeat"); do
    # shellcheck disable=SC2086 # $arg is one or two words
    "$tool" disk.img $m $arg >>l1.txt || { echo "BENCH-DISK-ERROR iobench $m failed in L1"; exit 1; }
  done
done
sed 's/^/L1 /' l1.txt

# --- L2: the same file as the guest's vda; the tool on vdb.
size=$(wc -c <"$tool")
dd if="$tool" of=tool.img bs=512 conv=sync 2>/dev/null
[ $(($(wc -c <tool.img) % 512)) -eq 0 ] || { echo "BENCH-DISK-ERROR tool.img is not a multiple of 512"; exit 1; }
tool_sum=$(sha256sum "$tool" | cut -d' ' -f1)
start_guest --cores "$cores" --memory 512M --disk path=disk.img --disk path=tool.img,readonly=on
fail=0
if wait_for out 'RVVMM-L2-BOOTED' 300; then
  sleep 1
  guest_cmd "head -c $size /dev/vdb >/tmp/iobench; chmod +x /tmp/iobench; echo \"TOOL-\$((1+1)) \$(sha256sum /tmp/iobench)\"" \
    'TOOL-2 [0-9a-f]{64}' 120 || fail=1
  tr -d '\r' <out | grep -q "^TOOL-2 $tool_sum" || { echo "BENCH-DISK-ERROR the guest's copy of iobench differs"; fail=1; }
  n=10
  for m in seqwrite seqread randread; do
    [ "$fail" = 0 ] || break
    arg=$mb
    [ "$m" = randread ] && arg="$secs $mb"
    n=$((n + 1))
    # The typed line is echoed too: the pattern only matches the computed $((n+0)).
    guest_cmd "r=0; for i in \$(seq $repeat); do /tmp/iobench /dev/vda $m $arg || r=1; done; echo RUN-\$(($n+0))-rc=\$r" \
      "RUN-$n-rc=" 1200 || fail=1
    tr -d '\r' <out | grep -q "^RUN-$n-rc=0" || { echo "BENCH-DISK-ERROR iobench $m failed in L2"; fail=1; }
  done
else
  fail=1
fi
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out | grep '^IOBENCH ' >l2.txt
sed 's/^/L2 /' l2.txt
[ "$fail" = 0 ] || { tail -5 err; exit 1; }

# --- Summary.
# value FILE MODE: the best figure of merit of MODE's lines in FILE.
value() {
  awk -v m="$2" '$2 == "mode=" m { for (i = 3; i <= NF; i++) if ($i ~ /^(MiB\/s|IOPS)=/) { v = substr($i, index($i, "=") + 1) + 0; if (!n++ || v > best) best = v } }
    END { if (n) printf "%.2f\n", best }' "$1"
}
echo "BENCH-DISK-NOTE L1 = buffered I/O on disk.img in L1's tmpfs (memory-backed ceiling); L2 = O_DIRECT on"
echo "BENCH-DISK-NOTE the guest's /dev/vda, backed by that file through rvvmm's virtio-blk. Under nested TCG"
echo "BENCH-DISK-NOTE emulation absolute numbers are tiny; the ratio is what matters. Best of $repeat runs each."
missing=0
for m in seqwrite seqread randread; do
  unit=MiB/s
  [ "$m" = randread ] && unit=IOPS
  a=$(value l1.txt $m)
  b=$(value l2.txt $m)
  if [ -z "$a" ] || [ -z "$b" ]; then
    echo "BENCH-DISK-ERROR no $m result (L1='$a' L2='$b')"
    missing=1
    continue
  fi
  awk -v m="$m" -v a="$a" -v b="$b" -v u="$unit" -v irq="${RVVMM_BENCH_VARIANT:-aia}" \
    'BEGIN { printf "BENCH-DISK %s %s L1=%s L2=%s ratio=%.4f unit=%s\n", irq, m, a, b, (a > 0 ? b / a : 0), u }'
done
[ "$missing" -eq 0 ] && [ "$rc" -eq 0 ]
