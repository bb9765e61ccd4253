//! The device manager (riscv64 only): creates every device the guest sees from the configuration, places
//! it in the guest physical address space and on an interrupt line, and owns the MMIO bus the vcpus
//! dispatch their exits through.
//!
//! Fixed devices (UART0, the sifive,test finisher, the userspace PLIC when it is the irqchip) sit at the
//! addresses of the QEMU `virt` map; virtio-mmio devices take the slots in order (disks, then network
//! cards); PCI devices (VFIO passthrough) sit behind the PCIe host bridge.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use arch::layout::{
    SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE, UART0_BASE, UART0_IRQ, UART0_SIZE, VIRTIO_MMIO_SIZE,
};
use arch::{virtio_mmio_slot, VirtioMmioDevice};
use devices::console::ConsoleInput;
use devices::serial::Uart;
use devices::sifive_test::{FinisherRequest, SifiveTest};
use devices::{MmioBus, SharedMmioDevice};
use hypervisor::Vm;
use virtio::{Block, MmioTransport, Net, VirtioDevice, VirtioInterrupt, QUEUE_NOTIFY_OFFSET};
use vm_memory::GuestMemoryMmap;

use crate::config::VmConfig;
use crate::irqchip::GuestIrqchip;
use crate::{Error, GuestExit};

/// A virtio-mmio transport in its slot.
struct VirtioSlot {
    base: u64,
    irq: u32,
    transport: Arc<Mutex<MmioTransport>>,
}

/// Every device of the VM and the bus they are reached through.
pub struct DeviceManager {
    bus: MmioBus,
    virtio: Vec<VirtioSlot>,
}

impl DeviceManager {
    /// A manager with no devices yet.
    pub fn new() -> DeviceManager {
        DeviceManager {
            bus: MmioBus::new(),
            virtio: Vec::new(),
        }
    }

    fn insert(&mut self, base: u64, size: u64, device: SharedMmioDevice) -> Result<(), Error> {
        self.bus
            .insert(base, size, device)
            .map_err(|e| Error::Devices(e.to_string()))
    }

    /// Creates the fixed platform devices: UART0 on the console (returned, for the console input thread),
    /// the sifive,test finisher (its requests become `exits`), and the PLIC when it is the irqchip.
    pub fn add_platform_devices(
        &mut self,
        irqchip: &GuestIrqchip,
        input: Arc<ConsoleInput>,
        exits: Sender<GuestExit>,
    ) -> Result<Arc<Mutex<Uart>>, Error> {
        let uart = Arc::new(Mutex::new(Uart::new(
            irqchip.line(UART0_IRQ),
            Box::new(std::io::stdout()),
            input,
        )));
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
            let _ = exits.send(why);
        }));
        self.insert(
            SIFIVE_TEST_BASE,
            SIFIVE_TEST_SIZE,
            Arc::new(Mutex::new(finisher)),
        )?;
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
        mem: &GuestMemoryMmap,
        irqchip: &GuestIrqchip,
        vm: &Vm,
    ) -> Result<(), Error> {
        for disk in &config.disks {
            let what = format!("--disk {}", disk.path.display());
            let block = Block::new(&disk.path, disk.readonly, disk.id.clone())
                .map_err(|e| Error::Devices(format!("{what}: {e}")))?;
            self.add_virtio(Box::new(block), &what, mem, irqchip, vm)?;
        }
        for net in &config.nets {
            let what = format!("--net tap={}", net.tap);
            let mut device = Net::open(&net.tap, net.mac.map(|m| m.0))
                .map_err(|e| Error::Devices(format!("{what}: {e}")))?;
            if net.vhost {
                // The userspace data path is the fallback when the host has no usable vhost-net.
                if let Err(e) = device.enable_vhost(mem) {
                    log::warn!("{what}: vhost=on, but {e}; using the userspace data path");
                }
            }
            log::info!(
                "virtio-net on tap {} with MAC {:02x?}, {} data path",
                net.tap,
                device.mac(),
                if device.uses_vhost() {
                    "vhost-net"
                } else {
                    "userspace"
                }
            );
            self.add_virtio(Box::new(device), &what, mem, irqchip, vm)?;
        }
        Ok(())
    }

    fn add_virtio(
        &mut self,
        device: Box<dyn VirtioDevice>,
        what: &str,
        mem: &GuestMemoryMmap,
        irqchip: &GuestIrqchip,
        vm: &Vm,
    ) -> Result<(), Error> {
        let (base, irq) = virtio_mmio_slot(self.virtio.len())
            .ok_or_else(|| Error::Devices(format!("{what}: no free virtio-mmio slot")))?;
        let interrupt = Arc::new(VirtioInterrupt::new(irqchip.line(irq)));
        let transport = MmioTransport::new(device, mem.clone(), interrupt)
            .map_err(|e| Error::Devices(format!("{what}: {e}")))?;
        for (q, fd) in transport.queue_eventfds().iter().enumerate() {
            // Without an ioeventfd the notification exits to rvvmm and the transport signals the same fd.
            if let Err(e) = vm.register_ioeventfd(fd, base + QUEUE_NOTIFY_OFFSET, q as u32) {
                log::warn!("virtio at {base:#x}: no ioeventfd for queue {q} ({e}); notifications go through MMIO exits");
            }
        }
        let transport = Arc::new(Mutex::new(transport));
        self.insert(base, VIRTIO_MMIO_SIZE, transport.clone())?;
        self.virtio.push(VirtioSlot {
            base,
            irq,
            transport,
        });
        Ok(())
    }

    /// The virtio-mmio transports as the device tree lists them, in slot order.
    pub fn fdt_virtio_mmio(&self) -> Vec<VirtioMmioDevice> {
        self.virtio
            .iter()
            .map(|s| VirtioMmioDevice {
                base: s.base,
                size: VIRTIO_MMIO_SIZE,
                irq: s.irq,
            })
            .collect()
    }

    /// Starts the thread that serves the virtio queues (if there is any virtio device).
    pub fn start_io_thread(&self) -> Result<(), Error> {
        let transports: Vec<_> = self.virtio.iter().map(|s| s.transport.clone()).collect();
        if transports.is_empty() {
            return Ok(());
        }
        virtio::io_thread::spawn(&transports).map_err(|source| Error::Io {
            what: "cannot start the virtio I/O thread".into(),
            source,
        })
    }

    /// The MMIO bus, to be shared by the vcpu threads. Devices added after this call are not on it.
    pub fn take_bus(&mut self) -> MmioBus {
        std::mem::take(&mut self.bus)
    }

    /// Flushes every device (disks to their files) before rvvmm exits, whatever the reason.
    pub fn shutdown(&self) {
        for s in &self.virtio {
            s.transport
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .shutdown();
        }
    }
}
