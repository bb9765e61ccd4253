//! Builds the VM on KVM (riscv64 only) and starts it: guest RAM, vcpus, the irqchip (AIA or PLIC),
//! kernel + initrd + device tree, the devices (through [`DeviceManager`]), the console thread, one pinned
//! thread per vcpu. The [`Machine`] it returns is what the control loop pauses, resumes and shuts down.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arch::layout::{DRAM_BASE, UART0_BASE};
use arch::{create_fdt, mmu_type_from_satp_mode, CpuIsa, FdtConfig};
use devices::console::ConsoleInput;
use devices::serial::Uart;
use devices::MmioBus;
use hypervisor::regs::SBI_EXT_DBCN;
use hypervisor::{Exit, Vcpu, Vm};
use linux_loader::loader::{pe::PE, KernelLoader};
use pci::PassthroughTarget;
use virtio::io_thread::IoControl;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
};
use vmm_sys_util::eventfd::EventFd;

use crate::config::VmConfig;
use crate::control::{Counters, ExitSender, RunningVm};
use crate::cores::CoreReservation;
use crate::device_manager::DeviceManager;
use crate::exit_counts::ExitCounts;
use crate::irqchip::GuestIrqchip;
use crate::loader::KernelFormat;
use crate::pause::PauseGate;
use crate::preflight::Plan;
use crate::sbi::SbiConsole;
use crate::seccomp::{self, Filters, ThreadKind};
use crate::terminal::{EscapeParser, RawTerminal};
use crate::{Error, GuestExit};

const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;
/// SBI SRST reset reason "system failure".
const SRST_REASON_SYSFAIL: u64 = 1;

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Everything a vcpu thread shares with the others.
struct VcpuShared {
    bus: MmioBus,
    mem: GuestMemoryMmap,
    sbi: SbiConsole,
    exits: ExitSender,
    unmapped_warnings: AtomicU32,
    gate: Arc<PauseGate>,
    exit_counts: Arc<ExitCounts>,
}

impl VcpuShared {
    fn stop(&self, why: GuestExit) {
        self.exits.send(why);
    }

    fn unmapped(&self, vcpu: u64, addr: u64, write: bool) {
        if self.unmapped_warnings.fetch_add(1, Ordering::Relaxed) < 16 {
            let kind = if write { "write to" } else { "read from" };
            log::warn!("vcpu{vcpu}: guest {kind} unmapped MMIO address {addr:#x} (ignored)");
        }
    }
}

/// A running VM: what the control loop pauses, resumes, reads counters of and shuts down.
pub struct Machine {
    devices: DeviceManager,
    gate: Arc<PauseGate>,
    vcpu_threads: Vec<libc::pthread_t>,
    io_wake: Option<Arc<EventFd>>,
    exit_counts: Arc<ExitCounts>,
    /// KVM's statistics of each vcpu (exits it served itself and those it passed to rvvmm).
    kvm_stats: Vec<File>,
    // Dropped last, in this order: the terminal back to cooked mode, the irqchip (the AIA device fd),
    // the cores' reservation.
    raw: Option<RawTerminal>,
    _irqchip: GuestIrqchip,
    _reservation: Option<CoreReservation>,
}

/// The signal that makes a vcpu thread leave KVM_RUN (its handler does nothing).
fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// How long a pause may take before it is given up.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

impl RunningVm for Machine {
    fn pause(&mut self) -> Result<(), String> {
        let threads = self.vcpu_threads.clone();
        let wake = self.io_wake.clone();
        let kick = move || {
            for &t in &threads {
                // SAFETY: `t` is a vcpu thread of this process; vcpu threads are never joined, so it
                // stays valid; the signal's handler does nothing (it only interrupts KVM_RUN).
                unsafe { libc::pthread_kill(t, kick_signal()) };
            }
            if let Some(w) = &wake {
                let _ = w.write(1);
            }
        };
        self.gate
            .pause(kick, PAUSE_TIMEOUT)
            .map_err(|e| e.to_string())?;
        log::info!("VM paused: every vcpu and the I/O thread stopped");
        Ok(())
    }

