//! The ns16550a UART at UART0: vm-superio's 16550A model on the MMIO bus, output to a writer (rvvmm's
//! stdout), input from the shared [`ConsoleInput`] queue.
//!
//! While the guest polls the UART (the THR-empty interrupt off, as Linux's console writes and bare-metal
//! kernels do), writes to the data register can be taken by the hypervisor without an exit
//! ([`HeldWrites`], KVM's coalesced MMIO) and are played into the model, in order, before the next
//! access to the UART and at least every few milliseconds: an exit per console byte instead of two.
//! The interrupt-driven transmit of a tty (THR-empty interrupt on) waits for an interrupt after each
//! FIFO-full of bytes, so then every write exits as before.
//!
//! The interrupt is a level, as on real hardware and as the device tree says (level-high): it is high
//! while the model's IIR reports a pending interrupt, and the line is driven only when that changes. (Pulsing
//! an edge on every vm-superio trigger made Linux see an interrupt storm it could not attribute.)

use std::io::Write;
use std::sync::Arc;

use vm_superio::serial::NoEvents;
use vm_superio::Serial;

use crate::console::ConsoleInput;
use crate::interrupt::{IrqLine, NoopTrigger};
use crate::MmioDevice;

/// Offset of the receive buffer / transmit holding register.
const DATA_OFFSET: u64 = 0;
/// Number of byte-wide registers (reg-shift 0).
const NUM_REGS: u64 = 8;
/// IIR bit 0: set when no interrupt is pending.
const IIR_NONE: u8 = 0x01;
/// Offset of the interrupt enable register (the divisor's high byte while LCR.DLAB is set).
const IER_OFFSET: u64 = 1;
/// Offset of the line control register.
const LCR_OFFSET: u64 = 3;
/// IER bit 1: the THR-empty interrupt.
const IER_THRI: u8 = 0x02;

/// How often held writes are played while the UART is in use (the guest's last bytes show within this).
pub const HELD_POLL_MIN: std::time::Duration = std::time::Duration::from_millis(10);
/// How often at most when the UART has been idle (a guest that writes without ever reading the status
/// register, a rare guest, sees its output this late at worst; the ring holds 170 writes, then they exit).
pub const HELD_POLL_MAX: std::time::Duration = std::time::Duration::from_millis(160);

/// When to play a UART's held writes next: [`HELD_POLL_MIN`] after activity (held writes played, or an
/// access to the UART), doubling while idle up to [`HELD_POLL_MAX`]. Each poll is a wake-up of the
/// console-out thread: polling every 10 ms all the time cost an idle VM ~5% of a core under emulation.
#[derive(Debug)]
pub struct HeldPoll {
    interval: std::time::Duration,
}

impl HeldPoll {
    /// Starts fast.
    pub fn new() -> HeldPoll {
        HeldPoll {
            interval: HELD_POLL_MIN,
        }
    }

    /// The wait before the next poll, given whether there was activity since the last one.
    pub fn next(&mut self, busy: bool) -> std::time::Duration {
        self.interval = if busy {
            HELD_POLL_MIN
        } else {
            (self.interval * 2).min(HELD_POLL_MAX)
        };
        self.interval
    }
}

impl Default for HeldPoll {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes to the UART's data register that the hypervisor takes without an exit while told to hold
/// them, handed back later in order (KVM's coalesced MMIO; a fake in tests).
pub trait HeldWrites: Send + Sync {
    /// Hands each write held since the last call to `f` (offset inside the UART, first byte written),
    /// oldest first.
    fn take(&self, f: &mut dyn FnMut(u64, u8));
    /// Starts (`true`) or stops (`false`) holding writes to the data register.
    fn hold(&self, on: bool) -> Result<(), String>;
}

/// The UART device.
pub struct Uart {
    serial: Serial<NoopTrigger, NoEvents, Box<dyn Write + Send>>,
    input: Arc<ConsoleInput>,
    irq: Arc<dyn IrqLine>,
    level: bool,
    active: bool,
    held: Option<Arc<dyn HeldWrites>>,
    holding: bool,
    /// The hypervisor refused a change of [`HeldWrites::hold`]: no more changes are asked.
    hold_broken: bool,
    held_count: u64,
    /// An exit reached the UART since [`Uart::take_activity`] last looked.
    touched: bool,
}

impl Uart {
    /// A UART driving `irq`, writing guest output to `out` and reading guest input from `input`.
    pub fn new(
        irq: Arc<dyn IrqLine>,
        out: Box<dyn Write + Send>,
        input: Arc<ConsoleInput>,
    ) -> Uart {
        Uart {
            serial: Serial::new(NoopTrigger, out),
            input,
            irq,
            level: false,
            active: false,
            held: None,
            holding: false,
            hold_broken: false,
            held_count: 0,
            touched: false,
        }
    }

