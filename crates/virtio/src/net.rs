//! virtio-net (virtio spec 1.2, 5.1) backed by a Linux tap.
//!
//! Two queues: receive (0) and transmit (1), one queue pair. Every frame on either queue is preceded by
//! the 12-byte `struct virtio_net_hdr_v1`, which the tap (opened with `IFF_VNET_HDR` and a header size
//! of 12) uses too: headers pass through unchanged, except `num_buffers`, which the device sets on
//! receive. Checksum and TCP segmentation offloads work both ways (the guest's GUEST_* choices are
//! applied to the tap with `TUNSETOFFLOAD`); UFO/USO and ECN are not offered.
//!
//! Transmit (on a queue 1 notification): every chain is gathered (device-readable descriptors only)
//! into a bounce buffer with vm-memory's checked accessors and written to the tap with one write;
//! malformed chains and oversize frames are dropped and counted; chains are always returned (used
//! length 0).
//!
//! Receive: when the tap is readable ([`VirtioDevice::process_backend`]) or the driver made receive
//! buffers available (a queue 0 notification, [`VirtioDevice::process_queue`]), frames are read from
//! the tap and copied into receive chains: into one chain, or with VIRTIO_NET_F_MRG_RXBUF into as many
//! as needed (`num_buffers` tells the driver how many). Chains taken from the ring are kept until a
//! frame uses them, so a frame waiting for more buffers never loses the ones it already has. A frame
//! that finds too few buffers stays pending and the device reports itself stalled (the I/O thread
//! then stops polling the tap until queue 0 is notified); a frame the buffers can never hold (larger
//! than a whole single buffer without MRG_RXBUF, or than the whole ring with it) is dropped and
//! counted.

use std::collections::VecDeque;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};
use vmm_sys_util::eventfd::EventFd;

use crate::device::{read_config_bytes, serve_chains, BackendStatus, VirtioDevice};
use crate::rate_limiter::{self, RateLimiter, RateLimiterConfig};
use crate::tap::{Tap, TapError, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, VNET_HDR_LEN};
use crate::vhost_net::{VhostNetBackend, VhostNetError};
use crate::{
    device_type, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};

/// Size of each of the two queues.
pub const QUEUE_SIZE: u16 = 256;
/// Largest Ethernet frame (without the virtio-net header) carried either way: the largest GSO packet
/// Linux builds without BIG TCP (64 KiB) behind an Ethernet header with one VLAN tag.
pub const MAX_FRAME_LEN: usize = 65_536 + 14 + 4;
/// Smallest frame carried (an Ethernet header).
const MIN_FRAME_LEN: usize = 14;

/// Index of the receive queue.
const RX_QUEUE: usize = 0;
/// Index of the transmit queue.
const TX_QUEUE: usize = 1;
/// Frames received per call at most, so one busy tap cannot monopolise the I/O thread (epoll is
/// level-triggered: the rest comes on the next round).
const RX_BATCH: usize = 64;

/// Feature bit: the device handles packets with a partial checksum (transmit).
const VIRTIO_NET_F_CSUM: u32 = 0;
/// Feature bit: the driver handles packets with a partial checksum (receive).
const VIRTIO_NET_F_GUEST_CSUM: u32 = 1;
/// Feature bit: the config space has a valid MAC address.
const VIRTIO_NET_F_MAC: u32 = 5;
/// Feature bit: the driver can receive TSOv4.
const VIRTIO_NET_F_GUEST_TSO4: u32 = 7;
/// Feature bit: the driver can receive TSOv6.
const VIRTIO_NET_F_GUEST_TSO6: u32 = 8;
/// Feature bit: the device can receive (from the driver) TSOv4.
const VIRTIO_NET_F_HOST_TSO4: u32 = 11;
/// Feature bit: the device can receive (from the driver) TSOv6.
const VIRTIO_NET_F_HOST_TSO6: u32 = 12;
/// Feature bit: the driver can merge receive buffers.
const VIRTIO_NET_F_MRG_RXBUF: u32 = 15;
/// Feature bit: the config space has a valid link status.
const VIRTIO_NET_F_STATUS: u32 = 16;

/// Header flag: the checksum starting at `csum_start` must be completed at `csum_offset`.
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// Header flag: the checksum was validated.
const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// Header gso_type: no segmentation.
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// Header gso_type: TCP over IPv4.
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// Header gso_type: TCP over IPv6.
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;

/// Config space status bit: the link is up.
const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// Length of the config space served: mac, status, max_virtqueue_pairs.
const CONFIG_LEN: usize = 10;

/// Errors setting up a network device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The tap cannot be opened or configured.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// A MAC address cannot be parsed, or is all zeros.
    #[error(
        "invalid MAC address {0:?}: expected six two-digit hexadecimal bytes separated by ':' \
         (e.g. 52:54:00:12:34:56), not all zero"
    )]
    InvalidMac(String),
    /// A MAC address is a multicast address.
    #[error(
        "MAC address {0} is a multicast address: a network card needs a unicast one (the lowest \
         bit of the first byte clear, e.g. 52:54:00:12:34:56)"
    )]
    MulticastMac(String),
}

/// Frame and error counters of a [`Net`] device.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    /// Frames written to the tap.
    pub tx_frames: u64,
    /// Bytes of those frames (without the virtio-net header).
    pub tx_bytes: u64,
    /// Transmit chains dropped as malformed (layout, guest addresses, length, header).
    pub tx_malformed: u64,
    /// Frames the tap refused.
    pub tx_errors: u64,
    /// Frames delivered to the guest.
    pub rx_frames: u64,
    /// Bytes of those frames (without the virtio-net header).
    pub rx_bytes: u64,
    /// Frames dropped because they are larger than [`MAX_FRAME_LEN`] or than the receive buffers
    /// can ever hold.
    pub rx_too_big: u64,
    /// Frames from the tap dropped as malformed (too short, offloads the guest did not negotiate).
    pub rx_malformed: u64,
    /// Receive chains unusable (device-readable or out-of-memory descriptors, too short, broken),
    /// returned with used length 0.
    pub rx_bad_buffers: u64,
    /// Tap read failures.
    pub rx_errors: u64,
}

/// A byte range of guest memory from one descriptor, already checked to lie inside guest RAM.
#[derive(Debug, Clone, Copy)]
struct Segment {
    addr: GuestAddress,
    len: usize,
}

/// A receive chain taken from the ring and not used yet.
#[derive(Debug)]
struct RxChain {
    head: u16,
    segments: Vec<Segment>,
    /// Total bytes of `segments`.
    capacity: usize,
    /// Number of descriptors of the chain.
    descriptors: usize,
}

/// What became of a pending received frame.
enum Delivery {
    Delivered,
    Dropped,
    NoBuffers,
}

/// The outcome of receive processing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RxStatus {
    /// Used buffers were added.
    added: bool,
    /// A frame waits for receive buffers, or the tap failed: stop polling it until queue 0 is
    /// notified.
    stalled: bool,
}

/// Parses a MAC address written as six hexadecimal bytes separated by ':' (e.g. "52:54:00:12:34:56").
/// Multicast and all-zero addresses are refused.
pub fn parse_mac(text: &str) -> Result<[u8; 6], NetError> {
    let invalid = || NetError::InvalidMac(text.to_string());
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(invalid)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
    }
    if parts.next().is_some() || mac == [0; 6] {
        return Err(invalid());
    }
    if mac[0] & 1 != 0 {
        return Err(NetError::MulticastMac(text.to_string()));
    }
    Ok(mac)
}

/// A stable, locally administered unicast MAC address derived from `seed` (e.g. the tap name):
/// 52:54:00 (the prefix QEMU uses) followed by three bytes of an FNV-1a hash of the seed, so the same
/// seed always gives the same address, whatever the build.
pub fn generated_mac(seed: &str) -> [u8; 6] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let folded = hash ^ (hash >> 24) ^ (hash >> 48);
    let b = folded.to_le_bytes();
    [0x52, 0x54, 0x00, b[0], b[1], b[2]]
}

