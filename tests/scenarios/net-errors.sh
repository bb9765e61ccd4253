# --net options that cannot work are refused clearly: a bad MAC is a usage error (2); an interface that is
# not a tap gets one `rvvmm: error:` line and status 1.
GK=${RVVMM_GUEST_KERNEL:-/guest/Image}
modprobe -q tun 2>/dev/null
fails=0
case_() {
  name=$1 want=$2
  shift 2
  rvvmm --kernel "$GK" "$@" </dev/null >stdout 2>stderr
  rc=$?
  echo "NETERR $name rc=$rc msg=$(head -1 stderr)"
  if [ "$rc" -ne "$want" ] || [ "$(wc -l <stderr)" -ne 1 ] || ! grep -q '^rvvmm: error: ' stderr; then
    echo "NETERR-BAD $name"; cat stderr; fails=$((fails + 1))
  fi
}
case_ bad-mac 2 --net tap=t0,mac=52:54:00:zz:00:01
case_ multicast-mac 2 --net tap=t0,mac=01:00:5e:00:00:01
case_ no-tap-name 2 --net mac=52:54:00:00:00:01
case_ not-a-tap 1 --net tap=lo
echo "NETERR-FAILS $fails"
[ "$fails" -eq 0 ]
