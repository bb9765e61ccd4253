#!/usr/bin/env bash
# Build the project's own L1 kernel: Debian's kernel source (linux-source-X.Y, 7.2 or newer) with the patches of
# resources/l1-kernel/ and a trimmed config (riscv defconfig, no modules, no vendor SoCs or big driver
# families, plus resources/l1-kernel/config), cross-compiled with Debian 12's riscv64 gcc.
#
# Why: Debian's riscv64 kernels cannot do VFIO on this bench (no vfio_iommu_type1/iommufd, and the RISC-V
# IOMMU driver reports no IOMMU_CAP_CACHE_COHERENCY, so VFIO refuses its groups) and lack
# CONFIG_RISCV_SBI_V01 (legacy SBI calls never reach a VMM). See README "The nested test bench".
#
# The cache comes first: the Image is cached in ${RVVMM_KERNEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/rvvmm/l1-kernel}
# /<hash>/, where <hash> covers what shapes the Image (the patches, the config fragment, the build recipe
# resources/l1-kernel/kbuild.sh, the cross compiler's version); a cached build is used whatever source
# version it was built from (its `info` file says which), without asking apt anything. Only a cold build
# picks a source: the newest linux-source-X.Y at or above MIN_SERIES that trixie-backports offers, else
# sid's (the archive moves on: a suite drops a series once the next one lands), falling back to the next
# candidate when a patch does not apply, and refreshing apt's lists once when they know no such package or
# the download fails.
# Environment:
#   RVVMM_L1_KERNEL_PKG=linux-source-X.Y[=VERSION]  build from this package instead of choosing one
#   RVVMM_L1_KERNEL_REBUILD=1                        ignore the cache (rebuild from the newest source)
#   RVVMM_L1_KERNEL_RESOLVE_ONLY=1                   print the package a cold build would use, then stop
# Prints the Image path as the last line of stdout.
set -euo pipefail
shopt -s inherit_errexit

