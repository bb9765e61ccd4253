//! The device manager (riscv64 only): creates every device the guest sees from the configuration, places
//! it in the guest physical address space and on an interrupt line, and owns the MMIO bus the vcpus
//! dispatch their exits through.
//!
//! Fixed devices (UART0, the sifive,test finisher, the userspace PLIC when it is the irqchip) sit at the
//! addresses of the QEMU `virt` map; virtio devices take the virtio-mmio slots in order (disks, then
//! network cards), or with `--virtio-transport pci` the PCI slots; PCI devices (virtio-pci, VFIO
//! passthrough) sit behind the PCIe host bridge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arch::layout::{
    pcie_mmio64, APLIC_NUM_SOURCES, PCIE_ECAM_BASE, PCIE_ECAM_SIZE, PCIE_MMIO_BASE, PCIE_MMIO_SIZE,
    RTC_BASE, RTC_IRQ, RTC_SIZE, SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE, UART0_BASE, UART0_IRQ,
    UART0_SIZE, VIRTIO_MMIO_SIZE,
};
use arch::{virtio_mmio_slot, PciHostConfig, VirtioMmioDevice};
use devices::console::{ConsoleInput, ConsoleOutput};
use devices::goldfish_rtc::GoldfishRtc;
use devices::serial::{HeldPoll, HeldWrites, Uart};
use devices::sifive_test::{FinisherRequest, SifiveTest};
use devices::{MmioBus, SharedMmioDevice};
use hypervisor::Vm;
use pci::vfio::{map_guest_memory, BarAllocator, VfioPciDevice};
use pci::BarKind;
use pci::{PassthroughTarget, PciBus, PciConfigMmio, PciWindowMmio};
use vfio_ioctls::VfioContainer;
use virtio::io_thread::IoControl;
use virtio::pci::{MsixInterrupt, VirtioPciDevice};
use virtio::{
    rate_limiter::RateLimiter, Block, CounterSnapshot, MmioTransport, Net, Rng, VirtioDevice,
    VirtioInterrupt, Vsock, QUEUE_NOTIFY_OFFSET,
};
use vm_memory::GuestMemoryMmap;

use crate::config::{VirtioTransport, VmConfig};
use crate::control::{Counters, ExitSender};
use crate::irqchip::GuestIrqchip;
use crate::pci_glue::{KvmPci, MSI_GSI_BASE};
use crate::seccomp::{self, Filters, ThreadKind};
use crate::{Error, GuestExit};

/// Takes ownership of fd `fd`, inherited from whoever started rvvmm (checked to be open).
fn inherited_fd(fd: i32) -> Result<std::os::fd::OwnedFd, std::io::Error> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD takes no pointer; it fails with EBADF when `fd` is not open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::other(format!(
            "fd {fd} is not open in rvvmm (pass it open, without close-on-exec)"
        )));
    }
    // SAFETY: `fd` is open and was handed to rvvmm for this device alone (preflight refuses the same
    // fd given twice); nothing else in rvvmm owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// A virtio device, behind either transport.
struct VirtioSlot {
    /// The device id of `vm.counters` (cloud-hypervisor's naming: `_disk0`, `_net1`, `__rng`, ...).
    name: String,
    /// The virtio-mmio window and its interrupt; `None` for a virtio-pci function.
    mmio: Option<(u64, u32)>,
    /// A network card (its virtio-mmio device tree node gets an `ethernetN` alias).
    is_net: bool,
    transport: Arc<Mutex<MmioTransport>>,
    /// The device's counters, read without the transport's lock (the API answers while the I/O thread
    /// serves the device).
    counters: CounterSnapshot,
}

/// The PCI hierarchy, once the guest has a PCI device (virtio-pci or passthrough).
struct PciState {
    /// The bus while devices are added; [`DeviceManager::finish_pci`] puts it behind the host bridge.
    bus: Option<PciBus>,
    kvm: Arc<KvmPci>,
    bars: BarAllocator,
    /// The next free GSI for MSI-X vectors.
    next_gsi: u32,
    /// Kept for the VM's lifetime: DMA mappings and groups live as long as the container.
    container: Option<Arc<VfioContainer>>,
    mmio64: (u64, u64),
}

/// What adding a virtio device needs besides the device.
struct VirtioContext<'a> {
    config: &'a VmConfig,
    /// The resolved transport (never `Auto`).
    transport: VirtioTransport,
    mem: &'a GuestMemoryMmap,
    irqchip: &'a GuestIrqchip,
    vm: &'a Arc<Vm>,
}

