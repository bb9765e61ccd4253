# A hostile bare-metal guest (tests/guests/baremetal with "hostile"): notifications of queues that do not
# exist, writes to read-only registers and config space, MMIO accesses of 1, 2 and 8 bytes to every
# device and to unmapped space, a queue size that is not a power of two, rings outside RAM, descriptor
# loops, buffers outside RAM and in MMIO, a huge length, an avail index far ahead, a storm of
# notifications and interrupt acknowledgements, DBCN buffers that wrap around the address space. rvvmm
# must refuse or ignore each one, keep serving (the guest's normal disk read afterwards passes) and end
# with the guest's own status (0); no panic. RVVMM_EXTRA: extra rvvmm options (e.g. --irqchip plic).
printf 'RVVMM-BAREMETAL-DISK' >h.img
dd if=/dev/zero of=h.img bs=512 seek=1 count=2047 conv=notrunc 2>/dev/null
sum=$(sha256sum h.img | cut -d' ' -f1)
# shellcheck disable=SC2086 # RVVMM_EXTRA holds several options
rvvmm --memory 64M $RVVMM_EXTRA --kernel /guests/bm.elf --cores 2 --disk path=h.img \
  --cmdline "hostile exit=srst-shutdown" </dev/null >out 2>err
rc=$?
tr -d '\r' <out | grep '^BM-'
# What rvvmm said about it (counted, most frequent first).
sed 's/^\[[^]]*\] *//' err | sed 's/0x[0-9a-f]*/N/g' | sort | uniq -c | sort -rn | head -8
after=$(sha256sum h.img | cut -d' ' -f1)
echo "HOSTILE-RUN rc=$rc panics=$(grep -c panicked err) image-unchanged=$([ "$sum" = "$after" ] && echo yes || echo no)"
[ "$rc" -eq 0 ] && ! grep -q panicked err && ! tr -d '\r' <out | grep -q '^BM-FAIL'
