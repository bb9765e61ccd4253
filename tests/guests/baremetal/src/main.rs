//! A bare-metal S-mode test kernel for rvvmm, written like the small kernels people run on QEMU `virt`
//! (rCore-Tutorial, xv6 ports): it starts at 0x80200000 with a0 = hart id and a1 = the device tree, and
//! checks, one `BM-PASS name` or `BM-FAIL name why` line each, what such kernels rely on:
//! SBI DBCN console output (and input with bootargs `dbcn-read`), the legacy SBI console putchar/getchar
//! and set_timer (bootargs `legacy`), timer interrupts through SBI TIME and through Sstc, the Goldfish RTC
//! advancing, a second hart started with SBI HSM, a virtio-blk read through virtio-mmio (when a disk is
//! there), the RTC alarm interrupt (bootargs `rtc-irq`) and a UART receive interrupt (bootargs `uart-irq`)
//! through the PLIC or the APLIC + IMSIC, and finally the power-off path named by bootargs `exit=...`.
//! It is built as an ELF and as a raw binary (`objcopy -O binary`), and both must behave the same.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

global_asm!(
    r#"
    .section .text.entry
    .globl _start
_start:
    la sp, __stack0_top
    mv s0, a0
    mv s1, a1
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:  mv a0, s0
    mv a1, s1
    call boot_main
3:  wfi
    j 3b

    .globl _start_hart1
_start_hart1:
    la sp, __stack1_top
    call hart1_main
4:  wfi
    j 4b

    .align 4
    .globl trap_entry
trap_entry:
    addi sp, sp, -128
    sd ra, 0(sp)
    sd t0, 8(sp)
    sd t1, 16(sp)
    sd t2, 24(sp)
    sd a0, 32(sp)
    sd a1, 40(sp)
    sd a2, 48(sp)
    sd a3, 56(sp)
    sd a4, 64(sp)
    sd a5, 72(sp)
    sd a6, 80(sp)
    sd a7, 88(sp)
    sd t3, 96(sp)
    sd t4, 104(sp)
    sd t5, 112(sp)
    sd t6, 120(sp)
    call trap_handler
    ld ra, 0(sp)
    ld t0, 8(sp)
    ld t1, 16(sp)
    ld t2, 24(sp)
    ld a0, 32(sp)
    ld a1, 40(sp)
    ld a2, 48(sp)
    ld a3, 56(sp)
    ld a4, 64(sp)
    ld a5, 72(sp)
    ld a6, 80(sp)
    ld a7, 88(sp)
    ld t3, 96(sp)
    ld t4, 104(sp)
    ld t5, 112(sp)
    ld t6, 120(sp)
    addi sp, sp, 128
    sret
"#
);

extern "C" {
    fn _start_hart1();
    fn trap_entry();
}

// ---------------------------------------------------------------------------------------------- SBI

const EXT_LEGACY_SET_TIMER: usize = 0x00;
const EXT_LEGACY_PUTCHAR: usize = 0x01;
const EXT_LEGACY_GETCHAR: usize = 0x02;
const EXT_LEGACY_SHUTDOWN: usize = 0x08;
const EXT_TIME: usize = 0x5449_4D45;
const EXT_HSM: usize = 0x48_534D;
const EXT_SRST: usize = 0x5352_5354;
const EXT_DBCN: usize = 0x4442_434E;

fn sbi(ext: usize, fid: usize, a0: usize, a1: usize, a2: usize) -> (isize, usize) {
    let (err, val): (usize, usize);
    // SAFETY: an SBI call; the SEE only reads the argument registers and writes a0/a1.
    unsafe {
        asm!("ecall", inlateout("a0") a0 => err, inlateout("a1") a1 => val, in("a2") a2,
             in("a6") fid, in("a7") ext);
    }
    (err as isize, val)
}

fn legacy(ext: usize, a0: usize) -> isize {
    let ret: usize;
    // SAFETY: a legacy SBI v0.1 call: a0 in, a0 out.
    unsafe { asm!("ecall", inlateout("a0") a0 => ret, in("a7") ext) };
    ret as isize
}

// ------------------------------------------------------------------------------------------ console

const UART: usize = 0x1000_0000;

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let (err, _) = sbi(EXT_DBCN, 0, s.len(), s.as_ptr() as usize, 0);
        if err != 0 {
            // No DBCN: straight to the ns16550a.
            for b in s.bytes() {
                // SAFETY: UART0 is MMIO at a fixed address on QEMU virt; wait for THR empty, then write.
                unsafe {
                    while read_volatile((UART + 5) as *const u8) & 0x20 == 0 {}
                    write_volatile(UART as *mut u8, b);
                }
            }
        }
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{ let _ = writeln!(Console, $($arg)*); }};
}

static FAILS: AtomicUsize = AtomicUsize::new(0);

fn pass(name: &str) {
    say!("BM-PASS {}", name);
}

fn fail(name: &str, why: &str) {
    FAILS.fetch_add(1, Ordering::Relaxed);
    say!("BM-FAIL {} {}", name, why);
}

// ------------------------------------------------------------------------------------- device tree

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What the tests need from the device tree.
struct Fdt {
    bootargs: &'static [u8],
    timebase: u64,
    cpus: usize,
    sstc: bool,
    plic: bool,
    aplic: bool,
    virtio0: bool,
}

