//! PCI for rvvmm: a PCIe host bridge (ECAM configuration space and the MMIO windows behind it), the
//! arch-neutral pieces every PCI device model needs (BAR registers, the capability list, the MSI-X table),
//! the checks a host device must pass before it can be handed to a guest, and VFIO passthrough devices.
//!
//! Everything but [`vfio`] is plain data and unit-tested on any host; [`vfio`] needs Linux's VFIO.

#![deny(missing_docs)]

pub mod bar;
pub mod capability;
pub mod config;
pub mod ecam;
pub mod host_bridge;
pub mod msix;
pub mod passthrough;
pub mod root;
#[cfg(target_os = "linux")]
pub mod vfio;
pub use bar::{Bar, BarKind, BarRegisters};
pub use msix::{MsiRouting, MsixCap, MsixTable};
pub use passthrough::{check_passthrough, PassthroughError, PassthroughTarget};
pub use root::{PciBus, PciConfigMmio, PciWindowMmio};

/// A device on the PCI bus, as the host bridge reaches it.
pub trait PciDevice: Send {
    /// The guest reads `data.len()` (1, 2 or 4) bytes of configuration space at `offset` (0..4096).
    fn config_read(&mut self, offset: u16, data: &mut [u8]);
    /// The guest writes `data` to configuration space at `offset`.
    fn config_write(&mut self, offset: u16, data: &[u8]);
    /// The memory BAR ranges this device wants to see accesses for, as `(bar, guest address, size)`:
    /// only those that are decoded (memory space enabled) and not mapped straight into the guest.
    fn trapped_ranges(&self) -> Vec<(usize, u64, u64)>;
    /// The guest reads `data.len()` bytes at `offset` into BAR `bar`.
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` into BAR `bar`.
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
}
