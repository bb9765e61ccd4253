//! Fuzz target `mmio_devices`: guest accesses of any offset and size to the non-virtio MMIO devices on
//! one bus laid out as in the guest (sifive,test finisher, Goldfish RTC, ns16550a UART), with console
//! input arriving in between. Accesses outside every device must be refused by the bus.

use std::sync::{Arc, Mutex, OnceLock};

use devices::console::ConsoleInput;
use devices::goldfish_rtc::GoldfishRtc;
use devices::interrupt::IrqLine;
use devices::serial::{HeldWrites, Uart};
use devices::sifive_test::SifiveTest;
use devices::MmioBus;

use crate::input::{Builder, Input};

const TEST_BASE: u64 = 0x10_0000;
const RTC_BASE: u64 = 0x10_1000;
const UART_BASE: u64 = 0x1000_0000;

/// An interrupt line that remembers its level and checks it is only driven when it changes.
#[derive(Default)]
struct CheckedLine(Mutex<Option<bool>>);

impl IrqLine for CheckedLine {
    fn set_level(&self, level: bool) -> std::io::Result<()> {
        let mut last = self.0.lock().unwrap();
        assert_ne!(
            *last,
            Some(level),
            "an interrupt line was driven to the level it had"
        );
        *last = Some(level);
        Ok(())
    }
}

/// The RTC starts an alarm thread: one per process, shared by all runs.
fn rtc() -> Arc<Mutex<GoldfishRtc>> {
    static RTC: OnceLock<Arc<Mutex<GoldfishRtc>>> = OnceLock::new();
    RTC.get_or_init(|| {
        let rtc = GoldfishRtc::new(Arc::new(NoCheckLine)).expect("rtc thread");
        Arc::new(Mutex::new(rtc))
    })
    .clone()
}

/// The shared RTC's line (its level carries over between runs, so it is not checked).
struct NoCheckLine;

