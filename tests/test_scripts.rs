//! The test command's own scripts, run on the build host against a simulated Debian archive: what
//! `resources/build-l1-kernel.sh` does when the archive has moved on (the kernel series it was written for
//! is gone, only a newer one is offered), when nothing usable is offered, and that a warm cache never asks
//! apt anything; and the encoding `resources/run.sh` uses to pass rvvmm's arguments through L1's kernel
//! command line, decoded by the same shell code L1's init runs.
//!
//! The archive is a fake `apt-cache` / `apt-get` on `PATH` that answers from a list of
//! `package version suite` lines and logs every call; the cross compiler and the kernel build tools are
//! stand-ins too, so these tests need nothing from `resources/setup-host.sh`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory unique to one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvvmm-scripts-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin")).unwrap();
    dir
}

fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/bash\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Fake archive tools in `dir/bin`, answering from `dir/archive` (lines `package version suite`) and
/// logging each call to `dir/apt.log`.
fn fake_archive(dir: &Path, archive: &str) {
    fs::write(dir.join("archive"), archive).unwrap();
    let bin = dir.join("bin");
    let d = dir.display();
    script(
        &bin.join("apt-cache"),
        &format!(
            r#"echo "apt-cache $*" >>{d}/apt.log
case "$1" in
  # Like apt: the riscv64 suites' arch:all packages are listed only with --all-names.
  pkgnames) [ "$2" = --all-names ] && awk -v p="$3" 'index($1, p) == 1 {{ print $1 }}' {d}/archive | sort -u ;;
  madison) awk -v n="$2" '$1 == n {{ printf " %s | %s | http://deb.debian.org/debian %s/main all Packages\n", $1, $2, $3 }}' {d}/archive ;;
  policy) v=$(awk -v n="$2" '$1 == n {{ print $2; exit }}' {d}/archive); echo "$2:"; echo "  Candidate: ${{v:-(none)}}" ;;
  *) exit 1 ;;
esac"#
        ),
    );
    // `update` succeeds and changes nothing. `download NAME=VERSION` fails unless dir/downloads exists;
    // then it leaves an empty NAME_VERSION_all.deb, which the fake dpkg-deb unpacks to a source tree with
    // no files (so no patch applies).
    script(
        &bin.join("apt-get"),
        &format!(
            r#"echo "apt-get $*" >>{d}/apt.log
case "$1" in
  update) exit 0 ;;
  download) [ -d {d}/downloads ] || exit 1; for a; do case "$a" in *=*) : >"${{a%%=*}}_${{a#*=}}_all.deb" ;; esac; done ;;
  *) exit 1 ;;
esac"#
        ),
    );
    script(
        &bin.join("dpkg-deb"),
        &format!(
            r#"echo "dpkg-deb $*" >>{d}/apt.log
[ "$1" = --fsys-tarfile ] || exit 1
pkg=$(basename "$2"); pkg=${{pkg%%_*}}
t=$(mktemp -d); mkdir -p "$t/usr/src" "$t/src/$pkg"
tar -C "$t/src" -cJf "$t/usr/src/$pkg.tar.xz" "$pkg"
tar -C "$t" -cf - usr; rm -rf "$t""#
        ),
    );
    // Build tools the script checks for before anything else.
    for t in ["flex", "bison", "bc"] {
        script(&bin.join(t), "exit 0");
    }
    // The fake sources hold no files: no patch applies to them.
    script(&bin.join("patch"), "echo \"patch $*\" >&2; exit 1");
    script(
        &bin.join("riscv64-linux-gnu-gcc"),
        "echo 'riscv64-linux-gnu-gcc (stand-in) 12.2.0'",
    );
}

