//! A userspace model of QEMU virt's PLIC (`sifive,plic-1.0.0` / `riscv,plic0`), for riscv hosts whose KVM has
//! no in-kernel irqchip (no AIA). Under KVM the guest has no M-mode, so context N is hart N's S-mode context;
//! each context's output drives that hart's supervisor external interrupt (see [`PlicContextOutput`]).
//!
//! Register map (QEMU's `sifive_plic` with the virt layout), all registers 32-bit:
//!
//! | offset                          | register                                   |
//! |---------------------------------|--------------------------------------------|
//! | `0x0 + 4*s`                     | priority of source `s` (3 bits, 0..=7)     |
//! | `0x1000 + 4*w`                  | pending bits of sources `32w..32w+31` (RO) |
//! | `0x2000 + 0x80*c + 4*w`         | enable bits of context `c`, same layout    |
//! | `0x20_0000 + 0x1000*c`          | priority threshold of context `c`          |
//! | `0x20_0000 + 0x1000*c + 4`      | claim (read) / complete (write) of `c`     |
//!
//! Only naturally aligned 32-bit accesses mean anything; any other access reads 0 and writes nothing, as do
//! reserved offsets, source 0 and sources above `num_sources`.
//!
//! Sources are level-sensitive and go through a gateway, like a real PLIC and QEMU's model: while a source is
//! not in service, a high input level **latches** its pending bit, which then stays set until a context
//! claims the source, even if the level drops meanwhile (the guest may then see an interrupt whose device has
//! nothing left to report; drivers handle that). A claimed source is not pending again until it is
//! completed, whatever its level does; the current level is remembered, and if it is high at completion the
//! source is pending again at once, so no level-triggered request is lost.

use std::io;
use std::sync::{Arc, Mutex};

use crate::interrupt::IrqLine;
use crate::MmioDevice;

/// The highest source number a PLIC can have (source 0 does not exist).
pub const MAX_SOURCES: u32 = 1023;
/// The highest priority (and threshold): QEMU virt implements 3 priority bits.
pub const MAX_PRIORITY: u32 = 7;
/// The most contexts the register layout can address (the enable blocks end where the context blocks start).
pub const MAX_CONTEXTS: usize = ((CONTEXT_BASE - ENABLE_BASE) / ENABLE_STRIDE) as usize;

const PRIORITY_BASE: u64 = 0x0;
const PENDING_BASE: u64 = 0x1000;
const ENABLE_BASE: u64 = 0x2000;
const ENABLE_STRIDE: u64 = 0x80;
const CONTEXT_BASE: u64 = 0x20_0000;
const CONTEXT_STRIDE: u64 = 0x1000;
const CONTEXT_THRESHOLD: u64 = 0x0;
const CONTEXT_CLAIM: u64 = 0x4;

/// Receives a context's external interrupt output (rvvmm implements it with KVM_INTERRUPT on the hart's vcpu).
///
/// It is called with the PLIC's lock held (from whichever thread changed the PLIC's state), and only when the
/// output changes; it must not lock the PLIC again.
pub trait PlicContextOutput: Send + Sync {
    /// The context's output (the hart's supervisor external interrupt) is now `level`.
    fn set_external_interrupt(&self, level: bool);
}

struct Context {
    output: Arc<dyn PlicContextOutput>,
    /// One bit per source, 32 sources per word; bits of nonexistent sources are always 0.
    enable: Vec<u32>,
    threshold: u32,
    /// The last level given to `output`.
    line: bool,
}

/// The PLIC: `num_sources` level-sensitive sources routed to one context per hart.
pub struct Plic {
    num_sources: u32,
    /// Priority of each source, indexed by source number; entry 0 is always 0.
    priority: Vec<u32>,
    /// Bitmaps of 32 sources per word: the valid sources, the input levels, the pending bits, and the
    /// sources in service (claimed and not yet completed). `pending & claimed` is always 0.
    valid: Vec<u32>,
    level: Vec<u32>,
    pending: Vec<u32>,
    claimed: Vec<u32>,
    contexts: Vec<Context>,
}

fn bit(map: &[u32], source: u32) -> bool {
    map.get((source / 32) as usize)
        .is_some_and(|w| w & (1 << (source % 32)) != 0)
}

fn set_bit(map: &mut [u32], source: u32, value: bool) {
    if let Some(w) = map.get_mut((source / 32) as usize) {
        if value {
            *w |= 1 << (source % 32);
        } else {
            *w &= !(1 << (source % 32));
        }
    }
}

fn index(offset: u64, stride: u64) -> Option<usize> {
    usize::try_from(offset / stride).ok()
}

