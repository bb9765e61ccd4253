# rvvmm --help lists the options of the command line contract.
set -e
rvvmm --help
