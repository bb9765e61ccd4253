//! The virtio-pci transport, modern (virtio 1.2, 4.1): a PCI function whose vendor capabilities point
//! into one memory BAR holding the common configuration structure, the ISR byte, the device
//! configuration, the queue notification addresses and the MSI-X table.
//!
//! The common configuration is mapped onto the register state machine of [`MmioTransport`] (feature
//! negotiation, queue setup, status and reset are the same for both transports), so the device models
//! and the I/O thread do not know which transport they are behind. What differs is how notifications and
//! interrupts travel: each queue's notification address is an ioeventfd (KVM signals the queue's eventfd
//! without an exit to rvvmm, whatever the width of the driver's write), and each queue and the
//! configuration change have an MSI-X vector of their own whose eventfd is an irqfd routed to the message
//! the guest programmed ([`MsixInterrupt`]): the driver learns about used buffers without a single exit,
//! where virtio-mmio costs an InterruptStatus read and an InterruptACK write per interrupt.

use std::sync::{Arc, Mutex};

use pci::capability::{CAP_ID_MSIX, CAP_ID_VENDOR};
use pci::config::{
    read_dword_part, write_dword_part, CAPABILITY_POINTER, COMMAND, COMMAND_MEMORY,
    CONFIG_SPACE_SIZE, STATUS_CAPABILITIES,
};
use pci::msix::{MsixTable, MSIX_ENTRY_SIZE};
use pci::{BarKind, BarRegisters, MsiRouting, PciDevice};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::interrupt::{Interrupt, INT_CONFIG, INT_VRING};
use crate::mmio::reg;
use crate::MmioTransport;

/// PCI vendor id of virtio devices.
pub const VIRTIO_PCI_VENDOR: u16 = 0x1af4;
/// Modern virtio-pci device ids are this plus the virtio device id.
pub const VIRTIO_PCI_DEVICE_BASE: u16 = 0x1040;
/// "No MSI-X vector" in the vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// Layout of the device's only BAR (BAR 0, 32-bit memory, not prefetchable).
pub mod layout {
    /// Size of BAR 0.
    pub const BAR_SIZE: u64 = 0x8000;
    /// The common configuration structure.
    pub const COMMON: u64 = 0x0000;
    /// Its length (up to and including queue_reset).
    pub const COMMON_LEN: u64 = 0x3c;
    /// The ISR status byte (read to acknowledge).
    pub const ISR: u64 = 0x1000;
    /// The device-specific configuration.
    pub const DEVICE: u64 = 0x2000;
    /// Its length.
    pub const DEVICE_LEN: u64 = 0x1000;
    /// Queue notification addresses: queue i at `NOTIFY + i * NOTIFY_MULTIPLIER`.
    pub const NOTIFY: u64 = 0x3000;
    /// Bytes between two queues' notification addresses.
    pub const NOTIFY_MULTIPLIER: u32 = 4;
    /// The MSI-X table.
    pub const MSIX_TABLE: u64 = 0x4000;
    /// The MSI-X pending bit array.
    pub const MSIX_PBA: u64 = 0x5000;
}

/// Offsets of the fields of the common configuration structure (virtio 1.2, 4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const CONFIG_MSIX_VECTOR: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    /// queue_desc, then queue_driver (0x28) and queue_device: 64 bits each.
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// The virtio structure types a vendor capability points at.
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;
/// Where the capability list starts, and where the MSI-X capability sits in it.
const CAP_START: u8 = 0x40;
const MSIX_CAP: u8 = 0x88;

/// What the PCI transport needs from the VM besides MSI routing: queue notification addresses that
/// signal an eventfd inside the hypervisor (ioeventfds), moved when the guest moves the BAR.
pub trait VirtioPciVm: MsiRouting {
    /// Makes a guest write of any width to MMIO address `addr` signal `evt` without an exit.
    fn register_ioeventfd(&self, evt: &EventFd, addr: u64) -> std::io::Result<()>;
    /// Undoes [`VirtioPciVm::register_ioeventfd`].
    fn unregister_ioeventfd(&self, evt: &EventFd, addr: u64) -> std::io::Result<()>;
}

/// Errors creating a virtio-pci function.
#[derive(Debug, thiserror::Error)]
pub enum PciTransportError {
    /// An MSI-X vector's eventfd could not be created or made an irqfd.
    #[error("MSI-X vector {vector}: {source}")]
    Vector {
        /// The vector.
        vector: usize,
        /// Why.
        source: std::io::Error,
    },
}

/// The MSI-X form of [`Interrupt`]: one vector per queue and one for configuration changes, as the
/// driver assigns them; each vector's eventfd is an irqfd on GSI `gsi_base + vector`, routed to the
/// message the guest wrote in the table while the vector is unmasked. A vector that fires while masked
/// is remembered (its pending bit) and delivered when it is unmasked.
pub struct MsixInterrupt {
    state: Mutex<MsixState>,
    eventfds: Vec<EventFd>,
    gsi_base: u32,
    vm: Arc<dyn MsiRouting>,
}

struct MsixState {
    table: MsixTable,
    pending: Vec<bool>,
    config_vector: u16,
    queue_vectors: Vec<u16>,
    /// ISR bits (used only while MSI-X is off; the transport has no INTx line).
    isr: u32,
}