    /// Lets `held` take the guest's writes to the data register while the THR-empty interrupt is off.
    pub fn set_held_writes(&mut self, held: Arc<dyn HeldWrites>) {
        self.held = Some(held);
        self.update_hold();
    }

    /// How many data register writes came through [`HeldWrites`] (none of them an exit).
    pub fn held_count(&self) -> u64 {
        self.held_count
    }

    /// Whether the guest accessed the UART (an exit) or held writes were played since the last call.
    pub fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.touched)
    }

    /// Plays the writes the hypervisor held into the model, oldest first, and updates the interrupt;
    /// returns how many. Every access does this first; call it also periodically ([`HeldPoll`]: the
    /// guest may write its last bytes and then not touch the UART again) and before rvvmm stops.
    pub fn take_held(&mut self) -> u64 {
        let Some(held) = self.held.clone() else {
            return 0;
        };
        let mut n = 0;
        held.take(&mut |offset, byte| {
            n += 1;
            if offset < NUM_REGS {
                if let Err(e) = self.serial.write(offset as u8, byte) {
                    crate::log_limited!(
                        log::Level::Debug,
                        "uart: held write at {offset:#x}: {e:?}"
                    );
                }
            }
        });
        if n > 0 {
            self.held_count += n;
            self.touched = true;
            self.update_irq();
        }
        n
    }

    /// Holds data register writes exactly while the THR-empty interrupt is off (the divisor latch
    /// shares the offsets, so IER counts only with LCR.DLAB clear; held divisor writes are played in
    /// order too).
    fn update_hold(&mut self) {
        let Some(held) = &self.held else {
            return;
        };
        if self.hold_broken {
            return;
        }
        let want = self.serial.state().interrupt_enable & IER_THRI == 0;
        if want != self.holding {
            match held.hold(want) {
                Ok(()) => self.holding = want,
                Err(e) => {
                    // Stop toggling; writes already held (or still held, if the zone could not be
                    // removed) are still played.
                    log::warn!("uart: cannot change how data writes are taken: {e}");
                    self.hold_broken = true;
                }
            }
        }
    }

    /// Drives the interrupt line to what the model's IIR says, if that changed.
    fn update_irq(&mut self) {
        let level = self.serial.state().interrupt_identification & IIR_NONE == 0;
        if level != self.level {
            self.level = level;
            if let Err(e) = self.irq.set_level(level) {
                log::warn!("uart: cannot set interrupt level: {e}");
            }
        }
    }

    /// Whether the guest has used the UART yet (from then on it owns the console input).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Moves waiting console input into the receive FIFO (raising the RX interrupt) once the guest uses
    /// the UART. Call after new input arrives.
    pub fn pump(&mut self) {
        if !self.active {
            return;
        }
        let room = self.serial.fifo_capacity();
        if room == 0 {
            return;
        }
        let bytes = self.input.take(room);
        if !bytes.is_empty() {
            if let Err(e) = self.serial.enqueue_raw_bytes(&bytes) {
                crate::log_limited!(log::Level::Warn, "uart: dropping console input: {e:?}");
            }
        }
        self.update_irq();
    }
}

