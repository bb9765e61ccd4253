//! Device models of rvvmm that are not virtio: the MMIO bus every device hangs on, the ns16550a UART (on
//! vm-superio), the console input queue shared by the UART and the SBI console, and the sifive_test
//! poweroff/reset device; and the rate limit of the log lines a guest can trigger ([`log_limit`]). All
//! arch-neutral and unit-tested on any host.

pub mod bus;
pub mod console;
pub mod goldfish_rtc;
pub mod interrupt;
pub mod log_limit;
pub mod plic;
pub mod serial;
pub mod sifive_test;

pub use bus::{MmioBus, MmioDevice, SharedMmioDevice};

/// Runs first on a thread a device starts (rvvmm installs the thread's seccomp filter there).
pub type ThreadHook = Box<dyn FnOnce() + Send>;
