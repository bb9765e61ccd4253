//! The guest's flattened device tree, modelled on QEMU's riscv `virt` machine under KVM.

use std::collections::HashSet;

use thiserror::Error;
use vm_fdt::FdtWriter;

use crate::isa::{CpuIsa, ISA_BASE};
use crate::layout::{
    dram_end, imsic_size, APLIC_BASE, APLIC_SIZE, DRAM_BASE, FDT_MAX_SIZE, IMSIC_BASE, MAX_CPUS,
    PLIC_BASE, PLIC_SIZE, SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE, UART0_BASE, UART0_IRQ, UART0_SIZE,
};
use crate::layout::{
    PCIE_ECAM_BASE, PCIE_ECAM_SIZE, PCIE_INTX_IRQ_BASE, PCIE_MMIO_BASE, PCIE_MMIO_SIZE,
    PCIE_PIO_BASE, PCIE_PIO_SIZE, RTC_BASE, RTC_IRQ, RTC_SIZE,
};

/// Interrupt type cell for level-triggered, active-high wired interrupts (APLIC specifiers).
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// Local interrupt number of the supervisor external interrupt in the cpu-intc.
const IRQ_S_EXT: u32 = 9;
/// Input clock of the ns16550a UART (as QEMU `virt`).
const UART_CLOCK_FREQUENCY: u32 = 3_686_400;
/// Largest number of APLIC/PLIC wired interrupt sources.
const MAX_WIRED_SOURCES: u32 = 1023;
/// Bounds of the IMSIC's `riscv,num-ids`: 63..=2047, a multiple of 64 minus one.
const IMSIC_MIN_IDS: u32 = 63;
const IMSIC_MAX_IDS: u32 = 2047;

/// Device tree path of the console UART.
const UART_PATH: &str = "/soc/serial@10000000";

/// Phandles: fixed, so the blob is deterministic.
const PHANDLE_IRQCHIP: u32 = 1; // APLIC or PLIC: the interrupt-parent of wired devices
const PHANDLE_IMSIC: u32 = 2;
const PHANDLE_TEST: u32 = 3;
const PHANDLE_CPU_BASE: u32 = 4; // cpu N: 4 + 2N, its interrupt-controller: 5 + 2N

fn cpu_phandle(cpu: u32) -> u32 {
    PHANDLE_CPU_BASE + 2 * cpu
}

fn intc_phandle(cpu: u32) -> u32 {
    cpu_phandle(cpu) + 1
}

/// Which interrupt controller the guest gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqChipConfig {
    /// KVM's in-kernel AIA: an IMSIC per hart plus an APLIC in MSI mode.
    Aia {
        /// APLIC wired sources (`riscv,num-sources`; sources 1..=num_sources).
        num_sources: u32,
        /// IMSIC interrupt identities (`riscv,num-ids`, KVM's AIA CONFIG `ids`).
        num_ids: u32,
    },
    /// Userspace PLIC, one S-mode context per hart (context N = hart N's S-mode context).
    Plic {
        /// Wired sources (`riscv,ndev`; sources 1..=num_sources).
        num_sources: u32,
    },
}

impl IrqChipConfig {
    fn num_sources(&self) -> u32 {
        match *self {
            IrqChipConfig::Aia { num_sources, .. } | IrqChipConfig::Plic { num_sources } => {
                num_sources
            }
        }
    }

    /// Interrupt specifier of wired source `irq` for this controller.
    fn irq_specifier(&self, irq: u32) -> Vec<u32> {
        match self {
            IrqChipConfig::Aia { .. } => vec![irq, IRQ_TYPE_LEVEL_HIGH],
            IrqChipConfig::Plic { .. } => vec![irq],
        }
    }
}

/// A virtio-mmio transport to describe in the device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Guest physical base address.
    pub base: u64,
    /// Size of the register window.
    pub size: u64,
    /// Wired interrupt source.
    pub irq: u32,
    /// For a network card: N of its `ethernetN` alias. The node then gets a child node `ethernet`
    /// compatible with "virtio,device1", which Linux makes the virtio device's own node, and
    /// /aliases/ethernetN points at it: systemd-udev names the interface `endN` from that alias (a
    /// stable name, as on boards with on-SoC NICs) instead of the unpredictable `ethN`.
    pub ethernet_alias: Option<u32>,
}

/// Everything the device tree describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtConfig {
    /// Number of harts (1..=`MAX_CPUS`); hart ids are 0..num_cpus.
    pub num_cpus: u32,
    /// ISA of every hart.
    pub isa: CpuIsa,
    /// `mmu-type` of every hart (e.g. "riscv,sv57"), omitted when `None`.
    pub mmu_type: Option<String>,
    /// `riscv,cbom-block-size`, emitted only when the ISA has zicbom.
    pub cbom_block_size: Option<u32>,
    /// `riscv,cboz-block-size`, emitted only when the ISA has zicboz.
    pub cboz_block_size: Option<u32>,
    /// `timebase-frequency` in Hz (KVM's TIMER `frequency`).
    pub timebase_frequency: u32,
    /// Size of guest RAM at `DRAM_BASE`, in bytes.
    pub memory_size: u64,
    /// Kernel command line (`/chosen/bootargs`).
    pub cmdline: String,
    /// Start and size of the initrd in guest physical memory.
    pub initrd: Option<(u64, u64)>,
    /// Interrupt controller.
    pub irqchip: IrqChipConfig,
    /// virtio-mmio transports, emitted in this order.
    pub virtio_mmio: Vec<VirtioMmioDevice>,
    /// The PCIe host bridge, when the guest has PCI devices.
    pub pci: Option<PciHostConfig>,
}

/// The PCIe host bridge (ECAM, I/O and 32-bit windows at the fixed addresses of the memory map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciHostConfig {
    /// The 64-bit memory window (base, size), above RAM.
    pub mmio64: (u64, u64),
}

