//! Offsets and bits of the type-0 configuration header, and helpers for byte-granular access to
//! registers that are emulated as whole dwords.

/// Vendor ID (16 bits).
pub const VENDOR_ID: u16 = 0x00;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// Revision ID and class code (one dword).
pub const CLASS_REVISION: u16 = 0x08;
/// Header type (8 bits).
pub const HEADER_TYPE: u16 = 0x0e;
/// First BAR register.
pub const BAR0: u16 = 0x10;
/// Number of BAR registers in a type-0 header.
pub const NUM_BARS: usize = 6;
/// Expansion ROM base address.
pub const ROM_BAR: u16 = 0x30;
/// Capabilities pointer (8 bits).
pub const CAPABILITY_POINTER: u16 = 0x34;
/// Interrupt line (8 bits).
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin (8 bits): 0 none, 1..4 INTA..INTD.
pub const INTERRUPT_PIN: u16 = 0x3d;
/// Size of the conventional (non-extended) configuration space.
pub const CONFIG_SPACE_SIZE: usize = 256;
/// Size of a PCIe function's configuration space.
pub const EXTENDED_CONFIG_SPACE_SIZE: usize = 4096;

/// Command register: I/O space enable.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command register: memory space enable.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: bus master enable.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command register: INTx disable.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Status register: the capability list is valid.
pub const STATUS_CAPABILITIES: u16 = 1 << 4;

/// Reads `data.len()` bytes starting at byte `shift` (0..4) of the little-endian dword `value`.
pub fn read_dword_part(value: u32, shift: usize, data: &mut [u8]) {
    let bytes = value.to_le_bytes();
    for (i, d) in data.iter_mut().enumerate() {
        *d = bytes.get(shift + i).copied().unwrap_or(0xff);
    }
}

/// Merges `data`, written at byte `shift` (0..4) of the dword, into `old`; bytes past the dword are dropped.
pub fn write_dword_part(old: u32, shift: usize, data: &[u8]) -> u32 {
    let mut bytes = old.to_le_bytes();
    for (i, d) in data.iter().enumerate() {
        if let Some(b) = bytes.get_mut(shift + i) {
            *b = *d;
        }
    }
    u32::from_le_bytes(bytes)
}

/// Whether an access of `len` bytes at `offset` is one the configuration space accepts: 1, 2 or 4 bytes,
/// naturally aligned, inside the 4 KiB space.
pub fn valid_access(offset: u16, len: usize) -> bool {
    matches!(len, 1 | 2 | 4)
        && (offset as usize).is_multiple_of(len)
        && (offset as usize) + len <= EXTENDED_CONFIG_SPACE_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dword_parts_round_trip() {
        let mut b = [0u8; 2];
        read_dword_part(0x1234_5678, 2, &mut b);
        assert_eq!(b, [0x34, 0x12]);
        assert_eq!(write_dword_part(0x1234_5678, 1, &[0xaa]), 0x1234_aa78);
        assert_eq!(write_dword_part(0, 0, &[1, 2, 3, 4]), 0x0403_0201);
        // Bytes past the dword are ignored, not a panic.
        assert_eq!(write_dword_part(0, 3, &[1, 2]), 0x0100_0000);
        let mut c = [0u8; 2];
        read_dword_part(0x1234_5678, 3, &mut c);
        assert_eq!(c, [0x12, 0xff]);
    }

    #[test]
    fn access_validity() {
        assert!(valid_access(0, 4));
        assert!(valid_access(0x3d, 1));
        assert!(valid_access(0xffe, 2));
        assert!(!valid_access(0x2, 4));
        assert!(!valid_access(0xffc, 8));
        assert!(!valid_access(0xfff, 2));
        assert!(!valid_access(0x1000, 1));
        assert!(!valid_access(0, 3));
    }
}
