# Console input typed into rvvmm's stdin reaches the guest shell; the vcpu threads are pinned to distinct
# host cores while the guest runs; `poweroff -f` in the guest makes rvvmm exit 0. The kernel's console
# writes (polled, the THR-empty interrupt off) go through KVM's coalesced MMIO: rvvmm must say how many
# it took that way (some, on a KVM with coalesced MMIO, as L1's is), and log KVM's own vcpu counters.
. /scenarios/lib.sh
start_guest --cores 2 --memory 512M --log-level info
wait_for out 'RVVMM-L2-BOOTED' 240 || exit 1
sleep 2
# The guest computes 6*7: the answer can only come from the shell having read this line.
echo 'echo CONSOLE-$((6*7))-OK; cat /proc/cmdline' >&3
wait_for out 'CONSOLE-42-OK' 60 || exit 1
# vcpu threads: name, then the cores each may run on.
for t in /proc/$pid/task/*; do
  name=$(cat "$t/comm")
  case "$name" in
    vcpu*) echo "PINNED $name $(awk '/^Cpus_allowed_list/ { print $2 }' "$t/status")" ;;
  esac
done | sort | tee pins
[ "$(wc -l <pins)" -eq 2 ] || { echo "expected 2 vcpu threads"; exit 1; }
[ "$(awk '{ print $3 }' pins | sort -u | wc -l)" -eq 2 ] || { echo "vcpus share a core"; exit 1; }
if awk '{ print $3 }' pins | grep -q '[-,]'; then echo "a vcpu is not pinned to one core"; exit 1; fi
echo 'poweroff -f' >&3
wait $pid
rc=$?
exec 3>&-
tr -d '\r' <out | grep -E 'CONSOLE|L2-BOOTED'
held=$(sed -n 's/.*uart: \([0-9]*\) console writes taken without an exit.*/\1/p' err)
echo "CONSOLE-HELD writes=${held:-0}"
grep -o "vcpu exits to rvvmm.*" err
grep -o "KVM's vcpu counters.*" err || { echo "no KVM vcpu counters logged"; exit 1; }
[ "${held:-0}" -gt 0 ] || { echo "no UART write went through coalesced MMIO"; exit 1; }
echo "CONSOLE-EXIT rc=$rc"
[ "$rc" -eq 0 ]
