# The Debian guest (resources/build-distro.sh): Debian trixie with systemd, booted by rvvmm from its
# root disk (--disk, virtio-blk) with Debian's own kernel and initramfs, a NIC on a tap where L1 serves
# DHCP (busybox udhcpd), and virtio-rng. Needs L1 booted with `resources/qemu-l1.sh --distro DIR`.
# Checks: the console login prompt and a root login on it, systemd's state and failed units, the DHCP
# address, ssh from L1, `systemctl reboot` (rvvmm exits 3, the contract's reset status, and is started
# again on the same disk, as a supervisor does), then `systemctl poweroff` (rvvmm exits 0). The test
# runner checks the disk with e2fsck on L0 afterwards.
. /scenarios/lib.sh
. /scenarios/lib-distro.sh

distro_setup "$PWD" || exit 1

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# boot_distro N: start rvvmm on the Debian disk; wait for the login prompt on the console.
boot_distro() {
  rm -f in out err
  mkfifo in
  t0=$(uptime_s)
  # shellcheck disable=SC2046 # the arguments are split on spaces on purpose
  rvvmm $(distro_rvvmm_args) --cmdline "$DISTRO_CMDLINE" <in >out 2>err &
  pid=$!
  exec 3>in
  i=0
  until grep -q 'debian-rvvmm login:' out; do
    i=$((i + 1))
    if ! kill -0 "$pid" 2>/dev/null || [ "$i" -gt 600 ]; then
      # A guest still running at the limit is stopped first: waiting for it would hang the scenario.
      kill "$pid" 2>/dev/null
      wait "$pid"
      echo "DISTRO-NO-LOGIN-PROMPT boot=$1 (rvvmm status $?); console:"
      cat out
      echo "rvvmm's log:"
      cat err
      return 1
    fi
    sleep 1
  done
  t1=$(uptime_s)
  echo "DISTRO-LOGIN-PROMPT boot=$1 seconds=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")"
}

# wait_ssh: until ssh runs a command in the guest (the guest has its DHCP address and sshd is up).
wait_ssh() {
  i=0
  until guest-ssh true 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
      echo "DISTRO-SSH-TIMEOUT; udhcpd log:"; cat udhcpd.log
      return 1
    fi
    sleep 2
  done
}

report() {
  echo "DISTRO-SYSTEM-STATE boot=$1 $(guest-ssh 'systemctl is-system-running --wait')"
  guest-ssh 'systemctl --failed --plain --no-legend' | sed 's/^/DISTRO-FAILED-UNIT /'
  guest-ssh 'journalctl -b -p warning --no-pager -q' | sed 's/^/DISTRO-JOURNAL /' | head -n 60
  # Where the boot's time goes (kernel, initramfs, userspace; the slowest units).
  guest-ssh 'systemd-analyze time; systemd-analyze blame --no-pager | head -n 8' | sed "s/^/DISTRO-ANALYZE boot=$1 /"
}

boot_distro 1 || exit 1
# The known login on the console (fd 3 is the console's input).
echo root >&3
wait_for out 'Password:' 120 || exit 1
echo rvvmm >&3
# login flushes what is typed before the shell starts: wait for its prompt first.
wait_for out 'root@debian-rvvmm:~#' 300 || exit 1
guest_cmd 'echo CONSOLE-LOGIN-$((6*7)) $(id -un)' 'CONSOLE-LOGIN-42 root' 60 || exit 1
echo "DISTRO-CONSOLE-LOGIN-OK"

wait_ssh || exit 1
echo "DISTRO-SSH-OK $(guest-ssh 'echo $(. /etc/os-release; echo $ID-$VERSION_ID) kernel=$(uname -r) addr=$(ip -4 -o addr show scope global | awk "{print \$4}") iface=$(ip -4 -o addr show scope global | awk "{print \$2}") harts=$(nproc)')"
report 1
echo "DISTRO-RNG $(guest-ssh 'cat /sys/class/misc/hw_random/rng_current')"
echo "DISTRO-RTC $(guest-ssh 'cat /sys/class/rtc/rtc0/name 2>/dev/null || echo none')"
boot1_id=$(guest-ssh 'cat /proc/sys/kernel/random/boot_id')

# systemctl reboot: the guest resets; rvvmm exits with the reset status (3) and a supervisor starts it again.
guest-ssh 'systemctl reboot' 2>/dev/null
wait $pid
rc=$?
exec 3>&-
echo "DISTRO-BOOT-EXIT boot=1 rc=$rc"
[ "$rc" -eq 3 ] || { cat err; exit 1; }

boot_distro 2 || exit 1
wait_ssh || exit 1
boot2_id=$(guest-ssh 'cat /proc/sys/kernel/random/boot_id')
[ -n "$boot2_id" ] && [ "$boot1_id" != "$boot2_id" ] && echo "DISTRO-REBOOTED new boot_id"
report 2

guest-ssh 'systemctl poweroff' 2>/dev/null
wait $pid
rc=$?
exec 3>&-
echo "DISTRO-BOOT-EXIT boot=2 rc=$rc"
grep -E 'rvvmm: (error|warn)|WARN|ERROR' err | head -n 20 | sed 's/^/DISTRO-RVVMM-LOG /'
sync
[ "$rc" -eq 0 ]