/// Errors from building the device tree.
#[derive(Debug, Error)]
pub enum FdtError {
    /// The number of vCPUs is out of range.
    #[error("invalid number of vCPUs {0}: must be between 1 and {MAX_CPUS}")]
    InvalidCpuCount(u32),
    /// The guest memory size is zero or does not fit in the address space.
    #[error("invalid guest memory size {0:#x}")]
    InvalidMemorySize(u64),
    /// The initrd is not inside guest RAM.
    #[error("initrd at {start:#x} of {size} bytes is not inside guest memory")]
    InvalidInitrd {
        /// Start address.
        start: u64,
        /// Size in bytes.
        size: u64,
    },
    /// The number of wired interrupt sources is out of range.
    #[error("invalid number of interrupt sources {0}: must be between 1 and {MAX_WIRED_SOURCES}")]
    InvalidNumSources(u32),
    /// The number of IMSIC interrupt identities is not valid.
    #[error(
        "invalid number of IMSIC interrupt identities {0}: must be a multiple of 64 minus 1, \
         between {IMSIC_MIN_IDS} and {IMSIC_MAX_IDS}"
    )]
    InvalidImsicIds(u32),
    /// A device's interrupt is not a source of the interrupt controller.
    #[error("interrupt {irq} of {device} is out of range 1..={num_sources}")]
    IrqOutOfRange {
        /// Device tree node of the device.
        device: String,
        /// Its interrupt source.
        irq: u32,
        /// Number of sources of the interrupt controller.
        num_sources: u32,
    },
    /// Two virtio-mmio devices share a base address.
    #[error("two virtio-mmio devices at the same address {0:#x}")]
    DuplicateVirtioMmio(u64),
    /// The blob is larger than the space reserved for it.
    #[error("device tree of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Size of the generated blob.
        size: usize,
        /// Maximum size (`FDT_MAX_SIZE`).
        max: u64,
    },
    /// vm-fdt rejected a node or property (e.g. a NUL byte in the command line).
    #[error("failed to write the device tree: {0}")]
    Writer(#[from] vm_fdt::Error),
}

fn validate(cfg: &FdtConfig) -> Result<(), FdtError> {
    if cfg.num_cpus == 0 || cfg.num_cpus > MAX_CPUS {
        return Err(FdtError::InvalidCpuCount(cfg.num_cpus));
    }
    let ram_end = dram_end(cfg.memory_size)
        .filter(|_| cfg.memory_size != 0)
        .ok_or(FdtError::InvalidMemorySize(cfg.memory_size))?;
    if let Some((start, size)) = cfg.initrd {
        let inside = start
            .checked_add(size)
            .is_some_and(|end| start >= DRAM_BASE && end <= ram_end);
        if !inside {
            return Err(FdtError::InvalidInitrd { start, size });
        }
    }

    let num_sources = cfg.irqchip.num_sources();
    if num_sources == 0 || num_sources > MAX_WIRED_SOURCES {
        return Err(FdtError::InvalidNumSources(num_sources));
    }
    if let IrqChipConfig::Aia { num_ids, .. } = cfg.irqchip {
        if !(IMSIC_MIN_IDS..=IMSIC_MAX_IDS).contains(&num_ids)
            || num_ids & IMSIC_MIN_IDS != IMSIC_MIN_IDS
        {
            return Err(FdtError::InvalidImsicIds(num_ids));
        }
    }

    let check_irq = |device: String, irq: u32| {
        if irq == 0 || irq > num_sources {
            Err(FdtError::IrqOutOfRange {
                device,
                irq,
                num_sources,
            })
        } else {
            Ok(())
        }
    };
    check_irq(UART_PATH.to_string(), UART0_IRQ)?;
    let mut bases = HashSet::new();
    for dev in &cfg.virtio_mmio {
        check_irq(virtio_node_name(dev.base), dev.irq)?;
        if !bases.insert(dev.base) {
            return Err(FdtError::DuplicateVirtioMmio(dev.base));
        }
    }
    Ok(())
}

fn virtio_node_name(base: u64) -> String {
    format!("virtio_mmio@{base:x}")
}

/// Name of the child node of a virtio-mmio network card (see [`VirtioMmioDevice::ethernet_alias`]).
const VIRTIO_NET_CHILD: &str = "ethernet";
/// Linux's compatible string for a virtio device node of device id 1 (network card) under its transport.
const VIRTIO_NET_COMPATIBLE: &str = "virtio,device1";

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

/// Builds the device tree blob for `cfg`.
///
/// The layout follows QEMU's `virt` machine under KVM: `/cpus` with a `riscv,cpu-intc` per hart
/// and a `cpu-map`, `/memory@80000000`, `/chosen`, `/soc` with the UART, `sifive,test0`,
/// virtio-mmio transports and the interrupt controller, and root `poweroff`/`reboot` syscon
/// nodes. Fails on out-of-range inputs and when the blob would exceed `FDT_MAX_SIZE`.
pub fn create_fdt(cfg: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    validate(cfg)?;

    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "riscv-virtio")?;
    fdt.property_string("model", "rvvmm,virt")?;

    write_chosen(&mut fdt, cfg)?;

    let aliases = fdt.begin_node("aliases")?;
    fdt.property_string("serial0", UART_PATH)?;
    for dev in &cfg.virtio_mmio {
        if let Some(n) = dev.ethernet_alias {
            let path = format!("/soc/{}/{VIRTIO_NET_CHILD}", virtio_node_name(dev.base));
            fdt.property_string(&format!("ethernet{n}"), &path)?;
        }
    }
    fdt.end_node(aliases)?;

    let memory = fdt.begin_node(&format!("memory@{DRAM_BASE:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[DRAM_BASE, cfg.memory_size])?;
    fdt.end_node(memory)?;

    write_cpus(&mut fdt, cfg)?;
    write_soc(&mut fdt, cfg)?;

    for (name, compatible, value) in [
        ("poweroff", "syscon-poweroff", 0x5555),
        ("reboot", "syscon-reboot", 0x7777),
    ] {
        let node = fdt.begin_node(name)?;
        fdt.property_string("compatible", compatible)?;
        fdt.property_u32("regmap", PHANDLE_TEST)?;
        fdt.property_u32("offset", 0)?;
        fdt.property_u32("value", value)?;
        fdt.end_node(node)?;
    }

    fdt.end_node(root)?;
    let blob = fdt.finish()?;
    if u64::try_from(blob.len()).map_or(true, |len| len > FDT_MAX_SIZE) {
        return Err(FdtError::TooLarge {
            size: blob.len(),
            max: FDT_MAX_SIZE,
        });
    }
    Ok(blob)
}

fn write_chosen(fdt: &mut FdtWriter, cfg: &FdtConfig) -> Result<(), FdtError> {
    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &cfg.cmdline)?;
    fdt.property_string("stdout-path", UART_PATH)?;
    if let Some((start, size)) = cfg.initrd {
        // validate() checked that start + size does not overflow.
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", start.saturating_add(size))?;
    }
    fdt.end_node(chosen)?;
    Ok(())
}

