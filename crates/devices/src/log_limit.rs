//! Rate limits for log lines a guest can trigger at will (an unknown finisher command, a register write
//! the model ignores, an SBI call nobody implements): without them a guest writing in a loop fills the
//! host's logs and spends its vcpus' time in rvvmm's logger.
//!
//! Each call site has its own [`LogLimit`]: at most `max` lines per `interval`; the lines past that are
//! counted, and the first line of a later interval says how many were suppressed. [`log_limited!`] keeps
//! a default limit ([`DEFAULT_MAX`] lines per [`DEFAULT_INTERVAL`]) in a static at the call site:
//!
//! ```
//! devices::log_limited!(log::Level::Warn, "sifive_test: unknown command {:#x}", 0x1234);
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a call site of [`log_limited!`] may log per [`DEFAULT_INTERVAL`].
pub const DEFAULT_MAX: u32 = 10;
/// The interval of [`log_limited!`]'s limit.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The limit of one call site.
#[derive(Debug)]
pub struct LogLimit {
    max: u32,
    interval: Duration,
    state: Mutex<LimitState>,
}

#[derive(Debug)]
struct LimitState {
    /// When the current interval began (`None` before the first line).
    since: Option<Instant>,
    /// Lines logged in the current interval.
    logged: u32,
    /// Lines suppressed since the last one logged.
    suppressed: u64,
}

impl LogLimit {
    /// At most `max` lines per `interval`.
    pub const fn new(max: u32, interval: Duration) -> LogLimit {
        LogLimit {
            max,
            interval,
            state: Mutex::new(LimitState {
                since: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be logged now: `Some(n)` with the number of lines suppressed before it (to be
    /// said in it when not 0), `None` when it is suppressed (and counted).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`LogLimit::allow`] at time `now`.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = st
            .since
            .is_none_or(|since| now.saturating_duration_since(since) >= self.interval);
        if expired {
            st.since = Some(now);
            st.logged = 0;
        }
        if st.logged < self.max {
            st.logged += 1;
            Some(std::mem::take(&mut st.suppressed))
        } else {
            st.suppressed = st.suppressed.saturating_add(1);
            None
        }
    }
}

/// Re-exported for [`log_limited!`], so that callers need no `log` of their own.
#[doc(hidden)]
pub use log as __log;

/// Logs like `log::log!(level, ...)`, at most [`DEFAULT_MAX`] lines per [`DEFAULT_INTERVAL`] from this
/// call site; the first line after suppressed ones ends with `(N similar lines suppressed)`. Nothing is
/// counted while `level` is not enabled.
#[macro_export]
macro_rules! log_limited {
    ($level:expr, $($arg:tt)+) => {{
        let level: $crate::log_limit::__log::Level = $level;
        if $crate::log_limit::__log::log_enabled!(level) {
            static LIMIT: $crate::log_limit::LogLimit = $crate::log_limit::LogLimit::new(
                $crate::log_limit::DEFAULT_MAX,
                $crate::log_limit::DEFAULT_INTERVAL,
            );
            match LIMIT.allow() {
                Some(0) => $crate::log_limit::__log::log!(level, $($arg)+),
                Some(n) => $crate::log_limit::__log::log!(
                    level,
                    "{} ({} similar lines suppressed)",
                    format_args!($($arg)+),
                    n
                ),
                None => {}
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_per_interval_then_the_count_of_suppressed_lines() {
        let limit = LogLimit::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let first: Vec<_> = (0..10).map(|_| limit.allow_at(at(0))).collect();
        assert_eq!(
            first,
            [
                vec![Some(0); 3],
                vec![None; 7] // suppressed and counted
            ]
            .concat()
        );
        // Still the same interval.
        assert_eq!(limit.allow_at(at(9)), None);
        // A new interval: the first line carries the count, the next ones none.
        assert_eq!(limit.allow_at(at(10)), Some(8));
        assert_eq!(limit.allow_at(at(11)), Some(0));
        assert_eq!(limit.allow_at(at(12)), Some(0));
        assert_eq!(limit.allow_at(at(13)), None);
        assert_eq!(limit.allow_at(at(100)), Some(1));
        // A clock that goes backwards (another thread's earlier `now`) is the same interval.
        assert_eq!(limit.allow_at(at(50)), Some(0));
    }

    /// Records the lines of this module's macro test (other tests' lines are ignored).
    struct Capture;
    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            let line = record.args().to_string();
            if line.starts_with("limit-test") {
                LINES.lock().unwrap().push(line);
            }
        }
        fn flush(&self) {}
    }

    #[test]
    fn the_macro_logs_at_most_the_default_number_of_lines_per_call_site() {
        static CAPTURE: Capture = Capture;
        if log::set_logger(&CAPTURE).is_err() {
            return; // another logger is installed: nothing to observe
        }
        log::set_max_level(log::LevelFilter::Debug);
        for i in 0..1000 {
            crate::log_limited!(log::Level::Warn, "limit-test warn {i}");
            crate::log_limited!(log::Level::Debug, "limit-test debug {}", i);
        }
        let lines = LINES.lock().unwrap().clone();
        let warns: Vec<_> = lines.iter().filter(|l| l.contains("warn")).collect();
        assert_eq!(warns.len(), DEFAULT_MAX as usize, "{lines:?}");
        assert_eq!(warns[0], "limit-test warn 0");
        assert_eq!(
            lines.len(),
            2 * DEFAULT_MAX as usize,
            "each call site has its own limit"
        );
    }
}
