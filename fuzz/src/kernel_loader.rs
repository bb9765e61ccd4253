//! Fuzz target `kernel_loader`: the kernel file formats rvvmm accepts (Linux Image header, ELF64 file
//! and program headers, raw binaries) on any file contents, any forced format, any raw load address and
//! RAM size. An accepted kernel must lie wholly inside guest RAM.

use vmm::loader::{place_kernel, KernelFormat};

use crate::input::{Builder, Input};

const DRAM_BASE: u64 = 0x8000_0000;

/// Runs one input: `format: u8` (detect, image, elf, raw), `raw_addr: u64`, `ram_mib: u16`,
/// `file_len_extra: u32` (added to the file's length, as for a header read from a longer file), then the
/// file's bytes.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let format = match input.u8() % 4 {
        0 => None,
        1 => Some(KernelFormat::Image),
        2 => Some(KernelFormat::Elf),
        _ => Some(KernelFormat::Raw),
    };
    let raw_addr = input.u64();
    let ram_size = (u64::from(input.u16()) + 1) << 20;
    let extra = u64::from(input.u32());
    let file = input.bytes(usize::MAX);
    let file_len = file.len() as u64
        + if format == Some(KernelFormat::Elf) {
            0
        } else {
            extra
        };
    let ram = (DRAM_BASE, DRAM_BASE + ram_size);
    if let Ok(p) = place_kernel(file, file_len, format, raw_addr, ram) {
        assert!(
            p.start >= ram.0 && p.end <= ram.1 && p.start <= p.end,
            "kernel outside RAM: {p:?}"
        );
        for s in &p.segments {
            let end = s.addr.checked_add(s.mem_size).expect("segment end wraps");
            assert!(
                s.addr >= ram.0 && end <= ram.1,
                "segment outside RAM: {s:?}"
            );
            assert!(
                s.file_size <= s.mem_size,
                "segment file size beyond its memory size: {s:?}"
            );
            let file_end = s
                .file_offset
                .checked_add(s.file_size)
                .expect("file range wraps");
            assert!(
                file_end <= file_len,
                "segment beyond the end of the file: {s:?}"
            );
        }
    }
}

fn elf(machine: u16, entry: u64, segs: &[(u64, u64, u64)]) -> Vec<u8> {
    let phoff = 64u64;
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&machine.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&phoff.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    let data_start = 64 + 56 * segs.len() as u64;
    for (i, &(paddr, filesz, memsz)) in segs.iter().enumerate() {
        let mut ph = [0u8; 56];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes());
        ph[8..16].copy_from_slice(&data_start.to_le_bytes());
        ph[16..24].copy_from_slice(&paddr.to_le_bytes());
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&filesz.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
        f.extend_from_slice(&ph);
        let _ = i;
    }
    f.resize(f.len() + 0x100, 0x13);
    f
}

fn image_header(text_offset: u64, image_size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[8..16].copy_from_slice(&text_offset.to_le_bytes());
    h[16..24].copy_from_slice(&image_size.to_le_bytes());
    h[48..52].copy_from_slice(b"RISC");
    h[52..56].copy_from_slice(b"V\0\0\0");
    h[56..60].copy_from_slice(b"RSC\x05");
    h
}

/// Seeds: a RISC-V ELF with two segments (one with bss), an Image header, a raw binary forced at
/// 0x8020_0000, and an ELF for another machine.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (format, machine) in [(0u8, 243u16), (2, 62)] {
        let mut b = Builder::default();
        b.u8(format).u64(0).u16(127).u32(0);
        b.bytes(&elf(
            machine,
            0x8020_0000,
            &[(0x8020_0000, 0x80, 0x80), (0x8030_0000, 0x40, 0x2000)],
        ));
        out.push(b.0);
    }
    let mut b = Builder::default();
    b.u8(0)
        .u64(0)
        .u16(255)
        .u32(0x40_0000)
        .bytes(&image_header(0x20_0000, 0x80_0000));
    out.push(b.0);
    let mut b = Builder::default();
    b.u8(3)
        .u64(0x8020_0000)
        .u16(31)
        .u32(0)
        .bytes(&[0x73, 0, 0x10, 0x10]);
    out.push(b.0);
    out
}
