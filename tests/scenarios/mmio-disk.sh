# The "disk" scenario with --virtio-transport mmio on the AIA (a Linux guest gets virtio-pci there by
# default): virtio-mmio windows, interrupts through irqfds into the APLIC's wired sources.
export RVVMM_EXTRA="--virtio-transport mmio"
. /scenarios/disk.sh
