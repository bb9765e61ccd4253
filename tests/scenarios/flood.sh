# A guest that floods a disk queue cannot stall rvvmm (tests/guests/baremetal with "flood"): its driver
# never lets the first disk's ring run empty, while it reads the second disk one request at a time.
# While it floods, the API answers (vm.counters, vm.pause, vm.resume each within a second), a paused
# guest stops and a resumed one goes on, the second disk keeps serving, and SIGTERM ends rvvmm within
# 5 s with status 143 and no panic; then the same SIGTERM while a Linux guest writes from 4 processes.
. /scenarios/lib.sh
fails=0
bad() { echo "FLOOD-FAIL $*"; fails=$((fails + 1)); }
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
S=$PWD/flood.sock

printf 'RVVMM-BAREMETAL-DISK' >f0.img
dd if=/dev/zero of=f0.img bs=512 seek=1 count=2047 conv=notrunc 2>/dev/null
cp f0.img f1.img
rm -f out err "$S"
# shellcheck disable=SC2086 # RVVMM_EXTRA holds several options
rvvmm --memory 64M $RVVMM_EXTRA --kernel /guests/bm.elf --cores 1 --api-socket "$S" \
  --disk path=f0.img --disk path=f1.img --cmdline "flood" </dev/null >out 2>err &
pid=$!
wait_for out 'BM-FLOOD-START' 120 || { kill -KILL $pid; exit 1; }
wait_for out 'BM-FLOOD reads=' 30 || { kill -KILL $pid; exit 1; }
tr -d '\r' <out | grep -m1 '^BM-FLOOD-START'
sleep 3

# api METHOD NAME: one request; sets $code and $secs (curl's total time), prints one line.
api() {
  out=$(curl -s -m 20 -o body -w '%{http_code} %{time_total}' --unix-socket "$S" -X "$1" \
    "http://localhost/api/v1/$2")
  code=${out% *}
  secs=${out#* }
  echo "FLOOD-API $1 $2 -> $code in ${secs}s $(tr -d ' \n' <body 2>/dev/null | cut -c1-300)"
  awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' || bad "$1 $2 took ${secs}s"
}
last() { tr -d '\r' <out | grep '^BM-FLOOD reads=' | tail -1; }
field() { echo "$1" | sed -n "s/.* $2=\([0-9]*\).*/\1/p"; }

api GET vm.counters
[ "$code" = 200 ] || bad "vm.counters: status $code"
served=$(tr -d ' \n' <body | sed -n 's/.*"_disk1":{[^}]*"read_ops":\([0-9]*\).*/\1/p')
echo "FLOOD-COUNTERS disk1-read-ops=${served:-?}"
[ "${served:-0}" -gt 0 ] || bad "vm.counters: no reads of the second disk"

api PUT vm.pause
[ "$code" = 204 ] || bad "vm.pause: status $code"
sleep 1
p1=$(last)
sleep 3
p2=$(last)
[ "$p1" = "$p2" ] || bad "the guest ran while paused ($p1 / $p2)"
api PUT vm.resume
[ "$code" = 204 ] || bad "vm.resume: status $code"
sleep 4
r2=$(last)
before=$(field "$p2" reads)
after=$(field "$r2" reads)
echo "FLOOD-DISK1 reads-before-pause=${before:-?} reads-after-resume=${after:-?} ($r2)"
[ "${after:-0}" -gt "${before:-0}" ] || bad "the second disk stopped serving"
offered=$(field "$r2" offered)
[ "${offered:-0}" -gt 1000 ] || bad "the guest did not flood (offered ${offered:-?})"

t0=$(now_ms)
kill -TERM $pid
wait $pid
rc=$?
t1=$(now_ms)
echo "FLOOD-TERM rc=$rc ms=$((t1 - t0))"
[ "$rc" -eq 143 ] || bad "SIGTERM: status $rc"
[ $((t1 - t0)) -lt 5000 ] || bad "SIGTERM took $((t1 - t0)) ms"
grep -q panicked err && bad "rvvmm panicked"
sed 's/^\[[^]]*\] *//' err | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -8

# A Linux guest writing its disk from 4 processes as fast as it can (each write flushed): SIGTERM still
# ends rvvmm within 5 s with status 143, which also says the final flush of the disk succeeded (a failed
# one makes it 5).
dd if=/dev/zero of=w.img bs=1M count=64 2>/dev/null
start_guest --cores 2 --memory 256M --log-level info --disk path=w.img
wait_for out 'RVVMM-L2-BOOTED' 240 || { kill -KILL $pid; exit 1; }
guest_cmd 'for i in 1 2 3 4; do (while :; do dd if=/dev/urandom of=/dev/vda bs=64k count=32 seek=$((i*64)) conv=fsync 2>/dev/null; done) & done; echo WRITERS-$((2+2))' 'WRITERS-4' 60 || { kill -KILL $pid; exit 1; }
sleep 5
t0=$(now_ms)
kill -TERM $pid
wait $pid
rc=$?
t1=$(now_ms)
exec 3>&-
writes=$(sed -n 's/.*virtio-blk .*w.img: \([0-9]*\) requests.*/\1/p' err | tail -1)
echo "FLOOD-LINUX-TERM rc=$rc ms=$((t1 - t0)) requests=${writes:-?}"
[ "$rc" -eq 143 ] || bad "SIGTERM during the Linux guest's writes: status $rc"
[ $((t1 - t0)) -lt 5000 ] || bad "SIGTERM during the Linux guest's writes took $((t1 - t0)) ms"
[ "${writes:-0}" -gt 0 ] || bad "no disk summary (was the disk shut down?)"
grep -q 'cannot sync' err && bad "the final sync failed"
echo "FLOOD-FAILS $fails"
[ "$fails" -eq 0 ]
