# virtio-net on taps rvvmm creates: with an address on each side, the guest pings L1 on two --net devices,
# and several MiB cross TCP from guest to L1 and from L1 to guest with identical checksums.
# RVVMM_NET_EXTRA: options appended to each --net (e.g. ",vhost=on"), set by the vhost wrappers.
. /scenarios/lib.sh
modprobe -q tun 2>/dev/null
MAC1=52:54:00:00:00:01
MAC2=52:54:00:00:00:02
start_guest --cores 2 --memory 512M --net "tap=rvtap0,mac=$MAC1${RVVMM_NET_EXTRA:-}" --net "tap=rvtap1,mac=$MAC2${RVVMM_NET_EXTRA:-}"
wait_for out 'RVVMM-L2-BOOTED' 240 || { cat err; exit 1; }
ip addr add 10.0.2.1/24 dev rvtap0 && ip link set rvtap0 up
ip addr add 10.0.3.1/24 dev rvtap1 && ip link set rvtap1 up
ip addr show dev rvtap0 | head -3
# Guest side: find each interface by its MAC, give it an address.
guest_cmd "for i in /sys/class/net/eth*; do case \$(cat \$i/address) in $MAC1) A=\${i##*/};; $MAC2) B=\${i##*/};; esac; done; ip addr add 10.0.2.15/24 dev \$A; ip link set \$A up; ip addr add 10.0.3.15/24 dev \$B; ip link set \$B up; echo NETUP-\$((1+1)) \$A \$B" 'NETUP-2' 60 || exit 1
guest_cmd 'ping -c 3 -W 5 10.0.2.1 >/tmp/p1; echo PING1-$((2+1))-rc=$?; ping -c 3 -W 5 10.0.3.1 >/tmp/p2; echo PING2-$((2+2))-rc=$?' 'PING2-4-rc=' 90 || exit 1

# Guest -> L1: 4 MiB.
sleep 900 | nc -l -p 5000 >recv &
wait_listen 5000 30 || exit 1
guest_cmd 'dd if=/dev/urandom of=/tmp/tx bs=1M count=4 2>/dev/null; echo "GTX-SUM $(sha256sum /tmp/tx)"; nc 10.0.2.1 5000 </tmp/tx; echo SENT-$((3+3))-rc=$?' 'SENT-6-rc=' 300 || exit 1
i=0
while [ "$(wc -c <recv)" -lt 4194304 ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
echo "L1-RX-SUM $(sha256sum recv | cut -d' ' -f1) bytes=$(wc -c <recv)"

# L1 -> guest: 4 MiB over the second card.
dd if=/dev/urandom of=tx2 bs=1M count=4 2>/dev/null
echo "L1-TX-SUM $(sha256sum tx2 | cut -d' ' -f1)"
guest_cmd '(sleep 900 | nc -l -p 5001 >/tmp/rx &) ; echo LISTEN-$((4+4))' 'LISTEN-8' 30 || exit 1
# The guest's nc may not be listening yet when LISTEN-8 is printed: retry while refused.
connect_retry 30 10.0.3.15 5001 <tx2
echo "L1-SEND rc=$?"
guest_cmd 'i=0; while [ $(wc -c </tmp/rx) -lt 4194304 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; echo "GRX-SUM $(sha256sum /tmp/rx)"' 'GRX-SUM [0-9a-f]{64}' 120 || exit 1
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out | grep -E '^(NETUP|PING|GTX-SUM|SENT|GRX-SUM)' | tee results
fails=0
grep -q '^PING1-3-rc=0' results && echo NET-PING1-OK || fails=$((fails + 1))
grep -q '^PING2-4-rc=0' results && echo NET-PING2-OK || fails=$((fails + 1))
gtx=$(awk '/^GTX-SUM/ { print $2 }' results)
[ -n "$gtx" ] && [ "$gtx" = "$(sha256sum recv | cut -d' ' -f1)" ] && echo NET-GUEST-TO-L1-MATCH || fails=$((fails + 1))
grx=$(awk '/^GRX-SUM/ { print $2 }' results)
[ -n "$grx" ] && [ "$grx" = "$(sha256sum tx2 | cut -d' ' -f1)" ] && echo NET-L1-TO-GUEST-MATCH || fails=$((fails + 1))
echo "NET-FAILS $fails rc=$rc"
tail -3 err
[ "$fails" -eq 0 ] && [ "$rc" -eq 0 ]
