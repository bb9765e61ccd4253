# Seccomp: a boot with a disk and a net card runs with every thread's filter installed (the log says so),
# the guest writes to its disk, pings L1 over the card and powers off (rc 0). Then each kind of thread, made to call socket()
# right after installing its filter (the tests-only RVVMM_SECCOMP_SELFTEST hook), ends rvvmm with status
# 159 and one line naming the thread and the call. With --seccomp off the same hook does nothing.
. /scenarios/lib.sh
modprobe -q tun 2>/dev/null
fails=0
dd if=/dev/zero of=sc.img bs=1M count=8 2>/dev/null
start_guest --cores 2 --memory 256M --disk path=sc.img --net tap=sctap0 --log-level info
wait_for out 'RVVMM-L2-BOOTED' 240 || { tail -20 err; exit 1; }
guest_cmd 'dd if=/dev/urandom of=/dev/vda bs=1M count=4 conv=fsync 2>/dev/null; echo SC-WROTE-$((2+3))-rc=$?' 'SC-WROTE-5-rc=' 120 || exit 1
ip addr add 10.0.4.1/24 dev sctap0 && ip link set sctap0 up
guest_cmd 'ip addr add 10.0.4.15/24 dev eth0; ip link set eth0 up; ping -c 2 -W 5 10.0.4.1 >/dev/null; echo SC-NET-$((3+4))-rc=$?' 'SC-NET-7-rc=' 60 || exit 1
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out | grep -E '^SC-' | tee results
grep -q '^SC-WROTE-5-rc=0' results || fails=$((fails + 1))
grep -q '^SC-NET-7-rc=0' results || fails=$((fails + 1))
if grep -q 'seccomp filters installed on every thread' err && [ "$rc" -eq 0 ]; then
  echo "SECCOMP-BOOT-OK rc=$rc"
else
  echo "SECCOMP-BOOT-BAD rc=$rc"; tail -5 err; fails=$((fails + 1))
fi
grep -q 'forbidden system call' err && { echo "SECCOMP-UNEXPECTED-KILL"; fails=$((fails + 1)); }

for kind in main vcpu virtio-io console-in console-out signals rtc-alarm timeout; do
  RVVMM_SECCOMP_SELFTEST=$kind rvvmm --kernel "$GK" --initrd "$GI" --memory 128M --disk path=sc.img \
    --timeout 120 </dev/null >out-$kind 2>err-$kind
  rc=$?
  line=$(grep -m1 'seccomp: thread' err-$kind)
  lines=$(grep -c . err-$kind)
  echo "SECCOMP-SELFTEST $kind rc=$rc lines=$lines line=$line"
  [ "$rc" -eq 159 ] || fails=$((fails + 1))
  grep -q panicked err-$kind && fails=$((fails + 1))
done

# The API thread runs only with --api-socket (and no VM is needed: rvvmm waits for vm.create).
RVVMM_SECCOMP_SELFTEST=api timeout 60 rvvmm --api-socket "$PWD/st.sock" </dev/null >out-api 2>err-api
rc=$?
echo "SECCOMP-SELFTEST api rc=$rc lines=$(grep -c . err-api) line=$(grep -m1 'seccomp: thread' err-api)"
[ "$rc" -eq 159 ] || fails=$((fails + 1))

export RVVMM_SECCOMP_SELFTEST=vcpu
start_guest --memory 128M --seccomp off
unset RVVMM_SECCOMP_SELFTEST
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
kill -TERM $pid
finish_guest
rc=$?
echo "SECCOMP-OFF rc=$rc warned=$(grep -c 'seccomp off' err)"
[ "$rc" -eq 143 ] || fails=$((fails + 1))
echo "SECCOMP-FAILS $fails"
[ "$fails" -eq 0 ]