START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The oldest kernel series the patches of resources/l1-kernel/ are written for.
MIN_SERIES=7.2
# Suites searched for a source package, in order of preference.
SUITES=(trixie-backports sid)
CROSS=riscv64-linux-gnu-
KCACHE=${RVVMM_KERNEL_CACHE:-${RVVMM_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rvvmm}/l1-kernel}
log() { echo "[build-l1-kernel +$((SECONDS - START))s] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
for t in flex bison bc patch "${CROSS}gcc" sha256sum; do
  command -v "$t" >/dev/null || die "$t not found: run resources/setup-host.sh"
done

patches=("$REPO"/resources/l1-kernel/*.patch)
inputs_hash=$(
  {
    echo "min=$MIN_SERIES pkg=${RVVMM_L1_KERNEL_PKG:-}"
    "${CROSS}gcc" --version | head -1
    sha256sum "$REPO/resources/l1-kernel/kbuild.sh" "$REPO/resources/l1-kernel/config" "${patches[@]}" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
out=$KCACHE/$inputs_hash
if [ -f "$out/Image" ] && [ "${RVVMM_L1_KERNEL_REBUILD:-0}" != 1 ] && [ "${RVVMM_L1_KERNEL_RESOLVE_ONLY:-0}" != 1 ]; then
  log "cached: $out/Image ($(head -n 1 "$out/info" 2>/dev/null))"
  echo "$out/Image"
  exit 0
fi

for t in apt-get apt-cache dpkg-deb; do
  command -v "$t" >/dev/null || die "$t not found: run resources/setup-host.sh"
done
# series_ok X.Y: X.Y is MIN_SERIES or newer.
series_ok() { [ "$(printf '%s\n%s\n' "$MIN_SERIES" "$1" | sort -V | head -n 1)" = "$MIN_SERIES" ]; }
# resolve: sets CANDIDATES to the sources a cold build may use, best first, one "package version suite"
# line each (every suite's newest version of each series >= MIN_SERIES, newest series first), or returns 1.
resolve() {
  local suite name ver pkgs
  CANDIDATES=""
  if [ -n "${RVVMM_L1_KERNEL_PKG:-}" ]; then
    name=${RVVMM_L1_KERNEL_PKG%%=*} ver=${RVVMM_L1_KERNEL_PKG#*=}
    if [ "$ver" = "$RVVMM_L1_KERNEL_PKG" ]; then
      ver=$(apt-cache policy "$name" 2>/dev/null | awk '/Candidate:/ { print $2 }')
      [ -n "$ver" ] && [ "$ver" != "(none)" ] || return 1
    fi
    CANDIDATES="$name $ver pinned"
    return 0
  fi
  # Every linux-source-X.Y apt knows, newest series first. --all-names: without it apt-cache leaves out
  # what only a foreign architecture's lists have (these riscv64 suites' arch:all packages).
  pkgs=$(apt-cache pkgnames --all-names linux-source- 2>/dev/null | grep -E '^linux-source-[0-9]+[.][0-9]+$' | sort -rV || true)
  for suite in "${SUITES[@]}"; do
    for name in $pkgs; do
      series_ok "${name#linux-source-}" || continue
      # apt-cache madison: "name | version | URI suite/component arch Packages", one line per source.
      ver=$(apt-cache madison "$name" 2>/dev/null |
        awk -F'|' -v s="$suite" '{ split($3, w, " "); split(w[2], c, "/"); if (c[1] == s) { gsub(/ /, "", $2); print $2; exit } }')
      [ -z "$ver" ] || CANDIDATES="$CANDIDATES${CANDIDATES:+$'\n'}$name $ver $suite"
    done
  done
  [ -n "$CANDIDATES" ]
}
. "$REPO/resources/apt-lists.sh"
refresh_lists() { apt_refresh_once "no usable kernel source, or its download failed"; }
no_source() {
  die "apt offers no linux-source-X.Y at or above $MIN_SERIES in ${SUITES[*]}: run resources/setup-host.sh (it adds those sources), or name a package with RVVMM_L1_KERNEL_PKG=linux-source-X.Y[=VERSION]"
}
resolve || { refresh_lists || true; resolve; } || no_source
read -r PKG VERSION SUITE <<<"$(head -n 1 <<<"$CANDIDATES")"
log "source: $PKG $VERSION ($SUITE)$([ "$(wc -l <<<"$CANDIDATES")" -gt 1 ] && echo ", then $(tail -n +2 <<<"$CANDIDATES" | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $3 }') if the patches do not apply")"
if [ "${RVVMM_L1_KERNEL_RESOLVE_ONLY:-0}" = 1 ]; then
  echo "cache: $out"
  echo "$PKG=$VERSION $SUITE"
  exit 0
fi

mkdir -p "$KCACHE"
exec 9>"$KCACHE/.lock"
flock 9
if [ -f "$out/Image" ]; then # built by a concurrent run while we waited
  echo "$out/Image"
  exit 0
fi
rm -rf "$KCACHE"/tmp.*
work=$(mktemp -d "$KCACHE/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# fetch_and_patch PKG VERSION: $work/$PKG, the unpacked source with the patches applied; returns 1 when the
# download fails, 2 when a patch does not apply (the tree is removed then).
fetch_and_patch() {
  local pkg=$1 ver=$2 p
  (cd "$work" && apt-get download -q "$pkg=$ver" </dev/null >/dev/null 2>&1) || return 1
  log "unpacking $pkg $ver"
  dpkg-deb --fsys-tarfile "$work"/"$pkg"_*.deb | tar -x -C "$work" --wildcards '*.tar.xz'
  rm -f "$work"/"$pkg"_*.deb
  tar -xJf "$work/usr/src/$pkg.tar.xz" -C "$work"
  rm -rf "$work/usr"
  [ -d "$work/$pkg" ] || die "no $pkg directory in the package"
  for p in "${patches[@]}"; do
    log "patch $(basename "$p")"
    if ! patch -d "$work/$pkg" -p1 --forward --batch --quiet <"$p" >&2; then
      log "$(basename "$p") does not apply to $pkg $ver"
      REFUSED="$REFUSED${REFUSED:+, }$pkg $ver ($(basename "$p"))"
      rm -rf "${work:?}/$pkg"
      return 2
    fi
  done
}
# The candidates in order: the first whose download works and to which every patch applies.
REFUSED=""
tried_refresh=0
while :; do
  src=""
  while read -r PKG VERSION SUITE; do
    log "downloading $PKG $VERSION ($SUITE)"
    rc=0
    fetch_and_patch "$PKG" "$VERSION" || rc=$?
    if [ "$rc" = 0 ]; then
      src="$work/$PKG"
      break
    fi
    [ "$rc" = 2 ] || break # a failed download: refresh the lists below and choose again
  done <<<"$CANDIDATES"
  [ -z "$src" ] || break
  if [ "$rc" = 1 ] && [ "$tried_refresh" = 0 ]; then
    # Lists older than the archive name files it no longer has: refresh them once and choose again.
    tried_refresh=1
    refresh_lists || true
    resolve || no_source
    continue
  fi
  [ "$rc" = 2 ] && die "the patches in resources/l1-kernel/ apply to no kernel source apt offers (refused: $REFUSED): port them to the newest series (they were written for linux-source-$MIN_SERIES), or pin a source they apply to with RVVMM_L1_KERNEL_PKG=linux-source-X.Y=VERSION"
  die "apt-get download $PKG=$VERSION failed (network? mirror? see resources/setup-host.sh)"
done
. "$REPO/resources/l1-kernel/kbuild.sh"
mkdir -p "$out.tmp"
cp "$src/arch/riscv/boot/Image" "$out.tmp/Image"
cp "$src/.config" "$out.tmp/config"
kmake -s kernelrelease >"$out.tmp/release"
printf '%s %s (%s), built in %s s\n' "$PKG" "$VERSION" "$SUITE" "$((SECONDS - START))" >"$out.tmp/info"
rm -rf "$out"
mv "$out.tmp" "$out"
log "done: $out/Image ($(cat "$out/release"), $((SECONDS - START)) s)"
echo "$out/Image"
