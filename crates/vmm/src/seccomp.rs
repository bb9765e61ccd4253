//! Seccomp filters, one per kind of rvvmm thread (built with seccompiler). Each thread installs its own
//! filter when its set-up is done: from then on it may only make the system calls its kind needs. Nothing
//! opens files, creates sockets, starts processes or threads, maps other processes or changes
//! credentials once the guest runs, so none of that is allowed anywhere.
//!
//! A forbidden call raises SIGSYS; rvvmm's handler prints one line naming the thread and the call
//! (`rvvmm: error: seccomp: thread vcpu0 made a forbidden system call: socket (198)`) and exits with
//! status [`EXIT_SECCOMP`] (128 + SIGSYS), before the call could do anything.
//!
//! Some calls are allowed only with certain arguments ([`argument_rules`]): `ioctl` by request number
//! (per thread kind: the interrupt ioctls only, or KVM's, VFIO's and vhost's families without the ones
//! that create VMs, vcpus or devices, the tap's offload settings and the terminal's modes; never
//! TIOCSTI, block device or socket ioctls), `tgkill` only to rvvmm's own threads, `mmap` and `mprotect`
//! never executable, `fcntl` only to read or set fd and file status flags (no fd duplication). The rules
//! are arch-neutral (libc's numbers of the target) and compile on any host for the unit tests (which also
//! install them in child processes); only riscv64 installs them in rvvmm.

use std::cell::Cell;
use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

/// Exit status after a forbidden system call: 128 + SIGSYS.
pub const EXIT_SECCOMP: i32 = 128 + libc::SIGSYS;

/// Environment variable of the self-test: a thread whose kind it names makes a forbidden call (socket)
/// right after installing its filter. Only the tests use it.
pub const SELFTEST_ENV: &str = "RVVMM_SECCOMP_SELFTEST";

/// The kinds of threads rvvmm runs once the guest starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThreadKind {
    /// The main thread: waits for the guest to stop, then flushes the devices and exits.
    Main,
    /// A vcpu: KVM_RUN, MMIO and SBI exits (device registers, VFIO config and interrupt routing).
    Vcpu,
    /// The virtio I/O thread: queue notifications, disk and tap I/O, interrupts.
    VirtioIo,
    /// The console input thread: reads stdin and feeds the UART.
    Console,
    /// The signal thread: waits for SIGTERM/SIGINT/SIGHUP.
    Signals,
    /// The RTC alarm thread: sleeps until the guest's alarm and raises its interrupt.
    RtcAlarm,
    /// The --timeout thread: sleeps.
    Timeout,
    /// The API thread: accepts connections on the API socket, reads requests and writes answers (one
    /// thread for every connection: ppoll).
    Api,
    /// The console output thread: writes the guest's partial lines to stdout and plays the UART's held
    /// writes.
    ConsoleOut,
}

impl ThreadKind {
    /// Every kind.
    pub const ALL: [ThreadKind; 9] = [
        ThreadKind::Main,
        ThreadKind::Vcpu,
        ThreadKind::VirtioIo,
        ThreadKind::Console,
        ThreadKind::Signals,
        ThreadKind::RtcAlarm,
        ThreadKind::Timeout,
        ThreadKind::Api,
        ThreadKind::ConsoleOut,
    ];

    /// The name used in messages and in [`SELFTEST_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::VirtioIo => "virtio-io",
            ThreadKind::Console => "console-in",
            ThreadKind::Signals => "signals",
            ThreadKind::RtcAlarm => "rtc-alarm",
            ThreadKind::Timeout => "timeout",
            ThreadKind::Api => "api",
            ThreadKind::ConsoleOut => "console-out",
        }
    }
}

/// What every thread needs: memory allocation, locks, time, its own signals and exit, writing logs.
const COMMON: &[libc::c_long] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    // abort() after a panic raises SIGABRT at the thread.
    libc::SYS_tgkill,
    libc::SYS_getrandom,
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Device work: reading and writing device fds (eventfds, disk images, taps, VFIO regions), flushing
/// disks, KVM/VFIO/vhost ioctls and the I/O thread's epoll loop.
const DEVICE_IO: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_lseek,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fallocate,
    libc::SYS_ioctl,
    libc::SYS_fcntl,
    libc::SYS_eventfd2,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_ppoll,
    // A rate limiter that holds a queue back arms its timerfd.
    libc::SYS_timerfd_settime,
];

