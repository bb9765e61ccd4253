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
    /// Give L1 the Debian guest's disks (`resources/qemu-l1.sh --distro`): a fresh copy of the built
    /// root.img and boot.tar are put in this directory before the boot (see [`distro_disk`]).
    pub distro: Option<PathBuf>,
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
                    .unwrap_or(2400),
            ),
            project_kernel: false,
            pci_passthrough: None,
            distro: None,
        }
    }

    /// The "vfio" host kind: an AIA host with `smp` harts on the project-built kernel (VFIO, legacy SBI),
    /// with a RISC-V IOMMU and, behind it, a virtio-blk-pci disk ([`PT_BLK_BDF`]) and a virtio-net-pci card
    /// ([`PT_NET_BDF`]) to pass through. The disk's backing file is `target/nested-logs/vfio/pt-disk.img`
    /// (see [`passthrough_disk`]).
    pub fn vfio_host(smp: u32) -> L1Options {
        L1Options {
            project_kernel: true,
            pci_passthrough: Some(repo_root().join("target/nested-logs/vfio")),
            ..L1Options::from_env("aia", smp)
        }
    }
}

impl L1Options {
    /// The "distro" host kind: an AIA host with `smp` harts and the Debian guest's disks, copied into
    /// `target/nested-logs/distro/`.
    pub fn distro_host(smp: u32) -> L1Options {
        L1Options {
            distro: Some(repo_root().join("target/nested-logs/distro")),
            ..L1Options::from_env("aia", smp)
        }
    }
}

/// L1's PCI address of the virtio-blk-pci disk on a host with `pci_passthrough` (vendor 1af4, device 1042).
pub const PT_BLK_BDF: &str = "0000:00:02.0";
/// L1's PCI address of the virtio-net-pci card on a host with `pci_passthrough` (vendor 1af4, device 1041).
pub const PT_NET_BDF: &str = "0000:00:03.0";

/// Runs the build script `script` (relative to the repository; its log goes to stderr) and returns the
/// last line it printed: the path of what it built or found in its cache.
fn last_line_of(root: &Path, script: &str) -> Result<String, String> {
    let out = Command::new(root.join(script))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("").trim().to_string();
    if !out.status.success() || last.is_empty() {
        return Err(format!("{script} failed"));
    }
    Ok(last)
}

