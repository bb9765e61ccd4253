# The "net" scenario with --virtio-transport mmio on the AIA (see mmio-disk.sh).
export RVVMM_EXTRA="--virtio-transport mmio"
. /scenarios/net.sh
