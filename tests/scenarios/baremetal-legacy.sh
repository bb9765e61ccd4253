# Legacy SBI v0.1 calls reach a VMM only on a host kernel with CONFIG_RISCV_SBI_V01 (the project-built L1
# kernel): console putchar goes through rvvmm to its stdout, set_timer gives timer ticks (KVM handles it),
# and the legacy shutdown call ends the VM with status 0 (KVM turns it into a system event).
rvvmm --kernel /guests/bm.elf --memory 64M --cmdline "legacy exit=legacy-shutdown" </dev/null >out 2>err
rc=$?
tr -d '\r' <out | grep -E '^BM-' 
echo "BM-LEGACY-RUN rc=$rc"
grep -q 'BM-LEGACY-CONSOLE-HELLO' out && grep -q '^BM-PASS legacy-console' out && grep -q '^BM-PASS timer-legacy ticks=5' out && ! grep -q '^BM-FAIL' out && [ "$rc" -eq 0 ]
