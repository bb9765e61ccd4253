//! The root complex: PCI bus 0 with the host bridge in slot 0 and devices in the slots after it, reached
//! through two MMIO devices: the ECAM window (configuration space) and the memory windows (BARs whose
//! accesses rvvmm handles itself, such as an MSI-X table).

use std::sync::{Arc, Mutex};

use devices::MmioDevice;

use crate::config::valid_access;
use crate::ecam;
use crate::host_bridge::HostBridge;
use crate::PciDevice;

/// Device slots on bus 0.
pub const NUM_SLOTS: usize = 32;

/// A device as the bus holds it.
pub type SharedPciDevice = Arc<Mutex<dyn PciDevice>>;

/// Errors from populating the bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PciBusError {
    /// All 31 device slots are taken.
    #[error("no free PCI slot (at most {} devices)", NUM_SLOTS - 1)]
    Full,
}

/// Bus 0 of the guest's PCI hierarchy.
pub struct PciBus {
    slots: Vec<Option<SharedPciDevice>>,
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

impl PciBus {
    /// A bus with only the host bridge (00:00.0).
    pub fn new() -> PciBus {
        let mut slots: Vec<Option<SharedPciDevice>> = vec![None; NUM_SLOTS];
        slots[0] = Some(Arc::new(Mutex::new(HostBridge)));
        PciBus { slots }
    }

    /// Puts `device` in the first free slot and returns the slot number (its device number on bus 0).
    pub fn add(&mut self, device: SharedPciDevice) -> Result<u8, PciBusError> {
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(PciBusError::Full)?;
        self.slots[slot] = Some(device);
        Ok(slot as u8)
    }

    /// Slot numbers in use by devices other than the host bridge.
    pub fn device_slots(&self) -> Vec<u8> {
        (1..NUM_SLOTS)
            .filter(|&s| self.slots[s].is_some())
            .map(|s| s as u8)
            .collect()
    }

    fn device(&self, slot: u8) -> Option<&SharedPciDevice> {
        self.slots.get(usize::from(slot))?.as_ref()
    }

    /// The device a configuration access of `len` bytes at ECAM `offset` reaches, and the offset in its
    /// configuration space: bus 0, function 0 of a populated slot, a valid access size and alignment.
    fn config_target(&self, offset: u64, len: usize) -> Option<(&SharedPciDevice, u16)> {
        let a = ecam::decode(offset)?;
        if a.bus != 0 || a.function != 0 || !valid_access(a.offset, len) {
            return None;
        }
        Some((self.device(a.device)?, a.offset))
    }

    fn config_read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xff); // no device answers: all-ones, as on real hardware
        if let Some((d, reg)) = self.config_target(offset, data.len()) {
            d.lock()
                .unwrap_or_else(|p| p.into_inner())
                .config_read(reg, data);
        }
    }

    fn config_write(&self, offset: u64, data: &[u8]) {
        if let Some((d, reg)) = self.config_target(offset, data.len()) {
            d.lock()
                .unwrap_or_else(|p| p.into_inner())
                .config_write(reg, data);
        }
    }

    /// Finds the device and BAR that trap `addr`..`addr+len`, and calls `f` with the offset into the BAR.
    fn with_bar(
        &self,
        addr: u64,
        len: usize,
        f: &mut dyn FnMut(&mut dyn PciDevice, usize, u64),
    ) -> bool {
        for d in self.slots.iter().flatten() {
            let mut dev = d.lock().unwrap_or_else(|p| p.into_inner());
            let hit = dev.trapped_ranges().into_iter().find(|&(_, start, size)| {
                addr >= start
                    && addr
                        .checked_add(len as u64)
                        .is_some_and(|end| end <= start.saturating_add(size))
            });
            if let Some((bar, start, _)) = hit {
                f(&mut *dev, bar, addr - start);
                return true;
            }
        }
        false
    }
}

/// The ECAM window as an MMIO device.
pub struct PciConfigMmio(pub Arc<PciBus>);

impl MmioDevice for PciConfigMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.config_read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.config_write(offset, data);
    }
}

/// A PCI memory window (its guest base address given) as an MMIO device: accesses go to the BAR that
/// covers them; accesses no BAR claims read all-ones and are dropped.
pub struct PciWindowMmio {
    /// The bus.
    pub bus: Arc<PciBus>,
    /// Guest physical address of the window's start.
    pub base: u64,
}

