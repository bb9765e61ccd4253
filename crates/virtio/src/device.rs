//! The interface between the virtio-mmio transport and a device model.

use std::os::unix::io::RawFd;
use std::sync::{Arc, Mutex};

use crate::rate_limiter::RateLimiter;

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

/// Most time one call of [`serve_chains`] spends before it leaves the rest of the ring for later (the
/// I/O thread then serves its other events, the pause gate and the control eventfd first).
pub(crate) const SERVE_TIME_BUDGET: std::time::Duration = std::time::Duration::from_millis(20);

/// Serves the chains available on `queue`: `serve` handles one and returns its used length and the bytes
/// it moved (what a rate limiter counts), then the chain goes to the used ring (`device` names the device
/// when that fails). Returns true when used buffers were added. With a `limiter`, each chain waits until
/// it allows one more request (the rest stay in the ring; the limiter's timer brings the I/O thread
/// back) and spends one operation and the chain's bytes.
///
/// The work is bounded whatever the driver does: at most one ring's worth of chains (`queue.size()`)
/// and about [`SERVE_TIME_BUDGET`] per call. A driver that keeps adding buffers as fast as they are
/// taken is cut off there; the transport sees the chains left in the ring and comes back to them after
/// the I/O thread's other events (see [`crate::MmioTransport::process_queue`]).
pub(crate) fn serve_chains<'a>(
    device: &str,
    queue: &mut Queue,
    mem: &'a GuestMemoryMmap,
    mut limiter: Option<&mut RateLimiter>,
    mut serve: impl FnMut(DescriptorChain<&'a GuestMemoryMmap>) -> (u32, u64),
) -> bool {
    let mut added = false;
    let start = std::time::Instant::now();
    for _ in 0..queue.size() {
        if let Some(l) = limiter.as_deref_mut() {
            if !l.allows() {
                break;
            }
        }
        let Some(chain) = queue.pop_descriptor_chain(mem) else {
            break;
        };
        let head = chain.head_index();
        let (used_len, bytes) = serve(chain);
        if let Some(l) = limiter.as_deref_mut() {
            l.consume(1, bytes);
        }
        match queue.add_used(mem, head, used_len) {
            Ok(()) => added = true,
            Err(e) => log::warn!("{device}: cannot return descriptor chain {head}: {e}"),
        }
        if start.elapsed() >= SERVE_TIME_BUDGET {
            break;
        }
    }
    added
}

/// A device's counters as its transport last published them (after every queue or backend event):
/// readable without the device's lock, so the API's `vm.counters` answers while the I/O thread works.
#[derive(Debug, Clone, Default)]
pub struct CounterSnapshot(Arc<Mutex<Vec<(&'static str, u64)>>>);

impl CounterSnapshot {
    /// The counters, as (name, value) pairs (see [`VirtioDevice::counters`]).
    pub fn get(&self) -> Vec<(&'static str, u64)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the published values (the lock is held only for the copy).
    pub(crate) fn set(&self, counters: Vec<(&'static str, u64)>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = counters;
    }
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

    /// The timerfds of the device's rate limiters (see [`crate::rate_limiter`]), in a fixed order: when
    /// fd `k` is readable the I/O thread calls [`VirtioDevice::timer_fired`]`(k)` and serves every queue
    /// (and the backend) again. The default has none.
    fn timer_fds(&self) -> Vec<RawFd> {
        Vec::new()
    }

    /// Timer `k` of [`VirtioDevice::timer_fds`] fired: clear it.
    fn timer_fired(&mut self, _k: usize) {}

    /// True when the device's rate limiter holds back queue `index` (its chains left in the ring are
    /// then not served again until the limiter's timer fires).
    fn throttled(&self, _index: usize) -> bool {
        false
    }

    /// The driver reset the device (status written 0): drop per-activation state.
    fn reset(&mut self) {}

    /// rvvmm is stopping (guest poweroff, signal): make everything durable (e.g. flush a disk). An error
    /// says what the guest wrote that may be lost (rvvmm then exits with a non-zero status).
    fn shutdown(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Per-device counters for the API's `vm.counters`, as (name, value) pairs, with the names
    /// cloud-hypervisor uses (e.g. `read_bytes`, `rx_frames`). The default has none.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
