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
# CPU profile (always): around each measured phase of VM 1 (seqwrite, seqread, randread_qd1, randread_qd4,
# tcp_guest_to_l1, tcp_l1_to_guest, tcp_round_trips) and VM 2's whole boot (vm2_boot):
#   BENCH-VMM-CPU vmm=V phase=P secs=S user=% sys=% guest=% idle=% iowait=% irq+softirq=%
#     L1's /proc/stat "cpu" line: percent of all L1 harts' time over the phase (user excludes guest,
#     which Linux also counts in user; guest is the time L1's harts ran L2 vcpus)
#   BENCH-VMM-THREADS vmm=V phase=P total:U/S name:U/S ...
#     the VMM's CPU time in ms (user/system; a vcpu thread's user includes its guest time), total for the
#     whole process (threads that exited during the phase included), then per thread name (threads of
#     the same name summed, name*N), busiest first; spaces in names become '_' ("CPU_0/KVM"). For vm2_boot
#     the threads come from snapshots (at init, then every 3 s: up to 3 s at the end missing), the total
#     is exact.
# perf (opt-in: rvvmm.bench.perf=1, RVVMM_BENCH_PERF=1 of resources/bench-vmm.sh): seqread, randread_qd1
#   and vm2_boot also run under `perf record -a -e cpu-clock -F 499` (system-wide; a software clock, which
#   works under TCG) and print `perf report` by comm,dso (>= 1 %), by symbol (>= 1.5 %) and the VMM
#   binary's own symbols (vmm-sym: percent of that binary's samples), each line as
#   BENCH-VMM-PERF vmm=V phase=P report=comm,dso|sym|vmm-sym <line>
#   Samples taken while a vcpu runs the guest land in L1 where the guest exits, in KVM's run loop
#   ([kvm] kvm_arch_vcpu_ioctl_run). perf adds its own load to the phase; a perf problem is a
#   BENCH-VMM-NOTE, never a failure.
. /scenarios/lib.sh
vmm=rvvmm
mb=256
secs=5
net_mb=32
perf_on=0
for w in $(cat /proc/cmdline); do
  case "$w" in
    rvvmm.bench.vmm=*) vmm=${w#*=} ;;
    rvvmm.bench.disk_mb=*) mb=${w#*=} ;;
    rvvmm.bench.seconds=*) secs=${w#*=} ;;
    rvvmm.bench.perf=1) perf_on=1 ;;
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
con=
ph_total=
err() { echo "BENCH-VMM-ERROR $*"; fail=1; }
note() { echo "BENCH-VMM-NOTE vmm=$vmm $*"; }