impl MmioDevice for Uart {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.take_held();
        self.touched = true;
        data.fill(0);
        self.active = true;
        if offset < NUM_REGS && !data.is_empty() {
            data[0] = self.serial.read(offset as u8);
            if offset == DATA_OFFSET {
                self.pump();
            }
        }
        self.update_irq();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.take_held();
        self.touched = true;
        let first = self.active;
        self.active = true;
        if offset < NUM_REGS && !data.is_empty() {
            if let Err(e) = self.serial.write(offset as u8, data[0]) {
                crate::log_limited!(log::Level::Debug, "uart: write at {offset:#x}: {e:?}");
            }
        }
        if !first {
            self.pump();
        }
        if offset == IER_OFFSET || offset == LCR_OFFSET {
            self.update_hold();
        }
        self.update_irq();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::interrupt::test_utils::RecordingLine as Line;

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);
    impl Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const IER: u64 = 1;
    const IIR: u64 = 2;
    const LSR: u64 = 5;

    #[test]
    fn output_and_input_through_registers() {
        let irq = Arc::new(Line::default());
        let out = SharedBuf::default();
        let input = Arc::new(ConsoleInput::new());
        let mut uart = Uart::new(irq.clone(), Box::new(out.clone()), input.clone());
        // Input before the guest touches the UART stays queued (SBI console may take it).
        input.push(b"hi");
        uart.pump();
        assert_eq!(input.len(), 2);
        // The guest enables the RX interrupt: the UART takes the input and interrupts.
        uart.write(IER, &[0x01]);
        assert!(irq.level(), "RX interrupt raised");
        let mut b = [0u8; 1];
        uart.read(LSR, &mut b);
        assert_eq!(b[0] & 1, 1, "data ready");
        uart.read(DATA_OFFSET, &mut b);
        assert_eq!(b[0], b'h');
        uart.read(DATA_OFFSET, &mut b);
        assert_eq!(b[0], b'i');
        uart.read(LSR, &mut b);
        assert_eq!(b[0] & 1, 0, "fifo drained");
        assert!(!irq.level(), "line low once the data is read");
        uart.write(DATA_OFFSET, b"x");
        assert_eq!(&*out.0.lock().unwrap(), b"x");
        // Out-of-range offsets are harmless.
        uart.write(0x80, &[1]);
        uart.read(0xff, &mut b);
        assert_eq!(b[0], 0);
    }

    #[test]
    fn input_larger_than_the_fifo_is_delivered_in_order() {
        let input = Arc::new(ConsoleInput::new());
        let mut uart = Uart::new(
            Arc::new(Line::default()),
            Box::new(std::io::sink()),
            input.clone(),
        );
        let msg: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8).collect();
        input.push(&msg);
        uart.write(IER, &[0x01]);
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        for _ in 0..1000 {
            uart.read(LSR, &mut b);
            if b[0] & 1 == 0 {
                break;
            }
            uart.read(DATA_OFFSET, &mut b);
            got.push(b[0]);
        }
        assert_eq!(got, msg);
    }

    #[test]
    fn thre_interrupt_is_a_level_cleared_by_reading_iir() {
        let irq = Arc::new(Line::default());
        let mut uart = Uart::new(
            irq.clone(),
            Box::new(std::io::sink()),
            Arc::new(ConsoleInput::new()),
        );
        uart.write(IER, &[0x02]); // THRI: the transmitter is empty, so the line goes high.
        assert!(irq.level());
        let mut b = [0u8; 1];
        uart.read(IIR, &mut b);
        assert_eq!(b[0] & 0x0f, 0x02, "IIR says THR empty");
        assert!(!irq.level(), "reading IIR acknowledges it");
        // Many writes while the interrupt is pending drive the line once, not once per byte.
        for _ in 0..100 {
            uart.write(DATA_OFFSET, b"x");
        }
        assert_eq!(*irq.0.lock().unwrap(), vec![true, false, true]);
    }

    /// A hypervisor that holds data writes while told to: the test plays the guest's held stores.
    #[derive(Default)]
    struct FakeHeld {
        holding: Mutex<bool>,
        ring: Mutex<Vec<(u64, u8)>>,
        toggles: Mutex<Vec<bool>>,
    }

    impl FakeHeld {
        /// A guest store to the data register: held when holding, else an exit (`false`).
        fn store(&self, byte: u8) -> bool {
            if *self.holding.lock().unwrap() {
                self.ring.lock().unwrap().push((DATA_OFFSET, byte));
                true
            } else {
                false
            }
        }
    }

    impl HeldWrites for FakeHeld {
        fn take(&self, f: &mut dyn FnMut(u64, u8)) {
            for (o, b) in self.ring.lock().unwrap().drain(..) {
                f(o, b);
            }
        }
        fn hold(&self, on: bool) -> Result<(), String> {
            *self.holding.lock().unwrap() = on;
            self.toggles.lock().unwrap().push(on);
            Ok(())
        }
    }

    fn guest_puts(uart: &mut Uart, held: &FakeHeld, s: &[u8]) {
        for &c in s {
            let mut lsr = [0u8];
            uart.read(LSR, &mut lsr);
            assert_ne!(lsr[0] & 0x20, 0, "THR empty");
            if !held.store(c) {
                uart.write(DATA_OFFSET, &[c]);
            }
        }
    }

    #[test]
    fn polled_writes_are_held_and_played_in_order_before_the_next_access() {
        let out = SharedBuf::default();
        let mut uart = Uart::new(
            Arc::new(Line::default()),
            Box::new(out.clone()),
            Arc::new(ConsoleInput::new()),
        );
        let held = Arc::new(FakeHeld::default());
        uart.set_held_writes(held.clone());
        assert_eq!(*held.toggles.lock().unwrap(), vec![true], "IER is 0: hold");
        guest_puts(&mut uart, &held, b"abc");
        // The last byte waits for the next access (or the periodic take).
        assert_eq!(&*out.0.lock().unwrap(), b"ab");
        uart.take_held();
        assert_eq!(&*out.0.lock().unwrap(), b"abc");
        assert_eq!(uart.held_count(), 3);

        // The divisor latch shares offset 0: held divisor writes land in order too, and a DLAB write to
        // offset 1 (the divisor's high byte) does not count as IER.
        uart.write(LCR_OFFSET, &[0x80]);
        assert!(held.store(0x01));
        uart.write(IER_OFFSET, &[0x02]);
        uart.write(LCR_OFFSET, &[0x03]);
        assert_eq!(uart.serial.state().baud_divisor_low, 0x01);
        assert_eq!(uart.serial.state().baud_divisor_high, 0x02);
        assert_eq!(*held.toggles.lock().unwrap(), vec![true]);
        assert_eq!(
            &*out.0.lock().unwrap(),
            b"abc",
            "divisor writes are not output"
        );
    }

    #[test]
    fn the_thr_empty_interrupt_stops_holding_and_loopback_sees_held_bytes() {
        let out = SharedBuf::default();
        let irq = Arc::new(Line::default());
        let mut uart = Uart::new(
            irq.clone(),
            Box::new(out.clone()),
            Arc::new(ConsoleInput::new()),
        );
        let held = Arc::new(FakeHeld::default());
        uart.set_held_writes(held.clone());
        guest_puts(&mut uart, &held, b"x");
        // A tty starts an interrupt-driven transmit: the held byte is played first, then writes exit.
        uart.write(IER_OFFSET, &[IER_THRI]);
        assert_eq!(&*out.0.lock().unwrap(), b"x");
        assert_eq!(*held.toggles.lock().unwrap(), vec![true, false]);
        assert!(irq.level(), "THR empty interrupt");
        assert!(!held.store(b'y'));
        uart.write(DATA_OFFSET, b"y");
        uart.write(IER_OFFSET, &[0]);
        assert_eq!(*held.toggles.lock().unwrap(), vec![true, false, true]);

        // Loopback (MCR bit 4) with the RX interrupt on: a held byte reaches the receive side before
        // the guest's next read, and raises the interrupt when played.
        uart.write(4, &[0x10]);
        uart.write(IER_OFFSET, &[0x01]);
        assert!(held.store(b'z'));
        let mut b = [0u8];
        uart.read(LSR, &mut b);
        assert_eq!(b[0] & 1, 1, "data ready");
        assert!(irq.level());
        uart.read(DATA_OFFSET, &mut b);
        assert_eq!(b[0], b'z');
        assert_eq!(
            &*out.0.lock().unwrap(),
            b"xy",
            "loopback bytes are not output"
        );
    }

    #[test]
    fn held_writes_are_polled_fast_while_the_uart_is_busy_and_slowly_when_idle() {
        let mut p = HeldPoll::new();
        let idle: Vec<u64> = (0..6).map(|_| p.next(false).as_millis() as u64).collect();
        assert_eq!(idle, vec![20, 40, 80, 160, 160, 160]);
        assert_eq!(p.next(true), HELD_POLL_MIN);
        let mut uart = Uart::new(
            Arc::new(Line::default()),
            Box::new(std::io::sink()),
            Arc::new(ConsoleInput::new()),
        );
        assert!(!uart.take_activity());
        let mut b = [0u8];
        uart.read(LSR, &mut b);
        assert!(uart.take_activity(), "an access is activity");
        assert!(!uart.take_activity(), "and is seen once");
        let held = Arc::new(FakeHeld::default());
        uart.set_held_writes(held.clone());
        assert!(held.store(b'a'));
        assert_eq!(uart.take_held(), 1);
        assert!(uart.take_activity(), "played writes are activity");
        assert_eq!(uart.take_held(), 0);
    }

    #[test]
    fn a_hypervisor_that_cannot_hold_leaves_every_write_an_exit() {
        struct Refuses;
        impl HeldWrites for Refuses {
            fn take(&self, _: &mut dyn FnMut(u64, u8)) {}
            fn hold(&self, _: bool) -> Result<(), String> {
                Err("no".into())
            }
        }
        let out = SharedBuf::default();
        let mut uart = Uart::new(
            Arc::new(Line::default()),
            Box::new(out.clone()),
            Arc::new(ConsoleInput::new()),
        );
        uart.set_held_writes(Arc::new(Refuses));
        assert!(!uart.holding && uart.hold_broken);
        uart.write(IER_OFFSET, &[IER_THRI]);
        uart.write(IER_OFFSET, &[0]);
        uart.write(DATA_OFFSET, b"q");
        assert_eq!(&*out.0.lock().unwrap(), b"q");
    }

    /// A stdout nobody reads (a pipe whose reader waits) must not stop a vcpu writing to the UART: the
    /// output past the console buffer is dropped, and the reader later gets the first bytes in order.
    #[test]
    fn writes_to_a_pipe_nobody_reads_return_promptly() {
        use crate::console::ConsoleOutput;
        use std::io::Read;

        const CAPACITY: usize = 16 * 1024;
        let (mut reader, writer) = std::io::pipe().unwrap();
        let out = ConsoleOutput::with_capacity(Box::new(writer), CAPACITY);
        out.spawn_flusher(Box::new(|| {}), None).unwrap();
        let uart = Arc::new(Mutex::new(Uart::new(
            Arc::new(Line::default()),
            Box::new(out.clone()),
            Arc::new(ConsoleInput::new()),
        )));
        // Far more than the pipe (64 KiB on Linux) and the buffer hold together.
        let sent: Vec<u8> = (0..400_000u32)
            .map(|i| {
                if i % 80 == 79 {
                    b'\n'
                } else {
                    b'0' + (i % 10) as u8
                }
            })
            .collect();
        let (done, finished) = std::sync::mpsc::channel();
        let (vcpu_uart, data) = (uart.clone(), sent.clone());
        std::thread::spawn(move || {
            for &b in &data {
                vcpu_uart.lock().unwrap().write(DATA_OFFSET, &[b]);
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("UART writes blocked on a full stdout");
        assert!(out.dropped() > 0);
        // Now the reader reads: the first bytes arrive in order, and close writes what was kept.
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).map(|_| got)
        });
        out.close();
        drop(uart);
        drop(out);
        let got = reading.join().unwrap().unwrap();
        assert!(got.len() >= CAPACITY, "{} bytes", got.len());
        assert_eq!(got[..CAPACITY], sent[..CAPACITY]);
        assert!(crate::console::tests::is_subsequence(&got, &sent));
    }
}
