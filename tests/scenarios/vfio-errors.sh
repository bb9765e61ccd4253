# --device errors on the passthrough host, before and after binding to vfio-pci: each gets one
# "rvvmm: error:" line and status 1, and the device is left as it was (same driver as before).
. /scenarios/lib.sh
. /scenarios/lib-vfio.sh
fails=0
# expect STATUS PATTERN ARGS...: rvvmm exits STATUS with one stderr line matching PATTERN.
expect() {
  want=$1 pat=$2
  shift 2
  rvvmm --kernel "$GK" --memory 256M "$@" </dev/null >eout 2>eerr
  rc=$?
  lines=$(wc -l <eerr)
  echo "CASE rc=$rc lines=$lines: $(cat eerr)"
  if [ "$rc" -ne "$want" ] || ! grep -q -E -e "$pat" eerr || { [ "$want" -eq 1 ] && [ "$lines" -ne 1 ]; } || grep -q panicked eerr; then
    echo "CASE-BAD wanted rc=$want /$pat/"
    fails=$((fails + 1))
  fi
}
echo "PT-DEVICES blk=$PT_BLK net=$PT_NET blk-driver=$(driver_of "$PT_BLK")"
before=$(driver_of "$PT_BLK")
expect 1 'no such PCI device' --device path=/sys/bus/pci/devices/0000:00:1f.0
expect 2 'invalid PCI address' --device path=/sys/bus/pci/devices/00:1f
expect 1 "bound to $before, not to vfio-pci; bind it with: echo vfio-pci > /sys/bus/pci/devices/$PT_BLK/driver_override" \
  --device "path=/sys/bus/pci/devices/$PT_BLK"
[ "$(driver_of "$PT_BLK")" = "$before" ] && echo "PT-ERR-LEFT-AS-IT-WAS driver=$before" || fails=$((fails + 1))
bind_vfio "$PT_BLK" || exit 1
# The host cannot isolate MSIs (no interrupt remapping): refused with the way out.
expect 1 'cannot isolate its MSIs.*allow_unsafe_interrupts=1' --device "path=/sys/bus/pci/devices/$PT_BLK"
allow_unsafe_msi
expect 1 'given twice' --device "path=/sys/bus/pci/devices/$PT_BLK" --device "$PT_BLK"
expect 1 '--device needs the in-kernel AIA' --irqchip plic --device "path=/sys/bus/pci/devices/$PT_BLK"
# A device held by a running VM: a second VM gets a clear error; the first keeps running.
start_guest --cores 1 --memory 256M --device "path=/sys/bus/pci/devices/$PT_BLK"
wait_for out 'RVVMM-L2-BOOTED' 300 || { cat err; exit 1; }
expect 1 'in use by another process' --cores 1,shared --device "path=/sys/bus/pci/devices/$PT_BLK"
kill -0 "$pid" && echo PT-FIRST-VM-STILL-RUNNING || fails=$((fails + 1))
echo 'poweroff -f' >&3
finish_guest || fails=$((fails + 1))
# Once that VM is gone the device can be used again.
rvvmm --kernel "$GK" --memory 256M --device "path=/sys/bus/pci/devices/$PT_BLK" --dump-dtb pt.dtb 2>derr
echo "PT-FREE-AGAIN rc=$?"
[ -s pt.dtb ] || { cat derr; fails=$((fails + 1)); }
echo "PT-ERR-FAILS $fails"
[ "$fails" -eq 0 ]