    fn resume(&mut self) -> Result<(), String> {
        self.gate.resume();
        log::info!("VM resumed");
        Ok(())
    }

    fn counters(&self) -> Counters {
        let mut c = self.devices.counters();
        c.insert("__vcpu_exits".into(), self.exit_counts.snapshot());
        c
    }

    fn shutdown(mut self: Box<Self>) -> Result<(), String> {
        // Park the vcpus and the I/O thread first (each between two bounded pieces of work), so no
        // device lock is held while the devices are flushed; a VM that powered off has no vcpu left.
        if let Err(e) = self.pause() {
            log::warn!("stopping: {e}; flushing the devices anyway");
        }
        log::info!("vcpu exits to rvvmm: {}", self.exit_counts.summary());
        if let Some(summary) = kvm_stats_summary(&self.kvm_stats) {
            log::info!("KVM's vcpu counters (all vcpus): {summary}");
        }
        // Nothing written by the guest may be lost: flush every device before exiting, whatever the
        // reason.
        let flushed = self.devices.shutdown();
        drop(self.raw.take());
        flushed
    }
}

/// Builds the VM described by `config` and `plan` on the cores of `reservation` and starts it; returns
/// `None` when `--dump-dtb` only wrote the device tree.
pub fn start(
    config: &VmConfig,
    plan: &Plan,
    allowed_cpus: &[usize],
    passthrough: &[PassthroughTarget],
    reservation: Option<CoreReservation>,
    filters: &Option<Arc<Filters>>,
    exits: ExitSender,
) -> Result<Option<Machine>, Error> {
    let num_vcpus = plan.cores.len() as u32;
    keep_own_threads_off(&plan.cores, allowed_cpus);
    let vm = Arc::new(Vm::new()?);
    let mem = create_guest_ram(&vm, config.memory, config.hugepages)?;

    // vcpus first (the AIA needs them), then what KVM says about the CPU.
    let vcpus: Vec<Vcpu> = (0..num_vcpus)
        .map(|i| vm.create_vcpu(u64::from(i)))
        .collect::<Result<_, _>>()?;
    let irqchip = GuestIrqchip::create(config.irqchip, &vm, &vcpus)?;
    log::info!("interrupt controller: {}", irqchip.name());
    let info = vcpus[0].cpu_info()?;
    log::info!("guest CPU from KVM: {info:x?}");
    for v in &vcpus {
        if let Err(e) = v.enable_sbi_ext(SBI_EXT_DBCN) {
            log::warn!("cannot enable SBI DBCN on vcpu{}: {e}", v.id());
        }
    }

    load_kernel_and_initrd(config, plan, &mem)?;

    // Devices (created before the device tree, which lists them).
    let input = Arc::new(ConsoleInput::new());
    let mut devices = DeviceManager::new(filters.clone());
    let held = uart_held_writes(&vm, &vcpus[0]);
    let uart = devices.add_platform_devices(&irqchip, input.clone(), exits.clone(), held)?;
    // Passthrough devices first: they keep PCI slots 1, 2, ... in --device order; virtio-pci follows.
    devices.add_passthrough_devices(passthrough, &mem, config.memory, &irqchip, &vm)?;
    let linux = plan.kernel.format == KernelFormat::Image;
    let transport = config.virtio_transport.resolve(irqchip.is_aia(), linux);
    log::info!(
        "virtio transport: {transport} (--virtio-transport {})",
        config.virtio_transport
    );
    devices.add_virtio_devices(config, transport, &mem, &irqchip, &vm)?;
    devices.finish_pci()?;

    let fdt = create_fdt(&FdtConfig {
        num_cpus: num_vcpus,
        mmu_type: mmu_type_from_satp_mode(info.satp_mode).map(str::to_string),
        cbom_block_size: info.zicbom_block_size.map(|v| v as u32),
        cboz_block_size: info.zicboz_block_size.map(|v| v as u32),
        isa: CpuIsa::from_kvm(info.isa, &info.isa_extensions),
        timebase_frequency: info.timebase_frequency as u32,
        memory_size: config.memory,
        cmdline: config.cmdline.clone(),
        initrd: plan.layout.initrd,
        irqchip: irqchip.fdt_config(),
        virtio_mmio: devices.fdt_virtio_mmio(),
        pci: devices.fdt_pci(),
    })?;
    if let Some(path) = &config.dump_dtb {
        std::fs::write(path, &fdt).map_err(io_err(format!("cannot write {}", path.display())))?;
        log::info!("device tree written to {}", path.display());
        return Ok(None);
    }
    mem.write_slice(&fdt, GuestAddress(plan.layout.fdt_addr))
        .map_err(|e| Error::Memory(format!("cannot write the device tree: {e}")))?;
    vcpus[0].set_boot_regs(plan.kernel.entry, 0, plan.layout.fdt_addr)?;

    // Every device is open: from here on rvvmm needs no privilege (`--user`). Before the VM's own
    // threads start, so they are born unprivileged.
    if let Some(user) = config.user {
        crate::privileges::drop_to(user).map_err(|e| Error::Devices(e.to_string()))?;
    }

    // Pauses stop every vcpu and the I/O thread (when there is one).
    let io_wake = Arc::new(
        EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK)
            .map_err(io_err("cannot create the I/O thread's control eventfd"))?,
    );
    let gate = Arc::new(PauseGate::new(vcpus.len() + 1));
    let g = gate.clone();
    let io_started = devices.start_io_thread(IoControl {
        wake: io_wake.clone(),
        handler: Box::new(move || g.checkpoint()),
    })?;
    if !io_started {
        gate.leave();
    }
    vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick).map_err(|e| {
        Error::Io {
            what: "cannot install the vcpu kick signal handler".into(),
            source: std::io::Error::from_raw_os_error(e.errno()),
        }
    })?;

    // Console input.
    let raw = RawTerminal::enable().map_err(io_err("cannot put the terminal in raw mode"))?;
    spawn_stdin_thread(
        input.clone(),
        uart,
        raw.is_some(),
        exits.clone(),
        filters.clone(),
    )?;
    if let Some(secs) = config.timeout {
        let exits = exits.clone();
        let filters = filters.clone();
        std::thread::Builder::new()
            .name("timeout".into())
            .spawn(move || {
                seccomp::apply_or_exit(filters.as_deref(), ThreadKind::Timeout);
                std::thread::sleep(std::time::Duration::from_secs(secs));
                log::warn!("--timeout {secs}: stopping the VM");
                exits.send(GuestExit::Timeout);
            })
            .map_err(io_err("cannot start the timeout thread"))?;
    }

    let exit_counts = Arc::new(ExitCounts::default());
    let shared = Arc::new(VcpuShared {
        bus: devices.take_bus(),
        mem,
        sbi: SbiConsole::on_output(devices.console_output(), input),
        exits,
        unmapped_warnings: AtomicU32::new(0),
        gate: gate.clone(),
        exit_counts: exit_counts.clone(),
    });
    let kvm_stats = vcpus
        .iter()
        .filter_map(|v| {
            v.stats_file()
                .map_err(|e| log::debug!("no KVM statistics: {e}"))
                .ok()
        })
        .collect();
    let vcpu_threads = spawn_vcpus(vcpus, &plan.cores, &shared, filters)?;
    // Last, the main thread (every thread is started: threads inherit the filter of their parent).
    if let Some(f) = filters {
        f.install(ThreadKind::Main)?;
    }
    log::info!(
        "guest started: {} vcpu(s) on host cores {:?}, {} MiB RAM, kernel at {:#x}, fdt at {:#x}",
        num_vcpus,
        plan.cores,
        config.memory >> 20,
        plan.kernel.entry,
        plan.layout.fdt_addr
    );
    if filters.is_some() {
        log::info!("seccomp filters installed on every thread");
    }
    Ok(Some(Machine {
        devices,
        gate,
        vcpu_threads,
        io_wake: io_started.then_some(io_wake),
        raw,
        exit_counts,
        kvm_stats,
        _irqchip: irqchip,
        _reservation: reservation,
    }))
}

