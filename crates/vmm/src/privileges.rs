//! Least privilege: `--user UID[:GID]` switches every rvvmm thread to an unprivileged user once the VM
//! holds every fd it needs (/dev/kvm, disks, taps, VFIO groups, vhost devices, the API socket) and
//! before the guest runs. The switch drops the supplementary groups, then the group, then the user
//! (real, effective and saved ids, so there is no way back), which clears every capability; and sets
//! `no_new_privs`. glibc applies each change to every thread of the process, which is why every seccomp
//! filter allows setgroups, setresgid and setresuid (an unprivileged thread cannot use them to gain
//! anything).

use std::fmt;
use std::str::FromStr;

/// The user and group rvvmm switches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSpec {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl FromStr for UserSpec {
    type Err = String;
    /// `UID[:GID]`, numbers (a GID left out is the UID, as with `nobody`'s 65534:65534).
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str, what: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| format!("invalid --user '{s}': {what} '{v}' is not a numeric id"))
        };
        let (uid, gid) = match s.split_once(':') {
            Some((u, g)) => (num(u, "user")?, num(g, "group")?),
            None => {
                let uid = num(s, "user")?;
                (uid, uid)
            }
        };
        Ok(UserSpec { uid, gid })
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// Why the switch failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A set*id call failed (e.g. rvvmm is not root and the ids are not its own).
    #[error("--user {user}: {call} failed: {source}")]
    Switch {
        /// The target.
        user: UserSpec,
        /// The call.
        call: &'static str,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// The switch did not take (a kernel or libc that ignores it).
    #[error("--user {user}: still running with {what} afterwards")]
    Incomplete {
        /// The target.
        user: UserSpec,
        /// What remained.
        what: String,
    },
}

/// Whether the calling process can switch to `user`: it is root, or `user` is what it already runs as.
pub fn can_switch(user: UserSpec) -> bool {
    // SAFETY: geteuid and getegid take no arguments and cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    euid == 0 || (euid == user.uid && egid == user.gid)
}

/// Switches every thread of the process to `user` for good (see the module documentation).
pub fn drop_to(user: UserSpec) -> Result<(), PrivilegeError> {
    let fail = |call| PrivilegeError::Switch {
        user,
        call,
        source: std::io::Error::last_os_error(),
    };
    // SAFETY: each call takes integer arguments (setgroups a null list of length 0) and its return
    // value is checked; glibc applies it to every thread.
    unsafe {
        if libc::geteuid() == 0 && libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setresgid(user.gid, user.gid, user.gid) != 0 {
            return Err(fail("setresgid"));
        }
        if libc::setresuid(user.uid, user.uid, user.uid) != 0 {
            return Err(fail("setresuid"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
    }
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let want_uid = user.uid.to_string();
    let want_gid = user.gid.to_string();
    let incomplete = |what: String| PrivilegeError::Incomplete { user, what };
    if field("Uid:").iter().any(|v| *v != want_uid) {
        return Err(incomplete(format!("uids {:?}", field("Uid:"))));
    }
    if field("Gid:").iter().any(|v| *v != want_gid) {
        return Err(incomplete(format!("gids {:?}", field("Gid:"))));
    }
    for caps in ["CapPrm:", "CapEff:", "CapAmb:"] {
        if field(caps)
            .iter()
            .any(|v| !v.trim_start_matches('0').is_empty())
        {
            return Err(incomplete(format!(
                "capabilities ({caps} {:?})",
                field(caps)
            )));
        }
    }
    log::info!("running as {user}: no capabilities, no_new_privs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_specs() {
        assert_eq!(
            "65534:65534".parse::<UserSpec>().unwrap(),
            UserSpec {
                uid: 65534,
                gid: 65534
            }
        );
        assert_eq!("1000".parse::<UserSpec>().unwrap().gid, 1000);
        for bad in ["", "nobody", "1:", ":1", "1:2:3", "-1", "4294967295"] {
            assert!(bad.parse::<UserSpec>().is_err(), "{bad}");
        }
    }

    /// In a child process (the test runs as root on the build machines; otherwise it checks the
    /// refusal): after the switch the process has the ids, no capabilities, no_new_privs, and cannot
    /// switch back.
    #[test]
    fn the_switch_drops_ids_capabilities_and_the_way_back() {
        let user = UserSpec {
            uid: 65534,
            gid: 65534,
        };
        if !can_switch(user) {
            assert!(drop_to(user).is_err());
            return;
        }
        // SAFETY: the child only makes system calls and reads /proc before _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = match drop_to(user) {
                Err(_) => 1,
                // SAFETY: integer-argument calls; the child ends right after.
                Ok(()) => unsafe {
                    if libc::getuid() != 65534 || libc::getgid() != 65534 {
                        2
                    } else if libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 {
                        3
                    } else if libc::setresuid(0, 0, 0) == 0 {
                        4
                    } else {
                        0
                    }
                },
            };
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
