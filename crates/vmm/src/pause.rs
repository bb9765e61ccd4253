//! Pausing a running VM: every vcpu thread and the virtio I/O thread stop at a safe point and wait until
//! the VM is resumed.
//!
//! The controller (the API) calls [`PauseGate::pause`], which raises a flag and keeps "kicking" the
//! participants (a signal makes a vcpu leave KVM_RUN, an eventfd wakes the I/O thread's epoll loop) until
//! each of them has parked in [`PauseGate::checkpoint`]. A participant that ends (a vcpu thread after the
//! guest powered off) calls [`PauseGate::leave`], so a pause never waits for a thread that is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the controller kicks participants that have not parked yet.
const KICK_INTERVAL: Duration = Duration::from_millis(2);

/// Why a pause did not complete.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PauseError {
    /// Some participants did not reach a safe point in time; the VM was resumed.
    #[error(
        "{parked} of {participants} threads stopped within {timeout_ms} ms; the VM keeps running"
    )]
    Timeout {
        /// Threads that had parked.
        parked: usize,
        /// Threads that take part.
        participants: usize,
        /// The time allowed.
        timeout_ms: u128,
    },
}

#[derive(Debug, Default)]
struct GateState {
    paused: bool,
    parked: usize,
    participants: usize,
}

/// The meeting point of a pause (see the module documentation).
#[derive(Debug, Default)]
pub struct PauseGate {
    /// Fast path for [`PauseGate::checkpoint`]: set while a pause is requested or in force.
    requested: AtomicBool,
    state: Mutex<GateState>,
    changed: Condvar,
}

impl PauseGate {
    /// A gate for `participants` threads.
    pub fn new(participants: usize) -> PauseGate {
        PauseGate {
            requested: AtomicBool::new(false),
            state: Mutex::new(GateState {
                participants,
                ..GateState::default()
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by a participant at a safe point: returns at once unless a pause is requested, else waits
    /// until the VM is resumed.
    pub fn checkpoint(&self) {
        if !self.requested.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        if !s.paused {
            return;
        }
        s.parked += 1;
        self.changed.notify_all();
        while s.paused {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.parked -= 1;
        self.changed.notify_all();
    }

    /// A participant ends for good: pauses no longer wait for it.
    pub fn leave(&self) {
        let mut s = self.lock();
        s.participants = s.participants.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Whether the VM is paused (or being paused).
    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    /// Stops every participant: calls `kick` until all have parked, or resumes them again and fails after
    /// `timeout`. Pausing a paused VM succeeds at once.
    pub fn pause(&self, mut kick: impl FnMut(), timeout: Duration) -> Result<(), PauseError> {
        let start = Instant::now();
        let mut s = self.lock();
        s.paused = true;
        self.requested.store(true, Ordering::Release);
        loop {
            if s.parked >= s.participants {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let err = PauseError::Timeout {
                    parked: s.parked,
                    participants: s.participants,
                    timeout_ms: timeout.as_millis(),
                };
                drop(s);
                self.resume();
                return Err(err);
            }
            drop(s);
            kick();
            s = self.lock();
            if s.parked < s.participants {
                s = self
                    .changed
                    .wait_timeout(s, KICK_INTERVAL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }

    /// Lets every parked participant go on.
    pub fn resume(&self) {
        let mut s = self.lock();
        s.paused = false;
        self.requested.store(false, Ordering::Release);
        self.changed.notify_all();
        drop(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    /// Threads that count while they run and pass the checkpoint each round.
    fn workers(gate: &Arc<PauseGate>, n: usize, stop: &Arc<AtomicBool>) -> Vec<Arc<AtomicU64>> {
        (0..n)
            .map(|_| {
                let count = Arc::new(AtomicU64::new(0));
                let (g, c, stop) = (gate.clone(), count.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        g.checkpoint();
                        c.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    g.leave();
                });
                count
            })
            .collect()
    }

    #[test]
    fn pause_stops_progress_and_resume_restarts_it() {
        let gate = Arc::new(PauseGate::new(3));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = workers(&gate, 3, &stop);
        std::thread::sleep(Duration::from_millis(20));
        gate.pause(|| {}, Duration::from_secs(5)).unwrap();
        assert!(gate.is_paused());
        let frozen: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        std::thread::sleep(Duration::from_millis(30));
        let later: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(frozen, later, "a paused worker made progress");
        // Pausing again is a no-op.
        gate.pause(|| {}, Duration::from_millis(10)).unwrap();
        gate.resume();
        std::thread::sleep(Duration::from_millis(30));
        for (c, f) in counts.iter().zip(&frozen) {
            assert!(c.load(Ordering::Relaxed) > *f, "a resumed worker is stuck");
        }
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn a_participant_that_never_parks_times_out_and_the_vm_runs_on() {
        let gate = Arc::new(PauseGate::new(2));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = workers(&gate, 1, &stop); // the second participant never comes
        let mut kicks = 0;
        let err = gate
            .pause(|| kicks += 1, Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(
            err,
            PauseError::Timeout {
                parked: 1,
                participants: 2,
                timeout_ms: 50
            }
        );
        assert!(kicks > 1, "the controller kicks repeatedly");
        assert!(!gate.is_paused());
        let before = counts[0].load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert!(counts[0].load(Ordering::Relaxed) > before);
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn participants_that_left_are_not_waited_for() {
        let gate = PauseGate::new(2);
        gate.leave();
        gate.leave();
        gate.pause(|| {}, Duration::from_millis(10)).unwrap();
        gate.resume();
    }
}