/// What every thread needs when rvvmm switches user (`--user`): glibc makes each thread change its
/// credentials itself.
const SWITCH_USER: &[libc::c_long] = &[
    libc::SYS_setgroups,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
];

/// The system calls a thread of `kind` may make.
pub fn allowed(kind: ThreadKind) -> Vec<libc::c_long> {
    allowed_with(kind, false)
}

/// [`allowed`], plus what switching user needs when `switch_user`.
pub fn allowed_with(kind: ThreadKind, switch_user: bool) -> Vec<libc::c_long> {
    let mut calls = COMMON.to_vec();
    if switch_user {
        calls.extend_from_slice(SWITCH_USER);
    }
    match kind {
        ThreadKind::Main | ThreadKind::Vcpu | ThreadKind::VirtioIo => {
            calls.extend_from_slice(DEVICE_IO)
        }
        // Input goes to the UART, whose interrupt is a KVM ioctl (or a PLIC update, also an ioctl).
        ThreadKind::Console => calls.extend_from_slice(&[libc::SYS_read, libc::SYS_ioctl]),
        ThreadKind::Signals => calls.push(libc::SYS_rt_sigtimedwait),
        ThreadKind::RtcAlarm => calls.push(libc::SYS_ioctl),
        // Writing (COMMON has write) and sleeping only.
        ThreadKind::Timeout => {}
        // Writing; and the UART's held writes it plays may change its interrupt (a KVM or PLIC ioctl).
        ThreadKind::ConsoleOut => calls.push(libc::SYS_ioctl),
        // Its listening socket exists already (non-blocking): it waits in ppoll, accepts non-blocking
        // connections (accept4), reads and writes them.
        ThreadKind::Api => calls.extend_from_slice(&[
            libc::SYS_accept,
            libc::SYS_accept4,
            libc::SYS_read,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_ppoll,
        ]),
    }
    // The main thread removes the API socket when rvvmm ends.
    if kind == ThreadKind::Main {
        calls.push(libc::SYS_unlinkat);
    }
    calls.sort_unstable();
    calls.dedup();
    calls
}

/// ioctl request numbers (the generic Linux encoding, which riscv64 uses): direction, size, type, number.
mod request {
    const fn ioc(dir: u64, ty: u64, nr: u64, size: u64) -> u64 {
        (dir << 30) | (size << 16) | (ty << 8) | nr
    }
    const KVMIO: u64 = 0xae;
    /// VFIO's ioctl type (';').
    pub const VFIO_TYPE: u64 = 0x3b;
    /// vhost's ioctl type.
    pub const VHOST_TYPE: u64 = 0xaf;
    /// KVM's ioctl type.
    pub const KVM_TYPE: u64 = KVMIO;

    /// KVM_IRQ_LINE (struct kvm_irq_level, 8 bytes).
    pub const KVM_IRQ_LINE: u64 = ioc(1, KVMIO, 0x61, 8);
    /// KVM_INTERRUPT (struct kvm_interrupt, 4 bytes): the userspace PLIC's external interrupt line.
    pub const KVM_INTERRUPT: u64 = ioc(1, KVMIO, 0x86, 4);
    /// KVM_SIGNAL_MSI (struct kvm_msi, 32 bytes).
    pub const KVM_SIGNAL_MSI: u64 = ioc(1, KVMIO, 0xa5, 32);
    /// KVM_CREATE_VM: never once the guest runs.
    pub const KVM_CREATE_VM: u64 = ioc(0, KVMIO, 0x01, 0);
    /// KVM_CREATE_VCPU.
    pub const KVM_CREATE_VCPU: u64 = ioc(0, KVMIO, 0x41, 0);
    /// KVM_CREATE_IRQCHIP.
    pub const KVM_CREATE_IRQCHIP: u64 = ioc(0, KVMIO, 0x60, 0);
    /// KVM_CREATE_DEVICE (struct kvm_create_device, 12 bytes).
    pub const KVM_CREATE_DEVICE: u64 = ioc(3, KVMIO, 0xe0, 12);
    /// KVM_GET_STATS_FD (opens a file).
    pub const KVM_GET_STATS_FD: u64 = ioc(0, KVMIO, 0xce, 0);
}

