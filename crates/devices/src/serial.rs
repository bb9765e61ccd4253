//! The ns16550a UART at UART0: vm-superio's 16550A model on the MMIO bus, output to a writer (rvvmm's
//! stdout), input from the shared [`ConsoleInput`] queue.
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

/// The UART device.
pub struct Uart {
    serial: Serial<NoopTrigger, NoEvents, Box<dyn Write + Send>>,
    input: Arc<ConsoleInput>,
    irq: Arc<dyn IrqLine>,
    level: bool,
    active: bool,
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
                log::warn!("uart: dropping console input: {e:?}");
            }
        }
        self.update_irq();
    }
}

impl MmioDevice for Uart {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
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
        let first = self.active;
        self.active = true;
        if offset < NUM_REGS && !data.is_empty() {
            if let Err(e) = self.serial.write(offset as u8, data[0]) {
                log::debug!("uart: write at {offset:#x}: {e:?}");
            }
        }
        if !first {
            self.pump();
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
}
