//! What the host offers: usable cores, RAM, and pinning a thread to a core.

use std::io;

use crate::config::CpuPlacement;

/// The cores this process may run on (its affinity mask), ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a properly sized, writable cpu_set_t for the whole call.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET only reads `set`, for indices below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Total RAM of the host in bytes.
pub fn total_memory() -> io::Result<u64> {
    // SAFETY: an all-zero sysinfo is a valid output buffer.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is writable for the duration of the call.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info.totalram as u64).saturating_mul(u64::from(info.mem_unit)))
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    set_current_thread_affinity(&[cpu])
}

/// Restricts thread `tid` (0: the calling thread, and the threads it starts afterwards) to `cpus`.
fn set_thread_affinity(tid: libc::pid_t, cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() || cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes within the set (cpu < CPU_SETSIZE, checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t; `tid` is 0 or a thread of this process.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restricts the calling thread (and the threads it starts afterwards) to `cpus`.
pub fn set_current_thread_affinity(cpus: &[usize]) -> io::Result<()> {
    set_thread_affinity(0, cpus)
}

/// Restricts every thread of this process that runs now (those started before, such as the signal and
/// API threads, too) and the threads started afterwards to `cpus`.
pub fn set_all_threads_affinity(cpus: &[usize]) -> io::Result<()> {
    set_current_thread_affinity(cpus)?;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        match set_thread_affinity(tid, cpus) {
            // A thread that ended meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            r => r?,
        }
    }
    Ok(())
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Picks one host core per vcpu from `allowed`, or explains why it cannot.
pub fn select_cores(placement: &CpuPlacement, allowed: &[usize]) -> Result<Vec<usize>, String> {
    match placement {
        CpuPlacement::Count(n) => {
            if *n == 0 {
                return Err("--cores must be at least 1".into());
            }
            if *n > allowed.len() {
                return Err(format!(
                    "--cores {n}: this host has only {} online core(s) available to rvvmm ({}); each vcpu needs its own core",
                    allowed.len(),
                    list(allowed)
                ));
            }
            Ok(allowed[..*n].to_vec())
        }
        CpuPlacement::List(l) => {
            if l.0.is_empty() {
                return Err("--cpus: empty core list".into());
            }
            if let Some(c) = l.0.iter().find(|c| !allowed.contains(c)) {
                return Err(format!(
                    "--cpus {l}: core {c} is not online or not available to rvvmm (available: {})",
                    list(allowed)
                ));
            }
            Ok(l.0.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CpuList;

    #[test]
    fn selects_cores() {
        let allowed = [0, 1, 2, 3];
        assert_eq!(
            select_cores(&CpuPlacement::Count(2), &allowed).unwrap(),
            vec![0, 1]
        );
        let e = select_cores(&CpuPlacement::Count(5), &allowed).unwrap_err();
        assert!(e.contains("only 4 online core"), "{e}");
        let l = CpuPlacement::List("1,3".parse::<CpuList>().unwrap());
        assert_eq!(select_cores(&l, &allowed).unwrap(), vec![1, 3]);
        let l = CpuPlacement::List("2-4".parse::<CpuList>().unwrap());
        assert!(select_cores(&l, &allowed).unwrap_err().contains("core 4"));
        assert!(select_cores(&CpuPlacement::Count(0), &allowed).is_err());
    }

    /// Found by the nested cores scenario: the signal thread, started before the main thread moved off
    /// the vcpu cores, kept running on them. Threads that exist already move too.
    #[test]
    fn threads_started_before_move_with_the_others() {
        let before = allowed_cpus().unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        let one = [*before.last().unwrap()];
        set_all_threads_affinity(&one).unwrap();
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim)
            .unwrap()
            .to_string();
        set_all_threads_affinity(&before).unwrap();
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(allowed, one[0].to_string());
    }

    #[test]
    fn host_queries_work() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(total_memory().unwrap() > 0);
        // Pinning a scratch thread to a core we are allowed on succeeds; to an absurd one fails.
        let c = cpus[0];
        std::thread::spawn(move || {
            pin_current_thread(c).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![c]);
            assert!(pin_current_thread(100_000).is_err());
        })
        .join()
        .unwrap();
    }
}