fn write_cpus(fdt: &mut FdtWriter, cfg: &FdtConfig) -> Result<(), FdtError> {
    let isa_string = cfg.isa.isa_string();
    let isa_extensions = cfg.isa.isa_extensions();

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    fdt.property_u32("timebase-frequency", cfg.timebase_frequency)?;

    for cpu in 0..cfg.num_cpus {
        let node = fdt.begin_node(&format!("cpu@{cpu:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_u32("reg", cpu)?;
        fdt.property_string("status", "okay")?;
        fdt.property_string("compatible", "riscv")?;
        fdt.property_string("riscv,isa", &isa_string)?;
        fdt.property_string("riscv,isa-base", ISA_BASE)?;
        fdt.property_string_list("riscv,isa-extensions", isa_extensions.clone())?;
        if let Some(mmu_type) = &cfg.mmu_type {
            fdt.property_string("mmu-type", mmu_type)?;
        }
        if let Some(size) = cfg.cbom_block_size.filter(|_| cfg.isa.has("zicbom")) {
            fdt.property_u32("riscv,cbom-block-size", size)?;
        }
        if let Some(size) = cfg.cboz_block_size.filter(|_| cfg.isa.has("zicboz")) {
            fdt.property_u32("riscv,cboz-block-size", size)?;
        }
        fdt.property_phandle(cpu_phandle(cpu))?;

        let intc = fdt.begin_node("interrupt-controller")?;
        fdt.property_string("compatible", "riscv,cpu-intc")?;
        fdt.property_u32("#interrupt-cells", 1)?;
        fdt.property_null("interrupt-controller")?;
        fdt.property_phandle(intc_phandle(cpu))?;
        fdt.end_node(intc)?;

        fdt.end_node(node)?;
    }

    let cpu_map = fdt.begin_node("cpu-map")?;
    let cluster = fdt.begin_node("cluster0")?;
    for cpu in 0..cfg.num_cpus {
        let core = fdt.begin_node(&format!("core{cpu}"))?;
        fdt.property_u32("cpu", cpu_phandle(cpu))?;
        fdt.end_node(core)?;
    }
    fdt.end_node(cluster)?;
    fdt.end_node(cpu_map)?;

    fdt.end_node(cpus)?;
    Ok(())
}

fn write_soc(fdt: &mut FdtWriter, cfg: &FdtConfig) -> Result<(), FdtError> {
    let soc = fdt.begin_node("soc")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "simple-bus")?;
    fdt.property_null("ranges")?;

    let serial = fdt.begin_node(&format!("serial@{UART0_BASE:x}"))?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[UART0_BASE, UART0_SIZE])?;
    fdt.property_u32("clock-frequency", UART_CLOCK_FREQUENCY)?;
    fdt.property_array_u32("interrupts", &cfg.irqchip.irq_specifier(UART0_IRQ))?;
    fdt.property_u32("interrupt-parent", PHANDLE_IRQCHIP)?;
    fdt.end_node(serial)?;

    let test = fdt.begin_node(&format!("test@{SIFIVE_TEST_BASE:x}"))?;
    fdt.property_string_list(
        "compatible",
        strings(&["sifive,test1", "sifive,test0", "syscon"]),
    )?;
    fdt.property_array_u64("reg", &[SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE])?;
    fdt.property_phandle(PHANDLE_TEST)?;
    fdt.end_node(test)?;

    let rtc = fdt.begin_node(&format!("rtc@{RTC_BASE:x}"))?;
    fdt.property_string("compatible", "google,goldfish-rtc")?;
    fdt.property_array_u64("reg", &[RTC_BASE, RTC_SIZE])?;
    fdt.property_array_u32("interrupts", &cfg.irqchip.irq_specifier(RTC_IRQ))?;
    fdt.property_u32("interrupt-parent", PHANDLE_IRQCHIP)?;
    fdt.end_node(rtc)?;

    for dev in &cfg.virtio_mmio {
        let node = fdt.begin_node(&virtio_node_name(dev.base))?;
        fdt.property_string("compatible", "virtio,mmio")?;
        fdt.property_array_u64("reg", &[dev.base, dev.size])?;
        fdt.property_array_u32("interrupts", &cfg.irqchip.irq_specifier(dev.irq))?;
        fdt.property_u32("interrupt-parent", PHANDLE_IRQCHIP)?;
        if dev.ethernet_alias.is_some() {
            let child = fdt.begin_node(VIRTIO_NET_CHILD)?;
            fdt.property_string("compatible", VIRTIO_NET_COMPATIBLE)?;
            fdt.end_node(child)?;
        }
        fdt.end_node(node)?;
    }

    if let Some(pci) = &cfg.pci {
        write_pci(fdt, pci, &cfg.irqchip)?;
    }

    match cfg.irqchip {
        IrqChipConfig::Aia {
            num_sources,
            num_ids,
        } => write_aia(fdt, cfg.num_cpus, num_sources, num_ids)?,
        IrqChipConfig::Plic { num_sources } => write_plic(fdt, cfg.num_cpus, num_sources)?,
    }

    fdt.end_node(soc)?;
    Ok(())
}

/// PCI address space codes of the first `ranges` cell (I/O, 32-bit memory, 64-bit memory).
const PCI_SPACE_IO: u32 = 0x0100_0000;
const PCI_SPACE_MEM32: u32 = 0x0200_0000;
const PCI_SPACE_MEM64: u32 = 0x0300_0000;

