//! The KVM glue of rvvmm: VM, vcpus, the in-kernel AIA irqchip and the ONE_REG register interface.
//!
//! Register ids and the vcpu's CPU description are arch-neutral (and unit-tested on any host); everything that
//! issues KVM ioctls is compiled only for `riscv64`, the one architecture rvvmm runs on.

pub mod coalesced;
pub mod cpu;
pub mod regs;
pub mod stats;

#[cfg(target_arch = "riscv64")]
mod kvm;
#[cfg(target_arch = "riscv64")]
pub use kvm::{Aia, CoalescedRing, Exit, SbiCall, Vcpu, VcpuInterrupt, Vm};

/// One entry of the VM's interrupt routing table (KVM_SET_GSI_ROUTING).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqRoute {
    /// `gsi` drives wired source `pin` of the in-kernel irqchip (the APLIC).
    Irqchip {
        /// The GSI.
        gsi: u32,
        /// The irqchip input.
        pin: u32,
    },
    /// `gsi` sends the message-signalled interrupt (`address`, `data`): on RISC-V a write of `data` to an
    /// IMSIC interrupt file.
    Msi {
        /// The GSI.
        gsi: u32,
        /// Message address.
        address: u64,
        /// Message data.
        data: u32,
    },
}

/// Errors from the KVM glue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {0} (is the kvm module loaded and does this CPU have the H extension?)")]
    OpenKvm(std::io::Error),
    /// A KVM ioctl failed.
    #[error("{what}: {source}")]
    Ioctl {
        /// What rvvmm was doing.
        what: String,
        /// The error the kernel returned.
        source: std::io::Error,
    },
    /// The host KVM has no in-kernel AIA irqchip.
    #[error("this host's KVM has no AIA irqchip (KVM_CREATE_DEVICE(RISCV_AIA): {0})")]
    NoAia(std::io::Error),
    /// KVM exited with a reason rvvmm does not handle.
    #[error("unexpected KVM exit: {0}")]
    UnexpectedExit(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
