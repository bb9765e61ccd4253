# The "dtb" scenario with the userspace PLIC (--irqchip plic).
export RVVMM_EXTRA="--irqchip plic"
. /scenarios/dtb.sh
