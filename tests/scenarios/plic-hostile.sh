# The hostile guest with --irqchip plic on an AIA host (odd accesses reach rvvmm's PLIC model).
RVVMM_EXTRA="--irqchip plic" . /scenarios/hostile.sh
