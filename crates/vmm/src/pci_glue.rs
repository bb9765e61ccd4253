//! What PCI devices need from KVM (riscv64 only): memory slots for the BARs of VFIO passthrough devices
//! mapped straight into the guest, ioeventfds for virtio-pci's notification addresses, and the interrupt
//! routing table in which each MSI-X vector's GSI is routed to the message the guest programmed (a write
//! to an IMSIC interrupt file), next to the identity routes of the APLIC's wired sources that KVM sets up
//! by default.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hypervisor::{IrqRoute, Vm};
use pci::vfio::PassthroughVm;
use pci::MsiRouting;
use virtio::pci::VirtioPciVm;
use vmm_sys_util::eventfd::EventFd;

/// First GSI used for MSI-X vectors (above every wired source of the APLIC).
pub const MSI_GSI_BASE: u32 = 128;
/// Memory slot numbers below this one belong to guest RAM.
const FIRST_BAR_SLOT: u32 = 16;

fn to_io(e: hypervisor::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// KVM services for PCI devices (passthrough and virtio-pci).
pub struct KvmPci {
    vm: Arc<Vm>,
    routes: Mutex<BTreeMap<u32, IrqRoute>>,
    slots: Mutex<SlotPool>,
}

#[derive(Default)]
struct SlotPool {
    next: u32,
    free: Vec<u32>,
}

impl KvmPci {
    /// Takes over `vm`'s routing table, keeping wired sources `0..num_wired` routed to the APLIC.
    pub fn new(vm: Arc<Vm>, num_wired: u32) -> Result<KvmPci, hypervisor::Error> {
        let routes: BTreeMap<u32, IrqRoute> = (0..num_wired)
            .map(|pin| (pin, IrqRoute::Irqchip { gsi: pin, pin }))
            .collect();
        let me = KvmPci {
            vm,
            routes: Mutex::new(routes),
            slots: Mutex::new(SlotPool {
                next: FIRST_BAR_SLOT,
                free: Vec::new(),
            }),
        };
        me.commit(&me.routes.lock().unwrap_or_else(|p| p.into_inner()))?;
        Ok(me)
    }

    fn commit(&self, routes: &BTreeMap<u32, IrqRoute>) -> Result<(), hypervisor::Error> {
        let table: Vec<IrqRoute> = routes.values().copied().collect();
        self.vm.set_irq_routing(&table)
    }
}

impl PassthroughVm for KvmPci {
    unsafe fn map_memory(
        &self,
        guest_addr: u64,
        size: u64,
        host_addr: u64,
    ) -> std::io::Result<u32> {
        let slot = {
            let mut pool = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match pool.free.pop() {
                Some(s) => s,
                None => {
                    pool.next += 1;
                    pool.next - 1
                }
            }
        };
        // SAFETY: the caller keeps the host mapping alive until unmap_memory(slot).
        let result = unsafe { self.vm.add_memory(slot, guest_addr, size, host_addr) };
        match result {
            Ok(()) => Ok(slot),
            Err(e) => {
                self.slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .free
                    .push(slot);
                Err(to_io(e))
            }
        }
    }

    fn unmap_memory(&self, handle: u32) -> std::io::Result<()> {
        self.vm.remove_memory(handle).map_err(to_io)?;
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .free
            .push(handle);
        Ok(())
    }
}

impl MsiRouting for KvmPci {
    fn set_msi_route(&self, gsi: u32, message: Option<(u64, u32)>) -> std::io::Result<()> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let before = routes.get(&gsi).copied();
        match message {
            Some((address, data)) => routes.insert(gsi, IrqRoute::Msi { gsi, address, data }),
            None => routes.remove(&gsi),
        };
        if routes.get(&gsi).copied() == before {
            return Ok(());
        }
        devices::log_limited!(log::Level::Debug, "MSI route gsi {gsi}: {message:x?}");
        self.commit(&routes).map_err(to_io)
    }

    fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> std::io::Result<()> {
        self.vm.register_irqfd(evt, gsi).map_err(to_io)
    }
}

impl VirtioPciVm for KvmPci {
    fn register_ioeventfd(&self, evt: &EventFd, addr: u64) -> std::io::Result<()> {
        self.vm.register_ioeventfd_any(evt, addr).map_err(to_io)
    }

    fn unregister_ioeventfd(&self, evt: &EventFd, addr: u64) -> std::io::Result<()> {
        self.vm.unregister_ioeventfd_any(evt, addr).map_err(to_io)
    }
}
