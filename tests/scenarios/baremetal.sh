# The bare-metal Rust test kernel (tests/guests/baremetal) as an ELF and as a raw binary: every check it
# makes prints BM-PASS/BM-FAIL (SBI DBCN console output and input, timer ticks through SBI TIME and Sstc,
# the Goldfish RTC advancing, a second hart through HSM, a virtio-blk read through virtio-mmio, the RTC
# alarm and a UART receive interrupt through the PLIC or the APLIC + IMSIC), then each power-off path
# gives its exit status, and bad kernel files get one error line each. RVVMM_EXTRA: extra rvvmm options
# (e.g. --irqchip plic).
fails=0
printf 'RVVMM-BAREMETAL-DISK' >bm.img
dd if=/dev/zero of=bm.img bs=512 seek=1 count=2047 conv=notrunc 2>/dev/null
# run NAME WANT_RC rvvmm-args...: one run, its BM lines prefixed with NAME.
run() {
  name=$1 want=$2
  shift 2
  # 'D' for the DBCN read, then a key for the UART receive interrupt once the guest is up.
  # shellcheck disable=SC2086 # RVVMM_EXTRA holds several options
  (printf 'D'; sleep 2; printf 'Z') | rvvmm --memory 64M $RVVMM_EXTRA "$@" >out-$name 2>err-$name
  rc=$?
  tr -d '\r' <out-$name | grep '^BM-' | sed "s/^/[$name] /"
  echo "BM-RUN $name rc=$rc"
  if [ "$rc" -ne "$want" ] || grep -q '^BM-FAIL' out-$name || grep -q panicked err-$name; then
    echo "BM-RUN-BAD $name wanted rc=$want"
    tail -5 err-$name
    fails=$((fails + 1))
  fi
}
full="--cores 2 --disk path=bm.img"
checks="dbcn-read rtc-irq uart-irq"
run elf 0 --kernel /guests/bm.elf $full --cmdline "$checks exit=srst-shutdown"
run raw 0 --kernel /guests/bm.bin $full --cmdline "$checks exit=srst-shutdown"
run raw-forced 0 --kernel /guests/bm.bin --kernel-format raw --kernel-addr 0x80200000 --cmdline "exit=test-pass"
run srst-reboot 3 --kernel /guests/bm.elf --cmdline "exit=srst-reboot"
run srst-fail 4 --kernel /guests/bm.bin --cmdline "exit=srst-fail"
run test-fail 4 --kernel /guests/bm.elf --cmdline "exit=test-fail"
run test-reset 3 --kernel /guests/bm.bin --cmdline "exit=test-reset"
run timeout 124 --kernel /guests/bm.elf --cmdline "exit=spin" --timeout 3
for n in elf raw; do
  for t in dbcn-console dbcn-read timer-sbi timer-sstc rtc hsm virtio-blk rtc-alarm-irq uart-irq; do
    grep -q "^BM-PASS $t" out-$n || { echo "BM-MISSING $n $t"; fails=$((fails + 1)); }
  done
done

# Bad kernel files: one error line, status 1.
bad() {
  name=$1 pat=$2
  shift 2
  rvvmm --memory 64M "$@" </dev/null >/dev/null 2>eb
  rc=$?
  echo "BM-BAD $name rc=$rc: $(cat eb)"
  [ "$rc" -eq 1 ] && [ "$(wc -l <eb)" -eq 1 ] && grep -q -e "$pat" eb || fails=$((fails + 1))
}
cp /guests/bm.elf x86.elf
printf '\076\000' | dd of=x86.elf bs=1 seek=18 conv=notrunc 2>/dev/null
bad elf-machine 'ELF for machine 62' --kernel x86.elf
cp /guests/bm.elf elf32.elf
printf '\001' | dd of=elf32.elf bs=1 seek=4 conv=notrunc 2>/dev/null
bad elf-class '32-bit ELF' --kernel elf32.elf
head -c 5000 /guests/bm.elf >short.elf
bad elf-truncated 'truncated file' --kernel short.elf
bad raw-outside-ram 'does not fit in guest RAM' --kernel /guests/bm.bin --kernel-addr 0x1000
bad image-forced 'not a RISC-V Linux Image' --kernel /guests/bm.bin --kernel-format image
echo "BM-FAILS $fails"
[ "$fails" -eq 0 ]
