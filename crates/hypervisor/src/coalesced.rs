//! Reading KVM's coalesced MMIO ring: guest writes to a registered zone that KVM appended to a page it
//! shares with userspace instead of exiting (`KVM_REGISTER_COALESCED_MMIO`), taken back here oldest
//! first. The layout is the kernel's ABI (`struct kvm_coalesced_mmio_ring`); the reader is arch-neutral
//! and unit-tested on any host, the mapping of the page is in the KVM glue.

use std::sync::atomic::{AtomicU32, Ordering};

/// Size of the ring's header (`first`, `last`).
const HEADER: usize = 8;
/// Size of one entry (`struct kvm_coalesced_mmio`: phys_addr, len, pio, data[8]).
const ENTRY: usize = 24;

/// One write KVM took without an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldWrite {
    /// Guest physical address written.
    pub addr: u64,
    /// Bytes written (1..=8; the first `len` bytes of `data`).
    pub len: u32,
    /// The bytes, little-endian as the guest stored them.
    pub data: [u8; 8],
}

/// How many entries a ring page of `page_size` bytes holds (the kernel's `KVM_COALESCED_MMIO_MAX`).
pub fn ring_capacity(page_size: usize) -> u32 {
    (page_size.saturating_sub(HEADER) / ENTRY) as u32
}