/// Builds (or finds in its cache) the project's L1 kernel and the L1 images for it; returns the value of
/// RVVMM_L1_KERNEL that selects it. RVVMM_L1_VFIO_KERNEL (set by resources/test.sh after its "build L1
/// kernel" stage) names an Image already built; otherwise resources/build-l1-kernel.sh is run here (it
/// answers at once from its cache when its inputs are unchanged).
fn project_kernel(root: &Path) -> Result<String, String> {
    let given = std::env::var("RVVMM_L1_VFIO_KERNEL")
        .ok()
        .filter(|v| !v.is_empty());
    let image = match given {
        Some(image) if Path::new(&image).is_absolute() && Path::new(&image).is_file() => image,
        Some(image) => {
            return Err(format!(
                "RVVMM_L1_VFIO_KERNEL={image}: not an absolute path to a kernel Image"
            ))
        }
        None => last_line_of(root, "resources/build-l1-kernel.sh")?,
    };
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

/// Builds (or finds in its cache) the Debian guest (resources/build-distro.sh) and puts a fresh copy of its
/// root disk, and its boot tar, in `dir`. RVVMM_DISTRO_DIR (set by resources/test.sh) names a directory
/// already built.
fn prepare_distro(root: &Path, dir: &Path) -> Result<(), String> {
    let built = match std::env::var("RVVMM_DISTRO_DIR")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(last_line_of(root, "resources/build-distro.sh")?),
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in ["root.img", "boot.tar"] {
        let _ = std::fs::remove_file(dir.join(name));
        // cp keeps the image sparse (2 GiB, about a third of it used).
        let ok = Command::new("cp")
            .arg("--sparse=always")
            .arg(built.join(name))
            .arg(dir.join(name))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!(
                "cannot copy {} to {}",
                built.join(name).display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The root disk (on L0) of the Debian guest of an L1 host with `distro`: what the guest wrote is there
/// once `boot_l1` returns.
pub fn distro_disk(opts: &L1Options) -> Option<PathBuf> {
    opts.distro.as_ref().map(|d| d.join("root.img"))
}

/// The passthrough disk of an L1 host with `pci_passthrough`: its backing file on L0.
pub fn passthrough_disk(opts: &L1Options) -> Option<PassthroughDisk> {
    opts.pci_passthrough.as_ref().map(|d| PassthroughDisk {
        path: d.join("pt-disk.img"),
    })
}

/// The backing file (on L0) of the virtio-blk-pci disk that L1 may pass through to its guests. Before
/// each boot the runner fills it with known data ([`PassthroughDisk::original`]: a pseudo-random
/// function of the offset, so a sector read back at the wrong place is told apart); after `boot_l1`
/// returns L1 is off and the file holds whatever L1 or its guests wrote.
#[derive(Debug, Clone)]
pub struct PassthroughDisk {
    path: PathBuf,
}

impl PassthroughDisk {
    /// Size of the disk: 64 MiB (131072 sectors of 512 bytes).
    pub const BYTES: u64 = 64 << 20;
    /// Sector size used by [`PassthroughDisk::changed_sectors`].
    pub const SECTOR: u64 = 512;

    /// The backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The known data at `offset`: what the runner wrote there before L1 booted.
    pub fn original(offset: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 16);
        let mut word = offset / 8;
        while (out.len() as u64) < offset % 8 + len as u64 {
            out.extend_from_slice(&pattern_word(word).to_le_bytes());
            word += 1;
        }
        let skip = (offset % 8) as usize;
        out[skip..skip + len].to_vec()
    }

    /// Writes the known data (the whole disk) to the backing file; the runner does this before each boot.
    pub fn reset(&self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.path, Self::original(0, Self::BYTES as usize))?;
        // resources/qemu-l1.sh writes this again (the sha256 at boot); a stale one must not survive.
        let _ = std::fs::remove_file(self.sha256_path());
        Ok(())
    }

    /// `len` bytes of the backing file at `offset` (after L1 has powered off: what the disk holds).
    pub fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        std::fs::File::open(&self.path)?.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The ranges of sectors, `(first, count)`, where the file no longer holds the known data.
    pub fn changed_sectors(&self) -> std::io::Result<Vec<(u64, u64)>> {
        let data = std::fs::read(&self.path)?;
        let want = Self::original(0, Self::BYTES as usize);
        let sector = Self::SECTOR as usize;
        let sectors = data.len().max(want.len()).div_ceil(sector);
        let mut out: Vec<(u64, u64)> = Vec::new();
        fn part(v: &[u8], i: usize, sector: usize) -> Option<&[u8]> {
            v.get(i * sector..((i + 1) * sector).min(v.len()))
        }
        for i in 0..sectors {
            if part(&data, i, sector) != part(&want, i, sector) {
                match out.last_mut() {
                    Some((first, count)) if *first + *count == i as u64 => *count += 1,
                    _ => out.push((i as u64, 1)),
                }
            }
        }
        Ok(out)
    }

    /// The offset of the first occurrence of `needle` in the file.
    pub fn find(&self, needle: &[u8]) -> std::io::Result<Option<u64>> {
        let data = std::fs::read(&self.path)?;
        Ok(if needle.is_empty() {
            Some(0)
        } else {
            data.windows(needle.len())
                .position(|w| w == needle)
                .map(|p| p as u64)
        })
    }

    /// The sha256 (hex) of the file when L1 booted, as given to L1 (`rvvmm.pt_disk_sha256=`).
    pub fn sha256_at_boot(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.sha256_path()).ok()?;
        Some(text.trim().to_string()).filter(|s| s.len() == 64)
    }

    /// The sha256 (hex) of the known data, computed by `sha256sum`.
    pub fn original_sha256() -> String {
        use std::io::Write;
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sha256sum runs");
        let data = Self::original(0, Self::BYTES as usize);
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(&data)
            .expect("sha256sum reads");
        let out = child.wait_with_output().expect("sha256sum ends");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    }

    fn sha256_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".sha256");
        PathBuf::from(p)
    }
}

