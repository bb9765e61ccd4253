//! MSI-X: the capability (where the table and the PBA live) and an emulated table. The guest programs
//! each vector's message (address, data) and mask in the table; rvvmm turns each unmasked vector of an
//! enabled function into an interrupt route of the host's interrupt controller.

/// Message control: MSI-X enable.
pub const MSIX_ENABLE: u16 = 1 << 15;
/// Message control: every vector of the function masked.
pub const MSIX_FUNCTION_MASK: u16 = 1 << 14;
/// Size of one table entry.
pub const MSIX_ENTRY_SIZE: u64 = 16;
/// Vector control: masked.
const VECTOR_MASKED: u32 = 1;

/// What a device model with MSI-X needs from the hypervisor: an MSI route per vector's interrupt number
/// (GSI) and eventfds that raise a GSI inside the hypervisor (irqfds), so a vector fires without a
/// system call into the guest's irqchip.
pub trait MsiRouting: Send + Sync {
    /// Routes interrupt `gsi` to the MSI `message` (address, data), or removes its route (`None`).
    fn set_msi_route(&self, gsi: u32, message: Option<(u64, u32)>) -> std::io::Result<()>;
    /// Makes a write to `evt` raise interrupt `gsi` inside the hypervisor.
    fn register_irqfd(&self, evt: &vmm_sys_util::eventfd::EventFd, gsi: u32)
        -> std::io::Result<()>;
}

/// Where an MSI-X capability puts its table and pending bit array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixCap {
    /// Offset of the capability in configuration space.
    pub offset: u8,
    /// Number of vectors (1..=2048).
    pub table_size: u16,
    /// BAR that holds the table.
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
    /// BAR that holds the PBA.
    pub pba_bar: u8,
    /// Offset of the PBA in that BAR.
    pub pba_offset: u32,
}

impl MsixCap {
    /// Reads the capability at `offset` of `config` (at least 256 bytes); `None` if it does not fit or names
    /// a BAR that cannot exist.
    pub fn parse(config: &[u8], offset: u8) -> Option<MsixCap> {
        let at = offset as usize;
        let bytes = config.get(at..at + 12)?;
        let control = u16::from_le_bytes([bytes[2], bytes[3]]);
        let table = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let pba = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let cap = MsixCap {
            offset,
            table_size: (control & 0x7ff) + 1,
            table_bar: (table & 7) as u8,
            table_offset: table & !7,
            pba_bar: (pba & 7) as u8,
            pba_offset: pba & !7,
        };
        (cap.table_bar < 6 && cap.pba_bar < 6).then_some(cap)
    }

    /// Bytes the table occupies.
    pub fn table_len(&self) -> u64 {
        u64::from(self.table_size) * MSIX_ENTRY_SIZE
    }

    /// Bytes the PBA occupies (one bit per vector, in 64-bit words).
    pub fn pba_len(&self) -> u64 {
        u64::from(self.table_size).div_ceil(64) * 8
    }
}

/// One vector's message as the guest programmed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsixEntry {
    /// Message address (low dword).
    pub addr_lo: u32,
    /// Message address (high dword).
    pub addr_hi: u32,
    /// Message data.
    pub data: u32,
    /// Vector control (bit 0: masked).
    pub control: u32,
}

/// An emulated MSI-X table and the function-level state of its capability.
#[derive(Clone, Debug)]
pub struct MsixTable {
    entries: Vec<MsixEntry>,
    enabled: bool,
    function_masked: bool,
}