fn parse_fdt(addr: usize) -> Fdt {
    let mut out = Fdt {
        bootargs: b"",
        timebase: 10_000_000,
        cpus: 0,
        sstc: false,
        plic: false,
        aplic: false,
        virtio0: false,
    };
    // SAFETY: the VMM put a device tree of `totalsize` bytes at a1.
    let head = unsafe { core::slice::from_raw_parts(addr as *const u8, 40) };
    if be32(head, 0) != 0xd00d_feed {
        return out;
    }
    let total = be32(head, 4) as usize;
    // SAFETY: as above, now the whole blob.
    let b: &'static [u8] = unsafe { core::slice::from_raw_parts(addr as *const u8, total) };
    let off_struct = be32(b, 8) as usize;
    let off_strings = be32(b, 12) as usize;
    let mut at = off_struct;
    let mut depth = 0usize;
    let mut node: &[u8] = b"";
    let mut parent_is_cpus = false;
    let mut in_cpus = false;
    while at + 4 <= b.len() {
        let token = be32(b, at);
        at += 4;
        match token {
            1 => {
                let start = at;
                while b[at] != 0 {
                    at += 1;
                }
                node = &b[start..at];
                at = (at + 4) & !3;
                depth += 1;
                if depth == 2 {
                    in_cpus = node == b"cpus";
                }
                parent_is_cpus = in_cpus && depth == 3;
                if parent_is_cpus && node.starts_with(b"cpu@") {
                    out.cpus += 1;
                }
                if node.starts_with(b"plic@") {
                    out.plic = true;
                }
                if node == b"interrupt-controller@d000000" {
                    out.aplic = true;
                }
            }
            2 => {
                depth -= 1;
                parent_is_cpus = false;
            }
            3 => {
                let len = be32(b, at) as usize;
                let name_off = be32(b, at + 4) as usize;
                let value = &b[at + 8..at + 8 + len];
                at = (at + 8 + len + 3) & !3;
                let mut end = off_strings + name_off;
                while b[end] != 0 {
                    end += 1;
                }
                let name = &b[off_strings + name_off..end];
                if node == b"chosen" && name == b"bootargs" {
                    out.bootargs = value.strip_suffix(b"\0").unwrap_or(value);
                }
                if node == b"cpus" && name == b"timebase-frequency" && len == 4 {
                    out.timebase = u64::from(be32(value, 0));
                }
                if parent_is_cpus && node == b"cpu@0" && name == b"riscv,isa" {
                    out.sstc = value.windows(5).any(|w| w == b"_sstc");
                }
                if node == b"virtio_mmio@10001000" && name == b"reg" {
                    out.virtio0 = true;
                }
            }
            4 => {}
            _ => break,
        }
    }
    out
}

fn has_word(args: &[u8], word: &[u8]) -> bool {
    args.split(|&c| c == b' ').any(|w| w == word)
}

fn word_value<'a>(args: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    args.split(|&c| c == b' ').find_map(|w| w.strip_prefix(key))
}

// ---------------------------------------------------------------------------------------- traps

fn rdtime() -> u64 {
    let t: u64;
    // SAFETY: reads the time CSR.
    unsafe { asm!("rdtime {}", out(reg) t) };
    t
}

const SIE_STIE: usize = 1 << 5;
const SIE_SEIE: usize = 1 << 9;
const SCAUSE_TIMER: usize = (1 << 63) | 5;
const SCAUSE_EXTERNAL: usize = (1 << 63) | 9;

/// 0: SBI TIME, 1: Sstc, 2: legacy SBI v0.1 set_timer.
static TIMER_MODE: AtomicUsize = AtomicUsize::new(0);
static TICKS: AtomicUsize = AtomicUsize::new(0);
static TICKS_WANTED: AtomicUsize = AtomicUsize::new(0);
static TICK_PERIOD: AtomicU64 = AtomicU64::new(0);
/// 0: PLIC, 1: APLIC + IMSIC.
static EXT_MODE: AtomicUsize = AtomicUsize::new(0);
static UART_CHAR: AtomicUsize = AtomicUsize::new(0);
static EXT_IRQS: AtomicUsize = AtomicUsize::new(0);
static RTC_IRQS: AtomicUsize = AtomicUsize::new(0);
/// An interrupt identity nobody asked for.
static OTHER_IRQ: AtomicUsize = AtomicUsize::new(0);

fn set_timer(at: u64) {
    match TIMER_MODE.load(Ordering::Relaxed) {
        // SAFETY: stimecmp (Sstc) only schedules the timer interrupt.
        1 => unsafe { asm!("csrw 0x14d, {}", in(reg) at) },
        2 => {
            legacy(EXT_LEGACY_SET_TIMER, at as usize);
        }
        _ => {
            sbi(EXT_TIME, 0, at as usize, 0, 0);
        }
    }
}

const PLIC: usize = 0x0c00_0000;
const APLIC: usize = 0x0d00_0000;
const UART_IRQ: u32 = 10;
const RTC: usize = 0x10_1000;
const RTC_IRQ: u32 = 11;

#[no_mangle]
extern "C" fn trap_handler() {
    let scause: usize;
    // SAFETY: reads scause.
    unsafe { asm!("csrr {}, scause", out(reg) scause) };
    match scause {
        SCAUSE_TIMER => {
            let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
            if n < TICKS_WANTED.load(Ordering::Relaxed) {
                set_timer(rdtime() + TICK_PERIOD.load(Ordering::Relaxed));
            } else {
                set_timer(u64::MAX);
            }
        }
        SCAUSE_EXTERNAL => {
            EXT_IRQS.fetch_add(1, Ordering::Relaxed);
            // Claim until the interrupt controller has nothing more for this hart.
            loop {
                let id = if EXT_MODE.load(Ordering::Relaxed) == 0 {
                    // SAFETY: PLIC context 0 claim register.
                    unsafe { read_volatile((PLIC + 0x20_0004) as *const u32) }
                } else {
                    let v: usize;
                    // SAFETY: claim the top IMSIC interrupt (stopei).
                    unsafe { asm!("csrrw {}, 0x15c, zero", out(reg) v) };
                    ((v >> 16) & 0x7ff) as u32
                };
                if id == 0 {
                    break;
                }
                if id == UART_IRQ {
                    // SAFETY: drain the UART receive FIFO.
                    unsafe {
                        while read_volatile((UART + 5) as *const u8) & 1 != 0 {
                            UART_CHAR.store(
                                read_volatile(UART as *const u8) as usize,
                                Ordering::Relaxed,
                            );
                        }
                    }
                } else if id == RTC_IRQ {
                    RTC_IRQS.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: Goldfish RTC CLEAR_INTERRUPT: lowers the line.
                    unsafe { write_volatile((RTC + 0x1c) as *mut u32, 1) };
                } else {
                    OTHER_IRQ.store(id as usize, Ordering::Relaxed);
                }
                if EXT_MODE.load(Ordering::Relaxed) == 0 {
                    // SAFETY: PLIC completion.
                    unsafe { write_volatile((PLIC + 0x20_0004) as *mut u32, id) };
                }
            }
        }
        other => {
            let (sepc, stval): (usize, usize);
            // SAFETY: read the trap CSRs for the report.
            unsafe {
                asm!("csrr {}, sepc", out(reg) sepc);
                asm!("csrr {}, stval", out(reg) stval);
            }
            say!(
                "BM-FAIL trap scause={:#x} sepc={:#x} stval={:#x}",
                other,
                sepc,
                stval
            );
            finish(b"srst-fail");
        }
    }
}