impl Plic {
    /// A PLIC with sources `1..=num_sources` (clamped to `1..=1023`) and one context per element of
    /// `contexts`, in order (context N is hart N's S-mode context). Everything starts disabled, at priority
    /// and threshold 0, with every output low. Contexts beyond [`MAX_CONTEXTS`] are dropped.
    pub fn new(num_sources: u32, mut contexts: Vec<Arc<dyn PlicContextOutput>>) -> Plic {
        let clamped = num_sources.clamp(1, MAX_SOURCES);
        if clamped != num_sources {
            log::warn!("plic: {num_sources} sources requested, using {clamped}");
        }
        if contexts.len() > MAX_CONTEXTS {
            log::warn!(
                "plic: {} contexts requested, only {MAX_CONTEXTS} are addressable",
                contexts.len()
            );
            contexts.truncate(MAX_CONTEXTS);
        }
        let words = (clamped as usize + 1).div_ceil(32);
        let mut valid = vec![0u32; words];
        for s in 1..=clamped {
            set_bit(&mut valid, s, true);
        }
        Plic {
            num_sources: clamped,
            priority: vec![0; clamped as usize + 1],
            level: vec![0; words],
            pending: vec![0; words],
            claimed: vec![0; words],
            contexts: contexts
                .into_iter()
                .map(|output| Context {
                    output,
                    enable: vec![0; words],
                    threshold: 0,
                    line: false,
                })
                .collect(),
            valid,
        }
    }

    /// The number of sources (the FDT's `riscv,ndev`); sources are `1..=num_sources()`.
    pub fn num_sources(&self) -> u32 {
        self.num_sources
    }

    /// The number of contexts (harts).
    pub fn num_contexts(&self) -> usize {
        self.contexts.len()
    }

    /// Sets the input level of `source`, for devices (see [`PlicLine`]). A high level latches the pending
    /// bit unless the source is in service. Sources outside `1..=num_sources()` are ignored.
    pub fn set_source_level(&mut self, source: u32, level: bool) {
        if !self.is_source(source) {
            crate::log_limited!(
                log::Level::Warn,
                "plic: level change of nonexistent source {source} ignored"
            );
            return;
        }
        set_bit(&mut self.level, source, level);
        if level && !bit(&self.claimed, source) {
            set_bit(&mut self.pending, source, true);
        }
        self.update();
    }

    fn is_source(&self, source: u32) -> bool {
        (1..=self.num_sources).contains(&source)
    }

    /// The highest-priority pending source enabled for `ctx` with priority above its threshold (ties: lowest
    /// number), or 0.
    fn best(&self, ctx: usize) -> u32 {
        let Some(c) = self.contexts.get(ctx) else {
            return 0;
        };
        let mut best = 0;
        let mut best_priority = c.threshold;
        for (w, &enable) in c.enable.iter().enumerate() {
            let mut candidates = self.pending[w] & !self.claimed[w] & enable & self.valid[w];
            while candidates != 0 {
                let source = w as u32 * 32 + candidates.trailing_zeros();
                candidates &= candidates - 1;
                let priority = self.priority[source as usize];
                if priority > best_priority {
                    best = source;
                    best_priority = priority;
                }
            }
        }
        best
    }

    /// Recomputes every context's output and reports those that changed.
    fn update(&mut self) {
        for ctx in 0..self.contexts.len() {
            let line = self.best(ctx) != 0;
            let c = &mut self.contexts[ctx];
            if c.line != line {
                c.line = line;
                c.output.set_external_interrupt(line);
            }
        }
    }

    fn claim(&mut self, ctx: usize) -> u32 {
        let source = self.best(ctx);
        if source != 0 {
            set_bit(&mut self.pending, source, false);
            set_bit(&mut self.claimed, source, true);
            self.update();
        }
        source
    }

