# The riscv64 rvvmm binary runs in L1.
set -e
# ELF e_machine 0xf3 (EM_RISCV) at offset 18, class 2 (64-bit) at offset 4.
machine=$(od -A n -t x1 -j 18 -N 2 /bin/rvvmm | tr -d ' ')
class=$(od -A n -t x1 -j 4 -N 1 /bin/rvvmm | tr -d ' ')
[ "$machine" = "f300" ] && [ "$class" = "02" ] && echo "ELF-ARCH riscv64"
rvvmm --version