/// Reads the device-readable chain of a transmit request into `buf`; returns the number of bytes.
fn gather_tx<I: Iterator<Item = Descriptor>>(
    mem: &GuestMemoryMmap,
    chain: I,
    buf: &mut [u8],
) -> Result<usize, &'static str> {
    let mut len = 0usize;
    let mut last_has_next = false;
    for desc in chain {
        last_has_next = desc.has_next();
        if desc.is_write_only() {
            return Err("device-writable descriptor in a transmit chain");
        }
        let n = desc.len() as usize;
        if n == 0 {
            continue;
        }
        let dst = len
            .checked_add(n)
            .and_then(|end| buf.get_mut(len..end))
            .ok_or("frame longer than the maximum frame size")?;
        mem.read_slice(dst, desc.addr())
            .map_err(|_| "descriptor outside guest memory")?;
        len += n;
    }
    // The iterator stops early (without error) on a loop, an index out of the table or a bad indirect
    // table: the last descriptor then still has NEXT set.
    if last_has_next {
        return Err("descriptor chain broken or too long");
    }
    if len < VNET_HDR_LEN + MIN_FRAME_LEN {
        return Err("shorter than the virtio-net header and an Ethernet header");
    }
    Ok(len)
}

/// Takes a receive chain apart into guest memory segments.
fn parse_rx_chain<I: Iterator<Item = Descriptor>>(
    mem: &GuestMemoryMmap,
    head: u16,
    chain: I,
) -> Result<RxChain, &'static str> {
    let mut rx = RxChain {
        head,
        segments: Vec::new(),
        capacity: 0,
        descriptors: 0,
    };
    let mut last_has_next = false;
    for desc in chain {
        rx.descriptors += 1;
        last_has_next = desc.has_next();
        if !desc.is_write_only() {
            return Err("device-readable descriptor in a receive chain");
        }
        let len = desc.len() as usize;
        if len == 0 {
            continue;
        }
        if !mem.check_range(desc.addr(), len, Permissions::Write) {
            return Err("descriptor outside guest memory");
        }
        // Frames are at most MAX_FRAME_LEN + header: no need to count beyond.
        rx.capacity = rx.capacity.saturating_add(len);
        rx.segments.push(Segment {
            addr: desc.addr(),
            len,
        });
    }
    if last_has_next {
        return Err("descriptor chain broken or too long");
    }
    if rx.capacity < VNET_HDR_LEN {
        return Err("receive buffer smaller than the virtio-net header");
    }
    Ok(rx)
}

/// Copies `data` into the segments of `chain` (which must be large enough, checked by the caller).
fn write_chain(mem: &GuestMemoryMmap, chain: &RxChain, data: &[u8]) -> Result<(), ()> {
    let mut done = 0usize;
    for seg in &chain.segments {
        if done == data.len() {
            break;
        }
        let n = seg.len.min(data.len() - done);
        mem.write_slice(&data[done..done + n], seg.addr)
            .map_err(|_| ())?;
        done += n;
    }
    if done == data.len() {
        Ok(())
    } else {
        Err(())
    }
}

/// A virtio-net device backed by a tap.
///
/// [`VirtioDevice::process_queue`] and [`VirtioDevice::process_backend`] report used buffers without
/// applying notification suppression (the transport does).
pub struct Net {
    tap: Tap,
    mac: [u8; 6],
    queue_sizes: [u16; 2],
    acked_features: u64,
    config: [u8; CONFIG_LEN],
    /// The frame being received (header included): `rx_len` bytes, 0 when none is pending. One byte
    /// longer than the largest frame accepted, to notice truncated datagrams.
    rx_buf: Vec<u8>,
    rx_len: usize,
    /// Receive chains taken from the ring, not used yet (in ring order).
    rx_chains: VecDeque<RxChain>,
    /// Number of descriptors of `rx_chains`.
    rx_chain_descriptors: usize,
    /// Bounce buffer of a transmitted frame (header included).
    tx_buf: Vec<u8>,
    stats: NetStats,
    /// Limits of what the guest receives (frames read from the tap) and sends.
    rx_limiter: Option<RateLimiter>,
    tx_limiter: Option<RateLimiter>,
    /// The in-kernel data path, when `vhost=on`: then rvvmm only negotiates and relays interrupts.
    vhost: Option<VhostNetBackend>,
}

impl Net {
    /// A network card with MAC address `mac` whose frames go to and come from `tap`.
    pub fn new(tap: Tap, mac: [u8; 6]) -> Net {
        let mut config = [0u8; CONFIG_LEN];
        config[0..6].copy_from_slice(&mac);
        config[6..8].copy_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        config[8..10].copy_from_slice(&1u16.to_le_bytes());
        Net {
            tap,
            mac,
            queue_sizes: [QUEUE_SIZE; 2],
            acked_features: 0,
            config,
            rx_buf: vec![0; VNET_HDR_LEN + MAX_FRAME_LEN + 1],
            rx_len: 0,
            rx_chains: VecDeque::new(),
            rx_chain_descriptors: 0,
            tx_buf: vec![0; VNET_HDR_LEN + MAX_FRAME_LEN],
            stats: NetStats::default(),
            rx_limiter: None,
            tx_limiter: None,
            vhost: None,
        }
    }

    /// Moves the data path into the kernel (/dev/vhost-net) for guest RAM `mem`; on error the device
    /// keeps its userspace data path.
    pub fn enable_vhost(&mut self, mem: &GuestMemoryMmap) -> Result<(), VhostNetError> {
        self.vhost = Some(VhostNetBackend::new(mem)?);
        Ok(())
    }

    /// Whether the data path is vhost-net.
    pub fn uses_vhost(&self) -> bool {
        self.vhost.is_some()
    }

    /// Opens (or creates) the tap interface `tap_name` and puts a network card on it, with MAC address
    /// `mac`, by default [`generated_mac`] of the tap name.
    pub fn open(tap_name: &str, mac: Option<[u8; 6]>) -> Result<Net, NetError> {
        let tap = Tap::open_or_create(tap_name)?;
        let mac = mac.unwrap_or_else(|| generated_mac(tap.name()));
        Ok(Net::new(tap, mac))
    }

    /// A network card on a tap fd someone else opened (see [`Tap::from_tap_fd`]).
    pub fn from_tap_fd(fd: std::os::fd::OwnedFd, mac: Option<[u8; 6]>) -> Result<Net, NetError> {
        let tap = Tap::from_tap_fd(fd)?;
        let mac = mac.unwrap_or_else(|| generated_mac(tap.name()));
        Ok(Net::new(tap, mac))
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The tap interface name.
    pub fn tap_name(&self) -> &str {
        self.tap.name()
    }
    /// Limits what the guest receives and what it sends, each with its own limiter built from `config`
    /// (as cloud-hypervisor applies one configuration to both directions). The userspace data path
    /// only: with vhost the kernel moves the frames.
    pub fn with_rate_limiters(mut self, config: &RateLimiterConfig) -> std::io::Result<Net> {
        self.rx_limiter = Some(RateLimiter::new(config)?);
        self.tx_limiter = Some(RateLimiter::new(config)?);
        Ok(self)
    }

    /// Frame and error counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// With vhost, the ring and transport features the kernel does not support are withdrawn; the
    /// offload features stay (the tap implements them).
    fn vhost_mask(&self) -> u64 {
        match &self.vhost {
            Some(v) => {
                let kernel_bits = (1u64 << VIRTIO_F_VERSION_1)
                    | (1u64 << VIRTIO_RING_F_INDIRECT_DESC)
                    | (1u64 << VIRTIO_NET_F_MRG_RXBUF);
                !kernel_bits | v.features()
            }
            None => u64::MAX,
        }
    }

    fn acked(&self, bit: u32) -> bool {
        self.acked_features & (1 << bit) != 0
    }

    /// The `TUN_F_*` offloads matching the negotiated GUEST_* features (TSO only with checksum
    /// offload, as the spec and the tap require).
    fn tap_offload(&self) -> u32 {
        if !self.acked(VIRTIO_NET_F_GUEST_CSUM) {
            return 0;
        }
        let mut flags = TUN_F_CSUM;
        if self.acked(VIRTIO_NET_F_GUEST_TSO4) {
            flags |= TUN_F_TSO4;
        }
        if self.acked(VIRTIO_NET_F_GUEST_TSO6) {
            flags |= TUN_F_TSO6;
        }
        flags
    }

    fn set_tap_offload(&mut self, flags: u32) {
        if let Err(e) = self.tap.set_offload(flags) {
            log::warn!("virtio-net: {e}; offloaded frames will not be received");
        }
    }

    /// Checks the header of a transmitted frame against the negotiated features.
    fn check_tx_header(&self, hdr: &[u8]) -> Result<(), &'static str> {
        if hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 && !self.acked(VIRTIO_NET_F_CSUM) {
            return Err("partial checksum without VIRTIO_NET_F_CSUM");
        }
        let allowed = match hdr[1] {
            VIRTIO_NET_HDR_GSO_NONE => true,
            VIRTIO_NET_HDR_GSO_TCPV4 => self.acked(VIRTIO_NET_F_HOST_TSO4),
            VIRTIO_NET_HDR_GSO_TCPV6 => self.acked(VIRTIO_NET_F_HOST_TSO6),
            _ => false,
        };
        if !allowed {
            return Err("segmentation offload type not negotiated");
        }
        Ok(())
    }

