# Physically partitioned cores on a 4-hart L1: a 4-core guest sees and uses 4 harts; two 2-core VMs get
# disjoint host cores; a third VM is refused with an error naming the holders; after SIGKILL of one VM its
# cores are reusable at once.
. /scenarios/lib.sh
GK=${RVVMM_GUEST_KERNEL:-/guest/Image}
GI=${RVVMM_GUEST_INITRD:-/guest/initrd.cpio.gz}
fails=0
pins_of() {
  for t in /proc/$1/task/*; do
    case "$(cat "$t/comm")" in
      vcpu*) awk '/^Cpus_allowed_list/ { print $2 }' "$t/status" ;;
    esac
  done | sort -n | tr '\n' ' '
}

# 1. --cores 4: four harts, work runs on each.
start_guest --cores 4 --memory 256M
wait_for out 'RVVMM-L2-BOOTED' 300 || exit 1
guest_cmd 'for i in 0 1 2 3; do taskset -c $i awk "{ print \"RAN-ON-CPU\", \$39 }" /proc/self/stat; done; echo WORK-$((1+1))' 'WORK-2' 60 || exit 1
echo "PINS-4 $(pins_of $pid)"
echo 'poweroff -f' >&3
finish_guest || fails=$((fails + 1))
tr -d '\r' <out | grep -E '^(RVVMM-L2-BOOTED|RAN-ON-CPU)' | sort -u

# 2. Two VMs with 2 cores each.
mkdir -p a b c
(cd a && start_guest --cores 2 --memory 192M && echo $pid >pid && sleep 100000 >in) &
sleep 1
(cd b && start_guest --cores 2 --memory 192M && echo $pid >pid && sleep 100000 >in) &
wait_for a/out 'RVVMM-L2-BOOTED' 300 || exit 1
wait_for b/out 'RVVMM-L2-BOOTED' 300 || exit 1
pa=$(cat a/pid) pb=$(cat b/pid)
echo "VM-A pid=$pa cores=$(pins_of $pa)"
echo "VM-B pid=$pb cores=$(pins_of $pb)"
# rvvmm's own threads (main, console, signals) of A stay off A's vcpu cores.
for t in /proc/$pa/task/*; do
  case "$(cat "$t/comm")" in
    vcpu*) ;;
    *) echo "OWN-THREAD-A $(cat "$t/comm") $(awk '/^Cpus_allowed_list/ { print $2 }' "$t/status")" ;;
  esac
done
echo "$(pins_of $pa) $(pins_of $pb)" | tr ' ' '\n' | grep . | sort -u | wc -l | sed 's/^/DISTINCT-CORES /'
ls -l /run/rvvmm/

# 3. A third VM finds no free core.
rvvmm --kernel "$GK" --initrd "$GI" --cores 1 </dev/null >third.out 2>third.err
echo "THIRD rc=$? $(cat third.err)"

# 4. SIGKILL A: its cores are free at once for C.
kill -KILL $pa
# Its core locks go when its last thread has closed its files (a KVM teardown under TCG takes a moment):
# wait, at most 60 s, until /proc/locks holds no flock of that pid.
i=0
while awk -v p="$pa" '$2 == "FLOCK" && $5 == p { f = 1 } END { exit !f }' /proc/locks && [ $i -lt 60 ]; do
  sleep 1
  i=$((i + 1))
done
(cd c && start_guest --cores 2 --memory 192M && echo $pid >pid && sleep 100000 >in) &
wait_for c/out 'RVVMM-L2-BOOTED' 300 || exit 1
pc=$(cat c/pid)
echo "VM-C pid=$pc cores=$(pins_of $pc)"
# B and C power off from their consoles (killing two running VMs at once with SIGKILL has hung L1's
# kernel under nested TCG: a hard lockup in the host side, not in rvvmm).
echo 'poweroff -f' >b/in
echo 'poweroff -f' >c/in
# Running = exists and not a zombie (their parent subshells do not reap them).
alive() { [ -d "/proc/$1" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
i=0
while { alive "$pb" || alive "$pc"; } && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
if alive "$pb" || alive "$pc"; then echo "VMs B/C did not power off"; fails=$((fails + 1)); fi
echo "CORES-FAILS $fails"
[ "$fails" -eq 0 ]
