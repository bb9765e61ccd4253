//! A host PCI device passed through to the guest with VFIO (Linux only).
//!
//! The device's own configuration space is read and written through VFIO, except what a VMM must
//! virtualize: the BAR registers (the guest's addresses are not the host's), the expansion ROM (hidden),
//! the interrupt pin (INTx is not offered), the MSI capability (unlinked: guests use MSI-X) and the MSI-X
//! enable/mask bits (which turn into VFIO_DEVICE_SET_IRQS). Memory BARs that VFIO lets rvvmm mmap are
//! mapped straight into the guest as KVM memory slots, page by page except the pages holding the MSI-X
//! table and PBA, which rvvmm emulates. Each MSI-X vector is an eventfd that VFIO signals and KVM turns
//! into the guest's MSI through an irqfd and an MSI route, so interrupts never pass through rvvmm.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use vfio_bindings::bindings::vfio::{VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};
use vm_allocator::{AddressAllocator, AllocPolicy};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::bar::{BarKind, BarRegisters};
use crate::capability::{capabilities, CAP_ID_MSI, CAP_ID_MSIX};
use crate::config::{
    BAR0, COMMAND, COMMAND_MEMORY, CONFIG_SPACE_SIZE, INTERRUPT_PIN, NUM_BARS, ROM_BAR,
};
use crate::msix::{MsiRouting, MsixCap, MsixTable};
use crate::passthrough::PassthroughTarget;
use crate::PciDevice;

/// What a passthrough device needs from the VM: memory slots for BARs, and MSI routes and irqfds.
pub trait PassthroughVm: MsiRouting {
    /// Maps `size` bytes of host memory at `host_addr` into the guest at `guest_addr`; returns a handle
    /// for [`PassthroughVm::unmap_memory`].
    ///
    /// # Safety
    /// `host_addr..host_addr+size` must stay mapped until `unmap_memory` is called with the handle.
    unsafe fn map_memory(&self, guest_addr: u64, size: u64, host_addr: u64)
        -> std::io::Result<u32>;
    /// Removes a mapping made by [`PassthroughVm::map_memory`].
    fn unmap_memory(&self, handle: u32) -> std::io::Result<()>;
}

/// Errors from setting up a passthrough device.
#[derive(Debug, thiserror::Error)]
pub enum VfioPciError {
    /// VFIO refused the container, group or device.
    #[error("--device {bdf}: VFIO: {source}")]
    Vfio {
        /// The device.
        bdf: String,
        /// What VFIO said.
        source: vfio_ioctls::VfioError,
    },
    /// The host refuses the device because it cannot isolate its MSIs.
    #[error("--device {bdf}: the host kernel refuses the device because it cannot isolate its MSIs (no interrupt remapping, as with the RISC-V IOMMU today); if you trust the device, allow it with iommufd.allow_unsafe_interrupts=1 (or vfio_iommu_type1.allow_unsafe_interrupts=1) on the host's kernel command line or in /sys/module/*/parameters/allow_unsafe_interrupts")]
    UnsafeInterrupts {
        /// The device.
        bdf: String,
    },
    /// No room for a BAR in the guest's PCI windows.
    #[error(
        "--device {bdf}: no room for BAR {bar} ({size:#x} bytes) in the guest's PCI memory window"
    )]
    NoBarSpace {
        /// The device.
        bdf: String,
        /// The BAR.
        bar: usize,
        /// Its size.
        size: u64,
    },
    /// A system call failed.
    #[error("--device {bdf}: {what}: {source}")]
    Io {
        /// The device.
        bdf: String,
        /// What rvvmm was doing.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The guest's PCI memory windows, from which BARs get their addresses before boot.
pub struct BarAllocator {
    mmio32: AddressAllocator,
    mmio64: AddressAllocator,
    windows: Vec<(u64, u64)>,
}

impl BarAllocator {
    /// Allocators over the 32-bit window `mmio32` and the 64-bit window `mmio64`, each (base, size).
    pub fn new(mmio32: (u64, u64), mmio64: (u64, u64)) -> Option<BarAllocator> {
        Some(BarAllocator {
            mmio32: AddressAllocator::new(mmio32.0, mmio32.1).ok()?,
            mmio64: AddressAllocator::new(mmio64.0, mmio64.1).ok()?,
            windows: vec![mmio32, mmio64],
        })
    }

    /// The windows (base, size): 32-bit, then 64-bit.
    pub fn windows(&self) -> &[(u64, u64)] {
        &self.windows
    }

    /// A naturally aligned address for a BAR of `size` bytes: 64-bit BARs go to the 64-bit window.
    pub fn allocate(&mut self, kind: BarKind, size: u64) -> Option<u64> {
        let alloc = if kind.is_64bit() {
            &mut self.mmio64
        } else {
            &mut self.mmio32
        };
        alloc
            .allocate(size, size.max(4096), AllocPolicy::FirstMatch)
            .ok()
            .map(|r| r.start())
    }
}

/// An mmap of a BAR region of the device fd.
struct BarMapping {
    host: *mut libc::c_void,
    size: usize,
}

// SAFETY: the mapping is plain shared device memory; the pointer is only handed to KVM, never dereferenced.
unsafe impl Send for BarMapping {}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: `host`/`size` is a mapping this struct made and owns.
        unsafe { libc::munmap(self.host, self.size) };
    }
}

