#!/usr/bin/env bash
# Build the kernels and initramfs images of the nested bench from Debian riscv64 packages
# (see the README, "The nested test bench"). Run resources/setup-host.sh first. Outputs, under $RVVMM_CACHE:
#   debs/                          downloaded .debs (kept; never downloaded twice)
#   kernel/<name>/                 Image, release (uname -r), config, modroot/ (modules + modules.dep)
#   images/l2-Image                the L2 guest kernel (always trixie's)
#   images/l2-initrd.cpio.gz       the L2 guest initramfs: busybox, resources/l2/init as /init, modules
#   images/l1-Image-<name>         the kernel QEMU boots as L1
#   images/l1-base-<name>.cpio.gz  the L1 initramfs WITHOUT /init: busybox, modules, curl (+ its shared
#                                  libraries, glibc's loader), /guest/{Image,initrd.cpio.gz}. The run tool
#                                  appends a cpio with /init (resources/l1/init), /bin/rvvmm and
#                                  /scenarios/*.sh (Linux unpacks concatenated archives).
#   images/l1-qemu.cpio.gz         only with --with-qemu (or RVVMM_WITH_QEMU=1): QEMU-KVM for L1, an
#                                  archive to append after the base one (RVVMM_L1_QEMU=1 l1-initrd.sh):
#                                  trixie's qemu-system-riscv64 (10.x) and perf (linux-perf: the
#                                  opt-in profile of bench-vmm), the shared libraries they need
#                                  that the base does not already have, and iPXE's efi-virtio.rom
#                                  (virtio-net-pci refuses to start without its option ROM). No firmware:
#                                  under KVM the virt machine boots the kernel directly (-bios none).
# Usage: build-images.sh [--with-qemu]
# Environment:
#   RVVMM_CACHE       default ${XDG_CACHE_HOME:-~/.cache}/rvvmm/nested (shared by every clone: outputs are
#                     keyed by their inputs)
#   RVVMM_L1_KERNEL   trixie (default) | sid | vfio | /absolute/path/to/Image (self-built; <name> is
#                     custom-<12 hex digits of the path's hash>; no modules: KVM must be built in).
#                     vfio: the project-built kernel (resources/build-l1-kernel.sh, built here if it is not
#                     in its cache), used through its Image path.
#   RVVMM_WITH_QEMU   1: also build images/l1-qemu.cpio.gz (same as --with-qemu)
# Each output has a <output>.stamp holding the hash of its inputs; it is rebuilt only when that changes.
# Prints KEY=path lines on stdout (eval-able); progress goes to stderr.
set -euo pipefail
shopt -s inherit_errexit

START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RES=$REPO/resources
L1_KERNEL=${RVVMM_L1_KERNEL:-trixie}
CACHE=${RVVMM_CACHE:-${RVVMM_CACHE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/rvvmm}/nested}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
DEBDIR=$CACHE/debs
KDIR=$CACHE/kernel
IMG=$CACHE/images

# Modules wanted in each initramfs, by module name ('-' and '_' are the same), plus their dependencies.
# Names a kernel lacks or has built in are reported and skipped. crc32c_generic: ext4's checksums
# (a softdep, which busybox modprobe ignores; the kernel asks /sbin/modprobe for crypto-crc32c).
# L2: vsock guest transport (vmw_vsock_virtio_transport) and virtio-rng; resources/l2/init loads them.
# L1: vhost_vsock gives /dev/vhost-vsock (loaded on demand: modprobe vhost_vsock); vsock_loopback lets
# /guests/vsock-test talk to itself in L1 (CID 1) without a guest. virtio_mmio + virtio_blk: the Debian
# guest's disks (tests/scenarios/distro.sh; resources/qemu-l1.sh --distro).
L2_MODULES=(virtio_mmio virtio_blk virtio_net net_failover failover ext4 crc32c_generic
  vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport virtio_rng)
L1_MODULES=(kvm tun vhost_net vhost vhost_iotlb vsock vmw_vsock_virtio_transport_common vhost_vsock
  vsock_loopback vfio vfio_pci vfio_iommu_type1 virtio_mmio virtio_blk)
