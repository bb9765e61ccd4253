# --dump-dtb writes the device tree rvvmm builds from what this host's KVM reports, and exits 0; the blob is
# printed as hex so the host side of the test can decompile it with dtc.
rvvmm --kernel "${RVVMM_GUEST_KERNEL:-/guest/Image}" --initrd "${RVVMM_GUEST_INITRD:-/guest/initrd.cpio.gz}" \
  --cores 2 --memory 512M --cmdline "console=ttyS0 dtb-test" --dump-dtb guest.dtb $RVVMM_EXTRA
rc=$?
echo "DUMP-DTB rc=$rc size=$(wc -c <guest.dtb)"
[ "$rc" -eq 0 ] || exit 1
echo DTB-HEX-BEGIN
od -A n -t x1 -v guest.dtb
echo DTB-HEX-END