# --- CPU profile of a phase: phase_begin NAME [PID], the phase's command(s), phase_end [PID | -].
# PID (default $vpid) is the VMM process whose threads are reported; "-" at the end takes their last state
# from sample_threads and the process total from $ph_total (a VMM that has exited). Times in /proc are in
# clock ticks of USER_HZ, 100 on Debian's kernels (busybox has no getconf CLK_TCK): assumed here.
# Inside a phase the script itself stays as quiet as it can: waits on the console and timed waits are
# shell builtins (under TCG each fork+exec costs L1 tens of milliseconds, which the phase's CPU split would
# count and the VMM being measured would compete with); thread snapshots are taken outside.
HZ=100
# A fifo nobody writes to: `read -t S <&5` is a sleep without a process.
rm -f sleep.fifo
mkfifo sleep.fifo
exec 5<>sleep.fifo
# shellcheck disable=SC3045 # busybox ash's read has -t (fractions too)
nap() { read -r -t "$1" _ <&5; }
# thr_raw PID: a line "SNAPSHOT", the process's stat line, then one per thread (one cat: ash's read
# builtin reads a byte per system call).
thr_raw() {
  [ -n "$1" ] || return 0
  echo SNAPSHOT
  cat "/proc/$1/stat" "/proc/$1/task/"*/stat 2>/dev/null
}
# thr_parse: "tid name utime stime" per stat line of thr_raw (the line after SNAPSHOT has the tid "total";
# a snapshot of a zombie, whose threads are gone, is left out). comm may hold spaces and parentheses: it
# runs from the first '(' to the last ')'; fields 3.. follow.
thr_parse() {
  awk '$0 == "SNAPSHOT" { first = 1; skip = 0; next }
       skip { next }
       { i = length($0); while (i > 0 && substr($0, i, 1) != ")") i--
         o = index($0, "("); if (i <= o) next
         name = substr($0, o + 1, i - o - 1); gsub(/[ \t]/, "_", name)
         split(substr($0, i + 2), f, " ")
         if (first && f[1] == "Z") { skip = 1; next }
         print (first ? "total" : $1), name, f[12], f[13]; first = 0 }'
}
# sample_threads: in the background, snapshots of the VMM's threads appended to thr.samples until it is
# gone (a thread's last one counts: threads end one by one at exit): one when the guest reaches init
# (./t_init), and every 3 s (each costs L1 a fork+exec; the checks in between are builtins); sets $sampler.
sample_threads() {
  : >thr.samples
  (
    i=0 init=0
    while [ -d "/proc/$vpid" ]; do
      if [ "$init" = 0 ] && [ -s t_init ]; then
        init=1 i=30
      fi
      if [ "$i" -ge 30 ]; then
        thr_raw "$vpid" >>thr.samples
        i=0
      fi
      i=$((i + 1))
      nap 0.1
    done
  ) &
  sampler=$!
}
# ctimes: user and system ticks of this shell's waited-for children (fields 16 and 17 of its stat).
ctimes() {
  awk '{ i = length($0); while (i > 0 && substr($0, i, 1) != ")") i--
         split(substr($0, i + 2), f, " "); print f[14], f[15] }' "/proc/$$/stat"
}
phase_begin() {
  ph=$1
  perf_start "$ph"
  # The console (fd 4, ./out) from here on: a child's cat moves the shared file offset to its end.
  [ -n "$con" ] && cat <&4 >/dev/null
  thr_raw "${2:-$vpid}" | thr_parse >thr0
  ph_cpu0=$(head -n 1 /proc/stat)
  ph_t0=$(now)
  perf_ctl enable
}
phase_end() {
  perf_ctl disable
  { read -r ph_cpu1 </proc/stat; } 2>/dev/null
  ph_t1=$(now)
  if [ "${1:-}" = - ]; then
    wait "$sampler"
    thr_parse <thr.samples >thr1
    [ -n "$ph_total" ] && echo "total total $ph_total" >>thr1 # the last line of a tid counts
  else
    thr_raw "${1:-$vpid}" | thr_parse >thr1
  fi
  perf_stop
  # /proc/stat "cpu": user nice system idle iowait irq softirq steal guest guest_nice (guest and
  # guest_nice are also counted in user and nice).
  awk -v a="$ph_cpu0" -v b="$ph_cpu1" -v t0="$ph_t0" -v t1="$ph_t1" -v p="vmm=$vmm phase=$ph" 'BEGIN {
    split(a, x, " "); split(b, y, " "); for (i = 2; i <= 11; i++) d[i] = y[i] - x[i]
    tot = d[2] + d[3] + d[4] + d[5] + d[6] + d[7] + d[8] + d[9]; if (tot <= 0) tot = 1
    printf "BENCH-VMM-CPU %s secs=%.2f user=%.1f sys=%.1f guest=%.1f idle=%.1f iowait=%.1f irq+softirq=%.1f\n", p,
      t1 - t0, 100 * (d[2] + d[3] - d[10] - d[11]) / tot, 100 * d[4] / tot, 100 * (d[10] + d[11]) / tot,
      100 * d[5] / tot, 100 * d[6] / tot, 100 * (d[7] + d[8]) / tot }'
  # Threads: end minus start by tid (the last line of a tid counts; a thread started in the phase counts
  # from 0), summed by name.
  awk -v hz="$HZ" -v p="vmm=$vmm phase=$ph" '
    FILENAME == ARGV[1] { u0[$1] = $3; s0[$1] = $4; next }
    { if (!($1 in u1)) tid[++nt] = $1
      u1[$1] = $3; s1[$1] = $4; nm[$1] = ($1 == "total") ? "total" : $2 }
    END {
      for (t = 1; t <= nt; t++) {
        id = tid[t]; key = nm[id]
        if (!(key in du)) { k[++n] = key; du[key] = 0; ds[key] = 0 }
        du[key] += u1[id] - u0[id]; ds[key] += s1[id] - s0[id]; cnt[key]++ }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (k[j] == "total" || (k[i] != "total" && du[k[j]] + ds[k[j]] > du[k[i]] + ds[k[i]])) { t = k[i]; k[i] = k[j]; k[j] = t }
      line = "BENCH-VMM-THREADS " p
      for (i = 1; i <= n; i++) {
        key = k[i]; if (du[key] + ds[key] == 0 && key != "total") continue
        line = line sprintf(" %s%s:%d/%d", key, (cnt[key] > 1 && key != "total") ? "*" cnt[key] : "",
          du[key] * 1000 / hz, ds[key] * 1000 / hz) }
      print line }' thr0 thr1
  perf_report
}