/// The nonzero counters of KVM's statistics files `files` (one per vcpu), summed by name: `name=value ...`.
fn kvm_stats_summary(files: &[File]) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut total = Vec::new();
    for f in files {
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0;
        while len < buf.len() {
            match f.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("cannot read KVM statistics: {e}");
                    return None;
                }
            }
        }
        match hypervisor::stats::parse_stats(&buf[..len]) {
            Ok(stats) => hypervisor::stats::add_stats(&mut total, &stats),
            Err(e) => {
                log::debug!("{e}");
                return None;
            }
        }
    }
    let words: Vec<String> = total
        .iter()
        .filter(|s| s.value != 0)
        .map(|s| format!("{}={}", s.name, s.value))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Moves rvvmm's own threads (this one, the signal and API threads already running, and console, virtio
/// I/O, ... started from here, which inherit the mask) off the vcpus' cores when other cores exist; vcpu
/// threads pin themselves.
fn keep_own_threads_off(vcpu_cores: &[usize], allowed_cpus: &[usize]) {
    let others: Vec<usize> = allowed_cpus
        .iter()
        .copied()
        .filter(|c| !vcpu_cores.contains(c))
        .collect();
    if !others.is_empty() {
        if let Err(e) = crate::host::set_all_threads_affinity(&others) {
            log::warn!("cannot move rvvmm's own threads off the vcpu cores: {e}");
        }
    }
}

