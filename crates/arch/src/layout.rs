//! Guest physical memory map, compatible with QEMU's riscv `virt` machine, and the placement of
//! the boot blobs (FDT, initrd) in guest RAM.

use std::fmt;

use thiserror::Error;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Base of the `sifive,test0` device (poweroff/reboot for bare-metal guests).
pub const SIFIVE_TEST_BASE: u64 = 0x10_0000;
/// Size of the `sifive,test0` device.
pub const SIFIVE_TEST_SIZE: u64 = 0x1000;

/// Base of the goldfish RTC.
pub const RTC_BASE: u64 = 0x10_1000;
/// Size of the goldfish RTC.
pub const RTC_SIZE: u64 = 0x1000;
/// Interrupt source of the goldfish RTC.
pub const RTC_IRQ: u32 = 11;

/// Base of the PCIe I/O port window.
pub const PCIE_PIO_BASE: u64 = 0x300_0000;
/// Size of the PCIe I/O port window.
pub const PCIE_PIO_SIZE: u64 = 0x1_0000;

/// Base of the (userspace-emulated) PLIC, used when the host has no AIA.
pub const PLIC_BASE: u64 = 0xc00_0000;
/// Size of the PLIC region.
pub const PLIC_SIZE: u64 = 0x60_0000;

/// Base of the supervisor-level APLIC (in-kernel AIA).
pub const APLIC_BASE: u64 = 0xd00_0000;
/// Size of the APLIC region: KVM's in-kernel APLIC is `KVM_DEV_RISCV_APLIC_SIZE` (0x4000) bytes.
pub const APLIC_SIZE: u64 = 0x4000;
/// Number of wired interrupt sources of the APLIC (QEMU `virt` uses 96).
pub const APLIC_NUM_SOURCES: u32 = 96;

/// Base of UART0 (ns16550a).
pub const UART0_BASE: u64 = 0x1000_0000;
/// Size of UART0's register window.
pub const UART0_SIZE: u64 = 0x100;
/// Interrupt source of UART0.
pub const UART0_IRQ: u32 = 10;

/// Base of virtio-mmio slot 0; slot `i` is at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0x1000_1000;
/// Size of one virtio-mmio slot.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// Number of virtio-mmio slots.
pub const VIRTIO_MMIO_SLOTS: u32 = 8;
/// Interrupt source of virtio-mmio slot 0; slot `i` uses `VIRTIO_MMIO_IRQ_BASE + i`.
pub const VIRTIO_MMIO_IRQ_BASE: u32 = 1;

/// Base of the supervisor-level IMSIC interrupt files; hart `i`'s file is at
/// `IMSIC_BASE + i * IMSIC_STRIDE`.
pub const IMSIC_BASE: u64 = 0x2800_0000;
/// Distance between two harts' IMSIC interrupt files (one 4 KiB page each).
pub const IMSIC_STRIDE: u64 = 0x1000;

/// Base of the PCIe ECAM (configuration space) window.
pub const PCIE_ECAM_BASE: u64 = 0x3000_0000;
/// Size of the PCIe ECAM window (256 buses).
pub const PCIE_ECAM_SIZE: u64 = 0x1000_0000;
/// Base of the 32-bit PCIe MMIO window.
pub const PCIE_MMIO_BASE: u64 = 0x4000_0000;
/// Size of the 32-bit PCIe MMIO window.
pub const PCIE_MMIO_SIZE: u64 = 0x4000_0000;
/// Interrupt source of PCI INTA; INTB..INTD follow (32..=35).
pub const PCIE_INTX_IRQ_BASE: u32 = 32;

/// Guest physical address where RAM starts.
pub const DRAM_BASE: u64 = 0x8000_0000;
/// Maximum size of the generated device tree blob.
pub const FDT_MAX_SIZE: u64 = 0x1_0000;
/// Offset from `DRAM_BASE` at which a raw binary kernel is loaded (where OpenSBI would jump).
pub const RAW_KERNEL_OFFSET: u64 = 0x20_0000;
/// Smallest guest RAM size accepted.
pub const MIN_MEMORY: u64 = 16 * MIB;
/// Largest number of vCPUs a guest may have.
pub const MAX_CPUS: u32 = 512;
/// The FDT and initrd are placed at the top of this much RAM (or of all RAM, if smaller).
pub const BOOT_BLOB_REGION: u64 = GIB;
/// Alignment of the initrd's start address.
pub const INITRD_ALIGN: u64 = 4 * KIB;

