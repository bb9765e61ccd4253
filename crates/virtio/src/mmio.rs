//! The virtio-mmio transport, version 2 ("modern"): the register window a guest driver programs (feature
//! negotiation, queue setup, status, interrupt acknowledgement, config space) in front of a
//! [`VirtioDevice`]. Queue notifications go to one eventfd per queue (which KVM signals directly when it is
//! registered as an ioeventfd); the I/O thread then calls [`MmioTransport::process_queue`]. A device with
//! a backend to poll (e.g. a tap) exposes its fd through [`MmioTransport::backend_fd`]; the I/O thread
//! calls [`MmioTransport::process_backend`] when it is readable.

use std::os::unix::io::RawFd;
use std::sync::Arc;

use devices::MmioDevice;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::interrupt::Interrupt;
use crate::{
    BackendStatus, CounterSnapshot, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};

/// "virt" in little endian.
const MAGIC: u32 = 0x7472_6976;
/// The modern transport.
const VERSION: u32 = 2;
/// Vendor id reported to the guest ("RVMM").
pub const VENDOR_ID: u32 = 0x4d4d_5652;

/// Device status bits (virtio spec 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// The driver gave up.
    pub const FAILED: u32 = 0x80;
}

/// Register offsets of the virtio-mmio window (virtio 1.2, 4.2.2).
pub mod reg {
    /// "virt" magic value.
    pub const MAGIC: u64 = 0x000;
    /// Transport version (2).
    pub const VERSION: u64 = 0x004;
    /// Virtio device id.
    pub const DEVICE_ID: u64 = 0x008;
    /// Vendor id.
    pub const VENDOR_ID: u64 = 0x00c;
    /// Device feature bits (the 32-bit half DEVICE_FEATURES_SEL selects).
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// Selects the half of the device features.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// Driver (accepted) feature bits.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// Selects the half of the driver features.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// Selects the queue the queue registers address.
    pub const QUEUE_SEL: u64 = 0x030;
    /// Largest size of the selected queue.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// Size of the selected queue.
    pub const QUEUE_NUM: u64 = 0x038;
    /// The selected queue is ready.
    pub const QUEUE_READY: u64 = 0x044;
    /// Queue notification (the queue index is written).
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// Pending interrupt causes.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// Acknowledges interrupt causes.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Device status.
    pub const STATUS: u64 = 0x070;
    /// Descriptor table address, low half.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// Descriptor table address, high half.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// Available ring address, low half.
    pub const QUEUE_AVAIL_LOW: u64 = 0x090;
    /// Available ring address, high half.
    pub const QUEUE_AVAIL_HIGH: u64 = 0x094;
    /// Used ring address, low half.
    pub const QUEUE_USED_LOW: u64 = 0x0a0;
    /// Used ring address, high half.
    pub const QUEUE_USED_HIGH: u64 = 0x0a4;
    /// Shared memory length, low half.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// Shared memory length, high half.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// Shared memory base, low half.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// Shared memory base, high half.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// Config space generation counter.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device config space.
    pub const CONFIG: u64 = 0x100;
}

/// Checks that `queue`'s available index is one a driver can have written: at most the queue's size
/// ahead of what the device has consumed. Beyond that the ring is corrupt and every pop would fail.
/// Only for queues rvvmm consumes itself (not those a vhost backend runs in the kernel).
fn ring_check(queue: &Queue, mem: &GuestMemoryMmap) -> Result<(), String> {
    let avail = queue
        .avail_idx(mem, std::sync::atomic::Ordering::Acquire)
        .map_err(|e| format!("cannot read the available index: {e}"))?;
    let ahead = avail.0.wrapping_sub(queue.next_avail());
    if ahead > queue.size() {
        return Err(format!(
            "available index {} is {ahead} entries ahead of the device, more than the queue's {}",
            avail.0,
            queue.size()
        ));
    }
    Ok(())
}

/// True when the driver has made chains available that the device has not taken yet.
fn has_available(queue: &Queue, mem: &GuestMemoryMmap) -> bool {
    queue
        .avail_idx(mem, std::sync::atomic::Ordering::Acquire)
        .is_ok_and(|avail| avail.0 != queue.next_avail())
}

/// Most passes over a ring in one notification or backend event with VIRTIO_F_EVENT_IDX (a driver that
/// keeps adding buffers cannot hold the I/O thread; what is left is served at its next notification).
const NOTIFICATION_ROUNDS: usize = 16;

