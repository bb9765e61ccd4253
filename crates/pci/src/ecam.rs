//! The PCIe Enhanced Configuration Access Mechanism: one 4 KiB page of configuration space per function,
//! 1 MiB per bus.

/// A configuration space access decoded from an ECAM offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamAddress {
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
    /// Offset in the function's configuration space (0..4096).
    pub offset: u16,
}

/// Decodes `offset` from the start of the ECAM window (256 buses, so at most 256 MiB).
pub fn decode(offset: u64) -> Option<EcamAddress> {
    if offset >= 1 << 28 {
        return None;
    }
    Some(EcamAddress {
        bus: (offset >> 20) as u8,
        device: ((offset >> 15) & 0x1f) as u8,
        function: ((offset >> 12) & 0x7) as u8,
        offset: (offset & 0xfff) as u16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bus_device_function_offset() {
        let a = decode((3 << 20) | (0x1f << 15) | (7 << 12) | 0xabc).unwrap();
        assert_eq!((a.bus, a.device, a.function, a.offset), (3, 31, 7, 0xabc));
        let a = decode(0x8010).unwrap();
        assert_eq!((a.bus, a.device, a.function, a.offset), (0, 1, 0, 0x10));
        assert_eq!(decode(1 << 28), None);
    }
}