# Debian (trixie, riscv64) packages unpacked into the L1 initramfs with the packages their Depends and
# Pre-Depends name, recursively (curl: e.g. `curl --unix-socket S http://localhost/...` for rvvmm's API;
# openssh-client: ssh into the Debian guest).
# Only their programs (of these packages, not of the dependencies), shared libraries and the loader go
# in; a file the busybox rootfs already has is never replaced.
L1_PACKAGES=(curl openssh-client)
# Dependencies not followed (an extended regex on the package name): nothing a program needs to run
# (config/doc-only packages, maintainer-script tools, plugins loaded only on request), or what busybox
# replaces. adduser, passwd: openssh-client's maintainer scripts only; gcc-N-base: docs; openssl-provider-legacy: an OpenSSL module loaded only on request;
# libsasl2-modules-db: a SASL plugin (and with it libdb).
L1_PACKAGES_SKIP='^(adduser|passwd|debconf|debconf-2[.]0|cdebconf|perl-base|dpkg|install-info|base-files|base-passwd|bash|coreutils|dash|sensible-utils|tzdata|ca-certificates|openssl|gcc-[0-9]+-base|openssl-provider-legacy|libsasl2-modules-db|libsasl2-modules|usr-is-merged|usrmerge|init-system-helpers)$'
# QEMU-KVM for L1 (--with-qemu): these packages and their Depends closure, minus L1_PACKAGES_SKIP and
# QEMU_PACKAGES_SKIP; only the programs in QEMU_PROGRAMS are kept. Skipped: opensbi (machine-mode
# firmware, unused under KVM), qemu-system-data (only /usr/share data: keymaps, other machines' BIOSes),
# qemu-system-common (on-demand modules for audio, curses, USB redirection, virtio-gpu, and helper
# programs; qemu-system-riscv64 itself NEEDs none of their libraries), adduser and what it pulls (a
# maintainer-script tool, for libibverbs1's group).
# linux-perf: trixie's perf (/usr/bin/perf, the version of trixie's 6.12 kernel) for the opt-in profile of
# tests/scenarios/bench-vmm.sh (rvvmm.bench.perf=1). It NEEDs libperl and libpython (their shared libraries
# come along), but starts neither interpreter unless asked to run a script: skipped are the interpreters
# (perl, python3*), their standard libraries (perl-modules-*, libpython3*-stdlib/-minimal) and what only those
# use (media-types, netbase), ucf (a maintainer-script tool) and libdebuginfod-common (its /etc config only);
# stage_debs drops libperl's module tree and perf's Python binding, and with them the only users of libdb and
# libgdbm (perl's DB_File/GDBM_File), skipped too.
QEMU_PACKAGES=(qemu-system-riscv linux-perf)
QEMU_PACKAGES_SKIP='^(opensbi|qemu-system-data|qemu-system-common|adduser|passwd|login[.]defs|libpam.*|libsemanage.*|libaudit-common|readline-common|tar|perl|perl-modules-[0-9.]+|python3([.][0-9]+)?(-minimal)?|libpython3([.][0-9]+)?-(stdlib|minimal)|media-types|netbase|ucf|libdebuginfod-common|libdb[0-9.]+t64|libgdbm(-compat)?[0-9]+t64)$'
QEMU_PROGRAMS=(qemu-system-riscv64 perf)
# Data files QEMU loads at run time for this use, as "package path": the option ROM every virtio-net-pci
# device loads (iPXE's; a Recommends of qemu-system-riscv, so outside the closure).
QEMU_DATA=("ipxe-qemu usr/share/qemu/efi-virtio.rom")
# Applets the init scripts rely on; every applet of the binary gets a symlink, these must be among them.
NEEDED_APPLETS=(sh mount modprobe insmod setsid cttyhack timeout poweroff grep awk tr find uname)
# Used only if the applet list cannot be read from the (riscv64, not runnable here) busybox binary.
FALLBACK_APPLETS=(sh ash mount umount cat echo grep sed awk mkdir mknod ls dd sha256sum md5sum head tail wc
  sleep poweroff reboot insmod modprobe rmmod lsmod ip ifconfig ping nc mdev setsid cttyhack uname dmesg sync
  mke2fs cmp cut tr free df hexdump od seq taskset nproc top timeout true false test "[" printf kill ps xargs
  find cp mv rm ln chmod stat tee date hwclock wget udhcpc blockdev fdisk mkswap yes expr env id hostname
  which zcat gunzip gzip xz unxz time usleep watch cpio vi less)

log() { echo "[build-images +$((SECONDS - START))s] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
WITH_QEMU=${RVVMM_WITH_QEMU:-0}
for arg in "$@"; do
  case "$arg" in
    --with-qemu) WITH_QEMU=1 ;;
    *) die "unknown argument '$arg' (usage: build-images.sh [--with-qemu])" ;;
  esac
done
hash_of() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }
# in_list WORD ITEM...: WORD is one of the ITEMs. (Not `printf | grep -q`: grep's early exit can leave
# printf writing into a closed pipe, and pipefail then fails the test now and then.)
in_list() {
  local w=$1 i
  shift
  for i in "$@"; do [ "$i" = "$w" ] && return 0; done
  return 1
}
# fresh OUT HASH: OUT exists and its stamp says it was built from inputs hashing to HASH.
fresh() { [ -e "$1" ] && [ -f "$1.stamp" ] && [ "$(cat "$1.stamp")" = "$2" ]; }
# link_or_copy SRC DST: DST becomes the same file as SRC (hard link when possible).
link_or_copy() {
  [ "$1" -ef "$2" ] && return 0
  ln -f "$1" "$2" 2>/dev/null || cp -f "$1" "$2"
}

