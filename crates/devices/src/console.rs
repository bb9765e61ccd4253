//! The guest console's two directions. Input ([`ConsoleInput`]): bytes typed on rvvmm's stdin, waiting
//! for the guest; the UART takes them once the guest has started using it, until then guests that only
//! speak SBI (legacy getchar, DBCN read) take them from here. Output ([`ConsoleOutput`]): what the UART
//! and the SBI console print, in a bounded buffer that the console-out thread writes to rvvmm's stdout.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The console-out thread writes the buffer at once when it holds this many bytes, even without a line
/// end.
pub const FLUSH_AT: usize = 4096;
/// How long a partial line (a shell prompt, an echoed key) waits for more bytes before the console-out
/// thread writes it.
pub const PARTIAL_LINE_DELAY: Duration = Duration::from_millis(5);
/// The most guest output waiting for stdout (besides the chunk being written); more is dropped.
pub const OUTPUT_CAPACITY: usize = 1 << 20;
/// Work the flusher thread does periodically (the UART's held writes: see
/// [`crate::serial::Uart::take_held`]); it returns how long to wait before the next run.
pub type Tick = Box<dyn FnMut() -> Duration + Send>;

/// Guest console output on its way to a writer (rvvmm's stdout).
///
/// Writing here never blocks on the writer: the bytes go into a buffer of at most
/// [`OUTPUT_CAPACITY`] bytes (the UART model writes under its device lock, in a vcpu's MMIO exit, and a
/// stdout nobody reads must not stop the vcpus). The console-out thread
/// ([`ConsoleOutput::spawn_flusher`]) writes the buffer out: at once when it ends a line or holds
/// [`FLUSH_AT`] bytes, a partial line after at most [`PARTIAL_LINE_DELAY`]. While the buffer is full,
/// output is dropped and counted (a rate-limited warning says how much); whatever is buffered is written
/// in order. [`ConsoleOutput::close`] writes what is left when rvvmm stops. Clones share one buffer, so
/// the UART and the SBI console keep their order.
#[derive(Clone)]
pub struct ConsoleOutput {
    shared: Arc<OutputShared>,
}

struct OutputShared {
    state: Mutex<OutputState>,
    /// Signalled when output waits for the console-out thread, and at close.
    waiting: Condvar,
    /// The writer: held by whoever writes a chunk (the console-out thread, or [`ConsoleOutput::close`]),
    /// from taking the chunk out of the buffer until it is written, so chunks go out in order.
    out: Mutex<Box<dyn Write + Send>>,
}

struct OutputState {
    buf: Vec<u8>,
    capacity: usize,
    /// The buffer ends a line or holds [`FLUSH_AT`] bytes: no waiting for the rest of a line.
    urgent: bool,
    /// The console-out thread waits on `waiting` (a flush has to wake it).
    sleeping: bool,
    closed: bool,
    /// Bytes dropped because the buffer was full, in all.
    dropped: u64,
    /// The part of `dropped` already reported.
    reported: u64,
}

impl ConsoleOutput {
    /// Output to `out`, at most [`OUTPUT_CAPACITY`] bytes waiting.
    pub fn new(out: Box<dyn Write + Send>) -> ConsoleOutput {
        ConsoleOutput::with_capacity(out, OUTPUT_CAPACITY)
    }

