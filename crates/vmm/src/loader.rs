//! Kernel formats and where each one goes in guest RAM, decided before anything is loaded so that every
//! problem with the file gets a clear error on any host:
//!
//! - a RISC-V Linux `Image` (or PE/EFI-stub kernel with its header): at RAM base + `text_offset`;
//! - an ELF64 RISC-V executable (bare-metal kernels built for QEMU `virt`): each `PT_LOAD` segment at its
//!   physical address, the rest of its memory size zeroed, entry at `e_entry`;
//! - a raw binary: copied as is to `--kernel-addr` (default RAM base + 2 MiB, where OpenSBI jumps), entry
//!   there.

use std::fmt;
use std::str::FromStr;

use arch::layout::{DRAM_BASE, RAW_KERNEL_OFFSET};
use goblin::elf::header::{EM_RISCV, ET_EXEC};
use goblin::elf::program_header::{ProgramHeader, PT_LOAD};
use goblin::elf::Elf;

use crate::kernel::{ImageError, ImageHeader, HEADER_SIZE, MAGIC2};

/// How the kernel file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// RISC-V Linux Image (PE/EFI-stub kernels included).
    Image,
    /// ELF64 RISC-V executable.
    Elf,
    /// Raw binary.
    Raw,
}

impl FromStr for KernelFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "image" => Ok(KernelFormat::Image),
            "elf" => Ok(KernelFormat::Elf),
            "raw" => Ok(KernelFormat::Raw),
            _ => Err(format!(
                "invalid kernel format '{s}': expected image, elf or raw"
            )),
        }
    }
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelFormat::Image => "image",
            KernelFormat::Elf => "elf",
            KernelFormat::Raw => "raw",
        })
    }
}

/// Default load address of a raw kernel.
pub const DEFAULT_RAW_ADDR: u64 = DRAM_BASE + RAW_KERNEL_OFFSET;

/// A piece of the file to copy into guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the file.
    pub file_offset: u64,
    /// Bytes to copy from the file.
    pub file_size: u64,
    /// Guest physical address.
    pub addr: u64,
    /// Bytes the segment occupies in RAM (the part past `file_size` is zeroed).
    pub mem_size: u64,
}

/// Where the kernel goes and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPlacement {
    /// The format.
    pub format: KernelFormat,
    /// Guest physical address of the first instruction.
    pub entry: u64,
    /// What to copy where (empty for an Image, which the PE loader places).
    pub segments: Vec<Segment>,
    /// Lowest guest address the kernel occupies.
    pub start: u64,
    /// End (exclusive) of the highest guest address the kernel occupies.
    pub end: u64,
}

/// Why a kernel file cannot be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoaderError {
    /// The Image header is wrong.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Not an ELF file the loader accepts.
    #[error("not a loadable ELF: {0}")]
    BadElf(String),
    /// ELF for another machine.
    #[error("ELF for machine {0} (not RISC-V, {EM_RISCV})")]
    WrongMachine(u16),
    /// 32-bit ELF.
    #[error("32-bit ELF: rvvmm runs 64-bit RISC-V kernels only")]
    WrongClass,
    /// Not an executable.
    #[error("ELF type {0} is not an executable (ET_EXEC)")]
    NotExecutable(u16),
    /// No PT_LOAD segment.
    #[error("ELF has no loadable (PT_LOAD) segment")]
    NoSegments,
    /// A segment's file range runs past the end of the file.
    #[error("truncated file: {} needs file bytes {offset:#x}..{end:#x}, the file has {len:#x}",
        if *addr == 0 { "the program header table".to_string() } else { format!("the segment at {addr:#x}") })]
    Truncated {
        /// The segment's address.
        addr: u64,
        /// Its file offset.
        offset: u64,
        /// End of its file range.
        end: u64,
        /// File length.
        len: u64,
    },
    /// The file ends inside the 64-byte ELF header.
    #[error("truncated file: the ELF header needs 0x40 bytes, the file has {0:#x}")]
    TruncatedHeader(u64),
    /// A segment (or a raw kernel) is not inside guest RAM.
    #[error(
        "{what} at {start:#x}..{end:#x} does not fit in guest RAM {ram_start:#x}..{ram_end:#x}"
    )]
    OutsideRam {
        /// "segment", "raw kernel" or "entry point".
        what: &'static str,
        /// Start address.
        start: u64,
        /// End address.
        end: u64,
        /// RAM start.
        ram_start: u64,
        /// RAM end.
        ram_end: u64,
    },
    /// Two segments overlap.
    #[error("ELF segments at {0:#x} and {1:#x} overlap")]
    Overlap(u64, u64),
    /// An empty raw kernel.
    #[error("the kernel file is empty")]
    Empty,
}

