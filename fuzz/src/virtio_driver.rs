//! A fuzzed virtio-mmio driver: the harness shared by the virtio targets. It sets a device up the way a
//! guest driver would (unless the input says not to), then plays a sequence of guest actions from the
//! input: register reads and writes of any offset and size, writes into guest memory (descriptor tables,
//! rings, request headers), queue notifications, and device-specific backend events.
//!
//! Input: `queue_size: u8` (0 = each queue's maximum), `flags: u8` ([`flags`]), then operations until the
//! input ends, each an opcode byte ([`op`]) and its operands.
//!
//! Guest memory is [`MEM_SIZE`] bytes at address 0; queue `i` has its descriptor table at
//! `i * QUEUE_STRIDE`, its available ring 0x1000 after it and its used ring 0x2000 after it.

use std::sync::Arc;

use devices::interrupt::IrqLine;
use devices::MmioDevice;
use virtio::interrupt::Interrupt;
use virtio::mmio::reg;
use virtio::{MmioTransport, VirtioDevice, VirtioInterrupt};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::input::{Builder, Input};

/// Guest memory size.
pub const MEM_SIZE: usize = 0x1_0000;
/// Distance between the ring areas of consecutive queues.
pub const QUEUE_STRIDE: u64 = 0x4000;
/// Offset of a queue's available ring from its descriptor table.
pub const AVAIL_OFFSET: u64 = 0x1000;
/// Offset of a queue's used ring from its descriptor table.
pub const USED_OFFSET: u64 = 0x2000;

/// Header flag bits.
pub mod flags {
    /// Negotiate VIRTIO_RING_F_EVENT_IDX (when offered).
    pub const EVENT_IDX: u8 = 1;
    /// Negotiate VIRTIO_RING_F_INDIRECT_DESC (when offered).
    pub const INDIRECT: u8 = 2;
    /// Accept every feature the device offers.
    pub const ALL_FEATURES: u8 = 4;
    /// Skip the driver's set-up: the operations alone program the device.
    pub const NO_SETUP: u8 = 8;
    /// Device-specific (virtio-blk: open the disk read-only).
    pub const DEVICE: u8 = 16;
}

/// Operation codes.
pub mod op {
    /// Register write: `reg: u8` (offset = reg * 4), `value: u32`.
    pub const WRITE_REG: u8 = 0;
    /// Read: `offset: u16` (mod 0x200), `size: u8` (1, 2, 4 or 8).
    pub const READ: u8 = 1;
    /// Queue notification: `queue: u8` (any number, existing or not).
    pub const NOTIFY: u8 = 2;
    /// Guest memory write: `addr: u16`, then a length byte and the bytes.
    pub const MEM_WRITE: u8 = 3;
    /// Device backend event with data: a length byte and the bytes (virtio-net: a frame from the host).
    pub const BACKEND_DATA: u8 = 4;
    /// Write of any size: `offset: u16` (mod 0x200), `size: u8` (1..=8), then the bytes.
    pub const WRITE_ANY: u8 = 5;
    /// Publish buffers: `queue: u8`, `avail_idx: u16` written to the queue's available ring.
    pub const AVAIL_IDX: u8 = 6;
    /// Device backend event without data (virtio-net: the tap is readable).
    pub const BACKEND_POLL: u8 = 7;
    /// Number of operations.
    pub const COUNT: u8 = 8;
}

/// An interrupt line that goes nowhere.
struct NoLine;

impl IrqLine for NoLine {
    fn set_level(&self, _level: bool) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a device-specific backend does for [`op::BACKEND_DATA`] and [`op::BACKEND_POLL`].
pub trait Backend {
    /// Data arrives from the host side (then the transport's backend is served).
    fn data(&mut self, transport: &mut MmioTransport, bytes: &[u8]);
    /// The backend is polled.
    fn poll(&mut self, transport: &mut MmioTransport);
}

/// A backend that does nothing (virtio-blk has none).
pub struct NoBackend;

impl Backend for NoBackend {
    fn data(&mut self, _transport: &mut MmioTransport, _bytes: &[u8]) {}
    fn poll(&mut self, _transport: &mut MmioTransport) {}
}

/// The guest memory of a harness run.
pub fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory")
}

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn write32(t: &mut MmioTransport, offset: u64, value: u32) {
    t.write(offset, &value.to_le_bytes());
}