impl MsixInterrupt {
    /// Vectors for `num_queues` queues plus the configuration vector, on GSIs `gsi_base..`.
    pub fn new(
        num_queues: usize,
        gsi_base: u32,
        vm: Arc<dyn MsiRouting>,
    ) -> Result<MsixInterrupt, PciTransportError> {
        let vectors = num_queues + 1;
        let mut eventfds = Vec::with_capacity(vectors);
        for vector in 0..vectors {
            let evt = EventFd::new(EFD_NONBLOCK)
                .map_err(|source| PciTransportError::Vector { vector, source })?;
            vm.register_irqfd(&evt, gsi_base + vector as u32)
                .map_err(|source| PciTransportError::Vector { vector, source })?;
            eventfds.push(evt);
        }
        Ok(MsixInterrupt {
            state: Mutex::new(MsixState {
                table: MsixTable::new(vectors as u16),
                pending: vec![false; vectors],
                config_vector: NO_VECTOR,
                queue_vectors: vec![NO_VECTOR; num_queues],
                isr: 0,
            }),
            eventfds,
            gsi_base,
            vm,
        })
    }

    /// How many times vector `v` was signalled since the last call (reads its eventfd's count; for
    /// tests and fuzzing, where no hypervisor consumes it).
    pub fn fired(&self, v: usize) -> u64 {
        self.eventfds
            .get(v)
            .and_then(|e| e.read().ok())
            .unwrap_or(0)
    }

    /// Number of vectors (the MSI-X table size).
    pub fn num_vectors(&self) -> usize {
        self.eventfds.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MsixState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fire(&self, state: &mut MsixState, vector: u16, isr_bit: u32) {
        if !state.table.enabled() {
            state.isr |= isr_bit;
            return;
        }
        let v = usize::from(vector);
        if v >= self.eventfds.len() {
            return; // NO_VECTOR: the driver wants no interrupt for this
        }
        if state.table.message(v).is_some() {
            if let Err(e) = self.eventfds[v].write(1) {
                log::warn!("virtio-pci: cannot signal MSI-X vector {v}: {e}");
            }
        } else {
            state.pending[v] = true;
        }
    }

    /// Updates vector `v`'s route after a change of its entry or of the function's control bits, and
    /// delivers what it missed while masked. A masked (or disabled) vector keeps its route: nothing
    /// signals its eventfd then (see `signal`), so a guest that masks and unmasks a vector, as Linux does
    /// around every reprogramming, costs no rewrite of KVM's routing table; only a changed message does.
    fn update_vector(&self, state: &mut MsixState, v: usize) {
        let message = state.table.message(v);
        if message.is_some() {
            if let Err(e) = self.vm.set_msi_route(self.gsi_base + v as u32, message) {
                log::error!("virtio-pci: MSI route of vector {v}: {e}");
            }
        }
        if message.is_some() && std::mem::take(&mut state.pending[v]) {
            let _ = self.eventfds[v].write(1);
        }
    }

    /// The guest wrote the capability's message control (enable, function mask).
    fn set_control(&self, control: u16) {
        let mut s = self.lock();
        if s.table.set_control(control) {
            for v in 0..self.eventfds.len() {
                self.update_vector(&mut s, v);
            }
        }
    }

    fn control_bits(&self) -> u16 {
        self.lock().table.control_bits()
    }

    fn table_read(&self, offset: u64, data: &mut [u8]) {
        self.lock().table.read(offset, data);
    }

    fn table_write(&self, offset: u64, data: &[u8]) {
        let mut s = self.lock();
        if let Some(v) = s.table.write(offset, data) {
            self.update_vector(&mut s, v);
        }
    }

    fn pba_read(&self, offset: u64, data: &mut [u8]) {
        let s = self.lock();
        for (i, byte) in data.iter_mut().enumerate() {
            let first = (offset as usize + i) * 8;
            *byte = (0..8)
                .filter(|b| s.pending.get(first + b).copied().unwrap_or(false))
                .fold(0u8, |acc, b| acc | (1 << b));
        }
    }

    /// A vector register write: values the table cannot serve read back as [`NO_VECTOR`] (virtio 1.2,
    /// 4.1.5.1.2), which tells the driver to try fewer vectors.
    fn checked(&self, vector: u16) -> u16 {
        if usize::from(vector) < self.eventfds.len() {
            vector
        } else {
            NO_VECTOR
        }
    }

    fn config_vector(&self) -> u16 {
        self.lock().config_vector
    }

    fn set_config_vector(&self, vector: u16) {
        self.lock().config_vector = self.checked(vector);
    }

    fn queue_vector(&self, queue: usize) -> u16 {
        self.lock()
            .queue_vectors
            .get(queue)
            .copied()
            .unwrap_or(NO_VECTOR)
    }

    fn set_queue_vector(&self, queue: usize, vector: u16) {
        let checked = self.checked(vector);
        if let Some(v) = self.lock().queue_vectors.get_mut(queue) {
            *v = checked;
        }
    }
}

impl Interrupt for MsixInterrupt {
    fn signal_used(&self, queue: usize) {
        let mut s = self.lock();
        let vector = s.queue_vectors.get(queue).copied().unwrap_or(NO_VECTOR);
        self.fire(&mut s, vector, INT_VRING);
    }

