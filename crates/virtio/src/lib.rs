//! Virtio devices for rvvmm: the virtio-mmio (version 2) transport, the device trait every virtio device
//! implements, and the devices themselves (virtio-blk, virtio-net on a tap, virtio-rng, virtio-vsock on
//! /dev/vhost-vsock). Arch-neutral and unit-tested on any host with virtio-queue's mock guest memory.

pub mod block;
pub mod device;
pub mod interrupt;
pub mod io_thread;
pub mod iov;
pub mod mmio;
pub mod net;
pub mod pci;
pub mod rate_limiter;
pub mod rng;
pub mod tap;
pub mod vhost_net;
pub mod vhost_vsock;
pub mod vsock;

#[cfg(test)]
mod test_utils;

pub use block::{Block, BlockError};
pub use device::{BackendStatus, CounterSnapshot, VirtioDevice, QUEUE_NOTIFY_OFFSET};
pub use interrupt::VirtioInterrupt;
pub use mmio::MmioTransport;
pub use net::{Net, NetError};
pub use rng::Rng;
pub use vsock::{Vsock, VsockError};

/// Feature bit: the device complies with virtio 1.x (mandatory for the modern mmio transport).
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// Feature bit: the driver may use indirect descriptors.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// Feature bit: used_event / avail_event notification suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;

/// Device ids (virtio spec 5).
pub mod device_type {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Entropy source.
    pub const RNG: u32 = 4;
    /// Socket device (vsock).
    pub const VSOCK: u32 = 19;
}
