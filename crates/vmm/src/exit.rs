//! How a VM ends and the exit status rvvmm reports for it.

/// Why the guest stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// The guest powered off (SBI SRST shutdown, sifive_test pass).
    Poweroff,
    /// The guest asked for a reset (SBI SRST reboot, sifive_test reset).
    Reset,
    /// The guest reported a failure (SRST with a failure reason, sifive_test fail, a crash).
    Failure,
    /// rvvmm was stopped by a signal (SIGTERM, SIGINT) or by the console escape.
    Signal(i32),
    /// `--timeout` expired.
    Timeout,
    /// Whatever ended the VM, a disk could not be made durable at exit (its final sync failed).
    Unflushed,
}

impl GuestExit {
    /// Process exit status: 0 poweroff, 3 reset, 4 failure, 5 a disk not made durable, 124 timeout (as
    /// timeout(1)), 128+N for signal N.
    pub fn code(self) -> u8 {
        match self {
            GuestExit::Poweroff => 0,
            GuestExit::Reset => 3,
            GuestExit::Failure => 4,
            GuestExit::Unflushed => 5,
            GuestExit::Timeout => 124,
            GuestExit::Signal(n) => 128u8.saturating_add(n.clamp(0, 127) as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            GuestExit::Poweroff.code(),
            GuestExit::Reset.code(),
            GuestExit::Failure.code(),
            GuestExit::Signal(15).code(),
            GuestExit::Timeout.code(),
            GuestExit::Unflushed.code(),
        ];
        assert_eq!(codes, [0, 3, 4, 143, 124, 5]);
        // Never collide with the setup (1) and usage (2) statuses.
        assert!(!codes.contains(&1) && !codes.contains(&2));
    }
}
