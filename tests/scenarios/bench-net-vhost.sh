# The net benchmark with the in-kernel data path (vhost=on), to compare with the userspace one.
modprobe -q vhost_net 2>/dev/null
export RVVMM_EXTRA="--log-level info" RVVMM_NET_EXTRA=",vhost=on" RVVMM_BENCH_VARIANT="vhost,aia"
. /scenarios/bench-net.sh
grep -q 'vhost-net data path' err && echo "BENCH-NET-CONFIG vhost=on (in use)" || echo "BENCH-NET-ERROR vhost=on requested but not in use"