if [ "$L1_KERNEL" = vfio ]; then
  L1_KERNEL=$("$RES/build-l1-kernel.sh" | tail -n 1) || die "RVVMM_L1_KERNEL=vfio: resources/build-l1-kernel.sh failed"
fi
case "$L1_KERNEL" in
  trixie | sid) L1_NAME=$L1_KERNEL CUSTOM=0 ;;
  /*)
    [ -f "$L1_KERNEL" ] || die "RVVMM_L1_KERNEL: no such file $L1_KERNEL"
    L1_NAME=custom-$(echo "$L1_KERNEL" | sha256sum | cut -c1-12) # as rvvmm_l1_kernel_name in common.sh
    CUSTOM=1
    ;;
  *) die "RVVMM_L1_KERNEL must be trixie, sid, vfio or an absolute path to a kernel Image (got '$L1_KERNEL')" ;;
esac
for t in apt-get apt-cache dpkg-deb depmod cpio xz gzip flock tar; do
  command -v "$t" >/dev/null || die "$t not found: run resources/setup-host.sh"
done

SELF=$(sha256sum <"${BASH_SOURCE[0]}")
mkdir -p "$DEBDIR" "$KDIR" "$IMG"
exec 9>"$CACHE/.lock"
flock 9 # one build at a time per cache
rm -rf "$CACHE"/tmp.* # left by a killed run
TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------------------------------
# Packages. The resolved .deb names are remembered per key while apt's state (sources, pins, index
# files) and this script are unchanged: a no-op run makes no apt calls.
apt_fingerprint() {
  {
    echo "$SELF"
    cat /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences.d/* 2>/dev/null || true
    find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -printf '%f %s %T@\n' 2>/dev/null | sort
  } | sha256sum | cut -d' ' -f1
}
APT_FP=$(apt_fingerprint)
# A pkgcache.bin for this run's apt calls: without one (containers disable it) each call takes seconds.
APT_OPTS=(-q -o "Dir::Cache::pkgcache=$TMP/pkgcache.bin" -o Dir::Cache::srcpkgcache=)
[ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o APT::Sandbox::User=root) # no "_apt cannot access" warning

# download SPEC...: put the packages (name:riscv64/suite) into debs/ unless already there with the
# right size; set DEBS to their file names.
download() {
  local uris _url file size _rest need=0
  # --print-uris skips files present in the current directory: ask from an empty one.
  mkdir -p "$TMP/empty"
  uris=$(cd "$TMP/empty" && apt-get download "${APT_OPTS[@]}" --print-uris "$@") || return 1
  DEBS=()
  while read -r _url file size _rest; do
    [ -n "$file" ] || continue
    DEBS+=("$file")
    if [ "$(stat -c %s "$DEBDIR/$file" 2>/dev/null || true)" != "$size" ]; then
      rm -f "$DEBDIR/$file"
      need=1
    fi
  done <<<"$uris"
  [ "${#DEBS[@]}" -eq $# ] || { log "apt-get download --print-uris $*: got ${#DEBS[@]} files for $# packages"; return 1; }
  if [ "$need" = 1 ]; then
    log "downloading $*"
    (cd "$DEBDIR" && apt-get download "${APT_OPTS[@]}" "$@") >&2 || return 1
  fi
  for file in "${DEBS[@]}"; do [ -f "$DEBDIR/$file" ] || return 1; done
}

# refresh_lists: apt's lists refreshed once per run (apt-lists.sh), and what depends on them recomputed.
. "$RES/apt-lists.sh"
refresh_lists() {
  apt_refresh_once "a download failed" || return 1
  rm -f "$TMP/pkgcache.bin"
  APT_FP=$(apt_fingerprint)
}

# get_debs KEY CMD...: set DEBS to the .debs of the package specs CMD prints (from memo when possible).
get_debs() {
  local memo=$DEBDIR/.resolved-$1 f ok=1 specs
  shift
  if [ -f "$memo" ] && [ "$(head -n1 "$memo")" = "$APT_FP" ]; then
    mapfile -t DEBS < <(tail -n +2 "$memo")
    for f in "${DEBS[@]}"; do [ -f "$DEBDIR/$f" ] || ok=0; done
    [ "$ok" = 1 ] && [ "${#DEBS[@]}" -gt 0 ] && return 0
  fi
  specs=$("$@")
  # shellcheck disable=SC2086 # one spec per word
  if ! download $specs; then
    refresh_lists || die "downloading $specs failed"
    specs=$("$@")
    # shellcheck disable=SC2086
    download $specs || die "downloading $specs failed, also after refreshing apt's lists (network? mirror?)"
  fi
  { echo "$APT_FP"; printf '%s\n' "${DEBS[@]}"; } >"$memo"
}

# kernel_specs SUITE: the kernel packages of SUITE, found through the meta package linux-image-riscv64:
# the versioned linux-image-<ver> (trixie: it holds everything) or the parts it depends on (sid:
# linux-binary-<ver> with usr/lib/modules/<ver>/vmlinuz, linux-modules-<ver> with kernel/, linux-base-<ver>
# with config, modules.builtin, modules.order).
kernel_specs() {
  local suite=$1 img parts p
  img=$(apt-cache "${APT_OPTS[@]}" depends "linux-image-riscv64:riscv64/$suite" |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\)\(:riscv64\)\{0,1\}$/\1/p' | head -n1)
  [ -n "$img" ] || die "cannot resolve linux-image-riscv64:riscv64/$suite (did setup-host.sh run?)"
  parts=$(apt-cache "${APT_OPTS[@]}" depends "$img:riscv64/$suite" |
    sed -n 's/^ *Depends: \(linux-\(binary\|modules\|base\)-[0-9][^:]*\)\(:riscv64\)\{0,1\}$/\1/p' | sort -u)
  for p in ${parts:-$img}; do echo "$p:riscv64/$suite"; done
}

# pkg_closure SUITE PKG...: the riscv64 packages PKG of SUITE and, recursively, what their Depends and
# Pre-Depends name (of alternatives the first; a virtual package by its first provider), except names
# matching CLOSURE_SKIP (default L1_PACKAGES_SKIP). One apt-cache call; the output is sorted (the memo stays the same).
pkg_closure() {
  local suite=$1 out
  shift
  out=$(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${@/%/:riscv64}") || die "apt-cache depends $* failed"
  # Blocks: "name[:arch]" then "  Depends: dep", " |Depends: alt" (an alternative follows), and under
  # "Depends: <virtual>" the providers, indented by 4. A group ends at a line without the "|".
  LC_ALL=C awk -v roots="$*" -v skip="${CLOSURE_SKIP:-$L1_PACKAGES_SKIP}" -v suite="$suite" '
    function base(n) { sub(/:.*/, "", n); return n }
    /^[^ ]/ { cur = $1; open = 0; virt = 0; next }
    /^ [ |][A-Za-z-]+: / {
      if (!open) { g = cur SUBSEP (++ng[cur]); groups[cur] = groups[cur] " " g; open = 1 }
      virt = ($2 ~ /^</)
      if (!virt) cand[g] = cand[g] " " $2
      if (substr($0, 2, 1) != "|") open = 0
      next
    }
    /^    [^ ]/ { if (virt) cand[g] = cand[g] " " $1; next }
    END {
      n = split(roots, q, " "); for (i = 1; i <= n; i++) { q[i] = q[i] ":riscv64"; seen[q[i]] = 1 }
      for (h = 1; h <= n; h++) {
        p = q[h]; ng2 = split(groups[p], gs, " ")
        for (j = 1; j <= ng2; j++) {
          split(cand[gs[j]], c, " "); d = c[1]
          if (d == "") { print "no installable candidate for a dependency of " p > "/dev/stderr"; exit 1 }
          if (base(d) ~ skip || d in seen) continue
          seen[d] = 1; q[++n] = d
        }
      }
      for (i = 1; i <= n; i++) { d = q[i]; print base(d) (d ~ /:/ ? ":riscv64" : "") "/" suite }
    }' <<<"$out" | LC_ALL=C sort -u
}