/// One memory BAR of the device.
struct BarState {
    region: u32,
    size: u64,
    mapping: Option<BarMapping>,
    /// Page-aligned (offset, len) pieces of the BAR mapped straight into the guest.
    direct: Vec<(u64, u64)>,
    /// KVM slots of the pieces now mapped.
    slots: Vec<u32>,
}

/// MSI-X state: the emulated table, and one eventfd (and GSI) per vector.
struct Msix {
    cap: MsixCap,
    table: MsixTable,
    eventfds: Vec<EventFd>,
    gsi_base: u32,
    vfio_enabled: bool,
}

/// A host PCI function handed to the guest.
pub struct VfioPciDevice {
    bdf: String,
    device: Arc<VfioDevice>,
    vm: Arc<dyn PassthroughVm>,
    bars: BarRegisters,
    bar_state: BTreeMap<usize, BarState>,
    msix: Option<Msix>,
    /// Configuration space bytes rvvmm answers itself (capability links it rewrote).
    overrides: BTreeMap<u16, u8>,
    memory_enabled: bool,
    page_size: u64,
    /// The guest's PCI memory windows (base, size).
    windows: Vec<(u64, u64)>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Splits a BAR of `size` bytes into page-aligned pieces that avoid `holes` (offset, len), each hole
/// widened to whole pages.
pub fn direct_pieces(size: u64, holes: &[(u64, u64)], page: u64) -> Vec<(u64, u64)> {
    if size < page {
        return Vec::new();
    }
    let mut holes: Vec<(u64, u64)> = holes
        .iter()
        .filter(|h| h.1 > 0)
        .map(|&(off, len)| {
            let start = off / page * page;
            let end = (off.saturating_add(len)).div_ceil(page) * page;
            (start, end.min(size))
        })
        .collect();
    holes.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for (start, end) in holes {
        if start > at {
            pieces.push((at, start - at));
        }
        at = at.max(end);
    }
    if at < size {
        pieces.push((at, size - at));
    }
    pieces
}

impl VfioPciDevice {
    /// Opens `target` through `container`, places its BARs with `alloc`, and gives its MSI-X vectors the
    /// GSIs from `gsi_base` on (see [`VfioPciDevice::num_vectors`]).
    pub fn new(
        target: &PassthroughTarget,
        container: Arc<VfioContainer>,
        vm: Arc<dyn PassthroughVm>,
        alloc: &mut BarAllocator,
        gsi_base: u32,
    ) -> Result<VfioPciDevice, VfioPciError> {
        let bdf = target.bdf.clone();
        let device = VfioDevice::new(&target.sysfs_path, container as Arc<dyn VfioOps>, false)
            .map_err(|source| {
                // EPERM on the device fd: the kernel will not hand out a device whose MSIs it cannot
                // isolate (no interrupt remapping), unless the administrator allows it.
                if source.to_string().contains("Operation not permitted") {
                    VfioPciError::UnsafeInterrupts { bdf: bdf.clone() }
                } else {
                    VfioPciError::Vfio {
                        bdf: bdf.clone(),
                        source,
                    }
                }
            })?;
        let device = Arc::new(device);
        let mut config = vec![0u8; CONFIG_SPACE_SIZE];
        device.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut config, 0);
        let page_size = page_size();

