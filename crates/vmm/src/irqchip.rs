//! The guest's interrupt controller (riscv64 only): KVM's in-kernel AIA (APLIC + one IMSIC per hart) when
//! the host has it, else rvvmm's userspace PLIC raising each hart's external interrupt with KVM_INTERRUPT.
//! Devices get an [`IrqLine`] per wired source either way.

use std::sync::{Arc, Mutex};

use arch::layout::{
    imsic_addr, imsic_hart_index_bits, APLIC_BASE, APLIC_NUM_SOURCES, PLIC_BASE, PLIC_SIZE,
};
use arch::IrqChipConfig;
use devices::interrupt::IrqLine;
use devices::plic::{Plic, PlicContextOutput, PlicLine};
use devices::SharedMmioDevice;
use hypervisor::regs::ISA_EXT_SSAIA;
use hypervisor::{Aia, Vcpu, VcpuInterrupt, Vm};

use crate::config::IrqchipMode;
use crate::Error;

/// Wired sources of the PLIC: 1..=95, as QEMU virt's `riscv,ndev`.
pub const PLIC_NUM_SOURCES: u32 = 95;

/// A wired interrupt into the in-kernel APLIC, driven with `KVM_IRQ_LINE`.
struct AplicLine {
    vm: Arc<Vm>,
    source: u32,
}

impl IrqLine for AplicLine {
    fn set_level(&self, level: bool) -> std::io::Result<()> {
        self.vm
            .set_irq_line(self.source, level)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// A PLIC context's output: the S-mode external interrupt of one vcpu.
struct VcpuExternalInterrupt(VcpuInterrupt);

impl PlicContextOutput for VcpuExternalInterrupt {
    fn set_external_interrupt(&self, level: bool) {
        if let Err(e) = self.0.set(level) {
            log::error!("plic: {e}");
        }
    }
}

/// The interrupt controller in use.
pub enum GuestIrqchip {
    /// In-kernel AIA.
    Aia {
        /// The KVM device (kept open for the VM's lifetime).
        _aia: Aia,
        /// MSI identities per IMSIC.
        num_ids: u32,
        /// For KVM_IRQ_LINE.
        vm: Arc<Vm>,
    },
    /// Userspace PLIC.
    Plic(Arc<Mutex<Plic>>),
}

impl GuestIrqchip {
    /// Creates the irqchip `mode` asks for, after all `vcpus` exist and before the first run.
    pub fn create(mode: IrqchipMode, vm: &Arc<Vm>, vcpus: &[Vcpu]) -> Result<GuestIrqchip, Error> {
        let aia = match mode {
            IrqchipMode::Plic => None,
            IrqchipMode::Aia => Some(vm.create_aia().map_err(|e| {
                Error::Irqchip(format!(
                    "--irqchip aia: {e}; use --irqchip plic (or auto) on this host"
                ))
            })?),
            IrqchipMode::Auto => match vm.create_aia() {
                Ok(aia) => Some(aia),
                Err(e) => {
                    log::info!("no in-kernel AIA ({e}); using the userspace PLIC");
                    None
                }
            },
        };
        let num_vcpus = vcpus.len() as u32;
        if let Some(aia) = aia {
            let num_ids = aia.num_ids()?;
            aia.init(
                num_vcpus,
                imsic_hart_index_bits(num_vcpus),
                APLIC_NUM_SOURCES,
                APLIC_BASE,
                imsic_addr,
            )?;
            return Ok(GuestIrqchip::Aia {
                _aia: aia,
                num_ids,
                vm: vm.clone(),
            });
        }
        let mut outputs: Vec<Arc<dyn PlicContextOutput>> = Vec::new();
        for v in vcpus {
            // Without an IMSIC the guest must not try AIA CSRs: hide Ssaia (it may be absent anyway).
            if let Err(e) = v.set_isa_ext(ISA_EXT_SSAIA, false) {
                log::debug!("vcpu{}: cannot disable Ssaia: {e}", v.id());
            }
            outputs.push(Arc::new(VcpuExternalInterrupt(v.interrupt_handle()?)));
        }
        Ok(GuestIrqchip::Plic(Arc::new(Mutex::new(Plic::new(
            PLIC_NUM_SOURCES,
            outputs,
        )))))
    }

    /// The line of wired source `source` (UART0 is 10, virtio slot i is 1+i).
    pub fn line(&self, source: u32) -> Arc<dyn IrqLine> {
        match self {
            GuestIrqchip::Aia { vm, .. } => Arc::new(AplicLine {
                vm: vm.clone(),
                source,
            }),
            GuestIrqchip::Plic(plic) => Arc::new(PlicLine::new(plic.clone(), source)),
        }
    }

    /// How the device tree describes it.
    pub fn fdt_config(&self) -> IrqChipConfig {
        match self {
            GuestIrqchip::Aia { num_ids, .. } => IrqChipConfig::Aia {
                num_sources: APLIC_NUM_SOURCES,
                num_ids: *num_ids,
            },
            GuestIrqchip::Plic(_) => IrqChipConfig::Plic {
                num_sources: PLIC_NUM_SOURCES,
            },
        }
    }

    /// The MMIO window rvvmm must serve, if the irqchip lives in userspace.
    pub fn mmio_device(&self) -> Option<(u64, u64, SharedMmioDevice)> {
        match self {
            GuestIrqchip::Aia { .. } => None,
            GuestIrqchip::Plic(plic) => {
                Some((PLIC_BASE, PLIC_SIZE, plic.clone() as SharedMmioDevice))
            }
        }
    }

    /// Whether this is the in-kernel AIA (which can take MSIs).
    pub fn is_aia(&self) -> bool {
        matches!(self, GuestIrqchip::Aia { .. })
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            GuestIrqchip::Aia { .. } => "AIA (in-kernel APLIC + IMSIC)",
            GuestIrqchip::Plic(_) => "PLIC (userspace)",
        }
    }
}
