//! `rvvmm`: command line -> [`vmm::config::VmConfig`] -> [`vmm::Vmm::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use vmm::config::{
    parse_addr, parse_size, CoresArg, CpuList, CpuPlacement, DiskConfig, IrqchipMode, NetConfig,
    PciAddress, VirtioTransport, VmConfig, VsockConfig, DEFAULT_CMDLINE,
};
use vmm::loader::KernelFormat;

mod remote;

/// Exit status for command line usage errors.
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "rvvmm",
    version,
    about = "A KVM virtual machine monitor for riscv64 Linux hosts",
    long_about = "rvvmm runs one virtual machine per process on a riscv64 Linux host with KVM (H extension).\n\
        It loads a Linux Image (or PE/EFI-stub kernel), an optional initramfs and a generated device tree\n\
        into guest RAM at 0x80000000 (the QEMU `virt` memory map), and runs one vcpu thread per core,\n\
        each pinned to its own host core.",
    after_help = "Exit status: 0 when the guest powers off; 3 when it asks for a reset; 4 when it reports a \
        failure;\n124 when --timeout expires; 1 for setup errors (one line `rvvmm: error: ...` on stderr); 2 for usage errors; 128+N when \
        stopped by signal N;\n159 when a thread made a system call its seccomp filter forbids.\nConsole: the guest's serial port is rvvmm's stdin/stdout. On a terminal, press \
        Ctrl-A then x to stop the VM\n(Ctrl-A Ctrl-A sends a literal Ctrl-A).\nLogs: --log-level or RUST_LOG \
        (error, warn, info, debug, trace), printed on stderr."
)]
struct Cli {
    /// Kernel to boot: a RISC-V Linux `Image` (a PE/EFI-stub Image works too), an ELF64 RISC-V executable
    /// (each PT_LOAD segment at its physical address) or a raw binary (at --kernel-addr). Required unless
    /// --api-socket is given (the VM then comes from the API's vm.create).
    #[arg(long, value_name = "PATH", required_unless_present = "api_socket")]
    kernel: Option<PathBuf>,

    /// Serve cloud-hypervisor's REST API (HTTP on a Unix socket, mode 0600, removed on exit): without
    /// --kernel, rvvmm waits for vm.create and vm.boot; with it, the API reports and controls the VM.
    /// See `rvvmm remote --help` for a client.
    /// PATH (or path=PATH) creates the socket; fd=N serves a listening Unix socket rvvmm inherited (as
    /// libvirt passes it), which rvvmm leaves in place on exit.
    #[arg(long, value_name = "PATH|path=PATH|fd=N")]
    api_socket: Option<vmm::config::ApiSocket>,

    /// Kernel format: image, elf or raw (default: detected from the file; neither ELF nor Image is raw).
    #[arg(long, value_name = "image|elf|raw")]
    kernel_format: Option<KernelFormat>,

    /// Load address (and entry) of a raw kernel.
    #[arg(long, value_name = "ADDR", default_value = "0x80200000", value_parser = parse_addr)]
    kernel_addr: u64,

    /// Stop the VM after SECONDS (exit status 124), e.g. for a guest that never powers off.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,

