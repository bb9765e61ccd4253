# Rate limits (cloud-hypervisor's --disk keys): the same 16 MiB read from an unlimited disk, from one
# limited to 1 MiB per 100 ms (10 MiB/s, a full 1 MiB bucket to start: (16 - 1) / 10 = 1.5 s) and from
# one limited to 256 KiB per 100 ms (2.5 MiB/s: (16 - 0.25) / 2.5 = 6.3 s). The nested bench's own disk
# speed is of the order of 10 MiB/s, so the second limit is the one that shows against the unlimited read.
. /scenarios/lib.sh
dd if=/dev/urandom of=lim.img bs=1M count=16 2>/dev/null
cp lim.img free.img
cp lim.img slow.img
start_guest --cores 2 --memory 256M --disk path=lim.img,bw_size=1048576,bw_refill_time=100 \
  --disk path=free.img --disk path=slow.img,bw_size=262144,bw_refill_time=100
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
sleep 1
# read DEV N: time a 16 MiB read of DEV in the guest (/proc/uptime stamps), marker RL-N.
read_dev() {
  guest_cmd "a=\$(cut -d' ' -f1 /proc/uptime); dd if=/dev/$1 of=/dev/null bs=1M count=16 2>/dev/null; b=\$(cut -d' ' -f1 /proc/uptime); echo \"RL-\$((${2}+1)) $1 \$a \$b\"" "RL-$(($2 + 1)) $1 [0-9.]+ [0-9.]+" 120
}
read_dev vdb 10 || exit 1
read_dev vda 20 || exit 1
read_dev vdc 30 || exit 1
echo 'poweroff -f' >&3
finish_guest
rc=$?
secs() { tr -d '\r' <out | grep "^RL-$1 " | tail -1 | awk '{ printf "%.2f", $4 - $3 }'; }
free=$(secs 11)
lim=$(secs 21)
slow=$(secs 31)
ratio() { awk -v l="$1" -v f="$2" 'BEGIN { if (f > 0) printf "%.1f", l / f; else print "inf" }'; }
echo "RATELIMIT limited=${lim}s slow=${slow}s unlimited=${free}s limited/unlimited=$(ratio "$lim" "$free") slow/unlimited=$(ratio "$slow" "$free")"
grep -i 'rate limited' err | head -2
fails=0
awk -v l="$lim" 'BEGIN { exit !(l >= 1.3 && l <= 4.0) }' || { echo "RATELIMIT-FAIL limited read took ${lim}s, not about 1.5"; fails=$((fails + 1)); }
awk -v l="$slow" 'BEGIN { exit !(l >= 5.5 && l <= 12.0) }' || { echo "RATELIMIT-FAIL the 2.5 MiB/s read took ${slow}s, not about 6.3"; fails=$((fails + 1)); }
awk -v l="$slow" -v f="$free" 'BEGIN { exit !(f < l) }' || { echo "RATELIMIT-FAIL the unlimited read was not faster than the 2.5 MiB/s one"; fails=$((fails + 1)); }
echo "RATELIMIT-FAILS $fails rc=$rc"
[ "$fails" -eq 0 ] && [ "$rc" -eq 0 ]
