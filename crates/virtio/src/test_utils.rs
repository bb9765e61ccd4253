//! Shared helpers for this crate's unit tests.

use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Descriptor flag: the chain continues at `next`.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of indirect descriptors.
pub const F_INDIRECT: u16 = 4;
/// Guest memory size of the tests.
pub const MEM_SIZE: usize = 0x40_0000;

/// Guest memory of [`MEM_SIZE`] bytes at address 0.
pub fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// A mock queue in guest memory.
pub type Mock<'a> = MockSplitQueue<'a, GuestMemoryMmap>;

/// A chain of (addr, len, device-writable) descriptors, linked in order, for descriptor table index `at`
/// on.
pub fn chain_at(at: u16, descs: &[(u64, u32, bool)]) -> Vec<RawDescriptor> {
    descs
        .iter()
        .enumerate()
        .map(|(i, &(addr, len, write))| {
            let mut flags = if write { F_WRITE } else { 0 };
            if i + 1 < descs.len() {
                flags |= F_NEXT;
            }
            RawDescriptor::from(SplitDescriptor::new(addr, len, flags, at + i as u16 + 1))
        })
        .collect()
}

/// [`chain_at`] index 0.
pub fn chain(descs: &[(u64, u32, bool)]) -> Vec<RawDescriptor> {
    chain_at(0, descs)
}

/// Adds one chain of (addr, len, device-writable) descriptors at descriptor table index `at`.
pub fn add_chain(mq: &Mock, at: u16, descs: &[(u64, u32, bool)]) {
    mq.add_desc_chains(&chain_at(at, descs), at).unwrap();
}

/// The used ring: (head, length) pairs.
pub fn used(mq: &Mock) -> Vec<(u32, u32)> {
    let n = mq.used().idx().load();
    (0..n as usize)
        .map(|i| {
            let e = mq.used().ring().ref_at(i).unwrap().load();
            (e.id(), e.len())
        })
        .collect()
}
