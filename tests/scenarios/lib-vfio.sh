# Helpers for the VFIO passthrough scenarios (sourced). L1 runs the project-built kernel and QEMU gives it
# a RISC-V IOMMU with a virtio-blk-pci disk and a virtio-net-pci card behind it (resources/qemu-l1.sh
# --pci-passthrough).

# find_pci VENDOR DEVICE: the address (DDDD:BB:DD.F) of the first PCI function with these ids.
find_pci() {
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && { echo "${d##*/}"; return 0; }
  done
  return 1
}

# driver_of BDF: the name of the driver the function is bound to, or "none".
driver_of() {
  if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
    basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
  else
    echo none
  fi
}

# group_of BDF: the function's IOMMU group number, or "none" when it is not behind an IOMMU.
group_of() {
  if [ -e "/sys/bus/pci/devices/$1/iommu_group" ]; then
    basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"
  else
    echo none
  fi
}

# bind_vfio BDF: bind the function to vfio-pci, the way the README tells users to (driver_override,
# unbind from the current driver, drivers_probe); prints its driver and group, fails without /dev/vfio/<g>.
bind_vfio() {
  d=/sys/bus/pci/devices/$1
  echo vfio-pci >"$d/driver_override"
  [ -e "$d/driver" ] && echo "$1" >"$d/driver/unbind"
  echo "$1" >/sys/bus/pci/drivers_probe
  g=$(group_of "$1")
  echo "VFIO-BIND $1 driver=$(driver_of "$1") group=$g node=$([ -e "/dev/vfio/$g" ] && echo yes || echo no)"
  [ "$(driver_of "$1")" = vfio-pci ] && [ -e "/dev/vfio/$g" ]
}

# unbind_vfio BDF: give the function back to its own driver (clear driver_override, unbind, reprobe);
# prints the driver it ends up with.
unbind_vfio() {
  d=/sys/bus/pci/devices/$1
  echo >"$d/driver_override"
  [ -e "$d/driver" ] && echo "$1" >"$d/driver/unbind"
  echo "$1" >/sys/bus/pci/drivers_probe
  echo "VFIO-UNBIND $1 driver=$(driver_of "$1")"
}

# allow_unsafe_msi: the RISC-V IOMMU driver does not remap MSIs, so VFIO (here through IOMMUFD) refuses
# devices unless the administrator accepts interrupts that are not isolated.
allow_unsafe_msi() {
  echo 1 >/sys/module/iommufd/parameters/allow_unsafe_interrupts
}

PT_BLK=$(find_pci 0x1af4 0x1042)
PT_NET=$(find_pci 0x1af4 0x1041)
PT_MAC=52:54:00:12:34:56
