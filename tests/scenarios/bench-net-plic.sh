# The net benchmark with the userspace PLIC (--irqchip plic), to compare with the in-kernel AIA.
export RVVMM_EXTRA="--irqchip plic" RVVMM_BENCH_VARIANT="userspace,plic"
. /scenarios/bench-net.sh
