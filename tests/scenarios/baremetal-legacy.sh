# Legacy SBI v0.1 calls reach a VMM only on a host kernel with CONFIG_RISCV_SBI_V01 (the project-built L1
# kernel): console putchar and getchar go through rvvmm to its stdout and from its stdin, set_timer gives
# timer ticks (KVM handles it), and the legacy shutdown call ends the VM with status 0 (KVM turns it into
# a system event). The same as an ELF and as a raw binary.
fails=0
for f in elf raw; do
  k=/guests/bm.elf
  [ "$f" = raw ] && k=/guests/bm.bin
  printf 'L' | rvvmm --kernel "$k" --memory 64M --cmdline "legacy exit=legacy-shutdown" >out 2>err
  rc=$?
  tr -d '\r' <out | grep -E '^BM-' | sed "s/^/[$f] /"
  echo "BM-LEGACY-RUN $f rc=$rc"
  for t in legacy-console 'legacy-getchar char=L' 'timer-legacy ticks=5'; do
    grep -q "^BM-PASS $t" out || { echo "BM-LEGACY-MISSING $f $t"; fails=$((fails + 1)); }
  done
  grep -q 'BM-LEGACY-CONSOLE-HELLO' out && ! grep -q '^BM-FAIL' out && [ "$rc" -eq 0 ] || fails=$((fails + 1))
done
echo "BM-LEGACY-FAILS $fails"
[ "$fails" -eq 0 ]