impl MmioDevice for PciWindowMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let addr = self.base + offset;
        let len = data.len();
        if !self
            .bus
            .with_bar(addr, len, &mut |d, bar, off| d.bar_read(bar, off, data))
        {
            data.fill(0xff);
            devices::log_limited!(
                log::Level::Debug,
                "pci: read of {len} bytes at {addr:#x}: no BAR there"
            );
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let addr = self.base + offset;
        if !self.bus.with_bar(addr, data.len(), &mut |d, bar, off| {
            d.bar_write(bar, off, data)
        }) {
            devices::log_limited!(
                log::Level::Debug,
                "pci: write of {} bytes at {addr:#x}: no BAR there",
                data.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device with one trapped BAR at 0x4000_0000 (0x100 bytes) that records accesses.
    #[derive(Default)]
    struct Fake {
        config_writes: Vec<(u16, Vec<u8>)>,
        bar_writes: Vec<(usize, u64, Vec<u8>)>,
    }

    impl PciDevice for Fake {
        fn config_read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn config_write(&mut self, offset: u16, data: &[u8]) {
            self.config_writes.push((offset, data.to_vec()));
        }
        fn trapped_ranges(&self) -> Vec<(usize, u64, u64)> {
            vec![(2, 0x4000_0000, 0x100)]
        }
        fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.bar_writes.push((bar, offset, data.to_vec()));
        }
    }

    fn bus_with_fake() -> (Arc<PciBus>, Arc<Mutex<Fake>>) {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let mut bus = PciBus::new();
        assert_eq!(bus.add(fake.clone()).unwrap(), 1);
        (Arc::new(bus), fake)
    }

    #[test]
    fn ecam_reaches_the_host_bridge_and_the_device() {
        let (bus, fake) = bus_with_fake();
        let mut ecam = PciConfigMmio(bus.clone());
        let mut id = [0u8; 4];
        ecam.read(0, &mut id);
        assert_eq!(u32::from_le_bytes(id), 0x0008_1b36);
        let mut b = [0u8; 2];
        ecam.read((1 << 15) | 0x10, &mut b);
        assert_eq!(b, [0x10, 0x10]);
        ecam.write((1 << 15) | 0x4, &[7, 0]);
        assert_eq!(fake.lock().unwrap().config_writes, vec![(4, vec![7, 0])]);
        assert_eq!(bus.device_slots(), vec![1]);
    }

    #[test]
    fn empty_slots_other_buses_functions_and_bad_accesses_read_all_ones() {
        let (bus, fake) = bus_with_fake();
        let mut ecam = PciConfigMmio(bus);
        for offset in [
            2 << 15,
            1 << 20,
            (1 << 15) | (1 << 12),
            (1 << 15) | 0x2,
            1 << 28,
        ] {
            let mut b = [0u8; 4];
            ecam.read(offset, &mut b);
            assert_eq!(b, [0xff; 4], "offset {offset:#x}");
            ecam.write(offset, &[1, 2, 3, 4]);
        }
        let mut b = [0u8; 8];
        ecam.read(1 << 15, &mut b);
        assert_eq!(b, [0xff; 8]);
        assert!(fake.lock().unwrap().config_writes.is_empty());
    }

    #[test]
    fn window_routes_to_the_trapping_bar() {
        let (bus, fake) = bus_with_fake();
        let mut w = PciWindowMmio {
            bus,
            base: 0x4000_0000,
        };
        let mut b = [0u8; 4];
        w.read(0x20, &mut b);
        assert_eq!(b, [0x20; 4]);
        w.write(0xfc, &[1, 2, 3, 4]);
        assert_eq!(
            fake.lock().unwrap().bar_writes,
            vec![(2, 0xfc, vec![1, 2, 3, 4])]
        );
        // Straddling the end of the BAR, or outside it: nobody.
        w.read(0xfe, &mut b);
        assert_eq!(b, [0xff; 4]);
        w.write(0x1000, &[1]);
        assert_eq!(fake.lock().unwrap().bar_writes.len(), 1);
    }

    #[test]
    fn the_bus_fills_up() {
        let mut bus = PciBus::new();
        for i in 1..NUM_SLOTS {
            assert_eq!(
                bus.add(Arc::new(Mutex::new(HostBridge))).unwrap() as usize,
                i
            );
        }
        assert_eq!(
            bus.add(Arc::new(Mutex::new(HostBridge))),
            Err(PciBusError::Full)
        );
    }
}
