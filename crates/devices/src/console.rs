//! The guest console's two directions. Input ([`ConsoleInput`]): bytes typed on rvvmm's stdin, waiting
//! for the guest; the UART takes them once the guest has started using it, until then guests that only
//! speak SBI (legacy getchar, DBCN read) take them from here. Output ([`ConsoleOutput`]): what the UART
//! and the SBI console print, on its way to rvvmm's stdout a line at a time.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A flush writes the buffer out at once when it holds this many bytes, even without a line end.
pub const FLUSH_AT: usize = 4096;
/// How long a partial line (a shell prompt, an echoed key) waits for more bytes before the flusher
/// thread writes it.
pub const PARTIAL_LINE_DELAY: Duration = Duration::from_millis(5);
/// Work the flusher thread does periodically (the UART's held writes: see
/// [`crate::serial::Uart::take_held`]); it returns how long to wait before the next run.
pub type Tick = Box<dyn FnMut() -> Duration + Send>;

/// Guest console output on its way to a writer (rvvmm's stdout).
///
/// The UART model flushes its writer after every byte, which was one write(2) per console byte, in the
/// vcpu's MMIO exit. Here a flush writes the buffer out only when it ends a line or holds [`FLUSH_AT`]
/// bytes; a partial line is written by the flusher thread ([`ConsoleOutput::spawn_flusher`]) after at
/// most [`PARTIAL_LINE_DELAY`], and [`ConsoleOutput::close`] writes what is left when rvvmm stops.
/// Clones share one buffer, so the UART and the SBI console keep their order.
#[derive(Clone)]
pub struct ConsoleOutput {
    shared: Arc<OutputShared>,
}

struct OutputShared {
    state: Mutex<OutputState>,
    /// Signalled when a partial line waits, and at close.
    waiting: Condvar,
}

struct OutputState {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    closed: bool,
}

impl OutputState {
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        // Output that cannot be written is dropped (the guest must not stall on a closed stdout).
        self.buf.clear();
        result
    }
}

impl ConsoleOutput {
    /// Output to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> ConsoleOutput {
        ConsoleOutput {
            shared: Arc::new(OutputShared {
                state: Mutex::new(OutputState {
                    buf: Vec::new(),
                    out,
                    closed: false,
                }),
                waiting: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputState> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the thread that writes partial lines (it runs `on_start` first, and `tick`, if any, before
    /// it looks at the buffer and again after the wait the tick returns); it ends at
    /// [`ConsoleOutput::close`].
    pub fn spawn_flusher(
        &self,
        on_start: crate::ThreadHook,
        tick: Option<Tick>,
    ) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("console-out".into())
            .spawn(move || {
                on_start();
                me.flusher_loop(tick);
            })
            .map(|_| ())
    }

    fn flusher_loop(&self, mut tick: Option<Tick>) {
        loop {
            // The tick runs without the lock: it may write here (the UART does).
            let next = tick.as_mut().map(|t| t());
            let st = self.lock();
            if st.closed {
                return;
            }
            if st.buf.is_empty() {
                match next {
                    None => drop(self.shared.waiting.wait(st)),
                    Some(d) => drop(self.shared.waiting.wait_timeout(st, d)),
                }
                continue;
            }
            drop(st);
            // Let the rest of the line arrive, then write whatever is there.
            std::thread::sleep(PARTIAL_LINE_DELAY);
            if let Err(e) = self.lock().write_out() {
                log::debug!("console: cannot write guest output: {e}");
            }
        }
    }

    /// Writes everything buffered and stops the flusher: rvvmm is stopping. Later output is written
    /// at once.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        if let Err(e) = st.write_out() {
            log::debug!("console: cannot write guest output: {e}");
        }
        drop(st);
        self.shared.waiting.notify_all();
    }
}

impl Write for ConsoleOutput {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.lock().buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut st = self.lock();
        if st.closed || st.buf.len() >= FLUSH_AT || st.buf.last() == Some(&b'\n') {
            return st.write_out();
        }
        if !st.buf.is_empty() {
            drop(st);
            self.shared.waiting.notify_one();
        }
        Ok(())
    }
}

