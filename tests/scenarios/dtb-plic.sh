# The device tree with the userspace PLIC: printed as hex for the host side to decompile.
rvvmm --kernel "${RVVMM_GUEST_KERNEL:-/guest/Image}" --cores 2 --memory 512M --irqchip plic --dump-dtb guest.dtb
rc=$?
echo "DUMP-DTB rc=$rc size=$(wc -c <guest.dtb)"
[ "$rc" -eq 0 ] || exit 1
echo DTB-HEX-BEGIN
od -A n -t x1 -v guest.dtb
echo DTB-HEX-END