/// Guest physical address and interrupt source of virtio-mmio slot `slot`, or `None` when there
/// is no such slot.
pub fn virtio_mmio_slot(slot: usize) -> Option<(u64, u32)> {
    let slot = u32::try_from(slot)
        .ok()
        .filter(|&s| s < VIRTIO_MMIO_SLOTS)?;
    let base = VIRTIO_MMIO_BASE + u64::from(slot) * VIRTIO_MMIO_SIZE;
    Some((base, VIRTIO_MMIO_IRQ_BASE + slot))
}

/// Number of hart index bits in IMSIC addresses for `num_cpus` harts: `ceil(log2(num_cpus))`
/// (0 for a single hart). This is what Linux assumes when the IMSIC node has no
/// `riscv,hart-index-bits` property, and what KVM's AIA `hart_bits` must be set to.
pub fn imsic_hart_index_bits(num_cpus: u32) -> u32 {
    if num_cpus <= 1 {
        0
    } else {
        u32::BITS - (num_cpus - 1).leading_zeros()
    }
}

/// Size of the IMSIC region for `num_cpus` harts: one page per hart, for the next power of two
/// number of harts (the span covered by the hart index bits).
pub fn imsic_size(num_cpus: u32) -> u64 {
    IMSIC_STRIDE << imsic_hart_index_bits(num_cpus)
}

/// Guest physical address of hart `hart`'s supervisor-level IMSIC interrupt file.
pub fn imsic_addr(hart: u32) -> u64 {
    IMSIC_BASE + u64::from(hart) * IMSIC_STRIDE
}

/// Size of the 64-bit PCIe MMIO window.
pub const PCIE_MMIO64_SIZE: u64 = 16 * GIB;

/// The 64-bit PCIe MMIO window (base, size) for guest RAM of `mem_size` bytes: above DRAM, 16 GiB aligned,
/// as QEMU `virt` places it.
pub fn pcie_mmio64(mem_size: u64) -> Option<(u64, u64)> {
    let base = dram_end(mem_size)?.checked_next_multiple_of(PCIE_MMIO64_SIZE)?;
    base.checked_add(PCIE_MMIO64_SIZE)?;
    Some((base, PCIE_MMIO64_SIZE))
}

/// End (exclusive) of guest RAM of `mem_size` bytes, or `None` if it does not fit in 64 bits.
pub fn dram_end(mem_size: u64) -> Option<u64> {
    DRAM_BASE.checked_add(mem_size)
}

/// Where the boot blobs go in guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// Guest physical address of the FDT (8-byte aligned, `FDT_MAX_SIZE` bytes reserved).
    pub fdt_addr: u64,
    /// Guest physical start address and size of the initrd, if there is one.
    pub initrd: Option<(u64, u64)>,
}

/// Errors from placing the boot blobs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    /// Guest RAM is smaller than `MIN_MEMORY`.
    #[error("guest memory of {} is too small: at least {} is required", sz(.size), sz(.min))]
    MemoryTooSmall {
        /// Requested RAM size in bytes.
        size: u64,
        /// Minimum RAM size in bytes.
        min: u64,
    },
    /// Guest RAM would extend past the end of the 64-bit address space.
    #[error("guest memory of {} does not fit in the address space above {DRAM_BASE:#x}", sz(.size))]
    MemoryTooLarge {
        /// Requested RAM size in bytes.
        size: u64,
    },
    /// The initrd does not fit between the start of RAM and the FDT.
    #[error(
        "initrd of {} does not fit below the device tree at {fdt_addr:#x}: only {} of guest \
         memory is available for it",
        sz(.initrd_size),
        sz(.available)
    )]
    InitrdTooLarge {
        /// Size of the initrd in bytes.
        initrd_size: u64,
        /// Bytes available between `DRAM_BASE` and the FDT.
        available: u64,
        /// Address of the FDT.
        fdt_addr: u64,
    },
    /// The kernel's end address is below the start of RAM.
    #[error(
        "kernel image ends at {kernel_end:#x}, below the start of guest memory at {DRAM_BASE:#x}"
    )]
    KernelBelowDram {
        /// Guest physical end address (exclusive) of the kernel image.
        kernel_end: u64,
    },
    /// The kernel image overlaps the initrd or the FDT.
    #[error(
        "kernel image ends at {kernel_end:#x}, overlapping the {} placed from {blobs_start:#x} to \
         {region_end:#x} (the top of the first {} of guest memory); use a smaller kernel or initrd{}",
        blobs(.initrd_size),
        sz(&(.region_end - DRAM_BASE)),
        more_mem_hint(.region_end)
    )]
    KernelOverlap {
        /// Guest physical end address (exclusive) of the kernel image.
        kernel_end: u64,
        /// Lowest address used by the initrd/FDT.
        blobs_start: u64,
        /// End of the region the blobs are placed at the top of.
        region_end: u64,
        /// Size of the initrd in bytes, if there is one.
        initrd_size: Option<u64>,
    },
}

