//! The virtio-mmio InterruptStatus register and the level of the device's interrupt line: high while any
//! status bit is set, low once the driver acknowledges them all.

use std::sync::{Arc, Mutex};

use devices::interrupt::IrqLine;

/// InterruptStatus bit: a used buffer was added to a queue.
pub const INT_VRING: u32 = 1;
/// InterruptStatus bit: the configuration changed.
pub const INT_CONFIG: u32 = 2;

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

    /// The driver acknowledged `bits` (InterruptACK write).
    pub fn ack(&self, bits: u32) {
        self.update(|s| s & !bits);
    }

    /// Current InterruptStatus.
    pub fn status(&self) -> u32 {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Device reset: clear everything.
    pub fn reset(&self) {
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