fn write_pci(
    fdt: &mut FdtWriter,
    pci: &PciHostConfig,
    irqchip: &IrqChipConfig,
) -> Result<(), FdtError> {
    let node = fdt.begin_node(&format!("pci@{PCIE_ECAM_BASE:x}"))?;
    fdt.property_string("compatible", "pci-host-ecam-generic")?;
    fdt.property_string("device_type", "pci")?;
    fdt.property_u32("#address-cells", 3)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_array_u64("reg", &[PCIE_ECAM_BASE, PCIE_ECAM_SIZE])?;
    // One bus per MiB of ECAM.
    fdt.property_array_u32("bus-range", &[0, (PCIE_ECAM_SIZE >> 20) as u32 - 1])?;
    fdt.property_u32("linux,pci-domain", 0)?;
    fdt.property_null("dma-coherent")?;
    let hi = |v: u64| (v >> 32) as u32;
    let lo = |v: u64| v as u32;
    let (m64, m64_size) = pci.mmio64;
    fdt.property_array_u32(
        "ranges",
        &[
            PCI_SPACE_IO,
            0,
            0,
            hi(PCIE_PIO_BASE),
            lo(PCIE_PIO_BASE),
            hi(PCIE_PIO_SIZE),
            lo(PCIE_PIO_SIZE),
            PCI_SPACE_MEM32,
            hi(PCIE_MMIO_BASE),
            lo(PCIE_MMIO_BASE),
            hi(PCIE_MMIO_BASE),
            lo(PCIE_MMIO_BASE),
            hi(PCIE_MMIO_SIZE),
            lo(PCIE_MMIO_SIZE),
            PCI_SPACE_MEM64,
            hi(m64),
            lo(m64),
            hi(m64),
            lo(m64),
            hi(m64_size),
            lo(m64_size),
        ],
    )?;
    if matches!(irqchip, IrqChipConfig::Aia { .. }) {
        fdt.property_u32("msi-parent", PHANDLE_IMSIC)?;
    }
    // INTx: pin P (1..4) of slot S goes to wired source 32 + (S + P - 1) % 4, the usual swizzle.
    let mut map = Vec::new();
    for slot in 0..4u32 {
        for pin in 1..=4u32 {
            map.extend_from_slice(&[slot << 11, 0, 0, pin, PHANDLE_IRQCHIP]);
            map.extend(irqchip.irq_specifier(PCIE_INTX_IRQ_BASE + (slot + pin - 1) % 4));
        }
    }
    fdt.property_array_u32("interrupt-map", &map)?;
    fdt.property_array_u32("interrupt-map-mask", &[0x1800, 0, 0, 7])?;
    fdt.end_node(node)?;
    Ok(())
}

fn write_aia(
    fdt: &mut FdtWriter,
    num_cpus: u32,
    num_sources: u32,
    num_ids: u32,
) -> Result<(), FdtError> {
    // No "riscv,hart-index-bits": Linux then assumes ceil(log2(number of interrupts-extended
    // entries)) = ceil(log2(num_cpus)), which is exactly the span `imsic_size` covers and what
    // the VMM gives KVM as AIA `hart_bits` (layout::imsic_hart_index_bits). Guest and group
    // index bits default to 0.
    let imsic = fdt.begin_node(&format!("interrupt-controller@{IMSIC_BASE:x}"))?;
    fdt.property_string("compatible", "riscv,imsics")?;
    fdt.property_array_u64("reg", &[IMSIC_BASE, imsic_size(num_cpus)])?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 0)?;
    fdt.property_null("msi-controller")?;
    fdt.property_u32("riscv,num-ids", num_ids)?;
    let parents: Vec<u32> = (0..num_cpus)
        .flat_map(|cpu| [intc_phandle(cpu), IRQ_S_EXT])
        .collect();
    fdt.property_array_u32("interrupts-extended", &parents)?;
    fdt.property_phandle(PHANDLE_IMSIC)?;
    fdt.end_node(imsic)?;

    let aplic = fdt.begin_node(&format!("interrupt-controller@{APLIC_BASE:x}"))?;
    fdt.property_string("compatible", "riscv,aplic")?;
    fdt.property_array_u64("reg", &[APLIC_BASE, APLIC_SIZE])?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 2)?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_u32("riscv,num-sources", num_sources)?;
    fdt.property_u32("msi-parent", PHANDLE_IMSIC)?;
    fdt.property_phandle(PHANDLE_IRQCHIP)?;
    fdt.end_node(aplic)?;
    Ok(())
}

