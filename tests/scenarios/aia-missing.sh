# On a host without AIA (QEMU virt without aia=), --irqchip aia is refused with a clear error.
rvvmm --kernel "${RVVMM_GUEST_KERNEL:-/guest/Image}" --cores 1 --irqchip aia </dev/null 2>err
rc=$?
cat err
echo "AIA-MISSING rc=$rc"
[ "$rc" -eq 1 ] && [ "$(wc -l <err)" -eq 1 ] && grep -q '^rvvmm: error: .*AIA' err
