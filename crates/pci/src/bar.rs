//! The six BAR registers of a type-0 header, emulated: the guest sizes them (write all-ones, read back the
//! size mask) and programs addresses; the device model learns where each BAR is now.
//!
//! Sizing needs no special state: a written value keeps only the address bits a BAR of that size has, so
//! all-ones reads back as the size mask, and the address it leaves (near the top of the address space) lies
//! outside every window, which the caller treats as "not placed".

use crate::config::NUM_BARS;

/// What kind of memory a BAR decodes (I/O BARs are not offered to guests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit memory BAR: one register.
    Mem32 {
        /// Prefetchable memory.
        prefetchable: bool,
    },
    /// 64-bit memory BAR: this register and the next one (upper half).
    Mem64 {
        /// Prefetchable memory.
        prefetchable: bool,
    },
}

impl BarKind {
    /// The type bits (3:0) of the low register.
    fn flag_bits(self) -> u32 {
        match self {
            BarKind::Mem32 { prefetchable } => u32::from(prefetchable) << 3,
            BarKind::Mem64 { prefetchable } => 0b100 | (u32::from(prefetchable) << 3),
        }
    }

    /// Whether the BAR is 64-bit.
    pub fn is_64bit(self) -> bool {
        matches!(self, BarKind::Mem64 { .. })
    }

    /// Parses the type bits of a BAR register read from a device: `None` for I/O BARs.
    pub fn from_register(value: u32) -> Option<BarKind> {
        if value & 1 != 0 {
            return None;
        }
        let prefetchable = value & 0b1000 != 0;
        match (value >> 1) & 0b11 {
            0b00 => Some(BarKind::Mem32 { prefetchable }),
            0b10 => Some(BarKind::Mem64 { prefetchable }),
            _ => None,
        }
    }
}

/// One memory BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Its kind.
    pub kind: BarKind,
    /// Its size: a power of two, at least 16 bytes.
    pub size: u64,
    /// The address the guest (or rvvmm, before boot) programmed.
    pub addr: u64,
}

impl Bar {
    /// Whether the BAR lies wholly inside one of `windows` (base, size): where it decodes, as opposed
    /// to, e.g., where a sizing pattern left it.
    pub fn within(&self, windows: &[(u64, u64)]) -> bool {
        windows.iter().any(|&(base, size)| {
            self.addr >= base && self.addr.saturating_add(self.size) <= base.saturating_add(size)
        })
    }
}

/// A BAR whose address the guest changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMove {
    /// BAR index (the first register of a 64-bit pair).
    pub bar: usize,
    /// Address before the write.
    pub old: u64,
    /// Address after the write.
    pub new: u64,
}

/// Errors from declaring BARs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BarError {
    /// Index past the sixth register, or a 64-bit BAR in the last one.
    #[error("BAR {0} does not exist or has no room for a 64-bit pair")]
    BadIndex(usize),
    /// The size is not a power of two of at least 16 bytes, or too big for the kind.
    #[error("BAR {index} size {size:#x} is not a power of two >= 16 that fits its kind")]
    BadSize {
        /// BAR index.
        index: usize,
        /// Rejected size.
        size: u64,
    },
    /// The register (or the upper half of a 64-bit BAR) is already taken.
    #[error("BAR {0} is already declared")]
    Taken(usize),
}

/// The BAR registers of one function.
#[derive(Clone, Debug, Default)]
pub struct BarRegisters {
    bars: [Option<Bar>; NUM_BARS],
    /// Register indexes that hold the upper half of the 64-bit BAR before them.
    upper: [bool; NUM_BARS],
}

impl BarRegisters {
    /// No BARs: every register reads 0 and ignores writes.
    pub fn new() -> BarRegisters {
        BarRegisters::default()
    }

