# Helpers for scenario scripts (sourced). Guest kernel/initrd paths come from L1's /init.
# RVVMM_EXTRA: extra rvvmm options (e.g. --irqchip plic), set by the plic-* wrappers.
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

# wait_listen PORT SECONDS: wait until something in L1 listens on TCP PORT (state 0A in /proc/net/tcp*),
# or fail after SECONDS.
wait_listen() {
  _wl_hex=$(printf '%04X' "$1")
  i=0
  until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ":$_wl_hex [0-9A-F:]* 0A "; do
    i=$((i + 1))
    if [ "$i" -gt "$2" ]; then
      echo "TIMEOUT waiting for a listener on TCP port $1"
      return 1
    fi
    sleep 1
  done
}

# connect_retry SECONDS nc-args...: nc with stdin, retried once a second while the connection is refused
# (the peer's listener may not be up yet), for at most SECONDS. The input must be a file (it is re-read).
connect_retry() {
  _cr_n=$1
  shift
  i=0
  until nc "$@"; do
    i=$((i + 1))
    [ "$i" -lt "$_cr_n" ] || return 1
    sleep 1
  done
}

# start_guest: boot the L2 Linux guest in the background with its console on the fifo ./in (kept open on
# fd 3) and output in ./out, ./err; sets $pid. Extra rvvmm arguments are passed through.
start_guest() {
  rm -f in out err
  mkfifo in
  # shellcheck disable=SC2086 # RVVMM_EXTRA holds several options
  rvvmm --kernel "$GK" --initrd "$GI" $RVVMM_EXTRA "$@" <in >out 2>err &
  pid=$!
  exec 3>in
}

# guest_cmd 'shell line' PATTERN SECONDS: type a line into the guest's shell, wait for PATTERN in its output.
# Make PATTERN something only the command's result can contain (e.g. DONE-$((1+1)) -> DONE-2): the
# terminal echoes the typed line too.
guest_cmd() {
  echo "$1" >&3
  wait_for out "$2" "$3"
}

# finish_guest: wait for rvvmm to exit; prints and returns its status.
finish_guest() {
  wait $pid
  rc=$?
  exec 3>&-
  echo "RVVMM-EXIT rc=$rc"
  return $rc
}
