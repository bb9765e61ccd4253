//! Fuzz target `virtio_blk`: a fuzzed driver ([`crate::virtio_driver`]) against virtio-blk on a
//! 64 KiB image file: descriptor chains of any shape (loops, indirect tables, addresses outside guest
//! memory, huge lengths, wrong directions), every request type with any sector, and any register
//! sequence. Besides not crashing, the device must keep the image at its size, and must not change a
//! read-only image.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use virtio::Block;

use crate::input::Builder;
use crate::virtio_driver::{self, flags, seed, NoBackend};

/// Size of the image behind the fuzzed disk.
pub const IMAGE_SIZE: u64 = 64 * 1024;

/// Removes the image file when its thread ends.
struct Image(PathBuf);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

thread_local! {
    /// The image file of this thread (the device locks it, so threads running inputs side by side, as
    /// the unit tests do, each need their own), in the temporary directory.
    static IMAGE: Image = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rvvmm-fuzz-blk-{}-{n}.img", std::process::id());
        let path = std::env::temp_dir().join(name);
        let data: Vec<u8> = (0..IMAGE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, data).expect("create the fuzz image");
        Image(path)
    };
}

fn image() -> PathBuf {
    IMAGE.with(|i| i.0.clone())
}

/// Runs one input; returns how many requests queue 0 completed.
pub fn run_and_report(data: &[u8]) -> u16 {
    let path = image();
    let readonly = data.get(1).is_some_and(|f| f & flags::DEVICE != 0);
    let before = readonly.then(|| std::fs::read(&path).expect("read the fuzz image"));
    let block = Block::new(&path, readonly, Some("fuzz".into())).expect("open the fuzz image");
    let mem = virtio_driver::run(data, Box::new(block), &mut NoBackend);
    let len = std::fs::metadata(&path).expect("stat the fuzz image").len();
    assert_eq!(len, IMAGE_SIZE, "a guest request changed the image's size");
    if let Some(before) = before {
        let after = std::fs::read(&path).expect("read the fuzz image");
        assert!(before == after, "a guest request changed a read-only image");
    }
    virtio_driver::used_idx(&mem, 0)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    run_and_report(data);
}

/// Request types (virtio spec 5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const T_DISCARD: u32 = 11;
const T_WRITE_ZEROES: u32 = 13;

/// One request: header at 0x3000, data at 0x8000 (`data_len` bytes, device-writable when `to_guest`),
/// status byte at 0xa000.
fn request(b: &mut Builder, slot: u16, kind: u32, sector: u64, data_len: u32, to_guest: bool) {
    let mut header = Vec::new();
    header.extend_from_slice(&kind.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&sector.to_le_bytes());
    seed::mem_write(b, 0x3000, &header);
    let head = slot * 3;
    seed::descriptor(b, 0, head, 0x3000, 16, seed::F_NEXT, head + 1);
    let dir = if to_guest { seed::F_WRITE } else { 0 };
    if data_len > 0 {
        seed::descriptor(
            b,
            0,
            head + 1,
            0x8000,
            data_len,
            dir | seed::F_NEXT,
            head + 2,
        );
        seed::descriptor(b, 0, head + 2, 0xa000, 1, seed::F_WRITE, 0);
    } else {
        seed::descriptor(b, 0, head + 1, 0xa000, 1, seed::F_WRITE, 0);
    }
    seed::publish(b, 0, slot, head);
}

/// Seeds: a read; a write, flush and get-id; discard and write-zeroes (with their segment in the
/// data buffer); the read on a read-only disk with EVENT_IDX; a write refused by a read-only disk.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = Builder::default();
    b.u8(0).u8(0);
    request(&mut b, 0, T_IN, 1, 512, true);
    out.push(b.0);

    let mut b = Builder::default();
    b.u8(16).u8(flags::INDIRECT);
    seed::mem_write(&mut b, 0x8000, &[0xab; 64]);
    request(&mut b, 0, T_OUT, 3, 1024, false);
    request(&mut b, 1, T_FLUSH, 0, 0, false);
    request(&mut b, 2, T_GET_ID, 0, 20, true);
    out.push(b.0);

    let mut b = Builder::default();
    b.u8(0).u8(flags::ALL_FEATURES);
    // discard / write-zeroes segment: sector, num_sectors, flags.
    let mut segment = Vec::new();
    segment.extend_from_slice(&8u64.to_le_bytes());
    segment.extend_from_slice(&4u32.to_le_bytes());
    segment.extend_from_slice(&0u32.to_le_bytes());
    seed::mem_write(&mut b, 0x8000, &segment);
    request(&mut b, 0, T_DISCARD, 0, 16, false);
    request(&mut b, 1, T_WRITE_ZEROES, 0, 16, false);
    out.push(b.0);

    let mut b = Builder::default();
    b.u8(0).u8(flags::DEVICE | flags::EVENT_IDX);
    request(&mut b, 0, T_IN, 0, 4096, true);
    request(&mut b, 1, T_OUT, 0, 512, false);
    out.push(b.0);
    out
}
