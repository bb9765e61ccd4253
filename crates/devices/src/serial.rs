//! The ns16550a UART at UART0: vm-superio's 16550A model on the MMIO bus, output to a writer (rvvmm's
//! stdout), input from the shared [`ConsoleInput`] queue.

use std::io::Write;
use std::sync::Arc;

use vm_superio::serial::NoEvents;
use vm_superio::Serial;

use crate::console::ConsoleInput;
use crate::interrupt::IrqTrigger;
use crate::MmioDevice;

/// Offset of the receive buffer / transmit holding register.
const DATA_OFFSET: u64 = 0;
/// Number of byte-wide registers (reg-shift 0).
const NUM_REGS: u64 = 8;

/// The UART device.
pub struct Uart {
    serial: Serial<IrqTrigger, NoEvents, Box<dyn Write + Send>>,
    input: Arc<ConsoleInput>,
    active: bool,
}

impl Uart {
    /// A UART raising `irq`, writing guest output to `out` and reading guest input from `input`.
    pub fn new(irq: IrqTrigger, out: Box<dyn Write + Send>, input: Arc<ConsoleInput>) -> Uart {
        Uart {
            serial: Serial::new(irq, out),
            input,
            active: false,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::Interrupt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Interrupt for Count {
        fn trigger(&self) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

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
    const LSR: u64 = 5;

    #[test]
    fn output_and_input_through_registers() {
        let irq = Arc::new(Count::default());
        let out = SharedBuf::default();
        let input = Arc::new(ConsoleInput::new());
        let mut uart = Uart::new(
            IrqTrigger(irq.clone()),
            Box::new(out.clone()),
            input.clone(),
        );
        // Input before the guest touches the UART stays queued (SBI console may take it).
        input.push(b"hi");
        uart.pump();
        assert_eq!(input.len(), 2);
        // The guest enables the RX interrupt: the UART takes the input and interrupts.
        uart.write(IER, &[0x01]);
        assert!(irq.0.load(Ordering::SeqCst) >= 1);
        let mut b = [0u8; 1];
        uart.read(LSR, &mut b);
        assert_eq!(b[0] & 1, 1, "data ready");
        uart.read(DATA_OFFSET, &mut b);
        assert_eq!(b[0], b'h');
        uart.read(DATA_OFFSET, &mut b);
        assert_eq!(b[0], b'i');
        uart.read(LSR, &mut b);
        assert_eq!(b[0] & 1, 0, "fifo drained");
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
            IrqTrigger(Arc::new(Count::default())),
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
}