        let caps = capabilities(&config);
        let msix_cap = caps
            .iter()
            .find(|c| c.id == CAP_ID_MSIX)
            .and_then(|c| MsixCap::parse(&config, c.offset));
        // Hide MSI: the guest must use MSI-X, whose table rvvmm emulates. Record the rewritten link byte.
        let mut overrides = BTreeMap::new();
        if let Some(msi) = caps.iter().find(|c| c.id == CAP_ID_MSI) {
            let mut patched = config.clone();
            if crate::capability::unlink(&mut patched, msi.offset) {
                for (i, (a, b)) in config.iter().zip(&patched).enumerate() {
                    if a != b {
                        overrides.insert(i as u16, *b);
                    }
                }
            }
        }
        // No INTx: the guest sees no interrupt pin.
        overrides.insert(INTERRUPT_PIN, 0);

        let mut bars = BarRegisters::new();
        let mut bar_state = BTreeMap::new();
        let mut index = 0;
        while index < NUM_BARS {
            let reg = u32::from_le_bytes(
                config[BAR0 as usize + 4 * index..BAR0 as usize + 4 * index + 4]
                    .try_into()
                    .unwrap_or([0; 4]),
            );
            let region = index as u32;
            let size = device.get_region_size(region);
            let kind = BarKind::from_register(reg);
            let step = if kind.is_some_and(BarKind::is_64bit) {
                2
            } else {
                1
            };
            let (Some(kind), true) = (kind, size.is_power_of_two()) else {
                if size > 0 && kind.is_none() {
                    log::warn!(
                        "--device {bdf}: BAR {index} is an I/O BAR; not offered to the guest"
                    );
                }
                index += step;
                continue;
            };
            let size = size.max(16);
            let addr = alloc
                .allocate(kind, size)
                .ok_or_else(|| VfioPciError::NoBarSpace {
                    bdf: bdf.clone(),
                    bar: index,
                    size,
                })?;
            if bars.declare(index, kind, size, addr).is_err() {
                index += step;
                continue;
            }
            let mut holes = Vec::new();
            if let Some(m) = &msix_cap {
                if usize::from(m.table_bar) == index {
                    holes.push((u64::from(m.table_offset), m.table_len()));
                }
                if usize::from(m.pba_bar) == index {
                    holes.push((u64::from(m.pba_offset), m.pba_len()));
                }
            }
            let mappable = device.get_region_flags(region) & VFIO_REGION_INFO_FLAG_MMAP != 0;
            let mapping = if mappable && size >= page_size {
                Self::mmap_region(&device, region, size).map_err(|source| VfioPciError::Io {
                    bdf: bdf.clone(),
                    what: format!("mmap of BAR {index}"),
                    source,
                })?
            } else {
                None
            };
            let direct = if mapping.is_some() {
                direct_pieces(size, &holes, page_size)
            } else {
                Vec::new()
            };
            log::info!(
                "--device {bdf}: BAR {index} {kind:?} {size:#x} bytes at {addr:#x}, {} mapped into the guest",
                if direct.is_empty() { "none" } else if holes.is_empty() { "all" } else { "all but the MSI-X pages" }
            );
            bar_state.insert(
                index,
                BarState {
                    region,
                    size,
                    mapping,
                    direct,
                    slots: Vec::new(),
                },
            );
            index += step;
        }

        let msix = match msix_cap {
            Some(cap) => {
                let n = usize::from(cap.table_size);
                let mut eventfds = Vec::with_capacity(n);
                for v in 0..n {
                    let evt =
                        EventFd::new(libc::EFD_NONBLOCK).map_err(|source| VfioPciError::Io {
                            bdf: bdf.clone(),
                            what: "eventfd".into(),
                            source,
                        })?;
                    vm.register_irqfd(&evt, gsi_base + v as u32)
                        .map_err(|source| VfioPciError::Io {
                            bdf: bdf.clone(),
                            what: format!("irqfd for MSI-X vector {v}"),
                            source,
                        })?;
                    eventfds.push(evt);
                }
                Some(Msix {
                    cap,
                    table: MsixTable::new(cap.table_size),
                    eventfds,
                    gsi_base,
                    vfio_enabled: false,
                })
            }
            None => {
                log::warn!("--device {bdf}: no MSI-X capability; its interrupts will not reach the guest (INTx and MSI passthrough are not supported)");
                None
            }
        };
        let command = u16::from_le_bytes([config[COMMAND as usize], config[COMMAND as usize + 1]]);
        let mut dev = VfioPciDevice {
            bdf,
            device,
            vm,
            bars,
            bar_state,
            msix,
            overrides,
            memory_enabled: command & COMMAND_MEMORY != 0,
            page_size,
            windows: alloc.windows.clone(),
        };
        dev.remap_all();
        Ok(dev)
    }

