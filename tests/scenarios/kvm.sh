# /dev/kvm exists in L1 and is the KVM misc device (10:232).
set -e
ls -l /dev/kvm
[ -c /dev/kvm ]
[ "$(stat -c '%t:%T' /dev/kvm)" = "a:e8" ]
dmesg | grep -i -E 'kvm|hypervisor' | head -5 || true
echo KVM-DEVICE-OK
