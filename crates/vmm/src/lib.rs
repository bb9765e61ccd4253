//! The rvvmm virtual machine: configuration, boot (kernel, initrd, device tree), devices and the vcpu
//! threads, wired together by [`Vmm::run`].

pub mod config;
pub mod cores;
pub mod exit;
pub mod host;
pub mod kernel;
pub mod loader;
pub mod preflight;
pub mod sbi;
pub mod seccomp;
pub mod terminal;

#[cfg(target_arch = "riscv64")]
mod device_manager;
#[cfg(target_arch = "riscv64")]
mod irqchip;
#[cfg(target_arch = "riscv64")]
mod machine;
#[cfg(target_arch = "riscv64")]
mod pci_glue;

use std::path::PathBuf;

use config::VmConfig;
pub use exit::GuestExit;

/// Errors that stop rvvmm before or while running the guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rvvmm was built for a host it cannot run guests on.
    #[error("rvvmm runs guests only on riscv64 Linux hosts with KVM (this binary is for {0})")]
    UnsupportedHost(&'static str),
    /// An option that this version does not implement yet.
    #[error("{0} is not supported yet by this version of rvvmm")]
    NotYetSupported(&'static str),
    /// A kernel or initrd file cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    File {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel file cannot be loaded.
    #[error("kernel {}: {source}", path.display())]
    Kernel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: loader::LoaderError,
    },
    /// Kernel, initrd and FDT do not fit in guest RAM.
    #[error("kernel and initrd do not fit in --memory: {0}")]
    Layout(arch::LayoutError),
    /// Guest RAM size or mapping problem.
    #[error("{0}")]
    Memory(String),
    /// Not enough (or wrong) host cores.
    #[error("{0}")]
    Cores(String),
    /// The host's KVM refused something.
    #[error(transparent)]
    Hypervisor(#[from] hypervisor::Error),
    /// The device tree could not be built.
    #[error("cannot build the device tree: {0}")]
    Fdt(#[from] arch::FdtError),
    /// The requested interrupt controller is not available.
    #[error("{0}")]
    Irqchip(String),
    /// A device could not be set up (disk image, too many devices, ...).
    #[error("{0}")]
    Devices(String),
    /// A seccomp filter could not be built or installed.
    #[error(transparent)]
    SeccompFilter(#[from] seccomp::SeccompError),
    /// Any other I/O failure during setup.
    #[error("{what}: {source}")]
    Io {
        /// What rvvmm was doing.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
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

    /// Builds the VM and runs it until the guest powers off, resets, fails or rvvmm is stopped.
    pub fn run(self) -> Result<GuestExit, Error> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let allowed =
            host::allowed_cpus().map_err(io("cannot read this process's CPU affinity"))?;
        let host_mem = host::total_memory().map_err(io("cannot read the host's memory size"))?;
        let mut plan = preflight::check(&self.config, &allowed, host_mem)?;
        // Running vcpus (not just dumping the device tree) takes the cores for real.
        let _reservation = if self.config.dump_dtb.is_none() {
            let r = cores::reserve(
                &self.config.cpus,
                self.config.shared_cores,
                &allowed,
                &cores::lock_dir(),
            )
            .map_err(Error::Cores)?;
            plan.cores = r.cores.clone();
            Some(r)
        } else {
            None
        };
        // Every --device is checked (sysfs, its driver, its IOMMU group, VFIO) before anything is opened.
        let bdfs: Vec<String> = self.config.devices.iter().map(|d| d.to_string()).collect();
        let passthrough = pci::passthrough::check_all(
            std::path::Path::new("/sys"),
            std::path::Path::new("/dev"),
            &bdfs,
        )
        .map_err(|e| Error::Devices(e.to_string()))?;
        #[cfg(target_arch = "riscv64")]
        {
            machine::run(&self.config, &plan, &allowed, &passthrough)
        }
        #[cfg(not(target_arch = "riscv64"))]
        {
            let _ = (plan, passthrough);
            Err(Error::UnsupportedHost(std::env::consts::ARCH))
        }
    }
}