/// Every device of the VM and the bus they are reached through.
pub struct DeviceManager {
    bus: MmioBus,
    /// The guest console's output (UART and SBI console), written to stdout a line at a time.
    console_out: ConsoleOutput,
    virtio: Vec<VirtioSlot>,
    pci: Option<PciState>,
    /// UART0, once created.
    uart: Option<Arc<Mutex<Uart>>>,
    /// The seccomp filters the threads of devices install (`None` with `--seccomp off`).
    seccomp: Option<Arc<Filters>>,
}

impl DeviceManager {
    /// A manager with no devices yet, whose device threads install `seccomp`'s filters.
    pub fn new(seccomp: Option<Arc<Filters>>) -> DeviceManager {
        DeviceManager {
            bus: MmioBus::new(),
            console_out: ConsoleOutput::new(Box::new(std::io::stdout())),
            virtio: Vec::new(),
            pci: None,
            uart: None,
            seccomp,
        }
    }

    /// A hook that installs `kind`'s filter on the thread it runs on.
    fn thread_hook(&self, kind: ThreadKind) -> devices::ThreadHook {
        let filters = self.seccomp.clone();
        Box::new(move || seccomp::apply_or_exit(filters.as_deref(), kind))
    }

    fn insert(&mut self, base: u64, size: u64, device: SharedMmioDevice) -> Result<(), Error> {
        self.bus
            .insert(base, size, device)
            .map_err(|e| Error::Devices(e.to_string()))
    }

    /// Creates the fixed platform devices: UART0 on the console (returned, for the console input thread;
    /// its polled data writes go through `held` when KVM can hold them), the sifive,test finisher (its
    /// requests become `exits`), the Goldfish RTC, and the PLIC when it is the irqchip.
    pub fn add_platform_devices(
        &mut self,
        irqchip: &GuestIrqchip,
        input: Arc<ConsoleInput>,
        exits: ExitSender,
        held: Option<Arc<dyn HeldWrites>>,
    ) -> Result<Arc<Mutex<Uart>>, Error> {
        let mut dev = Uart::new(
            irqchip.line(UART0_IRQ),
            Box::new(self.console_out.clone()),
            input,
        );
        let holds = held.is_some();
        if let Some(h) = held {
            dev.set_held_writes(h);
        }
        let uart = Arc::new(Mutex::new(dev));
        // The console-out thread also plays the UART's held writes: a guest may write its last bytes
        // and not touch the UART again.
        let tick: Option<devices::console::Tick> = holds.then(|| {
            let uart = uart.clone();
            let mut poll = HeldPoll::new();
            Box::new(move || {
                let mut u = uart.lock().unwrap_or_else(|p| p.into_inner());
                u.take_held();
                poll.next(u.take_activity())
            }) as devices::console::Tick
        });
        let hook = self.thread_hook(ThreadKind::ConsoleOut);
        self.console_out
            .spawn_flusher(hook, tick)
            .map_err(|source| Error::Io {
                what: "cannot start the console output thread".into(),
                source,
            })?;
        self.uart = Some(uart.clone());
        self.insert(UART0_BASE, UART0_SIZE, uart.clone())?;
        let finisher = SifiveTest::new(Box::new(move |req| {
            let why = match req {
                FinisherRequest::Pass => GuestExit::Poweroff,
                FinisherRequest::Reset => GuestExit::Reset,
                FinisherRequest::Fail(code) => {
                    log::warn!("guest reported failure {code} through sifive_test");
                    GuestExit::Failure
                }
            };
            exits.send(why);
        }));
        self.insert(
            SIFIVE_TEST_BASE,
            SIFIVE_TEST_SIZE,
            Arc::new(Mutex::new(finisher)),
        )?;
        let hook = self.thread_hook(ThreadKind::RtcAlarm);
        let rtc = GoldfishRtc::with_thread_hook(irqchip.line(RTC_IRQ), hook).map_err(|source| {
            Error::Io {
                what: "cannot start the RTC alarm thread".into(),
                source,
            }
        })?;
        self.insert(RTC_BASE, RTC_SIZE, Arc::new(Mutex::new(rtc)))?;
        if let Some((base, size, plic)) = irqchip.mmio_device() {
            self.insert(base, size, plic)?;
        }
        Ok(uart)
    }

