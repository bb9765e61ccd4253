//! KVM ioctls for riscv64: VM, guest memory slots, vcpus, ONE_REG access, the AIA device and irqfds.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_RISCV_AIA, kvm_interrupt,
    kvm_run, kvm_userspace_memory_region, KVM_DEV_RISCV_AIA_ADDR_APLIC,
    KVM_DEV_RISCV_AIA_CONFIG_HART_BITS, KVM_DEV_RISCV_AIA_CONFIG_IDS,
    KVM_DEV_RISCV_AIA_CONFIG_SRCS, KVM_DEV_RISCV_AIA_CTRL_INIT, KVM_DEV_RISCV_AIA_GRP_ADDR,
    KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_GRP_CTRL, KVM_EXIT_RISCV_SBI,
    KVM_INTERRUPT_SET, KVM_INTERRUPT_UNSET,
};
use kvm_bindings::{
    kvm_irq_routing_entry, kvm_irq_routing_irqchip, kvm_irq_routing_msi, KvmIrqRouting,
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::{Cap, DeviceFd, IoEventAddress, Kvm, NoDatamatch, VcpuExit, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::cpu::CpuInfo;
use crate::regs::{self, reg_id, RegClass};
use crate::{Error, IrqRoute, Result};

vmm_sys_util::ioctl_io_nr!(KVM_GET_STATS_FD, kvm_bindings::KVMIO, 0xce);

fn ioctl_err(what: impl Into<String>) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    let what = what.into();
    move |e| Error::Ioctl {
        what,
        source: std::io::Error::from_raw_os_error(e.errno()),
    }
}

/// A KVM virtual machine.
pub struct Vm {
    _kvm: Kvm,
    fd: VmFd,
}

impl Vm {
    /// Opens `/dev/kvm` and creates an empty VM.
    pub fn new() -> Result<Vm> {
        let kvm =
            Kvm::new().map_err(|e| Error::OpenKvm(std::io::Error::from_raw_os_error(e.errno())))?;
        let fd = kvm.create_vm().map_err(ioctl_err("KVM_CREATE_VM"))?;
        Ok(Vm { _kvm: kvm, fd })
    }

    /// Maps `size` bytes of host memory at `host_addr` into the guest at `guest_addr` as memory slot `slot`.
    ///
    /// # Safety
    /// `host_addr..host_addr+size` must be a mapping that stays valid for the VM's lifetime.
    pub unsafe fn add_memory(
        &self,
        slot: u32,
        guest_addr: u64,
        size: u64,
        host_addr: u64,
    ) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: guest_addr,
            memory_size: size,
            userspace_addr: host_addr,
        };
        // SAFETY: the caller guarantees the host mapping outlives the VM.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(ioctl_err("KVM_SET_USER_MEMORY_REGION"))
    }

    /// Removes memory slot `slot` (made by [`Vm::add_memory`]) from the guest.
    pub fn remove_memory(&self, slot: u32) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: 0,
            userspace_addr: 0,
        };
        // SAFETY: a zero-sized region deletes the slot; no host memory is referenced.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(ioctl_err(format!(
            "KVM_SET_USER_MEMORY_REGION (delete slot {slot})"
        )))
    }

    /// Replaces the VM's interrupt routing table with `routes`.
    pub fn set_irq_routing(&self, routes: &[IrqRoute]) -> Result<()> {
        let mut table = KvmIrqRouting::new(0).map_err(|e| Error::Ioctl {
            what: format!("KVM_SET_GSI_ROUTING table: {e:?}"),
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        for r in routes {
            let mut entry = kvm_irq_routing_entry::default();
            match *r {
                IrqRoute::Irqchip { gsi, pin } => {
                    entry.gsi = gsi;
                    entry.type_ = KVM_IRQ_ROUTING_IRQCHIP;
                    entry.u.irqchip = kvm_irq_routing_irqchip { irqchip: 0, pin };
                }
                IrqRoute::Msi { gsi, address, data } => {
                    entry.gsi = gsi;
                    entry.type_ = KVM_IRQ_ROUTING_MSI;
                    entry.u.msi = kvm_irq_routing_msi {
                        address_lo: address as u32,
                        address_hi: (address >> 32) as u32,
                        data,
                        ..Default::default()
                    };
                }
            }
            table.push(entry).map_err(|e| Error::Ioctl {
                what: format!("KVM_SET_GSI_ROUTING table: {e:?}"),
                source: std::io::Error::from_raw_os_error(libc::E2BIG),
            })?;
        }
        self.fd
            .set_gsi_routing(&table)
            .map_err(ioctl_err("KVM_SET_GSI_ROUTING"))
    }

    /// Creates vcpu `id`.
    pub fn create_vcpu(&self, id: u64) -> Result<Vcpu> {
        let fd = self
            .fd
            .create_vcpu(id)
            .map_err(ioctl_err(format!("KVM_CREATE_VCPU {id}")))?;
        Ok(Vcpu { fd, id })
    }

    /// Creates the in-kernel AIA device (APLIC + one IMSIC per hart). Call [`Aia::init`] after all vcpus
    /// exist.
    pub fn create_aia(&self) -> Result<Aia> {
        let mut dev = kvm_create_device {
            type_: kvm_device_type_KVM_DEV_TYPE_RISCV_AIA,
            fd: 0,
            flags: 0,
        };
        let fd = self
            .fd
            .create_device(&mut dev)
            .map_err(|e| Error::NoAia(std::io::Error::from_raw_os_error(e.errno())))?;
        Ok(Aia { fd })
    }

    /// Makes a write to `evt` raise interrupt `gsi` (an APLIC source by KVM's default routing, or whatever
    /// [`Vm::set_irq_routing`] made it).
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<()> {
        self.fd
            .register_irqfd(evt, gsi)
            .map_err(ioctl_err(format!("KVM_IRQFD gsi {gsi}")))
    }

    /// Makes a 4-byte guest write of `value` to MMIO address `addr` signal `evt` inside KVM, without an
    /// exit to userspace (ioeventfd).
    pub fn register_ioeventfd(&self, evt: &EventFd, addr: u64, value: u32) -> Result<()> {
        self.fd
            .register_ioevent(evt, &IoEventAddress::Mmio(addr), value)
            .map_err(ioctl_err(format!("KVM_IOEVENTFD at {addr:#x}")))
    }

    /// Makes a guest write of any width to MMIO address `addr` signal `evt` inside KVM (an ioeventfd
    /// without data match: virtio-pci's notification addresses, one per queue).
    pub fn register_ioeventfd_any(&self, evt: &EventFd, addr: u64) -> Result<()> {
        self.fd
            .register_ioevent(evt, &IoEventAddress::Mmio(addr), NoDatamatch)
            .map_err(ioctl_err(format!("KVM_IOEVENTFD at {addr:#x}")))
    }

    /// Undoes [`Vm::register_ioeventfd_any`].
    pub fn unregister_ioeventfd_any(&self, evt: &EventFd, addr: u64) -> Result<()> {
        self.fd
            .unregister_ioevent(evt, &IoEventAddress::Mmio(addr), NoDatamatch)
            .map_err(ioctl_err(format!("KVM_IOEVENTFD (deassign) at {addr:#x}")))
    }

    /// The VM's coalesced MMIO ring, mapped through `vcpu`'s descriptor (the page is the VM's, whichever
    /// vcpu maps it); `None` when this KVM has no coalesced MMIO.
    pub fn coalesced_ring(&self, vcpu: &Vcpu) -> Result<Option<CoalescedRing>> {
        if !self._kvm.check_extension(Cap::CoalescedMmio) {
            return Ok(None);
        }
        // SAFETY: sysconf has no memory effects.
        let page_size = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as usize,
            _ => 4096,
        };
        let offset =
            kvm_bindings::KVM_COALESCED_MMIO_PAGE_OFFSET as libc::off_t * page_size as libc::off_t;
        // SAFETY: a new shared mapping of one page of the vcpu fd at the offset KVM defines for the ring;
        // the result is checked, and the mapping is owned (and unmapped) by the returned CoalescedRing.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu.fd.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::Ioctl {
                what: "mmap of the coalesced MMIO ring".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Some(CoalescedRing {
            addr: addr as *mut u8,
            page_size,
            reader: std::sync::Mutex::new(()),
        }))
    }

    /// Makes guest writes inside `addr..addr+size` go to the coalesced MMIO ring instead of exiting.
    pub fn register_coalesced_mmio(&self, addr: u64, size: u32) -> Result<()> {
        self.fd
            .register_coalesced_mmio(IoEventAddress::Mmio(addr), size)
            .map_err(ioctl_err(format!(
                "KVM_REGISTER_COALESCED_MMIO at {addr:#x}"
            )))
    }

    /// Undoes [`Vm::register_coalesced_mmio`].
    pub fn unregister_coalesced_mmio(&self, addr: u64, size: u32) -> Result<()> {
        self.fd
            .unregister_coalesced_mmio(IoEventAddress::Mmio(addr), size)
            .map_err(ioctl_err(format!(
                "KVM_UNREGISTER_COALESCED_MMIO at {addr:#x}"
            )))
    }

    /// Sets the level of wired interrupt `irq`.
    pub fn set_irq_line(&self, irq: u32, level: bool) -> Result<()> {
        self.fd
            .set_irq_line(irq, level)
            .map_err(ioctl_err(format!("KVM_IRQ_LINE {irq}")))
    }
}