get_debs busybox echo busybox-static:riscv64/trixie
BB_DEBS=("${DEBS[@]}")
get_debs l1-packages pkg_closure trixie "${L1_PACKAGES[@]}"
PKG_DEBS=("${DEBS[@]}")
if [ "$WITH_QEMU" = 1 ]; then
  # qemu_specs: the QEMU closure, then the packages of QEMU_DATA (by name, outside the closure).
  qemu_specs() {
    local e
    CLOSURE_SKIP="$L1_PACKAGES_SKIP|$QEMU_PACKAGES_SKIP" pkg_closure trixie "${QEMU_PACKAGES[@]}"
    for e in "${QEMU_DATA[@]}"; do echo "${e%% *}/trixie"; done | LC_ALL=C sort -u
  }
  get_debs l1-qemu qemu_specs
  QEMU_DEBS=("${DEBS[@]}")
fi
get_debs kernel-trixie kernel_specs trixie
TRIXIE_DEBS=("${DEBS[@]}")
if [ "$L1_NAME" = sid ]; then
  get_debs kernel-sid kernel_specs sid
  SID_DEBS=("${DEBS[@]}")
fi

# Drop .debs no key refers to any more (older versions).
for f in "$DEBDIR"/*.deb; do
  [ -e "$f" ] || continue
  grep -qxF "${f##*/}" "$DEBDIR"/.resolved-* || rm -f "$f"
done