    /// Creates the virtio-mmio devices of `config`: disks first (vda, vdb, ... in the order given), then
    /// network cards, one slot each, with an ioeventfd per queue where KVM allows it.
    pub fn add_virtio_devices(
        &mut self,
        config: &VmConfig,
        transport: VirtioTransport,
        mem: &GuestMemoryMmap,
        irqchip: &GuestIrqchip,
        vm: &Arc<Vm>,
    ) -> Result<(), Error> {
        let ctx = VirtioContext {
            config,
            transport,
            mem,
            irqchip,
            vm,
        };
        for disk in &config.disks {
            let what = format!("--disk {}", disk.path.display());
            let mut block = Block::new(&disk.path, disk.readonly, disk.id.clone())
                .map_err(|e| Error::Devices(format!("{what}: {e}")))?;
            if let Some(limits) = &disk.rate_limiter {
                let limiter = RateLimiter::new(limits)
                    .map_err(|e| Error::Devices(format!("{what}: rate limiter: {e}")))?;
                log::info!("{what}: rate limited ({limits:?})");
                block = block.with_rate_limiter(limiter);
            }
            let name = format!("_disk{}", self.virtio.len());
            self.add_virtio(name, Box::new(block), &what, &ctx)?;
        }
        for net in &config.nets {
            let what = match net.fd {
                Some(fd) => format!("--net fd={fd}"),
                None => format!("--net tap={}", net.tap),
            };
            let mac = net.mac.map(|m| m.0);
            let device = match net.fd {
                Some(fd) => inherited_fd(fd)
                    .map_err(|e| Error::Devices(format!("{what}: {e}")))
                    .and_then(|fd| {
                        Net::from_tap_fd(fd, mac)
                            .map_err(|e| Error::Devices(format!("{what}: {e}")))
                    }),
                None => {
                    Net::open(&net.tap, mac).map_err(|e| Error::Devices(format!("{what}: {e}")))
                }
            };
            let mut device = device?;
            if let Some(limits) = &net.rate_limiter {
                device = device
                    .with_rate_limiters(limits)
                    .map_err(|e| Error::Devices(format!("{what}: rate limiter: {e}")))?;
                log::info!("{what}: rate limited in each direction ({limits:?})");
            }
            if net.vhost {
                // The userspace data path is the fallback when the host has no usable vhost-net.
                if let Err(e) = device.enable_vhost(mem) {
                    log::warn!("{what}: vhost=on, but {e}; using the userspace data path");
                }
            }
            log::info!(
                "virtio-net on tap {} with MAC {:02x?}, {} data path",
                device.tap_name(),
                device.mac(),
                if device.uses_vhost() {
                    "vhost-net"
                } else {
                    "userspace"
                }
            );
            let name = format!("_net{}", self.virtio.len());
            self.add_virtio(name, Box::new(device), &what, &ctx)?;
        }
        if config.rng {
            let what = "--rng";
            log::info!("virtio-rng: entropy from the host's getrandom");
            self.add_virtio("__rng".into(), Box::new(Rng::new()), what, &ctx)?;
        }
        if let Some(v) = &config.vsock {
            let what = format!("--vsock cid={}", v.cid);
            let device =
                Vsock::new(v.cid, mem).map_err(|e| Error::Devices(format!("{what}: {e}")))?;
            log::info!("virtio-vsock: guest CID {} on vhost-vsock", v.cid);
            let name = format!("_vsock{}", self.virtio.len());
            self.add_virtio(name, Box::new(device), &what, &ctx)?;
        }
        Ok(())
    }

