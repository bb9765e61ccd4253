//! The rvvmm virtual machine: configuration, boot (kernel, initrd, device tree), devices and the vcpu
//! threads, wired together by [`Vmm::run`].

pub mod api_config;
pub mod config;
pub mod control;
pub mod cores;
pub mod exit;
pub mod exit_counts;
pub mod host;
pub mod kernel;
pub mod loader;
pub mod memory;
pub mod pause;
pub mod preflight;
pub mod privileges;
pub mod sbi;
pub mod seccomp;
pub mod signals;
pub mod terminal;

#[cfg(target_arch = "riscv64")]
mod device_manager;
#[cfg(target_arch = "riscv64")]
mod irqchip;
#[cfg(target_arch = "riscv64")]
mod machine;
#[cfg(target_arch = "riscv64")]
mod pci_glue;
#[cfg(target_arch = "riscv64")]
mod uart_glue;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::Duration;

use api::{ApiError, ApiRequest};
use config::{ApiSocket, VmConfig};
use control::{ExitSender, RunningVm, VmmEvent};
pub use exit::GuestExit;
use seccomp::{Filters, ThreadKind};

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
    /// The API socket could not be set up.
    #[error("{0}")]
    Api(String),
    /// Any other I/O failure during setup.
    #[error("{what}: {source}")]
    Io {
        /// What rvvmm was doing.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

static PROCESS_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Records when rvvmm started (call first thing in `main`); the start-up cost rvvmm logs (process start to
/// the guest's first instruction) is measured from here.
pub fn mark_process_start() {
    let _ = PROCESS_START.get_or_init(std::time::Instant::now);
}

/// Time since [`mark_process_start`] (zero if it was never called).
pub fn since_process_start() -> Duration {
    PROCESS_START.get().map(|t| t.elapsed()).unwrap_or_default()
}

/// How long rvvmm waits, before exiting, for the API thread to finish writing an answer.
const API_ANSWER_GRACE: Duration = Duration::from_secs(2);

/// One VMM process: the VM of the command line, or of the API's `vm.create`.
pub struct Vmm {
    config: Option<VmConfig>,
    defaults: VmConfig,
    api_socket: Option<ApiSocket>,
}

impl Vmm {
    /// A VMM for `config`; nothing is opened until [`Vmm::run`].
    pub fn new(config: VmConfig) -> Vmm {
        Vmm {
            defaults: config.clone(),
            config: Some(config),
            api_socket: None,
        }
    }

    /// A VMM driven through the API socket at `socket`: it runs `config` at once when given, else waits
    /// for `vm.create` and `vm.boot`; `defaults` holds the command line's settings that the API does not
    /// carry (irqchip, seccomp, shared cores, timeout).
    pub fn with_api(config: Option<VmConfig>, defaults: VmConfig, socket: ApiSocket) -> Vmm {
        Vmm {
            config,
            defaults,
            api_socket: Some(socket),
        }
    }

    /// Runs the VM until the guest powers off, resets, fails, rvvmm is stopped, or the API shuts it down.
    pub fn run(self) -> Result<GuestExit, Error> {
        let filters = seccomp_filters(self.defaults.seccomp, self.defaults.user.is_some())?;
        let (events, rx) = channel::<VmmEvent>();
        let exits = ExitSender::new(events.clone());
        // Before any thread starts: every thread inherits the blocked stop signals, and the API
        // socket's umask is process-wide.
        signals::block_stop_signals();
        let api = match &self.api_socket {
            Some(socket) => Some(start_api(socket, events, filters.clone())?),
            None => {
                drop(events);
                None
            }
        };
        signals::spawn_signal_thread(exits.clone(), filters.clone())?;
        let mut boot = |config: &VmConfig| boot(config, &exits, &filters);
        let mut controller = control::Controller::new(rx, self.defaults.clone(), &mut boot);
        let result = match self.config {
            Some(config) => controller
                .boot_now(config)
                .map(|ended| ended.unwrap_or_else(|| controller.run())),
            None => Ok(controller.run()),
        };
        if let Some(api) = &api {
            api.wait_idle(API_ANSWER_GRACE);
        }
        drop(api);
        if let Ok(why) = &result {
            log::info!("guest stopped: {why:?}");
        }
        result
    }
}

/// Binds the API socket and starts the `api` thread, which hands each request to the control loop.
fn start_api(
    socket: &ApiSocket,
    events: Sender<VmmEvent>,
    filters: Option<Arc<Filters>>,
) -> Result<api::server::ApiHandle, Error> {
    let server = match socket {
        ApiSocket::Path(path) => {
            api::ApiServer::bind(path).map_err(|e| Error::Api(e.to_string()))?
        }
        ApiSocket::Fd(fd) => api::ApiServer::from_listener(
            inherited_listener(*fd)
                .map_err(|e| Error::Api(format!("--api-socket fd={fd}: {e}")))?,
        ),
    };
    let on_start = Box::new(move || seccomp::apply_or_exit(filters.as_deref(), ThreadKind::Api));
    let handler = move |request: ApiRequest| {
        let what = request.name();
        let (reply, answer) = channel();
        if events.send(VmmEvent::Api(request, reply)).is_err() {
            return Err(ApiError::action(what, "rvvmm is stopping"));
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err(ApiError::action(what, "rvvmm is stopping")))
    };
    let handle = server
        .serve(on_start, handler)
        .map_err(|e| Error::Api(e.to_string()))?;
    log::info!("API socket: {socket}");
    Ok(handle)
}

/// Takes over fd `fd`, inherited from whoever started rvvmm, as the API's listening socket: it must be
/// an open Unix stream socket that listens.
fn inherited_listener(fd: i32) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::fd::FromRawFd;
    let int_opt = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, which outlives the call.
        let r =
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) };
        (r == 0).then_some(v)
    };
    // SAFETY: F_GETFD takes no pointer; it fails with EBADF when the fd is not open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err("not open in rvvmm (pass it open, without close-on-exec)".into());
    }
    match (
        int_opt(libc::SO_DOMAIN),
        int_opt(libc::SO_TYPE),
        int_opt(libc::SO_ACCEPTCONN),
    ) {
        (Some(libc::AF_UNIX), Some(libc::SOCK_STREAM), Some(1)) => {}
        (None, _, _) => return Err("not a socket".into()),
        _ => return Err("not a listening Unix stream socket".into()),
    }
    // SAFETY: `fd` is an open listening socket handed to rvvmm for its API; nothing else owns it.
    Ok(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) })
}

