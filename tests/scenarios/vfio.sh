# VFIO passthrough end to end: L0's virtio-blk-pci disk and virtio-net-pci card (behind QEMU's RISC-V
# IOMMU), bound to vfio-pci in L1, are given to the L2 guest with --device, next to a virtio disk of
# rvvmm's own (virtio-pci, the default for Linux on the AIA: on the same PCI bus, after them).
# The guest reads the passed-through disk and must see exactly what L0 wrote (sha256 from L1's command
# line), writes a marker that the L0 test then finds in the backing file, gets an address by DHCP from
# QEMU's user network on the passed-through card, pings the gateway and sends 1 MiB through a TCP echo
# service both ways. /proc/interrupts must show MSI-X vectors for both devices and rvvmm's disk.
. /scenarios/lib.sh
. /scenarios/lib-vfio.sh
echo "PT-DEVICES blk=$PT_BLK net=$PT_NET"
[ -n "$PT_BLK" ] && [ -n "$PT_NET" ] || { echo "no passthrough devices in L1"; exit 1; }
allow_unsafe_msi
bind_vfio "$PT_BLK" || exit 1
bind_vfio "$PT_NET" || exit 1
want=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^rvvmm.pt_disk_sha256=//p')
echo "PT-DISK-WANT $want"
dd if=/dev/zero of=mmio.img bs=1M count=8 2>/dev/null
printf 'MMIO-DISK-CONTENT-OK\n' | dd of=mmio.img conv=notrunc 2>/dev/null

start_guest --cores 2 --memory 512M --log-level info \
  --device "path=/sys/bus/pci/devices/$PT_BLK" --device "path=/sys/bus/pci/devices/$PT_NET" \
  --disk path=mmio.img