    fn add_virtio(
        &mut self,
        name: String,
        device: Box<dyn VirtioDevice>,
        what: &str,
        ctx: &VirtioContext,
    ) -> Result<(), Error> {
        let is_net = device.device_type() == virtio::device_type::NET;
        let dev_err = |e: &dyn std::fmt::Display| Error::Devices(format!("{what}: {e}"));
        let (transport, mmio) = match ctx.transport {
            // `Auto` is resolved before devices are added; virtio-mmio is its fallback anyway.
            VirtioTransport::Mmio | VirtioTransport::Auto => {
                let (base, irq) = virtio_mmio_slot(self.virtio.len())
                    .ok_or_else(|| dev_err(&"no free virtio-mmio slot"))?;
                let interrupt = Arc::new(VirtioInterrupt::new(ctx.irqchip.line(irq)));
                let transport = MmioTransport::new(device, ctx.mem.clone(), interrupt)
                    .map_err(|e| dev_err(&e))?;
                for (q, fd) in transport.queue_eventfds().iter().enumerate() {
                    // Without an ioeventfd the notification exits to rvvmm and the transport signals
                    // the same fd.
                    if let Err(e) =
                        ctx.vm
                            .register_ioeventfd(fd, base + QUEUE_NOTIFY_OFFSET, q as u32)
                    {
                        log::warn!("virtio at {base:#x}: no ioeventfd for queue {q} ({e}); notifications go through MMIO exits");
                    }
                }
                let transport = Arc::new(Mutex::new(transport));
                self.insert(base, VIRTIO_MMIO_SIZE, transport.clone())?;
                (transport, Some((base, irq)))
            }
            VirtioTransport::Pci => {
                let pci = self.pci_state(ctx.config.memory, ctx.irqchip, ctx.vm, what)?;
                let queues = device.queue_max_sizes().len();
                let interrupt = Arc::new(
                    MsixInterrupt::new(queues, pci.next_gsi, pci.kvm.clone())
                        .map_err(|e| dev_err(&e))?,
                );
                pci.next_gsi += interrupt.num_vectors() as u32;
                let transport = MmioTransport::new(device, ctx.mem.clone(), interrupt.clone())
                    .map_err(|e| dev_err(&e))?;
                let transport = Arc::new(Mutex::new(transport));
                let kind = BarKind::Mem32 {
                    prefetchable: false,
                };
                let bar = pci
                    .bars
                    .allocate(kind, virtio::pci::layout::BAR_SIZE)
                    .ok_or_else(|| dev_err(&"no room for the virtio-pci BAR"))?;
                let function = VirtioPciDevice::new(
                    transport.clone(),
                    interrupt,
                    pci.kvm.clone(),
                    bar,
                    pci.bars.windows().to_vec(),
                );
                let slot = pci
                    .bus
                    .as_mut()
                    .ok_or_else(|| dev_err(&"the PCI bus is already closed"))?
                    .add(Arc::new(Mutex::new(function)))
                    .map_err(|e| dev_err(&e))?;
                log::info!("{what}: virtio-pci function 0000:00:{slot:02x}.0, BAR 0 at {bar:#x}");
                (transport, None)
            }
        };
        let counters = transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counter_snapshot();
        self.virtio.push(VirtioSlot {
            name,
            mmio,
            is_net,
            transport,
            counters,
        });
        Ok(())
    }

    /// The PCI hierarchy, created at its first device: the bus, KVM's routing table taken over for
    /// MSI-X, the BAR windows. Needs the in-kernel AIA (MSIs go to the guest's IMSIC).
    fn pci_state(
        &mut self,
        mem_size: u64,
        irqchip: &GuestIrqchip,
        vm: &Arc<Vm>,
        what: &str,
    ) -> Result<&mut PciState, Error> {
        if self.pci.is_none() {
            if !irqchip.is_aia() {
                return Err(Error::Devices(format!(
                    "{what}: PCI devices need the in-kernel AIA irqchip (MSI-X goes to the guest's IMSIC), and this host's KVM has none"
                )));
            }
            let mmio64 = pcie_mmio64(mem_size)
                .ok_or_else(|| Error::Devices("no room for the 64-bit PCI window".into()))?;
            let bars = BarAllocator::new((PCIE_MMIO_BASE, PCIE_MMIO_SIZE), mmio64)
                .ok_or_else(|| Error::Devices("invalid PCI windows".into()))?;
            let kvm = Arc::new(KvmPci::new(vm.clone(), APLIC_NUM_SOURCES)?);
            self.pci = Some(PciState {
                bus: Some(PciBus::new()),
                kvm,
                bars,
                next_gsi: MSI_GSI_BASE,
                container: None,
                mmio64,
            });
        }
        Ok(self.pci.as_mut().expect("created above"))
    }

    /// Passes the host PCI devices `targets` (already checked) through to the guest behind a PCIe host
    /// bridge: one VFIO container for all, guest RAM mapped for their DMA, BARs placed in the PCI windows,
    /// MSI-X delivered by KVM. Needs the in-kernel AIA.
    pub fn add_passthrough_devices(
        &mut self,
        targets: &[PassthroughTarget],
        mem: &GuestMemoryMmap,
        mem_size: u64,
        irqchip: &GuestIrqchip,
        vm: &Arc<Vm>,
    ) -> Result<(), Error> {
        let Some(first) = targets.first() else {
            return Ok(());
        };
        let what = format!("--device {}", first.bdf);
        let pci = self.pci_state(mem_size, irqchip, vm, &what)?;
        let container = Arc::new(
            VfioContainer::new(None)
                .map_err(|e| Error::Devices(format!("{what}: VFIO container: {e}")))?,
        );
        pci.container = Some(container.clone());
        for (i, target) in targets.iter().enumerate() {
            let device = VfioPciDevice::new(
                target,
                container.clone(),
                pci.kvm.clone(),
                &mut pci.bars,
                pci.next_gsi,
            )
            .map_err(|e| Error::Devices(e.to_string()))?;
            if i == 0 {
                // The container has its IOMMU now: map all guest RAM for device DMA (IOVA = guest address).
                map_guest_memory(&container, mem).map_err(|e| {
                    Error::Devices(format!(
                        "--device {}: cannot map guest RAM for DMA: {e}",
                        target.bdf
                    ))
                })?;
            }
            pci.next_gsi += device.num_vectors();
            let slot = pci
                .bus
                .as_mut()
                .ok_or_else(|| Error::Devices("the PCI bus is already closed".into()))?
                .add(Arc::new(Mutex::new(device)))
                .map_err(|e| Error::Devices(format!("--device {}: {e}", target.bdf)))?;
            log::info!(
                "--device {} passed through as guest PCI device 0000:00:{slot:02x}.0",
                target.bdf
            );
        }
        Ok(())
    }

