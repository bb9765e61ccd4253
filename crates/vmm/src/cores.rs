//! Host core reservation: each vcpu owns a host core, and no two running rvvmm processes get the same core
//! unless they ask to share. A core is held through an advisory lock on `/run/rvvmm/core<N>.lock` (flock),
//! which the kernel drops when the process dies, however it dies: a killed VM never leaks its cores. The
//! lock file holds the holder's pid, so a refusal can name it. Lock files are created 0600 and opened
//! without following a symbolic link: other local users can neither hold a core by locking its file
//! read-only nor, through a link planted in a writable lock directory, have rvvmm write into another file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::CpuPlacement;

/// Where the lock files live unless `RVVMM_LOCK_DIR` says otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/rvvmm";

/// The lock directory: `RVVMM_LOCK_DIR`, else /run/rvvmm.
pub fn lock_dir() -> PathBuf {
    std::env::var_os("RVVMM_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR))
}

/// Cores held by this process; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct CoreReservation {
    /// One host core per vcpu, in vcpu order.
    pub cores: Vec<usize>,
    _locks: Vec<File>,
}

enum Attempt {
    Got(File),
    Held(String),
}

fn try_lock(dir: &Path, core: usize, exclusive: bool) -> Result<Attempt, String> {
    let path = dir.join(format!("core{core}.lock"));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Never through a symbolic link; never blocked by a FIFO put in its place.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                format!(
                    "the core lock {} is a symbolic link: refusing to follow it",
                    path.display()
                )
            } else {
                format!("cannot open the core lock {}: {e}", path.display())
            }
        })?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot stat the core lock {}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "the core lock {} is not a regular file",
            path.display()
        ));
    }
    // Files an older rvvmm created 0644: readable by anyone, so anyone could hold the lock. Tighten what
    // this user owns (another user's file is left as it is, and locking it still works or is refused).
    if meta.permissions().mode() & 0o077 != 0 {
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        if exclusive {
            let _ = f.set_len(0);
        }
        let _ = f.seek(std::io::SeekFrom::End(0));
        let _ = writeln!(f, "{}", std::process::id());
        return Ok(Attempt::Got(f));
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(format!("cannot lock {}: {err}", path.display()));
    }
    let mut holders = String::new();
    let _ = f.read_to_string(&mut holders);
    let pids: Vec<&str> = holders.split_whitespace().collect();
    Ok(Attempt::Held(if pids.is_empty() {
        "another rvvmm".to_string()
    } else {
        format!("pid {}", pids.join(","))
    }))
}

