//! Token-bucket rate limiters for a device's data path, with cloud-hypervisor's parameters and
//! semantics: a bandwidth bucket (bytes) and an operations bucket (requests or frames), each `size`
//! tokens refilled evenly over `refill_time` milliseconds, plus an optional `one_time_burst` of tokens
//! that are spent first and never refilled.
//!
//! A device asks [`RateLimiter::allows`] before it takes the next request and spends what the request
//! cost with [`RateLimiter::consume`] afterwards; a request larger than what is left is served and puts
//! the bucket in debt, so the long-run rate is exact whatever the request sizes. While a bucket is empty
//! the limiter's timerfd is armed for the moment it has tokens again; the I/O thread watches that fd
//! ([`crate::VirtioDevice::timer_fds`]) and serves the device's queues again when it fires.
//!
//! (Firecracker's and cloud-hypervisor's `rate_limiter` crates are not published on crates.io; this is
//! the small part of them rvvmm needs.)

use std::os::unix::io::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

/// One token bucket's parameters (cloud-hypervisor's `TokenBucketConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketConfig {
    /// Tokens the bucket holds when full (bytes, or operations).
    pub size: u64,
    /// Extra tokens available once, spent before the bucket's own.
    pub one_time_burst: u64,
    /// Milliseconds to refill an empty bucket completely.
    pub refill_time_ms: u64,
}

/// A device's limits (cloud-hypervisor's `RateLimiterConfig`): either bucket may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimiterConfig {
    /// Bytes.
    pub bandwidth: Option<BucketConfig>,
    /// Operations (requests, frames).
    pub ops: Option<BucketConfig>,
}

impl RateLimiterConfig {
    /// True when neither bucket limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.bandwidth.is_none() && self.ops.is_none()
    }
}

