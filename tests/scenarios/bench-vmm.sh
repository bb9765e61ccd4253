# Side-by-side benchmark, one VMM per L1 boot (resources/bench.sh vmm boots a fresh L1 for each VMM and
# round, order rotated): rvvmm or QEMU-KVM (Debian's qemu-system-riscv64 in L1), the same L2 kernel +
# initramfs, 2 vcpus, 512M, each VMM with the transports a user gets by default: rvvmm virtio-pci with
# MSI-X on the in-kernel AIA (--virtio-transport auto); QEMU virtio-pci (`-drive if=virtio`, `-device
# virtio-net-pci`) on `virt,aia=aplic-imsic`, the in-kernel AIA with MSI-X (QEMU's plain `virt` emulates a
# PLIC in userspace instead). Prints numbers only:
#   BENCH-VMM vmm=V metric=M value=X unit=U
# VM 1 (disk + tools disk + tap): iobench on /dev/vda with O_DIRECT (sequential 1 MiB writes and reads,
#   4 KiB random reads at queue depth 1 and 4 (four processes)), TCP both ways and 1-byte round trips
#   between L1 and the guest (vmbench; L1 measures), then the VMM's memory beside the guest RAM it backs;
# VM 2: boot to init and to poweroff (rvvmm.poweroff), rvvmm's own start-up cost from its log;
# the variant rvvmm-hugepages runs rvvmm with --hugepages (guest RAM in 2 MiB hugetlb pages),
# rvvmm-mmio with --virtio-transport mmio, rvvmm-pci with --virtio-transport pci (what rvvmm's default,
# auto, picks for this Linux guest on the AIA; the name of BENCHMARKS.md's run from before auto);
# VMs 3 and 4: memory overhead of a bare VM with 1 and 2 vcpus, idle at its shell.
. /scenarios/lib.sh
vmm=rvvmm
mb=256
secs=5
net_mb=32
for w in $(cat /proc/cmdline); do
  case "$w" in
    rvvmm.bench.vmm=*) vmm=${w#*=} ;;
    rvvmm.bench.disk_mb=*) mb=${w#*=} ;;
    rvvmm.bench.seconds=*) secs=${w#*=} ;;
  esac
done
tools=/guests
for t in iobench vmbench; do
  [ -x "$tools/$t" ] || { echo "BENCH-VMM-ERROR $tools/$t is missing"; exit 1; }
done
rvvmm_extra=""
if [ "$vmm" = rvvmm-hugepages ]; then
  # 512M of guest RAM in 2 MiB pages (+ a few spare), reserved before each VM.
  echo 300 >/proc/sys/vm/nr_hugepages
  echo "BENCH-VMM-CONFIG hugepages=$(cat /proc/sys/vm/nr_hugepages)"
  rvvmm_extra=--hugepages
fi
[ "$vmm" = rvvmm-pci ] && rvvmm_extra="--virtio-transport pci"
[ "$vmm" = rvvmm-mmio ] && rvvmm_extra="--virtio-transport mmio"
if [ "$vmm" = qemu ]; then
  command -v qemu-system-riscv64 >/dev/null || { echo "BENCH-VMM-ERROR no qemu-system-riscv64 in L1 (RVVMM_L1_QEMU=1)"; exit 1; }
  ver=$(qemu-system-riscv64 --version | head -1)
else
  ver=$(rvvmm --version)
fi
echo "BENCH-VMM-CONFIG vmm=$vmm version='$ver' disk_mb=$mb randread_seconds=$secs net_mb=$net_mb guest=2vcpu,512M l1_harts=$(grep -c '^processor' /proc/cpuinfo)"
modprobe -q tun 2>/dev/null
modprobe -q vhost_net 2>/dev/null
now() { "$tools/vmbench" now; }
metric() { echo "BENCH-VMM vmm=$vmm metric=$1 value=$2 unit=$3"; }
fail=0
err() { echo "BENCH-VMM-ERROR $*"; fail=1; }

# launch CORES APPEND [DEVICES]: start the VMM in the background; console in ./in (fd 3), out in ./out,
# the time the guest reached init in ./t_init; sets $vpid and $t0.
launch() {
  cores=$1 append=$2 devices=${3:-}
  rm -f in out err o t_init
  mkfifo in o
  "$tools/vmbench" stamp RVVMM-L2-BOOTED t_init <o >out &
  t0=$(now)
  if [ "$vmm" = qemu ]; then
    set -- -machine virt,aia=aplic-imsic -accel kvm -cpu host -smp "$cores" -m 512M -nographic -no-reboot \
      -kernel "$GK" -initrd "$GI" -append "$append"
    if [ -n "$devices" ]; then
      set -- "$@" -drive file=disk.img,format=raw,if=virtio -drive file=tools.img,format=raw,if=virtio,readonly=on \
        -netdev tap,id=n0,ifname=bt0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:20
    fi
    qemu-system-riscv64 "$@" <in >o 2>err &
  else
    set -- --kernel "$GK" --initrd "$GI" --cores "$cores" --memory 512M --cmdline "$append" --log-level info $rvvmm_extra
    if [ -n "$devices" ]; then
      set -- "$@" --disk path=disk.img --disk path=tools.img,readonly=on --net tap=bt0,mac=52:54:00:00:00:20
    fi
    rvvmm "$@" <in >o 2>err &
  fi
  vpid=$!
  exec 3>in
}

# overhead: the VMM's resident memory outside the guest RAM mapping (the one of at least 512 MiB), MiB.
overhead() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { big = 0 }
       /^Size:/ { big = ($2 >= 524288) }
       /^Rss:/ { if (big) ram += $2; else other += $2 }
       END { printf "%.2f", other / 1024 }' "/proc/$1/smaps"
}