impl IrqLine for NoCheckLine {
    fn set_level(&self, _level: bool) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one input: `op: u8` (0 read, 1 write, 2 console input, 3 pump the UART, 4 a one-byte store to
/// the UART's data register that may be held, 5 play the held stores), then for accesses a
/// device `u8`, an offset `u16`, a size `u8` (1..=8) and, for writes, the bytes.
pub fn run(data: &[u8]) {
    let input_queue = Arc::new(ConsoleInput::new());
    let mut dev = Uart::new(
        Arc::new(CheckedLine::default()),
        Box::new(std::io::sink()),
        input_queue.clone(),
    );
    let held = Arc::new(FakeHeld::default());
    dev.set_held_writes(held.clone());
    let uart = Arc::new(Mutex::new(dev));
    let mut bus = MmioBus::new();
    let test = SifiveTest::new(Box::new(|_| {}));
    bus.insert(TEST_BASE, 0x1000, Arc::new(Mutex::new(test)))
        .unwrap();
    bus.insert(RTC_BASE, 0x1000, rtc()).unwrap();
    bus.insert(UART_BASE, 0x100, uart.clone()).unwrap();
    let mut input = Input::new(data);
    while !input.is_empty() {
        let op = input.u8() % 6;
        let base = [TEST_BASE, RTC_BASE, UART_BASE, 0][usize::from(input.u8() % 4)];
        let addr = base + u64::from(input.u16() % 0x1100);
        let size = usize::from(input.u8() % 8) + 1;
        let inside = |len: usize| {
            [
                (TEST_BASE, 0x1000u64),
                (RTC_BASE, 0x1000),
                (UART_BASE, 0x100),
            ]
            .iter()
            .any(|&(b, l)| addr >= b && addr + len as u64 <= b + l)
        };
        match op {
            0 => {
                let mut buf = [0u8; 8];
                let hit = bus.read(addr, &mut buf[..size]);
                assert_eq!(hit, inside(size), "bus read at {addr:#x}+{size}");
            }
            1 => {
                let bytes = input.bytes(size);
                if !bytes.is_empty() {
                    let hit = bus.write(addr, bytes);
                    let len = bytes.len();
                    assert_eq!(hit, inside(len), "bus write at {addr:#x}+{len}");
                }
            }
            2 => {
                input_queue.push(input.short_bytes());
            }
            3 => uart.lock().unwrap().pump(),
            // A one-byte store to the data register: held while the UART says so (as KVM's coalesced
            // MMIO zone does), else an ordinary write.
            4 => {
                let byte = input.u8();
                if !held.store(byte) {
                    assert!(bus.write(UART_BASE, &[byte]));
                }
            }
            _ => {
                uart.lock().unwrap().take_held();
            }
        }
        // Only stores that were held are played (the fake checks the zone is only ever toggled).
        let u = uart.lock().unwrap();
        assert!(u.held_count() <= held.stored.load(std::sync::atomic::Ordering::Relaxed));
    }
}

/// Held writes as KVM's coalesced MMIO zone on the data register gives them.
#[derive(Default)]
struct FakeHeld {
    holding: Mutex<bool>,
    ring: Mutex<Vec<u8>>,
    stored: std::sync::atomic::AtomicU64,
}

impl FakeHeld {
    fn store(&self, byte: u8) -> bool {
        if !*self.holding.lock().unwrap() {
            return false;
        }
        self.ring.lock().unwrap().push(byte);
        self.stored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        true
    }
}

impl HeldWrites for FakeHeld {
    fn take(&self, f: &mut dyn FnMut(u64, u8)) {
        for b in std::mem::take(&mut *self.ring.lock().unwrap()) {
            f(0, b);
        }
    }
    fn hold(&self, on: bool) -> Result<(), String> {
        let mut h = self.holding.lock().unwrap();
        assert_ne!(*h, on, "the zone was set to what it was");
        *h = on;
        Ok(())
    }
}

/// Seeds: the UART set up like Linux's 8250 driver (LCR, DLL/DLM, FCR, IER) with console input; the
/// RTC's time read (low then high) and alarm set; the finisher's pass code.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let write = |b: &mut Builder, dev: u8, off: u16, bytes: &[u8]| {
        b.u8(1)
            .u8(dev)
            .u16(off)
            .u8(bytes.len() as u8 - 1)
            .bytes(bytes);
    };
    let read = |b: &mut Builder, dev: u8, off: u16, size: u8| {
        b.u8(0).u8(dev).u16(off).u8(size - 1);
    };
    let mut b = Builder::default();
    for (off, v) in [(3u16, 0x80u8), (0, 1), (1, 0), (3, 3), (2, 7), (1, 5)] {
        write(&mut b, 2, off, &[v]);
    }
    b.u8(2).u8(0).u16(0).u8(0).short_bytes(b"hello\r");
    b.u8(3).u8(0).u16(0).u8(0);
    for off in [5u16, 2, 0, 0, 5] {
        read(&mut b, 2, off, 1);
    }
    write(&mut b, 2, 0, b"x");
    out.push(b.0);

    let mut b = Builder::default();
    read(&mut b, 1, 0, 4);
    read(&mut b, 1, 4, 4);
    write(&mut b, 1, 0x0c, &1u32.to_le_bytes());
    write(&mut b, 1, 0x0c, &[0, 0, 0, 0]);
    write(&mut b, 1, 0x08, &[0, 0, 0, 0]);
    read(&mut b, 1, 0x10, 4);
    write(&mut b, 1, 0x1c, &1u32.to_le_bytes());
    out.push(b.0);

    let mut b = Builder::default();
    write(&mut b, 0, 0, &0x5555u32.to_le_bytes());
    write(&mut b, 0, 0, &0x1_3333u32.to_le_bytes());
    read(&mut b, 0, 0, 4);
    out.push(b.0);
    out
}
