//! The MMIO bus: guest physical address ranges mapped to device models.

use std::sync::{Arc, Mutex};

/// A device reached through guest MMIO accesses.
pub trait MmioDevice: Send {
    /// The guest reads `data.len()` bytes at `offset` into the device's range; fill `data`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` into the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device as the bus holds it, shared with whoever else drives it (e.g. an I/O thread).
pub type SharedMmioDevice = Arc<Mutex<dyn MmioDevice>>;

/// Errors from building the bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range overlaps one already on the bus, or is empty or wraps around.
    #[error("MMIO range {base:#x}+{len:#x} overlaps another device or is invalid")]
    Overlap {
        /// Base of the rejected range.
        base: u64,
        /// Length of the rejected range.
        len: u64,
    },
}

struct Entry {
    base: u64,
    len: u64,
    device: Arc<Mutex<dyn MmioDevice>>,
}

/// Address ranges mapped to devices; shared read-only by all vcpu threads once built.
#[derive(Default)]
pub struct MmioBus {
    entries: Vec<Entry>,
}

impl MmioBus {
    /// An empty bus.
    pub fn new() -> MmioBus {
        MmioBus::default()
    }

    /// Maps `device` at `base..base+len`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: Arc<Mutex<dyn MmioDevice>>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::Overlap { base, len })?;
        if self
            .entries
            .iter()
            .any(|e| base < e.base + e.len && e.base < end)
        {
            return Err(BusError::Overlap { base, len });
        }
        let at = self.entries.partition_point(|e| e.base < base);
        self.entries.insert(at, Entry { base, len, device });
        Ok(())
    }

    fn find(&self, addr: u64, size: usize) -> Option<(&Entry, u64)> {
        let i = self
            .entries
            .partition_point(|e| e.base <= addr)
            .checked_sub(1)?;
        let e = &self.entries[i];
        let offset = addr - e.base;
        // The whole access must fall inside the device.
        (offset.checked_add(size as u64)? <= e.len).then_some((e, offset))
    }

    /// Dispatches a read; returns false (and leaves `data` zeroed) when nothing is mapped there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        data.fill(0);
        match self.find(addr, data.len()) {
            Some((e, offset)) => {
                e.device
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; returns false when nothing is mapped there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((e, offset)) => {
                e.device
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }
    impl MmioDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8 + 1);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatch_by_range() {
        let a = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = MmioBus::new();
        bus.insert(0x1000, 0x100, a.clone()).unwrap();
        bus.insert(0x2000, 0x100, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        let mut buf = [0u8; 4];
        assert!(bus.read(0x1004, &mut buf));
        assert_eq!(buf, [5; 4]);
        assert!(bus.write(0x10fc, &[1, 2, 3, 4]));
        assert_eq!(a.lock().unwrap().writes, vec![(0xfc, vec![1, 2, 3, 4])]);
        // Unmapped, straddling the end, and below every device.
        assert!(!bus.read(0x1800, &mut buf));
        assert_eq!(buf, [0; 4]);
        assert!(!bus.write(0x10fe, &[0; 4]));
        assert!(!bus.read(0x10, &mut buf));
        assert!(!bus.read(u64::MAX - 1, &mut buf));
    }

    #[test]
    fn rejects_overlaps_and_bad_ranges() {
        let mut bus = MmioBus::new();
        let d = || Arc::new(Mutex::new(Recorder::default())) as Arc<Mutex<dyn MmioDevice>>;
        bus.insert(0x1000, 0x100, d()).unwrap();
        assert!(bus.insert(0x10ff, 1, d()).is_err());
        assert!(bus.insert(0xf00, 0x101, d()).is_err());
        assert!(bus.insert(0x5000, 0, d()).is_err());
        assert!(bus.insert(u64::MAX, 2, d()).is_err());
        bus.insert(0x1100, 0x100, d()).unwrap();
    }
}
