//! virtio-rng, the entropy device (virtio spec 1.2, 5.4), fed by the host's getrandom(2).
//!
//! One request queue. Every available chain is a request for entropy: each device-writable descriptor
//! (in chain order) is filled with random bytes, up to [`MAX_CHAIN_BYTES`] per chain so that one huge
//! buffer cannot stall the I/O thread, and the chain is returned with the number of bytes written.
//! Device-readable descriptors are ignored. A chain with a writable descriptor outside guest RAM, or a
//! broken chain, is returned with used length 0 and nothing written.

use std::io;
use std::os::unix::io::RawFd;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use crate::device::{serve_chains, VirtioDevice};
use crate::rate_limiter::{self, RateLimiter};
use crate::{device_type, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};

/// Size of the single request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Most random bytes given for one chain (the rest of a larger buffer is left alone).
pub const MAX_CHAIN_BYTES: usize = 64 * 1024;

/// Request and byte counters of an [`Rng`] device.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RngStats {
    /// Chains served (whatever their outcome).
    pub requests: u64,
    /// Random bytes written into guest memory.
    pub bytes: u64,
}

/// A byte range of guest memory from one descriptor, already checked to lie inside guest RAM.
#[derive(Debug, Clone, Copy)]
struct Segment {
    addr: GuestAddress,
    len: usize,
}

/// Fills `buf` from getrandom(2) (blocking only until the kernel's pool is initialised, which it is long
/// before a guest runs), retrying on EINTR and short reads.
fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the kernel writes at most `rest.len()` bytes at `rest`, a valid buffer borrowed
        // exclusively for the call; flags 0 ask for nothing else. The return value is checked.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::other("getrandom returned no bytes"));
        }
        // 0 < n <= rest.len().
        done += n as usize;
    }
    Ok(())
}

/// The device-writable segments of a request chain, every one checked to lie inside guest RAM.
fn parse_chain<I: Iterator<Item = Descriptor>>(
    mem: &GuestMemoryMmap,
    chain: I,
) -> Result<Vec<Segment>, &'static str> {
    let mut segments = Vec::new();
    let mut last_has_next = false;
    for desc in chain {
        last_has_next = desc.has_next();
        let len = desc.len() as usize;
        if !desc.is_write_only() || len == 0 {
            continue;
        }
        if !mem.check_range(desc.addr(), len, Permissions::Write) {
            return Err("descriptor outside guest memory");
        }
        segments.push(Segment {
            addr: desc.addr(),
            len,
        });
    }
    // The iterator stops early (without error) on a loop, an index out of the table or a bad indirect
    // table: the last descriptor then still has NEXT set.
    if last_has_next {
        return Err("descriptor chain broken or too long");
    }
    if segments.is_empty() {
        return Err("no device-writable buffer");
    }
    Ok(segments)
}

/// A virtio-rng device.
///
/// [`VirtioDevice::process_queue`] reports used buffers without applying notification suppression (the
/// transport does).
pub struct Rng {
    queue_sizes: [u16; 1],
    acked_features: u64,
    /// Random bytes of the chain being served.
    buf: Vec<u8>,
    stats: RngStats,
    /// Bandwidth and operations limits of the guest's requests.
    limiter: Option<RateLimiter>,
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

impl Rng {
    /// An entropy device.
    pub fn new() -> Rng {
        Rng {
            queue_sizes: [QUEUE_SIZE],
            acked_features: 0,
            buf: vec![0; MAX_CHAIN_BYTES],
            stats: RngStats::default(),
            limiter: None,
        }
    }

    /// Limits the guest's requests (random bytes, requests) with `limiter`.
    pub fn with_rate_limiter(mut self, limiter: RateLimiter) -> Rng {
        self.limiter = Some(limiter);
        self
    }

    /// Request and byte counters so far.
    pub fn stats(&self) -> RngStats {
        self.stats
    }

