#!/bin/sh
# Linker for riscv64gc-unknown-linux-gnu (.cargo/config.toml).
# Cross (x86_64 host): the riscv64 cross gcc driver, linking with Rust's own lld (bookworm's riscv64 GNU ld
# crashes on static Rust binaries; Debian's lld 14 rejects RISC-V relaxations).
# Native (riscv64 host): the system's gcc, with Rust's lld when the toolchain has one (rustup's), else the
# system's linker (Debian's own rustc ships none; trixie's GNU ld links static Rust binaries).
sysroot=$("${RUSTC:-rustc}" --print sysroot)
host=$("${RUSTC:-rustc}" -vV | sed -n 's/^host: //p')
case "$host" in
  riscv64*) cc=${CC:-cc} ;;
  *) cc=riscv64-linux-gnu-gcc ;;
esac
gccld=$sysroot/lib/rustlib/$host/bin/gcc-ld
if [ -x "$gccld/ld.lld" ]; then
  exec "$cc" -B"$gccld" -fuse-ld=lld "$@"
fi
case "$host" in
  riscv64*) exec "$cc" "$@" ;;
esac
echo "riscv64-linker.sh: no $gccld/ld.lld in this Rust toolchain ($sysroot): the cross build links with Rust's lld (rustup's toolchains have it)" >&2
exit 1
