# Least privilege: rvvmm started as root with --user 65534:65534, its network card on a tap fd opened by
# someone else (tests/guests/tapfd.c, as libvirt and Kata do: --net fd=N). Once the guest runs, every
# rvvmm thread has uid and gid 65534, no capabilities, no_new_privs and seccomp mode 2; the guest's disk
# and network work; poweroff ends rvvmm with status 0 and the guest's writes are in the image.
. /scenarios/lib.sh
modprobe -q tun 2>/dev/null
fails=0
bad() { echo "USER-FAIL $*"; fails=$((fails + 1)); }
MAC=52:54:00:00:00:65
dd if=/dev/zero of=u.img bs=1M count=8 2>/dev/null
rm -f in out err
mkfifo in
# shellcheck disable=SC2086 # RVVMM_EXTRA holds several options
/guests/tapfd rvtapu 7 rvvmm --kernel "$GK" --initrd "$GI" $RVVMM_EXTRA --cores 1 --memory 256M \
  --user 65534:65534 --disk path=u.img --net "fd=7,mac=$MAC" <in >out 2>err &
pid=$!
exec 3>in
wait_for out 'RVVMM-L2-BOOTED' 240 || { cat err; exit 1; }
st=/proc/$pid/status
echo "USER-STATUS $(grep -E '^(Uid|Gid|CapPrm|CapEff|NoNewPrivs|Seccomp):' "$st" | tr -s '\t ' ' ' | tr '\n' ';')"
grep -q '^Uid:[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534$' "$st" || bad "uid"
grep -q '^Gid:[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534$' "$st" || bad "gid"
grep -q '^CapEff:[[:space:]]*0000000000000000$' "$st" || bad "effective capabilities"
grep -q '^CapPrm:[[:space:]]*0000000000000000$' "$st" || bad "permitted capabilities"
grep -q '^NoNewPrivs:[[:space:]]*1$' "$st" || bad "no_new_privs"
grep -q '^Seccomp:[[:space:]]*2$' "$st" || bad "seccomp"
threads=0
for t in /proc/$pid/task/*; do
  threads=$((threads + 1))
  grep -q '^Uid:[[:space:]]*65534[[:space:]]' "$t/status" || bad "thread $(cat "$t/comm") runs as $(grep '^Uid:' "$t/status")"
done
echo "USER-THREADS $threads"
ip addr add 10.0.9.1/24 dev rvtapu && ip link set rvtapu up
guest_cmd "for i in /sys/class/net/eth*; do [ \$(cat \$i/address) = $MAC ] && A=\${i##*/}; done; ip addr add 10.0.9.15/24 dev \$A; ip link set \$A up; ping -c 3 -W 5 10.0.9.1 >/dev/null; echo UPING-\$((1+1))-rc=\$?" 'UPING-2-rc=' 90 || exit 1
guest_cmd 'echo user-disk-data | dd of=/dev/vda conv=fsync 2>/dev/null; echo UDISK-$((2+1))-rc=$?' 'UDISK-3-rc=' 60 || exit 1
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out | grep -E '^(UPING|UDISK)' | tee results
grep -q '^UPING-2-rc=0' results || bad "ping over the passed tap"
grep -q '^UDISK-3-rc=0' results || bad "disk write"
head -c 14 u.img | grep -q '^user-disk-data' && echo "USER-DISK-DATA ok" || bad "the guest's write is not in the image"
[ "$rc" -eq 0 ] || bad "rvvmm status $rc"
grep -q panicked err && bad "panic"
grep -E 'running as|error' err | head -5
echo "USER-FAILS $fails"
[ "$fails" -eq 0 ]