    fn signal_config(&self) {
        let mut s = self.lock();
        let vector = s.config_vector;
        self.fire(&mut s, vector, INT_CONFIG);
    }

    fn status(&self) -> u32 {
        self.lock().isr
    }

    fn ack(&self, bits: u32) {
        self.lock().isr &= !bits;
    }

    fn reset(&self) {
        let mut s = self.lock();
        s.isr = 0;
        s.pending.fill(false);
        s.config_vector = NO_VECTOR;
        s.queue_vectors.fill(NO_VECTOR);
    }
}

/// PCI class code (class, subclass, programming interface) by virtio device type.
fn class_code(device_type: u32) -> u32 {
    match device_type {
        crate::device_type::NET => 0x02_00_00, // network controller, Ethernet
        crate::device_type::BLOCK => 0x01_80_00, // mass storage, other
        _ => 0xff_00_00,                       // unassigned class
    }
}

/// A virtio device as a PCI function: its configuration space, BAR 0 and the notification ioeventfds.
pub struct VirtioPciDevice {
    transport: Arc<Mutex<MmioTransport>>,
    interrupt: Arc<MsixInterrupt>,
    vm: Arc<dyn VirtioPciVm>,
    /// Configuration space as it reads, except the command register and the BARs.
    config: [u8; CONFIG_SPACE_SIZE],
    command: u16,
    bars: BarRegisters,
    /// The guest's PCI memory windows (base, size): notifications are live only inside them.
    windows: Vec<(u64, u64)>,
    /// The BAR address the ioeventfds are registered at.
    notify_at: Option<u64>,
}

impl VirtioPciDevice {
    /// The PCI function of `transport` (created with `interrupt`), its BAR 0 at `bar_addr` (which must
    /// be [`layout::BAR_SIZE`]-aligned) in one of `windows`.
    pub fn new(
        transport: Arc<Mutex<MmioTransport>>,
        interrupt: Arc<MsixInterrupt>,
        vm: Arc<dyn VirtioPciVm>,
        bar_addr: u64,
        windows: Vec<(u64, u64)>,
    ) -> VirtioPciDevice {
        let (device_type, num_queues) = {
            let mut t = transport.lock().unwrap_or_else(|p| p.into_inner());
            (t.read_reg(reg::DEVICE_ID), t.num_queues())
        };
        let mut bars = BarRegisters::new();
        bars.declare(
            0,
            BarKind::Mem32 {
                prefetchable: false,
            },
            layout::BAR_SIZE,
            bar_addr,
        )
        .expect("BAR 0 of a fixed valid size is free");
        let mut c = [0u8; CONFIG_SPACE_SIZE];
        let put16 =
            |c: &mut [u8], at: usize, v: u16| c[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |c: &mut [u8], at: usize, v: u32| c[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut c, 0x00, VIRTIO_PCI_VENDOR);
        put16(&mut c, 0x02, VIRTIO_PCI_DEVICE_BASE + device_type as u16);
        put16(&mut c, 0x06, STATUS_CAPABILITIES);
        // Revision 1: a modern-only device (no legacy I/O BAR).
        put32(&mut c, 0x08, (class_code(device_type) << 8) | 1);
        put16(&mut c, 0x2c, VIRTIO_PCI_VENDOR);
        put16(&mut c, 0x2e, 0x1100);
        c[CAPABILITY_POINTER as usize] = CAP_START;
        // The virtio structures: (type, offset in BAR 0, length), 16 bytes each; notify has 4 more.
        let structures = [
            (CFG_COMMON, layout::COMMON, layout::COMMON_LEN),
            (CFG_ISR, layout::ISR, 1),
            (CFG_DEVICE, layout::DEVICE, layout::DEVICE_LEN),
            (
                CFG_NOTIFY,
                layout::NOTIFY,
                (num_queues.max(1) as u64) * u64::from(layout::NOTIFY_MULTIPLIER),
            ),
        ];
        let mut at = CAP_START as usize;
        for (i, &(kind, offset, len)) in structures.iter().enumerate() {
            let cap_len = if kind == CFG_NOTIFY { 20 } else { 16 };
            let next = if i + 1 == structures.len() {
                MSIX_CAP as usize
            } else {
                at + cap_len
            };
            c[at] = CAP_ID_VENDOR;
            c[at + 1] = next as u8;
            c[at + 2] = cap_len as u8;
            c[at + 3] = kind;
            c[at + 4] = 0; // BAR 0
            put32(&mut c, at + 8, offset as u32);
            put32(&mut c, at + 12, len as u32);
            if kind == CFG_NOTIFY {
                put32(&mut c, at + 16, layout::NOTIFY_MULTIPLIER);
            }
            at = next;
        }
        let m = MSIX_CAP as usize;
        c[m] = CAP_ID_MSIX;
        c[m + 1] = 0;
        put16(&mut c, m + 2, (interrupt.num_vectors() - 1) as u16);
        put32(&mut c, m + 4, layout::MSIX_TABLE as u32); // BIR 0
        put32(&mut c, m + 8, layout::MSIX_PBA as u32);
        let mut dev = VirtioPciDevice {
            transport,
            interrupt,
            vm,
            config: c,
            command: 0,
            bars,
            windows,
            notify_at: None,
        };
        dev.update_notifications();
        dev
    }

    /// BAR 0's address while it is decoded and inside a PCI window.
    fn live_bar(&self) -> Option<u64> {
        let b = self.bars.get(0)?;
        (self.command & COMMAND_MEMORY != 0 && b.within(&self.windows)).then_some(b.addr)
    }

    /// Registers the queue notification ioeventfds where BAR 0 is decoded now (and removes them from
    /// where it was): after the guest enables memory decoding, moves the BAR or disables it.
    fn update_notifications(&mut self) {
        let want = self.live_bar();
        if want == self.notify_at {
            return;
        }
        let t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        for (q, fd) in t.queue_eventfds().iter().enumerate() {
            let offset = layout::NOTIFY + q as u64 * u64::from(layout::NOTIFY_MULTIPLIER);
            if let Some(old) = self.notify_at {
                if let Err(e) = self.vm.unregister_ioeventfd(fd, old + offset) {
                    log::warn!(
                        "virtio-pci: queue {q}: cannot remove the ioeventfd at {:#x}: {e}",
                        old + offset
                    );
                }
            }
            if let Some(new) = want {
                if let Err(e) = self.vm.register_ioeventfd(fd, new + offset) {
                    log::warn!("virtio-pci: queue {q}: no ioeventfd at {:#x} ({e}); notifications exit to rvvmm", new + offset);
                }
            }
        }
        drop(t);
        self.notify_at = want;
    }

    fn transport(&self) -> std::sync::MutexGuard<'_, MmioTransport> {
        self.transport.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn common_read(&self, offset: u64, len: usize) -> Option<u64> {
        let mut t = self.transport();
        let (queue_sel, dfsel, _) = t.selectors();
        let layout = t.selected_queue_layout();
        let queue = queue_sel as usize;
        let v = match (offset, len) {
            (common::DEVICE_FEATURE_SELECT, 4) => u64::from(dfsel),
            (common::DEVICE_FEATURE, 4) => u64::from(t.read_reg(reg::DEVICE_FEATURES)),
            (common::DRIVER_FEATURE_SELECT, 4) => u64::from(t.selectors().2),
            (common::DRIVER_FEATURE, 4) => u64::from(t.driver_features_half()),
            (common::CONFIG_MSIX_VECTOR, 2) => u64::from(self.interrupt.config_vector()),
            (common::NUM_QUEUES, 2) => t.num_queues() as u64,
            (common::DEVICE_STATUS, 1) => u64::from(t.status() as u8),
            (common::CONFIG_GENERATION, 1) => u64::from(t.read_reg(reg::CONFIG_GENERATION) as u8),
            (common::QUEUE_SELECT, 2) => u64::from(queue_sel as u16),
            (common::QUEUE_SIZE, 2) => layout.map_or(0, |l| u64::from(l.0)),
            (common::QUEUE_MSIX_VECTOR, 2) => u64::from(self.interrupt.queue_vector(queue)),
            (common::QUEUE_ENABLE, 2) => u64::from(t.read_reg(reg::QUEUE_READY)),
            (common::QUEUE_NOTIFY_OFF, 2) => u64::from(queue_sel as u16),
            (o, 4 | 8)
                if (common::QUEUE_DESC..common::QUEUE_DEVICE + 8).contains(&o) && o % 4 == 0 =>
            {
                let (_, desc, avail, used) = layout.unwrap_or_default();
                let field = [desc, avail, used][((o - common::QUEUE_DESC) / 8) as usize];
                if len == 8 {
                    field
                } else if o % 8 == 0 {
                    field & 0xffff_ffff
                } else {
                    field >> 32
                }
            }
            (0x38 | 0x3a, 2) => 0, // queue_notify_data, queue_reset: features not offered
            _ => return None,
        };
        Some(v)
    }

    fn common_write(&mut self, offset: u64, data: &[u8]) {
        let mut bytes = [0u8; 8];
        bytes[..data.len()].copy_from_slice(data);
        let v = u64::from_le_bytes(bytes);
        let mut t = self.transport();
        let queue = t.selectors().0 as usize;
        let v32 = v as u32;
        match (offset, data.len()) {
            (common::DEVICE_FEATURE_SELECT, 4) => t.write_reg(reg::DEVICE_FEATURES_SEL, v32),
            (common::DRIVER_FEATURE_SELECT, 4) => t.write_reg(reg::DRIVER_FEATURES_SEL, v32),
            (common::DRIVER_FEATURE, 4) => t.write_reg(reg::DRIVER_FEATURES, v32),
            (common::CONFIG_MSIX_VECTOR, 2) => self.interrupt.set_config_vector(v as u16),
            (common::DEVICE_STATUS, 1) => t.write_reg(reg::STATUS, v32),
            (common::QUEUE_SELECT, 2) => t.write_reg(reg::QUEUE_SEL, v32),
            (common::QUEUE_SIZE, 2) => t.write_reg(reg::QUEUE_NUM, v32),
            (common::QUEUE_MSIX_VECTOR, 2) => {
                if queue < t.num_queues() {
                    self.interrupt.set_queue_vector(queue, v as u16);
                }
            }
            (common::QUEUE_ENABLE, 2) => t.write_reg(reg::QUEUE_READY, v32),
            (o, 4 | 8)
                if (common::QUEUE_DESC..common::QUEUE_DEVICE + 8).contains(&o) && o % 4 == 0 =>
            {
                let field = ((o - common::QUEUE_DESC) / 8) as usize;
                let low = [reg::QUEUE_DESC_LOW, reg::QUEUE_AVAIL_LOW, reg::QUEUE_USED_LOW][field];
                let high = low + 4;
                if data.len() == 8 {
                    t.write_reg(low, v as u32);
                    t.write_reg(high, (v >> 32) as u32);
                } else if o % 8 == 0 {
                    t.write_reg(low, v32);
                } else {
                    t.write_reg(high, v32);
                }
            }
            _ => log::debug!(
                "virtio-pci: {}-byte write of {v:#x} at common configuration offset {offset:#x} ignored",
                data.len()
            ),
        }
    }
}

impl PciDevice for VirtioPciDevice {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        let dword = offset & !3;
        let shift = (offset & 3) as usize;
        if self.bars.config_read(offset, data) {
            return;
        }
        let value = if dword == COMMAND {
            u32::from(self.command) | (u32::from(STATUS_CAPABILITIES) << 16)
        } else if dword == u16::from(MSIX_CAP) {
            let mut v = [0u8; 4];
            v.copy_from_slice(&self.config[usize::from(dword)..usize::from(dword) + 4]);
            u32::from_le_bytes(v) | (u32::from(self.interrupt.control_bits()) << 16)
        } else if usize::from(dword) < CONFIG_SPACE_SIZE {
            let at = usize::from(dword);
            u32::from_le_bytes([
                self.config[at],
                self.config[at + 1],
                self.config[at + 2],
                self.config[at + 3],
            ])
        } else {
            0 // no extended capabilities
        };
        read_dword_part(value, shift, data);
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) {
        let dword = offset & !3;
        let shift = (offset & 3) as usize;
        if let Some(moved) = self.bars.config_write(offset, data) {
            if moved.is_some() {
                self.update_notifications();
            }
        } else if dword == COMMAND {
            // Only memory decoding and bus mastering mean something here (no I/O BAR, no INTx).
            let value = write_dword_part(u32::from(self.command), shift, data);
            self.command = (value as u16) & (COMMAND_MEMORY | pci::config::COMMAND_BUS_MASTER);
            self.update_notifications();
        } else if dword == u16::from(MSIX_CAP) {
            let old = u32::from(self.interrupt.control_bits()) << 16;
            let value = write_dword_part(old, shift, data);
            self.interrupt.set_control((value >> 16) as u16);
        }
    }

