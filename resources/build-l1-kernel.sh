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
# /<hash>/, where <hash> covers the inputs this clone holds (patches, config fragment, this script, the
# cross compiler's version); a cached build is used whatever source version it was built from (its `info`
# file says which), without asking apt anything. Only a cold build picks a source: the newest
# linux-source-X.Y at or above MIN_SERIES that trixie-backports offers, else the newest of sid (the
# archive moves on: sid drops a series once the next one lands), refreshing apt's lists once when they
# know no such package or the download fails.
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
    sha256sum "${BASH_SOURCE[0]}" "$REPO/resources/l1-kernel/config" "${patches[@]}" | cut -d' ' -f1
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
# resolve: sets PKG, VERSION and SUITE to the source package a cold build uses, or returns 1.
resolve() {
  local suite name ver pkgs
  if [ -n "${RVVMM_L1_KERNEL_PKG:-}" ]; then
    PKG=${RVVMM_L1_KERNEL_PKG%%=*} VERSION=${RVVMM_L1_KERNEL_PKG#*=} SUITE=pinned
    [ "$VERSION" != "$RVVMM_L1_KERNEL_PKG" ] && return 0
    VERSION=$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    [ -n "$VERSION" ] && [ "$VERSION" != "(none)" ]
    return
  fi
  # Every linux-source-X.Y apt knows, newest series first.
  pkgs=$(apt-cache pkgnames linux-source- 2>/dev/null | grep -E '^linux-source-[0-9]+[.][0-9]+$' | sort -rV || true)
  for suite in "${SUITES[@]}"; do
    for name in $pkgs; do
      series_ok "${name#linux-source-}" || continue
      # apt-cache madison: "name | version | URI suite/component arch Packages", one line per source.
      ver=$(apt-cache madison "$name" 2>/dev/null |
        awk -F'|' -v s="$suite" '{ split($3, w, " "); split(w[2], c, "/"); if (c[1] == s) { gsub(/ /, "", $2); print $2; exit } }')
      if [ -n "$ver" ]; then
        PKG=$name VERSION=$ver SUITE=$suite
        return 0
      fi
    done
  done
  return 1
}
. "$REPO/resources/apt-lists.sh"
refresh_lists() { apt_refresh_once "no usable kernel source, or its download failed"; }
no_source() {
  die "apt offers no linux-source-X.Y at or above $MIN_SERIES in ${SUITES[*]}: run resources/setup-host.sh (it adds those sources), or name a package with RVVMM_L1_KERNEL_PKG=linux-source-X.Y[=VERSION]"
}
resolve || { refresh_lists || true; resolve; } || no_source
log "source: $PKG $VERSION ($SUITE)"
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

download() { (cd "$work" && apt-get download -q "$PKG=$VERSION" >/dev/null 2>&1); }
log "downloading $PKG $VERSION"
if ! download; then
  # Lists older than the archive name files it no longer has: refresh them once and choose again.
  refresh_lists && { resolve || no_source; } && log "source: $PKG $VERSION ($SUITE)" && download ||
    die "apt-get download $PKG=$VERSION failed (network? see resources/setup-host.sh)"
fi
dpkg-deb --fsys-tarfile "$work"/"$PKG"_*.deb | tar -x -C "$work" --wildcards '*.tar.xz'
rm -f "$work"/"$PKG"_*.deb
log "unpacking"
tar -xJf "$work/usr/src/$PKG.tar.xz" -C "$work"
rm -rf "$work/usr"
src="$work/$PKG"
[ -d "$src" ] || die "no $PKG directory in the package"
for p in "${patches[@]}"; do
  log "patch $(basename "$p")"
  patch -d "$src" -p1 --forward --quiet <"$p" ||
    die "$(basename "$p") does not apply to $PKG $VERSION: the patches in resources/l1-kernel/ need porting to this series (they apply to linux-source-$MIN_SERIES), or pin one they apply to with RVVMM_L1_KERNEL_PKG=linux-source-X.Y=VERSION"
done

kmake() { nice make -C "$src" ARCH=riscv CROSS_COMPILE="$CROSS" "$@"; }
log "configuring"
kmake -s defconfig
cfg() { "$src/scripts/config" --file "$src/.config" "$@"; }
# Trim: no modules, no vendor SoCs, none of the driver families a virtual L1 host has no use for.
for o in $(grep -oE '^CONFIG_(ARCH|SOC)_[A-Z0-9_]+' "$src/.config" | grep -v '^CONFIG_ARCH_VIRT$' |
  grep -vE '^CONFIG_ARCH_(HAS|SUPPORTS|USE|WANT|SELECT|MMAP|ENABLE|KEEP|STACKWALK|HIBERNATION|SPARSEMEM|FLATMEM|DEFAULT|RV64I|OPTIONAL|PROC|MHP|SUSPEND|INLINE|HAVE|NO_|BINFMT|SPLIT|DMA|MIGHT|32BIT|64BIT)'); do
  cfg -d "${o#CONFIG_}"
done
for o in MODULES DRM SOUND SND USB_SUPPORT MMC MTD WLAN WIRELESS CFG80211 MAC80211 MEDIA_SUPPORT INPUT_JOYSTICK \
  INPUT_TOUCHSCREEN HID SCSI ATA NVME_CORE BLK_DEV_NVME CAN SPI I2C GPIOLIB PWM FB SOUND REGULATOR \
  POWER_SUPPLY THERMAL NFS_FS ROOT_NFS NETFILTER BRIDGE BT DEBUG_INFO DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT \
  DEBUG_INFO_BTF RC_CORE STAGING NEW_LEDS LEDS_CLASS WATCHDOG HWMON EFI FTRACE KPROBES \
  BPF_SYSCALL CGROUPS NAMESPACES SECURITY XFS_FS BTRFS_FS ETHERNET VT INPUT_KEYBOARD INPUT_MOUSE \
  DRM_PANEL MD BLK_DEV_DM MFD_SYSCON PHYLIB SERIO; do
  cfg -d "$o"
done
# The fragment wins.
while read -r line; do
  case "$line" in
    CONFIG_*=y) cfg -e "${line%%=*}" ;;
    CONFIG_*=n) cfg -d "${line%%=*}" ;;
  esac