/// The queue whose buffers a stalled backend waits for (virtio-net's receive queue; see
/// [`crate::io_thread`]).
pub(crate) const RESUME_QUEUE: usize = 0;

/// A virtio device behind the virtio-mmio register window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: Arc<dyn Interrupt>,
    queues: Vec<Queue>,
    /// Per queue: the driver wrote a QueueNum that is not a power of two in 1..=max (the queue keeps
    /// its old size, so it must not go live: DRIVER_OK then ends in DEVICE_NEEDS_RESET).
    bad_size: Vec<bool>,
    kicks: Vec<EventFd>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    config_generation: u32,
    /// The device's counters as of its last event (see [`CounterSnapshot`]).
    published: CounterSnapshot,
}

/// Errors creating a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An eventfd could not be created.
    #[error("cannot create a queue eventfd: {0}")]
    EventFd(std::io::Error),
    /// The device asked for an invalid queue size.
    #[error("invalid virtio queue size {0}")]
    QueueSize(u16),
}

impl MmioTransport {
    /// Puts `device` behind a transport using guest memory `mem` and interrupt state `interrupt`.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<MmioTransport, TransportError> {
        let mut queues = Vec::new();
        let mut kicks = Vec::new();
        for &max in device.queue_max_sizes() {
            queues.push(Queue::new(max).map_err(|_| TransportError::QueueSize(max))?);
            kicks.push(EventFd::new(EFD_NONBLOCK).map_err(TransportError::EventFd)?);
        }
        Ok(MmioTransport {
            device,
            mem,
            interrupt,
            bad_size: vec![false; queues.len()],
            queues,
            kicks,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            published: CounterSnapshot::default(),
        }
        .published_now())
    }

    fn published_now(self) -> MmioTransport {
        self.publish_counters();
        self
    }

    fn publish_counters(&self) {
        self.published.set(self.device.counters());
    }

    /// The device's counters as of its last event, readable without this transport's lock.
    pub fn counter_snapshot(&self) -> CounterSnapshot {
        self.published.clone()
    }

    /// The eventfd signalled when the driver notifies queue i (index = queue).
    pub fn queue_eventfds(&self) -> &[EventFd] {
        &self.kicks
    }

    /// True when the device's queue eventfds are consumed by something else (vhost), not the I/O thread.
    pub fn owns_queue_notifications(&self) -> bool {
        self.device.owns_queue_notifications()
    }

    /// The device's status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    fn device_features(&self) -> u64 {
        self.device.features() | (1 << VIRTIO_F_VERSION_1)
    }

    fn activated(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.status & status::DEVICE_NEEDS_RESET == 0
    }

    /// Serves the driver's notification of queue `index` (called on the I/O thread).
    pub fn process_queue(&mut self, index: usize) {
        if !self.activated() {
            return;
        }
        let Some(queue) = self.queues.get(index) else {
            return;
        };
        if !queue.ready() {
            return;
        }
        if !self.device.owns_queue_notifications() {
            if let Err(why) = ring_check(queue, &self.mem) {
                return self.needs_reset(&format!("queue {index}: {why}"));
            }
        }
        let queue = &mut self.queues[index];
        let event_idx = queue.event_idx_enabled();
        let drains = self.device.drains_queue(index);
        let mut used = false;
        let mut more = false;
        for round in 1..=NOTIFICATION_ROUNDS {
            used |= self.device.process_queue(index, queue, &self.mem);
            if drains && has_available(queue, &self.mem) {
                // The device stopped at its budget (see `serve_chains`) with chains left in the ring;
                // or its rate limiter holds them back, and its timer brings the I/O thread back.
                more = !self.device.throttled(index);
                break;
            }
            if !event_idx {
                break;
            }
            // VIRTIO_F_EVENT_IDX: ask for a notification of the next buffer after those seen (the driver
            // does not notify while this side works through the ring); buffers that arrived meanwhile
            // were not notified, so a device that takes every buffer goes round again.
            match queue.enable_notification(&self.mem) {
                Ok(true) if drains => more = round == NOTIFICATION_ROUNDS,
                _ => break,
            }
        }
        if more {
            // Come back to the rest after the I/O thread's other events (other queues and devices, the
            // pause gate, shutdown): the queue's own eventfd stays readable until then. A driver that
            // keeps the ring full thus gets its share, never the whole thread.
            if let Err(e) = self.kicks[index].write(1) {
                log::warn!("virtio: cannot requeue queue {index}: {e}");
            }
        }
        if used {
            let notify = if event_idx {
                queue.needs_notification(&self.mem).unwrap_or(true)
            } else {
                true
            };
            if notify {
                self.interrupt.signal_used(index);
            }
        }
        self.publish_counters();
    }

    /// The timerfds of the device's rate limiters (see [`VirtioDevice::timer_fds`]).
    pub fn timer_fds(&self) -> Vec<RawFd> {
        self.device.timer_fds()
    }

    /// Timer `k` of [`MmioTransport::timer_fds`] fired: what a rate limiter held back may go, so every
    /// queue is served again (called on the I/O thread, which then polls the backend again too).
    pub fn process_timer(&mut self, k: usize) {
        self.device.timer_fired(k);
        for index in 0..self.queues.len() {
            self.process_queue(index);
        }
    }

    /// The fd of the device's backend the I/O thread polls for reading, if any.
    pub fn backend_fd(&self) -> Option<RawFd> {
        self.device.backend_fd()
    }

    /// Serves the device's backend fd becoming readable (called on the I/O thread): lets the device
    /// work with all its queues and interrupts the driver when it added used buffers. While the device is
    /// not activated nothing is done and the status says `stalled`: the I/O thread stops polling the
    /// backend until queue 0 is notified (which happens at DRIVER_OK).
    pub fn process_backend(&mut self) -> BackendStatus {
        if !self.activated() {
            if self.device.owns_queue_notifications() {
                // A late signal of a stopped in-kernel data path: let the device consume it (it does
                // not touch the queues) and keep watching, for the next activation.
                self.device.process_backend(&mut self.queues, &self.mem);
                return BackendStatus::default();
            }
            return BackendStatus {
                notify: false,
                stalled: true,
            };
        }
        // With vhost the kernel consumes the rings: this side's view of them never moves.
        let checked = !self.device.owns_queue_notifications();
        for (i, q) in self
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| checked && q.ready())
        {
            if let Err(why) = ring_check(q, &self.mem) {
                self.needs_reset(&format!("queue {i}: {why}"));
                return BackendStatus {
                    notify: false,
                    stalled: true,
                };
            }
        }
        let mut status = self.device.process_backend(&mut self.queues, &self.mem);
        // VIRTIO_F_EVENT_IDX: a device stalled for want of buffers on the resume queue waits for the
        // driver's notification of the next one, which the driver sends only if asked: ask, and go on at
        // once if buffers arrived in the meantime.
        for _ in 0..NOTIFICATION_ROUNDS {
            let Some(q) = self.queues.get_mut(RESUME_QUEUE) else {
                break;
            };
            if !status.stalled || !q.ready() || !q.event_idx_enabled() {
                break;
            }
            if !matches!(q.enable_notification(&self.mem), Ok(true)) {
                break;
            }
            let again = self.device.process_backend(&mut self.queues, &self.mem);
            status = BackendStatus {
                notify: status.notify || again.notify,
                stalled: again.stalled,
            };
        }
        if status.notify {
            for (i, q) in self
                .queues
                .iter_mut()
                .enumerate()
                .filter(|(_, q)| q.ready())
            {
                // Every queue's suppression state is updated.
                let needed = if q.event_idx_enabled() {
                    q.needs_notification(&self.mem).unwrap_or(true)
                } else {
                    true
                };
                if needed {
                    self.interrupt.signal_used(i);
                }
            }
        }
        self.publish_counters();
        status
    }

    /// The driver broke the device's rules in a way the device cannot recover from: it stops serving
    /// until the driver resets it (virtio 1.2, 2.1.1), and says so once.
    fn needs_reset(&mut self, why: &str) {
        log::warn!("virtio: {why}; device needs reset");
        self.status |= status::DEVICE_NEEDS_RESET;
        self.interrupt.signal_config();
    }

    /// rvvmm is stopping: let the device make its state durable.
    pub fn shutdown(&mut self) -> Result<(), String> {
        self.device.shutdown()
    }

    /// The device's counters for the API's `vm.counters` (see [`VirtioDevice::counters`]).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.device.counters()
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.bad_size.fill(false);
        self.interrupt.reset();
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.status = 0;
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        // Queue registers may change only before the driver sets DRIVER_OK... and while the queue is not ready.
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let new_bits = value & !self.status;
        if new_bits & status::FEATURES_OK != 0 {
            let offered = self.device_features();
            if self.driver_features & !offered != 0
                || self.driver_features & (1 << VIRTIO_F_VERSION_1) == 0
            {
                log::warn!(
                    "virtio: driver features {:#x} not acceptable (offered {offered:#x}); FEATURES_OK refused",
                    self.driver_features
                );
                self.status = value & !status::FEATURES_OK;
                return;
            }
            self.device.set_acked_features(self.driver_features);
            let event_idx = self.driver_features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
        if new_bits & status::DRIVER_OK != 0 {
            for (i, q) in self.queues.iter().enumerate() {
                if q.ready() && (self.bad_size[i] || !q.is_valid(&self.mem)) {
                    log::warn!("virtio: queue {i} is not valid (addresses outside guest RAM or bad size); device needs reset");
                    self.status = value | status::DEVICE_NEEDS_RESET;
                    self.interrupt.signal_config();
                    return;
                }
            }
        }
        if new_bits & status::DRIVER_OK != 0 {
            if let Err(e) = self.device.activate(&self.queues, &self.kicks, &self.mem) {
                log::warn!("virtio: device activation failed: {e}; device needs reset");
                self.status = value | status::DEVICE_NEEDS_RESET;
                self.interrupt.signal_config();
                return;
            }
        }
        self.status = value;
        if new_bits & status::DRIVER_OK != 0 {
            // Buffers made available before DRIVER_OK (allowed by the spec) are served now.
            for i in 0..self.queues.len() {
                let _ = self.kicks[i].write(1);
            }
        }
    }

    /// Number of queues of the device.
    pub(crate) fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// The selector registers as the driver last wrote them: (QueueSel, DeviceFeaturesSel,
    /// DriverFeaturesSel), for transports whose selectors are readable (virtio-pci).
    pub(crate) fn selectors(&self) -> (u32, u32, u32) {
        (
            self.queue_sel,
            self.device_features_sel,
            self.driver_features_sel,
        )
    }

    /// The half of the driver features DriverFeaturesSel selects.
    pub(crate) fn driver_features_half(&self) -> u32 {
        match self.driver_features_sel {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        }
    }

    /// The selected queue's current size and ring addresses (descriptors, available, used), if the
    /// selector names a queue.
    pub(crate) fn selected_queue_layout(&self) -> Option<(u16, u64, u64, u64)> {
        let q = self.queues.get(self.queue_sel as usize)?;
        Some((q.size(), q.desc_table(), q.avail_ring(), q.used_ring()))
    }

    /// Reads the 32-bit register at `offset` of the virtio-mmio window (the state machine the PCI
    /// transport shares: it maps its common configuration structure onto these registers).
    pub(crate) fn read_reg(&mut self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self
                .selected_queue()
                .map(|q| q.max_size().into())
                .unwrap_or(0),
            reg::QUEUE_READY => self.selected_queue().map(|q| q.ready().into()).unwrap_or(0),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            // No shared memory regions: length all ones means "none".
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => {
                u32::MAX
            }
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    /// Writes the 32-bit register at `offset` of the virtio-mmio window (see [`MmioTransport::read_reg`]).
    pub(crate) fn write_reg(&mut self, offset: u64, value: u32) {
        let configurable = self.status & status::DRIVER_OK == 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES if self.status & status::FEATURES_OK == 0 => match self
                .driver_features_sel
            {
                0 => {
                    self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value)
                }
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
                }
                _ => {}
            },
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NOTIFY => {
                // Reached only when no ioeventfd is registered: hand the work to the I/O thread.
                if let Some(k) = self.kicks.get(value as usize) {
                    let _ = k.write(1);
                }
            }
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.set_status(value),
            _ if !configurable => {
                log::debug!("virtio: write {value:#x} at {offset:#x} after DRIVER_OK ignored");
            }
            reg::QUEUE_NUM => {
                let sel = self.queue_sel as usize;
                if let Some(q) = self.queues.get_mut(sel) {
                    let ok = value.is_power_of_two() && value <= u32::from(q.max_size());
                    if ok {
                        q.set_size(value as u16);
                    } else {
                        log::debug!("virtio: queue {sel}: size {value} refused");
                    }
                    self.bad_size[sel] = !ok;
                }
            }
            reg::QUEUE_READY => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(value == 1);
                }
            }
            reg::QUEUE_DESC_LOW => self.with_queue(|q| q.set_desc_table_address(Some(value), None)),
            reg::QUEUE_DESC_HIGH => {
                self.with_queue(|q| q.set_desc_table_address(None, Some(value)))
            }
            reg::QUEUE_AVAIL_LOW => {
                self.with_queue(|q| q.set_avail_ring_address(Some(value), None))
            }
            reg::QUEUE_AVAIL_HIGH => {
                self.with_queue(|q| q.set_avail_ring_address(None, Some(value)))
            }
            reg::QUEUE_USED_LOW => self.with_queue(|q| q.set_used_ring_address(Some(value), None)),
            reg::QUEUE_USED_HIGH => self.with_queue(|q| q.set_used_ring_address(None, Some(value))),
            _ => log::debug!("virtio: write {value:#x} to unknown register {offset:#x} ignored"),
        }
    }

    fn with_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.selected_queue() {
            f(q);
        }
    }
}