# phase_cmd 'shell line' TEXT SECONDS: guest_cmd for a phase: waits for TEXT (a plain string) in what the
# console printed since phase_begin, read from fd 4 with builtins (lib.sh's wait_for runs grep and sleep
# once a second, which also stretched a phase by up to a second).
phase_cmd() {
  echo "$1" >&3
  buf=
  i=0
  while :; do
    if IFS= read -r l <&4; then
      case "$buf$l" in *"$2"*) return 0 ;; esac
      buf=
      continue
    fi
    buf=$buf$l # a partial line at the end of the file: the rest follows
    case "$buf" in *"$2"*) return 0 ;; esac
    i=$((i + 1))
    if [ "$i" -gt $(($3 * 10)) ]; then
      echo "TIMEOUT waiting for '$2' in out"
      return 1
    fi
    nap 0.1
  done
}

# perf (rvvmm.bench.perf=1) in the phases PERF_PHASES.
PERF_PHASES="seqread randread_qd1 vm2_boot"
perf_ph=
if [ "$perf_on" = 1 ]; then
  if command -v perf >/dev/null; then
    # Kernel addresses for root's perf, and system-wide events.
    echo 0 >/proc/sys/kernel/kptr_restrict
    echo -1 >/proc/sys/kernel/perf_event_paranoid
    # /proc/kallsyms without the local labels (.L*) of modules: RISC-V keeps them in each module's symbol
    # table (they name no function and would take the samples of the functions around them).
    grep -v ' \.L' /proc/kallsyms >/tmp/perf-kallsyms
    # perf report looks binaries up below this root: everything but the kernel modules (there perf
    # would read the .ko files' symbol tables, labels included), so modules resolve from the list above.
    sf=/tmp/perf-symfs
    mkdir -p "$sf/usr/lib" "$sf/lib"
    for d in bin sbin usr/bin usr/sbin guests; do [ -e "/$d" ] && ln -s "/$d" "$sf/$d"; done
    for e in /usr/lib/*; do
      [ "${e##*/}" = modules ] && continue
      ln -s "$e" "$sf/usr/lib/"
      ln -s "$e" "$sf/lib/"
    done
    note "perf=on phases='$PERF_PHASES' $(perf --version 2>&1 | head -n 1) (its sampling adds load to those phases)"
  else
    note "perf: no perf in L1 (build-images.sh --with-qemu packs it): no perf profile"
    perf_on=0
  fi