/// The format of a file that starts with `head`: ELF magic, Image magic, else raw.
pub fn detect_format(head: &[u8]) -> KernelFormat {
    if head.starts_with(b"\x7fELF") {
        KernelFormat::Elf
    } else if head.len() >= HEADER_SIZE && head[56..60] == MAGIC2.to_le_bytes() {
        KernelFormat::Image
    } else {
        KernelFormat::Raw
    }
}

fn in_ram(what: &'static str, start: u64, len: u64, ram: (u64, u64)) -> Result<u64, LoaderError> {
    let (ram_start, ram_end) = ram;
    let end = start.saturating_add(len);
    if start < ram_start || end > ram_end {
        return Err(LoaderError::OutsideRam {
            what,
            start,
            end,
            ram_start,
            ram_end,
        });
    }
    Ok(end)
}

/// Plans the load of a kernel file of `file_len` bytes into RAM `ram` = (start, end), as `format`
/// (detected when `None`); `raw_addr` is where a raw kernel goes. `file` holds the whole file for an ELF,
/// and at least its first [`HEADER_SIZE`] bytes (or all of a shorter file) otherwise.
pub fn place_kernel(
    file: &[u8],
    file_len: u64,
    format: Option<KernelFormat>,
    raw_addr: u64,
    ram: (u64, u64),
) -> Result<KernelPlacement, LoaderError> {
    let format = format.unwrap_or_else(|| detect_format(file));
    match format {
        KernelFormat::Image => {
            let h = ImageHeader::parse(file)?;
            let start = DRAM_BASE + h.text_offset;
            let end = in_ram("kernel image", start, file_len.max(h.image_size), ram)?;
            Ok(KernelPlacement {
                format,
                entry: start,
                segments: Vec::new(),
                start,
                end,
            })
        }
        KernelFormat::Raw => {
            if file_len == 0 {
                return Err(LoaderError::Empty);
            }
            let len = file_len;
            let end = in_ram("raw kernel", raw_addr, len, ram)?;
            Ok(KernelPlacement {
                format,
                entry: raw_addr,
                segments: vec![Segment {
                    file_offset: 0,
                    file_size: len,
                    addr: raw_addr,
                    mem_size: len,
                }],
                start: raw_addr,
                end,
            })
        }
        KernelFormat::Elf => place_elf(file, ram),
    }
}

/// Size of an ELF64 file header.
const ELF64_HEADER_SIZE: usize = 64;

