//! How a device drives its interrupt line, independent of the interrupt controller behind it.

use std::io;

/// A level-sensitive interrupt line into the irqchip (an APLIC source through `KVM_IRQ_LINE`, or later a
/// userspace PLIC source). Devices call it only when their level changes.
pub trait IrqLine: Send + Sync {
    /// Drives the line high (`true`) or low.
    fn set_level(&self, level: bool) -> io::Result<()>;
}

/// vm-superio wants a `Trigger`; the UART computes its line level itself, so this one does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopTrigger;

impl vm_superio::Trigger for NoopTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Test helpers for crates that drive interrupt lines (enabled by the `test-utils` feature).
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils {
    use std::sync::Mutex;

    use super::IrqLine;

    /// An [`IrqLine`] that records every level it is driven to.
    #[derive(Debug, Default)]
    pub struct RecordingLine(pub Mutex<Vec<bool>>);

    impl IrqLine for RecordingLine {
        fn set_level(&self, level: bool) -> std::io::Result<()> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(level);
            Ok(())
        }
    }

    impl RecordingLine {
        /// The last level driven (low if never driven).
        pub fn level(&self) -> bool {
            self.levels().last().copied().unwrap_or(false)
        }

        /// Every level driven, in order.
        pub fn levels(&self) -> Vec<bool> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }
}
