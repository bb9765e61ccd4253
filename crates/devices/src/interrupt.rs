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