stop() {
  echo 'poweroff -f' >&3
  wait "$vpid"
  rc=$?
  exec 3>&-
  wait 2>/dev/null
  return $rc
}

# --- VM 1: disk and network.
dd if=/dev/zero of=disk.img bs=1M count="$mb" 2>/dev/null
tar cf tools.tar -C "$tools" iobench vmbench
dd if=tools.tar of=tools.img bs=512 conv=sync 2>/dev/null
tunctl -t bt0 >/dev/null 2>&1 || err "cannot create the tap bt0"
ip addr add 10.0.5.1/24 dev bt0 && ip link set bt0 up
launch 2 console=ttyS0 devices
if wait_for out 'RVVMM-L2-BOOTED' 300; then
  metric io_vm_boot_to_init "$(awk -v a="$t0" '{ printf "%.3f", $1 - a }' t_init)" s
  sleep 2
  guest_cmd 'tar xf /dev/vdb -C /tmp && echo TOOLS-$((1+1))' 'TOOLS-2' 60 || err "tools"
  n=10
  for m in seqwrite seqread randread; do
    arg=$mb
    [ "$m" = randread ] && arg="$secs $mb"
    n=$((n + 1))
    guest_cmd "/tmp/iobench /dev/vda $m $arg; echo RUN-\$(($n+0))-rc=\$?" "RUN-$n-rc=" 900 || err "iobench $m"
  done
  n=$((n + 1))
  guest_cmd "for i in 1 2 3 4; do /tmp/iobench /dev/vda randread $secs $mb >/tmp/qd4-\$i & done; wait; cat /tmp/qd4-*; echo RUN-\$(($n+0))-rc=\$?" "RUN-$n-rc=" 300 || err "iobench qd4"
  tr -d '\r' <out | grep '^IOBENCH' >io.txt
  cat io.txt
  v() { awk -v m="$1" -v k="$2" '$2 == "mode=" m { for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' io.txt; }
  metric seqwrite "$(v seqwrite MiB/s | head -1)" MiB/s
  metric seqread "$(v seqread MiB/s | head -1)" MiB/s
  metric randread_qd1 "$(v randread IOPS | head -1)" IOPS
  metric randread_qd4 "$(v randread IOPS | tail -4 | awk '{ s += $1 } END { printf "%.1f", s }')" IOPS

  guest_cmd 'for i in /sys/class/net/eth*; do A=${i##*/}; done; ip addr add 10.0.5.15/24 dev $A; ip link set $A up; ping -c 1 -W 5 10.0.5.1 >/dev/null; echo UP-$((2+1))-rc=$?' 'UP-3-rc=' 60 || err "net up"
  "$tools/vmbench" sink 7001 >g2h.txt &
  sleep 1
  guest_cmd "/tmp/vmbench send 10.0.5.1 7001 $net_mb; echo G2H-\$((3+1))" 'G2H-4' 600 || err "guest->L1"
  wait $!
  cat g2h.txt
  metric tcp_guest_to_l1 "$(sed -n 's/.*MiB\/s=//p' g2h.txt)" MiB/s
  guest_cmd '(/tmp/vmbench sink 7002 >/dev/null &); echo LS-$((4+1))' 'LS-5' 30 || err "guest sink"
  sleep 1
  "$tools/vmbench" send 10.0.5.15 7002 "$net_mb" >h2g.txt || err "L1->guest"
  cat h2g.txt
  metric tcp_l1_to_guest "$(sed -n 's/.*MiB\/s=//p' h2g.txt)" MiB/s
  guest_cmd '(/tmp/vmbench rr-server 7003 &); echo RS-$((5+1))' 'RS-6' 30 || err "rr server"
  sleep 1
  "$tools/vmbench" rr 10.0.5.15 7003 "$secs" >rr.txt || err "rr"
  cat rr.txt
  metric tcp_round_trips "$(sed -n 's/.*per_s=\([0-9.]*\).*/\1/p' rr.txt)" per_s
  metric mem_overhead_io_vm "$(overhead "$vpid")" MiB
  # The guest's side, for when a figure is missing.
  tr -d '\r' <out | grep -v '^TICK' | tail -n 60 | sed 's/^/L2-CONSOLE /'
