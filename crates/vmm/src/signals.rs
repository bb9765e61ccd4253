//! Stop signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread and taken by one `signals`
//! thread, which reports them to the control loop (an orderly stop: disks flushed, status 128+N).

use std::sync::Arc;

use crate::control::ExitSender;
use crate::seccomp::{self, Filters, ThreadKind};
use crate::{Error, GuestExit};

const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn stop_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and modify the local set only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the stop signals in the calling thread (and the threads it starts later).
pub fn block_stop_signals() {
    let set = stop_sigset();
    // SAFETY: `set` is a valid signal set; the old mask is not needed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Starts the `signals` thread: it waits for SIGTERM, SIGINT or SIGHUP (blocked in every thread by
/// [`block_stop_signals`]) and reports it as the VM's exit.
pub fn spawn_signal_thread(exits: ExitSender, filters: Option<Arc<Filters>>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            seccomp::apply_or_exit(filters.as_deref(), ThreadKind::Signals);
            loop {
                let set = stop_sigset();
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is valid and `sig` is writable; the signals are blocked in every thread.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    log::warn!("stopping the VM on signal {sig}");
                    exits.send(GuestExit::Signal(sig));
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|source| Error::Io {
            what: "cannot start the signal thread".into(),
            source,
        })
}