/// One bucket. The budget is kept in token-nanoseconds (a token is worth `refill_ns` of them, the bucket
/// gains `size` per nanosecond), so refilling is exact integer arithmetic and never drifts.
#[derive(Debug)]
struct TokenBucket {
    size: u64,
    refill_ns: u64,
    /// May go below zero: the debt of a request larger than what was left.
    budget: i128,
    burst: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket, or `None` when the parameters limit nothing (size or refill time 0, as in
    /// cloud-hypervisor).
    fn new(c: BucketConfig, now: Instant) -> Option<TokenBucket> {
        if c.size == 0 || c.refill_time_ms == 0 {
            return None;
        }
        let refill_ns = c.refill_time_ms.saturating_mul(1_000_000);
        Some(TokenBucket {
            size: c.size,
            refill_ns,
            budget: i128::from(c.size) * i128::from(refill_ns),
            burst: c.one_time_burst,
            last: now,
        })
    }

    fn capacity(&self) -> i128 {
        i128::from(self.size) * i128::from(self.refill_ns)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = now;
        let gained = i128::try_from(elapsed)
            .unwrap_or(i128::MAX)
            .saturating_mul(i128::from(self.size));
        self.budget = self.budget.saturating_add(gained).min(self.capacity());
    }

    fn ready(&self) -> bool {
        self.burst > 0 || self.budget > 0
    }

    fn consume(&mut self, tokens: u64) {
        let from_burst = tokens.min(self.burst);
        self.burst -= from_burst;
        let rest = i128::from(tokens - from_burst) * i128::from(self.refill_ns);
        self.budget = self.budget.saturating_sub(rest);
    }

    /// How long until the bucket has a token again (zero when it has one).
    fn wait(&self) -> Duration {
        if self.ready() {
            return Duration::ZERO;
        }
        let missing = (1 - self.budget) as u128;
        let ns = missing.div_ceil(u128::from(self.size));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// The rate limiter of one data path (see the module documentation).
#[derive(Debug)]
pub struct RateLimiter {
    bandwidth: Option<TokenBucket>,
    ops: Option<TokenBucket>,
    timer: TimerFd,
    /// Requests the limiter held back (for the logs).
    throttled: u64,
}

impl RateLimiter {
    /// A limiter with full buckets.
    pub fn new(config: &RateLimiterConfig) -> std::io::Result<RateLimiter> {
        let now = Instant::now();
        Ok(RateLimiter {
            bandwidth: config.bandwidth.and_then(|c| TokenBucket::new(c, now)),
            ops: config.ops.and_then(|c| TokenBucket::new(c, now)),
            timer: TimerFd::new()?,
            throttled: 0,
        })
    }

    fn buckets(&mut self) -> impl Iterator<Item = &mut TokenBucket> {
        self.bandwidth.iter_mut().chain(self.ops.iter_mut())
    }

    /// Whether the next request may go now. When it may not, the timer is armed for the moment it may.
    pub fn allows(&mut self) -> bool {
        self.allows_at(Instant::now())
    }

    pub(crate) fn allows_at(&mut self, now: Instant) -> bool {
        let mut wait = Duration::ZERO;
        for b in self.buckets() {
            b.refill(now);
            wait = wait.max(b.wait());
        }
        if wait.is_zero() {
            return true;
        }
        self.throttled += 1;
        if let Err(e) = self.timer.reset(wait, None) {
            log::warn!("rate limiter: cannot arm its timer: {e}");
        }
        false
    }

    /// Whether a request would be held back now (without arming anything).
    pub fn is_blocked(&self) -> bool {
        self.bandwidth
            .iter()
            .chain(self.ops.iter())
            .any(|b| !b.ready())
    }

    /// Spends what a request cost: `ops` operations and `bytes` bytes.
    pub fn consume(&mut self, ops: u64, bytes: u64) {
        if let Some(b) = &mut self.ops {
            b.consume(ops);
        }
        if let Some(b) = &mut self.bandwidth {
            b.consume(bytes);
        }
    }

    /// The timerfd that becomes readable when a held-back request may go.
    pub fn timer_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// Clears the timer's expiration (the I/O thread calls this when the fd fired).
    pub fn timer_fired(&mut self) {
        let _ = self.timer.wait();
    }

    /// How many times a request was held back.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }
}

/// The timerfds of a device's limiters, for [`crate::VirtioDevice::timer_fds`].
pub(crate) fn timer_fds<'a>(
    limiters: impl IntoIterator<Item = &'a Option<RateLimiter>>,
) -> Vec<RawFd> {
    limiters
        .into_iter()
        .flatten()
        .map(RateLimiter::timer_fd)
        .collect()
}

/// Clears timer `k` of [`timer_fds`] (the same limiters in the same order).
pub(crate) fn timer_fired<'a>(
    limiters: impl IntoIterator<Item = &'a mut Option<RateLimiter>>,
    k: usize,
) {
    if let Some(l) = limiters.into_iter().flatten().nth(k) {
        l.timer_fired();
    }
}

/// Whether `limiter` holds requests back now.
pub(crate) fn blocked(limiter: &Option<RateLimiter>) -> bool {
    limiter.as_ref().is_some_and(RateLimiter::is_blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(bw: Option<(u64, u64, u64)>, ops: Option<(u64, u64, u64)>) -> RateLimiter {
        let b = |(size, one_time_burst, refill_time_ms)| BucketConfig {
            size,
            one_time_burst,
            refill_time_ms,
        };
        RateLimiter::new(&RateLimiterConfig {
            bandwidth: bw.map(b),
            ops: ops.map(b),
        })
        .unwrap()
    }

    /// Bytes a limiter lets through in `secs` of simulated time when every request is `req` bytes.
    fn throughput(l: &mut RateLimiter, req: u64, secs: u64) -> u64 {
        let start = Instant::now();
        let mut moved = 0;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(secs) {
            if l.allows_at(start + t) {
                l.consume(1, req);
                moved += req;
            } else {
                t += Duration::from_micros(100);
            }
        }
        moved
    }

    #[test]
    fn bandwidth_is_size_per_refill_time_whatever_the_request_size() {
        // 1 MiB per 100 ms = 10 MiB/s: in 2 s, the initial 1 MiB plus 20 MiB, within one request.
        for req in [512, 4096, 128 * 1024, 4 << 20] {
            let mut l = limiter(Some((1 << 20, 0, 100)), None);
            let moved = throughput(&mut l, req, 2);
            let want = 21u64 << 20;
            assert!(
                moved.abs_diff(want) <= req.max(4096) + (1 << 10),
                "{req}-byte requests: {moved} bytes, want about {want}"
            );
        }
    }

    #[test]
    fn ops_bucket_and_one_time_burst() {
        // 100 ops per second, plus a burst of 50 spent first.
        let mut l = limiter(None, Some((100, 50, 1000)));
        let start = Instant::now();
        let mut n = 0;
        while l.allows_at(start) {
            l.consume(1, 4096);
            n += 1;
        }
        assert_eq!(n, 150, "full bucket plus burst");
        assert!(l.is_blocked());
        assert_eq!(l.throttled(), 1);
        // 10 ms later one more op is allowed (100 per second), then none.
        let later = start + Duration::from_millis(10);
        assert!(l.allows_at(later));
        l.consume(1, 0);
        assert!(!l.allows_at(later));
    }

    #[test]
    fn zero_size_or_refill_limits_nothing() {
        let mut l = limiter(Some((0, 0, 100)), Some((10, 0, 0)));
        for _ in 0..1000 {
            assert!(l.allows());
            l.consume(1, 1 << 30);
        }
        assert!(!l.is_blocked());
    }

    #[test]
    fn a_blocked_limiter_arms_its_timer_for_the_wait() {
        // 1000 bytes per 20 ms; a 3000-byte request leaves a 2000-byte debt: 40 ms.
        let mut l = limiter(Some((1000, 0, 20)), None);
        assert!(l.allows());
        l.consume(1, 3000);
        assert!(!l.allows());
        let mut pfd = libc::pollfd {
            fd: l.timer_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let start = Instant::now();
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 2000) };
        let waited = start.elapsed();
        assert_eq!(n, 1, "the timer fired");
        assert!(
            waited >= Duration::from_millis(30) && waited < Duration::from_millis(1000),
            "{waited:?}"
        );
        l.timer_fired();
        assert!(l.allows());
    }
}