/// Upper bound of buffered input; older input is kept, newer dropped past this (the guest is not reading).
pub const MAX_PENDING: usize = 1 << 20;

/// The console input queue.
#[derive(Default)]
pub struct ConsoleInput {
    pending: Mutex<VecDeque<u8>>,
}

impl ConsoleInput {
    /// An empty queue.
    pub fn new() -> ConsoleInput {
        ConsoleInput::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u8>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends input; returns how many bytes were kept.
    pub fn push(&self, bytes: &[u8]) -> usize {
        let mut q = self.lock();
        let n = bytes.len().min(MAX_PENDING.saturating_sub(q.len()));
        q.extend(&bytes[..n]);
        n
    }

    /// Takes up to `max` bytes.
    pub fn take(&self, max: usize) -> Vec<u8> {
        let mut q = self.lock();
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    /// Number of bytes waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer recording each write call.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<Vec<u8>>>>);
    impl Write for Calls {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn put(o: &mut ConsoleOutput, bytes: &[u8]) {
        for b in bytes {
            o.write_all(&[*b]).unwrap();
            o.flush().unwrap();
        }
    }

    #[test]
    fn output_goes_out_a_line_at_a_time_and_partial_lines_after_a_delay() {
        let calls = Calls::default();
        let mut o = ConsoleOutput::new(Box::new(calls.clone()));
        put(&mut o, b"hello\nworld\n");
        assert_eq!(
            *calls.0.lock().unwrap(),
            vec![b"hello\n".to_vec(), b"world\n".to_vec()]
        );
        // Without the flusher a prompt waits...
        put(&mut o, b"~ # ");
        assert_eq!(calls.0.lock().unwrap().len(), 2);
        // ...and the flusher writes it.
        o.spawn_flusher(Box::new(|| {}), None).unwrap();
        put(&mut o, b"x");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while calls.0.lock().unwrap().len() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(calls.0.lock().unwrap()[2], b"~ # x".to_vec());
        // A long line goes out in FLUSH_AT pieces; close writes the rest and later bytes go at once.
        let long = vec![b'a'; FLUSH_AT + 10];
        o.write_all(&long).unwrap();
        o.flush().unwrap();
        o.close();
        put(&mut o, b"!");
        let c = calls.0.lock().unwrap();
        let total: usize = c.iter().map(Vec::len).sum();
        assert_eq!(total, 12 + 5 + FLUSH_AT + 10 + 1);
        assert_eq!(c.last().unwrap(), &b"!".to_vec());
    }

    #[test]
    fn the_tick_runs_periodically_and_its_output_goes_out() {
        let calls = Calls::default();
        let o = ConsoleOutput::new(Box::new(calls.clone()));
        let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (t, w) = (ticks.clone(), o.clone());
        o.spawn_flusher(
            Box::new(|| {}),
            Some(Box::new(move || {
                // The first tick writes a partial line, as a UART's held last bytes would be.
                if t.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    let mut w = w.clone();
                    w.write_all(b"held").unwrap();
                    w.flush().unwrap();
                }
                Duration::from_millis(10)
            })),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while (ticks.load(std::sync::atomic::Ordering::SeqCst) < 3
            || calls.0.lock().unwrap().is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            ticks.load(std::sync::atomic::Ordering::SeqCst) >= 3,
            "ticks keep coming with nothing to write"
        );
        assert_eq!(*calls.0.lock().unwrap(), vec![b"held".to_vec()]);
        o.close();
    }

    #[test]
    fn fifo_order_and_bound() {
        let c = ConsoleInput::new();
        assert_eq!(c.push(b"abc"), 3);
        assert_eq!(c.take(2), b"ab");
        assert_eq!(c.take(10), b"c");
        assert!(c.is_empty());
        let big = vec![0u8; MAX_PENDING + 10];
        assert_eq!(c.push(&big), MAX_PENDING);
        assert_eq!(c.push(b"x"), 0);
    }
}
