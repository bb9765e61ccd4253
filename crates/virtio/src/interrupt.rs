//! How a virtio transport interrupts the driver ([`Interrupt`]), and its wired-line form for virtio-mmio
//! ([`VirtioInterrupt`]): the InterruptStatus register and the level of the device's interrupt line, high
//! while any status bit is set, low once the driver acknowledges them all. The PCI transport's MSI-X form
//! is [`crate::pci::MsixInterrupt`].

use std::sync::{Arc, Mutex};

use devices::interrupt::IrqLine;

/// InterruptStatus bit: a used buffer was added to a queue.
pub const INT_VRING: u32 = 1;
/// InterruptStatus bit: the configuration changed.
pub const INT_CONFIG: u32 = 2;

/// What a transport's queue processing and status changes use to interrupt the driver.
pub trait Interrupt: Send + Sync {
    /// Used buffers were added to queue `queue`.
    fn signal_used(&self, queue: usize);
    /// The device's configuration or status changed (e.g. DEVICE_NEEDS_RESET was set).
    fn signal_config(&self);
    /// The pending cause bits ([`INT_VRING`], [`INT_CONFIG`]): InterruptStatus, or the PCI ISR.
    fn status(&self) -> u32;
    /// The driver acknowledged `bits`.
    fn ack(&self, bits: u32);
    /// Device reset: nothing pending any more.
    fn reset(&self);
}

/// Interrupt state shared by the transport (vcpu threads: status read, ack) and the device's queue
/// processing (I/O thread: signal).
pub struct VirtioInterrupt {
    status: Mutex<u32>,
    line: Arc<dyn IrqLine>,
}

impl VirtioInterrupt {
    /// Interrupt state driving `line`.
    pub fn new(line: Arc<dyn IrqLine>) -> VirtioInterrupt {
        VirtioInterrupt {
            status: Mutex::new(0),
            line,
        }
    }

    fn update(&self, f: impl FnOnce(u32) -> u32) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let old = *status;
        *status = f(old);
        // The level changes only on 0 <-> non-0 transitions; set it under the lock so a signal and an ack
        // racing on two threads cannot leave the line low with a bit set.
        if (old == 0) != (*status == 0) {
            if let Err(e) = self.line.set_level(*status != 0) {
                log::warn!("virtio: cannot set interrupt level: {e}");
            }
        }
    }

    /// Sets status bits (e.g. [`INT_VRING`]) and raises the line.
    pub fn signal(&self, bits: u32) {
        self.update(|s| s | bits);
    }
}

impl Interrupt for VirtioInterrupt {
    fn signal_used(&self, _queue: usize) {
        self.signal(INT_VRING);
    }

    fn signal_config(&self) {
        self.signal(INT_CONFIG);
    }

    fn status(&self) -> u32 {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ack(&self, bits: u32) {
        self.update(|s| s & !bits);
    }

    fn reset(&self) {
        self.update(|_| 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use devices::interrupt::test_utils::RecordingLine as Line;

    #[test]
    fn level_follows_status() {
        let line = Arc::new(Line::default());
        let irq = VirtioInterrupt::new(line.clone());
        irq.signal(INT_VRING);
        irq.signal(INT_VRING); // already high: no new edge
        irq.signal(INT_CONFIG);
        assert_eq!(irq.status(), 3);
        irq.ack(INT_VRING);
        assert_eq!(irq.status(), INT_CONFIG);
        irq.ack(INT_CONFIG);
        irq.ack(INT_CONFIG);
        assert_eq!(*line.0.lock().unwrap(), vec![true, false]);
        irq.signal(INT_VRING);
        irq.reset();
        assert_eq!(irq.status(), 0);
        assert_eq!(*line.0.lock().unwrap(), vec![true, false, true, false]);
    }
}
