# A bare-metal S-mode guest (tests/guests/sbi-test.S) prints through SBI DBCN, gets SBI_ERR_NOT_SUPPORTED
# from rvvmm for an unknown extension and SBI_ERR_INVALID_PARAM for a buffer outside RAM, then ends in
# each of the ways that map to rvvmm's exit statuses.
fails=0
run() {
  mode=$1 want=$2
  rvvmm --kernel /guests/sbi-test-$mode.bin --memory 64M --log-level debug </dev/null >out-$mode 2>err-$mode
  rc=$?
  echo "SBI-MODE $mode rc=$rc"
  [ "$rc" -eq "$want" ] || { echo "SBI-MODE-BAD $mode wanted rc=$want"; fails=$((fails + 1)); }
  grep -q panicked err-$mode && fails=$((fails + 1))
}
run 0 0
cat out-0
# The unknown call reached rvvmm (not only KVM) and was answered there.
grep 'not supported' err-0 | head -3
grep -q 'ext 0x8000123' err-0 && echo "SBI-UNKNOWN-REACHED-RVVMM"
run 1 3
run 2 4
run 3 4
run 4 0
echo "SBI-FAILS $fails"
[ "$fails" -eq 0 ]