fi
# perf_start PHASE: when PHASE is one of PERF_PHASES, start system-wide sampling with the events disabled
# (-D -1): perf enables them on "enable" through its control fifo (fd 7) and acknowledges on the other
# (fd 6) once it samples, after its start-up (seconds under TCG). That first enable is undone at once;
# phase_begin and phase_end then switch sampling on and off around the phase.
perf_start() {
  perf_ph=
  [ "$perf_on" = 1 ] || return 0
  case " $PERF_PHASES " in *" $1 "*) ;; *) return 0 ;; esac
  rm -f perf.ctl perf.ack "/tmp/perf-$1.data"
  mkfifo perf.ctl perf.ack
  perf record -a -e cpu-clock -F 499 -o "/tmp/perf-$1.data" --no-buildid-cache -D -1 \
    --control fifo:perf.ctl,perf.ack </dev/null >"perf-$1.log" 2>&1 &
  perf_pid=$!
  # shellcheck disable=SC2016 # $a is the inner shell's
  if timeout 120 sh -c 'echo enable >perf.ctl && read -r a <perf.ack && [ "$a" = ack ]'; then
    exec 6<perf.ack 7>perf.ctl # perf holds both open from here on: no open blocks
    perf_ph=$1
    perf_ctl disable
  else
    note "perf: perf record did not start for $1: $(tr '\n' ' ' <"perf-$1.log" | cut -c1-300)"
    kill -KILL "$perf_pid" 2>/dev/null
    wait "$perf_pid" 2>/dev/null
  fi
}
# perf_ctl enable|disable: one command to the running perf record, and its ack (10 s at most).
perf_ctl() {
  [ -n "$perf_ph" ] || return 0
  echo "$1" >&7
  a=
  # shellcheck disable=SC3045 # busybox ash's read has -t
  read -r -t 10 a <&6
  [ "$a" = ack ] || note "perf: no ack for $1 in $perf_ph"
}
perf_stop() {
  [ -n "$perf_ph" ] || return 0
  kill -INT "$perf_pid" 2>/dev/null
  wait "$perf_pid" 2>/dev/null
  exec 6<&- 7>&-
  if ! grep -q 'Captured and wrote' "perf-$perf_ph.log" || [ ! -s "/tmp/perf-$perf_ph.data" ]; then
    note "perf: no data for $perf_ph: $(tr '\n' ' ' <"perf-$perf_ph.log" | cut -c1-300)"
    perf_ph=
  fi
}
# perf_report: the phase's reports, without perf's header and blank lines ("# Samples" and the column
# header stay): by comm,dso (>= 1 %), by symbol (>= 1.5 %), and report=vmm-sym the 12 busiest symbols of
# the VMM's own binary, in percent of that binary's samples.
perf_report() {
  [ -n "$perf_ph" ] || return 0
  bin=rvvmm
  [ "$vmm" = qemu ] && bin=qemu-system-riscv64
  for r in "comm,dso 1 22" "sym 1.5 22" "vmm-sym 0.5 14"; do
    # shellcheck disable=SC2086 # the report, the limit and the lines kept
    set -- $r
    sort=$1 only=
    [ "$1" = vmm-sym ] && sort=sym only="--dsos $bin --percentage relative"
    # shellcheck disable=SC2086 # $only is options
    perf report -i "/tmp/perf-$perf_ph.data" --symfs=/tmp/perf-symfs --kallsyms=/tmp/perf-kallsyms --stdio \
      --sort "$sort" --percent-limit "$2" $only 2>"perf-report-$perf_ph.err" |
      awk '/^# Samples|^# Overhead/ || (!/^#/ && NF) { sub(/ +$/, ""); print }' | head -n "$3" |
      sed "s|^|BENCH-VMM-PERF vmm=$vmm phase=$perf_ph report=$1 |"
    grep -iE 'warn|fail|error' "perf-report-$perf_ph.err" | head -n 5 | sed "s|^|BENCH-VMM-NOTE vmm=$vmm perf report $perf_ph: |"
  done
  rm -f "/tmp/perf-$perf_ph.data"
  perf_ph=
}

