# Boot the Debian kernel + busybox initramfs as L2 with 2 cores and 512M: the guest prints what it sees and
# powers off (SBI SRST); rvvmm must exit 0.
start=$(date +%s)
rvvmm --kernel "${RVVMM_GUEST_KERNEL:-/guest/Image}" --initrd "${RVVMM_GUEST_INITRD:-/guest/initrd.cpio.gz}" \
  --cores 2 --memory 512M --cmdline "console=ttyS0 rvvmm.poweroff" --log-level info $RVVMM_EXTRA
rc=$?
echo "L2-BOOT-EXIT rc=$rc seconds=$(( $(date +%s) - start ))"
[ "$rc" -eq 0 ]
