# The "boot" scenario with the userspace PLIC (--irqchip plic), e.g. on an AIA host.
export RVVMM_EXTRA="--irqchip plic"
. /scenarios/boot.sh