fn describe(held: &[(usize, String)]) -> String {
    held.iter()
        .map(|(c, who)| format!("core {c} by {who}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reserves one host core per vcpu from `allowed` (this process's affinity mask), in `dir`.
///
/// Exclusive (the default): every core must be free; `--cores N` takes the first N free ones. Shared: free
/// cores are preferred (and marked in use with a shared lock), then held cores are used as well.
pub fn reserve(
    placement: &CpuPlacement,
    shared: bool,
    allowed: &[usize],
    dir: &Path,
) -> Result<CoreReservation, String> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(format!(
            "cannot create the core lock directory {}: {e}",
            dir.display()
        ));
    }
    let (wanted, candidates): (usize, Vec<usize>) = match placement {
        CpuPlacement::Count(n) => (*n, allowed.to_vec()),
        CpuPlacement::List(l) => (l.0.len(), l.0.clone()),
    };
    if wanted == 0 {
        return Err("no cores requested".into());
    }
    if let Some(c) = candidates.iter().find(|c| !allowed.contains(c)) {
        return Err(format!("core {c} is not online or not available to rvvmm"));
    }
    if wanted > candidates.len() {
        return Err(format!(
            "{wanted} vcpus need {wanted} host cores, but only {} are available to rvvmm",
            candidates.len()
        ));
    }
    let mut cores = Vec::new();
    let mut locks = Vec::new();
    let mut held = Vec::new();
    for &c in &candidates {
        if cores.len() == wanted {
            break;
        }
        match try_lock(dir, c, !shared)? {
            Attempt::Got(f) => {
                cores.push(c);
                locks.push(f);
            }
            Attempt::Held(who) => {
                if matches!(placement, CpuPlacement::List(_)) && !shared {
                    return Err(format!(
                        "host core {c} is already used by {who} (see {}); choose other --cpus or add ,shared",
                        dir.display()
                    ));
                }
                held.push((c, who));
            }
        }
    }
    if cores.len() < wanted {
        if !shared {
            return Err(format!(
                "--cores {wanted}: only {} of the {} host cores available to rvvmm are free (held: {}); stop a VM or use --cores {wanted},shared",
                cores.len(),
                candidates.len(),
                describe(&held)
            ));
        }
        for (c, _) in &held {
            if cores.len() == wanted {
                break;
            }
            cores.push(*c);
        }
        log::warn!("sharing host cores with other VMs: {}", describe(&held));
    }
    // Keep vcpu order stable: vcpu i on the i-th smallest core.
    cores.sort_unstable();
    Ok(CoreReservation {
        cores,
        _locks: locks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CpuList;

    /// The tests run one at a time: one of them forks a child, and a child forked while another test holds
    /// a lock shares that lock's open file until it execs, which would make "released on drop" flaky.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvvmm-cores-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn exclusive_reservations_are_disjoint_and_released_on_drop() {
        let _serial = serial();
        let d = dir("excl");
        let all = [0, 1, 2, 3];
        let a = reserve(&CpuPlacement::Count(2), false, &all, &d).unwrap();
        assert_eq!(a.cores, vec![0, 1]);
        let b = reserve(&CpuPlacement::Count(2), false, &all, &d).unwrap();
        assert_eq!(b.cores, vec![2, 3]);
        let e = reserve(&CpuPlacement::Count(1), false, &all, &d).unwrap_err();
        assert!(
            e.contains("only 0 of the 4") && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(a);
        // The cores of a VM that is gone are free at once.
        let c = reserve(&CpuPlacement::Count(2), false, &all, &d).unwrap();
        assert_eq!(c.cores, vec![0, 1]);
        drop((b, c));
    }

    #[test]
    fn lists_name_the_holder_and_shared_mode_overlaps() {
        let _serial = serial();
        let d = dir("list");
        let all = [0, 1, 2, 3];
        let _a = reserve(
            &CpuPlacement::List("1-2".parse::<CpuList>().unwrap()),
            false,
            &all,
            &d,
        )
        .unwrap();
        let e = reserve(
            &CpuPlacement::List("2,3".parse::<CpuList>().unwrap()),
            false,
            &all,
            &d,
        )
        .unwrap_err();
        assert!(e.contains("host core 2 is already used by pid"), "{e}");
        let s = reserve(&CpuPlacement::Count(3), true, &all, &d).unwrap();
        assert_eq!(s.cores, vec![0, 1, 3], "free cores first, then shared ones");
        // A shared holder still keeps exclusive VMs off its free-taken cores.
        let e = reserve(
            &CpuPlacement::List("0".parse::<CpuList>().unwrap()),
            false,
            &all,
            &d,
        )
        .unwrap_err();
        assert!(e.contains("host core 0"), "{e}");
        // Shared VMs coexist with shared VMs.
        let s2 = reserve(&CpuPlacement::Count(4), true, &all, &d).unwrap();
        assert_eq!(s2.cores, vec![0, 1, 2, 3]);
    }

    #[test]
    fn lock_files_are_private_and_never_followed_through_a_link() {
        let _serial = serial();
        let d = dir("perm");
        std::fs::create_dir_all(&d).unwrap();
        // A link planted where core 0's lock goes, pointing at a file rvvmm must not touch.
        let victim = d.join("victim");
        std::fs::write(&victim, b"precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("core0.lock")).unwrap();
        let e = reserve(&CpuPlacement::Count(1), false, &[0, 1], &d).unwrap_err();
        assert!(e.contains("is a symbolic link"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
        // A lock file left world-readable by an older rvvmm is made private; new ones are created private.
        std::fs::write(d.join("core1.lock"), b"").unwrap();
        std::fs::set_permissions(d.join("core1.lock"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let r = reserve(&CpuPlacement::Count(2), false, &[1, 2], &d).unwrap();
        assert_eq!(r.cores, vec![1, 2]);
        for c in [1, 2] {
            let mode = std::fs::metadata(d.join(format!("core{c}.lock")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "core{c}.lock has mode {mode:o}");
        }
        drop(r);
        // Something other than a regular file in its place is refused, not waited on.
        std::fs::create_dir(d.join("core3.lock")).unwrap();
        let e = reserve(&CpuPlacement::Count(1), false, &[3], &d).unwrap_err();
        assert!(e.contains("core3.lock"), "{e}");
    }

    #[test]
    fn impossible_requests() {
        let _serial = serial();
        let d = dir("bad");
        assert!(reserve(&CpuPlacement::Count(5), false, &[0, 1], &d)
            .unwrap_err()
            .contains("only 2"));
        assert!(reserve(&CpuPlacement::List(CpuList(vec![7])), true, &[0, 1], &d).is_err());
        assert!(reserve(
            &CpuPlacement::Count(1),
            false,
            &[0],
            Path::new("/proc/nonexistent/x")
        )
        .is_err());
    }

    #[test]
    fn a_killed_holder_does_not_leak_its_core() {
        let _serial = serial();
        // A child process takes core 0's lock and is killed with SIGKILL: the core is free at once.
        let d = dir("kill");
        std::fs::create_dir_all(&d).unwrap();
        let lock = d.join("core0.lock");
        let mut child = std::process::Command::new("flock")
            .args(["-x", "-o"])
            .arg(&lock)
            .args(["sleep", "30"])
            .spawn();
        let Ok(child) = child.as_mut() else {
            // util-linux flock is part of every Debian system; without it the check cannot run.
            panic!("flock(1) is needed for this test");
        };
        let mut tries = 0;
        while reserve(&CpuPlacement::List(CpuList(vec![0])), false, &[0], &d).is_ok() {
            tries += 1;
            assert!(tries < 100, "the child never took the lock");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The kernel drops the lock when the holder dies; on a loaded machine give it a moment.
        let mut got = reserve(&CpuPlacement::List(CpuList(vec![0])), false, &[0], &d);
        for _ in 0..100 {
            if got.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            got = reserve(&CpuPlacement::List(CpuList(vec![0])), false, &[0], &d);
        }
        assert_eq!(got.unwrap().cores, vec![0]);
    }
}
