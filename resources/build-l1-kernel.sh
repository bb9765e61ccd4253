#!/usr/bin/env bash
# Build the project's own L1 kernel: Debian's linux-source-7.2 (sid) with the patches of resources/l1-kernel/
# and a trimmed config (riscv defconfig, no modules, no vendor SoCs or big driver families, plus
# resources/l1-kernel/config), cross-compiled with Debian 12's riscv64 gcc.
#
# Why: Debian's riscv64 kernels cannot do VFIO on this bench (no vfio_iommu_type1/iommufd, and the RISC-V
# IOMMU driver reports no IOMMU_CAP_CACHE_COHERENCY, so VFIO refuses its groups) and lack
# CONFIG_RISCV_SBI_V01 (legacy SBI calls never reach a VMM). See README "The nested test bench".
#
# The Image is cached in ${RVVMM_KERNEL_CACHE:-$HOME/.cache/rvvmm}/l1-kernel/<hash>/ where <hash> covers
# every input (package version, patches, config fragment, this script, the compiler's version); a rerun
# with the same inputs prints the cached path at once. Prints the Image path as the last line of stdout.
set -euo pipefail
shopt -s inherit_errexit

START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=linux-source-7.2
CROSS=riscv64-linux-gnu-
KCACHE=${RVVMM_KERNEL_CACHE:-$HOME/.cache/rvvmm}/l1-kernel
log() { echo "[build-l1-kernel +$((SECONDS - START))s] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
for t in apt-get apt-cache dpkg-deb flex bison bc patch "${CROSS}gcc" sha256sum; do
  command -v "$t" >/dev/null || die "$t not found: run resources/setup-host.sh"
done

version=$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ { print $2 }')
[ -n "$version" ] && [ "$version" != "(none)" ] || die "apt knows no $PKG (resources/setup-host.sh adds the sid sources)"
patches=("$REPO"/resources/l1-kernel/*.patch)
inputs_hash=$(
  {
    echo "$PKG=$version"
    "${CROSS}gcc" --version | head -1
    sha256sum "${BASH_SOURCE[0]}" "$REPO/resources/l1-kernel/config" "${patches[@]}" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
out=$KCACHE/$inputs_hash
if [ -f "$out/Image" ]; then
  log "cached: $out/Image ($PKG $version)"
  echo "$out/Image"
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

log "downloading $PKG $version"
(cd "$work" && apt-get download -q "$PKG=$version" >/dev/null 2>&1) || die "apt-get download $PKG=$version failed"
dpkg-deb --fsys-tarfile "$work"/"$PKG"_*.deb | tar -x -C "$work" --wildcards '*.tar.xz'
rm -f "$work"/"$PKG"_*.deb
log "unpacking"
tar -xJf "$work/usr/src/$PKG.tar.xz" -C "$work"
rm -rf "$work/usr"
src="$work/$PKG"
[ -d "$src" ] || die "no $PKG directory in the package"
for p in "${patches[@]}"; do
  log "patch $(basename "$p")"
  patch -d "$src" -p1 --forward --quiet <"$p" || die "$(basename "$p") does not apply to $PKG $version"
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
printf '%s %s, built in %s s\n' "$PKG" "$version" "$((SECONDS - START))" >"$out.tmp/info"
rm -rf "$out"
mv "$out.tmp" "$out"
log "done: $out/Image ($(cat "$out/release"), $((SECONDS - START)) s)"
echo "$out/Image"