fn enable_interrupts(sie: usize) {
    // SAFETY: set the interrupt enables and the global S-mode enable; the trap vector is installed.
    unsafe {
        asm!("csrs sie, {}", in(reg) sie);
        asm!("csrsi sstatus, 2");
    }
}

fn disable_interrupts() {
    // SAFETY: clear the global enable.
    unsafe { asm!("csrci sstatus, 2") };
}

fn wait_until(deadline: u64, done: impl Fn() -> bool) -> bool {
    while rdtime() < deadline {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}

// ---------------------------------------------------------------------------------------- tests

/// Five ticks 10 ms apart, each programmed from the timer interrupt. A compare value the host loses is
/// re-armed (after 200 ms without a tick) and counted: KVM up to at least Linux 7.2, on hosts with Sstc,
/// keeps an SBI set_timer value only in the vstimecmp CSR until the next guest exit, so a vcpu thread
/// preempted right after the call gets the previous value back (a known host bug, not rvvmm's).
fn test_timer(name: &str, mode: usize, tb: u64) {
    let period = tb / 100; // 10 ms
    TIMER_MODE.store(mode, Ordering::Relaxed);
    TICKS.store(0, Ordering::Relaxed);
    TICKS_WANTED.store(5, Ordering::Relaxed);
    TICK_PERIOD.store(period, Ordering::Relaxed);
    let start = rdtime();
    set_timer(start + period);
    enable_interrupts(SIE_STIE);
    let (mut seen, mut since, mut rearms) = (0, start, 0);
    let deadline = start + 5 * tb;
    while TICKS.load(Ordering::Relaxed) < 5 && rdtime() < deadline {
        let (ticks, now) = (TICKS.load(Ordering::Relaxed), rdtime());
        if ticks != seen {
            (seen, since) = (ticks, now);
        } else if now - since > 20 * period {
            disable_interrupts();
            if TICKS.load(Ordering::Relaxed) == seen {
                set_timer(rdtime() + period);
                rearms += 1;
            }
            since = rdtime();
            enable_interrupts(SIE_STIE);
        }
        core::hint::spin_loop();
    }
    disable_interrupts();
    set_timer(u64::MAX);
    let ticks = TICKS.load(Ordering::Relaxed);
    let elapsed_ms = (rdtime() - start) * 1000 / tb;
    if ticks >= 5 && elapsed_ms >= 40 {
        say!(
            "BM-PASS {} ticks=5 ms={} rearmed={}",
            name,
            elapsed_ms,
            rearms
        );
    } else {
        say!(
            "BM-FAIL {} ticks={} ms={} rearmed={}",
            name,
            ticks,
            elapsed_ms,
            rearms
        );
        FAILS.fetch_add(1, Ordering::Relaxed);
    }
}

fn rtc_ns() -> u64 {
    // SAFETY: Goldfish RTC registers; TIME_LOW first latches TIME_HIGH.
    unsafe {
        let low = read_volatile(RTC as *const u32);
        let high = read_volatile((RTC + 4) as *const u32);
        (u64::from(high) << 32) | u64::from(low)
    }
}

fn test_rtc(tb: u64) {
    let t1 = rtc_ns();
    let start = rdtime();
    wait_until(start + tb / 5, || false); // 200 ms
    let t2 = rtc_ns();
    let delta_ms = t2.saturating_sub(t1) / 1_000_000;
    // After 2020-01-01 and advancing about as far as the timer did.
    if t1 > 1_577_836_800_000_000_000 && (100..5000).contains(&delta_ms) {
        say!(
            "BM-PASS rtc seconds={} delta_ms={}",
            t2 / 1_000_000_000,
            delta_ms
        );
    } else {
        say!("BM-FAIL rtc t1={} t2={} delta_ms={}", t1, t2, delta_ms);
        FAILS.fetch_add(1, Ordering::Relaxed);
    }
}

static HART1_SEEN: AtomicUsize = AtomicUsize::new(0);

#[no_mangle]
extern "C" fn hart1_main(hartid: usize, opaque: usize) {
    HART1_SEEN.store(opaque + hartid, Ordering::SeqCst);
    sbi(EXT_HSM, 1, 0, 0, 0); // HART_STOP: does not return on success
}

fn test_hsm(tb: u64) {
    let (err, _) = sbi(EXT_HSM, 0, 1, _start_hart1 as *const () as usize, 0x1000);
    if err != 0 {
        return fail("hsm", "hart_start failed");
    }
    let ok = wait_until(rdtime() + 2 * tb, || {
        HART1_SEEN.load(Ordering::SeqCst) == 0x1001
    });
    // HART_GET_STATUS: 1 = STOPPED once it has stopped itself.
    let stopped = wait_until(rdtime() + 2 * tb, || sbi(EXT_HSM, 2, 1, 0, 0) == (0, 1));
    if ok && stopped {
        pass("hsm hart1-ran-and-stopped");
    } else {
        fail(
            "hsm",
            if ok {
                "hart1 did not stop"
            } else {
                "hart1 never ran"
            },
        );
    }
}

const VIRTIO0: usize = 0x1000_1000;
const QSIZE: usize = 8;

#[repr(C, align(4096))]
struct VirtQueue {
    desc: [[u64; 2]; QSIZE],
    avail: [u16; 3 + QSIZE],
    /// The used ring starts at 2048 (it must be 4-byte aligned).
    _pad: [u8; 2048 - 16 * QSIZE - 2 * (3 + QSIZE)],
    used_flags: u16,
    used_idx: u16,
    used_ring: [[u32; 2]; QSIZE],
}

#[repr(C, align(16))]
struct BlkRequest {
    kind: u32,
    reserved: u32,
    sector: u64,
    data: [u8; 512],
    status: u8,
}

static mut QUEUE: VirtQueue = VirtQueue {
    desc: [[0; 2]; QSIZE],
    avail: [0; 3 + QSIZE],
    _pad: [0; 2048 - 16 * QSIZE - 2 * (3 + QSIZE)],
    used_flags: 0,
    used_idx: 0,
    used_ring: [[0; 2]; QSIZE],
};
static mut REQ: BlkRequest = BlkRequest {
    kind: 0,
    reserved: 0,
    sector: 0,
    data: [0; 512],
    status: 0xff,
};

fn mmio_r(off: usize) -> u32 {
    // SAFETY: virtio-mmio slot 0 register.
    unsafe { read_volatile((VIRTIO0 + off) as *const u32) }
}

fn mmio_w(off: usize, v: u32) {
    // SAFETY: virtio-mmio slot 0 register.
    unsafe { write_volatile((VIRTIO0 + off) as *mut u32, v) }
}

fn test_virtio_blk(tb: u64) {
    if mmio_r(0) != 0x7472_6976 || mmio_r(4) != 2 || mmio_r(8) != 2 {
        return fail("virtio-blk", "no modern virtio-blk in slot 0");
    }
    mmio_w(0x70, 0);
    mmio_w(0x70, 1 | 2);
    mmio_w(0x14, 1);
    if mmio_r(0x10) & 1 == 0 {
        return fail("virtio-blk", "no VIRTIO_F_VERSION_1");
    }
    mmio_w(0x24, 1);
    mmio_w(0x20, 1);
    mmio_w(0x24, 0);
    mmio_w(0x20, 0);
    mmio_w(0x70, 1 | 2 | 8);
    if mmio_r(0x70) & 8 == 0 {
        return fail("virtio-blk", "FEATURES_OK refused");
    }
    mmio_w(0x30, 0);
    if (mmio_r(0x34) as usize) < QSIZE {
        return fail("virtio-blk", "queue too small");
    }
    mmio_w(0x38, QSIZE as u32);
    let (q, req) = (&raw mut QUEUE, &raw mut REQ);
    // A driver hands the device clean rings: the hostile tests may have left an available index of
    // 1000 in this memory, which the device would see (and refuse) as soon as DRIVER_OK kicks it.
    // SAFETY: QUEUE is this hart's; the device is reset, so nothing else touches it.
    unsafe {
        write_volatile(&raw mut (*q).avail[0], 0);
        write_volatile(&raw mut (*q).avail[1], 0);
        write_volatile(&raw mut (*q).used_flags, 0);
        write_volatile(&raw mut (*q).used_idx, 0);
        fence(Ordering::SeqCst);
    }
    let qa = q as usize;
    let desc = qa;
    let avail = qa + core::mem::offset_of!(VirtQueue, avail);
    let used = qa + core::mem::offset_of!(VirtQueue, used_flags);
    for (off, v) in [(0x80, desc), (0x90, avail), (0xa0, used)] {
        mmio_w(off, v as u32);
        mmio_w(off + 4, (v >> 32) as u32);
    }
    mmio_w(0x44, 1);
    mmio_w(0x70, 1 | 2 | 8 | 4);
    let r = req as usize;
    // SAFETY: the descriptors point at REQ; the device writes only the data and status parts.
    unsafe {
        let d = &raw mut (*q).desc;
        // addr, then len | flags << 32 | next << 48 (little-endian layout of a virtq_desc).
        (*d)[0] = [r as u64, 16 | (1u64 << 32) | (1u64 << 48)];
        (*d)[1] = [(r + 16) as u64, 512 | (3u64 << 32) | (2u64 << 48)];
        (*d)[2] = [(r + 16 + 512) as u64, 1 | (2u64 << 32)];
        let a = &raw mut (*q).avail;
        write_volatile(&raw mut (*a)[2], 0);
        fence(Ordering::SeqCst);
        write_volatile(&raw mut (*a)[1], 1);
        fence(Ordering::SeqCst);
    }
    mmio_w(0x50, 0);
    // SAFETY: the device updates used_idx; read it volatile.
    let done = wait_until(rdtime() + 5 * tb, || unsafe {
        read_volatile(&raw const (*q).used_idx) == 1
    });
    // SAFETY: the request completed (or timed out); read what the device wrote.
    let (status, data) = unsafe { (read_volatile(&raw const (*req).status), &(*req).data) };
    let want = b"RVVMM-BAREMETAL-DISK";
    if done && status == 0 && &data[..want.len()] == want {
        pass("virtio-blk read-sector0");
    } else {
        say!("BM-FAIL virtio-blk done={} status={}", done, status);
        FAILS.fetch_add(1, Ordering::Relaxed);
    }
    mmio_w(0x70, 0);
}

/// The second virtio-mmio slot (the second `--disk`).
const VIRTIO1: usize = VIRTIO0 + 0x1000;

const EMPTY_QUEUE: VirtQueue = VirtQueue {
    desc: [[0; 2]; QSIZE],
    avail: [0; 3 + QSIZE],
    _pad: [0; 2048 - 16 * QSIZE - 2 * (3 + QSIZE)],
    used_flags: 0,
    used_idx: 0,
    used_ring: [[0; 2]; QSIZE],
};
const EMPTY_REQ: BlkRequest = BlkRequest {
    kind: 0,
    reserved: 0,
    sector: 0,
    data: [0; 512],
    status: 0xff,
};
static mut FLOOD_QUEUES: [VirtQueue; 2] = [EMPTY_QUEUE, EMPTY_QUEUE];
static mut FLOOD_REQS: [BlkRequest; 2] = [EMPTY_REQ, EMPTY_REQ];

/// Brings the virtio-blk at `base` up with queue 0 of QSIZE entries at `q` (clean rings), features
/// VERSION_1 only; one chain (head 0) reads `kind` of sector 0 into `req`. Returns the status register.
fn flood_setup(base: usize, q: *mut VirtQueue, req: *mut BlkRequest, kind: u32) -> u32 {
    // SAFETY: the device-id register of the virtio-mmio device at `base`.
    if unsafe { read_volatile((base + 8) as *const u32) } != 2 {
        return 0;
    }
    // SAFETY: the queue and request are this kernel's statics, unused by the device before DRIVER_OK.
    unsafe {
        (*req).kind = kind;
        let d = &raw mut (*q).desc;
        let rq = req as usize;
        // addr, then len | flags << 32 | next << 48 (little-endian layout of a virtq_desc).
        (*d)[0] = [rq as u64, 16 | (1u64 << 32) | (1u64 << 48)];
        (*d)[1] = [(rq + 16) as u64, 512 | (3u64 << 32) | (2u64 << 48)];
        (*d)[2] = [(rq + 16 + 512) as u64, 1 | (2u64 << 32)];
        fence(Ordering::SeqCst);
    }
    let qa = q as usize;
    let avail = qa + core::mem::offset_of!(VirtQueue, avail);
    let used = qa + core::mem::offset_of!(VirtQueue, used_flags);
    blk_setup_at(base, QSIZE as u32, qa, avail, used)
}

/// `flood`: a driver that never lets the first disk's ring run empty (GET_ID requests, which cost the
/// device no system call, the same chain offered again as soon as it is used, the ring refilled without
/// waiting for completions and notified only now and then) while it reads sector 0 of the second disk
/// one request at a time, as a well-behaved driver would. Prints each second how many reads of the
/// second disk completed and how many flood requests were offered; never ends (rvvmm is stopped from
/// outside: SIGTERM, the API).
fn flood(tb: u64) -> ! {
    let qs = &raw mut FLOOD_QUEUES;
    let rs = &raw mut FLOOD_REQS;
    // SAFETY: distinct elements of this kernel's statics.
    let (q0, q1, r0, r1) = unsafe {
        (
            &raw mut (*qs)[0],
            &raw mut (*qs)[1],
            &raw mut (*rs)[0],
            &raw mut (*rs)[1],
        )
    };
    let st0 = flood_setup(VIRTIO0, q0, r0, 8); // VIRTIO_BLK_T_GET_ID
    let st1 = flood_setup(VIRTIO1, q1, r1, 0); // VIRTIO_BLK_T_IN
    if st0 & 0x4f != 0xf || st1 & 0x4f != 0xf {
        say!("BM-FAIL flood setup status={:#x},{:#x}", st0, st1);
        finish(b"srst-fail");
    }
    say!("BM-FLOOD-START");
    let notify = |base: usize| {
        // SAFETY: QueueNotify of the device at `base`.
        unsafe { write_volatile((base + 0x50) as *mut u32, 0) }
    };
    let (mut offered, mut reads, mut bad_reads) = (0u16, 0u64, 0u64);
    let (mut total, mut round) = (0u64, 0u64);
    let mut pending = false;
    let mut next_second = rdtime() + tb;
    loop {
        // SAFETY: the rings are this kernel's; the device writes only the used rings and the requests'
        // data and status; read them volatile.
        unsafe {
            let used = read_volatile(&raw const (*q0).used_idx);
            let a = &raw mut (*q0).avail;
            while offered.wrapping_sub(used) < QSIZE as u16 {
                write_volatile(&raw mut (*a)[2 + usize::from(offered) % QSIZE], 0);
                offered = offered.wrapping_add(1);
                total += 1;
            }
            fence(Ordering::SeqCst);
            write_volatile(&raw mut (*a)[1], offered);
            fence(Ordering::SeqCst);
            round += 1;
            if round % 64 == 0 {
                notify(VIRTIO0);
            }
            let a1 = &raw mut (*q1).avail;
            let issued = read_volatile(&raw const (*a1)[1]);
            if !pending {
                write_volatile(&raw mut (*r1).status, 0xff);
                write_volatile(&raw mut (*a1)[2 + usize::from(issued) % QSIZE], 0);
                fence(Ordering::SeqCst);
                write_volatile(&raw mut (*a1)[1], issued.wrapping_add(1));
                fence(Ordering::SeqCst);
                notify(VIRTIO1);
                pending = true;
            } else if read_volatile(&raw const (*q1).used_idx) == issued {
                let ok = read_volatile(&raw const (*r1).status) == 0
                    && (*r1).data.starts_with(b"RVVMM-BAREMETAL-DISK");
                if ok {
                    reads += 1;
                } else {
                    bad_reads += 1;
                }
                pending = false;
            }
        }
        let now = rdtime();
        if now >= next_second {
            say!(
                "BM-FLOOD reads={} bad={} offered={}",
                reads,
                bad_reads,
                total
            );
            next_second = now + tb;
        }
    }
}

/// Sets virtio-blk slot 0 up with queue 0 of `num` entries whose rings are at `desc`, `avail` and
/// `used`, features VERSION_1 only, and sets DRIVER_OK. Returns the status register afterwards.
fn blk_setup(num: u32, desc: usize, avail: usize, used: usize) -> u32 {
    blk_setup_at(VIRTIO0, num, desc, avail, used)
}

/// [`blk_setup`] for the virtio-blk device whose registers are at `base`.
fn blk_setup_at(base: usize, num: u32, desc: usize, avail: usize, used: usize) -> u32 {
    let w = |off: usize, v: u32| {
        // SAFETY: a virtio-mmio register of the device at `base`.
        unsafe { write_volatile((base + off) as *mut u32, v) }
    };
    w(0x70, 0);
    w(0x70, 1 | 2);
    w(0x24, 1);
    w(0x20, 1);
    w(0x24, 0);
    w(0x20, 0);
    w(0x70, 1 | 2 | 8);
    w(0x30, 0);
    w(0x38, num);
    for (off, v) in [(0x80, desc), (0x90, avail), (0xa0, used)] {
        w(off, v as u32);
        w(off + 4, (v >> 32) as u32);
    }
    w(0x44, 1);
    w(0x70, 1 | 2 | 8 | 4);
    // SAFETY: the device's status register.
    unsafe { read_volatile((base + 0x70) as *const u32) }
}

fn check(name: &str, ok: bool, detail: core::fmt::Arguments) {
    if ok {
        say!("BM-PASS {} {}", name, detail);
    } else {
        FAILS.fetch_add(1, Ordering::Relaxed);
        say!("BM-FAIL {} {}", name, detail);
    }
}

/// `hostile`: what a broken or malicious driver does to rvvmm's devices. Each action must be refused
/// or ignored without harming rvvmm; the normal virtio-blk read that follows proves the device still
/// serves, and the exit status proves rvvmm kept running.
fn test_hostile(tb: u64) {
    // Notifications of queues that do not exist, before any set-up.
    for q in [1u32, 7, 0xffff, u32::MAX] {
        mmio_w(0x50, q);
    }
    // Writes to read-only registers and to the read-only config space (capacity).
    let capacity = mmio_r(0x100);
    for off in [
        0x000, 0x004, 0x008, 0x00c, 0x010, 0x034, 0x060, 0x0fc, 0x100, 0x104,
    ] {
        mmio_w(off, 0xdead_beef);
    }
    let ok = mmio_r(0) == 0x7472_6976 && mmio_r(8) == 2 && mmio_r(0x100) == capacity;
    check(
        "hostile-readonly",
        ok,
        format_args!("capacity={}", capacity),
    );

    // Accesses of every size to every device and to unmapped addresses (reads everywhere; writes only
    // where they cannot end the test: virtio, the UART's scratch register, the finisher with widths it
    // ignores, unmapped space).
    let mut sum = 0u64;
    for base in [
        VIRTIO0,
        0x1000_0000,
        0x10_1000,
        0x10_0000,
        0x0c00_0000,
        0x0d00_0000,
        0x2000_0000,
        0x3000_0000,
    ] {
        for off in [0usize, 1, 2, 3, 4, 6, 7, 8, 0x50, 0x70, 0xff8] {
            // SAFETY: MMIO reads of the guest's own address space; rvvmm answers or ignores them.
            unsafe {
                sum = sum.wrapping_add(u64::from(read_volatile((base + off) as *const u8)));
                if off % 2 == 0 {
                    sum = sum.wrapping_add(u64::from(read_volatile((base + off) as *const u16)));
                }
                if off % 8 == 0 {
                    sum = sum.wrapping_add(read_volatile((base + off) as *const u64));
                }
            }
        }
    }
    // SAFETY: writes rvvmm must ignore or absorb (see above).
    unsafe {
        for off in [0usize, 1, 2, 3, 0x50, 0x51, 0x70, 0x100, 0x101] {
            write_volatile((VIRTIO0 + off) as *mut u8, 0xa5);
        }
        write_volatile((VIRTIO0 + 0x52) as *mut u16, 0xa5a5);
        write_volatile((VIRTIO0 + 0x58) as *mut u64, u64::MAX);
        write_volatile(0x1000_0007 as *mut u8, 0x5a);
        write_volatile(0x10_0000 as *mut u8, 0x55);
        write_volatile(0x10_0000 as *mut u16, 0x5555);
        write_volatile(0x2000_0000 as *mut u64, u64::MAX);
        write_volatile(0x3000_0000 as *mut u32, u32::MAX);
    }
    pass_detail("hostile-odd-accesses", sum);

    // Queue set-ups the device must refuse with DEVICE_NEEDS_RESET: a size that is not a power of two,
    // and rings outside guest RAM.
    let q = &raw mut QUEUE;
    let qa = q as usize;
    let (desc, avail, used) = (
        qa,
        qa + core::mem::offset_of!(VirtQueue, avail),
        qa + core::mem::offset_of!(VirtQueue, used_flags),
    );
    let st = blk_setup(3, desc, avail, used);
    check(
        "hostile-queue-size-3",
        st & 0x40 != 0,
        format_args!("status={:#x}", st),
    );
    let st = blk_setup(QSIZE as u32, 0xffff_ffff_0000, avail, used);
    check(
        "hostile-rings-outside-ram",
        st & 0x40 != 0,
        format_args!("status={:#x}", st),
    );

    // A valid queue, then chains the device must fail or skip: a descriptor loop, buffers outside RAM
    // and in MMIO, a huge length, a next index out of range, an avail index far ahead.
    let st = blk_setup(QSIZE as u32, desc, avail, used);
    check(
        "hostile-valid-queue",
        st & 0x40 == 0,
        format_args!("status={:#x}", st),
    );
    let r = (&raw mut REQ) as usize;
    // SAFETY: the rings and requests are this kernel's statics; the device only reads the chains here.
    unsafe {
        let d = &raw mut (*q).desc;
        let a = &raw mut (*q).avail;
        (*d)[0] = [r as u64, 16 | (1u64 << 32) | (1u64 << 48)];
        (*d)[1] = [r as u64, 16 | (1u64 << 32)]; // next 0: a loop
        (*d)[2] = [0xffff_ffff_f000, 512 | (1u64 << 32) | (3u64 << 48)];
        (*d)[3] = [0x1000_0000, 512 | (3u64 << 32) | (4u64 << 48)];
        (*d)[4] = [r as u64, 0xffff_ffff | (1u64 << 32) | (200u64 << 48)];
        (*d)[5] = [(r + 16 + 512) as u64, 1 | (2u64 << 32)];
        for (i, head) in [0u16, 2, 3, 4].iter().enumerate() {
            write_volatile(&raw mut (*a)[2 + i], *head);
        }
        fence(Ordering::SeqCst);
        write_volatile(&raw mut (*a)[1], 4);
        fence(Ordering::SeqCst);
    }
    mmio_w(0x50, 0);
    wait_until(rdtime() + tb / 2, || false);
    // SAFETY: as above.
    unsafe {
        write_volatile(&raw mut (*q).avail[1], 1000);
        fence(Ordering::SeqCst);
    }
    mmio_w(0x50, 0);
    // An interrupt/notification storm.
    for _ in 0..20_000 {
        mmio_w(0x50, 0);
        mmio_w(0x64, 0xffff_ffff);
    }
    wait_until(rdtime() + tb / 2, || false);
    let st = mmio_r(0x70);
    pass_detail("hostile-chains", u64::from(st));
    mmio_w(0x70, 0);
    check(
        "hostile-reset",
        mmio_r(0x70) == 0,
        format_args!("status={:#x}", mmio_r(0x70)),
    );

    // DBCN buffers that wrap around the address space, lie outside RAM or are huge.
    let mut bad = 0;
    for (len, lo, hi) in [
        (0x1000usize, usize::MAX - 0xfff, 0usize),
        (16, 0x1000, 0),
        (16, 0x8000_0000, 1),
        (usize::MAX, usize::MAX - 15, 0),
    ] {
        let (err, _) = sbi(EXT_DBCN, 0, len, lo, hi);
        if err != -3 {
            bad += 1;
            say!(
                "BM-HOSTILE dbcn len={:#x} addr={:#x}:{:#x} err={}",
                len,
                hi,
                lo,
                err
            );
        }
        let (err, _) = sbi(EXT_DBCN, 1, len, lo, hi);
        if err != -3 {
            bad += 1;
            say!(
                "BM-HOSTILE dbcn-read len={:#x} addr={:#x}:{:#x} err={}",
                len,
                hi,
                lo,
                err
            );
        }
    }
    check(
        "hostile-dbcn-buffers",
        bad == 0,
        format_args!("bad={}", bad),
    );
}

fn pass_detail(name: &str, v: u64) {
    say!("BM-PASS {} value={:#x}", name, v);
}

/// Routes the UART (10) and RTC (11) interrupts to hart 0's S-mode through the PLIC, or through the APLIC
/// in MSI mode to the hart's IMSIC (the in-kernel AIA: the APLIC forwards each source as an MSI whose
/// identity the guest picks in its target register, and the IMSIC must enable that identity). Returns
/// the controller's name, or None when the device tree has neither.
fn setup_irqchip(fdt: &Fdt) -> Option<&'static str> {
    if fdt.aplic {
        EXT_MODE.store(1, Ordering::Relaxed);
        // SAFETY: APLIC (MSI mode) and this hart's IMSIC S-file through its indirect CSRs.
        unsafe {
            // IMSIC: eidelivery = 1, eithreshold = 0.
            asm!("csrw 0x150, {}", "csrw 0x151, {}", in(reg) 0x70usize, in(reg) 1usize);
            asm!("csrw 0x150, {}", "csrw 0x151, {}", in(reg) 0x72usize, in(reg) 0usize);
            for src in [UART_IRQ as usize, RTC_IRQ as usize] {
                // Enable identity `src` (eie0 holds identities 0..63).
                asm!("csrw 0x150, {}", "csrs 0x151, {}", in(reg) 0xc0usize, in(reg) 1usize << src);
                write_volatile((APLIC + 0x4 * src) as *mut u32, 6); // sourcecfg: level high
                write_volatile((APLIC + 0x3000 + 4 * src) as *mut u32, src as u32);
                // hart 0, EIID = src
            }
            write_volatile(APLIC as *mut u32, (1 << 8) | (1 << 2)); // domaincfg: IE, MSI mode
            write_volatile((APLIC + 0x1edc) as *mut u32, UART_IRQ); // setienum
            write_volatile((APLIC + 0x1edc) as *mut u32, RTC_IRQ);
        }
        Some("aplic")
    } else if fdt.plic {
        EXT_MODE.store(0, Ordering::Relaxed);
        // SAFETY: PLIC: priority 1 for both sources, enable them for context 0, threshold 0.
        unsafe {
            write_volatile((PLIC + 4 * UART_IRQ as usize) as *mut u32, 1);
            write_volatile((PLIC + 4 * RTC_IRQ as usize) as *mut u32, 1);
            write_volatile(
                (PLIC + 0x2000) as *mut u32,
                (1 << UART_IRQ) | (1 << RTC_IRQ),
            );
            write_volatile((PLIC + 0x20_0000) as *mut u32, 0);
        }
        Some("plic")
    } else {
        None
    }
}