    /// Fills the writable buffers of one chain; returns the number of bytes written.
    fn serve<I: Iterator<Item = Descriptor>>(
        &mut self,
        mem: &GuestMemoryMmap,
        chain: I,
    ) -> Result<u32, &'static str> {
        let segments = parse_chain(mem, chain)?;
        let total = segments
            .iter()
            .fold(0usize, |sum, s| sum.saturating_add(s.len))
            .min(MAX_CHAIN_BYTES);
        let buf = &mut self.buf[..total];
        if let Err(e) = getrandom(buf) {
            log::warn!("virtio-rng: getrandom: {e}");
            return Err("no entropy from the host");
        }
        let mut done = 0usize;
        for seg in &segments {
            if done == total {
                break;
            }
            let n = seg.len.min(total - done);
            mem.write_slice(&buf[done..done + n], seg.addr)
                .map_err(|_| "descriptor outside guest memory")?;
            done += n;
        }
        // done <= MAX_CHAIN_BYTES.
        Ok(done as u32)
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        device_type::RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_EVENT_IDX)
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.features();
    }

    /// No config space: reads leave zeros.
    fn read_config(&self, _offset: u64, _data: &mut [u8]) {}

    /// Serves every available chain; returns true when at least one used buffer was added.
    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        if index != 0 {
            log::warn!("virtio-rng: notification for nonexistent queue {index}");
            return false;
        }
        let mut limiter = self.limiter.take();
        let added = serve_chains("virtio-rng", queue, mem, limiter.as_mut(), |chain| {
            let head = chain.head_index();
            self.stats.requests += 1;
            let written = self.serve(mem, chain).unwrap_or_else(|why| {
                log::debug!("virtio-rng: request {head} not served: {why}");
                0
            });
            self.stats.bytes += u64::from(written);
            (written, u64::from(written))
        });
        self.limiter = limiter;
        added
    }

    fn timer_fds(&self) -> Vec<RawFd> {
        rate_limiter::timer_fds([&self.limiter])
    }

    fn timer_fired(&mut self, k: usize) {
        rate_limiter::timer_fired([&mut self.limiter], k);
    }

    fn throttled(&self, _index: usize) -> bool {
        rate_limiter::blocked(&self.limiter)
    }

    fn reset(&mut self) {
        self.acked_features = 0;
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let s = self.stats;
        log::info!(
            "virtio-rng: {} requests, {} random bytes",
            s.requests,
            s.bytes
        );
        Ok(())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests", self.stats.requests),
            ("bytes", self.stats.bytes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use devices::interrupt::test_utils::RecordingLine as Line;
    use devices::MmioDevice;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;

    use crate::mmio::reg;
    use crate::test_utils::{add_chain, mem, used, Mock, F_NEXT, F_WRITE, MEM_SIZE};
    use crate::{MmioTransport, VirtioInterrupt};

    const BUF: u64 = 0x10_0000;
    /// What guest buffers hold before a request.
    const FILL: u8 = 0xa5;

    fn read_guest(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    /// Guest memory with [`FILL`] from [`BUF`] to the end, and a queue of 64 entries at 0.
    fn setup(mem: &GuestMemoryMmap) -> Mock<'_> {
        mem.write_slice(&vec![FILL; MEM_SIZE - BUF as usize], GuestAddress(BUF))
            .unwrap();
        MockSplitQueue::new(mem, 64)
    }

    /// True when no 16-byte window of `bytes` is all [`FILL`] (random data would have to repeat the
    /// pattern 16 times in a row: probability 2^-128 per window).
    fn changed(bytes: &[u8]) -> bool {
        bytes.chunks(16).all(|c| c.iter().any(|&b| b != FILL))
    }

    #[test]
    fn identity() {
        let mut rng = Rng::default();
        assert_eq!(rng.device_type(), 4);
        assert_eq!(rng.queue_max_sizes(), &[256]);
        assert_eq!(rng.features(), (1 << 32) | (1 << 29));
        rng.set_acked_features(u64::MAX);
        assert_eq!(rng.acked_features, (1 << 32) | (1 << 29));
        let mut c = [0xffu8; 8];
        rng.read_config(0, &mut c);
        assert_eq!(c, [0xff; 8], "no config space: nothing written");
        assert_eq!(rng.backend_fd(), None);
        assert!(!rng.owns_queue_notifications());
        rng.reset();
        assert_eq!(rng.acked_features, 0);
    }

    #[test]
    fn fills_writable_buffers() {
        let mem = mem();
        let mq = setup(&mem);
        let mut rng = Rng::new();
        // One buffer; then one split over three descriptors (one empty) with a readable one ignored.
        add_chain(&mq, 0, &[(BUF, 256, true)]);
        add_chain(
            &mq,
            1,
            &[
                (BUF + 0x1000, 16, false),
                (BUF + 0x2000, 100, true),
                (BUF + 0x3000, 0, true),
                (BUF + 0x4000, 28, true),
            ],
        );
        let mut q: Queue = mq.create_queue().unwrap();
        assert!(rng.process_queue(0, &mut q, &mem));
        assert_eq!(used(&mq), vec![(0, 256), (1, 128)]);
        let first = read_guest(&mem, BUF, 256);
        assert!(changed(&first));
        // Nothing written past the buffers, nor into the readable one.
        assert_eq!(read_guest(&mem, BUF + 256, 1), [FILL]);
        assert_eq!(read_guest(&mem, BUF + 0x1000, 16), [FILL; 16]);
        assert!(changed(&read_guest(&mem, BUF + 0x2000, 100)));
        assert!(changed(&read_guest(&mem, BUF + 0x4000, 28)));
        assert_eq!(read_guest(&mem, BUF + 0x2000 + 100, 1), [FILL]);
        assert_eq!(read_guest(&mem, BUF + 0x4000 + 28, 1), [FILL]);
        // A second request gets other bytes.
        add_chain(&mq, 5, &[(BUF + 0x8000, 256, true)]);
        assert!(rng.process_queue(0, &mut q, &mem));
        assert_ne!(read_guest(&mem, BUF + 0x8000, 256), first);
        assert_eq!(
            rng.stats(),
            RngStats {
                requests: 3,
                bytes: 640
            }
        );
        assert_eq!(rng.counters(), vec![("requests", 3), ("bytes", 640)]);
        // Nothing available: nothing used.
        assert!(!rng.process_queue(0, &mut q, &mem));
        // Other queue indices are ignored.
        assert!(!rng.process_queue(1, &mut q, &mem));
    }

    #[test]
    fn read_only_and_empty_chains_get_zero() {
        let mem = mem();
        let mq = setup(&mem);
        let mut rng = Rng::new();
        add_chain(&mq, 0, &[(BUF, 64, false)]);
        add_chain(&mq, 1, &[(BUF + 0x1000, 0, true)]);
        add_chain(
            &mq,
            2,
            &[(BUF + 0x2000, 64, false), (BUF + 0x3000, 0, true)],
        );
        let mut q: Queue = mq.create_queue().unwrap();
        assert!(rng.process_queue(0, &mut q, &mem));
        assert_eq!(used(&mq), vec![(0, 0), (1, 0), (2, 0)]);
        assert_eq!(read_guest(&mem, BUF, 64), [FILL; 64]);
        assert_eq!(read_guest(&mem, BUF + 0x2000, 64), [FILL; 64]);
        assert_eq!(
            rng.stats(),
            RngStats {
                requests: 3,
                bytes: 0
            }
        );
    }

    #[test]
    fn buffers_outside_guest_memory_get_zero() {
        let mem = mem();
        let mq = setup(&mem);
        let mut rng = Rng::new();
        let end = MEM_SIZE as u64;
        let bad: Vec<Vec<(u64, u32, bool)>> = vec![
            vec![(end - 10, 100, true)], // straddles the end of RAM
            vec![(end, 16, true)],
            vec![(u64::MAX - 10, 100, true)],
            vec![(BUF, u32::MAX, true)],
            // A good buffer before a bad one: nothing written to either.
            vec![(BUF, 64, true), (end + 0x1000, 64, true)],
        ];
        let mut at = 0u16;
        for chain in &bad {
            add_chain(&mq, at, chain);
            at += chain.len() as u16;
        }
        // Next index out of the table.
        let out = [RawDescriptor::from(SplitDescriptor::new(
            BUF + 0x1000,
            64,
            F_NEXT | F_WRITE,
            999,
        ))];
        mq.add_desc_chains(&out, at).unwrap();
        at += 1;
        // A loop: at -> at + 1 -> at.
        let looped = [
            RawDescriptor::from(SplitDescriptor::new(
                BUF + 0x2000,
                64,
                F_NEXT | F_WRITE,
                at + 1,
            )),
            RawDescriptor::from(SplitDescriptor::new(BUF + 0x3000, 64, F_NEXT | F_WRITE, at)),
        ];
        mq.add_desc_chains(&looped, at).unwrap();
        at += 2;
        add_chain(&mq, at, &[(BUF + 0x4000, 32, true)]);
        let mut q: Queue = mq.create_queue().unwrap();
        assert!(rng.process_queue(0, &mut q, &mem));
        let u = used(&mq);
        assert_eq!(u.len(), bad.len() + 3);
        assert!(u[..bad.len() + 2].iter().all(|&(_, l)| l == 0), "{u:?}");
        assert_eq!(u[bad.len() + 2], (u32::from(at), 32));
        assert_eq!(read_guest(&mem, BUF, 64), [FILL; 64]);
        assert_eq!(read_guest(&mem, BUF + 0x1000, 64), [FILL; 64]);
        assert!(changed(&read_guest(&mem, BUF + 0x4000, 32)));
        assert_eq!(rng.stats().bytes, 32);
    }

    #[test]
    fn at_most_64_kib_per_chain() {
        let mem = mem();
        let mq = setup(&mem);
        let mut rng = Rng::new();
        let cap = MAX_CHAIN_BYTES as u64;
        // One buffer of twice the cap; then three of 40 KiB: the third is left alone.
        add_chain(&mq, 0, &[(BUF, 2 * cap as u32, true)]);
        let big = BUF + 0x4_0000;
        let part = 40 * 1024u64;
        add_chain(
            &mq,
            1,
            &[
                (big, part as u32, true),
                (big + part, part as u32, true),
                (big + 2 * part, part as u32, true),
            ],
        );
        let mut q: Queue = mq.create_queue().unwrap();
        assert!(rng.process_queue(0, &mut q, &mem));
        assert_eq!(used(&mq), vec![(0, cap as u32), (1, cap as u32)]);
        assert!(changed(&read_guest(&mem, BUF, MAX_CHAIN_BYTES)));
        assert_eq!(read_guest(&mem, BUF + cap, 4096), [FILL; 4096]);
        assert!(changed(&read_guest(&mem, big, MAX_CHAIN_BYTES)));
        assert_eq!(read_guest(&mem, big + cap, 4096), [FILL; 4096]);
        assert_eq!(rng.stats().bytes, 2 * cap);
    }

    #[test]
    fn through_the_transport() {
        let mem = mem();
        let line = Arc::new(Line::default());
        let mut t = MmioTransport::new(
            Box::new(Rng::new()),
            mem.clone(),
            Arc::new(VirtioInterrupt::new(line)),
        )
        .unwrap();
        let mut b = [0u8; 4];
        t.read(reg::DEVICE_ID, &mut b);
        assert_eq!(u32::from_le_bytes(b), 4);
        t.read(reg::CONFIG, &mut b);
        assert_eq!(b, [0; 4]);
        assert_eq!(t.counters(), vec![("requests", 0), ("bytes", 0)]);
    }
}