    /// Output to `out`, at most `capacity` bytes waiting.
    pub fn with_capacity(out: Box<dyn Write + Send>, capacity: usize) -> ConsoleOutput {
        ConsoleOutput {
            shared: Arc::new(OutputShared {
                state: Mutex::new(OutputState {
                    buf: Vec::new(),
                    capacity,
                    urgent: false,
                    sleeping: false,
                    closed: false,
                    dropped: 0,
                    reported: 0,
                }),
                waiting: Condvar::new(),
                out: Mutex::new(out),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputState> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many bytes of output were dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Starts the console-out thread, which writes the buffer to the writer (it runs `on_start` first,
    /// and `tick`, if any, before it looks at the buffer and again after the wait the tick returns); it
    /// ends at [`ConsoleOutput::close`]. Without it, output waits for [`ConsoleOutput::close`].
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
            let mut st = self.lock();
            if st.closed {
                return;
            }
            if st.buf.is_empty() {
                st.sleeping = true;
                let mut st = match next {
                    None => self
                        .shared
                        .waiting
                        .wait(st)
                        .unwrap_or_else(|p| p.into_inner()),
                    Some(d) => {
                        self.shared
                            .waiting
                            .wait_timeout(st, d)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                };
                st.sleeping = false;
                continue;
            }
            let urgent = st.urgent;
            drop(st);
            if !urgent {
                // Let the rest of the line arrive, then write whatever is there.
                std::thread::sleep(PARTIAL_LINE_DELAY);
            }
            self.write_pending();
        }
    }

    /// Writes what is buffered (possibly blocking on the writer: only the console-out thread and
    /// [`ConsoleOutput::close`] call this), then reports output dropped since the last report.
    fn write_pending(&self) {
        let mut out = self.shared.out.lock().unwrap_or_else(|p| p.into_inner());
        let chunk = {
            let mut st = self.lock();
            st.urgent = false;
            std::mem::take(&mut st.buf)
        };
        if !chunk.is_empty() {
            // Output that cannot be written is dropped (the guest must not stall on a closed stdout).
            if let Err(e) = out.write_all(&chunk).and_then(|()| out.flush()) {
                crate::log_limited!(log::Level::Debug, "console: cannot write guest output: {e}");
            }
        }
        drop(out);
        let mut st = self.lock();
        if st.dropped > st.reported {
            let (new, total) = (st.dropped - st.reported, st.dropped);
            st.reported = total;
            drop(st);
            crate::log_limited!(
                log::Level::Warn,
                "console: {new} bytes of guest output dropped: stdout is not read fast enough ({total} in all)"
            );
        }
    }

    /// Writes everything buffered and stops the console-out thread: rvvmm is stopping. This waits for
    /// the writer (a stdout nobody reads holds it up). Later output is written at once.
    pub fn close(&self) {
        self.lock().closed = true;
        self.shared.waiting.notify_all();
        self.write_pending();
        let dropped = self.dropped();
        if dropped > 0 {
            log::warn!("console: {dropped} bytes of guest output were dropped in all (stdout was not read fast enough)");
        }
    }
}

impl Write for ConsoleOutput {
    /// Takes all of `data` (what does not fit in the buffer is dropped and counted); never blocks on
    /// the writer.
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut st = self.lock();
        let room = st.capacity.saturating_sub(st.buf.len());
        let n = data.len().min(room);
        st.buf.extend_from_slice(&data[..n]);
        st.dropped = st.dropped.saturating_add((data.len() - n) as u64);
        Ok(data.len())
    }

    /// Hands the buffer to the console-out thread: at once when it ends a line or holds [`FLUSH_AT`]
    /// bytes, else after [`PARTIAL_LINE_DELAY`]. After [`ConsoleOutput::close`], writes it here.
    fn flush(&mut self) -> std::io::Result<()> {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            self.write_pending();
            return Ok(());
        }
        if st.buf.len() >= FLUSH_AT || st.buf.last() == Some(&b'\n') {
            st.urgent = true;
        }
        if st.sleeping && !st.buf.is_empty() {
            st.sleeping = false;
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
pub(crate) mod tests {
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

    /// Waits (up to 5 s) until `calls` holds `n` writes.
    fn wait_calls(calls: &Calls, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while calls.0.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn output_goes_out_a_line_at_a_time_and_partial_lines_after_a_delay() {
        let calls = Calls::default();
        let mut o = ConsoleOutput::new(Box::new(calls.clone()));
        // Without the console-out thread, output waits...
        put(&mut o, b"hello\n");
        assert!(calls.0.lock().unwrap().is_empty());
        // ...and the thread writes it.
        o.spawn_flusher(Box::new(|| {}), None).unwrap();
        wait_calls(&calls, 1);
        assert_eq!(*calls.0.lock().unwrap(), vec![b"hello\n".to_vec()]);
        put(&mut o, b"world\n");
        wait_calls(&calls, 2);
        assert_eq!(calls.0.lock().unwrap()[1], b"world\n".to_vec());
        // A prompt goes out after the partial-line delay, with what followed it by then.
        put(&mut o, b"~ # x");
        wait_calls(&calls, 3);
        assert_eq!(calls.0.lock().unwrap()[2], b"~ # x".to_vec());
        // A long line goes out; close writes the rest and later bytes go at once.
        let long = vec![b'a'; FLUSH_AT + 10];
        o.write_all(&long).unwrap();
        o.flush().unwrap();
        o.close();
        put(&mut o, b"!");
        let c = calls.0.lock().unwrap();
        let all = c.concat();
        assert_eq!(all.len(), 12 + 5 + FLUSH_AT + 10 + 1);
        assert!(all.starts_with(b"hello\nworld\n~ # xaaa"));
        assert_eq!(c.last().unwrap(), &b"!".to_vec());
        assert_eq!(o.dropped(), 0);
    }

    /// A writer that blocks until released, as a stdout nobody reads.
    #[derive(Clone, Default)]
    struct Stuck {
        released: Arc<(Mutex<bool>, Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }
    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (m, cv) = &*self.released;
            let mut r = m.lock().unwrap();
            while !*r {
                r = cv.wait(r).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Whether `part` is `all` with some bytes left out.
    pub(crate) fn is_subsequence(part: &[u8], all: &[u8]) -> bool {
        let mut rest = all.iter();
        part.iter().all(|b| rest.any(|a| a == b))
    }

    #[test]
    fn a_stuck_writer_never_blocks_the_guest_and_what_fits_arrives_in_order() {
        let stuck = Stuck::default();
        let o = ConsoleOutput::with_capacity(Box::new(stuck.clone()), 1000);
        o.spawn_flusher(Box::new(|| {}), None).unwrap();
        let input: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (done, finished) = std::sync::mpsc::channel();
        let (mut w, data) = (o.clone(), input.clone());
        std::thread::spawn(move || {
            for line in data.chunks(100) {
                w.write_all(line).unwrap();
                w.write_all(b"\n").unwrap();
                w.flush().unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("writes blocked on a stuck writer");
        assert!(o.dropped() > 0, "the excess is dropped");
        // Once the writer moves again, close writes everything that was kept, in order.
        let (m, cv) = &*stuck.released;
        *m.lock().unwrap() = true;
        cv.notify_all();
        o.close();
        let got = stuck.got.lock().unwrap().clone();
        let sent: Vec<u8> = input
            .chunks(100)
            .flat_map(|l| [l, b"\n"].concat())
            .collect();
        assert!(
            got.len() >= 1000,
            "at least a buffer's worth: {}",
            got.len()
        );
        assert_eq!(got[..1000], sent[..1000], "the first bytes, in order");
        assert!(is_subsequence(&got, &sent), "the rest in order, with gaps");
        assert_eq!(got.len() as u64 + o.dropped(), sent.len() as u64);
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