/// The ioctls a thread of `kind` may make: exact request numbers, and whole families (an ioctl type)
/// minus some of their members.
struct IoctlPolicy {
    exact: Vec<u64>,
    families: Vec<u64>,
    family_exceptions: Vec<u64>,
}

// libc's request constants are c_ulong on glibc (c_int on musl): the casts are for the latter.
#[allow(clippy::unnecessary_cast)]
fn ioctl_policy(kind: ThreadKind) -> IoctlPolicy {
    // Raising an interrupt: an AIA or PLIC line, an MSI.
    let interrupts = vec![
        request::KVM_IRQ_LINE,
        request::KVM_INTERRUPT,
        request::KVM_SIGNAL_MSI,
    ];
    // The terminal's modes (raw mode and its restoration): TCGETS and the three TCSETS.
    let terminal = [libc::TCGETS, libc::TCSETS, libc::TCSETSW, libc::TCSETSF].map(|r| r as u64);
    // The tap's settings that follow the guest's feature negotiation.
    let tap = [libc::TUNSETOFFLOAD, libc::TUNSETVNETHDRSZ].map(|r| r as u64);
    let devices = IoctlPolicy {
        exact: tap.to_vec(),
        // vcpus run (KVM_RUN), route interrupts and move BARs (KVM), drive passed-through devices
        // (VFIO) and start or stop in-kernel data paths (vhost) as the guest programs its devices.
        families: vec![request::KVM_TYPE, request::VFIO_TYPE, request::VHOST_TYPE],
        family_exceptions: vec![
            request::KVM_CREATE_VM,
            request::KVM_CREATE_VCPU,
            request::KVM_CREATE_IRQCHIP,
            request::KVM_CREATE_DEVICE,
            request::KVM_GET_STATS_FD,
        ],
    };
    let only = |exact: Vec<u64>| IoctlPolicy {
        exact,
        families: Vec::new(),
        family_exceptions: Vec::new(),
    };
    // Asking whether an fd is a terminal (isatty: TCGETS), which the logger does on the thread that
    // logs; it changes nothing.
    let query = libc::TCGETS as u64;
    match kind {
        ThreadKind::Vcpu | ThreadKind::VirtioIo => IoctlPolicy {
            exact: [devices.exact.clone(), vec![query]].concat(),
            ..devices
        },
        ThreadKind::Main => IoctlPolicy {
            exact: [devices.exact.clone(), terminal.to_vec()].concat(),
            ..devices
        },
        ThreadKind::Console => only([interrupts, terminal.to_vec()].concat()),
        ThreadKind::RtcAlarm | ThreadKind::ConsoleOut => only([interrupts, vec![query]].concat()),
        ThreadKind::Signals | ThreadKind::Timeout | ThreadKind::Api => only(Vec::new()),
    }
}

/// `fcntl` commands every thread may use: reading and setting fd and file status flags.
const FCNTL_COMMANDS: [libc::c_int; 4] =
    [libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL];

