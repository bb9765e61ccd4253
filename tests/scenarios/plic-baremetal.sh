# The bare-metal checks with --irqchip plic on an AIA host.
RVVMM_EXTRA="--irqchip plic" . /scenarios/baremetal.sh