/// Pops every entry of the ring page at `ring` (`page_size` bytes), oldest first, handing each to `f`;
/// returns how many there were. Indexes the kernel could not have written (at or past the capacity)
/// empty the ring rather than send the reader outside the page.
///
/// # Safety
/// `ring` must point to a readable and writable ring page of `page_size` bytes (KVM's, or one laid out
/// the same way), aligned to 8, valid for the whole call, and no other reader may pop it at the same time.
pub unsafe fn drain_ring(ring: *mut u8, page_size: usize, f: &mut dyn FnMut(HeldWrite)) -> usize {
    let cap = ring_capacity(page_size);
    if cap == 0 {
        return 0;
    }
    // SAFETY: the caller guarantees an aligned ring page; `first` and `last` are its first two u32s, which
    // the kernel (the writer) reads and writes too, hence atomics.
    let (first, last) = unsafe {
        (
            &*(ring as *const AtomicU32),
            &*(ring.add(4) as *const AtomicU32),
        )
    };
    let mut n = 0;
    loop {
        let head = first.load(Ordering::Relaxed);
        // The kernel writes an entry, then (smp_wmb) advances `last`: acquire pairs with that.
        let tail = last.load(Ordering::Acquire);
        if head >= cap || tail >= cap {
            log::warn!("coalesced MMIO ring indexes out of range (first {head}, last {tail}, capacity {cap}): emptied");
            first.store(tail % cap, Ordering::Release);
            return n;
        }
        if head == tail {
            return n;
        }
        // SAFETY: head < cap, so the entry lies inside the page.
        let entry = unsafe { ring.add(HEADER + head as usize * ENTRY) };
        let mut raw = [0u8; ENTRY];
        // SAFETY: `entry..entry+ENTRY` is inside the page; the kernel does not touch it until `first`
        // moves past it.
        unsafe { std::ptr::copy_nonoverlapping(entry, raw.as_mut_ptr(), ENTRY) };
        let mut data = [0u8; 8];
        data.copy_from_slice(&raw[16..24]);
        f(HeldWrite {
            addr: u64::from_ne_bytes(raw[0..8].try_into().unwrap()),
            len: u32::from_ne_bytes(raw[8..12].try_into().unwrap()).min(8),
            data,
        });
        n += 1;
        // Release: the entry has been read before the kernel may reuse its slot.
        first.store((head + 1) % cap, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    /// A ring page written the way the kernel writes it.
    struct FakeRing(Vec<u64>);

    impl FakeRing {
        fn new() -> Self {
            FakeRing(vec![0u64; PAGE / 8])
        }
        fn ptr(&mut self) -> *mut u8 {
            self.0.as_mut_ptr() as *mut u8
        }
        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: the Vec owns PAGE bytes.
            unsafe { std::slice::from_raw_parts_mut(self.ptr(), PAGE) }
        }
        fn index(&mut self, which: usize) -> u32 {
            u32::from_ne_bytes(self.bytes()[which * 4..which * 4 + 4].try_into().unwrap())
        }
        fn set_index(&mut self, which: usize, v: u32) {
            self.bytes()[which * 4..which * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        /// The kernel's coalesced_mmio_write: false when full.
        fn push(&mut self, addr: u64, bytes: &[u8]) -> bool {
            let cap = ring_capacity(PAGE);
            let (head, tail) = (self.index(0), self.index(1));
            if (tail + 1) % cap == head {
                return false;
            }
            let at = HEADER + tail as usize * ENTRY;
            let b = self.bytes();
            b[at..at + 8].copy_from_slice(&addr.to_ne_bytes());
            b[at + 8..at + 12].copy_from_slice(&(bytes.len() as u32).to_ne_bytes());
            b[at + 16..at + 16 + bytes.len()].copy_from_slice(bytes);
            self.set_index(1, (tail + 1) % cap);
            true
        }
        fn drain(&mut self) -> Vec<HeldWrite> {
            let mut got = Vec::new();
            // SAFETY: a page of our own, one reader.
            let n = unsafe { drain_ring(self.ptr(), PAGE, &mut |w| got.push(w)) };
            assert_eq!(n, got.len());
            got
        }
    }

    #[test]
    fn capacity_is_the_kernels() {
        // (4096 - 8) / 24, KVM_COALESCED_MMIO_MAX for 4 KiB pages.
        assert_eq!(ring_capacity(4096), 170);
        assert_eq!(ring_capacity(4), 0);
    }

    #[test]
    fn entries_come_back_in_order_and_the_ring_empties() {
        let mut r = FakeRing::new();
        assert!(r.drain().is_empty());
        for (i, c) in b"hello".iter().enumerate() {
            assert!(r.push(0x1000_0000 + (i as u64 % 2), &[*c]));
        }
        let got = r.drain();
        assert_eq!(got.len(), 5);
        assert_eq!(got.iter().map(|w| w.data[0]).collect::<Vec<_>>(), b"hello");
        assert_eq!(got[1].addr, 0x1000_0001);
        assert!(got.iter().all(|w| w.len == 1));
        assert!(r.drain().is_empty(), "popped entries are gone");
        assert_eq!(r.index(0), r.index(1));
    }

    #[test]
    fn a_full_ring_wraps_around() {
        let mut r = FakeRing::new();
        let cap = ring_capacity(PAGE) as usize;
        let mut want = Vec::new();
        for round in 0..3u8 {
            // A full ring takes cap - 1 entries (one slot tells full from empty), then refuses.
            for i in 0..cap - 1 {
                let b = (i as u8).wrapping_add(round);
                assert!(r.push(0x2000, &[b, round]));
                want.push(b);
            }
            assert!(!r.push(0x2000, &[0]), "full");
            let got = r.drain();
            assert_eq!(got.len(), cap - 1);
            assert_eq!(
                got.iter().map(|w| w.data[0]).collect::<Vec<_>>(),
                std::mem::take(&mut want)
            );
            assert!(got.iter().all(|w| w.len == 2 && w.data[1] == round));
        }
    }

    #[test]
    fn out_of_range_indexes_empty_the_ring_without_reading_past_the_page() {
        let mut r = FakeRing::new();
        r.set_index(0, 5000);
        r.set_index(1, 3);
        assert!(r.drain().is_empty());
        assert_eq!(r.index(0), 3);
        r.set_index(1, 171);
        assert!(r.drain().is_empty());
        assert!(r.index(0) < ring_capacity(PAGE));
        // A length the kernel never writes is clamped to the data field.
        r.set_index(0, 0);
        r.set_index(1, 0);
        assert!(r.push(0x10, &[7]));
        r.bytes()[HEADER + 8..HEADER + 12].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(r.drain()[0].len, 8);
    }
}