/// Human-readable byte count: "256 MiB", "64 KiB", "12345 bytes (0.0 MiB)".
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b != 0 && b.is_multiple_of(MIB) {
            write!(f, "{} MiB", b / MIB)
        } else if b != 0 && b.is_multiple_of(KIB) && b < MIB {
            write!(f, "{} KiB", b / KIB)
        } else {
            // Precision loss for huge values is fine: this is only a hint for humans.
            write!(f, "{b} bytes ({:.1} MiB)", b as f64 / MIB as f64)
        }
    }
}

fn sz(bytes: &u64) -> Size {
    Size(*bytes)
}

fn blobs(initrd_size: &Option<u64>) -> String {
    match initrd_size {
        Some(size) => format!(
            "initrd ({}) and device tree ({})",
            Size(*size),
            Size(FDT_MAX_SIZE)
        ),
        None => format!("device tree ({})", Size(FDT_MAX_SIZE)),
    }
}

fn more_mem_hint(region_end: &u64) -> &'static str {
    if region_end.saturating_sub(DRAM_BASE) < BOOT_BLOB_REGION {
        ", or give the guest more memory"
    } else {
        ""
    }
}

/// Places the FDT and the initrd at the top of the first `BOOT_BLOB_REGION` bytes of RAM (or of
/// all RAM, if smaller): the FDT in the last `FDT_MAX_SIZE` bytes, the initrd immediately below
/// it with its start aligned down to `INITRD_ALIGN`.
///
/// `kernel_end` is the absolute guest physical address just past the loaded kernel image; it
/// must not reach into the initrd or the FDT.
pub fn place_boot_blobs(
    mem_size: u64,
    kernel_end: u64,
    initrd_size: Option<u64>,
) -> Result<BootLayout, LayoutError> {
    if mem_size < MIN_MEMORY {
        return Err(LayoutError::MemoryTooSmall {
            size: mem_size,
            min: MIN_MEMORY,
        });
    }
    if dram_end(mem_size).is_none() {
        return Err(LayoutError::MemoryTooLarge { size: mem_size });
    }
    let region_end = DRAM_BASE
        .checked_add(mem_size.min(BOOT_BLOB_REGION))
        .ok_or(LayoutError::MemoryTooLarge { size: mem_size })?;
    // Cannot fail: mem_size >= MIN_MEMORY > FDT_MAX_SIZE. FDT_MAX_SIZE-aligned, so 8-byte aligned.
    let fdt_addr = region_end
        .checked_sub(FDT_MAX_SIZE)
        .filter(|&a| a >= DRAM_BASE)
        .ok_or(LayoutError::MemoryTooSmall {
            size: mem_size,
            min: MIN_MEMORY,
        })?;

    let initrd = match initrd_size {
        None => None,
        Some(size) => {
            let start = fdt_addr
                .checked_sub(size)
                .map(|s| s & !(INITRD_ALIGN - 1))
                .filter(|&s| s >= DRAM_BASE)
                .ok_or(LayoutError::InitrdTooLarge {
                    initrd_size: size,
                    available: fdt_addr - DRAM_BASE,
                    fdt_addr,
                })?;
            Some((start, size))
        }
    };

    if kernel_end < DRAM_BASE {
        return Err(LayoutError::KernelBelowDram { kernel_end });
    }
    let blobs_start = initrd.map_or(fdt_addr, |(start, _)| start);
    if kernel_end > blobs_start {
        return Err(LayoutError::KernelOverlap {
            kernel_end,
            blobs_start,
            region_end,
            initrd_size,
        });
    }

    Ok(BootLayout { fdt_addr, initrd })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_END: u64 = DRAM_BASE + 0x20_0000 + 20 * MIB;

    #[test]
    fn pcie_mmio64_window_sits_above_ram_16g_aligned() {
        assert_eq!(pcie_mmio64(512 * MIB), Some((16 * GIB, 16 * GIB)));
        // RAM reaching 16 GiB pushes the window to 32 GiB.
        assert_eq!(pcie_mmio64(14 * GIB + 1), Some((32 * GIB, 16 * GIB)));
        assert_eq!(pcie_mmio64(u64::MAX - DRAM_BASE), None);
    }

    #[test]
    fn fits_in_first_gib() {
        let l = place_boot_blobs(4 * GIB, KERNEL_END, Some(10 * MIB + 123)).unwrap();
        assert_eq!(l.fdt_addr, DRAM_BASE + GIB - FDT_MAX_SIZE);
        assert_eq!(l.fdt_addr % 8, 0);
        let (start, size) = l.initrd.unwrap();
        assert_eq!(size, 10 * MIB + 123);
        assert_eq!(start % INITRD_ALIGN, 0);
        assert!(start + size <= l.fdt_addr);
        assert!(l.fdt_addr - (start + size) < INITRD_ALIGN);
        assert!(start >= KERNEL_END);
    }

    #[test]
    fn small_memory_uses_top_of_ram() {
        let l = place_boot_blobs(256 * MIB, KERNEL_END, None).unwrap();
        assert_eq!(l.fdt_addr, DRAM_BASE + 256 * MIB - FDT_MAX_SIZE);
        assert_eq!(l.initrd, None);
        let l = place_boot_blobs(256 * MIB, KERNEL_END, Some(4 * KIB)).unwrap();
        assert_eq!(l.initrd, Some((l.fdt_addr - 4 * KIB, 4 * KIB)));
    }

    #[test]
    fn exactly_one_gib_and_empty_initrd() {
        let l = place_boot_blobs(GIB, KERNEL_END, Some(0)).unwrap();
        assert_eq!(l.fdt_addr, DRAM_BASE + GIB - FDT_MAX_SIZE);
        assert_eq!(l.initrd, Some((l.fdt_addr, 0)));
    }

    #[test]
    fn kernel_may_end_exactly_at_blobs() {
        let fdt = DRAM_BASE + 64 * MIB - FDT_MAX_SIZE;
        let l = place_boot_blobs(64 * MIB, fdt, None).unwrap();
        assert_eq!(l.fdt_addr, fdt);
        let err = place_boot_blobs(64 * MIB, fdt + 1, None).unwrap_err();
        assert!(matches!(err, LayoutError::KernelOverlap { .. }), "{err}");
    }

    #[test]
    fn kernel_overlaps_initrd() {
        let err = place_boot_blobs(64 * MIB, DRAM_BASE + 40 * MIB, Some(30 * MIB)).unwrap_err();
        match &err {
            LayoutError::KernelOverlap {
                kernel_end,
                blobs_start,
                initrd_size,
                ..
            } => {
                assert_eq!(*kernel_end, DRAM_BASE + 40 * MIB);
                assert!(*blobs_start < *kernel_end);
                assert_eq!(*initrd_size, Some(30 * MIB));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("initrd (30 MiB)"), "{msg}");
        assert!(msg.contains("64 MiB"), "{msg}");
        assert!(msg.contains("more memory"), "{msg}");
    }

    #[test]
    fn initrd_larger_than_ram() {
        let err = place_boot_blobs(64 * MIB, KERNEL_END, Some(100 * MIB)).unwrap_err();
        assert!(matches!(err, LayoutError::InitrdTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("100 MiB"), "{err}");
    }

    #[test]
    fn huge_sizes_do_not_panic() {
        let err = place_boot_blobs(u64::MAX, KERNEL_END, None).unwrap_err();
        assert!(matches!(err, LayoutError::MemoryTooLarge { .. }), "{err}");
        let err = place_boot_blobs(4 * GIB, KERNEL_END, Some(u64::MAX)).unwrap_err();
        assert!(matches!(err, LayoutError::InitrdTooLarge { .. }), "{err}");
        assert!(
            err.to_string().contains("18446744073709551615 bytes"),
            "{err}"
        );
        let err = place_boot_blobs(4 * GIB, u64::MAX, Some(MIB)).unwrap_err();
        assert!(matches!(err, LayoutError::KernelOverlap { .. }), "{err}");
        assert!(!err.to_string().contains("more memory"), "{err}");
        // The largest RAM that still fits in the address space is accepted.
        assert!(place_boot_blobs(u64::MAX - DRAM_BASE, KERNEL_END, Some(MIB)).is_ok());
    }

    #[test]
    fn too_small_or_below_dram() {
        let err = place_boot_blobs(MIB, KERNEL_END, None).unwrap_err();
        assert_eq!(
            err,
            LayoutError::MemoryTooSmall {
                size: MIB,
                min: MIN_MEMORY
            }
        );
        assert!(err.to_string().contains("16 MiB"), "{err}");
        let err = place_boot_blobs(GIB, 0x1000, None).unwrap_err();
        assert_eq!(err, LayoutError::KernelBelowDram { kernel_end: 0x1000 });
    }

    #[test]
    fn dram_end_checked() {
        assert_eq!(dram_end(GIB), Some(DRAM_BASE + GIB));
        assert_eq!(dram_end(u64::MAX), None);
    }

    #[test]
    fn virtio_slots() {
        assert_eq!(virtio_mmio_slot(0), Some((0x1000_1000, 1)));
        assert_eq!(virtio_mmio_slot(7), Some((0x1000_8000, 8)));
        assert_eq!(virtio_mmio_slot(8), None);
        assert_eq!(virtio_mmio_slot(usize::MAX), None);
        // No slot collides with UART0's interrupt.
        for i in 0..VIRTIO_MMIO_SLOTS as usize {
            let (_, irq) = virtio_mmio_slot(i).unwrap();
            assert_ne!(irq, UART0_IRQ);
            assert_ne!(irq, RTC_IRQ);
        }
    }

    #[test]
    fn imsic_geometry() {
        assert_eq!(imsic_hart_index_bits(1), 0);
        assert_eq!(imsic_hart_index_bits(2), 1);
        assert_eq!(imsic_hart_index_bits(3), 2);
        assert_eq!(imsic_hart_index_bits(4), 2);
        assert_eq!(imsic_hart_index_bits(5), 3);
        assert_eq!(imsic_hart_index_bits(512), 9);
        assert_eq!(imsic_hart_index_bits(u32::MAX), 32);
        assert_eq!(imsic_size(1), 0x1000);
        assert_eq!(imsic_size(2), 0x2000);
        assert_eq!(imsic_size(3), 0x4000);
        assert_eq!(imsic_addr(3), 0x2800_3000);
        // The IMSIC region of the largest guest stays below the PCIe ECAM window.
        assert!(IMSIC_BASE + imsic_size(MAX_CPUS) <= PCIE_ECAM_BASE);
    }

    #[test]
    fn regions_do_not_overlap() {
        let mut regions = [
            (SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE),
            (RTC_BASE, RTC_SIZE),
            (PCIE_PIO_BASE, PCIE_PIO_SIZE),
            (PLIC_BASE, PLIC_SIZE),
            (APLIC_BASE, APLIC_SIZE),
            (UART0_BASE, UART0_SIZE),
            (
                VIRTIO_MMIO_BASE,
                VIRTIO_MMIO_SIZE * u64::from(VIRTIO_MMIO_SLOTS),
            ),
            (IMSIC_BASE, imsic_size(MAX_CPUS)),
            (PCIE_ECAM_BASE, PCIE_ECAM_SIZE),
            (PCIE_MMIO_BASE, PCIE_MMIO_SIZE),
        ];
        regions.sort();
        for w in regions.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "{:#x?} overlaps {:#x?}",
                w[0],
                w[1]
            );
        }
        let last = regions[regions.len() - 1];
        assert!(last.0 + last.1 <= DRAM_BASE);
    }
}
