//! The nested test bench: boots the L1 riscv64 host under `qemu-system-riscv64` once for a list of named
//! scenarios (shell scripts in `tests/scenarios/`, run by L1's /init), reads its serial console and splits it
//! per scenario. Markers printed by `resources/l1/init`:
//! `RVVMM-L1-READY ...`, `RVVMM-SCENARIO-BEGIN s`, `RVVMM-SCENARIO-PASS s` / `RVVMM-SCENARIO-FAIL s rc=N`,
//! `RVVMM-ALL-DONE`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How to boot L1.
#[derive(Debug, Clone)]
pub struct L1Options {
    /// `aia` (QEMU virt with APLIC+IMSIC) or `plic` (no AIA).
    pub machine: String,
    /// Harts of L1.
    pub smp: u32,
    /// Bound on the whole L1 run.
    pub timeout: Duration,
    /// Boot the project-built kernel (resources/build-l1-kernel.sh) instead of Debian's.
    pub project_kernel: bool,
    /// Give L1 an IOMMU with a virtio-blk-pci disk and a virtio-net-pci card to pass through; the disk's
    /// backing file is created in this directory (see `resources/qemu-l1.sh --pci-passthrough`).
    pub pci_passthrough: Option<PathBuf>,
}

impl L1Options {
    /// Defaults, overridable with RVVMM_L1_MACHINE, RVVMM_L1_SMP, RVVMM_L1_TIMEOUT (seconds).
    pub fn from_env(machine: &str, smp: u32) -> L1Options {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        L1Options {
            machine: env("RVVMM_L1_MACHINE").unwrap_or_else(|| machine.to_string()),
            smp: env("RVVMM_L1_SMP")
                .and_then(|v| v.parse().ok())
                .unwrap_or(smp),
            timeout: Duration::from_secs(
                env("RVVMM_L1_TIMEOUT")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1500),
            ),
            project_kernel: false,
            pci_passthrough: None,
        }
    }

    /// An AIA host with `smp` harts on the project-built kernel, with PCI devices to pass through.
    pub fn passthrough_host(smp: u32) -> L1Options {
        L1Options {
            project_kernel: true,
            pci_passthrough: Some(repo_root().join("target/nested-logs/passthrough")),
            ..L1Options::from_env("aia", smp)
        }
    }
}

/// Builds (or finds in its cache) the project's L1 kernel and the L1 images for it; returns the value of
/// RVVMM_L1_KERNEL that selects it.
fn project_kernel(root: &Path) -> Result<String, String> {
    let out = Command::new(root.join("resources/build-l1-kernel.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run resources/build-l1-kernel.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let image = stdout.lines().last().unwrap_or("").trim().to_string();
    if !out.status.success() || image.is_empty() {
        return Err("resources/build-l1-kernel.sh failed".to_string());
    }
    let images = Command::new(root.join("resources/build-images.sh"))
        .env("RVVMM_L1_KERNEL", &image)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run resources/build-images.sh: {e}"))?;
    if !images.success() {
        return Err(format!("resources/build-images.sh failed for {image}"));
    }
    Ok(image)
}

/// The passthrough disk's backing file after an L1 run with `pci_passthrough` (what L0 sees).
pub fn passthrough_disk(opts: &L1Options) -> Option<PathBuf> {
    opts.pci_passthrough.as_ref().map(|d| d.join("pt-disk.img"))
}

/// Outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The scenario script exited 0.
    Pass,
    /// It exited non-zero (the line L1 printed).
    Fail(String),
    /// L1 never finished it (timeout, crash).
    Missing,
}

/// The console of one L1 boot.
#[derive(Debug)]
pub struct L1Run {
    /// Whole console, `\r` stripped.
    pub log: String,
    /// Where the log was saved.
    pub log_path: PathBuf,
    /// Per scenario: outcome and its part of the console.
    pub scenarios: HashMap<String, (Outcome, String)>,
    /// Why the run ended early, if it did.
    pub problem: Option<String>,
    /// Wall time of the whole L1 boot.
    pub elapsed: Duration,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Only one L1 at a time: the machines have two cores.
static BOOT_LOCK: Mutex<()> = Mutex::new(());

fn compose_initrd(root: &Path, l1_kernel: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(root.join("resources/l1-initrd.sh"));
    if let Some(k) = l1_kernel {
        cmd.env("RVVMM_L1_KERNEL", k);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run resources/l1-initrd.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "resources/l1-initrd.sh failed (run resources/test.sh, which builds rvvmm and the images first):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Boots L1, runs `scenarios` in order inside it and returns the console split per scenario.
pub fn boot_l1(label: &str, scenarios: &[&str], opts: &L1Options) -> L1Run {
    let _guard = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let start = Instant::now();
    let log_dir = root.join("target/nested-logs");
    let _ = std::fs::create_dir_all(&log_dir);
    let log_path = log_dir.join(format!("{label}.log"));
    let mut run = L1Run {
        log: String::new(),
        log_path: log_path.clone(),
        scenarios: HashMap::new(),
        problem: None,
        elapsed: Duration::ZERO,
    };
    let l1_kernel = if opts.project_kernel {
        match project_kernel(&root) {
            Ok(k) => Some(k),
            Err(e) => {
                run.problem = Some(e);
                return run;
            }
        }
    } else {
        None
    };
    if let Err(e) = compose_initrd(&root, l1_kernel.as_deref()) {
        run.problem = Some(e);
        return run;
    }
    let timeout_s = opts.timeout.as_secs().saturating_sub(30).max(60);
    let append = format!(
        "rvvmm.scenarios={} rvvmm.timeout={timeout_s}",
        scenarios.join(",")
    );
    let mut qemu = Command::new(root.join("resources/qemu-l1.sh"));
    qemu.args([
        "--machine",
        &opts.machine,
        "--smp",
        &opts.smp.to_string(),
        "--append",
        &append,
    ]);
    if let Some(k) = &l1_kernel {
        qemu.env("RVVMM_L1_KERNEL", k);
    }
    if let Some(dir) = &opts.pci_passthrough {
        qemu.arg("--pci-passthrough").arg(dir);
    }
    let mut child = match qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            run.problem = Some(format!("cannot start resources/qemu-l1.sh: {e}"));
            return run;
        }
    };
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[qemu stderr] {line}"));
        }
    });
    let deadline = start + opts.timeout;
    let mut done = false;
    // The console also goes to the log file as it arrives, so a run in progress (or killed) can be read.
    let mut live_log = std::fs::File::create(&log_path).ok();
    let mut keep = |run: &mut L1Run, line: String| {
        if let Some(f) = live_log.as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "{line}");
        }
        run.log.push_str(&line);
        run.log.push('\n');
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            run.problem = Some(format!(
                "timeout: L1 did not finish within {:?}",
                opts.timeout
            ));
            kill(&mut child);
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                done |= line.trim() == "RVVMM-ALL-DONE";
                keep(&mut run, line);
                if done {
                    // Everything is in; L1 powers itself off now (the grace period below bounds that).
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Ok(Some(_)) = child.try_wait() {
            // Drain what is left, then stop.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
                done |= line.trim() == "RVVMM-ALL-DONE";
                keep(&mut run, line);
            }
            break;
        }
    }
    // L1 powers itself off after ALL-DONE; don't let a stuck QEMU outlive the run.
    let grace = Instant::now() + Duration::from_secs(20);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(200));
    }
    if matches!(child.try_wait(), Ok(None)) {
        eprintln!(
            "[bench] L1 '{label}' did not power off within 20 s of RVVMM-ALL-DONE; killing QEMU"
        );
    }
    kill(&mut child);
    if !done && run.problem.is_none() {
        run.problem = Some("L1 stopped before printing RVVMM-ALL-DONE".to_string());
    }
    run.elapsed = start.elapsed();
    run.scenarios = split_scenarios(&run.log);
    eprintln!(
        "[bench] L1 run '{label}' took {:.1}s, log {}",
        run.elapsed.as_secs_f64(),
        log_path.display()
    );
    run
}