    /// Initramfs to load next to the kernel.
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,

    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = DEFAULT_CMDLINE)]
    cmdline: String,

    /// Guest RAM: 512M, 2G or bytes.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    memory: u64,

    /// Back guest RAM with 2 MiB huge pages (reserve them first: /proc/sys/vm/nr_hugepages): KVM then maps
    /// guest RAM in 2 MiB blocks, so the guest takes far fewer faults. --memory must be a multiple of 2M.
    #[arg(long)]
    hugepages: bool,

    /// Number of vcpus, each pinned to its own host core that no other running rvvmm holds
    /// (",shared" allows sharing cores with other VMs when not enough are free).
    #[arg(long, value_name = "N[,shared]", conflicts_with = "cpus")]
    cores: Option<CoresArg<usize>>,

    /// Host cores to run the vcpus on, one vcpu per core (e.g. 2-3,6; ",shared" as for --cores).
    #[arg(long, value_name = "LIST[,shared]")]
    cpus: Option<CoresArg<CpuList>>,

    /// Add a virtio-blk disk backed by a raw file: path=FILE[,readonly=on][,id=NAME] (repeatable; vda, vdb, ... in order).
    /// LIMITS, as cloud-hypervisor's: bw_size=BYTES,bw_refill_time=MS[,bw_one_time_burst=BYTES] and/or
    /// ops_size=N,ops_refill_time=MS[,ops_one_time_burst=N] (e.g. bw_size=1048576,bw_refill_time=100: 10 MiB/s).
    #[arg(long, value_name = "path=FILE[,readonly=on][,id=NAME][,LIMITS]")]
    disk: Vec<DiskConfig>,

    /// Add a virtio-net device on a tap interface (created if missing): tap=IFNAME[,mac=MAC][,vhost=on], or on
    /// a tap fd rvvmm inherited (opened with IFF_TAP, IFF_NO_PI, IFF_VNET_HDR): fd=N (cloud-hypervisor's fd=[N] too)
    /// (repeatable; vhost=on moves the data path into /dev/vhost-net when the host has it). LIMITS as for
    /// --disk, applied to each direction (frames received, frames sent; not with vhost=on).
    #[arg(long, value_name = "tap=IFNAME|fd=N[,mac=MAC][,vhost=on][,LIMITS]")]
    net: Vec<NetConfig>,

    /// Add a virtio-rng device: the guest's entropy from the host's getrandom (off by default).
    #[arg(long)]
    rng: bool,

    /// Add a virtio-vsock device on the host's vhost-vsock, the guest at context id N (3 or more); host
    /// programs reach it with AF_VSOCK (the host is CID 2).
    #[arg(long, value_name = "cid=N")]
    vsock: Option<VsockConfig>,

    /// Pass a host PCI device through with VFIO: path=/sys/bus/pci/devices/DDDD:BB:DD.F (repeatable).
    #[arg(long, value_name = "path=/sys/bus/pci/devices/DDDD:BB:DD.F")]
    device: Vec<PciAddress>,

    /// Interrupt controller: auto (AIA if KVM has it, else PLIC), aia or plic.
    #[arg(long, value_name = "auto|aia|plic", default_value = "auto")]
    irqchip: IrqchipMode,

    /// How virtio devices reach the guest: pci (modern virtio-pci functions behind a PCIe host bridge,
    /// an MSI-X vector per queue delivered by KVM, so the data path costs no exits; needs the in-kernel
    /// AIA), mmio (virtio-mmio windows on wired interrupts, as bare-metal kernels for QEMU virt expect),
    /// or auto: pci for a Linux kernel on the in-kernel AIA, mmio otherwise.
    #[arg(long, value_name = "auto|mmio|pci", default_value = "auto")]
    virtio_transport: VirtioTransport,

    /// Write the generated device tree blob to FILE and exit without running the guest.
    #[arg(long, value_name = "FILE")]
    dump_dtb: Option<PathBuf>,

    /// Seccomp filters: on (default) confines each rvvmm thread to the system calls its kind needs once the
    /// guest runs (a forbidden call ends rvvmm with status 159 and a line naming it); off, to debug.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    seccomp: bool,

    /// Run as this user and group (numeric ids) once every device is open, before the guest runs: every
    /// thread switches, no capabilities remain and no_new_privs is set. Needs rvvmm started as root (or
    /// as that user). Disks, taps (or --net fd=N), /dev/kvm and VFIO groups are opened before the switch.
    #[arg(long, value_name = "UID[:GID]")]
    user: Option<vmm::privileges::UserSpec>,

    /// Log level: off, error, warn, info, debug, trace (default warn; RUST_LOG also works).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<log::LevelFilter>,
}

impl Cli {
    /// The VM of the command line (`None` without --kernel) and the command line's settings.
    fn into_configs(self) -> (Option<VmConfig>, VmConfig, Option<vmm::config::ApiSocket>) {
        let api = self.api_socket.clone();
        let has_kernel = self.kernel.is_some();
        let config = self.into_config();
        (has_kernel.then(|| config.clone()), config, api)
    }

