#!/usr/bin/env bash
# Build the static riscv64 rvvmm binary: target/riscv64gc-unknown-linux-gnu/release/rvvmm
# It is built with the declared minimum Rust (Cargo.toml's rust-version; resources/setup-host.sh installs
# that toolchain), so every nested test also proves rust-version true. RVVMM_RUST_TOOLCHAIN=stable (or any
# rustup toolchain name) builds with another one.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
toolchain=${RVVMM_RUST_TOOLCHAIN:-$msrv}
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "build-rvvmm: no Rust toolchain '$toolchain' (run resources/setup-host.sh, or set RVVMM_RUST_TOOLCHAIN=stable)" >&2
  exit 1
fi
echo "build-rvvmm: $(rustup run "$toolchain" rustc --version)" >&2
RUSTUP_TOOLCHAIN=$toolchain cargo build --release --locked --target riscv64gc-unknown-linux-gnu --bin rvvmm "$@"
bin=target/riscv64gc-unknown-linux-gnu/release/rvvmm
file "$bin" 2>/dev/null || true
echo "$PWD/$bin"
