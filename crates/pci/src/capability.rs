//! The capability list of a function's configuration space.

use crate::config::{CAPABILITY_POINTER, CONFIG_SPACE_SIZE, STATUS, STATUS_CAPABILITIES};

/// Capability ID of MSI.
pub const CAP_ID_MSI: u8 = 0x05;
/// Capability ID of MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Capability id: vendor-specific (virtio-pci's structures).
pub const CAP_ID_VENDOR: u8 = 0x09;
/// Capability ID of PCI Express.
pub const CAP_ID_PCIE: u8 = 0x10;

/// One capability: its ID and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID.
    pub id: u8,
    /// Offset in configuration space.
    pub offset: u8,
}

/// Walks the capability list of `config` (the first 256 bytes of a configuration space), stopping at a
/// pointer outside 0x40..0x100, a loop, or after 48 entries (the most that fit).
pub fn capabilities(config: &[u8]) -> Vec<Capability> {
    let mut caps = Vec::new();
    if config.len() < CONFIG_SPACE_SIZE {
        return caps;
    }
    let status = u16::from_le_bytes([config[STATUS as usize], config[STATUS as usize + 1]]);
    if status & STATUS_CAPABILITIES == 0 {
        return caps;
    }
    let mut ptr = config[CAPABILITY_POINTER as usize] & !3;
    let mut seen = [false; CONFIG_SPACE_SIZE];
    while ptr >= 0x40 && caps.len() < 48 {
        let at = ptr as usize;
        if seen[at] || at + 1 >= CONFIG_SPACE_SIZE {
            break;
        }
        seen[at] = true;
        caps.push(Capability {
            id: config[at],
            offset: ptr,
        });
        ptr = config[at + 1] & !3;
    }
    caps
}

/// Unlinks the capability at `offset` from the list in `config` (used to hide capabilities from a guest).
/// Returns whether it was found. The list is rewritten as the walk of [`capabilities`] saw it, minus that
/// entry, and ends with a null pointer: a device whose list loops back on itself must not keep the
/// hidden capability reachable through the loop.
pub fn unlink(config: &mut [u8], offset: u8) -> bool {
    let caps = capabilities(config);
    if !caps.iter().any(|c| c.offset == offset) {
        return false;
    }
    let kept: Vec<usize> = caps
        .iter()
        .filter(|c| c.offset != offset)
        .map(|c| usize::from(c.offset))
        .collect();
    config[CAPABILITY_POINTER as usize] = kept.first().map_or(0, |&o| o as u8);
    for pair in kept.windows(2) {
        config[pair[0] + 1] = pair[1] as u8;
    }
    if let Some(&last) = kept.last() {
        config[last + 1] = 0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(chain: &[(u8, u8, u8)]) -> Vec<u8> {
        // (offset, id, next)
        let mut c = vec![0u8; 256];
        c[STATUS as usize] = STATUS_CAPABILITIES as u8;
        c[CAPABILITY_POINTER as usize] = chain.first().map_or(0, |x| x.0);
        for &(off, id, next) in chain {
            c[off as usize] = id;
            c[off as usize + 1] = next;
        }
        c
    }

    #[test]
    fn walks_the_list() {
        let c = space(&[
            (0x40, CAP_ID_PCIE, 0x80),
            (0x80, CAP_ID_MSIX, 0x98),
            (0x98, CAP_ID_MSI, 0),
        ]);
        let ids: Vec<u8> = capabilities(&c).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![CAP_ID_PCIE, CAP_ID_MSIX, CAP_ID_MSI]);
    }

    #[test]
    fn loops_and_bad_pointers_stop_the_walk() {
        let c = space(&[(0x40, 1, 0x50), (0x50, 2, 0x40)]);
        assert_eq!(capabilities(&c).len(), 2);
        let c = space(&[(0x40, 1, 0x10)]);
        assert_eq!(capabilities(&c).len(), 1);
        let mut c = space(&[(0x40, 1, 0)]);
        c[STATUS as usize] = 0;
        assert!(capabilities(&c).is_empty());
        assert!(capabilities(&[0u8; 16]).is_empty());
        let c = space(&[(0xfc, 1, 0xff)]);
        assert_eq!(capabilities(&c).len(), 1);
    }

    #[test]
    fn unlink_first_middle_and_missing() {
        let mut c = space(&[(0x40, 1, 0x50), (0x50, 2, 0x60), (0x60, 3, 0)]);
        assert!(unlink(&mut c, 0x50));
        let ids: Vec<u8> = capabilities(&c).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert!(unlink(&mut c, 0x40));
        let ids: Vec<u8> = capabilities(&c).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![3]);
        assert!(!unlink(&mut c, 0x70));
    }

    /// Found by the `pci_config` fuzz target: in a list that loops (0x40 -> 0x50 -> 0x40), unlinking
    /// 0x40 left it reachable through 0x50.
    #[test]
    fn unlink_in_a_looping_list_hides_the_capability() {
        let mut c = space(&[(0x40, 0x05, 0x50), (0x50, 0x11, 0x40)]);
        assert!(unlink(&mut c, 0x40));
        assert_eq!(
            capabilities(&c),
            vec![Capability {
                id: 0x11,
                offset: 0x50
            }]
        );
    }
}