/// The Goldfish RTC alarm, 100 ms ahead, must arrive as external interrupt 11 (and not before it is due).
fn test_rtc_irq(chip: &str, tb: u64) {
    RTC_IRQS.store(0, Ordering::Relaxed);
    let due = rtc_ns() + 100_000_000;
    // SAFETY: Goldfish RTC: IRQ_ENABLED, then ALARM_HIGH and ALARM_LOW (which arms the alarm).
    unsafe {
        write_volatile((RTC + 0x10) as *mut u32, 1);
        write_volatile((RTC + 0x0c) as *mut u32, (due >> 32) as u32);
        write_volatile((RTC + 0x08) as *mut u32, due as u32);
    }
    enable_interrupts(SIE_SEIE);
    let ok = wait_until(rdtime() + 5 * tb, || RTC_IRQS.load(Ordering::Relaxed) != 0);
    disable_interrupts();
    let at = rtc_ns();
    // SAFETY: RTC IRQ_ENABLED off; ALARM_STATUS reads 0 once the alarm has fired.
    let status = unsafe {
        write_volatile((RTC + 0x10) as *mut u32, 0);
        read_volatile((RTC + 0x18) as *const u32)
    };
    if ok && at >= due && status == 0 {
        say!(
            "BM-PASS rtc-alarm-irq-{} late_ms={}",
            chip,
            (at - due) / 1_000_000
        );
    } else {
        say!(
            "BM-FAIL rtc-alarm-irq-{} irqs={} early={} status={}",
            chip,
            RTC_IRQS.load(Ordering::Relaxed),
            at < due,
            status
        );
        FAILS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A key on rvvmm's stdin must arrive as the UART's receive interrupt (10).
fn test_uart_irq(chip: &str, tb: u64) {
    enable_interrupts(SIE_SEIE);
    // SAFETY: UART0: enable the receive-data interrupt, now that the interrupt controller is set up.
    unsafe { write_volatile((UART + 1) as *mut u8, 1) };
    let ok = wait_until(rdtime() + 20 * tb, || {
        UART_CHAR.load(Ordering::Relaxed) != 0
    });
    disable_interrupts();
    let c = UART_CHAR.load(Ordering::Relaxed) as u8;
    if ok {
        say!(
            "BM-PASS uart-irq-{} char={} irqs={}",
            chip,
            c as char,
            EXT_IRQS.load(Ordering::Relaxed)
        );
    } else {
        say!("BM-FAIL uart-irq-{} no receive interrupt", chip);
        FAILS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Console input through SBI: legacy getchar (ext 0x02) or DBCN read, polled until a byte arrives.
fn test_sbi_read(name: &str, tb: u64) {
    static BUF: AtomicU64 = AtomicU64::new(0);
    let deadline = rdtime() + 20 * tb;
    let mut got: Option<u8> = None;
    let mut errors = 0;
    while got.is_none() && rdtime() < deadline {
        if name == "legacy-getchar" {
            let r = legacy(EXT_LEGACY_GETCHAR, 0);
            if r >= 0 {
                got = Some(r as u8);
            }
        } else {
            let (err, n) = sbi(EXT_DBCN, 1, 1, BUF.as_ptr() as usize, 0);
            if err != 0 {
                errors += 1;
                break;
            }
            if n == 1 {
                got = Some(BUF.load(Ordering::Relaxed) as u8);
            }
        }
        // Poll every 10 ms.
        wait_until(rdtime() + tb / 100, || false);
    }
    match got {
        Some(c) if c.is_ascii_graphic() => say!("BM-PASS {} char={}", name, c as char),
        _ => {
            say!("BM-FAIL {} got={:?} errors={}", name, got, errors);
            FAILS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn finish(how: &[u8]) -> ! {
    say!(
        "BM-DONE fails={} exit={}",
        FAILS.load(Ordering::Relaxed),
        core::str::from_utf8(how).unwrap_or("?")
    );
    match how {
        b"srst-reboot" => {
            sbi(EXT_SRST, 0, 1, 0, 0);
        }
        b"srst-fail" => {
            sbi(EXT_SRST, 0, 0, 1, 0);
        }
        b"legacy-shutdown" => {
            legacy(EXT_LEGACY_SHUTDOWN, 0);
        }
        // The finisher's write is acted on by the VMM, not by this hart: wait for the end.
        // SAFETY: the sifive,test finisher.
        b"test-pass" => unsafe {
            write_volatile(0x10_0000 as *mut u32, 0x5555);
            idle()
        },
        // SAFETY: as above, a reset request.
        b"test-reset" => unsafe {
            write_volatile(0x10_0000 as *mut u32, 0x7777);
            idle()
        },
        // SAFETY: as above, with failure code 7.
        b"test-fail" => unsafe {
            write_volatile(0x10_0000 as *mut u32, (7 << 16) | 0x3333);
            idle()
        },
        b"spin" => loop {
            core::hint::spin_loop();
        },
        _ => {
            sbi(EXT_SRST, 0, 0, 0, 0);
        }
    }
    say!(
        "BM-FAIL exit {} returned",
        core::str::from_utf8(how).unwrap_or("?")
    );
    idle()
}

fn idle() -> ! {
    loop {
        // SAFETY: wait for interrupts, forever.
        unsafe { asm!("wfi") };
    }
}

#[no_mangle]
extern "C" fn boot_main(hartid: usize, fdt_addr: usize) -> ! {
    // SAFETY: direct-mode trap vector.
    unsafe { asm!("csrw stvec, {}", in(reg) trap_entry as *const () as usize) };
    let fdt = parse_fdt(fdt_addr);
    let (err, _) = sbi(EXT_DBCN, 0, 0, 0, 0);
    say!(
        "BM-START hart={} fdt={:#x} cpus={} sstc={} plic={} aplic={} args={}",
        hartid,
        fdt_addr,
        fdt.cpus,
        fdt.sstc,
        fdt.plic,
        fdt.aplic,
        core::str::from_utf8(fdt.bootargs).unwrap_or("?")
    );
    if err == 0 {
        pass("dbcn-console");
    } else {
        fail("dbcn-console", "DBCN write failed");
    }
    if has_word(fdt.bootargs, b"legacy") {
        let mut bad = 0;
        for &c in b"BM-LEGACY-CONSOLE-HELLO\n" {
            if legacy(EXT_LEGACY_PUTCHAR, c as usize) != 0 {
                bad += 1;
            }
        }
        if bad == 0 {
            pass("legacy-console");
        } else {
            fail("legacy-console", "putchar returned an error");
        }
        test_sbi_read("legacy-getchar", fdt.timebase);
        test_timer("timer-legacy", 2, fdt.timebase);
    }
    if has_word(fdt.bootargs, b"dbcn-read") {
        test_sbi_read("dbcn-read", fdt.timebase);
    }
    let tb = fdt.timebase;
    test_timer("timer-sbi", 0, tb);
    if fdt.sstc {
        test_timer("timer-sstc", 1, tb);
    }
    test_rtc(tb);
    if fdt.cpus >= 2 {
        test_hsm(tb);
    }
    if fdt.virtio0 && has_word(fdt.bootargs, b"hostile") {
        test_hostile(tb);
    }
    if fdt.virtio0 {
        test_virtio_blk(tb);
    }
    if fdt.virtio0 && has_word(fdt.bootargs, b"flood") {
        flood(tb);
    }
    let (rtc_irq, uart_irq) = (
        has_word(fdt.bootargs, b"rtc-irq"),
        has_word(fdt.bootargs, b"uart-irq"),
    );
    if rtc_irq || uart_irq {
        match setup_irqchip(&fdt) {
            Some(chip) => {
                if rtc_irq {
                    test_rtc_irq(chip, tb);
                }
                if uart_irq {
                    test_uart_irq(chip, tb);
                }
            }
            None => fail("irqchip", "no PLIC or APLIC in the device tree"),
        }
        let other = OTHER_IRQ.load(Ordering::Relaxed);
        if other != 0 {
            say!("BM-FAIL irqchip unexpected interrupt {}", other);
            FAILS.fetch_add(1, Ordering::Relaxed);
        }
    }
    finish(word_value(fdt.bootargs, b"exit=").unwrap_or(b"srst-shutdown"))
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    say!("BM-FAIL panic");
    finish(b"srst-fail")
}
