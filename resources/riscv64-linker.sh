#!/bin/sh
# Linker for riscv64gc-unknown-linux-gnu: the cross gcc driver, but linking with Rust's own lld
# (bookworm's riscv64 GNU ld crashes on static Rust binaries; Debian's lld 14 rejects RISC-V relaxations).
sysroot=$("${RUSTC:-rustc}" --print sysroot)
host=$("${RUSTC:-rustc}" -vV | sed -n 's/^host: //p')
exec riscv64-linux-gnu-gcc -B"$sysroot/lib/rustlib/$host/bin/gcc-ld" -fuse-ld=lld "$@"
