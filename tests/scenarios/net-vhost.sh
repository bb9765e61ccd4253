# The "net" scenario with the in-kernel data path (--net ...,vhost=on): both cards must really use
# vhost-net (no silent fallback to the userspace path).
modprobe -q vhost_net 2>/dev/null
[ -c /dev/vhost-net ] || { echo "no /dev/vhost-net in L1"; exit 1; }
export RVVMM_EXTRA="--log-level info" RVVMM_NET_EXTRA=",vhost=on"
. /scenarios/net.sh
rc=$?
echo "VHOST-DEVICES $(grep -c 'vhost-net data path' err)"
[ "$rc" -eq 0 ] && [ "$(grep -c 'vhost-net data path' err)" -eq 2 ]