/// Splits a console log into scenario sections with their outcomes.
pub fn split_scenarios(log: &str) -> HashMap<String, (Outcome, String)> {
    let mut out: HashMap<String, (Outcome, String)> = HashMap::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("RVVMM-SCENARIO-BEGIN ") {
            current = Some(name.trim().to_string());
            out.insert(name.trim().to_string(), (Outcome::Missing, String::new()));
            continue;
        }
        if let Some(rest) = t.strip_prefix("RVVMM-SCENARIO-PASS ") {
            if let Some(e) = out.get_mut(rest.trim()) {
                e.0 = Outcome::Pass;
            }
            current = None;
            continue;
        }
        if let Some(rest) = t.strip_prefix("RVVMM-SCENARIO-FAIL ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            if let Some(e) = out.get_mut(name) {
                e.0 = Outcome::Fail(t.to_string());
            }
            current = None;
            continue;
        }
        if let Some(name) = &current {
            if let Some(e) = out.get_mut(name) {
                e.1.push_str(line);
                e.1.push('\n');
            }
        }
    }
    out
}

impl L1Run {
    fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The console section of `name`, after asserting the scenario passed; panics with the logs otherwise.
    pub fn passed(&self, name: &str) -> &str {
        match self.scenarios.get(name) {
            Some((Outcome::Pass, text)) => text,
            Some((outcome, text)) => panic!(
                "scenario {name}: {outcome:?}{}\n----- scenario console -----\n{text}\n----- end (full log: {}) -----",
                self.problem.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
                self.log_path.display()
            ),
            None => panic!(
                "scenario {name} never started: {}\n----- last console lines -----\n{}\n----- end (full log: {}) -----",
                self.problem.as_deref().unwrap_or("no marker"),
                self.tail(80),
                self.log_path.display()
            ),
        }
    }

    /// Asserts scenario `name` passed and its console contains every marker.
    pub fn assert_markers(&self, name: &str, markers: &[&str]) {
        let text = self.passed(name);
        for m in markers {
            assert!(
                text.contains(m),
                "scenario {name}: marker '{m}' missing\n----- scenario console -----\n{text}\n----- end (full log: {}) -----",
                self.log_path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sections() {
        let log = "boot\nRVVMM-SCENARIO-BEGIN a\nhello\nRVVMM-SCENARIO-PASS a\nRVVMM-SCENARIO-BEGIN b\nx\n\
                   RVVMM-SCENARIO-FAIL b rc=1\nRVVMM-SCENARIO-BEGIN c\npartial\n";
        let s = split_scenarios(log);
        assert_eq!(s["a"], (Outcome::Pass, "hello\n".to_string()));
        assert!(matches!(s["b"].0, Outcome::Fail(_)));
        assert_eq!(s["c"].0, Outcome::Missing);
        assert!(!s.contains_key("d"));
    }
}