fn write_plic(fdt: &mut FdtWriter, num_cpus: u32, num_sources: u32) -> Result<(), FdtError> {
    let plic = fdt.begin_node(&format!("plic@{PLIC_BASE:x}"))?;
    fdt.property_string_list("compatible", strings(&["sifive,plic-1.0.0", "riscv,plic0"]))?;
    fdt.property_array_u64("reg", &[PLIC_BASE, PLIC_SIZE])?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_u32("riscv,ndev", num_sources)?;
    // A KVM guest runs in S-mode only, so (as QEMU does under KVM) each hart has a single PLIC
    // context, its S-mode external interrupt: context N belongs to hart N.
    let contexts: Vec<u32> = (0..num_cpus)
        .flat_map(|cpu| [intc_phandle(cpu), IRQ_S_EXT])
        .collect();
    fdt.property_array_u32("interrupts-extended", &contexts)?;
    fdt.property_phandle(PHANDLE_IRQCHIP)?;
    fdt.end_node(plic)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::layout::{virtio_mmio_slot, APLIC_NUM_SOURCES};

    type Props = BTreeMap<String, Vec<u8>>;

    /// Minimal FDT reader: node path -> properties.
    struct Dtb {
        nodes: BTreeMap<String, Props>,
    }

    fn be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn cstr(b: &[u8], off: usize) -> &str {
        let end = off + b[off..].iter().position(|&c| c == 0).unwrap();
        std::str::from_utf8(&b[off..end]).unwrap()
    }

    impl Dtb {
        fn parse(b: &[u8]) -> Dtb {
            assert_eq!(be32(b, 0), 0xd00d_feed, "magic");
            assert_eq!(be32(b, 4) as usize, b.len(), "totalsize");
            let off_struct = be32(b, 8) as usize;
            let off_strings = be32(b, 12) as usize;
            assert_eq!(be32(b, 20), 17, "version");
            let size_strings = be32(b, 32) as usize;
            let size_struct = be32(b, 36) as usize;
            assert!(off_strings + size_strings <= b.len());
            assert!(off_struct + size_struct <= b.len());

            let mut nodes = BTreeMap::new();
            let mut stack: Vec<String> = Vec::new();
            let mut pos = off_struct;
            loop {
                let token = be32(b, pos);
                pos += 4;
                match token {
                    1 => {
                        let name = cstr(b, pos);
                        pos = (pos + name.len() + 1 + 3) & !3;
                        let path = match stack.last() {
                            None => "/".to_string(),
                            Some(p) if p == "/" => format!("/{name}"),
                            Some(p) => format!("{p}/{name}"),
                        };
                        assert!(nodes.insert(path.clone(), Props::new()).is_none(), "{path}");
                        stack.push(path);
                    }
                    2 => {
                        stack.pop().expect("unbalanced END_NODE");
                    }
                    3 => {
                        let len = be32(b, pos) as usize;
                        let name = cstr(b, off_strings + be32(b, pos + 4) as usize).to_string();
                        let value = b[pos + 8..pos + 8 + len].to_vec();
                        pos = (pos + 8 + len + 3) & !3;
                        let node = nodes.get_mut(stack.last().unwrap()).unwrap();
                        assert!(node.insert(name.clone(), value).is_none(), "dup {name}");
                    }
                    4 => {}
                    9 => break,
                    t => panic!("bad token {t:#x} at {pos:#x}"),
                }
            }
            assert!(stack.is_empty());
            assert_eq!(pos, off_struct + size_struct);
            Dtb { nodes }
        }

        fn node(&self, path: &str) -> &Props {
            self.nodes
                .get(path)
                .unwrap_or_else(|| panic!("missing node {path}"))
        }

        fn has_node(&self, path: &str) -> bool {
            self.nodes.contains_key(path)
        }

        fn raw(&self, path: &str, prop: &str) -> &[u8] {
            self.node(path)
                .get(prop)
                .unwrap_or_else(|| panic!("missing {path}:{prop}"))
        }

        fn has_prop(&self, path: &str, prop: &str) -> bool {
            self.node(path).contains_key(prop)
        }

        fn u32s(&self, path: &str, prop: &str) -> Vec<u32> {
            let raw = self.raw(path, prop);
            assert_eq!(raw.len() % 4, 0);
            raw.chunks(4).map(|c| be32(c, 0)).collect()
        }

        fn u32(&self, path: &str, prop: &str) -> u32 {
            let v = self.u32s(path, prop);
            assert_eq!(v.len(), 1, "{path}:{prop}");
            v[0]
        }

        fn u64s(&self, path: &str, prop: &str) -> Vec<u64> {
            let raw = self.raw(path, prop);
            assert_eq!(raw.len() % 8, 0);
            raw.chunks(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
                .collect()
        }

        fn strs(&self, path: &str, prop: &str) -> Vec<String> {
            let raw = self.raw(path, prop);
            assert_eq!(raw.last(), Some(&0), "{path}:{prop} not NUL-terminated");
            raw[..raw.len() - 1]
                .split(|&c| c == 0)
                .map(|s| String::from_utf8(s.to_vec()).unwrap())
                .collect()
        }

        fn str(&self, path: &str, prop: &str) -> String {
            let v = self.strs(path, prop);
            assert_eq!(v.len(), 1, "{path}:{prop}");
            v[0].clone()
        }

        /// phandle -> node path, asserting uniqueness.
        fn phandles(&self) -> BTreeMap<u32, String> {
            let mut map = BTreeMap::new();
            for (path, props) in &self.nodes {
                if props.contains_key("phandle") {
                    let ph = self.u32(path, "phandle");
                    assert!(ph != 0 && ph != u32::MAX);
                    assert!(map.insert(ph, path.clone()).is_none(), "dup phandle {ph}");
                }
            }
            map
        }
    }

    const ISA_EXTS: [u64; 6] = [11, 12, 8, 14, 19, 20]; // zicbom zicboz sstc ssaia zicntr zicsr

    fn config(num_cpus: u32, irqchip: IrqChipConfig) -> FdtConfig {
        FdtConfig {
            num_cpus,
            isa: CpuIsa::from_kvm(0x112d, &ISA_EXTS),
            mmu_type: Some("riscv,sv57".to_string()),
            cbom_block_size: Some(64),
            cboz_block_size: Some(64),
            timebase_frequency: 10_000_000,
            memory_size: 512 << 20,
            cmdline: "console=ttyS0 root=/dev/vda rw".to_string(),
            initrd: Some((0x9f00_0000, 0x12_3456)),
            irqchip,
            virtio_mmio: (0..2)
                .map(|i| {
                    let (base, irq) = virtio_mmio_slot(i).unwrap();
                    VirtioMmioDevice {
                        base,
                        size: 0x1000,
                        irq,
                        // The second slot is a network card.
                        ethernet_alias: (i == 1).then_some(0),
                    }
                })
                .collect(),
            pci: None,
        }
    }

    const AIA: IrqChipConfig = IrqChipConfig::Aia {
        num_sources: APLIC_NUM_SOURCES,
        num_ids: 255,
    };
    const PLIC: IrqChipConfig = IrqChipConfig::Plic { num_sources: 95 };

    fn build(cfg: &FdtConfig) -> Dtb {
        let blob = create_fdt(cfg).unwrap();
        assert!(blob.len() as u64 <= FDT_MAX_SIZE);
        Dtb::parse(&blob)
    }

    /// Checks that every phandle reference points at an existing node of the right kind.
    fn check_references(dtb: &Dtb, num_cpus: u32) -> BTreeMap<u32, String> {
        let phandles = dtb.phandles();
        for (path, props) in &dtb.nodes {
            for prop in ["interrupt-parent", "msi-parent", "regmap", "cpu"] {
                if props.contains_key(prop) {
                    let target = dtb.u32(path, prop);
                    assert!(phandles.contains_key(&target), "{path}:{prop} -> {target}");
                }
            }
        }
        for cpu in 0..num_cpus {
            let core = format!("/cpus/cpu-map/cluster0/core{cpu}");
            let target = &phandles[&dtb.u32(&core, "cpu")];
            assert_eq!(*target, format!("/cpus/cpu@{cpu:x}"));
        }
        phandles
    }

    fn check_common(dtb: &Dtb, cfg: &FdtConfig) {
        assert_eq!(dtb.u32("/", "#address-cells"), 2);
        assert_eq!(dtb.u32("/", "#size-cells"), 2);
        assert_eq!(dtb.str("/", "compatible"), "riscv-virtio");
        assert_eq!(dtb.str("/", "model"), "rvvmm,virt");

        assert_eq!(dtb.str("/chosen", "bootargs"), cfg.cmdline);
        assert_eq!(dtb.str("/chosen", "stdout-path"), "/soc/serial@10000000");
        assert_eq!(dtb.str("/aliases", "serial0"), "/soc/serial@10000000");
        // Network cards have their child node and alias; other virtio devices have neither.
        for dev in &cfg.virtio_mmio {
            let child = format!("/soc/virtio_mmio@{:x}/ethernet", dev.base);
            match dev.ethernet_alias {
                Some(n) => {
                    assert_eq!(dtb.str("/aliases", &format!("ethernet{n}")), child);
                    assert_eq!(dtb.str(&child, "compatible"), "virtio,device1");
                }
                None => assert!(!dtb.has_node(&child), "{child}"),
            }
        }
        let cards = cfg
            .virtio_mmio
            .iter()
            .filter(|d| d.ethernet_alias.is_some());
        assert!(!dtb.has_prop("/aliases", &format!("ethernet{}", cards.count())));
        match cfg.initrd {
            Some((start, size)) => {
                assert_eq!(dtb.u64s("/chosen", "linux,initrd-start"), [start]);
                assert_eq!(dtb.u64s("/chosen", "linux,initrd-end"), [start + size]);
            }
            None => {
                assert!(!dtb.has_prop("/chosen", "linux,initrd-start"));
                assert!(!dtb.has_prop("/chosen", "linux,initrd-end"));
            }
        }

        assert_eq!(dtb.str("/memory@80000000", "device_type"), "memory");
        assert_eq!(
            dtb.u64s("/memory@80000000", "reg"),
            [0x8000_0000, cfg.memory_size]
        );

        assert_eq!(dtb.u32("/cpus", "#address-cells"), 1);
        assert_eq!(dtb.u32("/cpus", "#size-cells"), 0);
        assert_eq!(
            dtb.u32("/cpus", "timebase-frequency"),
            cfg.timebase_frequency
        );
        let cpu_nodes = dtb
            .nodes
            .keys()
            .filter(|p| p.starts_with("/cpus/cpu@") && p.matches('/').count() == 2)
            .count();
        assert_eq!(cpu_nodes, cfg.num_cpus as usize);
        for cpu in 0..cfg.num_cpus {
            let path = format!("/cpus/cpu@{cpu:x}");
            assert_eq!(dtb.str(&path, "device_type"), "cpu");
            assert_eq!(dtb.u32(&path, "reg"), cpu);
            assert_eq!(dtb.str(&path, "status"), "okay");
            assert_eq!(dtb.str(&path, "compatible"), "riscv");
            assert_eq!(dtb.str(&path, "riscv,isa"), cfg.isa.isa_string());
            assert_eq!(dtb.str(&path, "riscv,isa-base"), "rv64i");
            assert_eq!(
                dtb.strs(&path, "riscv,isa-extensions"),
                cfg.isa.isa_extensions()
            );
            match &cfg.mmu_type {
                Some(t) => assert_eq!(dtb.str(&path, "mmu-type"), *t),
                None => assert!(!dtb.has_prop(&path, "mmu-type")),
            }
            let intc = format!("{path}/interrupt-controller");
            assert_eq!(dtb.str(&intc, "compatible"), "riscv,cpu-intc");
            assert_eq!(dtb.u32(&intc, "#interrupt-cells"), 1);
            assert!(dtb.raw(&intc, "interrupt-controller").is_empty());
        }

        let serial = "/soc/serial@10000000";
        assert_eq!(dtb.str("/soc", "compatible"), "simple-bus");
        assert!(dtb.raw("/soc", "ranges").is_empty());
        assert_eq!(dtb.str(serial, "compatible"), "ns16550a");
        assert_eq!(dtb.u64s(serial, "reg"), [0x1000_0000, 0x100]);
        assert_eq!(dtb.u32(serial, "clock-frequency"), 3_686_400);

        let test = "/soc/test@100000";
        assert_eq!(
            dtb.strs(test, "compatible"),
            ["sifive,test1", "sifive,test0", "syscon"]
        );
        assert_eq!(dtb.u64s(test, "reg"), [0x10_0000, 0x1000]);
        let test_ph = dtb.u32(test, "phandle");
        for (node, compat, value) in [
            ("/poweroff", "syscon-poweroff", 0x5555),
            ("/reboot", "syscon-reboot", 0x7777),
        ] {
            assert_eq!(dtb.str(node, "compatible"), compat);
            assert_eq!(dtb.u32(node, "regmap"), test_ph);
            assert_eq!(dtb.u32(node, "offset"), 0);
            assert_eq!(dtb.u32(node, "value"), value);
        }

        for dev in &cfg.virtio_mmio {
            let path = format!("/soc/virtio_mmio@{:x}", dev.base);
            assert_eq!(dtb.str(&path, "compatible"), "virtio,mmio");
            assert_eq!(dtb.u64s(&path, "reg"), [dev.base, dev.size]);
        }
        check_references(dtb, cfg.num_cpus);
    }

    /// Phandles of the cpu-intc nodes, by hart.
    fn intc_phandles(dtb: &Dtb, num_cpus: u32) -> Vec<u32> {
        (0..num_cpus)
            .map(|cpu| {
                dtb.u32(
                    &format!("/cpus/cpu@{cpu:x}/interrupt-controller"),
                    "phandle",
                )
            })
            .collect()
    }

    #[test]
    fn aia_two_harts() {
        let cfg = config(2, AIA);
        let dtb = build(&cfg);
        check_common(&dtb, &cfg);
        assert_eq!(
            dtb.str("/cpus/cpu@0", "riscv,isa"),
            "rv64imafdc_zicbom_zicboz_zicntr_zicsr_ssaia_sstc"
        );
        assert_eq!(dtb.u32("/cpus/cpu@1", "riscv,cbom-block-size"), 64);
        assert_eq!(dtb.u32("/cpus/cpu@1", "riscv,cboz-block-size"), 64);

        let imsic = "/soc/interrupt-controller@28000000";
        let aplic = "/soc/interrupt-controller@d000000";
        assert_eq!(dtb.str(imsic, "compatible"), "riscv,imsics");
        assert_eq!(dtb.u64s(imsic, "reg"), [0x2800_0000, 0x2000]);
        assert_eq!(dtb.u32(imsic, "#interrupt-cells"), 0);
        assert_eq!(dtb.u32(imsic, "riscv,num-ids"), 255);
        assert!(dtb.has_prop(imsic, "msi-controller"));
        assert!(dtb.has_prop(imsic, "interrupt-controller"));
        assert!(!dtb.has_prop(imsic, "riscv,hart-index-bits"));
        let intcs = intc_phandles(&dtb, 2);
        assert_eq!(
            dtb.u32s(imsic, "interrupts-extended"),
            [intcs[0], 9, intcs[1], 9]
        );

        assert_eq!(dtb.str(aplic, "compatible"), "riscv,aplic");
        assert_eq!(dtb.u64s(aplic, "reg"), [0xd00_0000, 0x4000]);
        assert_eq!(dtb.u32(aplic, "#interrupt-cells"), 2);
        assert_eq!(dtb.u32(aplic, "#address-cells"), 0);
        assert_eq!(dtb.u32(aplic, "riscv,num-sources"), 96);
        assert_eq!(dtb.u32(aplic, "msi-parent"), dtb.u32(imsic, "phandle"));
        assert!(!dtb.has_node("/soc/plic@c000000"));

        let aplic_ph = dtb.u32(aplic, "phandle");
        assert_eq!(dtb.u32s("/soc/serial@10000000", "interrupts"), [10, 4]);
        assert_eq!(
            dtb.u32("/soc/serial@10000000", "interrupt-parent"),
            aplic_ph
        );
        assert_eq!(dtb.u32s("/soc/virtio_mmio@10001000", "interrupts"), [1, 4]);
        assert_eq!(
            dtb.str("/soc/rtc@101000", "compatible"),
            "google,goldfish-rtc"
        );
        assert_eq!(dtb.u64s("/soc/rtc@101000", "reg"), [0x10_1000, 0x1000]);
        assert_eq!(dtb.u32s("/soc/rtc@101000", "interrupts"), [11, 4]);
        assert_eq!(dtb.u32("/soc/rtc@101000", "interrupt-parent"), aplic_ph);
        assert_eq!(dtb.str("/chosen", "stdout-path"), "/soc/serial@10000000");
        assert_eq!(dtb.u32s("/soc/virtio_mmio@10002000", "interrupts"), [2, 4]);
        assert_eq!(
            dtb.u32("/soc/virtio_mmio@10002000", "interrupt-parent"),
            aplic_ph
        );
    }

    #[test]
    fn pci_host_bridge_matches_qemu_virt() {
        let mut cfg = config(2, AIA);
        assert!(!build(&cfg).has_node("/soc/pci@30000000"));
        cfg.pci = Some(PciHostConfig {
            mmio64: (0x4_0000_0000, 0x4_0000_0000),
        });
        let dtb = build(&cfg);
        let pci = "/soc/pci@30000000";
        assert_eq!(dtb.str(pci, "compatible"), "pci-host-ecam-generic");
        assert_eq!(dtb.str(pci, "device_type"), "pci");
        assert_eq!(dtb.u64s(pci, "reg"), [0x3000_0000, 0x1000_0000]);
        assert_eq!(dtb.u32s(pci, "bus-range"), [0, 0xff]);
        assert_eq!(dtb.u32(pci, "#address-cells"), 3);
        assert_eq!(dtb.u32(pci, "#size-cells"), 2);
        assert!(dtb.has_prop(pci, "dma-coherent"));
        // The same ranges as QEMU-KVM's virt machine (../shared/reference-dtb).
        assert_eq!(
            dtb.u32s(pci, "ranges"),
            [
                0x100_0000,
                0,
                0,
                0,
                0x300_0000,
                0,
                0x1_0000,
                0x200_0000,
                0,
                0x4000_0000,
                0,
                0x4000_0000,
                0,
                0x4000_0000,
                0x300_0000,
                4,
                0,
                4,
                0,
                4,
                0
            ]
        );
        let imsic = dtb.u32("/soc/interrupt-controller@28000000", "phandle");
        assert_eq!(dtb.u32(pci, "msi-parent"), imsic);
        let aplic = dtb.u32("/soc/interrupt-controller@d000000", "phandle");
        let map = dtb.u32s(pci, "interrupt-map");
        assert_eq!(map.len(), 16 * 7);
        // Slot 0 INTA -> 32, slot 1 INTA -> 33, slot 3 INTD -> 34 (QEMU's swizzle).
        assert_eq!(map[..7], [0, 0, 0, 1, aplic, 32, 4]);
        assert_eq!(map[4 * 7..5 * 7], [0x800, 0, 0, 1, aplic, 33, 4]);
        assert_eq!(map[15 * 7..], [0x1800, 0, 0, 4, aplic, 34, 4]);
        assert_eq!(dtb.u32s(pci, "interrupt-map-mask"), [0x1800, 0, 0, 7]);
    }

    #[test]
    fn plic_two_harts() {
        let mut cfg = config(2, PLIC);
        cfg.initrd = None;
        cfg.mmu_type = None;
        let dtb = build(&cfg);
        check_common(&dtb, &cfg);

        let plic = "/soc/plic@c000000";
        assert_eq!(
            dtb.strs(plic, "compatible"),
            ["sifive,plic-1.0.0", "riscv,plic0"]
        );
        assert_eq!(dtb.u64s(plic, "reg"), [0xc00_0000, 0x60_0000]);
        assert_eq!(dtb.u32(plic, "#interrupt-cells"), 1);
        assert_eq!(dtb.u32(plic, "#address-cells"), 0);
        assert_eq!(dtb.u32(plic, "riscv,ndev"), 95);
        assert!(dtb.has_prop(plic, "interrupt-controller"));
        let intcs = intc_phandles(&dtb, 2);
        assert_eq!(
            dtb.u32s(plic, "interrupts-extended"),
            [intcs[0], 9, intcs[1], 9]
        );
        assert!(!dtb.has_node("/soc/interrupt-controller@28000000"));
        assert!(!dtb.has_node("/soc/interrupt-controller@d000000"));

        let plic_ph = dtb.u32(plic, "phandle");
        assert_eq!(dtb.u32s("/soc/serial@10000000", "interrupts"), [10]);
        assert_eq!(dtb.u32("/soc/serial@10000000", "interrupt-parent"), plic_ph);
        assert_eq!(dtb.u32s("/soc/virtio_mmio@10001000", "interrupts"), [1]);
        assert_eq!(
            dtb.u32("/soc/virtio_mmio@10001000", "interrupt-parent"),
            plic_ph
        );
    }

    #[test]
    fn single_hart_no_virtio_no_cbo() {
        let mut cfg = config(1, AIA);
        cfg.isa = CpuIsa::from_kvm(0x112d, &[14]);
        cfg.virtio_mmio.clear();
        let dtb = build(&cfg);
        check_common(&dtb, &cfg);
        assert_eq!(dtb.str("/cpus/cpu@0", "riscv,isa"), "rv64imafdc_ssaia");
        // Block sizes given but zicbom/zicboz absent: not emitted.
        assert!(!dtb.has_prop("/cpus/cpu@0", "riscv,cbom-block-size"));
        assert!(!dtb.has_prop("/cpus/cpu@0", "riscv,cboz-block-size"));
        assert!(!dtb.has_node("/cpus/cpu@1"));
        let imsic = "/soc/interrupt-controller@28000000";
        assert_eq!(dtb.u64s(imsic, "reg"), [0x2800_0000, 0x1000]);
        assert_eq!(dtb.u32s(imsic, "interrupts-extended").len(), 2);
        assert!(!dtb.nodes.keys().any(|p| p.contains("virtio_mmio")));
    }

    #[test]
    fn imsic_region_rounds_up_to_power_of_two() {
        let cfg = config(5, AIA);
        let dtb = build(&cfg);
        check_common(&dtb, &cfg);
        let imsic = "/soc/interrupt-controller@28000000";
        assert_eq!(dtb.u64s(imsic, "reg"), [0x2800_0000, 0x8000]);
        let intcs = intc_phandles(&dtb, 5);
        let expected: Vec<u32> = intcs.iter().flat_map(|&p| [p, 9]).collect();
        assert_eq!(dtb.u32s(imsic, "interrupts-extended"), expected);
        assert!(dtb.has_node("/cpus/cpu@4"));
        assert!(dtb.has_node("/cpus/cpu-map/cluster0/core4"));
    }

    #[test]
    fn many_harts_fit() {
        // A realistic ISA for 64 harts stays within the 64 KiB budget.
        let exts: Vec<u64> = (7..=22).collect();
        let mut cfg = config(64, AIA);
        cfg.isa = CpuIsa::from_kvm(0x112d, &exts);
        let dtb = build(&cfg);
        check_common(&dtb, &cfg);
        assert!(dtb.has_node("/cpus/cpu@3f"));
    }

    #[test]
    fn cpu_count_bounds() {
        for n in [0, MAX_CPUS + 1, u32::MAX] {
            let err = create_fdt(&config(n, AIA)).unwrap_err();
            assert!(
                matches!(err, FdtError::InvalidCpuCount(c) if c == n),
                "{err}"
            );
        }
        // 512 harts are accepted by the bounds check, but with every ISA extension the blob
        // no longer fits.
        let mut cfg = config(MAX_CPUS, PLIC);
        cfg.isa = CpuIsa::from_kvm(0x112d, &(0..71).collect::<Vec<_>>());
        let err = create_fdt(&cfg).unwrap_err();
        match err {
            FdtError::TooLarge { size, max } => {
                assert!(size as u64 > max);
                assert_eq!(max, FDT_MAX_SIZE);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn size_limit_from_cmdline() {
        let mut cfg = config(1, PLIC);
        cfg.cmdline = "x".repeat(FDT_MAX_SIZE as usize);
        assert!(matches!(
            create_fdt(&cfg).unwrap_err(),
            FdtError::TooLarge { .. }
        ));
        cfg.cmdline = "x".repeat(1024);
        let dtb = build(&cfg);
        assert_eq!(dtb.str("/chosen", "bootargs").len(), 1024);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let mut cfg = config(2, AIA);
        cfg.cmdline = "console=ttyS0\0evil".to_string();
        assert!(matches!(create_fdt(&cfg), Err(FdtError::Writer(_))));

        let mut cfg = config(2, AIA);
        cfg.memory_size = 0;
        assert!(matches!(
            create_fdt(&cfg),
            Err(FdtError::InvalidMemorySize(0))
        ));
        cfg.memory_size = u64::MAX;
        assert!(matches!(
            create_fdt(&cfg),
            Err(FdtError::InvalidMemorySize(_))
        ));

        for initrd in [(0x9f00_0000, u64::MAX), (0x1000, 0x1000), (0xa000_0000, 1)] {
            let mut cfg = config(2, AIA);
            cfg.initrd = Some(initrd);
            assert!(
                matches!(create_fdt(&cfg), Err(FdtError::InvalidInitrd { .. })),
                "{initrd:x?}"
            );
        }

        for ids in [0, 62, 64, 100, 2048, 4095] {
            let cfg = config(
                2,
                IrqChipConfig::Aia {
                    num_sources: 96,
                    num_ids: ids,
                },
            );
            assert!(
                matches!(create_fdt(&cfg), Err(FdtError::InvalidImsicIds(_))),
                "{ids}"
            );
        }
        for ids in [63, 127, 2047] {
            let cfg = config(
                2,
                IrqChipConfig::Aia {
                    num_sources: 96,
                    num_ids: ids,
                },
            );
            assert!(create_fdt(&cfg).is_ok(), "{ids}");
        }

        for sources in [0, 1024] {
            let cfg = config(
                2,
                IrqChipConfig::Plic {
                    num_sources: sources,
                },
            );
            assert!(matches!(
                create_fdt(&cfg),
                Err(FdtError::InvalidNumSources(_))
            ));
        }
        // Too few sources for the UART's interrupt.
        let cfg = config(2, IrqChipConfig::Plic { num_sources: 8 });
        let err = create_fdt(&cfg).unwrap_err();
        assert!(
            matches!(err, FdtError::IrqOutOfRange { irq: 10, .. }),
            "{err}"
        );

        let mut cfg = config(2, PLIC);
        cfg.virtio_mmio[1].irq = 0;
        let err = create_fdt(&cfg).unwrap_err();
        assert!(err.to_string().contains("virtio_mmio@10002000"), "{err}");

        let mut cfg = config(2, PLIC);
        cfg.virtio_mmio[1].base = cfg.virtio_mmio[0].base;
        assert!(matches!(
            create_fdt(&cfg),
            Err(FdtError::DuplicateVirtioMmio(0x1000_1000))
        ));
    }

    #[test]
    fn deterministic() {
        let cfg = config(4, AIA);
        assert_eq!(create_fdt(&cfg).unwrap(), create_fdt(&cfg).unwrap());
    }
}