# ---------------------------------------------------------------------------------------------------
# Kernels: kernel/<name>/{Image,release,config,modroot/usr/lib/modules/<ver>} (+ lib/modules symlink
# for depmod, which gives the tree a modules.dep).
extract_kernel() {
  local name=$1 out=$KDIR/$1 h t ver d
  shift
  h=$(hash_of "$SELF" "$@")
  fresh "$out" "$h" && return 0
  log "extracting kernel $name from $*"
  t=$TMP/kernel-$name
  mkdir -p "$t/x" "$t/modroot/usr/lib" "$t/modroot/lib"
  for d in "$@"; do dpkg-deb -x "$DEBDIR/$d" "$t/x"; done
  mv "$t/x/usr/lib/modules" "$t/modroot/usr/lib/modules"
  ver=$(ls "$t/modroot/usr/lib/modules")
  [ "$(echo "$ver" | wc -l)" = 1 ] || die "kernel $name: expected one usr/lib/modules/<ver>, got: $ver"
  d=$t/modroot/usr/lib/modules/$ver
  if [ -f "$t/x/boot/vmlinux-$ver" ]; then # trixie
    mv "$t/x/boot/vmlinux-$ver" "$t/Image"
    cp "$t/x/boot/config-$ver" "$t/config"
  elif [ -f "$d/vmlinuz" ]; then # sid: an uncompressed Image despite its name
    mv "$d/vmlinuz" "$t/Image"
    cp "$d/config" "$t/config" 2>/dev/null || true
  else
    die "kernel $name: no boot/vmlinux-$ver nor usr/lib/modules/$ver/vmlinuz in $*"
  fi
  echo "$ver" >"$t/release"
  rm -rf "$t/x"
  ln -s ../usr/lib/modules "$t/modroot/lib/modules"
  depmod -b "$t/modroot" "$ver"
  rm -rf "$out" "$out.stamp"
  mv "$t" "$out"
  echo "$h" >"$out.stamp"
}

extract_kernel trixie "${TRIXIE_DEBS[@]}"
[ "$L1_NAME" != sid ] || extract_kernel sid "${SID_DEBS[@]}"

# ---------------------------------------------------------------------------------------------------
# Initramfs building blocks.

# The busybox binary and its applet names. The binary is riscv64 (cannot run here): the names are
# the NUL-separated, sorted string table that starts "[", "[[" (the first is glued to other data).
dpkg-deb -x "$DEBDIR/${BB_DEBS[0]}" "$TMP/busybox"
BUSYBOX=$TMP/busybox/usr/bin/busybox
[ -f "$BUSYBOX" ] || die "no usr/bin/busybox in ${BB_DEBS[0]}"
mapfile -t APPLETS < <(LC_ALL=C tr '\0' '\n' <"$BUSYBOX" | LC_ALL=C awk '
  p && $0 == "" { exit }
  p { print; next }
  prev ~ /\[$/ && $0 == "[[" { print "["; print; p = 1 }
  { prev = $0 }' | grep -E '^[][a-z0-9_.-]+$' || true)
if [ "${#APPLETS[@]}" -lt 100 ]; then
  log "warning: could not read the applet list from busybox; using a fixed list"
  APPLETS=("${FALLBACK_APPLETS[@]}")
fi
for a in "${NEEDED_APPLETS[@]}"; do
  in_list "$a" "${APPLETS[@]}" || die "busybox in ${BB_DEBS[0]} has no applet $a"
done

# stage_rootfs DIR: busybox + applet symlinks, base directories, /etc/passwd, /dev/console, /dev/null.
stage_rootfs() {
  local r=$1 a
  mkdir -p "$r"/{bin,dev,etc,proc,sys,tmp,run,root,mnt,usr/lib}
  chmod 1777 "$r/tmp"
  ln -s bin "$r/sbin"
  ln -s usr/lib "$r/lib" # usrmerge: glibc's loader is /lib/ld-linux-*.so.1, shipped in usr/lib
  ln -s ../bin "$r/usr/bin"
  ln -s ../bin "$r/usr/sbin"
  cp "$BUSYBOX" "$r/bin/busybox"
  for a in "${APPLETS[@]}"; do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  if [ "$(id -u)" -eq 0 ]; then # else pack() appends the nodes as a hand-made archive
    mknod -m 600 "$r/dev/console" c 5 1
    mknod -m 666 "$r/dev/null" c 1 3
  fi
}

# stage_modules MODROOT DEST NAME...: the modules NAME and their dependencies from MODROOT (a depmod'ed
# kernel/<name>/modroot), decompressed, into DEST/usr/lib/modules/<ver> (+ lib/modules symlink) with a
# fresh modules.dep for the .ko names (busybox modprobe reads modules.dep, modules.alias).
stage_modules() {
  local src=$1 dest=$2 ver rel m
  shift 2
  ver=$(ls "$src/usr/lib/modules")
  local from=$src/usr/lib/modules/$ver to=$dest/usr/lib/modules/$ver
  mkdir -p "$to"
  # modules.dep lines are "path: dep dep...", dependencies already transitive.
  LC_ALL=C awk -v want=" $* " -v missing="$TMP/missing" '
    function modname(p) { sub(/.*\//, "", p); sub(/\.ko(\..*)?$/, "", p); gsub(/-/, "_", p); return p }
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) W[w[i]] = 1 }
    { p = $1; sub(/:$/, "", p); m = modname(p)
      if (m in W) { found[m] = 1; print p; for (i = 2; i <= NF; i++) print $i } }
    END { for (m in W) if (!(m in found)) print m > missing }' "$from/modules.dep" | sort -u >"$TMP/closure"
  while read -r rel; do
    mkdir -p "$to/$(dirname "$rel")"
    case "$rel" in
      *.ko.xz) xz -dc "$from/$rel" >"$to/${rel%.xz}" ;;
      *.ko.gz) gzip -dc "$from/$rel" >"$to/${rel%.gz}" ;;
      *.ko) cp "$from/$rel" "$to/$rel" ;;
      *) die "cannot decompress module $rel" ;;
    esac
  done <"$TMP/closure"
  cp "$from/modules.builtin" "$from/modules.builtin.modinfo" "$to/" 2>/dev/null || true
  sed 's/\.\(xz\|gz\)$//' "$TMP/closure" | grep -xFf - "$from/modules.order" >"$to/modules.order" || true
  [ -d "$dest/lib/modules" ] || die "$dest/lib/modules: no lib -> usr/lib symlink (stage_rootfs)"
  depmod -b "$dest" "$ver"
  rm -f "$to"/*.bin "$to/modules.builtin.modinfo" # busybox reads only the text files
  log "  modules ($ver): $(sed 's|.*/||; s|\.ko.*||' "$TMP/closure" | sort | tr '\n' ' ')"
  touch "$TMP/missing"
  while read -r m; do
    if LC_ALL=C sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$from/modules.builtin" | grep -xF "$m" >/dev/null; then
      log "  $m: built into the kernel"
    else
      log "  warning: $m: not in kernel $ver (neither module nor built in)"
    fi
  done <"$TMP/missing"
  rm -f "$TMP/missing"
}

