//! Architecture-neutral description of the rvvmm guest machine.
//!
//! Everything here is plain data and pure functions, so it compiles and is unit-tested on any
//! host: the guest physical memory map ([`layout`]), the guest CPU's ISA as reported by KVM
//! ([`isa`]) and the flattened device tree handed to the guest ([`fdt`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod fdt;
pub mod isa;
pub mod layout;

pub use fdt::{create_fdt, FdtConfig, FdtError, IrqChipConfig, PciHostConfig, VirtioMmioDevice};
pub use isa::{isa_ext_name, mmu_type_from_satp_mode, CpuIsa};
pub use layout::{dram_end, place_boot_blobs, virtio_mmio_slot, BootLayout, LayoutError};
