# Disk options that cannot work are refused with one error line before the guest starts.
GK=${RVVMM_GUEST_KERNEL:-/guest/Image}
fails=0
case_() {
  name=$1
  shift
  rvvmm --kernel "$GK" "$@" </dev/null >stdout 2>stderr
  rc=$?
  echo "DISKERR $name rc=$rc msg=$(head -1 stderr)"
  if [ "$rc" -ne 1 ] || [ "$(wc -l <stderr)" -ne 1 ] || ! grep -q '^rvvmm: error: ' stderr; then
    echo "DISKERR-BAD $name"; cat stderr; fails=$((fails + 1))
  fi
}
head -c 1000 /dev/zero >odd.img
dd if=/dev/zero of=ok.img bs=1M count=1 2>/dev/null
case_ missing-file --disk path=/nonexistent.img
case_ not-multiple-of-512 --disk path=odd.img
# A second rvvmm may not open an image another one has open read-write.
mkfifo hold
rvvmm --kernel "$GK" --initrd "${RVVMM_GUEST_INITRD:-/guest/initrd.cpio.gz}" --disk path=ok.img <hold >/dev/null 2>&1 &
holder=$!
exec 3>hold
sleep 3
case_ locked-by-another --disk path=ok.img
kill -TERM $holder; wait $holder; exec 3>&-
echo "DISKERR-FAILS $fails"
[ "$fails" -eq 0 ]
