//! Bytes typed on rvvmm's stdin, waiting for the guest. The UART takes them once the guest has started
//! using it; until then guests that only speak SBI (legacy getchar, DBCN read) take them from here.

use std::collections::VecDeque;
use std::sync::Mutex;

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