impl MsixTable {
    /// A table of `size` vectors, all masked (their reset state).
    pub fn new(size: u16) -> MsixTable {
        MsixTable {
            entries: vec![
                MsixEntry {
                    control: VECTOR_MASKED,
                    ..MsixEntry::default()
                };
                usize::from(size)
            ],
            enabled: false,
            function_masked: false,
        }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no vectors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether MSI-X is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Applies a write of the capability's message control register; returns whether enable or the
    /// function mask changed.
    pub fn set_control(&mut self, control: u16) -> bool {
        let enabled = control & MSIX_ENABLE != 0;
        let masked = control & MSIX_FUNCTION_MASK != 0;
        let changed = enabled != self.enabled || masked != self.function_masked;
        self.enabled = enabled;
        self.function_masked = masked;
        changed
    }

    /// The enable and function-mask bits as message control holds them.
    pub fn control_bits(&self) -> u16 {
        (if self.enabled { MSIX_ENABLE } else { 0 })
            | (if self.function_masked {
                MSIX_FUNCTION_MASK
            } else {
                0
            })
    }

    /// The guest reads the table at `offset`: 4- or 8-byte aligned accesses; anything else reads all-ones.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        let len = data.len();
        if !(len == 4 || len == 8) || !offset.is_multiple_of(len as u64) {
            return;
        }
        for (i, chunk) in data.chunks_mut(4).enumerate() {
            if let Some(v) = self.dword(offset + 4 * i as u64) {
                chunk.copy_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn dword(&self, offset: u64) -> Option<u32> {
        let e = self.entries.get((offset / MSIX_ENTRY_SIZE) as usize)?;
        Some(match offset % MSIX_ENTRY_SIZE {
            0 => e.addr_lo,
            4 => e.addr_hi,
            8 => e.data,
            _ => e.control,
        })
    }

    /// The guest writes the table at `offset`; returns the vector whose entry changed, if any. Accesses that
    /// are not 4- or 8-byte aligned, or outside the table, are ignored.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<usize> {
        let len = data.len();
        if !(len == 4 || len == 8) || !offset.is_multiple_of(len as u64) {
            return None;
        }
        let vector = (offset / MSIX_ENTRY_SIZE) as usize;
        let entry = self.entries.get_mut(vector)?;
        let before = *entry;
        for (i, chunk) in data.chunks(4).enumerate() {
            let v = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            match (offset + 4 * i as u64) % MSIX_ENTRY_SIZE {
                0 => entry.addr_lo = v,
                4 => entry.addr_hi = v,
                8 => entry.data = v,
                _ => entry.control = v & VECTOR_MASKED,
            }
        }
        (*entry != before).then_some(vector)
    }

    /// The message vector `vector` should deliver now, as (address, data): `None` while MSI-X is disabled,
    /// the function is masked, or the vector is masked.
    pub fn message(&self, vector: usize) -> Option<(u64, u32)> {
        let e = self.entries.get(vector)?;
        (self.enabled && !self.function_masked && e.control & VECTOR_MASKED == 0)
            .then_some(((u64::from(e.addr_hi) << 32) | u64::from(e.addr_lo), e.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap_bytes(control: u16, table: u32, pba: u32) -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0x80] = 0x11;
        c[0x82..0x84].copy_from_slice(&control.to_le_bytes());
        c[0x84..0x88].copy_from_slice(&table.to_le_bytes());
        c[0x88..0x8c].copy_from_slice(&pba.to_le_bytes());
        c
    }

    #[test]
    fn parses_the_capability() {
        let c = cap_bytes(2, 0x0000_0001, 0x0000_0801);
        let cap = MsixCap::parse(&c, 0x80).unwrap();
        assert_eq!(cap.table_size, 3);
        assert_eq!((cap.table_bar, cap.table_offset), (1, 0));
        assert_eq!((cap.pba_bar, cap.pba_offset), (1, 0x800));
        assert_eq!(cap.table_len(), 48);
        assert_eq!(cap.pba_len(), 8);
        // BIR 6 and 7 are reserved.
        assert_eq!(MsixCap::parse(&cap_bytes(0, 6, 0), 0x80), None);
        // A capability that runs off the end.
        assert_eq!(MsixCap::parse(&c, 0xfa), None);
    }

    #[test]
    fn a_vector_delivers_only_when_enabled_and_unmasked() {
        let mut t = MsixTable::new(2);
        assert_eq!(t.write(16, &0x2800_1000u32.to_le_bytes()), Some(1));
        assert_eq!(t.write(20, &0u32.to_le_bytes()), None); // unchanged
        assert_eq!(t.write(24, &33u32.to_le_bytes()), Some(1));
        assert_eq!(t.message(1), None); // still masked, MSI-X off
        t.write(28, &0u32.to_le_bytes());
        assert_eq!(t.message(1), None); // MSI-X off
        assert!(t.set_control(MSIX_ENABLE));
        assert_eq!(t.message(1), Some((0x2800_1000, 33)));
        assert!(t.set_control(MSIX_ENABLE | MSIX_FUNCTION_MASK));
        assert_eq!(t.message(1), None);
        assert!(!t.set_control(MSIX_ENABLE | MSIX_FUNCTION_MASK));
        assert_eq!(t.control_bits(), MSIX_ENABLE | MSIX_FUNCTION_MASK);
        assert_eq!(t.message(0), None); // vector 0 never unmasked
        assert_eq!(t.message(7), None);
    }

    #[test]
    fn eight_byte_accesses_and_bad_accesses() {
        let mut t = MsixTable::new(1);
        let addr = 0x0000_0001_2800_0000u64;
        assert_eq!(t.write(0, &addr.to_le_bytes()), Some(0));
        let mut b = [0u8; 8];
        t.read(0, &mut b);
        assert_eq!(u64::from_le_bytes(b), addr);
        // Unaligned or odd sizes: ignored on write, all-ones on read.
        assert_eq!(t.write(2, &[1, 2, 3, 4]), None);
        assert_eq!(t.write(0, &[1, 2]), None);
        let mut b = [0u8; 2];
        t.read(0, &mut b);
        assert_eq!(b, [0xff, 0xff]);
        // Past the table.
        assert_eq!(t.write(16, &[0; 4]), None);
        let mut b = [0u8; 4];
        t.read(16, &mut b);
        assert_eq!(b, [0xff; 4]);
        // Only the mask bit of vector control is kept.
        t.write(12, &0xffff_ffffu32.to_le_bytes());
        t.read(12, &mut b);
        assert_eq!(u32::from_le_bytes(b), 1);
    }
}