fn run_kernel_script(dir: &Path, env: &[(&str, &str)]) -> Output {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(repo().join("resources/build-l1-kernel.sh"));
    cmd.env("PATH", path)
        .env("RVVMM_KERNEL_CACHE", dir.join("cache"))
        .env_remove("RVVMM_L1_KERNEL_PKG")
        .env_remove("RVVMM_L1_KERNEL_REBUILD")
        .env_remove("RVVMM_L1_KERNEL_RESOLVE_ONLY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run resources/build-l1-kernel.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn apt_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("apt.log")).unwrap_or_default()
}

/// The package line (`name=version suite`) a cold build would use.
fn resolved(dir: &Path) -> String {
    let out = run_kernel_script(dir, &[("RVVMM_L1_KERNEL_RESOLVE_ONLY", "1")]);
    assert!(
        out.status.success(),
        "resolve failed:\n{}",
        text(&out.stderr)
    );
    text(&out.stdout).lines().last().unwrap_or("").to_string()
}

#[test]
fn kernel_source_moved_on_to_a_newer_series_is_taken() {
    // sid dropped 7.2 for 7.3; trixie-backports has only an older series.
    let dir = scratch("moved");
    fake_archive(
        &dir,
        "linux-source-6.12 6.12.57-1 trixie\n\
         linux-source-7.1 7.1.9-1~bpo13+1 trixie-backports\n\
         linux-source-7.3 7.3.2-1 sid\n",
    );
    assert_eq!(resolved(&dir), "linux-source-7.3=7.3.2-1 sid");
}

#[test]
fn kernel_source_from_trixie_backports_comes_before_sid() {
    let dir = scratch("backports");
    fake_archive(
        &dir,
        "linux-source-7.2 7.2.5-1~bpo13+1 trixie-backports\n\
         linux-source-7.4 7.4.1-1 sid\n\
         linux-source-7.10 7.10.1-1 experimental\n",
    );
    assert_eq!(
        resolved(&dir),
        "linux-source-7.2=7.2.5-1~bpo13+1 trixie-backports"
    );
    // The newest series wins within a suite (7.10 sorts after 7.9, not before 7.2).
    let dir = scratch("newest");
    fake_archive(
        &dir,
        "linux-source-7.2 7.2.5-1 sid\n\
         linux-source-7.9 7.9.1-1 sid\n\
         linux-source-7.10 7.10.1-1 sid\n",
    );
    assert_eq!(resolved(&dir), "linux-source-7.10=7.10.1-1 sid");
}

#[test]
fn kernel_source_too_old_everywhere_says_what_to_do_after_one_refresh() {
    let dir = scratch("none");
    fake_archive(&dir, "linux-source-6.12 6.12.57-1 trixie\n");
    let out = run_kernel_script(&dir, &[]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("no linux-source-X.Y at or above 7.2") && err.contains("RVVMM_L1_KERNEL_PKG="),
        "{err}"
    );
    let log = apt_log(&dir);
    assert_eq!(
        log.matches("apt-get update").count(),
        1,
        "the lists are refreshed exactly once:\n{log}"
    );
}

#[test]
fn kernel_source_pinned_by_the_user_is_used_as_given() {
    let dir = scratch("pinned");
    fake_archive(&dir, "linux-source-7.3 7.3.2-1 sid\n");
    let out = run_kernel_script(
        &dir,
        &[
            ("RVVMM_L1_KERNEL_RESOLVE_ONLY", "1"),
            ("RVVMM_L1_KERNEL_PKG", "linux-source-7.2=7.2.1-1"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("linux-source-7.2=7.2.1-1 pinned")
    );
}

#[test]
fn kernel_cache_warm_never_asks_apt() {
    let dir = scratch("warm");
    fake_archive(&dir, "linux-source-7.3 7.3.2-1 sid\n");
    // Where the cached build goes for these inputs.
    let out = run_kernel_script(&dir, &[("RVVMM_L1_KERNEL_RESOLVE_ONLY", "1")]);
    let stdout = text(&out.stdout);
    let cache = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cache: "))
        .unwrap_or_else(|| panic!("no cache line in:\n{stdout}"))
        .to_string();
    fs::create_dir_all(&cache).unwrap();
    fs::write(Path::new(&cache).join("Image"), b"kernel").unwrap();
    fs::write(
        Path::new(&cache).join("info"),
        "linux-source-7.2 7.2.1-1 (sid), built in 1 s\n",
    )
    .unwrap();
    // The archive has moved on and apt's lists are gone: the cached Image is still what it prints.
    fs::write(dir.join("archive"), "").unwrap();
    fs::remove_file(dir.join("apt.log")).unwrap();
    let out = run_kernel_script(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some(format!("{cache}/Image").as_str())
    );
    assert_eq!(apt_log(&dir), "", "a warm cache asked apt");
}

/// Encodes `args` as resources/run.sh does (bash, resources/common.sh) and decodes them as L1's init does
/// (POSIX sh, resources/l1/args.sh), returning what the decoding shell sees as its arguments.
fn args_through_l1_cmdline(args: &[&str]) -> (String, Vec<String>) {
    let root = repo();
    let enc = Command::new("bash")
        .arg("-c")
        .arg("RVVMM_L1_KERNEL=trixie . \"$0/resources/common.sh\" && rvvmm_args_encode \"$@\"")
        .arg(&root)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(enc.status.success(), "{}", text(&enc.stderr));
    let word = text(&enc.stdout).trim_end_matches('\n').to_string();
    // The decoding side prints each argument NUL-terminated.
    let dec = Command::new("sh")
        .arg("-c")
        .arg(". \"$0/resources/l1/args.sh\"; eval \"set -- $(rvvmm_args_quoted \"$1\")\"; for a in \"$@\"; do printf '%s\\0' \"$a\"; done")
        .arg(&root)
        .arg(&word)
        .output()
        .expect("sh runs");
    assert!(dec.status.success(), "{}", text(&dec.stderr));
    let got = text(&dec.stdout)
        .split_terminator('\0')
        .map(str::to_string)
        .collect();
    (word, got)
}

#[test]
fn run_sh_arguments_reach_rvvmm_in_l1_intact() {
    let args = [
        "--net",
        "tap=t0,mac=52:54:00:12:34:56",
        "--cmdline",
        "console=ttyS0 quiet",
        "--disk",
        "path=/tmp/a b.img,readonly=on",
        "it's \"quoted\" 100% \\n $HOME `x` *",
        "-",
        "é",
    ];
    let (word, got) = args_through_l1_cmdline(&args);
    // One word of the kernel command line: no space, no quote.
    assert!(
        !word.contains([' ', '"', '\'', '\n', '\t']),
        "not one plain word: {word}"
    );
    assert_eq!(got, args, "encoded as {word}");
}

#[test]
fn kernel_sources_the_patches_do_not_fit_are_each_tried_then_refused_with_what_to_do() {
    let dir = scratch("refused");
    fake_archive(
        &dir,
        "linux-source-7.3 7.3.4-1~bpo13+1 trixie-backports\n\
         linux-source-7.2 7.2.13-1 sid\n",
    );
    fs::create_dir(dir.join("downloads")).unwrap();
    let out = run_kernel_script(&dir, &[]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("apply to no kernel source")
            && err.contains("linux-source-7.3 7.3.4-1~bpo13+1")
            && err.contains("linux-source-7.2 7.2.13-1")
            && err.contains("RVVMM_L1_KERNEL_PKG="),
        "{err}"
    );
    let log = apt_log(&dir);
    assert!(
        log.contains("download -q linux-source-7.3=7.3.4-1~bpo13+1")
            && log.contains("download -q linux-source-7.2=7.2.13-1"),
        "both candidates were fetched, best first:\n{log}"
    );
    assert!(
        log.find("linux-source-7.3=").unwrap() < log.find("linux-source-7.2=").unwrap(),
        "{log}"
    );
}