/// The VM's coalesced MMIO ring page (see [`crate::coalesced`]), shared by every thread that takes
/// writes from it; one reader at a time.
pub struct CoalescedRing {
    addr: *mut u8,
    page_size: usize,
    reader: std::sync::Mutex<()>,
}

// SAFETY: the page is only read through `drain`, which serialises readers with `reader`; the kernel
// side is designed for a concurrent userspace reader.
unsafe impl Send for CoalescedRing {}
// SAFETY: as above.
unsafe impl Sync for CoalescedRing {}

impl CoalescedRing {
    /// Hands every write KVM has held, oldest first, to `f`; returns how many.
    pub fn drain(&self, f: &mut dyn FnMut(crate::coalesced::HeldWrite)) -> usize {
        let _one_reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `addr` is KVM's ring page of `page_size` bytes (page aligned), mapped for our lifetime;
        // `reader` keeps other readers out.
        unsafe { crate::coalesced::drain_ring(self.addr, self.page_size, f) }
    }
}

impl Drop for CoalescedRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Vm::coalesced_ring`, unmapped once.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.page_size) };
    }
}

/// The in-kernel AIA irqchip.
pub struct Aia {
    fd: DeviceFd,
}

impl Aia {
    fn attr(group: u32, attr: u64, value: *mut u64) -> kvm_device_attr {
        kvm_device_attr {
            flags: 0,
            group,
            attr,
            addr: value as u64,
        }
    }

    fn get_u32(&self, group: u32, attr: u64, what: &str) -> Result<u32> {
        let mut value: u64 = 0;
        let mut a = Self::attr(group, attr, &mut value);
        // The kernel writes a u32 for CONFIG attributes; `value` is zeroed and large enough.
        // SAFETY: `a.addr` points at `value`, which lives across the call and has room for the result.
        unsafe { self.fd.get_device_attr(&mut a) }.map_err(ioctl_err(what.to_string()))?;
        Ok(value as u32)
    }

    fn set_u32(&self, group: u32, attr: u64, value: u32, what: &str) -> Result<()> {
        let mut v: u64 = u64::from(value);
        // CONFIG attributes are u32: on little-endian riscv64 the low half of `v` is that u32.
        let a = Self::attr(group, attr, &mut v);
        self.fd
            .set_device_attr(&a)
            .map_err(ioctl_err(what.to_string()))
    }

    fn set_u64(&self, group: u32, attr: u64, value: u64, what: &str) -> Result<()> {
        let mut v = value;
        let a = Self::attr(group, attr, &mut v);
        self.fd
            .set_device_attr(&a)
            .map_err(ioctl_err(what.to_string()))
    }

    /// Number of MSI identities each IMSIC supports (CONFIG `ids`).
    pub fn num_ids(&self) -> Result<u32> {
        self.get_u32(
            KVM_DEV_RISCV_AIA_GRP_CONFIG,
            KVM_DEV_RISCV_AIA_CONFIG_IDS.into(),
            "AIA get ids",
        )
    }

    /// Configures and initialises the AIA: `hart_bits` hart index bits in IMSIC addresses (what the guest
    /// derives from its device tree), `num_sources` wired APLIC sources, the APLIC at `aplic_addr` and hart
    /// i's IMSIC at `imsic_addr(i)`.
    pub fn init(
        &self,
        num_harts: u32,
        hart_bits: u32,
        num_sources: u32,
        aplic_addr: u64,
        imsic_addr: impl Fn(u32) -> u64,
    ) -> Result<()> {
        self.set_u32(
            KVM_DEV_RISCV_AIA_GRP_CONFIG,
            KVM_DEV_RISCV_AIA_CONFIG_SRCS.into(),
            num_sources,
            "AIA set srcs",
        )?;
        self.set_u32(
            KVM_DEV_RISCV_AIA_GRP_CONFIG,
            KVM_DEV_RISCV_AIA_CONFIG_HART_BITS.into(),
            hart_bits,
            "AIA set hart_bits",
        )?;
        self.set_u64(
            KVM_DEV_RISCV_AIA_GRP_ADDR,
            KVM_DEV_RISCV_AIA_ADDR_APLIC.into(),
            aplic_addr,
            "AIA set APLIC address",
        )?;
        for hart in 0..num_harts {
            // KVM_DEV_RISCV_AIA_ADDR_IMSIC(hart) = 1 + hart.
            self.set_u64(
                KVM_DEV_RISCV_AIA_GRP_ADDR,
                1 + u64::from(hart),
                imsic_addr(hart),
                &format!("AIA set IMSIC address of hart {hart}"),
            )?;
        }
        self.set_u64(
            KVM_DEV_RISCV_AIA_GRP_CTRL,
            KVM_DEV_RISCV_AIA_CTRL_INIT.into(),
            0,
            "AIA init",
        )
    }

    /// The raw device fd (kept open for the VM's lifetime).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// An SBI call the guest made that KVM forwarded to userspace. Fill `ret` before the next run.
pub struct SbiCall<'a> {
    /// SBI extension id (a7).
    pub ext: u64,
    /// SBI function id (a6).
    pub fid: u64,
    /// Arguments a0..a5.
    pub args: [u64; 6],
    /// Return values (error, value) handed back in a0, a1.
    pub ret: &'a mut [u64; 2],
}

/// Why `KVM_RUN` returned.
pub enum Exit<'a> {
    /// The guest read from an address with no RAM or in-kernel device; fill `data`.
    MmioRead(u64, &'a mut [u8]),
    /// The guest wrote `data` to an address with no RAM or in-kernel device.
    MmioWrite(u64, &'a [u8]),
    /// An SBI call for userspace.
    Sbi(SbiCall<'a>),
    /// A system event (SBI SRST): `KVM_SYSTEM_EVENT_*` type and its data words.
    SystemEvent(u32, Vec<u64>),
    /// The run was interrupted by a signal.
    Interrupted,
    /// Anything else, described.
    Other(String),
}

/// `KVM_INTERRUPT`: _IOW(KVMIO, 0x86, struct kvm_interrupt).
const KVM_INTERRUPT_IOCTL: libc::c_ulong = 0x4004_ae86;

/// Raises or lowers a vcpu's supervisor external interrupt (`KVM_INTERRUPT`) from any thread: on RISC-V the
/// ioctl is asynchronous (it does not wait for the vcpu to leave KVM_RUN) and kicks the vcpu.
pub struct VcpuInterrupt {
    fd: OwnedFd,
    id: u64,
}

impl VcpuInterrupt {
    /// Sets the level of the vcpu's external interrupt.
    pub fn set(&self, level: bool) -> Result<()> {
        let irq = kvm_interrupt {
            irq: if level {
                KVM_INTERRUPT_SET
            } else {
                KVM_INTERRUPT_UNSET
            } as u32,
        };
        // SAFETY: KVM_INTERRUPT reads a `struct kvm_interrupt` that lives across the call; the fd is a vcpu fd.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                KVM_INTERRUPT_IOCTL as _,
                &irq as *const kvm_interrupt,
            )
        };
        if r < 0 {
            return Err(Error::Ioctl {
                what: format!("KVM_INTERRUPT on vcpu {}", self.id),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// A KVM vcpu.
pub struct Vcpu {
    fd: VcpuFd,
    id: u64,
}

impl Vcpu {
    /// The vcpu's index (its hart id).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Reads a 64-bit ONE_REG register.
    pub fn get_reg(&self, id: u64) -> Result<u64> {
        let mut buf = [0u8; 8];
        self.fd
            .get_one_reg(id, &mut buf)
            .map_err(ioctl_err(format!(
                "KVM_GET_ONE_REG {id:#x} on vcpu {}",
                self.id
            )))?;
        Ok(u64::from_le_bytes(buf))
    }

    /// Writes a 64-bit ONE_REG register.
    pub fn set_reg(&self, id: u64, value: u64) -> Result<()> {
        self.fd
            .set_one_reg(id, &value.to_le_bytes())
            .map(|_| ())
            .map_err(ioctl_err(format!(
                "KVM_SET_ONE_REG {id:#x} on vcpu {}",
                self.id
            )))
    }

    /// Sets the boot registers: `pc`, `a0` (hart id) and `a1` (FDT address).
    pub fn set_boot_regs(&self, pc: u64, a0: u64, a1: u64) -> Result<()> {
        self.set_reg(reg_id(RegClass::Core, regs::CORE_PC), pc)?;
        self.set_reg(reg_id(RegClass::Core, regs::CORE_A0), a0)?;
        self.set_reg(reg_id(RegClass::Core, regs::CORE_A1), a1)
    }

    /// A handle that raises this vcpu's external interrupt from other threads (userspace irqchip).
    pub fn interrupt_handle(&self) -> Result<VcpuInterrupt> {
        // SAFETY: dup of a descriptor we own; the result is checked and owned by the handle.
        let fd = unsafe { libc::dup(self.fd.as_raw_fd()) };
        if fd < 0 {
            return Err(Error::Ioctl {
                what: format!("dup of vcpu {} fd", self.id),
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(VcpuInterrupt { fd, id: self.id })
    }

    /// KVM's statistics descriptor for this vcpu (`KVM_GET_STATS_FD`): read it with
    /// [`crate::stats::parse_stats`] after reading from offset 0.
    pub fn stats_file(&self) -> Result<std::fs::File> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new descriptor or -1; the result is
        // checked and owned by the File.
        let fd = unsafe { vmm_sys_util::ioctl::ioctl(&self.fd, KVM_GET_STATS_FD()) };
        if fd < 0 {
            return Err(Error::Ioctl {
                what: format!("KVM_GET_STATS_FD on vcpu {}", self.id),
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// Enables or disables ISA extension `index` (`KVM_RISCV_ISA_EXT_*`) for the guest, before the first run.
    pub fn set_isa_ext(&self, index: u64, enabled: bool) -> Result<()> {
        self.set_reg(reg_id(RegClass::IsaExt, index), u64::from(enabled))
    }

    /// Enables SBI extension `ext` (`KVM_RISCV_SBI_EXT_*`) so its calls reach userspace or KVM.
    pub fn enable_sbi_ext(&self, ext: u64) -> Result<()> {
        self.set_reg(reg_id(RegClass::SbiExt, ext), 1)
    }

    /// Reads what KVM tells about the guest CPU: ISA, MMU, timebase, multi-letter extensions.
    ///
    /// ISA extensions are probed register by register rather than through `KVM_GET_REG_LIST`, whose
    /// wrapper caps the list at 200 entries (hosts with the V extension have more registers than that).
    pub fn cpu_info(&self) -> Result<CpuInfo> {
        let opt = |index| self.get_reg(reg_id(RegClass::Config, index)).ok();
        let isa_extensions = (0..regs::ISA_EXT_PROBE_LIMIT)
            .filter(|&index| self.get_reg(reg_id(RegClass::IsaExt, index)).ok() == Some(1))
            .collect();
        Ok(CpuInfo {
            isa: self.get_reg(reg_id(RegClass::Config, regs::CONFIG_ISA))?,
            satp_mode: opt(regs::CONFIG_SATP_MODE).unwrap_or(0),
            zicbom_block_size: opt(regs::CONFIG_ZICBOM_BLOCK_SIZE),
            zicboz_block_size: opt(regs::CONFIG_ZICBOZ_BLOCK_SIZE),
            timebase_frequency: self.get_reg(reg_id(RegClass::Timer, regs::TIMER_FREQUENCY))?,
            isa_extensions,
        })
    }

    /// Runs the vcpu until the next exit that needs userspace.
    pub fn run(&mut self) -> Result<Exit<'_>> {
        let run_ptr: *mut kvm_run = self.fd.get_kvm_run();
        match self.fd.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => Ok(Exit::MmioRead(addr, data)),
            Ok(VcpuExit::MmioWrite(addr, data)) => Ok(Exit::MmioWrite(addr, data)),
            Ok(VcpuExit::SystemEvent(kind, data)) => Ok(Exit::SystemEvent(kind, data.to_vec())),
            Ok(VcpuExit::Intr) => Ok(Exit::Interrupted),
            Ok(VcpuExit::Unsupported(KVM_EXIT_RISCV_SBI)) => {
                // SAFETY: `run_ptr` is this vcpu's kvm_run mapping, valid while `self.fd` lives; the exit
                // value above holds no reference into it, and the exit reason says `riscv_sbi` is the
                // active member of the union.
                let sbi = unsafe { &mut (*run_ptr).__bindgen_anon_1.riscv_sbi };
                let args = sbi.args;
                // SAFETY: `ret` is two `unsigned long`s (u64 on riscv64) inside the mapping.
                let ret = unsafe { &mut *(sbi.ret.as_mut_ptr() as *mut [u64; 2]) };
                Ok(Exit::Sbi(SbiCall {
                    ext: sbi.extension_id,
                    fid: sbi.function_id,
                    args,
                    ret,
                }))
            }
            Ok(other) => Ok(Exit::Other(format!("{other:?}"))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                Ok(Exit::Interrupted)
            }
            Err(e) => Err(ioctl_err(format!("KVM_RUN on vcpu {}", self.id))(e)),
        }
    }
}
