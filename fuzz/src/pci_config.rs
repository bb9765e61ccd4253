//! Fuzz target `pci_config`: what the guest reaches of the emulated PCI side: ECAM accesses of any
//! offset and size to the root bus (host bridge and empty slots), BAR register sizing and moves, the
//! MSI-X table and its control bits, and the capability-list walker on arbitrary configuration space
//! (as read from a device). A capability walk must terminate and stay in the config space.

use std::sync::Arc;

use devices::MmioDevice;
use pci::capability::{capabilities, unlink};
use pci::{BarKind, BarRegisters, MsixCap, MsixTable, PciBus, PciConfigMmio};

use crate::input::{Builder, Input};

/// Runs one input: a 256-byte configuration space image (for the capability walker and the MSI-X
/// capability parser), BAR declarations, then operations: 0 ECAM access, 1 BAR register write and read,
/// 2 MSI-X table access, 3 MSI-X control write.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut config = [0u8; 256];
    let image = input.bytes(256);
    config[..image.len()].copy_from_slice(image);
    let caps = capabilities(&config);
    assert!(
        caps.len() <= 64,
        "more capabilities than fit in config space"
    );
    for c in &caps {
        assert!(
            c.offset >= 0x40,
            "capability in the header at {:#x}",
            c.offset
        );
        let _ = MsixCap::parse(&config, c.offset);
    }
    if let Some(c) = caps.first() {
        let mut copy = config;
        unlink(&mut copy, c.offset);
        let after = capabilities(&copy);
        assert_eq!(
            after.len() + 1,
            caps.len(),
            "unlink did not remove exactly one capability"
        );
        assert!(
            after.iter().all(|x| x.offset != c.offset),
            "the unlinked capability is still listed"
        );
    }

    let mut bars = BarRegisters::new();
    for index in 0..6 {
        let kind = match input.u8() % 3 {
            0 => continue,
            1 => BarKind::Mem32 {
                prefetchable: false,
            },
            _ => BarKind::Mem64 { prefetchable: true },
        };
        let size = 1u64 << (input.u8() % 64);
        let _ = bars.declare(index, kind, size, input.u64());
    }
    let mut table = MsixTable::new(input.u16() % 2049);
    let bus = Arc::new(PciBus::new());
    let mut ecam = PciConfigMmio(bus);

    while !input.is_empty() {
        match input.u8() % 4 {
            0 => {
                let offset = u64::from(input.u32() % (1 << 28));
                let size = [1, 2, 4, 8, 3][usize::from(input.u8() % 5)];
                if input.u8() & 1 == 0 {
                    let mut b = [0u8; 8];
                    ecam.read(offset, &mut b[..size]);
                } else {
                    let bytes = input.bytes(size);
                    ecam.write(offset, bytes);
                }
            }
            1 => {
                let reg = usize::from(input.u8() % 8);
                let _ = bars.write(reg, input.u32());
                let _ = bars.read(reg);
                for (_, bar) in bars.iter() {
                    assert_eq!(
                        bar.addr & (bar.size - 1),
                        0,
                        "BAR address not aligned to its size"
                    );
                }
            }
            2 => {
                let offset = u64::from(input.u32() % 0x1_0000);
                let size = [4, 8, 1, 2][usize::from(input.u8() % 4)];
                if input.u8() & 1 == 0 {
                    let mut b = [0u8; 8];
                    table.read(offset, &mut b[..size]);
                } else {
                    let bytes = input.bytes(size);
                    if let Some(v) = table.write(offset, bytes) {
                        assert!(v < table.len(), "changed vector {v} of {}", table.len());
                    }
                }
                let _ = table.message(usize::from(input.u16()));
            }
            _ => {
                table.set_control(input.u16());
                let _ = table.control_bits();
            }
        }
    }
}

/// Seeds: a config space with a PCIe and an MSI-X capability, a 64-bit and a 32-bit BAR, sizing of
/// BAR0 (all ones, then the address back), a vector programmed and MSI-X enabled, a host-bridge read.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut config = [0u8; 256];
    config[0x06] = 0x10; // status: capability list
    config[0x34] = 0x40;
    config[0x40] = 0x10; // PCIe
    config[0x41] = 0x80;
    config[0x80] = 0x11; // MSI-X, 4 vectors, table and PBA in BAR 0
    config[0x82] = 3;
    config[0x88] = 0x00;
    config[0x89] = 0x08;
    let mut b = Builder::default();
    b.bytes(&config);
    b.u8(2).u8(14).u64(0x1_0000_0000);
    b.u8(0);
    b.u8(1).u8(12).u64(0x4000_0000);
    b.u8(0).u8(0).u8(0);
    b.u16(4);
    b.u8(1).u8(0).u32(u32::MAX);
    b.u8(1).u8(0).u32(0x4000_0000);
    b.u8(2).u32(0).u8(0).u8(1).u32(0x2800_0000);
    b.u8(2).u32(8).u8(0).u8(1).u32(33);
    b.u8(2).u32(12).u8(0).u8(1).u32(0);
    b.u8(3).u16(0x8000);
    b.u8(0).u32(0).u8(2).u8(0);
    vec![b.0]
}
