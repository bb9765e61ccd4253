//! The RISC-V Linux `Image` header (also at the start of PE/EFI-stub kernels), checked before loading so a
//! file that is not a kernel gets a clear error on any host.

use std::io::Read;

/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// `magic2` at offset 56: "RSC\x05".
pub const MAGIC2: u32 = 0x0543_5352;

/// The fields rvvmm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset from the 2 MiB-aligned RAM base at which the kernel must be placed.
    pub text_offset: u64,
    /// Memory the kernel occupies from its load address (including bss), 0 if unknown.
    pub image_size: u64,
}

/// Why a file is not a bootable RISC-V Image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than a header.
    #[error("file is too small to be a RISC-V Linux Image ({0} bytes)")]
    TooSmall(usize),
    /// No "RSC\x05" magic.
    #[error("not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 56)")]
    BadMagic,
    /// text_offset not 4 KiB aligned or absurd.
    #[error("RISC-V Image header has an invalid text_offset {0:#x}")]
    BadTextOffset(u64),
}

impl ImageHeader {
    /// Parses the first 64 bytes of a kernel file.
    pub fn parse(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ImageError::TooSmall(bytes.len()));
        }
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
        let magic2 = u32::from_le_bytes(bytes[56..60].try_into().unwrap_or([0; 4]));
        if magic2 != MAGIC2 {
            return Err(ImageError::BadMagic);
        }
        let text_offset = u64_at(8);
        if text_offset % 0x1000 != 0 || text_offset >= 1 << 30 {
            return Err(ImageError::BadTextOffset(text_offset));
        }
        Ok(ImageHeader {
            text_offset,
            image_size: u64_at(16),
        })
    }

    /// Reads and parses the header from the start of `r`.
    pub fn read_from(r: &mut impl Read) -> std::io::Result<Result<ImageHeader, ImageError>> {
        let mut buf = Vec::with_capacity(HEADER_SIZE);
        r.take(HEADER_SIZE as u64).read_to_end(&mut buf)?;
        Ok(ImageHeader::parse(&buf))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid header: text_offset 2 MiB, image_size `size`.
    pub fn header(size: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_SIZE];
        h[0..2].copy_from_slice(b"MZ");
        h[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
        h[16..24].copy_from_slice(&size.to_le_bytes());
        h[48..56].copy_from_slice(b"RISCV\0\0\0");
        h[56..60].copy_from_slice(&MAGIC2.to_le_bytes());
        h
    }

    #[test]
    fn parses_a_valid_header() {
        let h = ImageHeader::parse(&header(0x0123_4000)).unwrap();
        assert_eq!(h.text_offset, 0x20_0000);
        assert_eq!(h.image_size, 0x0123_4000);
    }

    #[test]
    fn rejects_non_images() {
        assert_eq!(ImageHeader::parse(b"hello"), Err(ImageError::TooSmall(5)));
        assert_eq!(ImageHeader::parse(&[0u8; 64]), Err(ImageError::BadMagic));
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert_eq!(ImageHeader::parse(&elf), Err(ImageError::BadMagic));
        let mut h = header(0);
        h[8..16].copy_from_slice(&0x123u64.to_le_bytes());
        assert_eq!(
            ImageHeader::parse(&h),
            Err(ImageError::BadTextOffset(0x123))
        );
        let mut r = std::io::Cursor::new(header(0));
        assert!(ImageHeader::read_from(&mut r).unwrap().is_ok());
    }
}