    fn complete(&mut self, ctx: usize, source: u32) {
        let enabled = self
            .contexts
            .get(ctx)
            .is_some_and(|c| bit(&c.enable, source));
        if !self.is_source(source) || !enabled {
            crate::log_limited!(
                log::Level::Debug,
                "plic: context {ctx} completed source {source}, not enabled there: ignored"
            );
            return;
        }
        set_bit(&mut self.claimed, source, false);
        if bit(&self.level, source) {
            set_bit(&mut self.pending, source, true);
        }
        self.update();
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        if offset < PENDING_BASE {
            index(offset - PRIORITY_BASE, 4)
                .and_then(|s| self.priority.get(s).copied())
                .unwrap_or(0)
        } else if offset < ENABLE_BASE {
            index(offset - PENDING_BASE, 4)
                .and_then(|w| self.pending.get(w).copied())
                .unwrap_or(0)
        } else if offset < CONTEXT_BASE {
            let rel = offset - ENABLE_BASE;
            index(rel, ENABLE_STRIDE)
                .and_then(|ctx| self.contexts.get(ctx))
                .and_then(|c| c.enable.get(index(rel % ENABLE_STRIDE, 4)?).copied())
                .unwrap_or(0)
        } else {
            let rel = offset - CONTEXT_BASE;
            let Some(ctx) = index(rel, CONTEXT_STRIDE).filter(|&c| c < self.contexts.len()) else {
                return 0;
            };
            match rel % CONTEXT_STRIDE {
                CONTEXT_THRESHOLD => self.contexts[ctx].threshold,
                CONTEXT_CLAIM => self.claim(ctx),
                _ => 0,
            }
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        if offset < PENDING_BASE {
            let Some(s) = index(offset - PRIORITY_BASE, 4) else {
                return;
            };
            // Entry 0 (source 0) is hardwired to 0.
            if let Some(p) = self.priority.get_mut(s).filter(|_| s != 0) {
                *p = value & MAX_PRIORITY;
                self.update();
            }
        } else if offset < ENABLE_BASE {
            crate::log_limited!(
                log::Level::Debug,
                "plic: write {value:#x} to read-only pending bits at {offset:#x} ignored"
            );
        } else if offset < CONTEXT_BASE {
            let rel = offset - ENABLE_BASE;
            let (Some(ctx), Some(w)) = (index(rel, ENABLE_STRIDE), index(rel % ENABLE_STRIDE, 4))
            else {
                return;
            };
            let Some(valid) = self.valid.get(w).copied() else {
                return;
            };
            if let Some(e) = self.contexts.get_mut(ctx).and_then(|c| c.enable.get_mut(w)) {
                *e = value & valid;
                self.update();
            }
        } else {
            let rel = offset - CONTEXT_BASE;
            let Some(ctx) = index(rel, CONTEXT_STRIDE).filter(|&c| c < self.contexts.len()) else {
                return;
            };
            match rel % CONTEXT_STRIDE {
                CONTEXT_THRESHOLD => {
                    self.contexts[ctx].threshold = value & MAX_PRIORITY;
                    self.update();
                }
                CONTEXT_CLAIM => self.complete(ctx, value),
                _ => {}
            }
        }
    }
}

impl MmioDevice for Plic {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if data.len() == 4 && offset & 3 == 0 {
            data.copy_from_slice(&self.read_register(offset).to_le_bytes());
        } else {
            crate::log_limited!(
                log::Level::Debug,
                "plic: ignored {}-byte read at {offset:#x}",
                data.len()
            );
            data.fill(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match <[u8; 4]>::try_from(data) {
            Ok(bytes) if offset & 3 == 0 => self.write_register(offset, u32::from_le_bytes(bytes)),
            _ => crate::log_limited!(
                log::Level::Debug,
                "plic: ignored {}-byte write at {offset:#x}",
                data.len()
            ),
        }
    }
}

/// An [`IrqLine`] for one PLIC source, for devices.
pub struct PlicLine {
    plic: Arc<Mutex<Plic>>,
    source: u32,
}

impl PlicLine {
    /// The line of `source` on `plic`.
    pub fn new(plic: Arc<Mutex<Plic>>, source: u32) -> PlicLine {
        PlicLine { plic, source }
    }
}

impl IrqLine for PlicLine {
    /// Sets the source's input level; fails (`InvalidInput`) if the PLIC has no such source.
    fn set_level(&self, level: bool) -> io::Result<()> {
        let mut plic = self.plic.lock().unwrap_or_else(|p| p.into_inner());
        if !plic.is_source(self.source) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("PLIC has no source {}", self.source),
            ));
        }
        plic.set_source_level(self.source, level);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MmioBus;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<bool>>,
        level: AtomicBool,
    }

    impl PlicContextOutput for Recorder {
        fn set_external_interrupt(&self, level: bool) {
            self.calls.lock().unwrap().push(level);
            self.level.store(level, Ordering::SeqCst);
        }
    }

    impl Recorder {
        fn calls(&self) -> Vec<bool> {
            self.calls.lock().unwrap().clone()
        }
        fn level(&self) -> bool {
            self.level.load(Ordering::SeqCst)
        }
    }

    fn new_plic(num_sources: u32, contexts: usize) -> (Plic, Vec<Arc<Recorder>>) {
        let outs: Vec<Arc<Recorder>> = (0..contexts).map(|_| Arc::default()).collect();
        let plic = Plic::new(
            num_sources,
            outs.iter()
                .map(|o| o.clone() as Arc<dyn PlicContextOutput>)
                .collect(),
        );
        (plic, outs)
    }

    fn r32(p: &mut Plic, offset: u64) -> u32 {
        let mut b = [0xaau8; 4];
        p.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn w32(p: &mut Plic, offset: u64, value: u32) {
        p.write(offset, &value.to_le_bytes());
    }

    fn set_priority(p: &mut Plic, source: u32, priority: u32) {
        w32(p, 4 * source as u64, priority);
    }

    fn enable_off(ctx: usize, source: u32) -> u64 {
        ENABLE_BASE + ENABLE_STRIDE * ctx as u64 + 4 * (source / 32) as u64
    }

    fn enable(p: &mut Plic, ctx: usize, source: u32, on: bool) {
        let off = enable_off(ctx, source);
        let mut v = r32(p, off);
        if on {
            v |= 1 << (source % 32);
        } else {
            v &= !(1 << (source % 32));
        }
        w32(p, off, v);
    }

    fn threshold_off(ctx: usize) -> u64 {
        CONTEXT_BASE + CONTEXT_STRIDE * ctx as u64
    }

    fn claim_off(ctx: usize) -> u64 {
        threshold_off(ctx) + CONTEXT_CLAIM
    }

    fn claim(p: &mut Plic, ctx: usize) -> u32 {
        r32(p, claim_off(ctx))
    }

    fn complete(p: &mut Plic, ctx: usize, source: u32) {
        w32(p, claim_off(ctx), source);
    }

    fn pending(p: &mut Plic, source: u32) -> bool {
        r32(p, PENDING_BASE + 4 * (source / 32) as u64) & (1 << (source % 32)) != 0
    }

    /// Internal invariants that must hold after any sequence of operations.
    fn check_invariants(p: &Plic, outs: &[Arc<Recorder>]) {
        for w in 0..p.pending.len() {
            assert_eq!(p.pending[w] & p.claimed[w], 0, "pending and claimed");
            assert_eq!(p.pending[w] & !p.valid[w], 0, "pending invalid source");
            assert_eq!(p.claimed[w] & !p.valid[w], 0, "claimed invalid source");
        }
        assert_eq!(p.priority[0], 0);
        for (ctx, c) in p.contexts.iter().enumerate() {
            for w in 0..c.enable.len() {
                assert_eq!(c.enable[w] & !p.valid[w], 0, "enabled invalid source");
            }
            assert_eq!(c.line, p.best(ctx) != 0, "stale output of context {ctx}");
            assert_eq!(
                outs[ctx].level(),
                c.line,
                "reported output of context {ctx}"
            );
        }
    }

    #[test]
    fn priorities_threshold_and_tie_breaking() {
        let (mut p, outs) = new_plic(8, 1);
        for (s, prio) in [(1, 3), (2, 5), (3, 5), (4, 1), (5, 0), (6, 2)] {
            set_priority(&mut p, s, prio);
            enable(&mut p, 0, s, true);
            p.set_source_level(s, true);
        }
        check_invariants(&p, &outs);
        assert!(outs[0].level());
        // Threshold 2: only priorities 3 and 5 are delivered; 5 first, ties by lowest id.
        w32(&mut p, threshold_off(0), 2);
        assert_eq!(r32(&mut p, threshold_off(0)), 2);
        assert_eq!(claim(&mut p, 0), 2);
        assert_eq!(claim(&mut p, 0), 3);
        assert_eq!(claim(&mut p, 0), 1);
        assert!(
            !outs[0].level(),
            "priorities 1, 2 and 0 are at or below threshold 2"
        );
        assert_eq!(claim(&mut p, 0), 0);
        assert!(pending(&mut p, 4) && pending(&mut p, 6) && pending(&mut p, 5));
        // Lowering the threshold raises the output again; priority 0 never interrupts.
        w32(&mut p, threshold_off(0), 0);
        assert!(outs[0].level());
        assert_eq!(claim(&mut p, 0), 6);
        assert_eq!(claim(&mut p, 0), 4);
        assert_eq!(claim(&mut p, 0), 0);
        assert!(pending(&mut p, 5));
        assert!(!outs[0].level());
        // Giving source 5 a priority delivers it.
        set_priority(&mut p, 5, 1);
        assert!(outs[0].level());
        assert_eq!(claim(&mut p, 0), 5);
        // Threshold 7 masks everything.
        for s in [1, 2, 3, 4, 5, 6] {
            complete(&mut p, 0, s);
        }
        set_priority(&mut p, 2, 7);
        w32(&mut p, threshold_off(0), 7);
        assert!(!outs[0].level());
        assert_eq!(claim(&mut p, 0), 0);
        w32(&mut p, threshold_off(0), 6);
        assert_eq!(claim(&mut p, 0), 2);
        check_invariants(&p, &outs);
    }

    #[test]
    fn priority_and_threshold_are_three_bits() {
        let (mut p, _outs) = new_plic(4, 1);
        set_priority(&mut p, 1, 0xffff_fff9);
        assert_eq!(r32(&mut p, 4), 1);
        set_priority(&mut p, 2, 7);
        assert_eq!(r32(&mut p, 8), 7);
        w32(&mut p, threshold_off(0), 0x0c);
        assert_eq!(r32(&mut p, threshold_off(0)), 4);
        // Source 0's priority is hardwired to 0.
        set_priority(&mut p, 0, 7);
        assert_eq!(r32(&mut p, 0), 0);
    }

    #[test]
    fn enables_are_per_context() {
        let (mut p, outs) = new_plic(40, 3);
        for s in [3, 35] {
            set_priority(&mut p, s, 1);
        }
        enable(&mut p, 0, 3, true);
        enable(&mut p, 2, 35, true);
        assert_eq!(r32(&mut p, enable_off(0, 3)), 1 << 3);
        assert_eq!(r32(&mut p, enable_off(2, 35)), 1 << 3);
        assert_eq!(r32(&mut p, enable_off(1, 3)), 0);
        p.set_source_level(35, true);
        assert_eq!(
            outs.iter().map(|o| o.level()).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(claim(&mut p, 0), 0);
        assert_eq!(claim(&mut p, 1), 0);
        p.set_source_level(3, true);
        assert_eq!(
            outs.iter().map(|o| o.level()).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(claim(&mut p, 2), 35);
        assert_eq!(claim(&mut p, 0), 3);
        // Disabling a pending source drops the output; re-enabling brings it back.
        p.set_source_level(3, false);
        complete(&mut p, 0, 3);
        p.set_source_level(3, true);
        assert!(outs[0].level());
        enable(&mut p, 0, 3, false);
        assert!(!outs[0].level());
        assert!(pending(&mut p, 3));
        enable(&mut p, 1, 3, true);
        assert_eq!(
            outs.iter().map(|o| o.level()).collect::<Vec<_>>(),
            [false, true, false]
        );
        check_invariants(&p, &outs);
    }

    #[test]
    fn claim_race_between_contexts() {
        let (mut p, outs) = new_plic(4, 2);
        set_priority(&mut p, 2, 1);
        enable(&mut p, 0, 2, true);
        enable(&mut p, 1, 2, true);
        p.set_source_level(2, true);
        assert!(outs[0].level() && outs[1].level());
        assert!(pending(&mut p, 2));
        assert_eq!(claim(&mut p, 1), 2);
        assert!(!pending(&mut p, 2));
        assert!(!outs[0].level() && !outs[1].level());
        assert_eq!(claim(&mut p, 0), 0, "the loser of the race gets 0");
        assert_eq!(claim(&mut p, 1), 0, "and so does a second claim");
        // Either context may complete (the gateway does not know who claimed).
        p.set_source_level(2, false);
        complete(&mut p, 0, 2);
        assert!(!pending(&mut p, 2));
        p.set_source_level(2, true);
        assert!(outs[0].level() && outs[1].level());
        assert_eq!(claim(&mut p, 0), 2);
        check_invariants(&p, &outs);
    }

    #[test]
    fn complete_repends_a_level_still_high() {
        let (mut p, outs) = new_plic(4, 1);
        set_priority(&mut p, 1, 1);
        enable(&mut p, 0, 1, true);
        p.set_source_level(1, true);
        assert_eq!(claim(&mut p, 0), 1);
        assert!(!outs[0].level());
        complete(&mut p, 0, 1);
        assert!(pending(&mut p, 1));
        assert!(outs[0].level());
        assert_eq!(claim(&mut p, 0), 1);
        p.set_source_level(1, false);
        complete(&mut p, 0, 1);
        assert!(!pending(&mut p, 1));
        assert!(!outs[0].level());
        assert_eq!(claim(&mut p, 0), 0);
        check_invariants(&p, &outs);
    }

    #[test]
    fn complete_needs_the_source_enabled_in_that_context() {
        let (mut p, outs) = new_plic(4, 2);
        set_priority(&mut p, 1, 1);
        enable(&mut p, 0, 1, true);
        p.set_source_level(1, true);
        assert_eq!(claim(&mut p, 0), 1);
        p.set_source_level(1, false);
        p.set_source_level(1, true);
        // Context 1 does not have source 1 enabled: ignored, still in service.
        complete(&mut p, 1, 1);
        assert!(!pending(&mut p, 1));
        // Disabled in context 0 too: ignored.
        enable(&mut p, 0, 1, false);
        complete(&mut p, 0, 1);
        assert!(!pending(&mut p, 1));
        enable(&mut p, 0, 1, true);
        complete(&mut p, 0, 1);
        assert!(pending(&mut p, 1));
        assert!(outs[0].level());
        check_invariants(&p, &outs);
    }

    #[test]
    fn pending_is_latched_until_claimed() {
        let (mut p, outs) = new_plic(4, 1);
        set_priority(&mut p, 3, 1);
        enable(&mut p, 0, 3, true);
        // A pulse before the claim stays pending (gateway latch, as in QEMU and real PLICs).
        p.set_source_level(3, true);
        p.set_source_level(3, false);
        assert!(pending(&mut p, 3));
        assert!(outs[0].level());
        assert_eq!(claim(&mut p, 0), 3);
        // The level is low at completion: nothing more.
        complete(&mut p, 0, 3);
        assert!(!pending(&mut p, 3));
        assert!(!outs[0].level());
        // A pulse on a source that is disabled everywhere is latched too and delivered when enabled.
        enable(&mut p, 0, 3, false);
        p.set_source_level(3, true);
        p.set_source_level(3, false);
        assert!(!outs[0].level());
        enable(&mut p, 0, 3, true);
        assert_eq!(claim(&mut p, 0), 3);
        check_invariants(&p, &outs);
    }

    #[test]
    fn level_changes_while_claimed() {
        let (mut p, outs) = new_plic(4, 1);
        set_priority(&mut p, 2, 1);
        enable(&mut p, 0, 2, true);
        p.set_source_level(2, true);
        assert_eq!(claim(&mut p, 0), 2);
        // Toggling while in service never pends; the last level decides at completion.
        p.set_source_level(2, false);
        p.set_source_level(2, true);
        assert!(!pending(&mut p, 2));
        assert!(!outs[0].level());
        p.set_source_level(2, false);
        complete(&mut p, 0, 2);
        assert!(!pending(&mut p, 2));
        assert!(!outs[0].level());
        p.set_source_level(2, true);
        assert_eq!(claim(&mut p, 0), 2);
        p.set_source_level(2, false);
        p.set_source_level(2, true);
        complete(&mut p, 0, 2);
        assert!(pending(&mut p, 2));
        assert!(outs[0].level());
        check_invariants(&p, &outs);
    }

    #[test]
    fn outputs_change_only_on_edges() {
        let (mut p, outs) = new_plic(8, 2);
        for s in 1..=3 {
            set_priority(&mut p, s, s);
            enable(&mut p, 0, s, true);
        }
        assert!(outs[0].calls().is_empty(), "no call at creation or setup");
        p.set_source_level(1, true);
        p.set_source_level(2, true);
        p.set_source_level(1, true);
        set_priority(&mut p, 3, 4);
        w32(&mut p, threshold_off(0), 1);
        assert_eq!(outs[0].calls(), [true]);
        assert_eq!(claim(&mut p, 0), 2);
        // Source 1 (priority 1) is at the threshold: nothing deliverable left.
        assert_eq!(outs[0].calls(), [true, false]);
        w32(&mut p, threshold_off(0), 1);
        assert_eq!(outs[0].calls(), [true, false], "same threshold: no call");
        w32(&mut p, threshold_off(0), 0);
        assert_eq!(outs[0].calls(), [true, false, true]);
        assert_eq!(claim(&mut p, 0), 1);
        assert_eq!(outs[0].calls(), [true, false, true, false]);
        p.set_source_level(1, false);
        p.set_source_level(2, false);
        complete(&mut p, 0, 1);
        complete(&mut p, 0, 2);
        assert_eq!(outs[0].calls(), [true, false, true, false]);
        assert!(outs[1].calls().is_empty(), "context 1 enables nothing");
        check_invariants(&p, &outs);
    }

    #[test]
    fn highest_sources_work() {
        for n in [1, 31, 32, 33, 63, 64, MAX_SOURCES] {
            let (mut p, outs) = new_plic(n, 2);
            assert_eq!(p.num_sources(), n);
            set_priority(&mut p, n, 7);
            assert_eq!(r32(&mut p, 4 * n as u64), 7);
            enable(&mut p, 1, n, true);
            assert_eq!(r32(&mut p, enable_off(1, n)), 1 << (n % 32));
            p.set_source_level(n, true);
            assert!(pending(&mut p, n));
            assert!(outs[1].level() && !outs[0].level());
            assert_eq!(claim(&mut p, 1), n);
            // One past the last source does not exist.
            let over = n + 1;
            set_priority(&mut p, over, 7);
            assert_eq!(r32(&mut p, 4 * over as u64), 0);
            w32(&mut p, enable_off(1, over), u32::MAX);
            assert_eq!(r32(&mut p, enable_off(1, over)) & (1 << (over % 32)), 0);
            p.set_source_level(over, true);
            assert!(!pending(&mut p, over));
            complete(&mut p, 1, over);
            check_invariants(&p, &outs);
        }
    }

    #[test]
    fn num_sources_is_clamped() {
        assert_eq!(new_plic(0, 1).0.num_sources(), 1);
        assert_eq!(new_plic(MAX_SOURCES + 1, 1).0.num_sources(), MAX_SOURCES);
        assert_eq!(new_plic(u32::MAX, 1).0.num_sources(), MAX_SOURCES);
        let (p, _) = new_plic(95, 4);
        assert_eq!((p.num_sources(), p.num_contexts()), (95, 4));
    }

    #[test]
    fn bad_accesses_are_harmless() {
        let (mut p, outs) = new_plic(40, 2);
        for s in 1..=40 {
            set_priority(&mut p, s, 1);
        }
        enable(&mut p, 0, 7, true);
        p.set_source_level(7, true);
        let before = |p: &mut Plic| {
            (
                r32(p, 4 * 7),
                r32(p, PENDING_BASE),
                r32(p, enable_off(0, 7)),
                r32(p, threshold_off(0)),
            )
        };
        let snapshot = before(&mut p);
        // Writes to the read-only pending bits are ignored.
        w32(&mut p, PENDING_BASE, 0);
        w32(&mut p, PENDING_BASE + 4, u32::MAX);
        assert!(pending(&mut p, 7));
        assert!(!pending(&mut p, 33));
        // Source 0 bits are hardwired to 0.
        w32(&mut p, enable_off(0, 0), u32::MAX);
        assert_eq!(r32(&mut p, enable_off(0, 0)) & 1, 0);
        w32(&mut p, enable_off(0, 0), 1 << 7);
        p.set_source_level(0, true);
        assert_eq!(r32(&mut p, PENDING_BASE) & 1, 0);
        // Out-of-range sources, completes of nonexistent sources, nonexistent contexts.
        for s in [0, 41, 1023, 1024, u32::MAX] {
            p.set_source_level(s, true);
            complete(&mut p, 0, s);
        }
        assert_eq!(claim(&mut p, 2), 0);
        assert_eq!(claim(&mut p, MAX_CONTEXTS), 0);
        w32(&mut p, threshold_off(2), 3);
        w32(&mut p, enable_off(2, 7), u32::MAX);
        assert_eq!(r32(&mut p, enable_off(2, 7)), 0);
        // Odd sizes and misaligned offsets around every register, and far beyond the device.
        let offsets = [
            0,
            4 * 7,
            PENDING_BASE,
            enable_off(0, 7),
            threshold_off(0),
            claim_off(0),
            claim_off(1),
            CONTEXT_BASE - 4,
            0x60_0000 - 4,
            0x400_0000,
            u64::MAX - 3,
            u64::MAX,
        ];
        for &base in &offsets {
            for off in [
                base,
                base.wrapping_add(1),
                base.wrapping_add(2),
                base.wrapping_sub(1),
            ] {
                for size in [0usize, 1, 2, 3, 5, 8, 16] {
                    let mut buf = vec![0x55u8; size];
                    p.read(off, &mut buf);
                    assert!(buf.iter().all(|&b| b == 0), "{size}-byte read at {off:#x}");
                    p.write(off, &vec![0xffu8; size]);
                }
                if off % 4 != 0 {
                    let mut buf = [0x55u8; 4];
                    p.read(off, &mut buf);
                    assert_eq!(buf, [0; 4], "misaligned read at {off:#x}");
                    p.write(off, &[0xff; 4]);
                }
            }
        }
        // Reserved words inside a context block and beyond the pending words.
        w32(&mut p, threshold_off(0) + 8, 5);
        assert_eq!(r32(&mut p, threshold_off(0) + 8), 0);
        assert_eq!(r32(&mut p, PENDING_BASE + 4 * 31), 0);
        assert_eq!(r32(&mut p, enable_off(0, 0) + 4 * 31), 0);
        assert_eq!(before(&mut p), snapshot);
        assert_eq!(claim(&mut p, 0), 7, "the state is intact");
        check_invariants(&p, &outs);
    }

    #[test]
    fn random_operations_keep_invariants() {
        let (mut p, outs) = new_plic(70, 3);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let r = rand();
            let value = (rand() >> 8) as u32;
            let ctx = (r >> 8) % 4;
            let source = ((r >> 16) % 80) as u32;
            match r % 8 {
                0 | 1 => p.set_source_level(source, r & (1 << 40) != 0),
                2 => w32(&mut p, 4 * source as u64, value),
                3 => w32(
                    &mut p,
                    ENABLE_BASE + ENABLE_STRIDE * ctx + 4 * ((r >> 24) % 4),
                    value,
                ),
                4 => w32(&mut p, CONTEXT_BASE + CONTEXT_STRIDE * ctx, value % 9),
                5 => {
                    let s = claim(&mut p, ctx as usize);
                    assert!(s <= 70);
                }
                6 => w32(&mut p, CONTEXT_BASE + CONTEXT_STRIDE * ctx + 4, source),
                _ => {
                    let off = (r >> 20) % 0x60_0000;
                    let len = [1, 2, 4, 8][(r >> 44) as usize % 4];
                    if r & (1 << 50) != 0 {
                        p.write(off, &value.to_le_bytes().repeat(2)[..len]);
                    } else {
                        p.read(off, &mut [0; 8][..len]);
                    }
                }
            }
            check_invariants(&p, &outs);
        }
        for o in &outs {
            let calls = o.calls();
            assert!(calls.windows(2).all(|w| w[0] != w[1]), "repeated level");
            assert_eq!(calls.first(), Some(&true));
        }
    }

    #[test]
    fn plic_line_on_the_bus() {
        let (p, outs) = new_plic(10, 1);
        let plic = Arc::new(Mutex::new(p));
        let mut bus = MmioBus::new();
        bus.insert(0x0c00_0000, 0x60_0000, plic.clone()).unwrap();
        let base = 0x0c00_0000u64;
        assert!(bus.write(base + 4 * 10, &1u32.to_le_bytes()));
        assert!(bus.write(base + ENABLE_BASE, &(1u32 << 10).to_le_bytes()));
        let line = PlicLine::new(plic.clone(), 10);
        line.set_level(true).unwrap();
        assert!(outs[0].level());
        let mut buf = [0u8; 4];
        assert!(bus.read(base + claim_off(0), &mut buf));
        assert_eq!(u32::from_le_bytes(buf), 10);
        line.set_level(false).unwrap();
        assert!(bus.write(base + claim_off(0), &10u32.to_le_bytes()));
        assert!(!outs[0].level());
        for bad in [0, 11] {
            let e = PlicLine::new(plic.clone(), bad)
                .set_level(true)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }

    /// A device whose line is high while it has events the driver has not handled yet; it drives the line
    /// only on changes, like real device models.
    struct Device {
        /// (produced, handled, line level)
        state: Mutex<(u64, u64, bool)>,
        line: PlicLine,
    }

    impl Device {
        fn sync_line(&self, state: &mut (u64, u64, bool)) {
            let level = state.0 > state.1;
            if level != state.2 {
                state.2 = level;
                self.line.set_level(level).unwrap();
            }
        }

        fn produce(&self) {
            let mut s = self.state.lock().unwrap();
            s.0 += 1;
            self.sync_line(&mut s);
        }

        /// The driver's handler: handles everything outstanding; returns how many events that was.
        fn handle(&self) -> u64 {
            let mut s = self.state.lock().unwrap();
            let n = s.0 - s.1;
            s.1 = s.0;
            self.sync_line(&mut s);
            n
        }
    }

    #[test]
    fn load_no_lost_interrupt_no_stuck_output() {
        const SOURCES: u32 = 4;
        const EVENTS: u64 = 20_000;
        let (mut p, outs) = new_plic(SOURCES, 2);
        for s in 1..=SOURCES {
            set_priority(&mut p, s, [1, 2, 7, 3][s as usize - 1]);
            enable(&mut p, 1, s, true);
            // Source 4 only goes to hart 1; the others race between both harts.
            enable(&mut p, 0, s, s != 4);
        }
        let plic = Arc::new(Mutex::new(p));
        let devices: Arc<Vec<Device>> = Arc::new(
            (1..=SOURCES)
                .map(|s| Device {
                    state: Mutex::new((0, 0, false)),
                    line: PlicLine::new(plic.clone(), s),
                })
                .collect(),
        );
        let done = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(20);

        let harts: Vec<_> = (0..2usize)
            .map(|ctx| {
                let (plic, devices, done, out) = (
                    plic.clone(),
                    devices.clone(),
                    done.clone(),
                    outs[ctx].clone(),
                );
                thread::spawn(move || {
                    // Per source: claims, and claims that found nothing to handle.
                    let mut claims = vec![0u64; SOURCES as usize + 1];
                    let mut spurious = 0u64;
                    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                        if !out.level() {
                            thread::yield_now();
                            continue;
                        }
                        let s = claim(&mut plic.lock().unwrap(), ctx);
                        if s == 0 {
                            continue; // the other hart won the race
                        }
                        claims[s as usize] += 1;
                        if devices[s as usize - 1].handle() == 0 {
                            spurious += 1;
                        }
                        complete(&mut plic.lock().unwrap(), ctx, s);
                    }
                    (claims, spurious)
                })
            })
            .collect();

        let producers: Vec<_> = (0..SOURCES as usize)
            .map(|i| {
                let devices = devices.clone();
                thread::spawn(move || {
                    let d = &devices[i];
                    for n in 0..EVENTS {
                        d.produce();
                        // Mostly wait for the driver to catch up (so that many events arrive while the
                        // source is in service), sometimes produce bursts.
                        if n % 8 != i as u64 {
                            while Instant::now() < deadline && {
                                let s = d.state.lock().unwrap();
                                s.1 < s.0
                            } {
                                thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        for t in producers {
            t.join().unwrap();
        }
        // Wait until the harts have handled everything (or give up at the deadline).
        while Instant::now() < deadline
            && devices.iter().any(|d| {
                let s = d.state.lock().unwrap();
                s.1 != s.0
            })
        {
            thread::sleep(Duration::from_millis(1));
        }
        done.store(true, Ordering::SeqCst);
        let results: Vec<_> = harts.into_iter().map(|t| t.join().unwrap()).collect();

        for (i, d) in devices.iter().enumerate() {
            let s = d.state.lock().unwrap();
            assert_eq!(
                (s.0, s.1, s.2),
                (EVENTS, EVENTS, false),
                "source {} lost an interrupt",
                i + 1
            );
        }
        let mut total_claims = 0;
        for s in 1..=SOURCES as usize {
            let claims: u64 = results.iter().map(|(c, _)| c[s]).sum();
            // Every claim handled at least one event, so there are between 1 and EVENTS of them.
            assert!(
                (1..=EVENTS).contains(&claims),
                "source {s}: {claims} claims"
            );
            total_claims += claims;
        }
        assert_eq!(
            results[0].0[4], 0,
            "hart 0 claimed a source it has disabled"
        );
        // With the gateway, a level only drops inside a handler, so a claim always finds work.
        assert_eq!(
            results.iter().map(|r| r.1).sum::<u64>(),
            0,
            "spurious claims"
        );

        let mut p = plic.lock().unwrap();
        check_invariants(&p, &outs);
        for (ctx, out) in outs.iter().enumerate() {
            assert!(!out.level(), "context {ctx} output stuck high");
            assert_eq!(claim(&mut p, ctx), 0);
            let calls = out.calls();
            assert!(calls.windows(2).all(|w| w[0] != w[1]), "repeated level");
        }
        assert_eq!(p.pending[0] | p.claimed[0], 0);
        assert!(total_claims > 0);
    }
}
