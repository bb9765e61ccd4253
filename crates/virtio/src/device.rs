//! The interface between the virtio-mmio transport and a device model.

use std::os::unix::io::RawFd;

use virtio_queue::{DescriptorChain, Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Offset of the QueueNotify register in a virtio-mmio window (for ioeventfd registration).
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x50;

/// Serves [`VirtioDevice::read_config`] from the bytes of a config space: `data.len()` bytes at
/// `offset`, zeros beyond its end.
pub(crate) fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = offset
            .checked_add(i as u64)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| config.get(o).copied())
            .unwrap_or(0);
    }
}

/// Serves every chain available on `queue`: `serve` handles one and returns its used length, then the
/// chain goes to the used ring (`device` names the device when that fails). Returns true when used
/// buffers were added.
pub(crate) fn serve_chains<'a>(
    device: &str,
    queue: &mut Queue,
    mem: &'a GuestMemoryMmap,
    mut serve: impl FnMut(DescriptorChain<&'a GuestMemoryMmap>) -> u32,
) -> bool {
    let mut added = false;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let used_len = serve(chain);
        match queue.add_used(mem, head, used_len) {
            Ok(()) => added = true,
            Err(e) => log::warn!("{device}: cannot return descriptor chain {head}: {e}"),
        }
    }
    added
}

/// What [`VirtioDevice::process_backend`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackendStatus {
    /// Used buffers were added: the driver should be interrupted (the caller applies notification
    /// suppression).
    pub notify: bool,
    /// The device cannot make progress with its backend until the driver makes buffers available (e.g.
    /// a received frame waits for receive buffers): stop polling [`VirtioDevice::backend_fd`] until
    /// queue 0 is notified.
    pub stalled: bool,
}

/// A virtio device model. The transport owns the queues and the negotiation; the device says what it
/// offers, serves its config space and processes its queues.
///
/// All guest-controlled input reaching these methods is untrusted: a bad descriptor or request must end
/// in an error status for that request (or a device reset), never a panic.
pub trait VirtioDevice: Send {
    /// Virtio device id (see [`crate::device_type`]).
    fn device_type(&self) -> u32;

    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];

    /// Feature bits the device offers (including `VIRTIO_F_VERSION_1`).
    fn features(&self) -> u64;

    /// The features the driver accepted (a subset of [`VirtioDevice::features`]), at FEATURES_OK.
    fn set_acked_features(&mut self, features: u64);

    /// Reads `data.len()` bytes of the device config space at `offset` (out of range: leave zeros).
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// Writes the device config space (most devices ignore this).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    /// Processes what the driver made available on queue `index`. Returns true when used buffers were
    /// added and the driver should be interrupted (the caller applies notification suppression).
    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool;

    /// Whether [`VirtioDevice::process_queue`] takes every available buffer of queue `index` (true for
    /// most queues). A queue whose buffers the device takes only as it needs them (virtio-net's receive
    /// queue) returns false: with VIRTIO_F_EVENT_IDX the transport then asks for the next notification
    /// once instead of going round the ring again.
    fn drains_queue(&self, _index: usize) -> bool {
        true
    }

    /// A file descriptor the I/O thread polls for reading on the device's behalf (e.g. the tap of a
    /// network card); when it is readable the I/O thread calls [`VirtioDevice::process_backend`].
    /// Devices without a backend to poll return `None` (the default).
    fn backend_fd(&self) -> Option<RawFd> {
        None
    }

    /// Serves [`VirtioDevice::backend_fd`] becoming readable, with all the device's queues (index =
    /// queue). Called only while the device is activated. The default does nothing.
    fn process_backend(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> BackendStatus {
        BackendStatus::default()
    }

    /// The driver set DRIVER_OK: the device may start using `queues` (configured and checked by the
    /// transport), whose notifications arrive on `kicks`. Only devices that run their queues elsewhere
    /// (vhost) need this; an error puts the device in DEVICE_NEEDS_RESET.
    fn activate(
        &mut self,
        _queues: &[Queue],
        _kicks: &[EventFd],
        _mem: &GuestMemoryMmap,
    ) -> Result<(), String> {
        Ok(())
    }

    /// True when something other than rvvmm's I/O thread consumes the queue eventfds (the kernel's vhost):
    /// the I/O thread then leaves them alone.
    fn owns_queue_notifications(&self) -> bool {
        false
    }

    /// The driver reset the device (status written 0): drop per-activation state.
    fn reset(&mut self) {}

    /// rvvmm is stopping (guest poweroff, signal): make everything durable (e.g. flush a disk).
    fn shutdown(&mut self) {}

    /// Per-device counters for the API's `vm.counters`, as (name, value) pairs, with the names
    /// cloud-hypervisor uses (e.g. `read_bytes`, `rx_frames`). The default has none.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
