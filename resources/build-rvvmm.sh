#!/usr/bin/env bash
# Build the static riscv64 rvvmm binary: target/riscv64gc-unknown-linux-gnu/release/rvvmm
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --target riscv64gc-unknown-linux-gnu --bin rvvmm "$@"
bin=target/riscv64gc-unknown-linux-gnu/release/rvvmm
file "$bin" 2>/dev/null || true
echo "$PWD/$bin"