/// Checks `config` against the host, reserves its cores and starts it (riscv64; elsewhere the checks
/// run and then [`Error::UnsupportedHost`]).
fn boot(
    config: &VmConfig,
    exits: &ExitSender,
    filters: &Option<Arc<Filters>>,
) -> Result<Option<Box<dyn RunningVm>>, Error> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    };
    let allowed = host::allowed_cpus().map_err(io("cannot read this process's CPU affinity"))?;
    let host_mem = host::total_memory().map_err(io("cannot read the host's memory size"))?;
    let mut plan = preflight::check(config, &allowed, host_mem)?;
    // Running vcpus (not just dumping the device tree) takes the cores for real.
    let reservation = if config.dump_dtb.is_none() {
        let r = cores::reserve(
            &config.cpus,
            config.shared_cores,
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
    let bdfs: Vec<String> = config.devices.iter().map(|d| d.to_string()).collect();
    let passthrough = pci::passthrough::check_all(
        std::path::Path::new("/sys"),
        std::path::Path::new("/dev"),
        &bdfs,
    )
    .map_err(|e| Error::Devices(e.to_string()))?;
    #[cfg(target_arch = "riscv64")]
    {
        let machine = machine::start(
            config,
            &plan,
            &allowed,
            &passthrough,
            reservation,
            filters,
            exits.clone(),
        )?;
        Ok(machine.map(|m| Box::new(m) as Box<dyn RunningVm>))
    }
    #[cfg(not(target_arch = "riscv64"))]
    {
        let _ = (plan, passthrough, reservation, exits, filters);
        Err(Error::UnsupportedHost(std::env::consts::ARCH))
    }
}

/// The seccomp filters of every thread kind when `on` (riscv64 only: rvvmm runs guests nowhere else),
/// with the SIGSYS handler that reports a forbidden call installed.
fn seccomp_filters(on: bool, switch_user: bool) -> Result<Option<Arc<Filters>>, Error> {
    if !on {
        log::warn!("--seccomp off: rvvmm's threads run without seccomp filters");
        return Ok(None);
    }
    if !cfg!(target_arch = "riscv64") {
        return Ok(None);
    }
    if !seccomp::supported() {
        return Err(seccomp::SeccompError::Unsupported.into());
    }
    let filters = Filters::build_with(switch_user)?;
    seccomp::install_sigsys_handler()?;
    Ok(Some(Arc::new(filters)))
}
