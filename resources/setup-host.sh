#!/usr/bin/env bash
# Install what the L0 (x86_64 Debian 12) machine needs to build rvvmm for riscv64 and to run the nested
# bench: QEMU 10 (bookworm-backports; system and user-mode), the riscv64 cross gcc, the Rust riscv64 target
# and the toolchain of the declared minimum Rust (Cargo.toml's rust-version), apt access to riscv64 Debian
# packages (trixie, trixie-backports, sid) for kernels and busybox, and the tools that build the project's
# L1 kernel (resources/build-l1-kernel.sh). Idempotent: does nothing when all is there.
#
# It changes the host for good (the README says so up front):
#   /etc/apt/sources.list.d/rvvmm-backports.sources  bookworm-backports for amd64 (unless apt has it already)
#   /etc/apt/sources.list.d/rvvmm-riscv64.sources    trixie, trixie-backports and sid, riscv64 only
#   /etc/apt/preferences.d/rvvmm-riscv64             those suites pinned low (never replace host packages)
#   dpkg --add-architecture riscv64                  (riscv64 packages are only downloaded, never installed)
#   the packages below, QEMU from bookworm-backports, rustup targets and toolchain
#   a binfmt_misc entry for qemu-riscv64 with the F flag (registered by build-distro.sh, until reboot)
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# The third line: what resources/build-l1-kernel.sh needs to build the project's L1 kernel; the fourth:
# libFuzzer's C++ sources for resources/fuzz.sh; the fifth: resources/build-distro.sh (the Debian guest:
# mmdebstrap, and ssh-keygen for its login key; qemu-user-static comes from backports below).
HOST_PKGS=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross cpio kmod xz-utils device-tree-compiler
  e2fsprogs
  make gcc libc6-dev flex bison bc libelf-dev libssl-dev patch
  g++
  mmdebstrap arch-test openssh-client)
# The riscv64 suites apt downloads from: kernels and busybox (trixie), the L1 kernel's source
# (trixie-backports, else sid: resources/build-l1-kernel.sh). Pinned below trixie, so that trixie's own
# versions stay the candidates that build-images.sh resolves (a backport's dependencies are not in trixie).
RISCV64_SOURCES='Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-backports sid
Components: main
Architectures: riscv64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
RISCV64_PINS='Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 90

Package: *
Pin: release n=sid
Pin-Priority: 50'
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1)
BACKPORTS_PKGS=(qemu-system-riscv opensbi qemu-user-static)
log() { echo "[setup-host] $*" >&2; }

have_all() {
  command -v qemu-system-riscv64 >/dev/null || return 1
  qemu-system-riscv64 --version | grep -qE 'version (9|[1-9][0-9])\.' || return 1
  # Installed, not merely known to dpkg (a removed package keeps a "config-files" entry).
  for p in "${HOST_PKGS[@]}" "${BACKPORTS_PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || return 1
  done
  dpkg --print-foreign-architectures | grep -qx riscv64 || return 1
  [ "$(cat /etc/apt/sources.list.d/rvvmm-riscv64.sources 2>/dev/null)" = "$RISCV64_SOURCES" ] || return 1
  [ "$(cat /etc/apt/preferences.d/rvvmm-riscv64 2>/dev/null)" = "$RISCV64_PINS" ] || return 1
  apt-cache policy busybox-static:riscv64 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null || return 1
  return 0
}

if have_all; then
  log "apt packages already present"
else
  log "configuring apt sources (bookworm-backports; riscv64 trixie, trixie-backports and sid, pinned low)"
  # bookworm-backports only when no source of the machine's own names it already (apt warns of a suite
  # configured twice).
  if ! grep -rqs --exclude=rvvmm-backports.sources 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    $SUDO tee /etc/apt/sources.list.d/rvvmm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  echo "$RISCV64_SOURCES" | $SUDO tee /etc/apt/sources.list.d/rvvmm-riscv64.sources >/dev/null
  # Never let trixie/sid replace host (amd64 or arch:all) packages; riscv64 packages are only downloaded.
  echo "$RISCV64_PINS" | $SUDO tee /etc/apt/preferences.d/rvvmm-riscv64 >/dev/null
  $SUDO dpkg --add-architecture riscv64
  log "apt-get update"
  $SUDO apt-get update -q -o Acquire::Retries=3 >/dev/null
  log "installing ${HOST_PKGS[*]} and ${BACKPORTS_PKGS[*]} (backports)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${HOST_PKGS[@]}" >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    -t bookworm-backports "${BACKPORTS_PKGS[@]}" >/dev/null
fi

# The pinned toolchain of rust-toolchain.toml (lint, tests, fuzzing) with its components and targets.
REPO=$(cd "$(dirname "$0")/.." && pwd)
PINNED=$(sed -n 's/^channel = "\(.*\)"/\1/p' "$REPO/rust-toolchain.toml" | head -n 1)
have_toolchain() { # TOOLCHAIN TARGET...
  local tc=$1 t
  shift
  rustup run "$tc" rustc --version >/dev/null 2>&1 || return 1
  for t in "$@"; do
    rustup target list --toolchain "$tc" --installed 2>/dev/null | grep -qx "$t" || return 1
  done
}
if ! have_toolchain "$PINNED" riscv64gc-unknown-linux-gnu riscv64gc-unknown-none-elf ||
  ! rustup component list --toolchain "$PINNED" --installed 2>/dev/null | grep -q '^clippy' ||
  ! rustup component list --toolchain "$PINNED" --installed 2>/dev/null | grep -q '^rustfmt'; then
  log "rustup toolchain install $PINNED (rust-toolchain.toml) with clippy, rustfmt and the riscv64 targets"
  rustup toolchain install "$PINNED" --profile minimal --component clippy,rustfmt \
    --target riscv64gc-unknown-linux-gnu,riscv64gc-unknown-none-elf >/dev/null
fi
# The declared minimum Rust: resources/build-rvvmm.sh builds the riscv64 rvvmm with it, so the suite proves
# rust-version true (a native build with Debian trixie's rustc, 1.85, is what it promises).
if ! have_toolchain "$MSRV" riscv64gc-unknown-linux-gnu; then
  log "rustup toolchain install $MSRV (Cargo.toml's rust-version) with the riscv64 target"
  rustup toolchain install "$MSRV" --profile minimal --target riscv64gc-unknown-linux-gnu >/dev/null
fi
log "ok: $(qemu-system-riscv64 --version | head -1)"