done < <(sed -e 's/#.*//' -e '/^$/d' -e 's/^CONFIG_//' -e 's/^/CONFIG_/' "$REPO/resources/l1-kernel/config" | sed 's/^CONFIG_CONFIG_/CONFIG_/')
kmake -s olddefconfig
missing=()
while read -r line; do
  name=${line%%=*} want=${line#*=}
  if [ "$want" = n ]; then
    grep -q "^$name=" "$src/.config" && missing+=("$name should be off")
  else
    grep -qx "$name=$want" "$src/.config" || missing+=("$name=$want")
  fi
done < <(sed -e 's/#.*//' -e '/^$/d' "$REPO/resources/l1-kernel/config")
[ ${#missing[@]} -eq 0 ] || die "the config lacks: ${missing[*]}"

log "building Image with $(nproc) jobs (gcc: $("${CROSS}gcc" --version | head -1))"
kmake -j"$(nproc)" Image >"$work/build.log" 2>&1 || {
  tail -40 "$work/build.log" >&2
  die "kernel build failed"
}
mkdir -p "$out.tmp"
cp "$src/arch/riscv/boot/Image" "$out.tmp/Image"
cp "$src/.config" "$out.tmp/config"
kmake -s kernelrelease >"$out.tmp/release"
printf '%s %s (%s), built in %s s\n' "$PKG" "$VERSION" "$SUITE" "$((SECONDS - START))" >"$out.tmp/info"
rm -rf "$out"
mv "$out.tmp" "$out"
log "done: $out/Image ($(cat "$out/release"), $((SECONDS - START)) s)"
echo "$out/Image"
