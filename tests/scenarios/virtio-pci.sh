# --virtio-transport pci (what a Linux guest gets by default on the AIA): disks, a network card and
# virtio-rng as modern virtio-pci functions behind the PCIe host bridge. The guest finds them on its PCI bus (vendor 1af4, modern ids), its virtio drivers take
# one MSI-X vector per queue, data crosses the disk and the network both ways with identical checksums,
# and the guest's I/O costs no virtio exits to rvvmm (notifications are ioeventfds, interrupts irqfds):
# rvvmm's exit counts show no virtio-mmio window and only configuration-time PCI exits.
. /scenarios/lib.sh
set -e
modprobe -q tun 2>/dev/null || true
dd if=/dev/urandom of=a.img bs=1M count=8 2>/dev/null   # vda: L1 -> guest
dd if=/dev/zero of=b.img bs=1M count=16 2>/dev/null     # vdb: guest -> L1
a_sum=$(sha256sum a.img | cut -d' ' -f1)
MAC=52:54:00:00:0c:01
set +e
start_guest --cores 2 --memory 512M --virtio-transport pci --log-level info \
  --disk path=a.img --disk path=b.img --net "tap=rvpci0,mac=$MAC" --rng
wait_for out 'RVVMM-L2-BOOTED' 240 || { cat err; exit 1; }
ip addr add 10.0.4.1/24 dev rvpci0 && ip link set rvpci0 up
guest_cmd 'for d in /sys/bus/pci/devices/*; do echo "GPCI $(cat $d/vendor):$(cat $d/device) ${d##*/} $(basename $(readlink $d/driver) 2>/dev/null)"; done; echo PCILIST-$((1+1))' 'PCILIST-2' 60 || exit 1
guest_cmd 'grep -c "virtio.*-\(req\|input\|output\|config\)" /proc/interrupts | sed "s/^/GMSIX-LINES /"; grep -m3 virtio /proc/interrupts | sed "s/^/GIRQ /"; echo IRQS-$((2+1))' 'IRQS-3' 60 || exit 1
guest_cmd 'echo "GSUM-A $(sha256sum /dev/vda)"' 'GSUM-A [0-9a-f]{64}' 120 || exit 1
guest_cmd 'dd if=/dev/urandom of=/tmp/data bs=1M count=6 2>/dev/null; echo "GSUM-B $(sha256sum /tmp/data)"; dd if=/tmp/data of=/dev/vdb bs=1M conv=fsync 2>/dev/null; echo WROTE-$((2+2))-rc=$?' 'WROTE-4-rc=' 120 || exit 1
guest_cmd "for i in /sys/class/net/*; do [ \"\$(cat \$i/address)\" = $MAC ] && A=\${i##*/}; done; ip addr add 10.0.4.15/24 dev \$A; ip link set \$A up; ping -c 3 -W 5 10.0.4.1 >/dev/null; echo PING-\$((2+3))-rc=\$?" 'PING-5-rc=' 90 || exit 1
sleep 900 | nc -l -p 5002 >recv &
wait_listen 5002 30 || exit 1
guest_cmd 'dd if=/dev/urandom of=/tmp/tx bs=1M count=4 2>/dev/null; echo "GTX-SUM $(sha256sum /tmp/tx)"; nc 10.0.4.1 5002 </tmp/tx; echo SENT-$((3+3))-rc=$?' 'SENT-6-rc=' 300 || exit 1
i=0
while [ "$(wc -c <recv)" -lt 4194304 ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
dd if=/dev/urandom of=tx2 bs=1M count=4 2>/dev/null
guest_cmd '(sleep 900 | nc -l -p 5003 >/tmp/rx &) ; echo LISTEN-$((4+4))' 'LISTEN-8' 30 || exit 1
# The guest's nc may not be listening yet when LISTEN-8 is printed: retry while refused.
connect_retry 30 10.0.4.15 5003 <tx2
guest_cmd 'i=0; while [ $(wc -c </tmp/rx) -lt 4194304 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; echo "GRX-SUM $(sha256sum /tmp/rx)"' 'GRX-SUM [0-9a-f]{64}' 120 || exit 1
guest_cmd 'echo "GRNG $(cat /sys/class/misc/hw_random/rng_current) $(head -c 64 /dev/hwrng | od -An -tx1 | tr -d " \n" | wc -c)"' 'GRNG [a-z_.0-9]+ [0-9]+' 60 || exit 1
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out | grep -E '^(GPCI|GMSIX-LINES|GIRQ|GSUM|WROTE|PING|GTX-SUM|SENT|GRX-SUM|GRNG)' | tee results
grep -E 'virtio-pci function|vcpu exits to rvvmm' err | sed 's/^\[[^]]*\] *//' | tee -a results
fails=0
for id in 0x1af4:0x1042 0x1af4:0x1041 0x1af4:0x1044; do
  n=$(grep -c "^GPCI $id .* virtio-pci" results)
  [ "$id" = 0x1af4:0x1042 ] && want=2 || want=1
  [ "$n" -eq "$want" ] && echo "VPCI-FOUND $id x$n" || { echo "VPCI-MISSING $id ($n, want $want)"; fails=$((fails + 1)); }
done
# Per-queue vectors: a config vector and one per queue for each device (2 disks x 2, net 3, rng 2).
msix=$(awk '/^GMSIX-LINES/ { print $2 }' results)
[ "${msix:-0}" -ge 9 ] && echo "VPCI-MSIX-VECTORS $msix" || { echo "VPCI-MSIX-FEW ${msix:-none}"; fails=$((fails + 1)); }
grep -q "^GSUM-A $a_sum" results && echo VPCI-DISK-READ-MATCH || fails=$((fails + 1))
b_sum=$(head -c 6291456 b.img | sha256sum | cut -d' ' -f1)
grep -q "^GSUM-B $b_sum" results && echo VPCI-DISK-WRITE-MATCH || fails=$((fails + 1))
grep -q '^PING-5-rc=0' results && echo VPCI-PING-OK || fails=$((fails + 1))
gtx=$(awk '/^GTX-SUM/ { print $2 }' results)
[ -n "$gtx" ] && [ "$gtx" = "$(sha256sum recv | cut -d' ' -f1)" ] && echo VPCI-GUEST-TO-L1-MATCH || fails=$((fails + 1))
grx=$(awk '/^GRX-SUM/ { print $2 }' results)
[ -n "$grx" ] && [ "$grx" = "$(sha256sum tx2 | cut -d' ' -f1)" ] && echo VPCI-L1-TO-GUEST-MATCH || fails=$((fails + 1))
grep -q '^GRNG virtio_rng.0 128' results && echo VPCI-RNG-OK || fails=$((fails + 1))
# Exits: none to a virtio-mmio window; PCI exits only from enumeration and driver setup (a few
# thousand at most), however much data moved.
exits=$(grep 'vcpu exits to rvvmm' results | tail -1)
echo "$exits" | grep -q 'virtio[0-9]' && { echo "VPCI-MMIO-EXITS $exits"; fails=$((fails + 1)); }
pci=$(echo "$exits" | sed -n 's/.*pci=\([0-9]*\).*/\1/p')
[ -n "$pci" ] && [ "$pci" -lt 3000 ] && echo "VPCI-PCI-EXITS $pci" || { echo "VPCI-PCI-EXITS-HIGH ${pci:-none}"; fails=$((fails + 1)); }
echo "VPCI-FAILS $fails rc=$rc"
tail -3 err
[ "$fails" -eq 0 ] && [ "$rc" -eq 0 ]