    /// Puts the PCI bus (if any device went on it) behind the PCIe host bridge: its ECAM configuration
    /// space and its two memory windows on the MMIO bus. Called once every PCI device is added.
    pub fn finish_pci(&mut self) -> Result<(), Error> {
        let Some(pci) = &mut self.pci else {
            return Ok(());
        };
        let Some(bus) = pci.bus.take() else {
            return Ok(());
        };
        let windows = pci.bars.windows().to_vec();
        let bus = Arc::new(bus);
        self.insert(
            PCIE_ECAM_BASE,
            PCIE_ECAM_SIZE,
            Arc::new(Mutex::new(PciConfigMmio(bus.clone()))),
        )?;
        for (base, size) in windows {
            let window = PciWindowMmio {
                bus: bus.clone(),
                base,
            };
            self.insert(base, size, Arc::new(Mutex::new(window)))?;
        }
        Ok(())
    }

    /// The PCIe host bridge as the device tree describes it, if there is one.
    pub fn fdt_pci(&self) -> Option<PciHostConfig> {
        self.pci
            .as_ref()
            .map(|p| PciHostConfig { mmio64: p.mmio64 })
    }

    /// The virtio-mmio transports as the device tree lists them, in slot order.
    pub fn fdt_virtio_mmio(&self) -> Vec<VirtioMmioDevice> {
        self.virtio
            .iter()
            .filter_map(|s| s.mmio.map(|(base, irq)| (s, base, irq)))
            .scan(0u32, |cards, (s, base, irq)| {
                // Network cards get ethernet0, ethernet1, ... in slot order (the --net order).
                let ethernet_alias = s.is_net.then(|| {
                    *cards += 1;
                    *cards - 1
                });
                Some(VirtioMmioDevice {
                    base,
                    size: VIRTIO_MMIO_SIZE,
                    irq,
                    ethernet_alias,
                })
            })
            .collect()
    }

    /// Starts the thread that serves the virtio queues and `control`, if there is any virtio device;
    /// returns whether it started.
    pub fn start_io_thread(&self, control: IoControl) -> Result<bool, Error> {
        let transports: Vec<_> = self.virtio.iter().map(|s| s.transport.clone()).collect();
        if transports.is_empty() {
            return Ok(false);
        }
        let hook = self.thread_hook(ThreadKind::VirtioIo);
        virtio::io_thread::spawn(&transports, Some(control), hook).map_err(|source| Error::Io {
            what: "cannot start the virtio I/O thread".into(),
            source,
        })?;
        Ok(true)
    }

    /// Every virtio device's counters, by device id (devices without counters are left out).
    pub fn counters(&self) -> Counters {
        let mut out = Counters::new();
        for s in &self.virtio {
            let c = s.counters.get();
            if !c.is_empty() {
                let map: BTreeMap<String, u64> =
                    c.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                out.insert(s.name.clone(), map);
            }
        }
        out
    }

    /// The MMIO bus, to be shared by the vcpu threads. Devices added after this call are not on it.
    pub fn take_bus(&mut self) -> MmioBus {
        std::mem::take(&mut self.bus)
    }

    /// The guest console's output, for the SBI console (the same buffer as the UART's).
    pub fn console_output(&self) -> ConsoleOutput {
        self.console_out.clone()
    }

    /// Flushes every device (disks to their files, the console to stdout) before rvvmm exits, whatever
    /// the reason. Every device is flushed even when one fails; the error names each that failed.
    pub fn shutdown(&self) -> Result<(), String> {
        if let Some(uart) = &self.uart {
            let mut u = uart.lock().unwrap_or_else(|p| p.into_inner());
            u.take_held();
            if u.held_count() > 0 {
                log::info!(
                    "uart: {} console writes taken without an exit (coalesced MMIO)",
                    u.held_count()
                );
            }
        }
        self.console_out.close();
        let failed: Vec<String> = self
            .virtio
            .iter()
            .filter_map(|s| {
                s.transport
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .shutdown()
                    .err()
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}