/// The argument conditions of the calls of `kind` that are allowed only with certain arguments (a call
/// matches when one of its rules does; each rule is a conjunction). `pid` is rvvmm's process id.
pub fn argument_rules(
    kind: ThreadKind,
    pid: u32,
) -> Result<BTreeMap<libc::c_long, Vec<SeccompRule>>, seccompiler::BackendError> {
    use seccompiler::{SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond};
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds);
    let mut out = BTreeMap::new();
    // Signals only to rvvmm's own threads (the pause kick, abort).
    out.insert(
        libc::SYS_tgkill,
        vec![rule(vec![Cond::new(
            0,
            Len::Dword,
            Op::Eq,
            u64::from(pid),
        )?])?],
    );
    // No executable memory.
    let not_exec = || -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
        Ok(vec![rule(vec![Cond::new(
            2,
            Len::Dword,
            Op::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])?])
    };
    out.insert(libc::SYS_mmap, not_exec()?);
    out.insert(libc::SYS_mprotect, not_exec()?);
    out.insert(
        libc::SYS_fcntl,
        FCNTL_COMMANDS
            .iter()
            .map(|&c| rule(vec![Cond::new(1, Len::Dword, Op::Eq, c as u64)?]))
            .collect::<Result<_, _>>()?,
    );
    let policy = ioctl_policy(kind);
    let mut ioctl = Vec::new();
    for r in &policy.exact {
        ioctl.push(rule(vec![Cond::new(1, Len::Dword, Op::Eq, *r)?])?);
    }
    for ty in &policy.families {
        let mut conds = vec![Cond::new(1, Len::Dword, Op::MaskedEq(0xff00), ty << 8)?];
        for ex in policy
            .family_exceptions
            .iter()
            .filter(|ex| (*ex >> 8) & 0xff == *ty)
        {
            conds.push(Cond::new(1, Len::Dword, Op::Ne, *ex)?);
        }
        ioctl.push(rule(conds)?);
    }
    if !ioctl.is_empty() {
        out.insert(libc::SYS_ioctl, ioctl);
    }
    Ok(out)
}

/// Errors building or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused the rules.
    #[error("cannot build the seccomp filter of the {0} thread: {1}")]
    Build(&'static str, seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter of the {0} thread: {1}")]
    Install(&'static str, seccompiler::Error),
    /// The kernel has no seccomp filters.
    #[error(
        "this host kernel has no seccomp filters (CONFIG_SECCOMP_FILTER); run with --seccomp off"
    )]
    Unsupported,
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "riscv64")]
    {
        TargetArch::riscv64
    }
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
    #[cfg(target_arch = "x86_64")]
    {
        TargetArch::x86_64
    }
}

/// The compiled filters of every thread kind, built once before the threads start.
#[derive(Debug, Clone)]
pub struct Filters {
    programs: BTreeMap<ThreadKind, BpfProgram>,
}

impl Filters {
    /// Builds every kind's filter: allowed calls pass, anything else traps (SIGSYS).
    pub fn build() -> Result<Filters, SeccompError> {
        Filters::build_with(false)
    }

    /// [`Filters::build`]; with `switch_user`, every thread may also change its credentials (`--user`:
    /// see [`crate::privileges`]).
    pub fn build_with(switch_user: bool) -> Result<Filters, SeccompError> {
        let mut programs = BTreeMap::new();
        let pid = std::process::id();
        for kind in ThreadKind::ALL {
            let mut conditional =
                argument_rules(kind, pid).map_err(|e| SeccompError::Build(kind.name(), e))?;
            // A call the kind may make gets its argument rules, if it has any (else any arguments).
            let rules = allowed_with(kind, switch_user)
                .into_iter()
                .map(|nr| (nr, conditional.remove(&nr).unwrap_or_default()))
                .collect();
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Trap,
                SeccompAction::Allow,
                target_arch(),
            )
            .map_err(|e| SeccompError::Build(kind.name(), e))?;
            let program: BpfProgram = filter
                .try_into()
                .map_err(|e| SeccompError::Build(kind.name(), e))?;
            programs.insert(kind, program);
        }
        Ok(Filters { programs })
    }

    /// The compiled filter of `kind`.
    pub fn program(&self, kind: ThreadKind) -> &BpfProgram {
        &self.programs[&kind]
    }

    /// Installs `kind`'s filter on the calling thread (for good); SIGSYS messages name the thread by
    /// its std name (e.g. `vcpu0`), or by its kind when it has none.
    pub fn install(&self, kind: ThreadKind) -> Result<(), SeccompError> {
        let current = std::thread::current();
        let name = current.name().unwrap_or(kind.name());
        THREAD_NAME.with(|n| n.set(ThreadName::new(name)));
        seccompiler::apply_filter(self.program(kind))
            .map_err(|e| SeccompError::Install(kind.name(), e))?;
        log::debug!(
            "seccomp filter of the {} thread installed on {name}",
            kind.name()
        );
        if std::env::var(SELFTEST_ENV).is_ok_and(|v| v == kind.name()) {
            log::warn!("{SELFTEST_ENV}: {name} makes a forbidden system call");
            // SAFETY: socket() takes integer arguments only; it is expected to trap before running.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        }
        Ok(())
    }
}

