# VFIO binding on the vfio host: the project-built L1 kernel with QEMU's riscv-iommu-pci and, behind it, a
# virtio-blk-pci disk (1af4:1042) and a virtio-net-pci card (1af4:1041) (resources/qemu-l1.sh
# --pci-passthrough). Each device must sit in an IOMMU group of its own, bind to vfio-pci and get
# /dev/vfio/<group>. Before binding, L1 reads the whole disk through its own virtio driver (DMA through
# the IOMMU) and must see what L0 wrote. At the end both devices go back to virtio-pci, as the scenarios
# that follow expect. Also reports the L1 kernel's options the other scenarios rely on.
. /scenarios/lib-vfio.sh
fails=0
bad() {
  echo "VFIO-BIND-BAD $*"
  fails=$((fails + 1))
}
# cfg NAME: the value of CONFIG_NAME in the running kernel's config (IKCONFIG_PROC), "n" when unset.
cfg() {
  v=$(zcat /proc/config.gz 2>/dev/null | sed -n "s/^CONFIG_$1=//p")
  echo "${v:-n}"
}
echo "L1-KERNEL $(uname -r)"
if [ -e /proc/config.gz ]; then
  [ "$(cfg RISCV_SBI_V01)" = y ] && echo "L1-SBI-V01 on" || echo "L1-SBI-V01 off"
  echo "L1-CONFIG KVM=$(cfg KVM) RISCV_IOMMU=$(cfg RISCV_IOMMU) RISCV_IOMMU_PCI=$(cfg RISCV_IOMMU_PCI)" \
    "VFIO_PCI=$(cfg VFIO_PCI) IOMMUFD=$(cfg IOMMUFD) IOMMUFD_VFIO_CONTAINER=$(cfg IOMMUFD_VFIO_CONTAINER)" \
    "VFIO_DEVICE_CDEV=$(cfg VFIO_DEVICE_CDEV) MODULES=$(cfg MODULES)"
else
  echo "L1-SBI-V01 unknown (no /proc/config.gz)"
fi
for i in /sys/class/iommu/*; do
  [ -e "$i" ] && echo "L1-IOMMU ${i##*/}"
done
echo "PT-DEVICES blk=$PT_BLK net=$PT_NET"
[ -n "$PT_BLK" ] || bad "no virtio-blk-pci (1af4:1042) in L1"
[ -n "$PT_NET" ] || bad "no virtio-net-pci (1af4:1041) in L1"
[ "$fails" -eq 0 ] || exit 1

# The disk as L1 sees it through virtio-blk (before VFIO takes it): the sha256 L0 put on the command line.
want=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^rvvmm.pt_disk_sha256=//p')
blk=$(ls /sys/bus/pci/devices/"$PT_BLK"/virtio*/block 2>/dev/null | head -n 1)
if [ -n "$blk" ]; then
  got=$(sha256sum "/dev/$blk" | cut -d' ' -f1)
  echo "L1-DISK $blk sectors=$(cat "/sys/block/$blk/size") sha256=$got"
  [ -n "$want" ] && [ "$got" = "$want" ] && echo "VFIO-L1-DISK-SHA-MATCH" || bad "disk sha256 $got, L0 wrote $want"
  head1=$(head -c 1048576 "/dev/$blk" | sha256sum | cut -d' ' -f1)
else
  bad "no block device on $PT_BLK (driver $(driver_of "$PT_BLK"))"
fi

[ -e /dev/vfio/vfio ] && echo "VFIO-CONTAINER /dev/vfio/vfio" || bad "no /dev/vfio/vfio"
for bdf in "$PT_BLK" "$PT_NET"; do
  before=$(driver_of "$bdf")
  g=$(group_of "$bdf")
  members=$(ls "/sys/kernel/iommu_groups/$g/devices" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
  echo "VFIO-GROUP $bdf group=$g members=$members driver=$before"
  [ "$g" != none ] || { bad "$bdf is not behind an IOMMU"; continue; }
  [ "$members" = "$bdf" ] || bad "group $g of $bdf holds: $members"
  if bind_vfio "$bdf" && [ -c "/dev/vfio/$g" ]; then
    echo "VFIO-BIND-OK $bdf group=$g"
  else
    bad "$bdf did not bind to vfio-pci with /dev/vfio/$g"
  fi
  unbind_vfio "$bdf"
  [ "$(driver_of "$bdf")" = "$before" ] && echo "VFIO-RESTORED $bdf driver=$before" || bad "$bdf not back on $before"
done
# The disk works again under L1's own driver after VFIO gave it back.
i=0
while [ -z "$(ls /sys/bus/pci/devices/"$PT_BLK"/virtio*/block 2>/dev/null)" ] && [ "$i" -lt 10 ]; do
  sleep 1
  i=$((i + 1))
done
blk=$(ls /sys/bus/pci/devices/"$PT_BLK"/virtio*/block 2>/dev/null | head -n 1)
again=$([ -n "$blk" ] && head -c 1048576 "/dev/$blk" | sha256sum | cut -d' ' -f1)
[ -n "$again" ] && [ "$again" = "${head1:-}" ] && echo "VFIO-DISK-BACK $blk first-MiB-same" ||
  bad "no disk with the same first MiB on $PT_BLK after unbinding ($blk)"
echo "VFIO-BIND-FAILS $fails"
[ "$fails" -eq 0 ]