# stage_debs ROOT DEB...: unpack the .debs into ROOT, keeping only what running programs needs: the
# shared libraries and loader (usr/lib, lib), /etc, and the programs of the packages in L1_PACKAGES (or,
# when STAGE_PROGRAMS is set, only the programs it names: file names, space-separated). No
# docs, headers, static libraries, gconv modules. A file ROOT already has (or has as a symlink, e.g.
# /bin/sh of busybox) is left alone: the deb's copy is dropped and reported. Then checks that every ELF
# file's loader and NEEDED libraries are in ROOT.
stage_debs() {
  local r=$1 d pkg x=$TMP/debs-x all=$TMP/debs-all f n=0 clash=() elf readelf lib ok
  shift
  rm -rf "$all"
  mkdir -p "$all"
  for d in "$@"; do
    pkg=${d%%_*}
    rm -rf "$x"
    mkdir -p "$x"
    dpkg-deb -x "$DEBDIR/$d" "$x"
    # Also dropped: perf's scripts, self-tests and Python binding, and libperl's module tree (no Perl or
    # Python interpreter runs in L1; perf record/report need none of them).
    rm -rf "$x"/usr/share "$x"/usr/include "$x"/usr/lib/*/gconv "$x"/usr/lib/*/pkgconfig "$x"/usr/lib/*/*.a \
      "$x"/usr/libexec "$x"/var "$x"/lib/systemd "$x"/usr/lib/systemd "$x"/usr/lib/perf-core/scripts \
      "$x"/usr/lib/perf-core/tests "$x"/usr/lib/python3 "$x"/usr/lib/*/perl
    if [ -n "${STAGE_PROGRAMS:-}" ]; then
      for f in "$x"/bin/* "$x"/sbin/* "$x"/usr/bin/* "$x"/usr/sbin/* "$x"/usr/games/*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        case " $STAGE_PROGRAMS " in *" ${f##*/} "*) ;; *) rm -rf "$f" ;; esac
      done
    elif ! in_list "$pkg" "${L1_PACKAGES[@]}"; then
      rm -rf "$x"/bin "$x"/sbin "$x"/usr/bin "$x"/usr/sbin "$x"/usr/games
    fi
    (cd "$x" && tar -cf - .) | tar -C "$all" -xf - --keep-directory-symlink
  done
  rm -rf "$x"
  while IFS= read -r -d '' f; do
    f=${f#./}
    if [ -e "$r/$f" ] || [ -L "$r/$f" ]; then
      clash+=("/$f")
      rm -f "$all/$f"
    else
      n=$((n + 1))
    fi
  done < <(cd "$all" && find . ! -type d -print0)
  [ "${#clash[@]}" -eq 0 ] || log "  kept the rootfs' own: ${clash[*]}"
  # --keep-directory-symlink: the rootfs' usr/bin -> ../bin and lib -> usr/lib stay symlinks.
  (cd "$all" && tar -cf - .) | tar -C "$r" -xf - --keep-directory-symlink --skip-old-files
  log "  packages: $n files, $(du -sk --apparent-size "$all" | cut -f1) KiB: $(printf '%s\n' "$@" | sed 's/_.*//' | tr '\n' ' ')"
  readelf=$(command -v riscv64-linux-gnu-readelf || command -v readelf || true)
  if [ -z "$readelf" ]; then
    log "  warning: no readelf: shared-library dependencies not checked"
    rm -rf "$all"
    return 0
  fi
  ok=1
  while IFS= read -r -d '' f; do
    [ "$(head -c 4 "$all/$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    elf=$("$readelf" -lW -d "$all/$f" 2>/dev/null) || continue
    lib=$(sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p' <<<"$elf")
    if [ -n "$lib" ] && [ ! -e "$r$lib" ]; then
      log "  error: $f: loader $lib is not in the rootfs"
      ok=0
    fi
    for lib in $(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$elf"); do
      [ -e "$r/usr/lib/riscv64-linux-gnu/$lib" ] || [ -e "$r/usr/lib/$lib" ] || {
        log "  error: $f needs $lib, which is not in the rootfs"
        ok=0
      }
    done
  done < <(cd "$all" && find . -type f -print0)
  rm -rf "$all"
  [ "$ok" = 1 ] || die "shared-library dependencies missing: see L1_PACKAGES_SKIP"
}

# newc_node NAME MODE(octal) MAJOR MINOR: one newc cpio entry without data (a directory or device node).
newc_node() {
  local name=$1 mode=$((8#$2)) n=$((${#1} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
    $((0x7f000000 + RANDOM)) "$mode" 0 0 1 0 0 0 0 "$3" "$4" "$n" 0 "$name"
  head -c $(((4 - (110 + n) % 4) % 4)) /dev/zero # pad header + name to 4 bytes
}

# pack DIR OUT: DIR as a gzip'd newc initramfs, files owned by root; atomic.
pack() {
  local gz=(gzip -6)
  ! command -v pigz >/dev/null || gz=(pigz -6)
  {
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
    if [ ! -e "$1/dev/console" ]; then # not root: no mknod; Linux unpacks concatenated archives
      newc_node dev 40755 0 0
      newc_node dev/console 20600 5 1
      newc_node dev/null 20666 1 3
      newc_node TRAILER!!! 0 0 0
    fi
  } | "${gz[@]}" >"$2.tmp"
  mv -f "$2.tmp" "$2"
}

# ---------------------------------------------------------------------------------------------------
# The L2 guest: trixie's kernel and a busybox initramfs with resources/l2/init.
TRIXIE_STAMP=$(cat "$KDIR/trixie.stamp")
link_or_copy "$KDIR/trixie/Image" "$IMG/l2-Image"

L2_INITRD=$IMG/l2-initrd.cpio.gz
h=$(hash_of "$SELF" "$(sha256sum <"$RES/l2/init")" "${BB_DEBS[@]}" "$TRIXIE_STAMP")
if ! fresh "$L2_INITRD" "$h"; then
  log "building $L2_INITRD"
  r=$TMP/l2root
  stage_rootfs "$r"
  install -m 755 "$RES/l2/init" "$r/init"
  stage_modules "$KDIR/trixie/modroot" "$r" "${L2_MODULES[@]}"
  rm -f "$L2_INITRD.stamp"
  pack "$r" "$L2_INITRD"
  echo "$h" >"$L2_INITRD.stamp"
fi

# ---------------------------------------------------------------------------------------------------
# The L1 host: its kernel and the base initramfs (no /init), which carries the L2 guest in /guest.
L1_IMAGE=$IMG/l1-Image-$L1_NAME
if [ "$CUSTOM" = 1 ]; then
  h=$(hash_of "$L1_KERNEL" "$(stat -c '%s %Y' "$L1_KERNEL")")
  if ! fresh "$L1_IMAGE" "$h"; then
    cp -f "$L1_KERNEL" "$L1_IMAGE.tmp"
    mv -f "$L1_IMAGE.tmp" "$L1_IMAGE"
    echo "$h" >"$L1_IMAGE.stamp"
  fi
  L1_KSTAMP=none
else
  link_or_copy "$KDIR/$L1_NAME/Image" "$L1_IMAGE"
  L1_KSTAMP=$(cat "$KDIR/$L1_NAME.stamp")
fi

L1_BASE=$IMG/l1-base-$L1_NAME.cpio.gz
h=$(hash_of "$SELF" "${BB_DEBS[@]}" "${PKG_DEBS[@]}" "$L1_KSTAMP" "$TRIXIE_STAMP" "$(cat "$L2_INITRD.stamp")")
if ! fresh "$L1_BASE" "$h"; then
  log "building $L1_BASE"
  r=$TMP/l1root
  stage_rootfs "$r"
  if [ "$CUSTOM" = 0 ]; then
    stage_modules "$KDIR/$L1_NAME/modroot" "$r" "${L1_MODULES[@]}"
  fi
  stage_debs "$r" "${PKG_DEBS[@]}"
  mkdir -p "$r/guest"
  cp "$KDIR/trixie/Image" "$r/guest/Image"
  cp "$L2_INITRD" "$r/guest/initrd.cpio.gz"
  rm -f "$L1_BASE.stamp"
  pack "$r" "$L1_BASE"
  echo "$h" >"$L1_BASE.stamp"
fi

# ---------------------------------------------------------------------------------------------------
# QEMU-KVM for L1 (--with-qemu): an archive appended after the base. It is staged on top of the same
# rootfs + L1_PACKAGES the base starts from, so that the libraries the base already has are left out
# (and the NEEDED check sees them), and only files the base lacks are packed; the parent directories
# it needs are real directories in the base too (no path runs through the base's lib or usr/bin links,
# which an archive directory entry of the same name would replace).
L1_QEMU=$IMG/l1-qemu.cpio.gz
if [ "$WITH_QEMU" = 1 ]; then
  data_pkgs=$(for e in "${QEMU_DATA[@]}"; do echo "${e%% *}"; done)
  QEMU_BIN_DEBS=()
  for d in "${QEMU_DEBS[@]}"; do
    grep -qxF -- "${d%%_*}" <<<"$data_pkgs" || QEMU_BIN_DEBS+=("$d")
  done
  h=$(hash_of "$SELF" "${BB_DEBS[@]}" "${PKG_DEBS[@]}" "${QEMU_DEBS[@]}")
  if ! fresh "$L1_QEMU" "$h"; then
    log "building $L1_QEMU"
    r=$TMP/qemuroot
    stage_rootfs "$r"
    stage_debs "$r" "${PKG_DEBS[@]}" # as in the base
    (cd "$r" && find . -mindepth 1 ! -type d | LC_ALL=C sort) >"$TMP/qemu-base.list"
    STAGE_PROGRAMS="${QEMU_PROGRAMS[*]}" stage_debs "$r" "${QEMU_BIN_DEBS[@]}"
    for e in "${QEMU_DATA[@]}"; do
      pkg=${e%% *} f=${e#* }
      d=
      for q in "${QEMU_DEBS[@]}"; do [ "${q%%_*}" = "$pkg" ] && d=$q; done
      [ -n "$d" ] || die "QEMU_DATA: no .deb of $pkg"
      rm -rf "$TMP/data-x"
      mkdir -p "$TMP/data-x"
      dpkg-deb -x "$DEBDIR/$d" "$TMP/data-x"
      [ -f "$TMP/data-x/$f" ] || die "QEMU_DATA: $d has no $f"
      mkdir -p "$r/$(dirname "$f")"
      cp "$TMP/data-x/$f" "$r/$f"
    done
    rm -rf "$TMP/data-x"
    for p in "${QEMU_PROGRAMS[@]}"; do [ -x "$r/bin/$p" ] || die "no program $p in ${QEMU_BIN_DEBS[*]}"; done
    (cd "$r" && find . -mindepth 1 ! -type d | LC_ALL=C sort | LC_ALL=C comm -23 - "$TMP/qemu-base.list") \
      >"$TMP/qemu-new.list"
    q=$TMP/qemuimg
    mkdir -p "$q"
    (cd "$r" && tar -cf - --no-recursion -T "$TMP/qemu-new.list") | tar -C "$q" -xf -
    rm -f "$L1_QEMU.stamp"
    pack "$q" "$L1_QEMU"
    echo "$h" >"$L1_QEMU.stamp"
    rm -rf "$r" "$q"
  fi
  log "$L1_QEMU: $(stat -c %s "$L1_QEMU") bytes, ${#QEMU_DEBS[@]} packages: $(printf '%s\n' "${QEMU_DEBS[@]}" | sed 's/_.*//' | tr '\n' ' ')"
fi

log "done in $((SECONDS - START)) s"
echo "L1_KERNEL_NAME=$L1_NAME"
echo "L1_IMAGE=$L1_IMAGE"
echo "L1_INITRD_BASE=$L1_BASE"
echo "L2_IMAGE=$IMG/l2-Image"
echo "L2_INITRD=$L2_INITRD"
[ "$WITH_QEMU" != 1 ] || echo "L1_QEMU_INITRD=$L1_QEMU"