wait_for out 'RVVMM-L2-BOOTED' 300 || { cat err; exit 1; }
# Find the disks by size: the passed-through one has 64 MiB (131072 sectors), rvvmm's own 8 MiB.
guest_cmd 'for b in /sys/block/vd*; do [ $(cat $b/size) = 131072 ] && PT=${b##*/}; [ $(cat $b/size) = 16384 ] && MM=${b##*/}; done; echo "DISKS-$((1+1)) pt=$PT mmio=$MM"' 'DISKS-2 pt=vd' 60 || { cat err; exit 1; }
guest_cmd 'echo "PT-DISK-GOT $(sha256sum /dev/$PT | cut -d" " -f1)"' 'PT-DISK-GOT [0-9a-f]{64}' 300 || exit 1
guest_cmd 'printf "RVVMM-PT-WRITE-MARKER\n" >/tmp/m; dd if=/tmp/m of=/dev/$PT bs=512 seek=65536 conv=sync,fsync 2>/dev/null; echo PT-WRITE-$((2+3))-rc=$?' 'PT-WRITE-5-rc=' 60 || exit 1
guest_cmd 'echo "MMIO-READ $(head -c 20 /dev/$MM)"' 'MMIO-READ MMIO' 60 || exit 1
# Network: the card with QEMU's MAC gets an address by DHCP from QEMU's user network (busybox udhcpc with a
# tiny script), pings the gateway and carries 1 MiB through a TCP echo service both ways.
guest_cmd "printf '#!/bin/sh\n[ \"\$1\" = bound ] && ifconfig \$interface \$ip netmask \$subnet up\nexit 0\n' >/tmp/dhcp.sh; chmod +x /tmp/dhcp.sh; for i in /sys/class/net/eth*; do [ \$(cat \$i/address) = $PT_MAC ] && N=\${i##*/}; done; ip link set \$N up; udhcpc -i \$N -s /tmp/dhcp.sh -n -q -t 10 >/tmp/dhcp.log 2>&1; echo DHCP-\$((3+4))-rc=\$? dev=\$N addr=\$(ip -4 addr show dev \$N | awk '/inet /{print \$2}')" 'DHCP-7-rc=' 120 || exit 1
guest_cmd 'ping -c 3 -W 5 10.0.2.2 >/tmp/ping 2>&1; echo PING-$((4+4))-rc=$?' 'PING-8-rc=' 60 || exit 1
guest_cmd 'dd if=/dev/urandom of=/tmp/tx bs=1K count=1024 2>/dev/null; (cat /tmp/tx; sleep 8) | nc 10.0.2.100 7777 >/tmp/rx; echo "ECHO-$((5+4)) tx=$(sha256sum </tmp/tx | cut -c1-64) rx=$(sha256sum </tmp/rx | cut -c1-64) bytes=$(wc -c </tmp/rx)"' 'ECHO-9 tx=' 180 || exit 1
guest_cmd 'grep -i msi /proc/interrupts | tr -s " " >/tmp/irq; echo IRQ-BEGIN; cat /tmp/irq; echo IRQ-END-$((5+5))' 'IRQ-END-10' 30 || exit 1
guest_cmd 'ls /sys/bus/pci/devices; echo PCI-LIST-$((6+5))' 'PCI-LIST-11' 30
echo 'poweroff -f' >&3
finish_guest
rc=$?
tr -d '\r' <out >out.txt
fails=0
got=$(sed -n 's/^PT-DISK-GOT \([0-9a-f]\{64\}\).*/\1/p' out.txt)
[ -n "$want" ] && [ "$got" = "$want" ] && echo PT-DISK-READ-MATCH || { echo "PT-DISK-READ-MISMATCH got=$got"; fails=$((fails + 1)); }
grep -q '^PT-WRITE-5-rc=0' out.txt && echo PT-DISK-WRITE-OK || fails=$((fails + 1))
grep -q '^MMIO-READ MMIO-DISK-CONTENT-OK' out.txt && echo PT-WITH-VIRTIO-DISK-OK || fails=$((fails + 1))
grep -E '^(DHCP|PING)-' out.txt
grep -E '^DHCP-7-rc=0 .*addr=10\.0\.2\.[0-9]+/' out.txt >/dev/null && echo PT-NET-DHCP-OK || fails=$((fails + 1))
grep -q '^PING-8-rc=0' out.txt && echo PT-NET-PING-OK || fails=$((fails + 1))
echo_line=$(grep '^ECHO-9 ' out.txt)
echo "$echo_line"
tx=$(echo "$echo_line" | sed -n 's/.* tx=\([0-9a-f]*\).*/\1/p')
rx=$(echo "$echo_line" | sed -n 's/.* rx=\([0-9a-f]*\).*/\1/p')
[ -n "$tx" ] && [ "$tx" = "$rx" ] && echo "$echo_line" | grep -q 'bytes=1048576' && echo PT-NET-TCP-OK || fails=$((fails + 1))
sed -n '/^IRQ-BEGIN/,/^IRQ-END/p' out.txt
# The guest PCI functions (00:01.0 disk, 00:02.0 card passed through, 00:03.0 rvvmm's virtio-pci disk)
# have MSI-X vectors.
for bdf in 0000:00:01.0 0000:00:02.0 0000:00:03.0; do
  n=$(sed -n '/^IRQ-BEGIN/,/^IRQ-END/p' out.txt | grep -c "MSIX-$bdf")
  echo "PT-MSIX $bdf vectors=$n"
  [ "$n" -gt 0 ] || fails=$((fails + 1))
done
# The devices are left as they were: still on vfio-pci, and free for the next VM.
for bdf in "$PT_BLK" "$PT_NET"; do
  [ "$(driver_of "$bdf")" = vfio-pci ] && echo "PT-LEFT-BOUND $bdf" || fails=$((fails + 1))
done
rvvmm --kernel "$GK" --memory 256M --device "path=/sys/bus/pci/devices/$PT_BLK" --dump-dtb again.dtb 2>again.err
echo "PT-REOPEN rc=$?"
grep -q . again.err && cat again.err
[ -s again.dtb ] || fails=$((fails + 1))
grep -E 'passed through|BAR|MSI|error|panicked' err | head -20
grep -q panicked err && fails=$((fails + 1))
echo "PT-FAILS $fails rc=$rc"
[ "$fails" -eq 0 ] && [ "$rc" -eq 0 ]
