//! The host bridge at 00:00.0: a read-only type-0 header that tells the guest what the root complex is.

use crate::config::{read_dword_part, CLASS_REVISION, CONFIG_SPACE_SIZE, VENDOR_ID};
use crate::PciDevice;

/// Vendor ID of the host bridge (Red Hat, as QEMU's generic PCIe host bridge, which guests know).
pub const HOST_BRIDGE_VENDOR: u16 = 0x1b36;
/// Device ID of the host bridge (QEMU's "PCIe host bridge").
pub const HOST_BRIDGE_DEVICE: u16 = 0x0008;
/// Class code: bridge, host bridge.
pub const CLASS_HOST_BRIDGE: u32 = 0x06_00_00;

/// The host bridge function.
#[derive(Default)]
pub struct HostBridge;

impl HostBridge {
    fn dword(offset: u16) -> u32 {
        match offset & !3 {
            VENDOR_ID => u32::from(HOST_BRIDGE_VENDOR) | (u32::from(HOST_BRIDGE_DEVICE) << 16),
            CLASS_REVISION => CLASS_HOST_BRIDGE << 8,
            _ => 0,
        }
    }
}

impl PciDevice for HostBridge {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        if (offset as usize) < CONFIG_SPACE_SIZE {
            read_dword_part(Self::dword(offset), (offset & 3) as usize, data);
        } else {
            data.fill(0);
        }
    }

    fn config_write(&mut self, _offset: u16, _data: &[u8]) {}

    fn trapped_ranges(&self) -> Vec<(usize, u64, u64)> {
        Vec::new()
    }

    fn bar_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn bar_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
}