fn place_elf(file: &[u8], ram: (u64, u64)) -> Result<KernelPlacement, LoaderError> {
    // Class and machine first, for clear messages on files goblin would also reject.
    if file.len() >= 20 && file.starts_with(b"\x7fELF") {
        if file[4] == 1 {
            return Err(LoaderError::WrongClass);
        }
        let machine = if file[5] == 2 {
            u16::from_be_bytes([file[18], file[19]])
        } else {
            u16::from_le_bytes([file[18], file[19]])
        };
        if machine != EM_RISCV {
            return Err(LoaderError::WrongMachine(machine));
        }
    }
    if file.len() < ELF64_HEADER_SIZE {
        return Err(LoaderError::TruncatedHeader(file.len() as u64));
    }
    // Only the ELF header and the program headers matter for loading (section headers may be stripped).
    let header = Elf::parse_header(file).map_err(|e| LoaderError::BadElf(e.to_string()))?;
    let container = header
        .container()
        .map_err(|e| LoaderError::BadElf(e.to_string()))?;
    if !container.is_big() {
        return Err(LoaderError::WrongClass);
    }
    let endian = header
        .endianness()
        .map_err(|e| LoaderError::BadElf(e.to_string()))?;
    if !endian.is_little() {
        return Err(LoaderError::BadElf("big-endian".into()));
    }
    if header.e_type != ET_EXEC {
        return Err(LoaderError::NotExecutable(header.e_type));
    }
    let len = file.len() as u64;
    let ph_end = header
        .e_phoff
        .saturating_add(u64::from(header.e_phnum) * u64::from(header.e_phentsize));
    if ph_end > len {
        return Err(LoaderError::Truncated {
            addr: 0,
            offset: header.e_phoff,
            end: ph_end,
            len,
        });
    }
    let ctx = goblin::container::Ctx::new(container, endian);
    let program_headers = ProgramHeader::parse(
        file,
        header.e_phoff as usize,
        usize::from(header.e_phnum),
        ctx,
    )
    .map_err(|e| LoaderError::BadElf(e.to_string()))?;
    let mut segments: Vec<Segment> = Vec::new();
    for ph in program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
        if ph.p_memsz == 0 {
            continue;
        }
        let file_end = ph.p_offset.saturating_add(ph.p_filesz);
        if file_end > len {
            return Err(LoaderError::Truncated {
                addr: ph.p_paddr,
                offset: ph.p_offset,
                end: file_end,
                len,
            });
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(LoaderError::BadElf(format!(
                "segment at {:#x} has more file bytes than memory",
                ph.p_paddr
            )));
        }
        in_ram("segment", ph.p_paddr, ph.p_memsz, ram)?;
        segments.push(Segment {
            file_offset: ph.p_offset,
            file_size: ph.p_filesz,
            addr: ph.p_paddr,
            mem_size: ph.p_memsz,
        });
    }
    if segments.is_empty() {
        return Err(LoaderError::NoSegments);
    }
    segments.sort_by_key(|s| s.addr);
    for w in segments.windows(2) {
        if w[0].addr + w[0].mem_size > w[1].addr {
            return Err(LoaderError::Overlap(w[0].addr, w[1].addr));
        }
    }
    let start = segments[0].addr;
    let end = segments
        .iter()
        .map(|s| s.addr + s.mem_size)
        .max()
        .unwrap_or(start);
    let entry = header.e_entry;
    in_ram("entry point", entry, 1, ram)?;
    Ok(KernelPlacement {
        format: KernelFormat::Elf,
        entry,
        segments,
        start,
        end,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::tests::header;

    const RAM: (u64, u64) = (DRAM_BASE, DRAM_BASE + (64 << 20));

    /// [`place_kernel`] on a whole file.
    fn pk(
        file: &[u8],
        format: Option<KernelFormat>,
        raw_addr: u64,
        ram: (u64, u64),
    ) -> Result<KernelPlacement, LoaderError> {
        place_kernel(file, file.len() as u64, format, raw_addr, ram)
    }

    /// A minimal ELF64 little-endian executable with the given (paddr, filesz, memsz) PT_LOAD segments, each
    /// segment's bytes filled with its index + 1.
    pub fn elf(machine: u16, class: u8, entry: u64, segs: &[(u64, u64, u64)]) -> Vec<u8> {
        let phoff = 64u64;
        let data_start = phoff + 56 * segs.len() as u64;
        let mut f = vec![0u8; data_start as usize];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = class;
        f[5] = 1; // little-endian
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        let mut offset = data_start;
        for (i, &(paddr, filesz, memsz)) in segs.iter().enumerate() {
            let ph = 64 + 56 * i;
            f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[ph + 4..ph + 8].copy_from_slice(&7u32.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            f[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
            f[ph + 48..ph + 56].copy_from_slice(&0x1000u64.to_le_bytes());
            f.extend(std::iter::repeat_n(i as u8 + 1, filesz as usize));
            offset += filesz;
        }
        f
    }

    #[test]
    fn detects_formats() {
        assert_eq!(detect_format(&header(0)), KernelFormat::Image);
        assert_eq!(detect_format(b"\x7fELF\x02\x01"), KernelFormat::Elf);
        assert_eq!(detect_format(&[0x13, 0, 0, 0]), KernelFormat::Raw);
        assert_eq!(detect_format(&[]), KernelFormat::Raw);
        assert_eq!("elf".parse::<KernelFormat>(), Ok(KernelFormat::Elf));
        assert!("coff".parse::<KernelFormat>().is_err());
    }

    #[test]
    fn places_an_elf_segment_by_segment() {
        let f = elf(
            EM_RISCV,
            2,
            0x8020_0000,
            &[(0x8020_0000, 0x100, 0x100), (0x8030_0000, 0x10, 0x2000)],
        );
        let p = pk(&f, None, DEFAULT_RAW_ADDR, RAM).unwrap();
        assert_eq!(p.format, KernelFormat::Elf);
        assert_eq!(p.entry, 0x8020_0000);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[1].file_size, 0x10);
        assert_eq!(p.segments[1].mem_size, 0x2000);
        assert_eq!((p.start, p.end), (0x8020_0000, 0x8030_2000));
    }

    #[test]
    fn bad_elves_get_their_own_errors() {
        let f = elf(62, 2, 0x8020_0000, &[(0x8020_0000, 0x10, 0x10)]);
        assert_eq!(pk(&f, None, 0, RAM), Err(LoaderError::WrongMachine(62)));
        let f = elf(EM_RISCV, 1, 0x8020_0000, &[(0x8020_0000, 0x10, 0x10)]);
        assert_eq!(pk(&f, None, 0, RAM), Err(LoaderError::WrongClass));
        // A segment below RAM (e.g. a Linux user program linked at 0x10000).
        let f = elf(EM_RISCV, 2, 0x10000, &[(0x10000, 0x10, 0x10)]);
        let e = pk(&f, None, 0, RAM).unwrap_err();
        assert!(
            matches!(
                e,
                LoaderError::OutsideRam {
                    what: "segment",
                    ..
                }
            ),
            "{e}"
        );
        // One past the end of RAM.
        let f = elf(EM_RISCV, 2, 0x8020_0000, &[(RAM.1 - 0x10, 0x10, 0x11)]);
        assert!(matches!(
            pk(&f, None, 0, RAM),
            Err(LoaderError::OutsideRam { .. })
        ));
        // Truncated: the file ends inside the segment's bytes.
        let mut f = elf(EM_RISCV, 2, 0x8020_0000, &[(0x8020_0000, 0x100, 0x100)]);
        f.truncate(f.len() - 1);
        assert!(matches!(
            pk(&f, None, 0, RAM),
            Err(LoaderError::Truncated { .. })
        ));
        // Truncated inside the program headers, and inside the ELF header.
        let f = elf(EM_RISCV, 2, 0x8020_0000, &[(0x8020_0000, 0x100, 0x100)]);
        let e = pk(&f[..70], None, 0, RAM).unwrap_err();
        assert!(
            e.to_string()
                .contains("truncated file: the program header table"),
            "{e}"
        );
        assert_eq!(
            pk(&f[..40], None, 0, RAM),
            Err(LoaderError::TruncatedHeader(40))
        );
        // No PT_LOAD.
        let f = elf(EM_RISCV, 2, 0x8020_0000, &[]);
        assert_eq!(pk(&f, None, 0, RAM), Err(LoaderError::NoSegments));
        // Overlapping segments, and an entry outside RAM.
        let f = elf(
            EM_RISCV,
            2,
            0x8020_0000,
            &[(0x8020_0000, 0x10, 0x2000), (0x8020_1000, 0x10, 0x10)],
        );
        assert!(matches!(
            pk(&f, None, 0, RAM),
            Err(LoaderError::Overlap(..))
        ));
        let f = elf(EM_RISCV, 2, 0x1000, &[(0x8020_0000, 0x10, 0x10)]);
        assert!(matches!(
            pk(&f, None, 0, RAM),
            Err(LoaderError::OutsideRam {
                what: "entry point",
                ..
            })
        ));
        // Forced ELF on something else.
        assert!(pk(&header(0), Some(KernelFormat::Elf), 0, RAM).is_err());
    }

    #[test]
    fn places_raw_kernels_and_images() {
        let p = pk(&[0x13, 0, 0, 0], None, DEFAULT_RAW_ADDR, RAM).unwrap();
        assert_eq!(p.format, KernelFormat::Raw);
        assert_eq!((p.entry, p.end), (0x8020_0000, 0x8020_0004));
        let p = pk(&[1; 8], None, 0x8100_0000, RAM).unwrap();
        assert_eq!(p.entry, 0x8100_0000);
        assert!(matches!(
            pk(&[1; 8], None, 0x1000, RAM),
            Err(LoaderError::OutsideRam {
                what: "raw kernel",
                ..
            })
        ));
        assert_eq!(
            pk(&[], Some(KernelFormat::Raw), DEFAULT_RAW_ADDR, RAM),
            Err(LoaderError::Empty)
        );
        let p = pk(&header(0x10_0000), None, 0, RAM).unwrap();
        assert_eq!(
            (p.format, p.entry, p.end),
            (KernelFormat::Image, 0x8020_0000, 0x8030_0000)
        );
        // An Image forced as raw loads at the raw address.
        let p = pk(&header(0), Some(KernelFormat::Raw), DEFAULT_RAW_ADDR, RAM).unwrap();
        assert_eq!(p.format, KernelFormat::Raw);
        assert!(matches!(
            pk(&[0u8; 64], Some(KernelFormat::Image), 0, RAM),
            Err(LoaderError::Image(ImageError::BadMagic))
        ));
    }
}
