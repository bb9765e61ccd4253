# SIGTERM stops a running VM in order: rvvmm exits 143 (128 + SIGTERM), no panic.
. /scenarios/lib.sh
start_guest --cores 1 --memory 256M
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
kill -TERM $pid
wait $pid
rc=$?
exec 3>&-
echo "SIGTERM-EXIT rc=$rc"
cat err
grep -q panicked err && exit 1
[ "$rc" -eq 143 ]
