//! What KVM tells about the guest CPU, read once from vcpu 0 and used to build the device tree.

/// The guest CPU as KVM presents it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// CONFIG `isa`: MISA single-letter bits (bit n = letter 'a' + n).
    pub isa: u64,
    /// CONFIG `satp_mode`: the largest satp MODE the guest may use (8 sv39, 9 sv48, 10 sv57).
    pub satp_mode: u64,
    /// CONFIG `zicbom_block_size`, when KVM has the register.
    pub zicbom_block_size: Option<u64>,
    /// CONFIG `zicboz_block_size`, when KVM has the register.
    pub zicboz_block_size: Option<u64>,
    /// TIMER `frequency`: the guest's timebase in Hz.
    pub timebase_frequency: u64,
    /// Indices (`KVM_RISCV_ISA_EXT_*`) of the ISA extensions whose ISA_EXT register reads 1.
    pub isa_extensions: Vec<u64>,
}
