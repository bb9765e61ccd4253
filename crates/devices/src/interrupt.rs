//! How a device raises its interrupt line, independent of the interrupt controller behind it.

use std::io;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// An edge on a device's interrupt line (for example an irqfd registered with KVM).
pub trait Interrupt: Send + Sync {
    /// Signals the interrupt.
    fn trigger(&self) -> io::Result<()>;
}

/// An interrupt delivered by writing to an eventfd that KVM watches (irqfd).
pub struct EventFdInterrupt(pub EventFd);

impl Interrupt for EventFdInterrupt {
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Adapts an [`Interrupt`] to vm-superio's `Trigger`.
#[derive(Clone)]
pub struct IrqTrigger(pub Arc<dyn Interrupt>);

impl vm_superio::Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.trigger()
    }
}
