# Faults, with nothing lost: SIGTERM and SIGKILL while the guest writes to its disk (after SIGTERM every
# chunk the guest had flushed is in the image; after SIGKILL too, and the image is a file of the same size
# that a second rvvmm opens and reads); a disk on a full file system and a disk truncated under the
# running guest give the guest I/O errors, not a crash; a tap deleted under the running guest; a guest
# that floods the console. Each VM ends with the status its stop asks for.
. /scenarios/lib.sh
modprobe -q tun 2>/dev/null
fails=0
note() { echo "FAULT $*"; }
bad() { echo "FAULT-BAD $*"; fails=$((fails + 1)); }

# writer: in the guest, chunk i (1 MiB of random data with "CHUNK-i" at its start) is written at MiB i and
# flushed (conv=fsync), then FLUSHED-i is printed; 64 chunks, far more than a stop lets it write.
writer='i=1; while [ $i -le 64 ]; do { printf "CHUNK-%03d" $i; head -c 1048567 /dev/urandom; } | dd of=/dev/vda bs=1M seek=$i conv=fsync 2>/dev/null && echo FLUSHED-$i; i=$((i+1)); done'
# check_chunks IMG LOG: every chunk LOG says was flushed starts with its marker in IMG.
check_chunks() {
  n=0 missing=0
  for i in $(tr -d '\r' <"$2" | sed -n 's/^FLUSHED-\([0-9]*\)$/\1/p'); do
    n=$((n + 1))
    want=$(printf "CHUNK-%03d" "$i")
    got=$(dd if="$1" bs=1M skip="$i" count=1 2>/dev/null | head -c 9)
    [ "$got" = "$want" ] || missing=$((missing + 1))
  done
  echo "$n $missing"
}

for sig in TERM KILL; do
  dd if=/dev/zero of=w-$sig.img bs=1M count=80 2>/dev/null
  start_guest --cores 2 --memory 256M --disk path=w-$sig.img
  wait_for out 'RVVMM-L2-BOOTED' 240 || { tail -5 err; exit 1; }
  echo "$writer" >&3
  wait_for out 'FLUSHED-3' 240 || { bad "$sig: the guest did not write"; continue; }
  kill -$sig $pid
  wait $pid
  rc=$?
  exec 3>&-
  set -- $(check_chunks w-$sig.img out)
  size=$(stat -c %s w-$sig.img)
  note "sig=$sig rc=$rc flushed=$1 missing=$2 size=$size"
  [ "$2" -eq 0 ] && [ "$1" -ge 3 ] || bad "$sig: flushed chunks missing from the image"
  [ "$size" -eq 83886080 ] || bad "$sig: the image changed size"
  if [ $sig = TERM ]; then [ "$rc" -eq 143 ] || bad "TERM: rc=$rc"; else [ "$rc" -eq 137 ] || bad "KILL: rc=$rc"; fi
done
# After SIGKILL: a second rvvmm opens the image (its lock died with the first) and reads chunk 1.
start_guest --memory 256M --disk path=w-KILL.img
wait_for out 'RVVMM-L2-BOOTED' 240 || { tail -5 err; exit 1; }
guest_cmd 'echo "REREAD-$((1+1)) $(dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null | head -c 9)"' 'REREAD-2 ' 60
echo 'poweroff -f' >&3
finish_guest >/dev/null
rc=$?
line=$(tr -d '\r' <out | grep '^REREAD-2 ')
note "reopen rc=$rc $line"
[ "$rc" -eq 0 ] && [ "$line" = "REREAD-2 CHUNK-001" ] || bad "the image after SIGKILL does not reopen"