    fn trapped_ranges(&self) -> Vec<(usize, u64, u64)> {
        match (self.command & COMMAND_MEMORY != 0, self.bars.get(0)) {
            (true, Some(b)) => vec![(0, b.addr, b.size)],
            _ => Vec::new(),
        }
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if bar != 0 {
            return;
        }
        let len = data.len() as u64;
        match offset {
            o if o + len <= layout::COMMON_LEN => match self.common_read(o, data.len()) {
                Some(v) => data.copy_from_slice(&v.to_le_bytes()[..data.len()]),
                None => log::debug!(
                    "virtio-pci: {len}-byte read at common configuration offset {o:#x} ignored"
                ),
            },
            layout::ISR => {
                // Reading the ISR acknowledges it (virtio 1.2, 4.1.4.5).
                let isr = self.interrupt.status();
                self.interrupt.ack(isr);
                data[0] = isr as u8;
            }
            o if (layout::DEVICE..layout::DEVICE + layout::DEVICE_LEN).contains(&o) => {
                devices::MmioDevice::read(
                    &mut *self.transport(),
                    reg::CONFIG + (o - layout::DEVICE),
                    data,
                );
            }
            o if (layout::MSIX_TABLE..layout::MSIX_PBA).contains(&o) => {
                self.interrupt.table_read(o - layout::MSIX_TABLE, data)
            }
            o if o >= layout::MSIX_PBA => self.interrupt.pba_read(o - layout::MSIX_PBA, data),
            _ => {}
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar != 0 || data.len() > 8 {
            return;
        }
        let len = data.len() as u64;
        match offset {
            o if o + len <= layout::COMMON_LEN => self.common_write(o, data),
            o if (layout::DEVICE..layout::DEVICE + layout::DEVICE_LEN).contains(&o) => {
                devices::MmioDevice::write(
                    &mut *self.transport(),
                    reg::CONFIG + (o - layout::DEVICE),
                    data,
                );
            }
            o if (layout::NOTIFY..layout::MSIX_TABLE).contains(&o) => {
                // Reached only without an ioeventfd: the queue's eventfd is signalled from here.
                let queue = (o - layout::NOTIFY) / u64::from(layout::NOTIFY_MULTIPLIER);
                self.transport().write_reg(reg::QUEUE_NOTIFY, queue as u32);
            }
            o if (layout::MSIX_TABLE..layout::MSIX_PBA).contains(&o)
                && o - layout::MSIX_TABLE
                    < self.interrupt.num_vectors() as u64 * MSIX_ENTRY_SIZE =>
            {
                self.interrupt.table_write(o - layout::MSIX_TABLE, data)
            }
            _ => log::debug!("virtio-pci: {len}-byte write at BAR offset {offset:#x} ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{add_chain, mem, used, Mock};
    use crate::{Rng, VIRTIO_F_VERSION_1};
    use pci::config::{BAR0, COMMAND_BUS_MASTER, VENDOR_ID};
    use vm_memory::GuestMemoryMmap;

    /// An MSI route as set: GSI and message (address, data).
    type Route = (u32, Option<(u64, u32)>);
    /// A vendor capability as Linux reads it: (cfg_type, bar, offset, length, notify multiplier).
    type VendorCap = (u8, u8, u32, u32, u32);

    /// Records what the transport asked of the VM.
    #[derive(Default)]
    struct FakeVm {
        routes: Mutex<Vec<Route>>,
        irqfds: Mutex<Vec<u32>>,
        /// Registered ioeventfd addresses (removed on unregister).
        ioeventfds: Mutex<Vec<u64>>,
    }
    impl MsiRouting for FakeVm {
        fn set_msi_route(&self, gsi: u32, m: Option<(u64, u32)>) -> std::io::Result<()> {
            self.routes.lock().unwrap().push((gsi, m));
            Ok(())
        }
        fn register_irqfd(&self, _evt: &EventFd, gsi: u32) -> std::io::Result<()> {
            self.irqfds.lock().unwrap().push(gsi);
            Ok(())
        }
    }
    impl VirtioPciVm for FakeVm {
        fn register_ioeventfd(&self, _evt: &EventFd, addr: u64) -> std::io::Result<()> {
            let mut v = self.ioeventfds.lock().unwrap();
            assert!(
                !v.contains(&addr),
                "ioeventfd at {addr:#x} registered twice"
            );
            v.push(addr);
            Ok(())
        }
        fn unregister_ioeventfd(&self, _evt: &EventFd, addr: u64) -> std::io::Result<()> {
            let mut v = self.ioeventfds.lock().unwrap();
            let i = v.iter().position(|&a| a == addr).expect("unregistered");
            v.remove(i);
            Ok(())
        }
    }

    const BAR: u64 = 0x4000_0000;
    const WINDOW: (u64, u64) = (0x4000_0000, 0x4000_0000);

    fn cfg_r(d: &mut VirtioPciDevice, off: u16, len: usize) -> u32 {
        let mut b = [0u8; 4];
        d.config_read(off, &mut b[..len]);
        u32::from_le_bytes(b)
    }
    fn cfg_w(d: &mut VirtioPciDevice, off: u16, len: usize, v: u32) {
        d.config_write(off, &v.to_le_bytes()[..len]);
    }
    fn bar_r(d: &mut VirtioPciDevice, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        d.bar_read(0, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }
    fn bar_w(d: &mut VirtioPciDevice, off: u64, len: usize, v: u64) {
        d.bar_write(0, off, &v.to_le_bytes()[..len]);
    }

    fn setup() -> (VirtioPciDevice, Arc<MsixInterrupt>, Arc<FakeVm>) {
        setup_with(mem())
    }

    fn setup_with(m: GuestMemoryMmap) -> (VirtioPciDevice, Arc<MsixInterrupt>, Arc<FakeVm>) {
        let vm = Arc::new(FakeVm::default());
        let interrupt = Arc::new(MsixInterrupt::new(1, 200, vm.clone()).unwrap());
        let t = MmioTransport::new(Box::new(Rng::new()), m, interrupt.clone()).unwrap();
        let d = VirtioPciDevice::new(
            Arc::new(Mutex::new(t)),
            interrupt.clone(),
            vm.clone(),
            BAR,
            vec![WINDOW],
        );
        (d, interrupt, vm)
    }

    /// Walks the capability list as Linux's virtio_pci_modern does: (cfg_type, bar, offset, length,
    /// notify multiplier) of each vendor capability, and the MSI-X capability's offset.
    fn walk(d: &mut VirtioPciDevice) -> (Vec<VendorCap>, Option<u16>) {
        let mut caps = Vec::new();
        let mut msix = None;
        let mut ptr = cfg_r(d, CAPABILITY_POINTER, 1) as u16;
        while ptr != 0 {
            match cfg_r(d, ptr, 1) as u8 {
                CAP_ID_VENDOR => caps.push((
                    cfg_r(d, ptr + 3, 1) as u8,
                    cfg_r(d, ptr + 4, 1) as u8,
                    cfg_r(d, ptr + 8, 4),
                    cfg_r(d, ptr + 12, 4),
                    if cfg_r(d, ptr + 2, 1) >= 20 {
                        cfg_r(d, ptr + 16, 4)
                    } else {
                        0
                    },
                )),
                CAP_ID_MSIX => msix = Some(ptr),
                id => panic!("unexpected capability {id:#x}"),
            }
            ptr = cfg_r(d, ptr + 1, 1) as u16;
        }
        (caps, msix)
    }

    #[test]
    fn identifies_as_a_modern_virtio_function_with_its_structures() {
        let (mut d, _, _) = setup();
        assert_eq!(cfg_r(&mut d, VENDOR_ID, 2), 0x1af4);
        assert_eq!(cfg_r(&mut d, 2, 2), 0x1044); // 0x1040 + entropy source
        assert_eq!(cfg_r(&mut d, 0x08, 1), 1); // revision 1: modern only
        assert_eq!(cfg_r(&mut d, 0x3d, 1), 0); // no INTx pin
        assert_eq!(cfg_r(&mut d, 0x100, 4), 0); // no extended capabilities
        let (caps, msix) = walk(&mut d);
        assert_eq!(
            caps,
            vec![
                (CFG_COMMON, 0, 0, 0x3c, 0),
                (CFG_ISR, 0, 0x1000, 1, 0),
                (CFG_DEVICE, 0, 0x2000, 0x1000, 0),
                (CFG_NOTIFY, 0, 0x3000, 4, 4),
            ]
        );
        let msix = msix.unwrap();
        assert_eq!(cfg_r(&mut d, msix + 2, 2) & 0x7ff, 1); // two vectors
        assert_eq!(cfg_r(&mut d, msix + 4, 4), 0x4000);
        assert_eq!(cfg_r(&mut d, msix + 8, 4), 0x5000);
        // BAR 0 sizes as 32 KiB of 32-bit memory.
        cfg_w(&mut d, BAR0, 4, 0xffff_ffff);
        assert_eq!(cfg_r(&mut d, BAR0, 4), 0xffff_8000);
        assert_eq!(cfg_r(&mut d, BAR0 + 4, 4), 0);
    }

    #[test]
    fn notifications_follow_memory_decoding_and_bar_moves() {
        let (mut d, _, vm) = setup();
        assert!(vm.ioeventfds.lock().unwrap().is_empty());
        assert!(d.trapped_ranges().is_empty());
        cfg_w(
            &mut d,
            COMMAND,
            2,
            u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER),
        );
        assert_eq!(*vm.ioeventfds.lock().unwrap(), vec![BAR + 0x3000]);
        assert_eq!(d.trapped_ranges(), vec![(0, BAR, 0x8000)]);
        cfg_w(&mut d, BAR0, 4, 0x4001_0000);
        assert_eq!(*vm.ioeventfds.lock().unwrap(), vec![0x4001_3000]);
        // Sizing moves the BAR out of the window: no notifications there.
        cfg_w(&mut d, BAR0, 4, 0xffff_ffff);
        assert!(vm.ioeventfds.lock().unwrap().is_empty());
        cfg_w(&mut d, BAR0, 4, 0x4001_0000);
        cfg_w(&mut d, COMMAND, 2, 0);
        assert!(vm.ioeventfds.lock().unwrap().is_empty());
        assert!(d.trapped_ranges().is_empty());
    }

    /// Programs vector `v` with message (addr, data) and unmasks it.
    fn program(d: &mut VirtioPciDevice, v: u64, addr: u64, data: u32) {
        let e = layout::MSIX_TABLE + v * 16;
        bar_w(d, e, 8, addr);
        bar_w(d, e + 8, 4, u64::from(data));
        bar_w(d, e + 12, 4, 0);
    }

    #[test]
    fn a_driver_sets_up_the_queue_and_used_buffers_fire_its_vector() {
        let m = mem();
        let (mut d, irq, vm) = setup_with(m.clone());
        cfg_w(
            &mut d,
            COMMAND,
            2,
            u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER),
        );
        let (_, msix) = walk(&mut d);
        let msix = msix.unwrap();
        program(&mut d, 0, 0x2800_0000, 1);
        program(&mut d, 1, 0x2800_1000, 2);
        cfg_w(&mut d, msix + 2, 2, 0x8000); // MSI-X enable
        assert_eq!(cfg_r(&mut d, msix + 2, 2) >> 14, 2);
        let routes = vm.routes.lock().unwrap().clone();
        assert!(routes.contains(&(200, Some((0x2800_0000, 1)))));
        assert!(routes.contains(&(201, Some((0x2800_1000, 2)))));
        assert_eq!(*vm.irqfds.lock().unwrap(), vec![200, 201]);

        // Feature negotiation and queue setup as Linux does them.
        bar_w(&mut d, common::DEVICE_STATUS, 1, 1 | 2);
        bar_w(&mut d, common::DEVICE_FEATURE_SELECT, 4, 1);
        assert_eq!(bar_r(&mut d, common::DEVICE_FEATURE_SELECT, 4), 1);
        let high = bar_r(&mut d, common::DEVICE_FEATURE, 4);
        assert_ne!(high & (1 << (VIRTIO_F_VERSION_1 - 32)), 0);
        bar_w(&mut d, common::DRIVER_FEATURE_SELECT, 4, 1);
        bar_w(&mut d, common::DRIVER_FEATURE, 4, 1);
        assert_eq!(bar_r(&mut d, common::DRIVER_FEATURE, 4), 1);
        bar_w(&mut d, common::DEVICE_STATUS, 1, 1 | 2 | 8);
        assert_eq!(bar_r(&mut d, common::DEVICE_STATUS, 1), 1 | 2 | 8);
        bar_w(&mut d, common::CONFIG_MSIX_VECTOR, 2, 0);
        assert_eq!(bar_r(&mut d, common::CONFIG_MSIX_VECTOR, 2), 0);
        assert_eq!(bar_r(&mut d, common::NUM_QUEUES, 2), 1);
        bar_w(&mut d, common::QUEUE_SELECT, 2, 0);
        assert_eq!(bar_r(&mut d, common::QUEUE_SIZE, 2), 256);
        bar_w(&mut d, common::QUEUE_SIZE, 2, 16);
        assert_eq!(bar_r(&mut d, common::QUEUE_SIZE, 2), 16);
        // A vector the table does not have reads back as NO_VECTOR.
        bar_w(&mut d, common::QUEUE_MSIX_VECTOR, 2, 7);
        assert_eq!(
            bar_r(&mut d, common::QUEUE_MSIX_VECTOR, 2),
            u64::from(NO_VECTOR)
        );
        bar_w(&mut d, common::QUEUE_MSIX_VECTOR, 2, 1);
        assert_eq!(bar_r(&mut d, common::QUEUE_MSIX_VECTOR, 2), 1);
        let mq = Mock::new(&m, 16);
        for (o, a) in [
            (common::QUEUE_DESC, mq.desc_table_addr().0),
            (common::QUEUE_DESC + 8, mq.avail_addr().0),
            (common::QUEUE_DEVICE, mq.used_addr().0),
        ] {
            bar_w(&mut d, o, 4, a & 0xffff_ffff);
            bar_w(&mut d, o + 4, 4, a >> 32);
            assert_eq!(bar_r(&mut d, o, 8), a);
        }
        assert_eq!(bar_r(&mut d, common::QUEUE_NOTIFY_OFF, 2), 0);
        bar_w(&mut d, common::QUEUE_ENABLE, 2, 1);
        assert_eq!(bar_r(&mut d, common::QUEUE_ENABLE, 2), 1);
        bar_w(&mut d, common::DEVICE_STATUS, 1, 1 | 2 | 4 | 8);
        let _ = d.transport().queue_eventfds()[0].read(); // the kick of DRIVER_OK

        // A buffer, served: vector 1 fires, nothing in the ISR.
        add_chain(&mq, 0, &[(0x1_0000, 64, true)]);
        d.transport().process_queue(0);
        assert_eq!(used(&mq), vec![(0, 64)]);
        assert_eq!(irq.eventfds[1].read().unwrap(), 1);
        assert!(irq.eventfds[0].read().is_err());
        assert_eq!(bar_r(&mut d, layout::ISR, 1), 0);

        // Masked, the vector is pending instead, and fires on unmask.
        bar_w(&mut d, layout::MSIX_TABLE + 16 + 12, 4, 1);
        add_chain(&mq, 1, &[(0x1_0000, 64, true)]);
        d.transport().process_queue(0);
        assert!(irq.eventfds[1].read().is_err());
        assert_eq!(bar_r(&mut d, layout::MSIX_PBA, 8), 0b10);
        bar_w(&mut d, layout::MSIX_TABLE + 16 + 12, 4, 0);
        assert_eq!(irq.eventfds[1].read().unwrap(), 1);
        assert_eq!(bar_r(&mut d, layout::MSIX_PBA, 8), 0);
        // Masking kept the vector's route (nothing signals it meanwhile): no route was ever removed,
        // and the unmask asked for the same route again (KVM's table is rewritten only on a change).
        let routes = vm.routes.lock().unwrap().clone();
        assert!(!routes.contains(&(201, None)), "{routes:?}");
        assert_eq!(routes.last(), Some(&(201, Some((0x2800_1000, 2)))));

        // Reset: the vectors are unassigned again.
        bar_w(&mut d, common::DEVICE_STATUS, 1, 0);
        assert_eq!(bar_r(&mut d, common::DEVICE_STATUS, 1), 0);
        assert_eq!(
            bar_r(&mut d, common::QUEUE_MSIX_VECTOR, 2),
            u64::from(NO_VECTOR)
        );
        assert_eq!(
            bar_r(&mut d, common::CONFIG_MSIX_VECTOR, 2),
            u64::from(NO_VECTOR)
        );
    }

    #[test]
    fn without_msix_the_isr_collects_causes_and_reading_clears_it() {
        let (mut d, irq, _) = setup();
        cfg_w(&mut d, COMMAND, 2, u32::from(COMMAND_MEMORY));
        irq.signal_config();
        irq.signal_used(0);
        assert_eq!(bar_r(&mut d, layout::ISR, 1), 3);
        assert_eq!(bar_r(&mut d, layout::ISR, 1), 0);
    }

    #[test]
    fn odd_accesses_are_ignored() {
        let (mut d, _, _) = setup();
        cfg_w(&mut d, COMMAND, 2, u32::from(COMMAND_MEMORY));
        // Wrong widths on the common configuration, past the end of the BAR, other BARs.
        bar_w(&mut d, common::DEVICE_STATUS, 4, 0xff);
        assert_eq!(bar_r(&mut d, common::DEVICE_STATUS, 1), 0);
        assert_eq!(bar_r(&mut d, common::NUM_QUEUES, 4), 0);
        bar_w(&mut d, layout::NOTIFY + 400, 2, 0);
        bar_w(&mut d, layout::MSIX_TABLE + 0x800, 4, 1);
        assert_eq!(bar_r(&mut d, 0x7ff8, 8), 0);
        d.bar_write(1, 0, &[1, 2, 3, 4]);
        let mut b = [0u8; 16];
        d.bar_write(0, 0, &b);
        d.bar_read(0, 0, &mut b[..3]);
    }
}