/// The known data of the passthrough disk, one 64-bit little-endian word per 8 bytes (splitmix64 of the
/// word's index).
fn pattern_word(index: u64) -> u64 {
    let mut z = index
        .wrapping_add(0x5256_564d_4d2d_5054)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

/// The most one scenario may take (L1's init kills it then): well above the slowest (the Debian guest:
/// two systemd boots, logins, ssh; 10-12 minutes) and below a whole L1 run's budget.
const SCENARIO_TIMEOUT_S: u64 = 1800;

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
    if let Some(dir) = &opts.distro {
        if let Err(e) = prepare_distro(&root, dir) {
            run.problem = Some(e);
            return run;
        }
    }
    if let Some(disk) = passthrough_disk(opts) {
        if let Err(e) = disk.reset() {
            run.problem = Some(format!("cannot write {}: {e}", disk.path().display()));
            return run;
        }
    }
    // Each scenario's own limit: one that hangs costs at most this, not the whole boot's budget (the later
    // scenarios still run and report).
    let timeout_s = opts
        .timeout
        .as_secs()
        .saturating_sub(30)
        .clamp(60, SCENARIO_TIMEOUT_S);
    // RVVMM_SCENARIOS=a,b (a developer's shortcut) runs only those of the host's scenarios; the tests of
    // the others then fail as "never started".
    let only = std::env::var("RVVMM_SCENARIOS").unwrap_or_default();
    let chosen: Vec<&str> = scenarios
        .iter()
        .copied()
        .filter(|s| only.is_empty() || only.split(',').any(|o| o == *s))
        .collect();
    let append = format!(
        "rvvmm.scenarios={} rvvmm.timeout={timeout_s} rvvmm.runner=stops-qemu",
        chosen.join(",")
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
    if let Some(dir) = &opts.distro {
        qemu.arg("--distro").arg(dir);
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
    // Everything is in once ALL-DONE has been read (L1 synced its disks before printing it): stop QEMU now.
    // L1 waits for this instead of powering off, which could cut the line off in its UART's buffer.
    kill(&mut child);
    if !done && run.problem.is_none() {
        run.problem = Some("L1 stopped before printing RVVMM-ALL-DONE".to_string());
    }
    run.elapsed = start.elapsed();
    run.scenarios = split_scenarios(&run.log);
    eprintln!(
        "[bench] L1 run '{label}' took {:.1}s, log {}; seconds per scenario: {}",
        run.elapsed.as_secs_f64(),
        log_path.display(),
        scenario_times(&run.log)
            .iter()
            .map(|(name, secs)| format!("{name} {secs}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    run
}

/// The `RVVMM-SCENARIO-TIME name secs=N` lines of a console log (L1's init prints one after each
/// scenario), in order.
pub fn scenario_times(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("RVVMM-SCENARIO-TIME ")?;
            let mut w = rest.split_whitespace();
            let name = w.next()?.to_string();
            let secs = w.next()?.strip_prefix("secs=")?.parse().ok()?;
            Some((name, secs))
        })
        .collect()
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

    #[test]
    fn scenario_times_are_read_in_order() {
        let log = "RVVMM-SCENARIO-BEGIN a\nRVVMM-SCENARIO-PASS a\nRVVMM-SCENARIO-TIME a secs=12\n\
                   RVVMM-SCENARIO-TIME b secs=x\nRVVMM-SCENARIO-TIME c secs=0\n";
        assert_eq!(
            scenario_times(log),
            vec![("a".to_string(), 12), ("c".to_string(), 0)]
        );
        // The time line sits after PASS/FAIL: outside every section.
        assert_eq!(split_scenarios(log)["a"].1, "");
    }

    #[test]
    fn passthrough_disk_known_data_and_changes() {
        // original() is one function of the offset, whatever the alignment of the request.
        let whole = PassthroughDisk::original(0, 4096);
        assert_eq!(PassthroughDisk::original(13, 100), whole[13..113].to_vec());
        assert_ne!(whole[0..512], whole[512..1024]);
        let dir = std::env::temp_dir().join(format!("rvvmm-ptdisk-{}", std::process::id()));
        let disk = PassthroughDisk {
            path: dir.join("pt-disk.img"),
        };
        disk.reset().unwrap();
        assert_eq!(
            std::fs::metadata(disk.path()).unwrap().len(),
            PassthroughDisk::BYTES
        );
        assert_eq!(disk.changed_sectors().unwrap(), vec![]);
        assert_eq!(
            disk.read_at(1000, 24).unwrap(),
            PassthroughDisk::original(1000, 24)
        );
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(disk.path())
                .unwrap();
            f.write_all_at(b"MARKER", 32 << 20).unwrap();
            f.write_all_at(b"xy", 1023).unwrap(); // straddles sectors 1 and 2
        }
        assert_eq!(disk.read_at(32 << 20, 6).unwrap(), b"MARKER");
        assert_eq!(disk.find(b"MARKER").unwrap(), Some(32 << 20));
        assert_eq!(disk.changed_sectors().unwrap(), vec![(1, 2), (65536, 1)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