# A disk on a full file system: 16 MiB sparse image on a 4 MiB tmpfs.
mkdir -p full && mount -t tmpfs -o size=4m tmpfs full
truncate -s 16M full/d.img
# A disk truncated under the guest: 8 MiB, cut to 1 MiB while the guest runs.
dd if=/dev/urandom of=t.img bs=1M count=8 2>/dev/null
start_guest --memory 256M --disk path=full/d.img --disk path=t.img
wait_for out 'RVVMM-L2-BOOTED' 240 || { tail -5 err; exit 1; }
guest_cmd 'dd if=/dev/urandom of=/dev/vda bs=1M count=12 conv=fsync 2>/dev/null; echo "ENOSPC-$((2+2)) rc=$?"' 'ENOSPC-4 rc=' 240
truncate -s 1M t.img
guest_cmd 'dd if=/dev/vdb of=/dev/null bs=1M skip=4 count=2 iflag=direct 2>/dev/null; echo "TRUNC-$((3+3)) rc=$?"' 'TRUNC-6 rc=' 120
# A console flood: 256 KiB through the UART.
guest_cmd 'head -c 262144 /dev/zero | tr "\0" "x"; echo; echo "FLOOD-$((4+4)) done"' 'FLOOD-8 done' 600
echo 'poweroff -f' >&3
finish_guest >/dev/null
rc=$?
umount full
enospc=$(tr -d '\r' <out | grep -m1 '^ENOSPC-4 ')
trunc=$(tr -d '\r' <out | grep -m1 '^TRUNC-6 ')
xs=$(tr -d '\r' <out | tr -cd x | wc -c)
note "full-fs $enospc; truncated $trunc; flood bytes=$xs; rc=$rc panics=$(grep -c panicked err)"
grep -i 'error' err | sed 's/^\[[^]]*\] *//' | sed 's/0x[0-9a-f]*/N/g; s/[0-9][0-9]*/N/g' | sort | uniq -c | head -5
[ "$enospc" != "ENOSPC-4 rc=0" ] || bad "no I/O error on a full file system"
[ "$trunc" != "TRUNC-6 rc=0" ] || bad "no I/O error on a truncated disk"
[ "$xs" -ge 262144 ] || bad "console output lost ($xs bytes)"
[ "$rc" -eq 0 ] && ! grep -q panicked err || bad "rvvmm did not survive the disk faults (rc=$rc)"

# A tap deleted under the running guest: the guest's pings fail, the disk still works, poweroff is clean.
dd if=/dev/zero of=n.img bs=1M count=4 2>/dev/null
start_guest --memory 256M --net tap=fltap0 --disk path=n.img
wait_for out 'RVVMM-L2-BOOTED' 240 || { tail -5 err; exit 1; }
ip addr add 10.0.5.1/24 dev fltap0 && ip link set fltap0 up
guest_cmd 'ip addr add 10.0.5.15/24 dev eth0; ip link set eth0 up; ping -c 1 -W 5 10.0.5.1 >/dev/null; echo "PING-A-$((5+5)) rc=$?"' 'PING-A-10 rc=' 60
ip link delete fltap0
guest_cmd 'ping -c 2 -W 2 10.0.5.1 >/dev/null; echo "PING-B-$((6+6)) rc=$?"; echo data | dd of=/dev/vda conv=fsync 2>/dev/null; echo "DISK-$((7+7)) rc=$?"' 'DISK-14 rc=' 90
echo 'poweroff -f' >&3
finish_guest >/dev/null
rc=$?
a=$(tr -d '\r' <out | grep -m1 '^PING-A-10 ')
b=$(tr -d '\r' <out | grep -m1 '^PING-B-12 ')
d=$(tr -d '\r' <out | grep -m1 '^DISK-14 ')
note "tap-deleted before: $a; after: $b; $d; rc=$rc"
[ "$a" = "PING-A-10 rc=0" ] && [ "$b" != "PING-B-12 rc=0" ] && [ "$d" = "DISK-14 rc=0" ] && [ "$rc" -eq 0 ] \
  || bad "tap deletion"
grep -q panicked err && bad "panic after tap deletion"
echo "FAULT-FAILS $fails"
[ "$fails" -eq 0 ]
