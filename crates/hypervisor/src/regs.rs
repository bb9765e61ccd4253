//! ONE_REG register ids for RISC-V KVM (`KVM_REG_RISCV | size | class | index`), as in Linux's
//! `arch/riscv/include/uapi/asm/kvm.h`. Only the 64-bit layout is built: rvvmm runs rv64 guests.

/// `KVM_REG_RISCV`: architecture bits of a register id.
pub const KVM_REG_RISCV: u64 = 0x8000_0000_0000_0000;
/// `KVM_REG_SIZE_U64`: size bits for a 64-bit register.
pub const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;

/// Register classes (`KVM_REG_RISCV_*`), already shifted into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum RegClass {
    /// `struct kvm_riscv_config`.
    Config = 0x0100_0000,
    /// `struct kvm_riscv_core` (user_regs_struct + mode).
    Core = 0x0200_0000,
    /// Supervisor CSRs.
    Csr = 0x0300_0000,
    /// `struct kvm_riscv_timer`.
    Timer = 0x0400_0000,
    /// One register per ISA extension (`KVM_RISCV_ISA_EXT_*`), single sub-class.
    IsaExt = 0x0700_0000,
    /// One register per SBI extension (`KVM_RISCV_SBI_EXT_*`), single sub-class.
    SbiExt = 0x0800_0000,
}

/// Mask of the class bits in a register id.
pub const REG_CLASS_MASK: u64 = 0xff00_0000;

/// Index of `isa` in `struct kvm_riscv_config`.
pub const CONFIG_ISA: u64 = 0;
/// Index of `zicbom_block_size` in `struct kvm_riscv_config`.
pub const CONFIG_ZICBOM_BLOCK_SIZE: u64 = 1;
/// Index of `zicboz_block_size` in `struct kvm_riscv_config`.
pub const CONFIG_ZICBOZ_BLOCK_SIZE: u64 = 5;
/// Index of `satp_mode` in `struct kvm_riscv_config`.
pub const CONFIG_SATP_MODE: u64 = 6;
/// Index of `pc` in `struct kvm_riscv_core`.
pub const CORE_PC: u64 = 0;
/// Index of `a0` in `struct kvm_riscv_core`.
pub const CORE_A0: u64 = 10;
/// Index of `a1` in `struct kvm_riscv_core`.
pub const CORE_A1: u64 = 11;
/// Index of `frequency` in `struct kvm_riscv_timer`.
pub const TIMER_FREQUENCY: u64 = 0;
/// `KVM_RISCV_ISA_EXT_SSAIA`: the guest may use AIA CSRs.
pub const ISA_EXT_SSAIA: u64 = 14;
/// ISA_EXT indices probed for the guest's extensions (KVM defines about 75 today).
pub const ISA_EXT_PROBE_LIMIT: u64 = 128;
/// `KVM_RISCV_SBI_EXT_V01`: legacy SBI v0.1 calls.
pub const SBI_EXT_V01: u64 = 0;
/// `KVM_RISCV_SBI_EXT_DBCN`: the SBI debug console extension.
pub const SBI_EXT_DBCN: u64 = 9;

/// The id of a 64-bit register of `class` at `index`.
pub const fn reg_id(class: RegClass, index: u64) -> u64 {
    KVM_REG_RISCV | KVM_REG_SIZE_U64 | class as u64 | index
}

/// If `id` is a 64-bit register of `class`, its index.
pub fn reg_index(id: u64, class: RegClass) -> Option<u64> {
    let prefix = KVM_REG_RISCV | KVM_REG_SIZE_U64 | class as u64;
    if id & !0xff_ffff == prefix {
        Some(id & 0xff_ffff)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_kernel_uapi() {
        // Values as QEMU/kvmtool compute them for rv64.
        assert_eq!(reg_id(RegClass::Core, CORE_PC), 0x8030_0000_0200_0000);
        assert_eq!(
            reg_id(RegClass::Config, CONFIG_SATP_MODE),
            0x8030_0000_0100_0006
        );
        assert_eq!(
            reg_id(RegClass::Timer, TIMER_FREQUENCY),
            0x8030_0000_0400_0000
        );
        assert_eq!(
            reg_id(RegClass::SbiExt, SBI_EXT_DBCN),
            0x8030_0000_0800_0009
        );
    }

    #[test]
    fn index_roundtrip_and_class_filter() {
        let id = reg_id(RegClass::IsaExt, 14);
        assert_eq!(reg_index(id, RegClass::IsaExt), Some(14));
        assert_eq!(reg_index(id, RegClass::SbiExt), None);
        // A 32-bit register id of the same class is not a match.
        let id32 = KVM_REG_RISCV | 0x0020_0000_0000_0000 | RegClass::IsaExt as u64 | 3;
        assert_eq!(reg_index(id32, RegClass::IsaExt), None);
    }
}