    fn mmap_region(
        device: &VfioDevice,
        region: u32,
        size: u64,
    ) -> std::io::Result<Option<BarMapping>> {
        let offset = device.get_region_offset(region);
        // SAFETY: a new shared mapping of the device fd at the region's offset; nothing else uses that range.
        let host = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                device.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if host == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Some(BarMapping {
            host,
            size: size as usize,
        }))
    }

    /// MSI-X vectors of the device (the GSIs it uses are `gsi_base..gsi_base + num_vectors`).
    pub fn num_vectors(&self) -> u32 {
        self.msix.as_ref().map_or(0, |m| m.eventfds.len() as u32)
    }

    /// The device's address.
    pub fn bdf(&self) -> &str {
        &self.bdf
    }

    /// Reads the number of MSI-X vectors a device has before it is opened for good (for GSI allocation).
    pub fn msix_vectors_of(sysfs_path: &Path) -> u32 {
        let Ok(config) = std::fs::read(sysfs_path.join("config")) else {
            return 0;
        };
        capabilities(&config)
            .iter()
            .find(|c| c.id == CAP_ID_MSIX)
            .and_then(|c| MsixCap::parse(&config, c.offset))
            .map_or(0, |m| u32::from(m.table_size))
    }

    fn unmap_bar(&mut self, index: usize) {
        if let Some(state) = self.bar_state.get_mut(&index) {
            for slot in state.slots.drain(..) {
                if let Err(e) = self.vm.unmap_memory(slot) {
                    log::error!("--device {}: unmap of BAR {index}: {e}", self.bdf);
                }
            }
        }
    }

    fn map_bar(&mut self, index: usize) {
        let Some(bar) = self.bars.get(index) else {
            return;
        };
        let Some(state) = self.bar_state.get_mut(&index) else {
            return;
        };
        let Some(mapping) = &state.mapping else {
            return;
        };
        // Only an address inside the windows (not a sizing pattern) and page-aligned is mapped.
        if bar.addr % self.page_size != 0 || bar.addr.checked_add(state.size).is_none() {
            return;
        }
        for &(off, len) in &state.direct {
            let host = mapping.host as u64 + off;
            // SAFETY: `mapping` stays alive (it is only dropped with the device, after unmap_bar).
            match unsafe { self.vm.map_memory(bar.addr + off, len, host) } {
                Ok(slot) => state.slots.push(slot),
                Err(e) => devices::log_limited!(
                    log::Level::Error,
                    "--device {}: cannot map BAR {index} at {:#x}: {e}",
                    self.bdf,
                    bar.addr + off
                ),
            }
        }
    }

    fn remap_all(&mut self) {
        let indexes: Vec<usize> = self.bar_state.keys().copied().collect();
        for i in indexes {
            self.unmap_bar(i);
            if self.memory_enabled && self.in_window(i) {
                self.map_bar(i);
            }
        }
    }

    /// Whether BAR `i` lies inside one of the guest's PCI windows (not, e.g., where sizing left it).
    fn in_window(&self, i: usize) -> bool {
        self.bars.get(i).is_some_and(|b| b.within(&self.windows))
    }

    fn update_vector(&mut self, vector: usize, was_deliverable: bool) {
        let Some(m) = &self.msix else { return };
        let gsi = m.gsi_base + vector as u32;
        let message = m.table.message(vector);
        if let Err(e) = self.vm.set_msi_route(gsi, message) {
            devices::log_limited!(
                log::Level::Error,
                "--device {}: MSI route for vector {vector}: {e}",
                self.bdf
            );
        }
        // A vector that just became deliverable may have fired while masked: deliver once (a spurious
        // interrupt is harmless, a lost one can hang a driver).
        if message.is_some() && !was_deliverable {
            let _ = m.eventfds[vector].write(1);
        }
    }

    fn set_msix_control(&mut self, control: u16) {
        let Some(m) = &mut self.msix else { return };
        let before: Vec<bool> = (0..m.table.len())
            .map(|v| m.table.message(v).is_some())
            .collect();
        if !m.table.set_control(control) {
            return;
        }
        let want = m.table.enabled();
        if want != m.vfio_enabled {
            let result = if want {
                self.device.enable_msix(m.eventfds.iter().collect())
            } else {
                self.device.disable_msix()
            };
            match result {
                Ok(()) => m.vfio_enabled = want,
                Err(e) => log::error!(
                    "--device {}: cannot {} MSI-X: {e}",
                    self.bdf,
                    if want { "enable" } else { "disable" }
                ),
            }
        }
        for (v, was) in before.into_iter().enumerate() {
            self.update_vector(v, was);
        }
    }

    fn msix_control_offset(&self) -> Option<u16> {
        self.msix.as_ref().map(|m| u16::from(m.cap.offset) + 2)
    }
}