    /// Checks (and where needed adjusts) the header of a frame from the tap for the guest: offloads
    /// it did not negotiate cannot be undone here, so such frames are refused.
    fn fix_rx_header(&self, hdr: &mut [u8]) -> Result<(), &'static str> {
        let offload = self.tap_offload();
        let csum = offload & TUN_F_CSUM != 0;
        if hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 && !csum {
            return Err("partial checksum the guest did not negotiate");
        }
        let mut known = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        if csum {
            known |= VIRTIO_NET_HDR_F_DATA_VALID;
        }
        hdr[0] &= known;
        let allowed = match hdr[1] {
            VIRTIO_NET_HDR_GSO_NONE => true,
            VIRTIO_NET_HDR_GSO_TCPV4 => offload & TUN_F_TSO4 != 0,
            VIRTIO_NET_HDR_GSO_TCPV6 => offload & TUN_F_TSO6 != 0,
            _ => false,
        };
        if !allowed {
            return Err("segmentation offload the guest did not negotiate");
        }
        Ok(())
    }

    /// Transmits every available chain of the transmit queue.
    fn process_tx(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut limiter = self.tx_limiter.take();
        let added = serve_chains("virtio-net", queue, mem, limiter.as_mut(), |chain| {
            let head = chain.head_index();
            let frame = gather_tx(mem, chain, &mut self.tx_buf)
                .and_then(|len| self.check_tx_header(&self.tx_buf[..len]).map(|()| len));
            match frame {
                Ok(len) => {
                    self.send(len);
                    (0, len as u64)
                }
                Err(why) => {
                    log::debug!("virtio-net: transmit chain {head} dropped: {why}");
                    self.stats.tx_malformed += 1;
                    (0, 0)
                }
            }
        });
        self.tx_limiter = limiter;
        added
    }

    /// Writes the first `len` bytes of the transmit buffer to the tap.
    fn send(&mut self, len: usize) {
        let result = loop {
            match self.tap.write(&self.tx_buf[..len]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) if n != len => {
                    break Err(io::Error::other(format!("short write ({n} bytes)")))
                }
                other => break other.map(|_| ()),
            }
        };
        match result {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += (len - VNET_HDR_LEN) as u64;
            }
            Err(e) => {
                // Full tap queue (EAGAIN) or a frame the kernel refused: dropped, like a busy link.
                self.stats.tx_errors += 1;
                if self.stats.tx_errors == 1 {
                    log::warn!(
                        "virtio-net: cannot write a frame to {}: {e}",
                        self.tap.name()
                    );
                } else {
                    log::debug!(
                        "virtio-net: cannot write a frame to {}: {e}",
                        self.tap.name()
                    );
                }
            }
        }
    }

    /// Reads frames from the tap and delivers them, the pending one first, until the tap has no more,
    /// the receive buffers run out or [`RX_BATCH`] frames were handled.
    fn process_rx(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> RxStatus {
        let mut status = RxStatus::default();
        for _ in 0..RX_BATCH {
            if self.rx_len == 0 {
                if let Some(l) = &mut self.rx_limiter {
                    if !l.allows() {
                        // Stop polling the tap; the limiter's timer brings the I/O thread back.
                        status.stalled = true;
                        return status;
                    }
                }
                match self.tap.read(&mut self.rx_buf) {
                    Ok(0) => {
                        self.rx_error(&io::Error::from(io::ErrorKind::UnexpectedEof));
                        status.stalled = true;
                        return status;
                    }
                    Ok(n) => {
                        if let Some(l) = &mut self.rx_limiter {
                            l.consume(1, n as u64);
                        }
                        if let Err(why) = self.accept_frame(n) {
                            log::debug!("virtio-net: received frame of {n} bytes dropped: {why}");
                            continue;
                        }
                        self.rx_len = n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return status,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // E.g. the interface was deleted: wait for the driver before trying again,
                        // rather than spinning on an fd that stays readable.
                        self.rx_error(&e);
                        status.stalled = true;
                        return status;
                    }
                }
            }
            match self.deliver(queue, mem, &mut status.added) {
                Delivery::Delivered | Delivery::Dropped => self.rx_len = 0,
                Delivery::NoBuffers => {
                    status.stalled = true;
                    return status;
                }
            }
        }
        status
    }

    fn rx_error(&mut self, e: &io::Error) {
        self.stats.rx_errors += 1;
        if self.stats.rx_errors == 1 {
            log::warn!("virtio-net: cannot read from {}: {e}", self.tap.name());
        } else {
            log::debug!("virtio-net: cannot read from {}: {e}", self.tap.name());
        }
    }

    /// Validates the `n`-byte frame just read into the receive buffer, counting the drops.
    fn accept_frame(&mut self, n: usize) -> Result<(), &'static str> {
        if n > VNET_HDR_LEN + MAX_FRAME_LEN {
            self.stats.rx_too_big += 1;
            return Err("larger than the maximum frame size");
        }
        if n < VNET_HDR_LEN + MIN_FRAME_LEN {
            self.stats.rx_malformed += 1;
            return Err("shorter than the virtio-net header and an Ethernet header");
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr.copy_from_slice(&self.rx_buf[..VNET_HDR_LEN]);
        if let Err(why) = self.fix_rx_header(&mut hdr) {
            self.stats.rx_malformed += 1;
            return Err(why);
        }
        self.rx_buf[..VNET_HDR_LEN].copy_from_slice(&hdr);
        Ok(())
    }

    /// How many of the reserved chains the pending frame needs, if they suffice.
    fn chains_needed(&self, len: usize, mergeable: bool) -> Option<usize> {
        if !mergeable {
            return self
                .rx_chains
                .front()
                .filter(|c| c.capacity >= len)
                .map(|_| 1);
        }
        let mut capacity = 0usize;
        for (i, chain) in self.rx_chains.iter().enumerate() {
            capacity = capacity.saturating_add(chain.capacity);
            if capacity >= len {
                return Some(i + 1);
            }
        }
        None
    }

    /// Delivers the pending frame into receive chains, taking more from the ring as needed.
    fn deliver(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, added: &mut bool) -> Delivery {
        let len = self.rx_len;
        let mergeable = self.acked(VIRTIO_NET_F_MRG_RXBUF);
        // At most one ring's worth of chains per call: a driver that keeps offering unusable buffers as
        // fast as they are returned cannot hold the I/O thread (the frame waits, as for want of buffers).
        let mut budget = usize::from(queue.size());
        loop {
            if let Some(count) = self.chains_needed(len, mergeable) {
                self.write_frame(queue, mem, count);
                *added = true;
                return Delivery::Delivered;
            }
            // Buffers that can never hold the frame: without merging, the next buffer is too small
            // (it is kept for the next frames); with merging, the whole ring is not enough.
            let ring_exhausted =
                mergeable && self.rx_chain_descriptors >= usize::from(queue.size());
            if (!mergeable && !self.rx_chains.is_empty()) || ring_exhausted {
                log::debug!(
                    "virtio-net: received frame of {len} bytes larger than the receive buffers"
                );
                self.stats.rx_too_big += 1;
                return Delivery::Dropped;
            }
            if budget == 0 {
                return Delivery::NoBuffers;
            }
            budget -= 1;
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                return Delivery::NoBuffers;
            };
            let head = chain.head_index();
            match parse_rx_chain(mem, head, chain) {
                Ok(rx) => {
                    self.rx_chain_descriptors += rx.descriptors;
                    self.rx_chains.push_back(rx);
                }
                Err(why) => {
                    // Never part of a frame, so returning it now cannot split one in the used ring.
                    log::debug!("virtio-net: receive chain {head} unusable: {why}");
                    self.stats.rx_bad_buffers += 1;
                    match queue.add_used(mem, head, 0) {
                        Ok(()) => *added = true,
                        Err(e) => {
                            log::warn!("virtio-net: cannot return descriptor chain {head}: {e}")
                        }
                    }
                }
            }
        }
    }

    /// Copies the pending frame into the first `count` reserved chains and returns them.
    fn write_frame(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap, count: usize) {
        let len = self.rx_len;
        // count <= rx_chains.len(), bounded by the ring: fits in u16 (else say u16::MAX, never reached).
        let num_buffers = u16::try_from(count).unwrap_or(u16::MAX);
        self.rx_buf[VNET_HDR_LEN - 2..VNET_HDR_LEN].copy_from_slice(&num_buffers.to_le_bytes());
        let mut offset = 0usize;
        for _ in 0..count {
            let Some(chain) = self.rx_chains.pop_front() else {
                break;
            };
            self.rx_chain_descriptors = self.rx_chain_descriptors.saturating_sub(chain.descriptors);
            let n = chain.capacity.min(len - offset);
            if write_chain(mem, &chain, &self.rx_buf[offset..offset + n]).is_err() {
                log::warn!("virtio-net: cannot write receive chain {}", chain.head);
            }
            offset += n;
            // n <= len <= VNET_HDR_LEN + MAX_FRAME_LEN.
            if let Err(e) = queue.add_used(mem, chain.head, n as u32) {
                log::warn!(
                    "virtio-net: cannot return descriptor chain {}: {e}",
                    chain.head
                );
            }
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += (len - VNET_HDR_LEN) as u64;
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        device_type::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        [
            VIRTIO_F_VERSION_1,
            VIRTIO_RING_F_INDIRECT_DESC,
            VIRTIO_NET_F_CSUM,
            VIRTIO_NET_F_GUEST_CSUM,
            VIRTIO_NET_F_MAC,
            VIRTIO_NET_F_GUEST_TSO4,
            VIRTIO_NET_F_GUEST_TSO6,
            VIRTIO_NET_F_HOST_TSO4,
            VIRTIO_NET_F_HOST_TSO6,
            VIRTIO_NET_F_MRG_RXBUF,
            VIRTIO_NET_F_STATUS,
        ]
        .iter()
        .fold(0, |f, &bit| f | (1u64 << bit))
            & self.vhost_mask()
            // Notification suppression on the userspace data path (vhost does its own, on rings this side
            // does not follow).
            | if self.vhost.is_none() {
                1u64 << VIRTIO_RING_F_EVENT_IDX
            } else {
                0
            }
    }

    /// The receive queue's buffers are taken only as frames arrive.
    fn drains_queue(&self, index: usize) -> bool {
        index != RX_QUEUE
    }

    /// Records the features and lets the tap hand over the offloaded frames the guest accepts.
    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.features();
        let offload = self.tap_offload();
        self.set_tap_offload(offload);
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    /// Queue 0 (receive): the driver added receive buffers: delivers the pending frame and whatever
    /// the tap has. Queue 1 (transmit): sends every available frame.
    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        if self.vhost.is_some() {
            return false;
        }
        match index {
            RX_QUEUE => self.process_rx(queue, mem).added,
            TX_QUEUE => self.process_tx(queue, mem),
            _ => {
                log::warn!("virtio-net: notification for nonexistent queue {index}");
                false
            }
        }
    }

    fn backend_fd(&self) -> Option<RawFd> {
        match &self.vhost {
            // vhost signals used buffers on its call eventfd: the I/O thread raises the interrupt.
            Some(v) => Some(v.call_fd().as_raw_fd()),
            None => Some(self.tap.as_raw_fd()),
        }
    }

    fn activate(
        &mut self,
        queues: &[Queue],
        kicks: &[EventFd],
        _mem: &GuestMemoryMmap,
    ) -> Result<(), String> {
        let features = self.acked_features;
        match &mut self.vhost {
            Some(v) => v
                .start(features, queues, kicks, self.tap.file())
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn owns_queue_notifications(&self) -> bool {
        self.vhost.is_some()
    }

    fn timer_fds(&self) -> Vec<RawFd> {
        rate_limiter::timer_fds([&self.rx_limiter, &self.tx_limiter])
    }

    fn timer_fired(&mut self, k: usize) {
        rate_limiter::timer_fired([&mut self.rx_limiter, &mut self.tx_limiter], k);
    }

    fn throttled(&self, index: usize) -> bool {
        match index {
            RX_QUEUE => rate_limiter::blocked(&self.rx_limiter),
            _ => rate_limiter::blocked(&self.tx_limiter),
        }
    }

    /// The tap is readable: receives into queue 0.
    fn process_backend(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> BackendStatus {
        if let Some(v) = &self.vhost {
            // vhost already put the buffers in the used ring.
            return v.signalled();
        }
        let Some(queue) = queues.get_mut(RX_QUEUE).filter(|q| q.ready()) else {
            return BackendStatus {
                notify: false,
                stalled: true,
            };
        };
        let status = self.process_rx(queue, mem);
        BackendStatus {
            notify: status.added,
            stalled: status.stalled,
        }
    }

    fn reset(&mut self) {
        if let Some(v) = &mut self.vhost {
            v.stop(self.queue_sizes.len());
        }
        self.acked_features = 0;
        self.rx_len = 0;
        self.rx_chains.clear();
        self.rx_chain_descriptors = 0;
        if self.tap.offload() != 0 {
            self.set_tap_offload(0);
        }
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let s = self.stats;
        log::info!(
            "virtio-net {}: {} frames ({} bytes) sent, {} malformed, {} refused by the tap; \
             {} frames ({} bytes) received, {} too big, {} malformed, {} bad buffers, {} read errors",
            self.tap.name(),
            s.tx_frames,
            s.tx_bytes,
            s.tx_malformed,
            s.tx_errors,
            s.rx_frames,
            s.rx_bytes,
            s.rx_too_big,
            s.rx_malformed,
            s.rx_bad_buffers,
            s.rx_errors
        );
        Ok(())
    }

    /// With vhost the kernel moves the frames: the counters stay at 0.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats;
        let errors = s.tx_malformed
            + s.tx_errors
            + s.rx_too_big
            + s.rx_malformed
            + s.rx_bad_buffers
            + s.rx_errors;
        vec![
            ("rx_bytes", s.rx_bytes),
            ("rx_frames", s.rx_frames),
            ("tx_bytes", s.tx_bytes),
            ("tx_frames", s.tx_frames),
            ("errors", errors),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::net::UnixDatagram;
    use std::sync::{Arc, Mutex};

    use devices::MmioDevice;
    use event_manager::{MutEventSubscriber, SubscriberOps};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;

    use crate::interrupt::{VirtioInterrupt, INT_VRING};
    use crate::io_thread::{IoEventManager, QueueNotifications};
    use crate::MmioTransport;

    use crate::test_utils::{add_chain, mem, used, Mock, F_INDIRECT, F_NEXT, F_WRITE, MEM_SIZE};
    const RXQ: u64 = 0;
    const TXQ: u64 = 0x1_0000;
    const BUF: u64 = 0x10_0000;
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0xab, 0xcd, 0xef];

    fn bit(b: u32) -> u64 {
        1 << b
    }

    /// A device on one end of a datagram socketpair (the other end plays the host network), with
    /// `features` acked.
    fn device(features: u64) -> (Net, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let tap = Tap::from_fd(OwnedFd::from(a), "test0").unwrap();
        let mut net = Net::new(tap, MAC);
        net.set_acked_features(features | bit(VIRTIO_F_VERSION_1));
        (net, b)
    }

    fn queues(mem: &GuestMemoryMmap) -> (Mock<'_>, Mock<'_>) {
        (
            MockSplitQueue::create(mem, GuestAddress(RXQ), 256),
            MockSplitQueue::create(mem, GuestAddress(TXQ), 256),
        )
    }

    /// A header (with recognisable values in the fields passed through) and an Ethernet frame of
    /// `len` bytes.
    fn packet(hdr: [u8; 10], len: usize, seed: u8) -> Vec<u8> {
        let mut p = hdr.to_vec();
        p.extend_from_slice(&[0, 0]); // num_buffers
        p.extend_from_slice(&MAC);
        p.extend_from_slice(&[0x52, 0x54, 0, 1, 2, seed]);
        p.extend_from_slice(&0x0800u16.to_be_bytes());
        p.extend((0..len - 14).map(|i| (i as u8).wrapping_mul(7) ^ seed));
        p
    }

    const PLAIN: [u8; 10] = [0, 0, 0x22, 0, 0x33, 0, 0x44, 0, 0x55, 0];

    fn read_guest(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    fn recv(peer: &UnixDatagram) -> Option<Vec<u8>> {
        let mut b = vec![0u8; 70_000];
        match peer.recv(&mut b) {
            Ok(n) => Some(b[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn features_and_config() {
        let (mut net, _peer) = device(0);
        assert_eq!(net.device_type(), 1);
        assert_eq!(net.queue_max_sizes(), &[256, 256]);
        let f = net.features();
        for b in [0, 1, 5, 7, 8, 11, 12, 15, 16, 28, 32] {
            assert_ne!(f & bit(b), 0, "bit {b}");
        }
        // Not offered: GUEST/HOST_ECN (9, 13), GUEST/HOST_UFO (10, 14), CTRL_VQ (17), MQ (22),
        // MTU (3). EVENT_IDX (29) is, on the userspace data path.
        assert_ne!(f & bit(29), 0);
        assert!(!net.drains_queue(0) && net.drains_queue(1));
        for b in [3, 9, 10, 13, 14, 17, 22] {
            assert_eq!(f & bit(b), 0, "bit {b}");
        }
        let mut c = [0xffu8; 12];
        net.read_config(0, &mut c);
        assert_eq!(c, [0x52, 0x54, 0, 0xab, 0xcd, 0xef, 1, 0, 1, 0, 0, 0]);
        let mut s = [0u8; 2];
        net.read_config(6, &mut s);
        assert_eq!(u16::from_le_bytes(s), VIRTIO_NET_S_LINK_UP);
        for offset in [10, 0x1000, u64::MAX - 1, u64::MAX] {
            let mut b = [0xffu8; 4];
            net.read_config(offset, &mut b);
            assert_eq!(b, [0; 4], "offset {offset:#x}");
        }
        // Writes are ignored.
        net.write_config(0, &[0; 6]);
        net.read_config(0, &mut c[..6]);
        assert_eq!(c[..6], MAC);
        assert_eq!(net.mac(), MAC);
        assert_eq!(net.tap_name(), "test0");
        assert!(net.backend_fd().is_some());
    }

    #[test]
    fn offloads_follow_guest_features() {
        let (mut net, _peer) = device(0);
        assert_eq!(net.tap.offload(), 0);
        net.set_acked_features(bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4));
        assert_eq!(net.tap.offload(), TUN_F_CSUM | TUN_F_TSO4);
        net.set_acked_features(net.features());
        assert_eq!(net.tap.offload(), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
        // TSO without checksum offload is meaningless (and the tap would ignore it).
        net.set_acked_features(bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_GUEST_TSO6));
        assert_eq!(net.tap.offload(), 0);
        // Host side offloads need nothing from the tap; features not offered are ignored.
        net.set_acked_features(bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_HOST_TSO4) | bit(10));
        assert_eq!(net.tap.offload(), 0);
        assert_eq!(net.acked_features & bit(10), 0);
        net.set_acked_features(bit(VIRTIO_NET_F_GUEST_CSUM));
        assert_eq!(net.tap.offload(), TUN_F_CSUM);
        net.reset();
        assert_eq!(net.tap.offload(), 0);
        assert_eq!(net.acked_features, 0);
    }

    #[test]
    fn mac_addresses() {
        let a = generated_mac("tap0");
        assert_eq!(a, generated_mac("tap0"));
        assert_ne!(a, generated_mac("tap1"));
        assert_eq!(a[..3], [0x52, 0x54, 0x00]);
        // Stable across builds: FNV-1a, not std's unspecified hasher.
        assert_eq!(generated_mac(""), [0x52, 0x54, 0x00, 0x53, 0x0c, 0xbe]);
        assert_eq!(parse_mac("52:54:00:ab:CD:ef").unwrap(), MAC);
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00:ab:cd:e",
            "5:254:00:ab:cd:ef",
            "52-54-00-ab-cd-ef",
            "52:54:00:ab:cd:gg",
            "+5:54:00:ab:cd:ef",
            "00:00:00:00:00:00",
        ] {
            let e = parse_mac(bad).unwrap_err();
            assert!(matches!(e, NetError::InvalidMac(_)), "{bad:?}: {e}");
            assert!(e.to_string().contains("52:54:00:12:34:56"), "{e}");
        }
        let e = parse_mac("01:00:5e:00:00:01").unwrap_err();
        assert!(matches!(e, NetError::MulticastMac(_)), "{e}");
        assert!(e.to_string().contains("multicast"), "{e}");
    }

    #[test]
    fn transmit_frame_arrives_whole() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_CSUM));
        let (_, txm) = queues(&mem);
        let mut hdr = PLAIN;
        hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        let p = packet(hdr, 1500, 1);
        // Header split over two descriptors, frame over two more, anywhere in memory.
        mem.write_slice(&p[..4], GuestAddress(BUF)).unwrap();
        mem.write_slice(&p[4..12], GuestAddress(BUF + 0x100))
            .unwrap();
        mem.write_slice(&p[12..800], GuestAddress(BUF + 0x1000))
            .unwrap();
        mem.write_slice(&p[800..], GuestAddress(BUF + 0x8000))
            .unwrap();
        add_chain(
            &txm,
            0,
            &[
                (BUF, 4, false),
                (BUF + 0x100, 8, false),
                (BUF + 0x1000, 788, false),
                (BUF + 0x8000, p.len() as u32 - 800, false),
            ],
        );
        // And a second frame in one descriptor.
        let q = packet(PLAIN, 60, 2);
        mem.write_slice(&q, GuestAddress(BUF + 0x2_0000)).unwrap();
        add_chain(&txm, 4, &[(BUF + 0x2_0000, q.len() as u32, false)]);
        let mut txq: Queue = txm.create_queue().unwrap();
        assert!(net.process_queue(1, &mut txq, &mem));
        assert_eq!(used(&txm), vec![(0, 0), (4, 0)]);
        assert_eq!(recv(&peer).unwrap(), p);
        assert_eq!(recv(&peer).unwrap(), q);
        assert_eq!(recv(&peer), None);
        let s = net.stats();
        assert_eq!((s.tx_frames, s.tx_bytes), (2, 1500 + 60));
        assert_eq!((s.tx_malformed, s.tx_errors), (0, 0));
    }

    #[test]
    fn transmit_rejects_bad_chains() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_HOST_TSO4) | bit(VIRTIO_NET_F_CSUM));
        let (_, txm) = queues(&mem);
        let p = packet(PLAIN, 100, 3);
        mem.write_slice(&p, GuestAddress(BUF)).unwrap();
        let len = p.len() as u32;
        let end = MEM_SIZE as u64;
        let mut gso = PLAIN;
        gso[1] = VIRTIO_NET_HDR_GSO_TCPV6; // HOST_TSO6 not negotiated
        mem.write_slice(&gso, GuestAddress(BUF + 0x1000)).unwrap();
        let mut ecn = PLAIN;
        ecn[1] = VIRTIO_NET_HDR_GSO_TCPV4 | 0x80; // ECN not offered
        mem.write_slice(&ecn, GuestAddress(BUF + 0x2000)).unwrap();
        let bad: Vec<Vec<(u64, u32, bool)>> = vec![
            vec![(BUF, 12, false), (BUF + 12, len - 12, true)], // device-writable
            vec![(BUF, len, true)],
            vec![(end - 50, 100, false)], // straddles the end of RAM
            vec![(end, len, false)],
            vec![(u64::MAX - 10, len, false)],
            vec![(BUF, 0, false)],  // zero length
            vec![(BUF, 12, false)], // header only
            vec![(BUF, 25, false)], // header and less than an Ethernet header
            // Longer than the maximum frame (and than guest RAM allows).
            vec![(BUF, 40_000, false), (BUF, 40_000, false)],
            vec![(BUF, u32::MAX, false)],
            vec![(BUF + 0x1000, 12, false), (BUF + 12, len - 12, false)],
            vec![(BUF + 0x2000, 12, false), (BUF + 12, len - 12, false)],
        ];
        let mut at = 0u16;
        for chain in &bad {
            add_chain(&txm, at, chain);
            at += chain.len() as u16;
        }
        // A loop: 0 -> 1 -> 0.
        let looped = [
            RawDescriptor::from(SplitDescriptor::new(BUF, 12, F_NEXT, at + 1)),
            RawDescriptor::from(SplitDescriptor::new(BUF + 12, len - 12, F_NEXT, at)),
        ];
        txm.add_desc_chains(&looped, at).unwrap();
        at += 2;
        // An indirect table outside memory.
        let indirect = [RawDescriptor::from(SplitDescriptor::new(
            end, 32, F_INDIRECT, 0,
        ))];
        txm.add_desc_chains(&indirect, at).unwrap();
        at += 1;
        // Next index out of the table.
        let out = [RawDescriptor::from(SplitDescriptor::new(
            BUF, 12, F_NEXT, 999,
        ))];
        txm.add_desc_chains(&out, at).unwrap();
        at += 1;
        // Finally a good one.
        add_chain(&txm, at, &[(BUF, len, false)]);
        let mut txq: Queue = txm.create_queue().unwrap();
        assert!(net.process_queue(1, &mut txq, &mem));
        let u = used(&txm);
        assert_eq!(u.len(), bad.len() + 4);
        assert!(u.iter().all(|&(_, l)| l == 0));
        assert_eq!(recv(&peer).unwrap(), p);
        assert_eq!(recv(&peer), None);
        let s = net.stats();
        assert_eq!((s.tx_frames, s.tx_malformed), (1, bad.len() as u64 + 3));
        // A partial checksum without VIRTIO_NET_F_CSUM is refused too.
        let (mut net, peer) = device(0);
        let mut csum = PLAIN;
        csum[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        mem.write_slice(&csum, GuestAddress(BUF)).unwrap();
        let (_, txm) = queues(&mem);
        add_chain(&txm, 0, &[(BUF, len, false)]);
        let mut txq: Queue = txm.create_queue().unwrap();
        assert!(net.process_queue(1, &mut txq, &mem));
        assert_eq!(recv(&peer), None);
        assert_eq!(net.stats().tx_malformed, 1);
    }

    #[test]
    fn transmit_of_the_largest_frame_and_tap_errors() {
        let mem = mem();
        let (mut net, peer) = device(0);
        let (_, txm) = queues(&mem);
        let p = packet(PLAIN, MAX_FRAME_LEN, 4);
        mem.write_slice(&p, GuestAddress(BUF)).unwrap();
        add_chain(&txm, 0, &[(BUF, p.len() as u32, false)]);
        let mut txq: Queue = txm.create_queue().unwrap();
        assert!(net.process_queue(1, &mut txq, &mem));
        assert_eq!(recv(&peer).unwrap(), p);
        // The peer is gone: the frame is dropped, the chain still returned.
        drop(peer);
        add_chain(&txm, 1, &[(BUF, 100, false)]);
        assert!(net.process_queue(1, &mut txq, &mem));
        assert_eq!(used(&txm), vec![(0, 0), (1, 0)]);
        assert_eq!(net.stats().tx_errors, 1);
        assert_eq!(net.stats().tx_frames, 1);
        // Other queue indices are ignored.
        assert!(!net.process_queue(2, &mut txq, &mem));
    }

    #[test]
    fn receive_frame_lands_with_header() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_GUEST_CSUM));
        let (rxm, txm) = queues(&mem);
        mem.write_slice(&[0xaa; 4096], GuestAddress(BUF)).unwrap();
        // Header and frame split over two descriptors.
        add_chain(&rxm, 0, &[(BUF, 12, true), (BUF + 0x1000, 2048, true)]);
        let mut hdr = PLAIN;
        hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
        let p = packet(hdr, 1514, 5);
        peer.send(&p).unwrap();
        let mut qs = [
            rxm.create_queue::<Queue>().unwrap(),
            txm.create_queue::<Queue>().unwrap(),
        ];
        let status = net.process_backend(&mut qs, &mem);
        assert_eq!(
            status,
            BackendStatus {
                notify: true,
                stalled: false
            }
        );
        assert_eq!(used(&rxm), vec![(0, p.len() as u32)]);
        let mut expected = p.clone();
        expected[10] = 1; // num_buffers
        let mut got = read_guest(&mem, BUF, 12);
        got.extend(read_guest(&mem, BUF + 0x1000, p.len() - 12));
        assert_eq!(got, expected);
        // Nothing written past the frame.
        assert_eq!(read_guest(&mem, BUF + 0x1000 + p.len() as u64 - 12, 1), [0]);
        let s = net.stats();
        assert_eq!((s.rx_frames, s.rx_bytes), (1, 1514));
        // Nothing more: not stalled, nothing to notify.
        assert_eq!(net.process_backend(&mut qs, &mem), BackendStatus::default());
    }

    #[test]
    fn receive_mergeable_over_three_buffers() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_MRG_RXBUF));
        let (rxm, _) = queues(&mem);
        for i in 0..4u16 {
            add_chain(&rxm, i, &[(BUF + 0x1000 * u64::from(i), 100, true)]);
        }
        let p = packet(PLAIN, 238, 6); // 250 bytes with the header
        peer.send(&p).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm), vec![(0, 100), (1, 100), (2, 50)]);
        let mut got = read_guest(&mem, BUF, 100);
        got.extend(read_guest(&mem, BUF + 0x1000, 100));
        got.extend(read_guest(&mem, BUF + 0x2000, 50));
        assert_eq!(u16::from_le_bytes([got[10], got[11]]), 3);
        got[10] = 0;
        assert_eq!(got, p);
        // The fourth buffer serves the next frame.
        let q = packet(PLAIN, 60, 7);
        peer.send(&q).unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm)[3], (3, 72));
        assert_eq!(read_guest(&mem, BUF + 0x3000, 12)[10..], [1, 0]);
    }

    #[test]
    fn receive_without_buffers_stalls_then_delivers() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_MRG_RXBUF));
        let (rxm, txm) = queues(&mem);
        let p = packet(PLAIN, 1000, 8);
        let q = packet(PLAIN, 3000, 9);
        peer.send(&p).unwrap();
        peer.send(&q).unwrap();
        let mut qs = [
            rxm.create_queue::<Queue>().unwrap(),
            txm.create_queue::<Queue>().unwrap(),
        ];
        let stalled = BackendStatus {
            notify: false,
            stalled: true,
        };
        assert_eq!(net.process_backend(&mut qs, &mem), stalled);
        assert_eq!(net.process_backend(&mut qs, &mem), stalled);
        // One 2 KiB buffer: the first frame fits; the second (3 KiB) waits, holding the rest.
        add_chain(&rxm, 0, &[(BUF, 2048, true)]);
        add_chain(&rxm, 1, &[(BUF + 0x1000, 2048, true)]);
        add_chain(&rxm, 2, &[(BUF + 0x2000, 512, true)]);
        assert!(net.process_queue(0, &mut qs[0], &mem));
        assert_eq!(used(&rxm), vec![(0, 1012)]);
        assert_eq!(read_guest(&mem, BUF + 12, 1000), p[12..]);
        assert_eq!(net.rx_len, q.len());
        assert_eq!(net.rx_chains.len(), 2);
        // More buffers: the pending frame goes first, over three buffers.
        add_chain(&rxm, 3, &[(BUF + 0x3000, 2048, true)]);
        let r = packet(PLAIN, 100, 10);
        peer.send(&r).unwrap();
        assert!(net.process_queue(0, &mut qs[0], &mem));
        assert_eq!(
            used(&rxm),
            vec![(0, 1012), (1, 2048), (2, 512), (3, q.len() as u32 - 2560)]
        );
        let mut got = read_guest(&mem, BUF + 0x1000, 2048);
        got.extend(read_guest(&mem, BUF + 0x2000, 512));
        got.extend(read_guest(&mem, BUF + 0x3000, q.len() - 2560));
        assert_eq!(got[10], 3);
        assert_eq!(got[12..], q[12..]);
        // The third frame found no buffer left: stalled, kept.
        assert_eq!(net.rx_len, r.len());
        assert_eq!(net.process_backend(&mut qs, &mem), stalled);
        add_chain(&rxm, 4, &[(BUF + 0x5000, 2048, true)]);
        assert_eq!(
            net.process_backend(&mut qs, &mem),
            BackendStatus {
                notify: true,
                stalled: false
            }
        );
        assert_eq!(used(&rxm)[4], (4, r.len() as u32));
        assert_eq!(net.stats().rx_frames, 3);
        assert_eq!(net.stats().rx_too_big, 0);
    }

    #[test]
    fn receive_frames_too_big_for_the_buffers() {
        let mem = mem();
        // Without merging: a frame larger than the next buffer is dropped, the buffer kept.
        let (mut net, peer) = device(0);
        let (rxm, _) = queues(&mem);
        add_chain(&rxm, 0, &[(BUF, 12, true), (BUF + 0x100, 88, true)]);
        peer.send(&packet(PLAIN, 200, 11)).unwrap();
        let small = packet(PLAIN, 60, 12);
        peer.send(&small).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm), vec![(0, 72)]);
        assert_eq!(read_guest(&mem, BUF + 0x100, 60), small[12..]);
        assert_eq!(net.stats().rx_too_big, 1);

        // With merging: frames larger than the whole ring (16 buffers of 16 bytes) are dropped
        // instead of waiting forever; the buffers serve the next frame.
        let (mut net, peer) = device(bit(VIRTIO_NET_F_MRG_RXBUF));
        let rxm = MockSplitQueue::create(&mem, GuestAddress(RXQ), 16);
        for i in 0..16u16 {
            add_chain(&rxm, i, &[(BUF + 0x100 * u64::from(i), 16, true)]);
        }
        peer.send(&packet(PLAIN, 1000, 13)).unwrap();
        let fits = packet(PLAIN, 50, 14);
        peer.send(&fits).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm), vec![(0, 16), (1, 16), (2, 16), (3, 14)]);
        assert_eq!(net.stats().rx_too_big, 1);
        assert_eq!(net.stats().rx_frames, 1);
        assert_eq!(read_guest(&mem, BUF, 12)[10], 4);
    }

    #[test]
    fn receive_skips_bad_buffers() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_MRG_RXBUF));
        let (rxm, _) = queues(&mem);
        let end = MEM_SIZE as u64;
        let bad: Vec<Vec<(u64, u32, bool)>> = vec![
            vec![(BUF, 100, false)],                       // device-readable
            vec![(BUF, 12, true), (BUF + 12, 100, false)], // readable after writable
            vec![(end - 10, 100, true)],                   // straddles the end of RAM
            vec![(u64::MAX - 10, 100, true)],
            vec![(BUF, 11, true)], // smaller than the header
            vec![(BUF, 0, true)],
        ];
        let mut at = 0u16;
        for chain in &bad {
            add_chain(&rxm, at, chain);
            at += chain.len() as u16;
        }
        let out = [RawDescriptor::from(SplitDescriptor::new(
            BUF,
            64,
            F_NEXT | F_WRITE,
            999,
        ))];
        rxm.add_desc_chains(&out, at).unwrap();
        at += 1;
        add_chain(&rxm, at, &[(BUF + 0x1000, 2048, true)]);
        let p = packet(PLAIN, 500, 15);
        peer.send(&p).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        let u = used(&rxm);
        assert_eq!(u.len(), bad.len() + 2);
        assert!(u[..bad.len() + 1].iter().all(|&(_, l)| l == 0));
        assert_eq!(u[bad.len() + 1], (u32::from(at), p.len() as u32));
        assert_eq!(read_guest(&mem, BUF + 0x1000 + 12, 500), p[12..]);
        assert_eq!(net.stats().rx_bad_buffers, bad.len() as u64 + 1);
        // Bad buffers alone are returned too (and do not count as a place for the frame).
        let q = packet(PLAIN, 60, 16);
        peer.send(&q).unwrap();
        add_chain(&rxm, at + 1, &[(BUF, 100, false)]);
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm).len(), bad.len() + 3);
        assert_eq!(net.rx_len, q.len());
    }

    #[test]
    fn receive_drops_malformed_frames_from_the_backend() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4));
        let (rxm, _) = queues(&mem);
        add_chain(&rxm, 0, &[(BUF, 4096, true)]);
        // Too long (even truncated by the read), too short, offloads not negotiated.
        peer.send(&vec![0u8; VNET_HDR_LEN + MAX_FRAME_LEN + 1])
            .unwrap();
        peer.send(&vec![0u8; VNET_HDR_LEN + MAX_FRAME_LEN + 100])
            .unwrap();
        peer.send(&[0u8; 25]).unwrap();
        peer.send(&[0u8; 5]).unwrap();
        for gso in [
            VIRTIO_NET_HDR_GSO_TCPV6,
            3,
            VIRTIO_NET_HDR_GSO_TCPV4 | 0x80,
            0xff,
        ] {
            let mut h = PLAIN;
            h[1] = gso;
            peer.send(&packet(h, 100, 17)).unwrap();
        }
        // Accepted: TSO4 with a partial checksum; unknown flag bits are cleared.
        let mut h = PLAIN;
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | 0x80;
        h[1] = VIRTIO_NET_HDR_GSO_TCPV4;
        let p = packet(h, 3000, 18);
        peer.send(&p).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm), vec![(0, p.len() as u32)]);
        let got = read_guest(&mem, BUF, p.len());
        assert_eq!(got[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(got[1..10], p[1..10]);
        assert_eq!(got[12..], p[12..]);
        let s = net.stats();
        assert_eq!((s.rx_too_big, s.rx_malformed, s.rx_frames), (2, 6, 1));

        // Without GUEST_CSUM: DATA_VALID is cleared, partial checksums refused.
        let (mut net, peer) = device(0);
        let (rxm, _) = queues(&mem);
        add_chain(&rxm, 0, &[(BUF, 4096, true)]);
        let mut h = PLAIN;
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        peer.send(&packet(h, 100, 19)).unwrap();
        h[0] = VIRTIO_NET_HDR_F_DATA_VALID;
        peer.send(&packet(h, 100, 20)).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(used(&rxm), vec![(0, 112)]);
        assert_eq!(read_guest(&mem, BUF, 1), [0]);
        assert_eq!(read_guest(&mem, BUF + 12 + 11, 1), [20]);
        assert_eq!(net.stats().rx_malformed, 1);
    }

    #[test]
    fn receive_backend_failure_stalls() {
        let mem = mem();
        let (rxm, txm) = queues(&mem);
        add_chain(&rxm, 0, &[(BUF, 4096, true)]);
        let mut qs = [
            rxm.create_queue::<Queue>().unwrap(),
            txm.create_queue::<Queue>().unwrap(),
        ];
        let pipe = || {
            let mut fds = [0; 2];
            // SAFETY: pipe2 writes two fds into the array; return value checked.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: both fds were just created and are owned by nothing else.
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
        };
        // End of file (a pipe whose write end is closed) and a read error (the write end of a pipe
        // cannot be read): stalled rather than spinning on an fd that stays readable.
        let (read_end, write_end) = pipe();
        drop(write_end);
        let (other_read_end, other_write_end) = pipe();
        for fd in [read_end, other_write_end] {
            let mut net = Net::new(Tap::from_fd(fd, "pipe").unwrap(), MAC);
            net.set_acked_features(bit(VIRTIO_F_VERSION_1));
            let status = net.process_backend(&mut qs, &mem);
            assert!(status.stalled, "{status:?}");
            assert_eq!(net.stats().rx_errors, 1);
        }
        drop(other_read_end);
        assert_eq!(used(&rxm), vec![]);
        // A receive queue that is not ready: nothing to do until the driver sets it up.
        let (mut net, peer) = device(0);
        peer.send(&packet(PLAIN, 100, 30)).unwrap();
        qs[0].set_ready(false);
        assert!(net.process_backend(&mut qs, &mem).stalled);
        assert!(net.process_backend(&mut [], &mem).stalled);
        assert_eq!(net.stats().rx_frames, 0);
    }

    #[test]
    fn reset_drops_pending_state() {
        let mem = mem();
        let (mut net, peer) = device(bit(VIRTIO_NET_F_MRG_RXBUF));
        let (rxm, _) = queues(&mem);
        add_chain(&rxm, 0, &[(BUF, 100, true)]);
        peer.send(&packet(PLAIN, 1000, 21)).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(!net.process_queue(0, &mut rxq, &mem));
        assert_eq!((net.rx_len, net.rx_chains.len()), (1012, 1));
        net.reset();
        assert_eq!(
            (net.rx_len, net.rx_chains.len(), net.rx_chain_descriptors),
            (0, 0, 0)
        );
    }

    #[test]
    fn counters() {
        let mem = mem();
        let (mut net, peer) = device(0);
        let (rxm, txm) = queues(&mem);
        assert_eq!(
            net.counters(),
            vec![
                ("rx_bytes", 0),
                ("rx_frames", 0),
                ("tx_bytes", 0),
                ("tx_frames", 0),
                ("errors", 0),
            ]
        );
        // Transmit: one frame of 100 bytes, one malformed chain (header only).
        let p = packet(PLAIN, 100, 22);
        mem.write_slice(&p, GuestAddress(BUF)).unwrap();
        add_chain(&txm, 0, &[(BUF, p.len() as u32, false)]);
        add_chain(&txm, 1, &[(BUF, 12, false)]);
        let mut txq: Queue = txm.create_queue().unwrap();
        assert!(net.process_queue(1, &mut txq, &mem));
        assert_eq!(recv(&peer).unwrap(), p);
        // Receive: one frame of 60 bytes, one bad (device-readable) buffer before the good one.
        add_chain(&rxm, 0, &[(BUF + 0x1000, 100, false)]);
        add_chain(&rxm, 1, &[(BUF + 0x2000, 2048, true)]);
        peer.send(&packet(PLAIN, 60, 23)).unwrap();
        let mut rxq: Queue = rxm.create_queue().unwrap();
        assert!(net.process_queue(0, &mut rxq, &mem));
        assert_eq!(
            net.counters(),
            vec![
                ("rx_bytes", 60),
                ("rx_frames", 1),
                ("tx_bytes", 100),
                ("tx_frames", 1),
                ("errors", 2),
            ]
        );
    }

    use devices::interrupt::test_utils::RecordingLine as Line;

    fn w(t: &Mutex<MmioTransport>, off: u64, v: u32) {
        t.lock().unwrap().write(off, &v.to_le_bytes());
    }

    fn r(t: &Mutex<MmioTransport>, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.lock().unwrap().read(off, &mut b);
        u32::from_le_bytes(b)
    }

    /// The whole path: transport registers, the I/O thread's subscriber on a real epoll loop, the
    /// backend fd taken out of the loop while stalled and put back by a receive queue notification.
    #[test]
    fn through_the_transport_and_the_io_loop() {
        let mem = mem();
        let (net, peer) = device(0);
        let (rxm, txm) = queues(&mem);
        let line = Arc::new(Line::default());
        let t = Arc::new(Mutex::new(
            MmioTransport::new(
                Box::new(net),
                mem.clone(),
                Arc::new(VirtioInterrupt::new(line.clone())),
            )
            .unwrap(),
        ));
        assert_eq!(r(&t, 0x008), 1);
        w(&t, 0x070, 1 | 2);
        w(&t, 0x024, 0);
        w(&t, 0x020, 1 << VIRTIO_NET_F_MRG_RXBUF);
        w(&t, 0x024, 1);
        w(&t, 0x020, 1);
        w(&t, 0x070, 1 | 2 | 8);
        for (i, mq) in [&rxm, &txm].into_iter().enumerate() {
            w(&t, 0x030, i as u32);
            assert_eq!(r(&t, 0x034), 256);
            w(&t, 0x038, 256);
            w(&t, 0x080, mq.desc_table_addr().0 as u32);
            w(&t, 0x090, mq.avail_addr().0 as u32);
            w(&t, 0x0a0, mq.used_addr().0 as u32);
            w(&t, 0x044, 1);
        }
        // Not activated yet: the backend is left alone.
        assert!(t.lock().unwrap().process_backend().stalled);
        w(&t, 0x070, 1 | 2 | 8 | 4);
        assert_eq!(r(&t, 0x070), 15);

        let mut manager = IoEventManager::new().unwrap();
        let sub: Arc<Mutex<dyn MutEventSubscriber + Send>> =
            Arc::new(Mutex::new(QueueNotifications::new(t.clone())));
        manager.add_subscriber(sub);
        // The kicks written at DRIVER_OK: nothing to do yet.
        while manager.run_with_timeout(0).unwrap() > 0 {}
        assert!(used(&rxm).is_empty());

        // A frame without receive buffers: the backend fd is dropped from the loop...
        let p = packet(PLAIN, 200, 22);
        peer.send(&p).unwrap();
        assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
        // ... so a second frame does not wake the loop.
        let q = packet(PLAIN, 300, 23);
        peer.send(&q).unwrap();
        assert_eq!(manager.run_with_timeout(50).unwrap(), 0);
        assert_eq!(r(&t, 0x060), 0);

        // The driver adds buffers and notifies: both frames are delivered, the interrupt raised.
        add_chain(&rxm, 0, &[(BUF, 2048, true)]);
        add_chain(&rxm, 1, &[(BUF + 0x1000, 2048, true)]);
        w(&t, 0x050, 0);
        assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(used(&rxm), vec![(0, 212), (1, 312)]);
        assert_eq!(read_guest(&mem, BUF + 12, 200), p[12..]);
        assert_eq!(read_guest(&mem, BUF + 0x1000 + 12, 300), q[12..]);
        assert_eq!(r(&t, 0x060), INT_VRING);
        w(&t, 0x064, INT_VRING);

        // The backend is watched again: a new frame wakes the loop and is delivered at once.
        add_chain(&rxm, 2, &[(BUF + 0x2000, 2048, true)]);
        let s = packet(PLAIN, 400, 24);
        peer.send(&s).unwrap();
        assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(used(&rxm)[2], (2, 412));
        assert_eq!(r(&t, 0x060), INT_VRING);
        w(&t, 0x064, INT_VRING);

        // Transmit through a queue 1 notification.
        let out = packet(PLAIN, 100, 25);
        mem.write_slice(&out, GuestAddress(BUF + 0x8000)).unwrap();
        add_chain(&txm, 0, &[(BUF + 0x8000, out.len() as u32, false)]);
        w(&t, 0x050, 1);
        assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(recv(&peer).unwrap(), out);
        assert_eq!(used(&txm), vec![(0, 0)]);
        assert_eq!(r(&t, 0x060), INT_VRING);
        assert_eq!(
            *line.0.lock().unwrap(),
            vec![true, false, true, false, true]
        );

        // Reset: the device stops; the backend is dropped from the loop at its next wakeup.
        w(&t, 0x070, 0);
        peer.send(&p).unwrap();
        assert_eq!(manager.run_with_timeout(1000).unwrap(), 1);
        assert_eq!(manager.run_with_timeout(50).unwrap(), 0);
    }
}
