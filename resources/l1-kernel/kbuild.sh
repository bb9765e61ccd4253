# The L1 kernel's build recipe (sourced by resources/build-l1-kernel.sh, with $src the patched source tree,
# $REPO, $CROSS, $work and log/die defined): configure and build arch/riscv/boot/Image. Everything that
# shapes the Image is here, in ./config and in ./*.patch: their hashes (and the compiler's version) key the
# cache, while build-l1-kernel.sh itself only chooses and fetches the source.
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