impl PciDevice for VfioPciDevice {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        let dword = offset & !3;
        if self.bars.config_read(offset, data) {
            return;
        }
        if dword == ROM_BAR {
            data.fill(0);
            return;
        }
        self.device
            .region_read(VFIO_PCI_CONFIG_REGION_INDEX, data, u64::from(offset));
        for (i, b) in data.iter_mut().enumerate() {
            let at = offset + i as u16;
            if let Some(v) = self.overrides.get(&at) {
                *b = *v;
            }
        }
        // MSI-X enable and function mask as the guest set them.
        if let (Some(ctl), Some(m)) = (self.msix_control_offset(), &self.msix) {
            let bits = m.table.control_bits().to_le_bytes();
            for (i, b) in data.iter_mut().enumerate() {
                let at = offset + i as u16;
                if at == ctl + 1 {
                    *b = (*b & 0x3f) | bits[1];
                }
            }
        }
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) {
        let dword = offset & !3;
        let shift = (offset & 3) as usize;
        if let Some(moved) = self.bars.config_write(offset, data) {
            if let Some(m) = moved {
                devices::log_limited!(
                    log::Level::Debug,
                    "--device {}: BAR {} moves {:#x} -> {:#x}",
                    self.bdf,
                    m.bar,
                    m.old,
                    m.new
                );
                self.unmap_bar(m.bar);
                if self.memory_enabled && self.in_window(m.bar) {
                    self.map_bar(m.bar);
                }
            }
            return;
        }
        if dword == ROM_BAR || self.overrides.contains_key(&offset) {
            return;
        }
        // MSI-X message control: enable/mask are rvvmm's; the rest is read-only.
        if let Some(ctl) = self.msix_control_offset() {
            let hits = (offset..offset + data.len() as u16).contains(&(ctl + 1));
            if hits {
                let mut bytes = [0u8; 2];
                self.config_read(ctl, &mut bytes);
                for (i, b) in data.iter().enumerate() {
                    let at = offset + i as u16;
                    if at == ctl || at == ctl + 1 {
                        bytes[usize::from(at - ctl)] = *b;
                    }
                }
                self.set_msix_control(u16::from_le_bytes(bytes));
                return;
            }
        }
        self.device
            .region_write(VFIO_PCI_CONFIG_REGION_INDEX, data, u64::from(offset));
        if dword == COMMAND && shift == 0 {
            let enabled = data[0] as u16 & COMMAND_MEMORY != 0;
            if enabled != self.memory_enabled {
                self.memory_enabled = enabled;
                self.remap_all();
            }
        }
    }

    fn trapped_ranges(&self) -> Vec<(usize, u64, u64)> {
        if !self.memory_enabled {
            return Vec::new();
        }
        self.bar_state
            .iter()
            .filter_map(|(&i, s)| self.bars.get(i).map(|b| (i, b.addr, s.size)))
            .collect()
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if let Some(m) = &self.msix {
            let table = u64::from(m.cap.table_offset);
            if usize::from(m.cap.table_bar) == bar
                && (table..table + m.cap.table_len()).contains(&offset)
            {
                m.table.read(offset - table, data);
                return;
            }
            let pba = u64::from(m.cap.pba_offset);
            if usize::from(m.cap.pba_bar) == bar && (pba..pba + m.cap.pba_len()).contains(&offset) {
                // Pending bits are not tracked: vectors fire (or are replayed on unmask) instead.
                data.fill(0);
                return;
            }
        }
        match self.bar_state.get(&bar) {
            Some(s) if offset + data.len() as u64 <= s.size => {
                self.device.region_read(s.region, data, offset)
            }
            _ => data.fill(0xff),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if let Some(m) = &mut self.msix {
            let table = u64::from(m.cap.table_offset);
            if usize::from(m.cap.table_bar) == bar
                && (table..table + m.cap.table_len()).contains(&offset)
            {
                let vector = ((offset - table) / crate::msix::MSIX_ENTRY_SIZE) as usize;
                let was = m.table.message(vector).is_some();
                if m.table.write(offset - table, data).is_some() {
                    self.update_vector(vector, was);
                }
                return;
            }
            let pba = u64::from(m.cap.pba_offset);
            if usize::from(m.cap.pba_bar) == bar && (pba..pba + m.cap.pba_len()).contains(&offset) {
                return;
            }
        }
        if let Some(s) = self.bar_state.get(&bar) {
            if offset + data.len() as u64 <= s.size {
                log::trace!("{}: BAR {bar} write {offset:#x} {data:x?}", self.bdf);
                self.device.region_write(s.region, data, offset);
            }
        }
    }
}