/// Negotiates features and sets every queue up like a driver, then sets DRIVER_OK.
fn setup(t: &mut MmioTransport, num_queues: usize, queue_size: u8, flags: u8) {
    use virtio::{VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
    write32(t, reg::STATUS, 1 | 2);
    let mut offered = 0u64;
    for sel in 0..2u32 {
        write32(t, reg::DEVICE_FEATURES_SEL, sel);
        offered |= u64::from(read32(t, reg::DEVICE_FEATURES)) << (32 * sel);
    }
    let mut wanted = 1u64 << VIRTIO_F_VERSION_1;
    if flags & flags::EVENT_IDX != 0 {
        wanted |= 1 << VIRTIO_RING_F_EVENT_IDX;
    }
    if flags & flags::INDIRECT != 0 {
        wanted |= 1 << VIRTIO_RING_F_INDIRECT_DESC;
    }
    if flags & flags::ALL_FEATURES != 0 {
        wanted = u64::MAX;
    }
    let acked = offered & wanted;
    for sel in 0..2u32 {
        write32(t, reg::DRIVER_FEATURES_SEL, sel);
        write32(t, reg::DRIVER_FEATURES, (acked >> (32 * sel)) as u32);
    }
    write32(t, reg::STATUS, 1 | 2 | 8);
    for q in 0..num_queues {
        write32(t, reg::QUEUE_SEL, q as u32);
        let max = read32(t, reg::QUEUE_NUM_MAX);
        let size = if queue_size == 0 {
            max
        } else {
            u32::from(queue_size)
        };
        write32(t, reg::QUEUE_NUM, size);
        let base = q as u64 * QUEUE_STRIDE;
        for (low, addr) in [
            (reg::QUEUE_DESC_LOW, base),
            (reg::QUEUE_AVAIL_LOW, base + AVAIL_OFFSET),
            (reg::QUEUE_USED_LOW, base + USED_OFFSET),
        ] {
            write32(t, low, addr as u32);
            write32(t, low + 4, (addr >> 32) as u32);
        }
        write32(t, reg::QUEUE_READY, 1);
    }
    write32(t, reg::STATUS, 1 | 2 | 4 | 8);
}

/// Puts `device` behind a transport on fresh guest memory, runs the input against it, and returns the
/// guest memory (for reports).
pub fn run(
    data: &[u8],
    device: Box<dyn VirtioDevice>,
    backend: &mut dyn Backend,
) -> GuestMemoryMmap {
    let mem = guest_memory();
    let num_queues = device.queue_max_sizes().len();
    let interrupt = Arc::new(VirtioInterrupt::new(Arc::new(NoLine)));
    let Ok(mut t) = MmioTransport::new(device, mem.clone(), interrupt.clone()) else {
        return mem;
    };
    let mut input = Input::new(data);
    let queue_size = input.u8();
    let flags = input.u8();
    if flags & flags::NO_SETUP == 0 {
        setup(&mut t, num_queues, queue_size, flags);
    }
    while !input.is_empty() {
        match input.u8() % op::COUNT {
            op::WRITE_REG => {
                let offset = u64::from(input.u8()) * 4;
                let value = input.u32();
                write32(&mut t, offset, value);
            }
            op::READ => {
                let offset = u64::from(input.u16() % 0x200);
                let mut buf = [0u8; 8];
                let size = [1, 2, 4, 8][usize::from(input.u8() % 4)];
                t.read(offset, &mut buf[..size]);
            }
            op::NOTIFY => {
                let queue = input.u8();
                write32(&mut t, reg::QUEUE_NOTIFY, u32::from(queue));
                t.process_queue(usize::from(queue) % (num_queues + 1));
                write32(&mut t, reg::INTERRUPT_ACK, interrupt.status());
            }
            op::MEM_WRITE => {
                let addr = GuestAddress(u64::from(input.u16()));
                let bytes = input.short_bytes();
                let _ = mem.write_slice(bytes, addr);
            }
            op::BACKEND_DATA => {
                let bytes = input.short_bytes();
                backend.data(&mut t, bytes);
            }
            op::WRITE_ANY => {
                let offset = u64::from(input.u16() % 0x200);
                let size = usize::from(input.u8() % 8) + 1;
                let bytes = input.bytes(size);
                if !bytes.is_empty() {
                    t.write(offset, bytes);
                }
            }
            op::AVAIL_IDX => {
                let queue = u64::from(input.u8()) % num_queues as u64;
                let idx = input.u16();
                let addr = GuestAddress(queue * QUEUE_STRIDE + AVAIL_OFFSET + 2);
                let _ = mem.write_obj(idx, addr);
            }
            _ => backend.poll(&mut t),
        }
    }
    // A fuzzed disk may be anything; only a panic is a finding.
    let _ = t.shutdown();
    mem
}

/// The used ring's index of `queue` (how many buffers the device has completed, mod 2^16).
pub fn used_idx(mem: &GuestMemoryMmap, queue: u64) -> u16 {
    mem.read_obj(GuestAddress(queue * QUEUE_STRIDE + USED_OFFSET + 2))
        .unwrap_or(0)
}

/// Seed helpers: operations that place a descriptor and publish a chain.
pub mod seed {
    use super::*;

    /// Descriptor flag: the chain continues.
    pub const F_NEXT: u16 = 1;
    /// Descriptor flag: device-writable.
    pub const F_WRITE: u16 = 2;

    /// Appends an operation writing `bytes` to guest memory at `addr`.
    pub fn mem_write(b: &mut Builder, addr: u16, bytes: &[u8]) {
        b.u8(op::MEM_WRITE).u16(addr).short_bytes(bytes);
    }

    /// Appends the write of descriptor `index` of `queue`.
    pub fn descriptor(
        b: &mut Builder,
        queue: u16,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let mut d = Vec::with_capacity(16);
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&next.to_le_bytes());
        mem_write(b, queue * QUEUE_STRIDE as u16 + index * 16, &d);
    }

    /// Appends the publication of head descriptor `head` as available entry `slot` and the avail index
    /// `slot + 1`, then a notification of `queue`.
    pub fn publish(b: &mut Builder, queue: u16, slot: u16, head: u16) {
        let ring = queue * QUEUE_STRIDE as u16 + AVAIL_OFFSET as u16;
        mem_write(b, ring + 4 + slot * 2, &head.to_le_bytes());
        b.u8(op::AVAIL_IDX).u8(queue as u8).u16(slot + 1);
        b.u8(op::NOTIFY).u8(queue as u8);
    }
}
