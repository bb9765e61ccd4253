# Benchmark (prints numbers, asserts nothing about speed): TCP throughput guest -> L1 and L1 -> guest over
# virtio-net on a tap, and the same transfer over loopback inside L1 as the ceiling.
. /scenarios/lib.sh
MB=${RVVMM_BENCH_NET_MB:-32}
modprobe -q tun 2>/dev/null
now() { awk '{ print $1 }' /proc/uptime; }
rate() { awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { d = t1 - t0; if (d <= 0) d = 0.01; printf "%.2f", b / 1048576 / d }'; }
dd if=/dev/urandom of=payload bs=1M count="$MB" 2>/dev/null
bytes=$((MB * 1048576))

# Loopback ceiling inside L1.
sleep 900 | nc -l -p 6000 >/dev/null &
sleep 1
t0=$(now); nc 127.0.0.1 6000 <payload; t1=$(now)
lo=$(rate $bytes "$t0" "$t1")
kill %1 2>/dev/null

start_guest --cores 2 --memory 512M --net "tap=rvbench0,mac=52:54:00:00:00:10${RVVMM_NET_EXTRA:-}"
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
ip addr add 10.0.4.1/24 dev rvbench0 && ip link set rvbench0 up
guest_cmd 'for i in /sys/class/net/eth*; do A=${i##*/}; done; ip addr add 10.0.4.15/24 dev $A; ip link set $A up; ping -c 1 -W 5 10.0.4.1 >/dev/null; echo UP-$((1+1))' 'UP-2' 60 || exit 1

# Guest -> L1: the guest times its own send (nc exits when the payload is sent and the socket closed).
sleep 900 | nc -l -p 6001 >/dev/null &
sleep 1
guest_cmd "dd if=/dev/zero of=/tmp/p bs=1M count=$MB 2>/dev/null; t0=\$(awk '{print \$1}' /proc/uptime); nc 10.0.4.1 6001 </tmp/p; t1=\$(awk '{print \$1}' /proc/uptime); echo G2H-\$((2+2)) \$t0 \$t1" 'G2H-4 [0-9]' 600 || exit 1
g2h=$(tr -d '\r' <out | awk '/^G2H-4 / { print $2, $3 }' | tail -1)
g2h=$(rate $bytes ${g2h% *} ${g2h#* })

# L1 -> guest: L1 times the send into the guest's listener.
guest_cmd '(sleep 900 | nc -l -p 6002 >/dev/null &); echo LISTEN-$((3+3))' 'LISTEN-6' 30 || exit 1
sleep 2
t0=$(now); nc 10.0.4.15 6002 <payload; t1=$(now)
h2g=$(rate $bytes "$t0" "$t1")
echo 'poweroff -f' >&3
finish_guest >/dev/null
v=${RVVMM_BENCH_VARIANT:-userspace,aia}
echo "BENCH-NET $v guest->L1 MiB/s=$g2h"
echo "BENCH-NET $v L1->guest MiB/s=$h2g"
echo "BENCH-NET loopback-in-L1 MiB/s=$lo"