impl Drop for VfioPciDevice {
    fn drop(&mut self) {
        let indexes: Vec<usize> = self.bar_state.keys().copied().collect();
        for i in indexes {
            self.unmap_bar(i);
        }
        if self.msix.as_ref().is_some_and(|m| m.vfio_enabled) {
            let _ = self.device.disable_msix();
        }
    }
}

/// Maps all of `mem` for device DMA through `container` (IOVA = guest physical address).
pub fn map_guest_memory(
    container: &VfioContainer,
    mem: &GuestMemoryMmap,
) -> Result<(), vfio_ioctls::VfioError> {
    for region in mem.iter() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|_| vfio_ioctls::VfioError::VfioExtension)?;
        // SAFETY: guest RAM stays mapped for the VM's lifetime, and rvvmm only touches it through
        // vm-memory's volatile accessors, which is what concurrent DMA requires.
        unsafe { container.vfio_dma_map(region.start_addr().0, region.len() as usize, host) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_pieces_skip_the_msix_pages() {
        // A 16 KiB BAR with the table at 0x2000 (0x30 bytes) and the PBA at 0x3800.
        assert_eq!(
            direct_pieces(0x4000, &[(0x2000, 0x30), (0x3800, 8)], 0x1000),
            vec![(0, 0x2000)]
        );
        assert_eq!(direct_pieces(0x4000, &[], 0x1000), vec![(0, 0x4000)]);
        // Table in the first page only.
        assert_eq!(
            direct_pieces(0x4000, &[(0, 0x100)], 0x1000),
            vec![(0x1000, 0x3000)]
        );
        // A BAR smaller than a page cannot be mapped.
        assert!(direct_pieces(0x800, &[], 0x1000).is_empty());
        // The whole BAR is MSI-X.
        assert!(direct_pieces(0x1000, &[(0, 0x30), (0x800, 8)], 0x1000).is_empty());
    }

    #[test]
    fn bar_allocator_aligns_and_separates_windows() {
        let mut a =
            BarAllocator::new((0x4000_0000, 0x4000_0000), (0x4_0000_0000, 0x4_0000_0000)).unwrap();
        let x = a
            .allocate(
                BarKind::Mem32 {
                    prefetchable: false,
                },
                0x1000,
            )
            .unwrap();
        let y = a
            .allocate(
                BarKind::Mem32 {
                    prefetchable: false,
                },
                0x10_0000,
            )
            .unwrap();
        assert_eq!(x, 0x4000_0000);
        assert_eq!(y % 0x10_0000, 0);
        assert_ne!(x, y);
        let z = a
            .allocate(BarKind::Mem64 { prefetchable: true }, 0x4000)
            .unwrap();
        assert_eq!(z, 0x4_0000_0000);
        assert_eq!(
            a.allocate(
                BarKind::Mem32 {
                    prefetchable: false
                },
                0x8000_0000
            ),
            None
        );
    }
}
