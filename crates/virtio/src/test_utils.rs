//! Shared helpers for this crate's unit tests.

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