/// Allocates `size` bytes of guest RAM at `DRAM_BASE` (in 2 MiB huge pages with `hugepages`) and
/// registers it with KVM.
fn create_guest_ram(vm: &Vm, size: u64, hugepages: bool) -> Result<GuestMemoryMmap, Error> {
    let mib = size >> 20;
    let mem = if hugepages {
        // No MAP_NORESERVE: the huge pages are reserved now, so a shortage is an error here, not a
        // SIGBUS when the guest first touches its RAM.
        let region = MmapRegionBuilder::new(size as usize)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB)
            .with_hugetlbfs(true)
            .build()
            .map_err(|e| {
                Error::Memory(format!(
                    "cannot allocate {mib} MiB of guest RAM in 2 MiB huge pages: {e} (reserve them first, e.g. echo {} > /proc/sys/vm/nr_hugepages)",
                    size / crate::preflight::HUGE_PAGE
                ))
            })?;
        let region = GuestRegionMmap::new(region, GuestAddress(DRAM_BASE))
            .ok_or_else(|| Error::Memory("guest RAM does not fit the address space".into()))?;
        GuestMemoryMmap::from_regions(vec![region])
            .map_err(|e| Error::Memory(format!("guest RAM: {e}")))?
    } else {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(DRAM_BASE), size as usize)])
            .map_err(|e| Error::Memory(format!("cannot allocate {mib} MiB of guest RAM: {e}")))?
    };
    if hugepages {
        log::info!("guest RAM: {mib} MiB in 2 MiB huge pages");
    }
    // What the guest keeps in its RAM is not the host's to dump with rvvmm's core.
    crate::memory::exclude_from_core_dumps(&mem).map_err(|e| Error::Memory(e.to_string()))?;
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|e| Error::Memory(format!("guest RAM mapping: {e}")))?;
        // SAFETY: the mapping belongs to `mem`, which the vcpu threads keep (through `VcpuShared`) as long as
        // the VM runs; vcpu threads are never joined and the process exits with them running.
        unsafe {
            vm.add_memory(
                slot as u32,
                region.start_addr().0,
                region.len(),
                host as u64,
            )?
        };
    }
    Ok(mem)
}

