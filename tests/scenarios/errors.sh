# Bad input gets one line `rvvmm: error: ...` and the documented exit status, never a panic.
GK=${RVVMM_GUEST_KERNEL:-/guest/Image}
GI=${RVVMM_GUEST_INITRD:-/guest/initrd.cpio.gz}
fails=0
# case NAME EXPECTED_RC rvvmm-args...
case_() {
  name=$1 want=$2
  shift 2
  rvvmm "$@" </dev/null >stdout 2>stderr
  rc=$?
  lines=$(wc -l <stderr)
  msg=$(head -1 stderr)
  echo "ERRCASE $name rc=$rc lines=$lines msg=$msg"
  if [ "$rc" -ne "$want" ] || [ "$lines" -ne 1 ] || ! grep -q '^rvvmm: error: ' stderr || grep -q panicked stderr; then
    echo "ERRCASE-BAD $name (wanted rc=$want and one 'rvvmm: error:' line)"
    cat stderr
    fails=$((fails + 1))
  fi
}
mkdir -p adir
head -c 100000 /bin/busybox >notimage
case_ missing-kernel 1 --kernel /nonexistent/Image
case_ kernel-is-directory 1 --kernel ./adir
case_ truncated-elf 1 --kernel ./notimage
echo 'this is not a kernel, but it is long enough to have a 64-byte header, or so one hopes' >notakernel
case_ not-an-image 1 --kernel ./notakernel --kernel-format image
case_ missing-initrd 1 --kernel "$GK" --initrd /nonexistent/initrd
case_ does-not-fit 1 --kernel "$GK" --initrd "$GI" --memory 32M
case_ too-many-cores 1 --kernel "$GK" --cores 64
case_ bad-cpus 1 --kernel "$GK" --cpus 60-61
case_ too-much-memory 1 --kernel "$GK" --memory 1T
case_ bad-size 2 --kernel "$GK" --memory 12Q
case_ unknown-option 2 --kernel "$GK" --frobnicate
case_ no-kernel-option 2 --cores 1
mv /dev/kvm /dev/kvm.hidden
case_ no-dev-kvm 1 --kernel "$GK" --initrd "$GI"
mv /dev/kvm.hidden /dev/kvm
echo "ERRCASES-FAILED $fails"
[ "$fails" -eq 0 ]