impl MmioDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= reg::CONFIG {
            self.device.read_config(offset - reg::CONFIG, data);
        } else if data.len() == 4 && offset.is_multiple_of(4) {
            data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
        } else {
            log::debug!("virtio: {}-byte read at {offset:#x} ignored", data.len());
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= reg::CONFIG {
            self.device.write_config(offset - reg::CONFIG, data);
        } else if data.len() == 4 && offset.is_multiple_of(4) {
            let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            self.write_reg(offset, value);
        } else {
            log::debug!("virtio: {}-byte write at {offset:#x} ignored", data.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::{VirtioInterrupt, INT_VRING};
    use std::sync::Mutex;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    use devices::interrupt::test_utils::RecordingLine as Line;

    /// Consumes every chain and returns it with used length 1.
    struct Echo {
        acked: Arc<Mutex<u64>>,
        seen: Arc<Mutex<usize>>,
    }
    impl VirtioDevice for Echo {
        fn device_type(&self) -> u32 {
            42
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn features(&self) -> u64 {
            (1 << 3) | (1 << VIRTIO_RING_F_EVENT_IDX)
        }
        fn set_acked_features(&mut self, f: u64) {
            *self.acked.lock().unwrap() = f;
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = (offset as u8).wrapping_add(i as u8);
            }
        }
        fn process_queue(&mut self, _i: usize, q: &mut Queue, mem: &GuestMemoryMmap) -> bool {
            let mut any = false;
            while let Some(chain) = q.pop_descriptor_chain(mem) {
                q.add_used(mem, chain.head_index(), 1).unwrap();
                *self.seen.lock().unwrap() += 1;
                any = true;
            }
            any
        }
    }

    fn w(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }
    fn r(t: &mut MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    /// Transport, its interrupt line, the features the device saw acked, chains it consumed, memory.
    type Setup = (
        MmioTransport,
        Arc<Line>,
        Arc<Mutex<u64>>,
        Arc<Mutex<usize>>,
        GuestMemoryMmap,
    );

    fn setup() -> Setup {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let line = Arc::new(Line::default());
        let acked = Arc::new(Mutex::new(0));
        let seen = Arc::new(Mutex::new(0));
        let dev = Echo {
            acked: acked.clone(),
            seen: seen.clone(),
        };
        let t = MmioTransport::new(
            Box::new(dev),
            mem.clone(),
            Arc::new(VirtioInterrupt::new(line.clone())),
        )
        .unwrap();
        (t, line, acked, seen, mem)
    }

    #[test]
    fn identification_and_config() {
        let (mut t, ..) = setup();
        assert_eq!(r(&mut t, reg::MAGIC), MAGIC);
        assert_eq!(r(&mut t, reg::VERSION), 2);
        assert_eq!(r(&mut t, reg::DEVICE_ID), 42);
        w(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&mut t, reg::DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
        let mut b = [0u8; 2];
        t.read(reg::CONFIG + 4, &mut b);
        assert_eq!(b, [4, 5]);
        // Odd sizes and offsets are harmless.
        let mut b3 = [0xffu8; 3];
        t.read(reg::STATUS + 1, &mut b3);
        assert_eq!(b3, [0; 3]);
        t.write(0x7, &[1, 2]);
        t.write(u64::MAX - 8, &[0; 4]);
    }

    #[test]
    fn negotiation_rejects_unknown_features_and_needs_version_1() {
        let (mut t, _, acked, ..) = setup();
        w(&mut t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut t, reg::DRIVER_FEATURES, 1 << 5); // not offered
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(
            &mut t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_eq!(r(&mut t, reg::STATUS) & status::FEATURES_OK, 0);
        w(&mut t, reg::STATUS, 0);
        w(&mut t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut t, reg::DRIVER_FEATURES, 1 << 3);
        w(
            &mut t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_eq!(
            r(&mut t, reg::STATUS) & status::FEATURES_OK,
            0,
            "VERSION_1 not accepted"
        );
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(
            &mut t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_ne!(r(&mut t, reg::STATUS) & status::FEATURES_OK, 0);
        assert_eq!(*acked.lock().unwrap(), (1 << 32) | (1 << 3));
    }

    fn bring_up(t: &mut MmioTransport, mq: &MockSplitQueue<GuestMemoryMmap>) {
        w(t, reg::QUEUE_SEL, 0);
        assert_eq!(r(t, reg::QUEUE_NUM_MAX), 16);
        w(t, reg::QUEUE_NUM, 16);
        bring_up_keeping_size(t, mq);
    }

    #[test]
    fn queue_processing_raises_and_ack_lowers_the_line() {
        let (mut t, line, _, seen, mem) = setup();
        let mq = MockSplitQueue::new(&mem, 16);
        let descs = [RawDescriptor::from(SplitDescriptor::new(0x8000, 16, 0, 0))];
        mq.add_desc_chains(&descs, 0).unwrap();
        bring_up(&mut t, &mq);
        assert_eq!(r(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        // Notification without ioeventfd: the kick eventfd is written for the I/O thread.
        w(&mut t, reg::QUEUE_NOTIFY, 0);
        assert!(t.queue_eventfds()[0].read().unwrap() >= 1);
        t.process_queue(0);
        assert_eq!(*seen.lock().unwrap(), 1);
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), INT_VRING);
        w(&mut t, reg::INTERRUPT_ACK, INT_VRING);
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 0);
        assert_eq!(*line.0.lock().unwrap(), vec![true, false]);
        // Out-of-range queue indices are ignored.
        w(&mut t, reg::QUEUE_NOTIFY, 7);
        t.process_queue(7);
    }

    #[test]
    fn queue_outside_guest_memory_needs_reset_and_is_never_used() {
        let (mut t, _, _, seen, mem) = setup();
        let mq = MockSplitQueue::new(&mem, 16);
        w(&mut t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(
            &mut t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        w(&mut t, reg::QUEUE_NUM, 16);
        w(&mut t, reg::QUEUE_DESC_LOW, 0xfff0_0000); // not guest RAM
        w(&mut t, reg::QUEUE_AVAIL_LOW, mq.avail_addr().0 as u32);
        w(&mut t, reg::QUEUE_USED_LOW, mq.used_addr().0 as u32);
        w(&mut t, reg::QUEUE_READY, 1);
        w(
            &mut t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
        assert_ne!(r(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        t.process_queue(0);
        assert_eq!(*seen.lock().unwrap(), 0);
        // Reset clears everything.
        w(&mut t, reg::STATUS, 0);
        assert_eq!(r(&mut t, reg::STATUS), 0);
        assert_eq!(r(&mut t, reg::QUEUE_READY), 0);
    }

    /// Found by the hostile bare-metal guest: a QueueNum that is not a power of two was ignored (the
    /// queue kept its old size) and DRIVER_OK went through with a ring size the driver never set up.
    #[test]
    fn queue_size_not_a_power_of_two_needs_reset() {
        for bad in [3u32, 0, 32] {
            let (mut t, _, _, seen, mem) = setup();
            let mq = MockSplitQueue::new(&mem, 16);
            mq.add_desc_chains(
                &[RawDescriptor::from(SplitDescriptor::new(0x8000, 16, 0, 0))],
                0,
            )
            .unwrap();
            w(&mut t, reg::QUEUE_SEL, 0);
            w(&mut t, reg::QUEUE_NUM, bad);
            bring_up_keeping_size(&mut t, &mq);
            assert_ne!(
                r(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET,
                0,
                "size {bad}"
            );
            t.process_queue(0);
            assert_eq!(*seen.lock().unwrap(), 0);
            // After a reset, a good size works.
            w(&mut t, reg::STATUS, 0);
            bring_up(&mut t, &mq);
            assert_eq!(r(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        }
    }

    /// Found by the hostile bare-metal guest: an available index far ahead of the device made every
    /// notification fail in virtio-queue (which logs an error each time: 19125 lines in one run). Now
    /// the device needs a reset and stops serving the queue, with one warning.
    #[test]
    fn available_index_far_ahead_needs_reset() {
        let (mut t, line, _, seen, mem) = setup();
        let mq = MockSplitQueue::new(&mem, 16);
        bring_up(&mut t, &mq);
        mq.avail().idx().store(u16::to_le(1000));
        for _ in 0..100 {
            t.process_queue(0);
        }
        assert_ne!(r(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        assert_eq!(*seen.lock().unwrap(), 0);
        assert_ne!(
            r(&mut t, reg::INTERRUPT_STATUS) & crate::interrupt::INT_CONFIG,
            0
        );
        assert_eq!(line.levels(), vec![true]);
    }

    /// A device whose queues the kernel runs (like vhost-net): rvvmm never pops its rings.
    struct KernelRun;
    impl VirtioDevice for KernelRun {
        fn device_type(&self) -> u32 {
            1
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn features(&self) -> u64 {
            0
        }
        fn set_acked_features(&mut self, _f: u64) {}
        fn read_config(&self, _offset: u64, _data: &mut [u8]) {}
        fn process_queue(&mut self, _i: usize, _q: &mut Queue, _m: &GuestMemoryMmap) -> bool {
            false
        }
        fn process_backend(&mut self, _q: &mut [Queue], _m: &GuestMemoryMmap) -> BackendStatus {
            BackendStatus {
                notify: true,
                stalled: false,
            }
        }
        fn owns_queue_notifications(&self) -> bool {
            true
        }
    }

    /// Found by the nested net-vhost scenario: the ring check must not apply to rings the kernel
    /// consumes (rvvmm's view of them stays at 0, so any busy queue looked corrupt after 16 buffers).
    #[test]
    fn rings_run_by_the_kernel_are_not_checked() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let line = Arc::new(Line::default());
        let mut t = MmioTransport::new(
            Box::new(KernelRun),
            mem.clone(),
            Arc::new(VirtioInterrupt::new(line)),
        )
        .unwrap();
        let mq = MockSplitQueue::new(&mem, 16);
        bring_up(&mut t, &mq);
        mq.avail().idx().store(u16::to_le(1000));
        t.process_backend();
        t.process_queue(0);
        assert_eq!(r(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    }

    /// A driver as fast as the device: every chain served is made available again at once, so the ring
    /// is never empty.
    struct Flood {
        served: Arc<Mutex<u64>>,
        avail: GuestAddress,
    }
    impl VirtioDevice for Flood {
        fn device_type(&self) -> u32 {
            42
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn features(&self) -> u64 {
            1 << VIRTIO_RING_F_EVENT_IDX
        }
        fn set_acked_features(&mut self, _f: u64) {}
        fn read_config(&self, _offset: u64, _data: &mut [u8]) {}
        fn process_queue(&mut self, _i: usize, q: &mut Queue, mem: &GuestMemoryMmap) -> bool {
            let (avail, served) = (self.avail, self.served.clone());
            crate::device::serve_chains("flood", q, mem, None, |chain| {
                let idx: u16 = mem.read_obj(GuestAddress(avail.0 + 2)).unwrap();
                let slot = GuestAddress(avail.0 + 4 + 2 * u64::from(idx % 16));
                mem.write_obj(chain.head_index(), slot).unwrap();
                mem.write_obj(idx.wrapping_add(1), GuestAddress(avail.0 + 2))
                    .unwrap();
                *served.lock().unwrap() += 1;
                (0, 0)
            })
        }
        fn counters(&self) -> Vec<(&'static str, u64)> {
            vec![("served", *self.served.lock().unwrap())]
        }
    }

    /// A guest that refills the ring as fast as it is served gets one ring's worth per event; the
    /// queue's eventfd is signalled again so the I/O thread comes back after its other events, and the
    /// counters are readable without the transport.
    #[test]
    fn a_flooding_driver_gets_one_ring_per_event() {
        for event_idx in [false, true] {
            let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
            let mq = MockSplitQueue::new(&mem, 16);
            mq.add_desc_chains(
                &[RawDescriptor::from(SplitDescriptor::new(0x8000, 16, 0, 0))],
                0,
            )
            .unwrap();
            let served = Arc::new(Mutex::new(0));
            let dev = Flood {
                served: served.clone(),
                avail: mq.avail_addr(),
            };
            let line = Arc::new(Line::default());
            let mut t = MmioTransport::new(
                Box::new(dev),
                mem.clone(),
                Arc::new(VirtioInterrupt::new(line)),
            )
            .unwrap();
            let counters = t.counter_snapshot();
            assert_eq!(counters.get(), vec![("served", 0)]);
            w(&mut t, reg::QUEUE_SEL, 0);
            w(&mut t, reg::QUEUE_NUM, 16);
            w(&mut t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
            w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
            w(
                &mut t,
                reg::DRIVER_FEATURES,
                u32::from(event_idx) << VIRTIO_RING_F_EVENT_IDX,
            );
            bring_up_keeping_size(&mut t, &mq);
            let _ = t.queue_eventfds()[0].read(); // DRIVER_OK's own kick
            t.process_queue(0);
            assert_eq!(*served.lock().unwrap(), 16, "event_idx {event_idx}");
            assert_eq!(t.queue_eventfds()[0].read().unwrap(), 1, "requeued");
            t.process_queue(0);
            assert_eq!(*served.lock().unwrap(), 32);
            assert_eq!(counters.get(), vec![("served", 32)]);
        }
    }

    /// [`bring_up`] without writing QueueNum.
    fn bring_up_keeping_size(t: &mut MmioTransport, mq: &MockSplitQueue<GuestMemoryMmap>) {
        w(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(t, reg::DRIVER_FEATURES_SEL, 1);
        w(t, reg::DRIVER_FEATURES, 1);
        w(
            t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        w(t, reg::QUEUE_DESC_LOW, mq.desc_table_addr().0 as u32);
        w(t, reg::QUEUE_AVAIL_LOW, mq.avail_addr().0 as u32);
        w(t, reg::QUEUE_USED_LOW, mq.used_addr().0 as u32);
        w(t, reg::QUEUE_READY, 1);
        w(
            t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
    }

    /// VIRTIO_F_EVENT_IDX: after serving the ring the device asks for a notification of the next
    /// buffer (avail_event = its position), and interrupts only when the driver's used_event is crossed.
    #[test]
    fn event_idx_suppresses_notifications_and_interrupts() {
        let (mut t, line, acked, seen, mem) = setup();
        let mq = MockSplitQueue::new(&mem, 16);
        let one = |addr| [RawDescriptor::from(SplitDescriptor::new(addr, 16, 0, 0))];
        mq.add_desc_chains(&one(0x8000), 0).unwrap();
        mq.add_desc_chains(&one(0x9000), 1).unwrap();
        w(&mut t, reg::QUEUE_SEL, 0);
        w(&mut t, reg::QUEUE_NUM, 16);
        w(&mut t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut t, reg::DRIVER_FEATURES, 1 << VIRTIO_RING_F_EVENT_IDX);
        bring_up_keeping_size(&mut t, &mq);
        assert_ne!(*acked.lock().unwrap() & (1 << VIRTIO_RING_F_EVENT_IDX), 0);
        // used_event (after the avail ring's 16 entries) = 0: interrupt after the first used buffer.
        let used_event = GuestAddress(mq.avail_addr().0 + 4 + 2 * 16);
        let avail_event = GuestAddress(mq.used_addr().0 + 4 + 8 * 16);
        mem.write_obj(0u16, used_event).unwrap();
        t.process_queue(0);
        assert_eq!(*seen.lock().unwrap(), 2);
        assert_eq!(mem.read_obj::<u16>(avail_event).unwrap(), 2, "avail_event");
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), INT_VRING);
        w(&mut t, reg::INTERRUPT_ACK, INT_VRING);
        // The driver wants an interrupt only once 5 buffers are used: the third gets none.
        mem.write_obj(4u16, used_event).unwrap();
        mq.add_desc_chains(&one(0xa000), 2).unwrap();
        t.process_queue(0);
        assert_eq!(*seen.lock().unwrap(), 3);
        assert_eq!(mem.read_obj::<u16>(avail_event).unwrap(), 3);
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 0);
        assert_eq!(*line.0.lock().unwrap(), vec![true, false]);
    }

    #[test]
    fn devices_without_backend() {
        let (mut t, _, _, _, mem) = setup();
        assert_eq!(t.backend_fd(), None);
        // Not activated: nothing to do, stop polling.
        assert!(t.process_backend().stalled);
        let mq = MockSplitQueue::new(&mem, 16);
        bring_up(&mut t, &mq);
        assert_eq!(t.process_backend(), BackendStatus::default());
        assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 0);
    }

    #[test]
    fn queue_registers_are_frozen_after_driver_ok() {
        let (mut t, _, _, _, mem) = setup();
        let mq = MockSplitQueue::new(&mem, 16);
        bring_up(&mut t, &mq);
        w(&mut t, reg::QUEUE_DESC_LOW, 0x1234_0000);
        assert_eq!(t.queues[0].desc_table(), mq.desc_table_addr().0);
    }
}