else
  err "VM 1 did not boot"
fi
stop
# rvvmm's own profile of VM 1: vcpu exits by device, and what the devices served.
[ "$vmm" = qemu ] || grep -E 'vcpu exits to rvvmm|virtio-blk .* requests|virtio-net .*frames' err | sed 's/^\[[^]]*\] */BENCH-VMM-PROFILE /'
ip link del bt0 2>/dev/null

# --- VM 2: boot to init and to poweroff.
launch 2 "console=ttyS0 rvvmm.poweroff"
wait "$vpid"
rc=$?
t_end=$(now)
exec 3>&-
wait 2>/dev/null
[ "$rc" = 0 ] || err "VM 2 exit status $rc"
if [ -s t_init ]; then
  metric boot_to_init "$(awk -v a="$t0" '{ printf "%.3f", $1 - a }' t_init)" s
  metric boot_to_poweroff "$(awk -v a="$t0" -v b="$t_end" 'BEGIN { printf "%.3f", b - a }')" s
else
  err "VM 2 never reached init"
fi
if [ "$vmm" != qemu ]; then
  metric startup "$(sed -n 's/.*startup: \([0-9.]*\) ms.*/\1/p' err | head -1)" ms
fi

# --- VMs 3 and 4: memory of a bare VM with 1 and 2 vcpus.
for c in 1 2; do
  launch "$c" console=ttyS0
  if wait_for out 'RVVMM-L2-BOOTED' 300; then
    sleep 3
    metric "mem_overhead_${c}vcpu" "$(overhead "$vpid")" MiB
    metric "mem_rss_${c}vcpu" "$(awk '/^VmRSS:/ { printf "%.2f", $2 / 1024 }' "/proc/$vpid/status")" MiB
  else
    err "VM $((c + 2)) did not boot"
  fi
  stop
done
echo "BENCH-VMM-DONE vmm=$vmm fail=$fail"
[ "$fail" -eq 0 ]