    fn into_config(self) -> VmConfig {
        let (cpus, shared_cores) = match (self.cores, self.cpus) {
            (_, Some(list)) => (CpuPlacement::List(list.value), list.shared),
            (Some(n), None) => (CpuPlacement::Count(n.value), n.shared),
            (None, None) => (CpuPlacement::Count(1), false),
        };
        VmConfig {
            kernel: self.kernel.unwrap_or_default(),
            kernel_format: self.kernel_format,
            kernel_addr: self.kernel_addr,
            timeout: self.timeout,
            initrd: self.initrd,
            cmdline: self.cmdline,
            memory: self.memory,
            hugepages: self.hugepages,
            cpus,
            shared_cores,
            disks: self.disk,
            nets: self.net,
            devices: self.device,
            rng: self.rng,
            vsock: self.vsock,
            irqchip: self.irqchip,
            virtio_transport: self.virtio_transport,
            dump_dtb: self.dump_dtb,
            seccomp: self.seccomp,
            user: self.user,
        }
    }
}

/// Parses on/off.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("'{s}' is neither on nor off")),
    }
}

/// Prints a clap error as one `rvvmm: error: ...` line (help and version print as usual).
pub(crate) fn usage_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            // clap's message up to its first blank line (the usage block follows), folded onto one line.
            let text = err.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let msg = msg.join(" ");
            let msg = msg.trim_start_matches("error: ");
            eprintln!("rvvmm: error: {msg} (see rvvmm --help)");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// A panic anywhere is a bug: one line naming the thread and the place, then the process ends (release
/// builds abort; see Cargo.toml), so no guest keeps running with a thread of its VMM gone.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("?");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line =
            format!("rvvmm: error: internal error (panicked) in thread {name}{place}: {msg}");
        eprintln!("{}", line.replace('\n', " "));
    }));
}

fn main() -> ExitCode {
    vmm::mark_process_start();
    install_panic_hook();
    if std::env::args_os().nth(1).is_some_and(|a| a == "remote") {
        return remote::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if let Some(level) = cli.log_level {
        logger.filter_level(level);
    }
    logger.format_timestamp_millis().init();

    let vmm = match cli.into_configs() {
        (config, defaults, Some(socket)) => vmm::Vmm::with_api(config, defaults, socket),
        (config, defaults, None) => vmm::Vmm::new(config.unwrap_or(defaults)),
    };
    match vmm.run() {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            // One line, whatever the chain of causes.
            let msg = format!("{:#}", e).replace('\n', " ");
            eprintln!("rvvmm: error: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn contract_options_parse() {
        let cli = Cli::try_parse_from([
            "rvvmm",
            "--kernel",
            "Image",
            "--initrd",
            "i",
            "--cmdline",
            "console=ttyS0 quiet",
            "--memory",
            "512M",
            "--cores",
            "2",
            "--disk",
            "path=a.img,readonly=on",
            "--disk",
            "path=b.img",
            "--net",
            "tap=tap0",
            "--device",
            "path=/sys/bus/pci/devices/0000:00:01.0",
            "--irqchip",
            "aia",
            "--dump-dtb",
            "x.dtb",
            "--log-level",
            "debug",
        ])
        .unwrap();
        let cfg = cli.into_config();
        assert_eq!(cfg.memory, 512 << 20);
        assert_eq!(cfg.cpus, CpuPlacement::Count(2));
        assert_eq!(cfg.disks.len(), 2);
        assert_eq!(cfg.irqchip, IrqchipMode::Aia);
    }

    #[test]
    fn defaults_and_conflicts() {
        let cfg = Cli::try_parse_from(["rvvmm", "--kernel", "k"])
            .unwrap()
            .into_config();
        assert_eq!(cfg.memory, 256 << 20);
        assert_eq!(cfg.cmdline, "console=ttyS0");
        assert_eq!(cfg.cpus, CpuPlacement::Count(1));
        assert!(cfg.seccomp);
        let off = Cli::try_parse_from(["rvvmm", "--kernel", "k", "--seccomp", "off"]).unwrap();
        assert!(!off.into_config().seccomp);
        assert!(Cli::try_parse_from(["rvvmm", "--kernel", "k", "--seccomp", "maybe"]).is_err());
        assert!(
            Cli::try_parse_from(["rvvmm", "--kernel", "k", "--cores", "2", "--cpus", "1"]).is_err()
        );
        assert!(Cli::try_parse_from(["rvvmm", "--kernel", "k", "--cores", "0"]).is_err());
        assert!(Cli::try_parse_from(["rvvmm", "--kernel", "k", "--memory", "lots"]).is_err());
        assert!(Cli::try_parse_from(["rvvmm"]).is_err());
    }
}
