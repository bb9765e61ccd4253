# Helpers for scenario scripts (sourced). Guest kernel/initrd paths come from L1's /init.
GK=${RVVMM_GUEST_KERNEL:-/guest/Image}
GI=${RVVMM_GUEST_INITRD:-/guest/initrd.cpio.gz}

# wait_for FILE PATTERN SECONDS: wait until FILE contains PATTERN (grep -E), or fail after SECONDS.
wait_for() {
  i=0
  while ! grep -q -E "$2" "$1" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt "$3" ]; then
      echo "TIMEOUT waiting for '$2' in $1; it holds:"
      cat "$1"
      return 1
    fi
    sleep 1
  done
}

# start_guest: boot the L2 Linux guest in the background with its console on the fifo ./in (kept open on
# fd 3) and output in ./out, ./err; sets $pid. Extra rvvmm arguments are passed through.
start_guest() {
  rm -f in out err
  mkfifo in
  rvvmm --kernel "$GK" --initrd "$GI" "$@" <in >out 2>err &
  pid=$!
  exec 3>in
}