/// The UART's polled data writes through KVM's coalesced MMIO, when this KVM has it (else every write
/// exits, as it would anyway).
fn uart_held_writes(vm: &Arc<Vm>, vcpu: &Vcpu) -> Option<Arc<dyn devices::serial::HeldWrites>> {
    match vm.coalesced_ring(vcpu) {
        Ok(Some(ring)) => Some(Arc::new(crate::uart_glue::KvmHeldWrites::new(
            vm.clone(),
            ring,
            UART0_BASE,
        ))),
        Ok(None) => {
            log::debug!("KVM has no coalesced MMIO: every UART write exits");
            None
        }
        Err(e) => {
            log::warn!("{e}: every UART write exits");
            None
        }
    }
}

/// Loads the kernel and the initrd where `plan` placed them.
fn load_kernel_and_initrd(
    config: &VmConfig,
    plan: &Plan,
    mem: &GuestMemoryMmap,
) -> Result<(), Error> {
    let mut kernel = File::open(&config.kernel)
        .map_err(io_err(format!("cannot open {}", config.kernel.display())))?;
    let load_err = |e: String| {
        Error::Memory(format!(
            "cannot load kernel {}: {e}",
            config.kernel.display()
        ))
    };
    match plan.kernel.format {
        KernelFormat::Image => {
            let loaded = PE::load(mem, Some(GuestAddress(DRAM_BASE)), &mut kernel, None)
                .map_err(|e| load_err(e.to_string()))?;
            debug_assert_eq!(loaded.kernel_load.0, plan.kernel.entry);
        }
        KernelFormat::Elf | KernelFormat::Raw => {
            for seg in &plan.kernel.segments {
                let mut buf = vec![0u8; seg.file_size as usize];
                kernel
                    .seek(SeekFrom::Start(seg.file_offset))
                    .and_then(|_| kernel.read_exact(&mut buf))
                    .map_err(|e| load_err(e.to_string()))?;
                // The part of the segment past its file bytes (bss) is zero.
                buf.resize(seg.mem_size as usize, 0);
                mem.write_slice(&buf, GuestAddress(seg.addr))
                    .map_err(|e| load_err(e.to_string()))?;
            }
            log::info!(
                "{} kernel: {} segment(s), entry {:#x}",
                plan.kernel.format,
                plan.kernel.segments.len(),
                plan.kernel.entry
            );
        }
    }
    if let (Some(path), Some((start, size))) = (&config.initrd, plan.layout.initrd) {
        let mut f = File::open(path).map_err(io_err(format!("cannot open {}", path.display())))?;
        let len = f
            .metadata()
            .map_err(io_err(format!("cannot read {}", path.display())))?
            .len();
        if len != size {
            return Err(Error::Memory(format!(
                "{} changed size while loading",
                path.display()
            )));
        }
        // Straight from the file into guest RAM (no copy in between).
        mem.read_exact_volatile_from(GuestAddress(start), &mut f, size as usize)
            .map_err(|e| Error::Memory(format!("cannot load initrd {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Starts one thread per vcpu, named `vcpuN` and pinned to its core.
fn spawn_vcpus(
    vcpus: Vec<Vcpu>,
    cores: &[usize],
    shared: &Arc<VcpuShared>,
    filters: &Option<Arc<Filters>>,
) -> Result<Vec<libc::pthread_t>, Error> {
    let mut threads = Vec::new();
    for (vcpu, &core) in vcpus.into_iter().zip(cores) {
        let shared = shared.clone();
        let filters = filters.clone();
        let name = format!("vcpu{}", vcpu.id());
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || vcpu_thread(vcpu, core, shared, filters))
            .map_err(io_err(format!("cannot start thread {name}")))?;
        // vcpu threads are never joined: the handle's pthread_t stays valid while the process lives.
        threads.push(handle.as_pthread_t());
    }
    Ok(threads)
}

/// Takes a vcpu thread out of pauses when it ends, however it ends.
struct LeaveOnExit(Arc<PauseGate>);

impl Drop for LeaveOnExit {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn vcpu_thread(
    mut vcpu: Vcpu,
    core: usize,
    shared: Arc<VcpuShared>,
    filters: Option<Arc<Filters>>,
) {
    let id = vcpu.id();
    let _leave = LeaveOnExit(shared.gate.clone());
    if let Err(e) = crate::host::pin_current_thread(core) {
        log::error!("vcpu{id}: cannot pin to host core {core}: {e}");
        shared.stop(GuestExit::Failure);
        return;
    }
    log::debug!("vcpu{id} pinned to host core {core}");
    if let Some(f) = &filters {
        if let Err(e) = f.install(ThreadKind::Vcpu) {
            log::error!("vcpu{id}: {e}");
            shared.stop(GuestExit::Failure);
            return;
        }
    }
    if id == 0 {
        let t = crate::since_process_start();
        log::info!(
            "startup: {:.3} ms from rvvmm's start to the guest's first instruction",
            t.as_secs_f64() * 1000.0
        );
    }
    loop {
        shared.gate.checkpoint();
        match vcpu.run() {
            Ok(Exit::MmioRead(addr, data)) => {
                shared.exit_counts.mmio(addr);
                if !shared.bus.read(addr, data) {
                    shared.unmapped(id, addr, false);
                }
            }
            Ok(Exit::MmioWrite(addr, data)) => {
                shared.exit_counts.mmio(addr);
                if !shared.bus.write(addr, data) {
                    shared.unmapped(id, addr, true);
                }
            }
            Ok(Exit::Sbi(call)) => {
                shared.exit_counts.sbi();
                *call.ret = shared
                    .sbi
                    .handle(&shared.mem, call.ext, call.fid, call.args);
            }
            Ok(Exit::SystemEvent(kind, data)) => {
                let why = match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN if data.first() == Some(&SRST_REASON_SYSFAIL) => {
                        GuestExit::Failure
                    }
                    KVM_SYSTEM_EVENT_SHUTDOWN => GuestExit::Poweroff,
                    KVM_SYSTEM_EVENT_RESET => GuestExit::Reset,
                    other => {
                        log::warn!("vcpu{id}: system event {other} {data:?}");
                        GuestExit::Failure
                    }
                };
                log::info!("vcpu{id}: system event {kind} {data:?}");
                shared.stop(why);
                return;
            }
            Ok(Exit::Interrupted) => shared.exit_counts.interrupted(),
            Ok(Exit::Other(what)) => {
                log::error!("vcpu{id}: unexpected exit {what}");
                shared.stop(GuestExit::Failure);
                return;
            }
            Err(e) => {
                log::error!("vcpu{id}: {e}");
                shared.stop(GuestExit::Failure);
                return;
            }
        }
    }
}

fn spawn_stdin_thread(
    input: Arc<ConsoleInput>,
    uart: Arc<Mutex<Uart>>,
    tty: bool,
    exits: ExitSender,
    filters: Option<Arc<Filters>>,
) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("console-in".into())
        .spawn(move || {
            seccomp::apply_or_exit(filters.as_deref(), ThreadKind::Console);
            let mut stdin = std::io::stdin().lock();
            let mut escape = EscapeParser::default();
            let mut buf = [0u8; 4096];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("console input: {e}");
                        return;
                    }
                };
                let bytes = if tty {
                    let keys = escape.feed(&buf[..n]);
                    if keys.quit {
                        exits.send(GuestExit::Signal(libc::SIGINT));
                        return;
                    }
                    keys.forward
                } else {
                    buf[..n].to_vec()
                };
                // Backpressure: wait while the guest has not consumed what is queued.
                while input.len() > 64 * 1024 {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                input.push(&bytes);
                uart.lock().unwrap_or_else(|p| p.into_inner()).pump();
            }
        })
        .map(|_| ())
        .map_err(io_err("cannot start the console thread"))
}
