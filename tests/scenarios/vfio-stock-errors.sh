# --device on a host whose kernel has no IOMMU for its PCI devices (Debian's stock kernel in L1): the host
# bridge 00:00.0 is a PCI device bound to no driver; rvvmm says how to bind it and exits 1.
. /scenarios/lib.sh
rvvmm --kernel "$GK" --memory 256M --device path=/sys/bus/pci/devices/0000:00:00.0 </dev/null >out 2>err
rc=$?
echo "STOCK rc=$rc: $(cat err)"
[ "$rc" -eq 1 ] && [ "$(wc -l <err)" -eq 1 ] && grep -q 'not bound to any driver, not to vfio-pci' err && echo PT-STOCK-NOT-BOUND-OK