    /// Declares BAR `index` (at `addr`; rvvmm places BARs before boot like firmware would).
    pub fn declare(
        &mut self,
        index: usize,
        kind: BarKind,
        size: u64,
        addr: u64,
    ) -> Result<(), BarError> {
        let last = index + usize::from(kind.is_64bit());
        if last >= NUM_BARS {
            return Err(BarError::BadIndex(index));
        }
        let max = if kind.is_64bit() {
            1u64 << 63
        } else {
            1u64 << 31
        };
        if !size.is_power_of_two() || !(16..=max).contains(&size) {
            return Err(BarError::BadSize { index, size });
        }
        if (index..=last).any(|i| self.bars[i].is_some() || self.upper[i]) {
            return Err(BarError::Taken(index));
        }
        self.bars[index] = Some(Bar {
            kind,
            size,
            addr: addr & !(size - 1),
        });
        if kind.is_64bit() {
            self.upper[index + 1] = true;
        }
        Ok(())
    }

    /// BAR `index`, if declared.
    pub fn get(&self, index: usize) -> Option<Bar> {
        self.bars.get(index).copied().flatten()
    }

    /// Every declared BAR with its index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Bar)> + '_ {
        self.bars
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.map(|b| (i, b)))
    }

    /// Serves a configuration space read of `data.len()` bytes at `offset` if it falls in the BAR
    /// registers; returns whether it did.
    pub fn config_read(&self, offset: u16, data: &mut [u8]) -> bool {
        let dword = offset & !3;
        if !Self::covers(dword) {
            return false;
        }
        let value = self.read(usize::from((dword - crate::config::BAR0) / 4));
        crate::config::read_dword_part(value, (offset & 3) as usize, data);
        true
    }

    /// Applies a configuration space write of `data` at `offset` if it falls in the BAR registers:
    /// `None` when it does not, else `Some` of the move it caused (if the BAR's address changed).
    pub fn config_write(&mut self, offset: u16, data: &[u8]) -> Option<Option<BarMove>> {
        let dword = offset & !3;
        if !Self::covers(dword) {
            return None;
        }
        let reg = usize::from((dword - crate::config::BAR0) / 4);
        let value = crate::config::write_dword_part(self.read(reg), (offset & 3) as usize, data);
        Some(self.write(reg, value))
    }

    /// Whether `offset` (a configuration space offset) falls in the BAR registers.
    pub fn covers(offset: u16) -> bool {
        (crate::config::BAR0..crate::config::BAR0 + 4 * NUM_BARS as u16).contains(&offset)
    }

    /// The value of BAR register `reg` (0..6).
    pub fn read(&self, reg: usize) -> u32 {
        if reg >= NUM_BARS {
            return 0;
        }
        if self.upper[reg] {
            return self.bars[reg - 1].map_or(0, |b| (b.addr >> 32) as u32);
        }
        self.bars[reg].map_or(0, |b| (b.addr as u32 & !0xf) | b.kind.flag_bits())
    }

    /// The guest writes `value` to BAR register `reg`; returns the move if the BAR's address changed.
    pub fn write(&mut self, reg: usize, value: u32) -> Option<BarMove> {
        if reg >= NUM_BARS {
            return None;
        }
        let (index, upper) = if self.upper[reg] {
            (reg - 1, true)
        } else {
            (reg, false)
        };
        let bar = self.bars[index].as_mut()?;
        let mask = !(bar.size - 1);
        let old = bar.addr;
        let new = if upper {
            (old & 0xffff_ffff) | ((u64::from(value) << 32) & mask)
        } else {
            let high = if bar.kind.is_64bit() {
                old & !0xffff_ffff
            } else {
                0
            };
            high | (u64::from(value & !0xf) & mask & 0xffff_ffff)
        };
        bar.addr = new;
        (new != old).then_some(BarMove {
            bar: index,
            old,
            new,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEM64: BarKind = BarKind::Mem64 { prefetchable: true };
    const MEM32: BarKind = BarKind::Mem32 {
        prefetchable: false,
    };

    #[test]
    fn sizing_a_32bit_bar_reads_back_its_mask() {
        let mut r = BarRegisters::new();
        r.declare(1, MEM32, 0x1000, 0x4000_0000).unwrap();
        assert_eq!(r.read(1), 0x4000_0000);
        let m = r.write(1, 0xffff_ffff).unwrap();
        assert_eq!((m.bar, m.old), (1, 0x4000_0000));
        assert_eq!(r.read(1), 0xffff_f000);
        // Programming an address moves it there; low bits are dropped.
        let m = r.write(1, 0x4000_2fff).unwrap();
        assert_eq!(m.new, 0x4000_2000);
        assert_eq!(r.read(1), 0x4000_2000);
        // The same address again is no move.
        assert_eq!(r.write(1, 0x4000_2000), None);
    }

    #[test]
    fn sizing_a_64bit_bar_uses_both_halves() {
        let mut r = BarRegisters::new();
        r.declare(4, MEM64, 0x4000, 0x4_0000_0000).unwrap();
        assert_eq!(r.read(4), 0xc); // 64-bit, prefetchable, address bits 0
        assert_eq!(r.read(5), 4);
        r.write(4, 0xffff_ffff);
        r.write(5, 0xffff_ffff);
        assert_eq!(r.read(4), 0xffff_c00c);
        assert_eq!(r.read(5), 0xffff_ffff);
        r.write(4, 0x4000_0000);
        let m = r.write(5, 0).unwrap();
        assert_eq!(m.new, 0x4000_0000);
        assert_eq!(r.get(4).unwrap().addr, 0x4000_0000);
    }

    #[test]
    fn config_space_accesses_reach_the_registers_by_parts() {
        let mut r = BarRegisters::new();
        r.declare(0, MEM32, 0x1000, 0x4000_0000).unwrap();
        let mut b = [0u8; 2];
        assert!(r.config_read(0x12, &mut b));
        assert_eq!(b, [0x00, 0x40]);
        assert!(!r.config_read(0x0c, &mut b));
        // A 2-byte write of the upper half moves the BAR; outside the BARs nothing is applied.
        let m = r.config_write(0x12, &[0x01, 0x40]).unwrap().unwrap();
        assert_eq!((m.old, m.new), (0x4000_0000, 0x4001_0000));
        assert_eq!(r.config_write(0x12, &[0x01, 0x40]), Some(None));
        assert_eq!(r.config_write(0x30, &[0xff; 4]), None);
        // Inside its window at 0x4001_0000, outside once sized.
        let windows = [(0x4000_0000, 0x1000_0000)];
        assert!(r.get(0).unwrap().within(&windows));
        r.write(0, 0xffff_ffff);
        assert!(!r.get(0).unwrap().within(&windows));
    }

    #[test]
    fn undeclared_registers_read_zero_and_ignore_writes() {
        let mut r = BarRegisters::new();
        r.declare(0, MEM32, 0x100, 0).unwrap();
        assert_eq!(r.read(2), 0);
        assert_eq!(r.write(2, 0xffff_ffff), None);
        assert_eq!(r.read(2), 0);
        assert_eq!(r.read(6), 0);
        assert_eq!(r.write(17, 1), None);
    }

    #[test]
    fn bad_declarations_are_refused() {
        let mut r = BarRegisters::new();
        assert_eq!(r.declare(5, MEM64, 0x1000, 0), Err(BarError::BadIndex(5)));
        assert_eq!(r.declare(6, MEM32, 0x1000, 0), Err(BarError::BadIndex(6)));
        assert!(matches!(
            r.declare(0, MEM32, 0x1800, 0),
            Err(BarError::BadSize { .. })
        ));
        assert!(matches!(
            r.declare(0, MEM32, 8, 0),
            Err(BarError::BadSize { .. })
        ));
        assert!(matches!(
            r.declare(0, MEM32, 1 << 32, 0),
            Err(BarError::BadSize { .. })
        ));
        r.declare(0, MEM64, 0x1000, 0).unwrap();
        assert_eq!(r.declare(1, MEM32, 0x1000, 0), Err(BarError::Taken(1)));
        assert_eq!(r.declare(0, MEM32, 0x1000, 0), Err(BarError::Taken(0)));
    }

    #[test]
    fn kind_from_register() {
        assert_eq!(BarKind::from_register(0x1), None);
        assert_eq!(BarKind::from_register(0xc), Some(MEM64));
        assert_eq!(BarKind::from_register(0x0), Some(MEM32));
        assert_eq!(BarKind::from_register(0x2), None); // reserved "below 1 MiB" type
    }
}