/// Installs `kind`'s filter on the calling thread when there are filters (`--seccomp on`). For threads
/// that cannot report an error (those started by the device crates): a failure ends rvvmm with one
/// error line, since a thread must never run unfiltered when filtering was asked for.
pub fn apply_or_exit(filters: Option<&Filters>, kind: ThreadKind) {
    if let Some(f) = filters {
        if let Err(e) = f.install(kind) {
            eprintln!("rvvmm: error: {e}");
            std::process::exit(1);
        }
    }
}

/// Whether this kernel supports seccomp filters (prctl(PR_GET_SECCOMP) answers).
pub fn supported() -> bool {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments; it fails with EINVAL without CONFIG_SECCOMP.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}

/// A thread's name as the SIGSYS handler reads it: a copy (Linux names are at most 15 bytes), so the
/// handler touches no allocation.
#[derive(Clone, Copy)]
struct ThreadName {
    bytes: [u8; 16],
    len: usize,
}

impl ThreadName {
    fn new(name: &str) -> ThreadName {
        let mut bytes = [0u8; 16];
        let len = name.len().min(bytes.len());
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        ThreadName { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

thread_local! {
    /// The name of the thread, for the SIGSYS handler.
    static THREAD_NAME: Cell<ThreadName> = const {
        Cell::new(ThreadName { bytes: [b'?'; 16], len: 1 })
    };
}

/// Names of the system calls a misbehaving rvvmm would most likely make (the rest print as a number).
fn syscall_name(nr: libc::c_long) -> &'static str {
    const NAMES: &[(libc::c_long, &str)] = &[
        (libc::SYS_openat, "openat"),
        (libc::SYS_socket, "socket"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_bind, "bind"),
        (libc::SYS_listen, "listen"),
        (libc::SYS_accept4, "accept4"),
        (libc::SYS_sendto, "sendto"),
        (libc::SYS_recvfrom, "recvfrom"),
        (libc::SYS_sendmsg, "sendmsg"),
        (libc::SYS_recvmsg, "recvmsg"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_kill, "kill"),
        (libc::SYS_ptrace, "ptrace"),
        (libc::SYS_mount, "mount"),
        (libc::SYS_unlinkat, "unlinkat"),
        (libc::SYS_statx, "statx"),
        (libc::SYS_newfstatat, "newfstatat"),
        (libc::SYS_fstat, "fstat"),
        (libc::SYS_prctl, "prctl"),
        (libc::SYS_rt_sigaction, "rt_sigaction"),
        (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
        (libc::SYS_sched_getaffinity, "sched_getaffinity"),
        (libc::SYS_sched_setaffinity, "sched_setaffinity"),
        (libc::SYS_dup, "dup"),
        (libc::SYS_dup3, "dup3"),
        (libc::SYS_pipe2, "pipe2"),
        (libc::SYS_flock, "flock"),
        (libc::SYS_ftruncate, "ftruncate"),
        (libc::SYS_getdents64, "getdents64"),
        (libc::SYS_uname, "uname"),
        (libc::SYS_setsockopt, "setsockopt"),
        (libc::SYS_memfd_create, "memfd_create"),
        (libc::SYS_eventfd2, "eventfd2"),
        (libc::SYS_epoll_create1, "epoll_create1"),
        (libc::SYS_timerfd_create, "timerfd_create"),
        (libc::SYS_timerfd_settime, "timerfd_settime"),
        (libc::SYS_read, "read"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_fcntl, "fcntl"),
        (libc::SYS_tgkill, "tgkill"),
        (libc::SYS_mmap, "mmap"),
        (libc::SYS_mprotect, "mprotect"),
        (libc::SYS_pread64, "pread64"),
        (libc::SYS_pwrite64, "pwrite64"),
        (libc::SYS_fdatasync, "fdatasync"),
        (libc::SYS_fallocate, "fallocate"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == nr)
        .map_or("unknown", |(_, name)| name)
}

/// A fixed buffer the SIGSYS handler formats its line into (no allocation in a signal handler).
struct LineBuf {
    buf: [u8; 192],
    len: usize,
}

impl LineBuf {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_number(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn push_hex(&mut self, mut v: u64) {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.push(b"0x");
        self.push(&digits[i..]);
    }
}

/// The line printed for forbidden call `nr` on thread `thread`; `args` are its first two arguments when
/// the handler can read them (they name what was refused of a call allowed with other arguments).
fn forbidden_line(thread: &[u8], nr: libc::c_long, args: Option<[u64; 2]>) -> LineBuf {
    let mut line = LineBuf {
        buf: [0; 192],
        len: 0,
    };
    line.push(b"rvvmm: error: seccomp: thread ");
    line.push(thread);
    line.push(b" made a forbidden system call: ");
    line.push(syscall_name(nr).as_bytes());
    line.push(b" (");
    line.push_number(nr as u64);
    line.push(b")");
    if let Some([a0, a1]) = args {
        match nr {
            libc::SYS_ioctl => line.push(b" request "),
            libc::SYS_fcntl => line.push(b" command "),
            libc::SYS_tgkill => {
                line.push(b" to process ");
                line.push_number(a0);
                line.push(b"\n");
                return line;
            }
            _ => {
                line.push(b"\n");
                return line;
            }
        }
        line.push_hex(a1 & 0xffff_ffff);
    }
    line.push(b"\n");
    line
}

/// The first two arguments of the system call a SIGSYS interrupted, from the signal's context.
#[cfg(target_arch = "riscv64")]
fn syscall_args(ctx: *mut libc::c_void) -> Option<[u64; 2]> {
    // SAFETY: for SA_SIGINFO handlers the kernel passes a valid ucontext; a0 and a1 are x10 and x11.
    let gregs = unsafe { &(*(ctx as *const libc::ucontext_t)).uc_mcontext.__gregs };
    Some([gregs[10], gregs[11]])
}

/// The first two arguments of the system call a SIGSYS interrupted, from the signal's context.
#[cfg(target_arch = "x86_64")]
fn syscall_args(ctx: *mut libc::c_void) -> Option<[u64; 2]> {
    // SAFETY: for SA_SIGINFO handlers the kernel passes a valid ucontext; rdi and rsi hold the first two.
    let gregs = unsafe { &(*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs };
    Some([
        gregs[libc::REG_RDI as usize] as u64,
        gregs[libc::REG_RSI as usize] as u64,
    ])
}

/// The first two arguments of the system call a SIGSYS interrupted (not read on this architecture).
#[cfg(not(any(target_arch = "riscv64", target_arch = "x86_64")))]
fn syscall_args(_ctx: *mut libc::c_void) -> Option<[u64; 2]> {
    None
}

/// Offset of `si_syscall` in a SIGSYS siginfo (after signo, errno, code, padding and `si_call_addr`).
const SI_SYSCALL_OFFSET: usize = 16 + std::mem::size_of::<usize>();

extern "C" fn sigsys_handler(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; for SIGSYS (SYS_SECCOMP) the
    // union holds `_sigsys`, whose `_syscall` int is at SI_SYSCALL_OFFSET on 64-bit Linux.
    let nr = unsafe {
        std::ptr::read_unaligned((info as *const u8).add(SI_SYSCALL_OFFSET) as *const i32)
    };
    let thread = THREAD_NAME.with(|n| n.get());
    let line = forbidden_line(thread.as_bytes(), libc::c_long::from(nr), syscall_args(ctx));
    // SAFETY: write and _exit are async-signal-safe and allowed by every filter; the buffer is valid.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::_exit(EXIT_SECCOMP);
    }
}

/// Installs the process-wide SIGSYS handler that reports forbidden calls (before any filter).
pub fn install_sigsys_handler() -> Result<(), SeccompError> {
    // SAFETY: a zeroed sigaction with a valid SA_SIGINFO handler, an empty mask and no old action
    // requested; the return value is checked.
    let ret = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = sigsys_handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut())
    };
    if ret != 0 {
        return Err(SeccompError::Handler(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles() {
        let f = Filters::build().unwrap();
        for kind in ThreadKind::ALL {
            assert!(!f.program(kind).is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn nothing_opens_connects_or_spawns() {
        for kind in ThreadKind::ALL {
            let calls = allowed(kind);
            for nr in [
                libc::SYS_openat,
                libc::SYS_socket,
                libc::SYS_connect,
                libc::SYS_execve,
                libc::SYS_clone,
                libc::SYS_clone3,
                libc::SYS_ptrace,
                libc::SYS_mount,
                libc::SYS_kill,
            ] {
                assert!(!calls.contains(&nr), "{kind:?} allows {}", syscall_name(nr));
            }
            for nr in [libc::SYS_write, libc::SYS_futex, libc::SYS_exit_group] {
                assert!(calls.contains(&nr), "{kind:?} lacks {}", syscall_name(nr));
            }
        }
        assert!(allowed(ThreadKind::Vcpu).contains(&libc::SYS_ioctl));
        assert!(!allowed(ThreadKind::Timeout).contains(&libc::SYS_ioctl));
        assert!(allowed(ThreadKind::Signals).contains(&libc::SYS_rt_sigtimedwait));
        assert!(!allowed(ThreadKind::Vcpu).contains(&libc::SYS_rt_sigtimedwait));
    }

    #[test]
    fn the_forbidden_line_names_thread_and_call() {
        let line = forbidden_line(b"vcpu1", libc::SYS_socket, None);
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert_eq!(
            text,
            format!(
                "rvvmm: error: seccomp: thread vcpu1 made a forbidden system call: socket ({})\n",
                libc::SYS_socket
            )
        );
        let line = forbidden_line(b"main", 100_000, None);
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert!(text.ends_with("unknown (100000)\n"), "{text}");
        let line = forbidden_line(b"vcpu0", libc::SYS_ioctl, Some([3, 0x5412]));
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert!(text.ends_with(") request 0x5412\n"), "{text}");
    }

    /// Runs `call` in a child process whose thread has `kind`'s filter; returns the child's exit status
    /// (EXIT_SECCOMP when the call was refused, 0 when it ran).
    fn status_of(kind: ThreadKind, call: impl FnOnce()) -> i32 {
        let filters = Filters::build().unwrap();
        // SAFETY: the child only installs a handler and a filter, then makes system calls before _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let _ = install_sigsys_handler();
            let _ = filters.install(kind);
            call();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    /// The argument rules: ioctls by request number and thread kind, no executable mappings, no fd
    /// duplication, signals only within rvvmm. Each call is made on an fd that does not exist (or with
    /// harmless arguments), so an allowed call just fails; a refused one ends the child.
    #[test]
    fn arguments_decide_what_passes() {
        // SAFETY (every closure below): system calls with integer arguments on fds that do not exist,
        // or an anonymous mapping; nothing is dereferenced.
        let kvm_run = || unsafe {
            libc::ioctl(-1, 0xae80 as _);
        };
        let tiocsti = || unsafe {
            libc::ioctl(-1, libc::TIOCSTI as _, 0);
        };
        let create_vm = || unsafe {
            libc::ioctl(-1, request::KVM_CREATE_VM as _, 0);
        };
        let blkpg = || unsafe {
            libc::ioctl(-1, 0x1269 as _, 0); // BLKPG
        };
        let irq_line = || unsafe {
            libc::ioctl(-1, request::KVM_IRQ_LINE as _, 0);
        };
        let tcsets = || unsafe {
            libc::ioctl(-1, libc::TCSETS as _, 0);
        };
        let tcgets = || unsafe {
            libc::ioctl(-1, libc::TCGETS as _, 0);
        };
        for (kind, name, call, refused) in [
            (ThreadKind::Vcpu, "KVM_RUN", kvm_run as fn(), false),
            (ThreadKind::Vcpu, "TIOCSTI", tiocsti, true),
            (ThreadKind::Main, "TIOCSTI", tiocsti, true),
            (ThreadKind::Main, "TCSETS", tcsets, false),
            (ThreadKind::Vcpu, "TCSETS", tcsets, true),
            (ThreadKind::Vcpu, "TCGETS", tcgets, false),
            (ThreadKind::ConsoleOut, "TCGETS", tcgets, false),
            (ThreadKind::Main, "KVM_CREATE_VM", create_vm, true),
            (ThreadKind::VirtioIo, "BLKPG", blkpg, true),
            (ThreadKind::Console, "KVM_IRQ_LINE", irq_line, false),
            (ThreadKind::Console, "KVM_RUN", kvm_run, true),
            (ThreadKind::RtcAlarm, "TCSETS", tcsets, true),
        ] {
            let want = if refused { EXIT_SECCOMP } else { 0 };
            assert_eq!(status_of(kind, call), want, "{kind:?} {name}");
        }
        let rw = || unsafe {
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0);
        };
        let exec = || unsafe {
            let prot = libc::PROT_READ | libc::PROT_EXEC;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0);
        };
        assert_eq!(status_of(ThreadKind::Vcpu, rw), 0);
        assert_eq!(status_of(ThreadKind::Vcpu, exec), EXIT_SECCOMP);
        let getfl = || unsafe {
            libc::fcntl(-1, libc::F_GETFL);
        };
        let dupfd = || unsafe {
            libc::fcntl(-1, libc::F_DUPFD, 100);
        };
        assert_eq!(status_of(ThreadKind::VirtioIo, getfl), 0);
        assert_eq!(status_of(ThreadKind::VirtioIo, dupfd), EXIT_SECCOMP);
        // The filters name the process that built them (this test's); the child is another process, so
        // even a signal 0 to its own thread is refused, as one to any other process would be.
        let tgkill_elsewhere = || unsafe {
            libc::syscall(libc::SYS_tgkill, 1, 1, 0);
        };
        assert_eq!(status_of(ThreadKind::Vcpu, tgkill_elsewhere), EXIT_SECCOMP);
    }

    /// What a rate-limited device does on the I/O thread (arm the limiter's timer, wait for it, clear
    /// it) passes the virtio-io filter.
    #[test]
    fn a_rate_limiter_works_under_the_virtio_io_filter() {
        use virtio::rate_limiter::{BucketConfig, RateLimiter, RateLimiterConfig};
        let config = RateLimiterConfig {
            bandwidth: Some(BucketConfig {
                size: 1000,
                one_time_burst: 0,
                refill_time_ms: 10,
            }),
            ops: None,
        };
        let mut limiter = RateLimiter::new(&config).unwrap();
        let status = status_of(ThreadKind::VirtioIo, move || {
            limiter.consume(1, 3000);
            if limiter.allows() {
                // SAFETY: ends the child.
                unsafe { libc::_exit(1) };
            }
            let mut pfd = libc::pollfd {
                fd: limiter.timer_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ts = libc::timespec {
                tv_sec: 2,
                tv_nsec: 0,
            };
            // SAFETY: one valid pollfd and timespec for the duration of the call.
            let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
            limiter.timer_fired();
            if n != 1 || !limiter.allows() {
                // SAFETY: ends the child.
                unsafe { libc::_exit(2) };
            }
        });
        assert_eq!(status, 0);
    }

    /// A filtered thread that makes a forbidden call is stopped (in a child process, which the
    /// handler ends with EXIT_SECCOMP), and the line names the call.
    #[test]
    fn a_forbidden_call_ends_the_process_with_its_status() {
        let filters = Filters::build().unwrap();
        // SAFETY: the child only installs a handler and a filter, then makes system calls before _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let _ = install_sigsys_handler();
            let _ = filters.install(ThreadKind::Timeout);
            // SAFETY: see above; getppid is not on the timeout thread's list.
            unsafe {
                libc::getppid();
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), EXIT_SECCOMP);
    }
}