# launch CORES APPEND [DEVICES]: start the VMM in the background; console in ./in (fd 3), out in ./out,
# the time the guest reached init in ./t_init; sets $vpid and $t0.
launch() {
  cores=$1 append=$2 devices=${3:-}
  rm -f in out err o t_init
  mkfifo in o
  "$tools/vmbench" stamp RVVMM-L2-BOOTED t_init <o >out &
  t0=$(now)
  if [ "$vmm" = qemu ]; then
    # debug-threads=on names QEMU's threads ("CPU 0/KVM", "worker", ...) for BENCH-VMM-THREADS.
    set -- -name bench,debug-threads=on -machine virt,aia=aplic-imsic -accel kvm -cpu host -smp "$cores" -m 512M -nographic -no-reboot \
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
  exec 4<out # the console for phase_cmd
  con=1
  n=10
  for m in seqwrite seqread randread; do
    arg=$mb
    [ "$m" = randread ] && arg="$secs $mb"
    n=$((n + 1))
    p=$m
    [ "$m" = randread ] && p=randread_qd1
    phase_begin "$p"
    phase_cmd "/tmp/iobench /dev/vda $m $arg; echo RUN-\$(($n+0))-rc=\$?" "RUN-$n-rc=" 900 || err "iobench $m"
    phase_end
  done
  n=$((n + 1))
  phase_begin randread_qd4
  phase_cmd "for i in 1 2 3 4; do /tmp/iobench /dev/vda randread $secs $mb >/tmp/qd4-\$i & done; wait; cat /tmp/qd4-*; echo RUN-\$(($n+0))-rc=\$?" "RUN-$n-rc=" 300 || err "iobench qd4"
  phase_end
  tr -d '\r' <out | grep '^IOBENCH' >io.txt
  cat io.txt
  v() { awk -v m="$1" -v k="$2" '$2 == "mode=" m { for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' io.txt; }
  metric seqwrite "$(v seqwrite MiB/s | head -1)" MiB/s
  metric seqread "$(v seqread MiB/s | head -1)" MiB/s
  metric randread_qd1 "$(v randread IOPS | head -1)" IOPS
  metric randread_qd4 "$(v randread IOPS | tail -4 | awk '{ s += $1 } END { printf "%.1f", s }')" IOPS

  guest_cmd 'for i in /sys/class/net/eth*; do A=${i##*/}; done; ip addr add 10.0.5.15/24 dev $A; ip link set $A up; ping -c 1 -W 5 10.0.5.1 >/dev/null; echo UP-$((2+1))-rc=$?' 'UP-3-rc=' 60 || err "net up"
  "$tools/vmbench" sink 7001 >g2h.txt &
  sink=$!
  sleep 1
  phase_begin tcp_guest_to_l1
  phase_cmd "/tmp/vmbench send 10.0.5.1 7001 $net_mb; echo G2H-\$((3+1))" 'G2H-4' 600 || err "guest->L1"
  wait "$sink"
  phase_end
  cat g2h.txt
  metric tcp_guest_to_l1 "$(sed -n 's/.*MiB\/s=//p' g2h.txt)" MiB/s
  guest_cmd '(/tmp/vmbench sink 7002 >/dev/null &); echo LS-$((4+1))' 'LS-5' 30 || err "guest sink"
  sleep 1
  phase_begin tcp_l1_to_guest
  "$tools/vmbench" send 10.0.5.15 7002 "$net_mb" >h2g.txt || err "L1->guest"
  phase_end
  cat h2g.txt
  metric tcp_l1_to_guest "$(sed -n 's/.*MiB\/s=//p' h2g.txt)" MiB/s
  guest_cmd '(/tmp/vmbench rr-server 7003 &); echo RS-$((5+1))' 'RS-6' 30 || err "rr server"
  sleep 1
  phase_begin tcp_round_trips
  "$tools/vmbench" rr 10.0.5.15 7003 "$secs" >rr.txt || err "rr"
  phase_end
  cat rr.txt
  metric tcp_round_trips "$(sed -n 's/.*per_s=\([0-9.]*\).*/\1/p' rr.txt)" per_s
  metric mem_overhead_io_vm "$(overhead "$vpid")" MiB
  # The guest's side, for when a figure is missing.
  tr -d '\r' <out | grep -v '^TICK' | tail -n 60 | sed 's/^/L2-CONSOLE /'
else
  err "VM 1 did not boot"
fi
stop
exec 4<&-
con=
# rvvmm's own profile of VM 1: vcpu exits by device, and what the devices served.
[ "$vmm" = qemu ] || grep -E 'vcpu exits to rvvmm|virtio-blk .* requests|virtio-net .*frames' err | sed 's/^\[[^]]*\] */BENCH-VMM-PROFILE /'
ip link del bt0 2>/dev/null

# --- VM 2: boot to init and to poweroff.
vpid=
ct0=$(ctimes)
phase_begin vm2_boot
launch 2 "console=ttyS0 rvvmm.poweroff"
sample_threads # the VMM's threads are gone once it exits
wait "$vpid"
rc=$?
t_end=$(now)
# The VMM's whole CPU time: what this shell's reaped children used since ct0 (the VMM, and a few
# milliseconds of small commands).
ph_total=$(ctimes | awk -v a="$ct0" '{ split(a, x, " "); print $1 - x[1], $2 - x[2] }')
phase_end -
ph_total=
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
