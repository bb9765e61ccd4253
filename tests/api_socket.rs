//! The API socket through the real `rvvmm` binary on the build host. Everything up to booting a guest is
//! arch-neutral, so it runs here: the socket's mode and removal, a second rvvmm refused, the status codes
//! of bad requests and wrong states, a boot that fails (on this host every boot fails: no riscv64 KVM)
//! answered with its reason, `vmm.shutdown` and signals ending rvvmm, and `rvvmm remote`'s errors. The
//! nested bench boots real guests through it (tests/scenarios/api.sh).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::client::request;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvvmm-api-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rvvmm(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvvmm"));
    c.current_dir(dir)
        .env("RVVMM_LOCK_DIR", dir.join("locks"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// Starts `rvvmm --api-socket SOCK` and waits for the socket.
fn serve(dir: &Path) -> (Child, PathBuf) {
    let sock = dir.join("api.sock");
    let child = rvvmm(dir)
        .arg("--api-socket")
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "no API socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, sock)
}

fn wait(mut child: Child) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rvvmm did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_api_answers_like_cloud_hypervisor_and_shuts_down_cleanly() {
    let dir = scratch("flow");
    let (child, sock) = serve(&dir);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (status, body) = request(&sock, "GET", "vmm.ping", None).unwrap();
    assert_eq!(status, 200);
    let ping: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ping["pid"], child.id());

    // A second rvvmm on the same socket: one line, status 1; the first one is untouched.
    let out = rvvmm(&dir).arg("--api-socket").arg(&sock).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("rvvmm: error: --api-socket") && err.contains("already serves"));

    let code = |m: &str, n: &str, b: Option<&str>| request(&sock, m, n, b).unwrap().0;
    assert_eq!(code("GET", "vm.boot", None), 400);
    assert_eq!(code("PUT", "vm.info", None), 400);
    assert_eq!(code("GET", "vm.nothing", None), 404);
    assert_eq!(code("GET", "vm.info", None), 404);
    assert_eq!(code("PUT", "vm.boot", None), 404);
    assert_eq!(code("PUT", "vm.pause", None), 404);
    assert_eq!(code("PUT", "vm.create", Some("{\"cpus\":")), 400);
    let (status, body) = request(&sock, "PUT", "vm.create", Some(r#"{"disk": []}"#)).unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("unknown field `disk`"), "{body}");
    let (status, body) = request(
        &sock,
        "PUT",
        "vm.create",
        Some(r#"{"payload": {"kernel": "/k"}, "cpus": {"boot_vcpus": 2, "max_vcpus": 8}}"#),
    )
    .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("no CPU hotplug"), "{body}");

    // A VM whose kernel is missing: created, its boot fails with the reason, it stays created.
    let cfg = r#"{"payload": {"kernel": "/no/such/kernel"}, "memory": {"size": 268435456}}"#;
    assert_eq!(code("PUT", "vm.create", Some(cfg)), 204);
    assert_eq!(code("PUT", "vm.create", Some(cfg)), 500);
    let (status, body) = request(&sock, "PUT", "vm.boot", None).unwrap();
    assert_eq!(status, 500);
    let msgs: Vec<String> = serde_json::from_str(&body).unwrap();
    assert_eq!(msgs[..2], ["Error from API", "The VM could not boot"]);
    assert!(msgs[2].contains("/no/such/kernel"), "{body}");
    let (status, body) = request(&sock, "GET", "vm.info", None).unwrap();
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["state"], "Created");
    assert_eq!(info["memory_actual_size"], 268435456);
    assert_eq!(code("PUT", "vm.resume", None), 500);
    assert_eq!(code("GET", "vm.counters", None), 500);
    assert_eq!(code("PUT", "vm.delete", None), 204);
    assert_eq!(code("GET", "vm.info", None), 404);

    let (status, body) = request(&sock, "PUT", "vmm.shutdown", None).unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    let (rc, stderr) = wait(child);
    assert_eq!(rc, 0, "{stderr}");
    assert!(!sock.exists(), "the socket is left behind");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_ends_an_api_only_rvvmm_and_removes_its_socket() {
    let dir = scratch("sigterm");
    let (child, sock) = serve(&dir);
    assert_eq!(request(&sock, "GET", "vmm.ping", None).unwrap().0, 200);
    // SAFETY: kill() on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (rc, stderr) = wait(child);
    assert_eq!(rc, 128 + libc::SIGTERM, "{stderr}");
    assert!(!sock.exists());
}

#[test]
fn a_path_that_is_not_a_socket_is_never_replaced() {
    let dir = scratch("notsock");
    let path = dir.join("precious");
    std::fs::write(&path, "data").unwrap();
    let out = rvvmm(&dir).arg("--api-socket").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

#[test]
fn rvvmm_remote_drives_the_api_and_reports_errors_in_one_line() {
    let dir = scratch("remote");
    let (child, sock) = serve(&dir);
    let remote = |args: &[&str]| {
        let out = rvvmm(&dir)
            .arg("remote")
            .arg("--api-socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (rc, out, _) = remote(&["ping"]);
    assert_eq!(rc, 0);
    assert!(out.contains("\"build_version\""), "{out}");
    let (rc, _, err) = remote(&["pause"]);
    assert_eq!(rc, 1);
    assert_eq!(
        err.trim_end(),
        "rvvmm: error: vm.pause: 404 Not Found: Error from API: The VM could not be paused: VM is not created"
    );
    std::fs::write(dir.join("vm.json"), r#"{"payload": {"kernel": "/k"}}"#).unwrap();
    assert_eq!(remote(&["create", "vm.json"]).0, 0);
    let (rc, out, _) = remote(&["info"]);
    assert_eq!(rc, 0);
    assert!(out.contains("\"Created\""), "{out}");
    let (rc, _, err) = remote(&["create"]);
    assert_eq!(rc, 1);
    assert!(err.contains("create needs a FILE"), "{err}");
    let (rc, _, err) = remote(&["create", "missing.json"]);
    assert!(rc == 1 && err.contains("cannot read missing.json"), "{err}");
    let (rc, _, err) = remote(&["fly"]);
    assert!(rc == 2 && err.starts_with("rvvmm: error: "), "{err}");
    assert_eq!(remote(&["shutdown-vmm"]).0, 0);
    assert_eq!(wait(child).0, 0);
    // Nothing serves the socket now.
    let (rc, _, err) = remote(&["ping"]);
    assert_eq!(rc, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `--api-socket fd=N` (libvirt's way): rvvmm serves a listening socket it inherited and leaves its file
/// in place on exit; an fd that is not a listening Unix socket is refused with one line.
#[test]
fn an_inherited_listening_socket_is_served_and_left_in_place() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = scratch("fd");
    let sock = dir.join("passed.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let raw = listener.as_raw_fd();
    let mut cmd = rvvmm(&dir);
    cmd.args(["--api-socket", "fd=5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; the child gets the listener as fd 5 (without close-on-exec).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(listener);
    let start = Instant::now();
    let (status, _) = loop {
        match request(&sock, "GET", "vmm.ping", None) {
            Ok(answer) => break answer,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(10), "no answer: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert_eq!(status, 200);
    let (status, _) = request(&sock, "PUT", "vmm.shutdown", None).unwrap();
    assert_eq!(status, 200);
    let (code, err) = wait(child);
    assert_eq!(code, 0, "{err}");
    assert!(
        sock.exists(),
        "the inherited socket's file is its creator's"
    );

    // fd 5 is a pipe, not a socket.
    let (r, _w) = std::io::pipe().unwrap();
    let raw = r.as_raw_fd();
    let mut cmd = rvvmm(&dir);
    cmd.args(["--api-socket", "fd=5"]);
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("rvvmm: error: --api-socket fd=5: not a socket"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
