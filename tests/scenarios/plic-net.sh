# The "net" scenario with the userspace PLIC (--irqchip plic), e.g. on an AIA host.
export RVVMM_EXTRA="--irqchip plic"
. /scenarios/net.sh
