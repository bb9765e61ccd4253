//! Fuzz target `plic`: guest register accesses of any offset and size to the userspace PLIC (priorities,
//! pending, enables, thresholds, claim/complete) mixed with device lines changing level, for any number
//! of sources and contexts. Each context's output must only be driven when it changes, and a claim
//! must only return an existing source.

use std::sync::{Arc, Mutex};

use devices::plic::{Plic, PlicContextOutput, MAX_SOURCES};
use devices::MmioDevice;

use crate::input::{Builder, Input};

/// A context output that checks it is only driven when it changes.
#[derive(Default)]
struct CheckedOutput(Mutex<bool>);

impl PlicContextOutput for CheckedOutput {
    fn set_external_interrupt(&self, level: bool) {
        let mut last = self.0.lock().unwrap();
        assert_ne!(
            *last, level,
            "a PLIC context output was driven to the level it had"
        );
        *last = level;
    }
}

const CONTEXT_BASE: u64 = 0x20_0000;
const CONTEXT_STRIDE: u64 = 0x1000;

/// Runs one input: `sources: u16`, `contexts: u8`, then operations: 0 write `offset: u32`, `value: u32`;
/// 1 read `offset: u32`; 2 line `source: u16`, `level: u8`; 3 claim of `context: u8`; 4 complete of
/// `context: u8` with `source: u16`; 5 access of any size at `offset: u32`.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let sources = u32::from(input.u16()) % (MAX_SOURCES + 1);
    let contexts = usize::from(input.u8() % 8) + 1;
    let outputs: Vec<Arc<dyn PlicContextOutput>> = (0..contexts)
        .map(|_| Arc::new(CheckedOutput::default()) as Arc<dyn PlicContextOutput>)
        .collect();
    let mut plic = Plic::new(sources, outputs);
    let num_sources = plic.num_sources();
    while !input.is_empty() {
        match input.u8() % 6 {
            0 => {
                let offset = u64::from(input.u32() % 0x400_0000);
                plic.write(offset, &input.u32().to_le_bytes());
            }
            1 => {
                let mut b = [0u8; 4];
                plic.read(u64::from(input.u32() % 0x400_0000), &mut b);
            }
            2 => {
                let source = u32::from(input.u16());
                let level = input.u8() & 1 != 0;
                plic.set_source_level(source, level);
            }
            3 => {
                let ctx = u64::from(input.u8());
                let mut b = [0u8; 4];
                plic.read(CONTEXT_BASE + ctx * CONTEXT_STRIDE + 4, &mut b);
                let claimed = u32::from_le_bytes(b);
                assert!(
                    claimed <= num_sources,
                    "claimed source {claimed} of {num_sources}"
                );
            }
            4 => {
                let ctx = u64::from(input.u8());
                let source = u32::from(input.u16());
                plic.write(
                    CONTEXT_BASE + ctx * CONTEXT_STRIDE + 4,
                    &source.to_le_bytes(),
                );
            }
            _ => {
                let offset = u64::from(input.u32() % 0x400_0000);
                let size = usize::from(input.u8() % 8) + 1;
                let bytes = input.bytes(size);
                plic.write(offset, bytes);
                let mut b = [0u8; 8];
                plic.read(offset, &mut b[..size]);
            }
        }
    }
}

/// Seeds: two contexts, source 10 given priority 1 and enabled on context 0, raised, claimed,
/// lowered and completed; the same with a threshold that masks it.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for threshold in [0u32, 1] {
        let mut b = Builder::default();
        b.u16(96).u8(1);
        b.u8(0).u32(10 * 4).u32(1);
        b.u8(0).u32(0x2000).u32(1 << 10);
        b.u8(0).u32(CONTEXT_BASE as u32).u32(threshold);
        b.u8(2).u16(10).u8(1);
        b.u8(3).u8(0);
        b.u8(2).u16(10).u8(0);
        b.u8(4).u8(0).u16(10);
        b.u8(1).u32(0x1000);
        out.push(b.0);
    }
    out
}
