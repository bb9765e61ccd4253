//! End-to-end tests on the nested bench: L1 riscv64 Linux with a real /dev/kvm under QEMU TCG, rvvmm running
//! inside it. They need the images and the riscv64 binary, so they are `#[ignore]`d in plain `cargo test`;
//! `resources/test.sh` builds everything and runs them with `--ignored`.
//!
//! One L1 boot serves many scenarios: each `*_host()` function boots L1 once (the first test that needs it)
//! and the tests read their scenario's part of the console.

mod bench;

use std::process::Command;
use std::sync::OnceLock;

use bench::{
    boot_l1, distro_disk, passthrough_disk, L1Options, L1Run, PassthroughDisk, PT_BLK_BDF,
    PT_NET_BDF,
};

/// Scenarios run in the one L1 boot on an AIA host (QEMU virt,aia=aplic-imsic, 2 harts), in this order.
const AIA_SCENARIOS: &[&str] = &[
    "kvm",
    "version",
    "help",
    "errors",
    "sbi",
    "dtb",
    "boot",
    "console",
    "signal",
    "disk-errors",
    "disk",
    "plic-boot",
    "plic-disk",
    "net-errors",
    "net",
    "plic-console",
    "plic-net",
    "net-vhost",
    "virtio-pci",
    "mmio-disk",
    "mmio-net",
    "vfio-stock-errors",
    "baremetal",
    "plic-baremetal",
    "seccomp",
    "hostile",
    "plic-hostile",
    "faults",
    "api",
];

/// Scenarios run on an L1 without AIA (QEMU virt with a PLIC): rvvmm's default `--irqchip auto` picks the
/// userspace PLIC there.
const PLIC_SCENARIOS: &[&str] = &[
    "kvm",
    "aia-missing",
    "dtb-plic",
    "boot",
    "console",
    "disk",
    "net",
    "baremetal",
];

/// Scenarios run on the "vfio" host kind: an AIA host (2 harts) booted with the project-built kernel
/// (resources/build-l1-kernel.sh: VFIO, legacy SBI) and PCI devices behind QEMU's RISC-V IOMMU to pass
/// through (`resources/qemu-l1.sh --pci-passthrough`). `vfio-bind` gives the devices back to virtio-pci
/// when it is done, as `vfio-errors` expects to find them.
const VFIO_SCENARIOS: &[&str] = &[
    "kvm",
    "vfio-bind",
    "boot",
    "baremetal-legacy",
    "vfio-errors",
    "vfio",
];

fn vfio_options() -> &'static L1Options {
    static OPTS: OnceLock<L1Options> = OnceLock::new();
    OPTS.get_or_init(|| L1Options::vfio_host(2))
}

fn vfio_host() -> &'static L1Run {
    static RUN: OnceLock<L1Run> = OnceLock::new();
    RUN.get_or_init(|| boot_l1("vfio", VFIO_SCENARIOS, vfio_options()))
}

/// Scenarios run on the "distro" host kind: an AIA host (2 harts) with the Debian guest's disks
/// (resources/build-distro.sh, `resources/qemu-l1.sh --distro`).
const DISTRO_SCENARIOS: &[&str] = &["distro"];

fn distro_options() -> &'static L1Options {
    static OPTS: OnceLock<L1Options> = OnceLock::new();
    OPTS.get_or_init(|| L1Options::distro_host(2))
}

fn distro_host() -> &'static L1Run {
    static RUN: OnceLock<L1Run> = OnceLock::new();
    RUN.get_or_init(|| boot_l1("distro", DISTRO_SCENARIOS, distro_options()))
}

/// Scenarios run on a 4-hart AIA host (`flood` needs harts for the flooding vcpu, the I/O thread and the
/// API client at once).
const FOUR_HART_SCENARIOS: &[&str] = &["cores", "flood", "ratelimit", "user"];

fn four_hart_host() -> &'static L1Run {
    static RUN: OnceLock<L1Run> = OnceLock::new();
    RUN.get_or_init(|| {
        boot_l1(
            "aia-4hart",
            FOUR_HART_SCENARIOS,
            &L1Options::from_env("aia", 4),
        )
    })
}

fn aia_host() -> &'static L1Run {
    static RUN: OnceLock<L1Run> = OnceLock::new();
    RUN.get_or_init(|| boot_l1("aia-2hart", AIA_SCENARIOS, &L1Options::from_env("aia", 2)))
}

fn plic_host() -> &'static L1Run {
    static RUN: OnceLock<L1Run> = OnceLock::new();
    RUN.get_or_init(|| {
        boot_l1(
            "plic-2hart",
            PLIC_SCENARIOS,
            &L1Options::from_env("plic", 2),
        )
    })
}

/// The value of `key=` on the first line of `text` that starts with `prefix`.
fn field<'a>(text: &'a str, prefix: &str, key: &str) -> Option<&'a str> {
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn l1_has_dev_kvm() {
    let run = aia_host();
    assert!(
        run.log.contains("kvm=yes"),
        "L1 has no /dev/kvm:\n{}",
        run.log
    );
    run.assert_markers("kvm", &["KVM-DEVICE-OK"]);
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn rvvmm_version_runs_in_l1() {
    let text = aia_host().passed("version");
    let expected = format!("rvvmm {}", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&expected), "no '{expected}' in:\n{text}");
    assert!(
        text.contains("ELF-ARCH riscv64"),
        "the binary in L1 is not riscv64:\n{text}"
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn rvvmm_help_lists_the_contract_options() {
    let options = [
        "--kernel",
        "--initrd",
        "--cmdline",
        "--memory",
        "--cores",
        "--cpus",
        "--disk",
        "--net",
        "--device",
        "--irqchip",
        "--dump-dtb",
        "--log-level",
    ];
    aia_host().assert_markers("help", &options);
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn linux_guest_boots_with_two_harts_and_512m() {
    let run = aia_host();
    let text = run.passed("boot");
    assert_eq!(field(text, "RVVMM-L2-BOOTED", "harts"), Some("2"), "{text}");
    let memkb: u64 = field(text, "RVVMM-L2-BOOTED", "memkb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (400_000..=524_288).contains(&memkb),
        "guest sees {memkb} kB, not about 512 MiB:\n{text}"
    );
    assert_eq!(field(text, "L2-BOOT-EXIT", "rc"), Some("0"), "{text}");
    assert!(
        text.contains("interrupt controller: AIA"),
        "not on the AIA:\n{text}"
    );
    eprintln!(
        "L2 boot to poweroff: {} s",
        field(text, "L2-BOOT-EXIT", "seconds").unwrap_or("?")
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn console_input_reaches_the_guest_shell() {
    // "CONSOLE-42-OK" is computed by the guest shell from the line piped into rvvmm's stdin.
    aia_host().assert_markers("console", &["CONSOLE-42-OK", "CONSOLE-EXIT rc=0"]);
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vcpu_threads_are_pinned_to_distinct_cores() {
    let text = aia_host().passed("console");
    let pins: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("PINNED "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(
        pins.iter().map(|p| p.0).collect::<Vec<_>>(),
        ["vcpu0", "vcpu1"],
        "{text}"
    );
    for (name, cores) in &pins {
        assert!(
            cores.parse::<usize>().is_ok(),
            "{name} may run on '{cores}', not on one core"
        );
    }
    assert_ne!(pins[0].1, pins[1].1, "both vcpus on one core:\n{text}");
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn the_api_creates_boots_pauses_resumes_and_shuts_down_a_vm() {
    aia_host().assert_markers(
        "api",
        &[
            "API-SOCKET mode=600",
            "API GET vmm.ping -> 200 {",
            "API-THREADS before=",
            "API PUT vm.boot -> 204",
            "API-SHUTDOWN rc=0 socket-left=no",
            "API PUT vmm.shutdown -> 200",
            "API-FAILS 0",
        ],
    );
    let text = aia_host().passed("api");
    // The guest's counter stopped while paused and went on after resume.
    let line = text
        .lines()
        .find(|l| l.starts_with("API-PAUSE "))
        .unwrap_or_else(|| panic!("no pause result:\n{text}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 3, "{line}");
    assert_eq!(nums[0], nums[1], "progress while paused: {line}");
    assert!(nums[2] > nums[1] + 3, "no progress after resume: {line}");
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn api_errors_follow_cloud_hypervisor() {
    aia_host().assert_markers(
        "api",
        &[
            "API GET vm.boot -> 400",
            "API POST vm.create -> 400",
            "API GET vm.nothing -> 404",
            "API GET vm.info -> 404",
            "API PUT vm.pause -> 404",
            "unknown field",
            "API PUT vm.boot -> 500",
            "API PUT vm.resume -> 500",
            "API PUT vm.reboot -> 500",
            "already serves this socket",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vsock_carries_data_both_ways_and_the_guest_reads_virtio_rng() {
    aia_host().assert_markers(
        "api",
        &[
            "API-VSOCK L1-listener rc=0 VSOCK-OK",
            "API-VSOCK L1-client rc=0 VSOCK-OK",
            "API-COUNTERS rc=0",
        ],
    );
    let text = aia_host().passed("api");
    assert!(
        text.lines()
            .any(|l| l.starts_with("API-RNG-4 virtio_rng") && l.trim_end().ends_with(" 128")),
        "{text}"
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn sigterm_stops_the_vm_with_status_143() {
    aia_host().assert_markers("signal", &["SIGTERM-EXIT rc=143"]);
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn seccomp_filters_confine_every_thread_and_name_a_forbidden_call() {
    let text = aia_host().passed("seccomp");
    assert!(text.contains("SECCOMP-BOOT-OK rc=0"), "{text}");
    for (kind, thread) in [
        ("main", "main"),
        ("vcpu", "vcpu0"),
        ("virtio-io", "virtio-io"),
        ("console-in", "console-in"),
        ("console-out", "console-out"),
        ("signals", "signals"),
        ("rtc-alarm", "rtc-alarm"),
        ("timeout", "timeout"),
        ("api", "api"),
    ] {
        let prefix = format!("SECCOMP-SELFTEST {kind} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no self-test of {kind}:\n{text}"));
        assert!(line.contains(" rc=159 "), "{line}");
        let want = format!(
            "line=rvvmm: error: seccomp: thread {thread} made a forbidden system call: socket (198)"
        );
        assert!(line.contains(&want), "{kind}: '{want}' not in {line}");
    }
    assert!(text.contains("SECCOMP-OFF rc=143 warned=1"), "{text}");
    assert!(text.contains("SECCOMP-FAILS 0"), "{text}");
}

/// What the hostile bare-metal guest checks (tests/scenarios/hostile.sh).
const HOSTILE_MARKERS: &[&str] = &[
    "BM-PASS hostile-readonly",
    "BM-PASS hostile-odd-accesses",
    "BM-PASS hostile-queue-size-3 status=0x4f",
    "BM-PASS hostile-rings-outside-ram status=0x4f",
    "BM-PASS hostile-valid-queue status=0xf",
    "BM-PASS hostile-chains",
    "BM-PASS hostile-reset status=0x0",
    "BM-PASS hostile-dbcn-buffers bad=0",
    "BM-PASS virtio-blk read-sector0",
    "BM-DONE fails=0 exit=srst-shutdown",
    "HOSTILE-RUN rc=0 panics=0 image-unchanged=yes",
];

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn hostile_guest_gets_device_errors_and_rvvmm_keeps_serving() {
    let run = aia_host();
    run.assert_markers("hostile", HOSTILE_MARKERS);
    run.assert_markers("plic-hostile", HOSTILE_MARKERS);
    let text = run.passed("hostile");
    assert!(
        text.contains("available index 1000 is 996 entries ahead"),
        "{text}"
    );
}

/// A guest that never lets a disk's ring run empty (tests/scenarios/flood.sh): the API, pause and SIGTERM
/// answer in time, and the VM's other disk keeps serving.
#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn a_flooding_guest_cannot_stall_the_api_pause_sigterm_or_its_other_disk() {
    let run = four_hart_host();
    run.assert_markers(
        "flood",
        &[
            "BM-FLOOD-START",
            "FLOOD-FAILS 0",
            "FLOOD-LINUX-TERM rc=143 ",
        ],
    );
    let text = run.passed("flood");
    for call in [
        "GET vm.counters -> 200",
        "PUT vm.pause -> 204",
        "PUT vm.resume -> 204",
    ] {
        assert!(
            text.contains(&format!("FLOOD-API {call}")),
            "{call}: {text}"
        );
    }
    let term = field(text, "FLOOD-TERM", "rc");
    assert_eq!(term, Some("143"), "{text}");
    let ms: u64 = field(text, "FLOOD-TERM", "ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(ms < 5000, "SIGTERM took {ms} ms: {text}");
}

/// `--user 65534:65534` with a tap fd passed by the caller (tests/scenarios/user.sh): every thread
/// unprivileged, no capabilities, seccomp on, and the guest's disk and network work.
#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn an_unprivileged_rvvmm_on_a_passed_tap_fd_runs_the_guest() {
    let run = four_hart_host();
    run.assert_markers(
        "user",
        &["USER-FAILS 0", "USER-DISK-DATA ok", "UPING-2-rc=0"],
    );
}

/// `--disk ...,bw_size=1048576,bw_refill_time=100` (tests/scenarios/ratelimit.sh): 16 MiB read in about
/// 1.5 s, where the unlimited disk is faster.
#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn a_rate_limited_disk_reads_at_its_limit() {
    let run = four_hart_host();
    run.assert_markers("ratelimit", &["RATELIMIT-FAILS 0 rc=0"]);
    let text = run.passed("ratelimit");
    let limited: f64 = field(text, "RATELIMIT", "limited")
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .unwrap_or(0.0);
    assert!((1.3..=4.0).contains(&limited), "{text}");
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn faults_lose_nothing_flushed_and_surface_as_guest_io_errors() {
    let text = aia_host().passed("faults");
    for (sig, rc) in [("TERM", 143), ("KILL", 137)] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("FAULT sig={sig} ")))
            .unwrap_or_else(|| panic!("no SIG{sig} case:\n{text}"));
        assert!(line.contains(&format!(" rc={rc} ")), "{line}");
        assert!(line.contains(" missing=0 "), "{line}");
        assert!(line.contains(" size=83886080"), "{line}");
    }
    for marker in [
        "FAULT reopen rc=0 REREAD-2 CHUNK-001",
        "ENOSPC-4 rc=1",
        "TRUNC-6 rc=1",
        "No space left on device",
        "PING-A-10 rc=0; after: PING-B-12 rc=1; DISK-14 rc=0; rc=0",
        "FAULT-FAILS 0",
    ] {
        assert!(text.contains(marker), "'{marker}' missing:\n{text}");
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn bad_input_gets_one_error_line_and_the_right_status() {
    let text = aia_host().passed("errors");
    let cases = [
        (
            "missing-kernel",
            "1",
            "cannot read kernel /nonexistent/Image",
        ),
        ("kernel-is-directory", "1", "not a regular file"),
        ("truncated-elf", "1", "truncated file"),
        ("not-an-image", "1", "not a RISC-V Linux Image"),
        ("missing-initrd", "1", "cannot read initrd"),
        ("does-not-fit", "1", "does not fit in guest RAM"),
        ("too-many-cores", "1", "--cores 64"),
        ("bad-cpus", "1", "core 60"),
        ("too-much-memory", "1", "more than this host"),
        ("bad-size", "2", "invalid size '12Q'"),
        ("unknown-option", "2", "--frobnicate"),
        ("no-kernel-option", "2", "--kernel"),
        ("no-dev-kvm", "1", "/dev/kvm"),
    ];
    for (name, rc, snippet) in cases {
        let prefix = format!("ERRCASE {name} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no case {name}:\n{text}"));
        assert!(line.contains(&format!(" rc={rc} ")), "{line}");
        assert!(line.contains(" lines=1 "), "{line}");
        assert!(line.contains("msg=rvvmm: error: "), "{line}");
        assert!(
            line.contains(snippet),
            "case {name}: '{snippet}' not in {line}"
        );
    }
    assert!(text.contains("ERRCASES-FAILED 0"), "{text}");
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn bare_metal_guest_uses_the_sbi_console_and_exit_statuses() {
    let text = aia_host().passed("sbi");
    for m in [
        "SBI-TEST hello from a bare-metal guest",
        "SBI-DBCN-WRITE-OK",
        "SBI-UNKNOWN-NOT-SUPPORTED",
        "SBI-DBCN-BAD-ADDRESS-REFUSED",
        "SBI-UNKNOWN-REACHED-RVVMM",
        "SBI-MODE 0 rc=0", // SRST shutdown
        "SBI-MODE 1 rc=3", // SRST reboot
        "SBI-MODE 2 rc=4", // SRST shutdown with reason system failure
        "SBI-MODE 3 rc=4", // sifive_test fail
        "SBI-MODE 4 rc=0", // sifive_test pass
    ] {
        assert!(text.contains(m), "'{m}' missing:\n{text}");
    }
    // DBCN write_byte printed "B" on a line of its own.
    assert!(text.lines().any(|l| l == "B"), "{text}");
}

/// Decompiles the DTB a scenario printed as hex (between DTB-HEX-BEGIN/END) with dtc; saves both.
fn decompile_dtb(run: &L1Run, scenario: &str) -> String {
    let text = run.passed(scenario);
    let hex: String = text
        .lines()
        .skip_while(|l| *l != "DTB-HEX-BEGIN")
        .skip(1)
        .take_while(|l| *l != "DTB-HEX-END")
        .collect::<Vec<_>>()
        .join(" ");
    let blob: Vec<u8> = hex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect();
    assert!(
        blob.starts_with(&[0xd0, 0x0d, 0xfe, 0xed]),
        "not a DTB:\n{text}"
    );
    let path = run.log_path.with_file_name(format!("{scenario}.dtb"));
    std::fs::write(&path, &blob).unwrap();
    let out = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(&path)
        .output()
        .expect("dtc (device-tree-compiler) runs");
    assert!(
        out.status.success(),
        "dtc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dts = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(path.with_extension("dts"), dts.as_bytes()).unwrap();
    dts
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn plic_device_tree_has_one_s_mode_context_per_hart_and_no_aia() {
    let dts = decompile_dtb(plic_host(), "dtb-plic");
    for m in [
        "plic@c000000 {",
        "riscv,plic0\"",
        "riscv,ndev = <0x5f>;",
        "interrupts = <0x0a>;",
    ] {
        assert!(dts.contains(m), "'{m}' not in:\n{dts}");
    }
    assert!(
        !dts.contains("imsics") && !dts.contains("aplic") && !dts.contains("ssaia"),
        "{dts}"
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn dumped_device_tree_describes_the_guest() {
    let dts = decompile_dtb(aia_host(), "dtb");
    for m in [
        "cpu@0 {",
        "cpu@1 {",
        "riscv,isa = \"rv64imafdc",
        "riscv,isa-extensions = \"i\\0m\\0a\\0f\\0d\\0c",
        "riscv,isa-base = \"rv64i\"",
        "mmu-type = \"riscv,sv",
        "timebase-frequency = <",
        "memory@80000000 {",
        "reg = <0x00 0x80000000 0x00 0x20000000>;",
        "bootargs = \"console=ttyS0 dtb-test\";",
        "linux,initrd-start",
        "linux,initrd-end",
        "stdout-path = \"/soc/serial@10000000\";",
        "serial@10000000 {",
        "compatible = \"ns16550a\";",
        "compatible = \"riscv,imsics\";",
        "compatible = \"riscv,aplic\";",
        "interrupt-controller@d000000",
        "interrupt-controller@28000000",
        "msi-controller;",
        "test@100000",
    ] {
        assert!(
            dts.contains(m),
            "'{m}' not in the guest's device tree:\n{dts}"
        );
    }
    // The ISA comes from KVM: the bench's `-cpu rv64` has Sstc and Ssaia, and KVM passes them on.
    assert!(dts.contains("sstc") && dts.contains("ssaia"), "{dts}");
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn irqchip_aia_on_a_host_without_aia_is_refused_clearly() {
    let run = plic_host();
    assert!(
        run.log.contains("kvm=yes"),
        "L1 (PLIC) has no /dev/kvm:\n{}",
        run.log
    );
    run.assert_markers(
        "aia-missing",
        &["AIA-MISSING rc=1", "rvvmm: error: --irqchip aia"],
    );
}

/// Checks a `boot` scenario's result and that it ran on the userspace PLIC.
fn assert_plic_boot(text: &str) {
    assert!(
        text.contains("interrupt controller: PLIC (userspace)"),
        "not on the PLIC:\n{text}"
    );
    assert_eq!(field(text, "RVVMM-L2-BOOTED", "harts"), Some("2"), "{text}");
    assert_eq!(field(text, "L2-BOOT-EXIT", "rc"), Some("0"), "{text}");
    eprintln!(
        "L2 boot to poweroff on the PLIC: {} s",
        field(text, "L2-BOOT-EXIT", "seconds").unwrap_or("?")
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn linux_boots_on_the_userspace_plic_of_a_host_without_aia() {
    assert_plic_boot(plic_host().passed("boot"));
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn console_disk_and_net_work_on_a_host_without_aia() {
    let run = plic_host();
    run.assert_markers("console", &["CONSOLE-42-OK", "CONSOLE-EXIT rc=0"]);
    run.assert_markers(
        "disk",
        &[
            "DISK-READ-MATCH",
            "DISK-WRITE-MATCH",
            "DISK-FS-OK",
            "DISK-FAILS 0 rc=0",
        ],
    );
    run.assert_markers(
        "net",
        &[
            "NET-PING1-OK",
            "NET-PING2-OK",
            "NET-GUEST-TO-L1-MATCH",
            "NET-L1-TO-GUEST-MATCH",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn irqchip_plic_on_an_aia_host_serves_console_disks_and_net() {
    let run = aia_host();
    assert_plic_boot(run.passed("plic-boot"));
    run.assert_markers(
        "plic-disk",
        &[
            "DISK-READ-MATCH",
            "DISK-WRITE-MATCH",
            "DISK-RO-UNCHANGED",
            "DISK-FAILS 0 rc=0",
        ],
    );
    run.assert_markers("plic-console", &["CONSOLE-42-OK", "CONSOLE-EXIT rc=0"]);
    run.assert_markers(
        "plic-net",
        &[
            "NET-PING1-OK",
            "NET-GUEST-TO-L1-MATCH",
            "NET-L1-TO-GUEST-MATCH",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn virtio_mmio_on_the_aia_serves_disks_and_net() {
    let run = aia_host();
    run.assert_markers(
        "mmio-disk",
        &[
            "DISK-READ-MATCH",
            "DISK-WRITE-MATCH",
            "DISK-RO-UNCHANGED",
            "DISK-ORDER-OK",
            "DISK-FAILS 0 rc=0",
        ],
    );
    run.assert_markers(
        "mmio-net",
        &[
            "NET-PING1-OK",
            "NET-PING2-OK",
            "NET-GUEST-TO-L1-MATCH",
            "NET-L1-TO-GUEST-MATCH",
            "NET-FAILS 0 rc=0",
        ],
    );
}

/// Parses a kernel CPU list such as `0-1,3`.
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                out.extend(a.parse::<usize>().unwrap_or(0)..=b.parse::<usize>().unwrap_or(0))
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

/// The cores of a `VM-X pid=N cores=a b` line.
fn vm_cores(text: &str, vm: &str) -> Vec<usize> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("VM-{vm} ")))
        .unwrap_or_else(|| panic!("no VM-{vm}:\n{text}"));
    let cores = line.split("cores=").nth(1).unwrap_or("");
    cores
        .split_whitespace()
        .map(|c| c.parse().unwrap_or_else(|_| panic!("bad core in {line}")))
        .collect()
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn four_core_guest_runs_on_four_harts() {
    let text = four_hart_host().passed("cores");
    assert_eq!(field(text, "RVVMM-L2-BOOTED", "harts"), Some("4"), "{text}");
    for cpu in 0..4 {
        assert!(
            text.contains(&format!("RAN-ON-CPU {cpu}")),
            "no work ran on guest cpu {cpu}:\n{text}"
        );
    }
    let pins: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("PINS-4 "))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let mut distinct = pins.clone();
    distinct.dedup();
    assert_eq!(
        (pins.len(), distinct.len()),
        (4, 4),
        "vcpus not on 4 distinct cores: {pins:?}"
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn concurrent_vms_get_disjoint_cores_and_killed_vms_free_theirs() {
    let text = four_hart_host().passed("cores");
    let (a, b, c) = (
        vm_cores(text, "A"),
        vm_cores(text, "B"),
        vm_cores(text, "C"),
    );
    assert_eq!((a.len(), b.len()), (2, 2), "{text}");
    assert!(
        a.iter().all(|x| !b.contains(x)),
        "VMs A {a:?} and B {b:?} share a core"
    );
    assert!(text.contains("DISTINCT-CORES 4"), "{text}");
    // The third VM is refused and told who holds the cores.
    let third = text
        .lines()
        .find(|l| l.starts_with("THIRD "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(third.starts_with("THIRD rc=1 rvvmm: error: "), "{third}");
    assert!(third.contains("held:") && third.contains("pid"), "{third}");
    // After SIGKILL of A, C gets A's cores at once.
    let mut freed = a.clone();
    freed.sort_unstable();
    assert_eq!(c, freed, "C should reuse A's cores:\n{text}");
    // rvvmm's own threads of A run on the cores its vcpus do not use.
    let own: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("OWN-THREAD-A "))
        .collect();
    assert!(!own.is_empty(), "{text}");
    for line in own {
        let cores = parse_cpu_list(line.rsplit(' ').next().unwrap_or(""));
        assert!(
            !cores.is_empty() && cores.iter().all(|c| !a.contains(c)),
            "{line} overlaps vcpu cores {a:?}"
        );
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn virtio_blk_moves_data_both_ways_and_honours_readonly() {
    let text = aia_host().passed("disk");
    for m in [
        "DISK-READ-MATCH",   // L1 wrote a.img, the guest's sha256 of /dev/vda is the same
        "DISK-WRITE-MATCH",  // the guest wrote 6 MiB to /dev/vdb, L1 finds them in b.img after exit
        "DISK-RO-UNCHANGED", // readonly=on: the file is untouched
        "DISK-RO-FLAG",      // and the guest sees a read-only disk
        "DISK-ORDER-OK",     // vda, vdb, vdd have the sizes of the --disk options in order
        "DISK-FS-OK",        // ext2 made in the guest survives umount + mount
        "DISK-ID-OK",        // GET_ID returns id=second-disk
        "DISK-FAILS 0 rc=0",
    ] {
        assert!(text.contains(m), "'{m}' missing:\n{text}");
    }
    let ro = text
        .lines()
        .find(|l| l.starts_with("RO-WRITE-6-rc="))
        .unwrap_or("");
    assert_ne!(
        ro, "RO-WRITE-6-rc=0",
        "a write to the read-only disk succeeded:\n{text}"
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn unusable_disk_images_are_refused() {
    let text = aia_host().passed("disk-errors");
    for (case, snippet) in [
        ("missing-file", "No such file"),
        ("not-multiple-of-512", "not a multiple of 512"),
        ("locked-by-another", "in use by another process"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("DISKERR {case} ")))
            .unwrap_or_else(|| panic!("{case}:\n{text}"));
        assert!(
            line.contains("rc=1 msg=rvvmm: error: --disk") && line.contains(snippet),
            "{line}"
        );
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn virtio_net_pings_and_moves_tcp_data_both_ways_on_two_cards() {
    aia_host().assert_markers(
        "net",
        &[
            "NET-PING1-OK",          // guest pings L1 through the first --net
            "NET-PING2-OK",          // and through the second
            "NET-GUEST-TO-L1-MATCH", // 4 MiB over TCP, same sha256 on both sides
            "NET-L1-TO-GUEST-MATCH",
            "NET-FAILS 0 rc=0",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn virtio_pci_transport_moves_disk_and_net_data_with_msix_and_no_virtio_exits() {
    aia_host().assert_markers(
        "virtio-pci",
        &[
            "VPCI-FOUND 0x1af4:0x1042 x2", // two disks, bound to virtio-pci
            "VPCI-FOUND 0x1af4:0x1041 x1", // the network card
            "VPCI-FOUND 0x1af4:0x1044 x1", // the entropy source
            "VPCI-MSIX-VECTORS",           // a vector per queue and per device's configuration
            "VPCI-DISK-READ-MATCH",
            "VPCI-DISK-WRITE-MATCH",
            "VPCI-PING-OK",
            "VPCI-GUEST-TO-L1-MATCH", // 4 MiB over TCP each way, same sha256 on both sides
            "VPCI-L1-TO-GUEST-MATCH",
            "VPCI-RNG-OK",
            "VPCI-PCI-EXITS", // exits only from configuration, none per request
            "VPCI-FAILS 0 rc=0",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn unusable_net_options_are_refused() {
    let text = aia_host().passed("net-errors");
    for (case, rc, snippet) in [
        ("bad-mac", "2", "invalid MAC address"),
        ("multicast-mac", "2", "multicast"),
        ("no-tap-name", "2", "tap=IFNAME or fd=N is required"),
        ("not-a-tap", "1", "--net tap=lo"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("NETERR {case} ")))
            .unwrap_or_else(|| panic!("{case}:\n{text}"));
        assert!(
            line.contains(&format!("rc={rc} msg=rvvmm: error: ")) && line.contains(snippet),
            "{line}"
        );
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vhost_net_data_path_moves_the_same_traffic() {
    // Both cards really use /dev/vhost-net (VHOST-DEVICES 2), and the same checks as the userspace path hold.
    aia_host().assert_markers(
        "net-vhost",
        &[
            "VHOST-DEVICES 2",
            "NET-PING1-OK",
            "NET-PING2-OK",
            "NET-GUEST-TO-L1-MATCH",
            "NET-L1-TO-GUEST-MATCH",
            "NET-FAILS 0 rc=0",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vfio_host_runs_the_project_kernel_with_dev_kvm() {
    let run = vfio_host();
    let ready = run
        .log
        .lines()
        .find(|l| l.starts_with("RVVMM-L1-READY "))
        .unwrap_or_else(|| panic!("L1 never got ready:\n{}", run.log));
    assert!(ready.contains(" kvm=yes"), "no /dev/kvm: {ready}");
    // The project-built kernel (linux-source-7.x), not Debian's trixie 6.12.
    assert!(
        ready.contains("kernel=7."),
        "not the project kernel: {ready}"
    );
    run.assert_markers("kvm", &["KVM-DEVICE-OK"]);
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vfio_bind_gives_each_passthrough_device_its_own_group_and_dev_vfio_node() {
    let run = vfio_host();
    let text = run.passed("vfio-bind");
    run.assert_markers(
        "vfio-bind",
        &[
            "L1-SBI-V01 on",
            "VFIO-CONTAINER /dev/vfio/vfio",
            "VFIO-L1-DISK-SHA-MATCH",
            "VFIO-DISK-BACK",
            "VFIO-BIND-FAILS 0",
        ],
    );
    let mut groups = Vec::new();
    for bdf in [PT_BLK_BDF, PT_NET_BDF] {
        let group = field(text, &format!("VFIO-BIND-OK {bdf} "), "group")
            .unwrap_or_else(|| panic!("{bdf} not bound to vfio-pci:\n{text}"));
        // The group holds this function alone.
        let line = format!("VFIO-GROUP {bdf} group={group} members={bdf} driver=virtio-pci");
        assert!(text.lines().any(|l| l == line), "no '{line}' in:\n{text}");
        assert!(
            text.contains(&format!("VFIO-RESTORED {bdf} driver=virtio-pci")),
            "{bdf} not given back to virtio-pci:\n{text}"
        );
        groups.push(group);
    }
    assert_ne!(groups[0], groups[1], "both devices in one group:\n{text}");
    // What L1 read through its own virtio-blk driver is the known data L0 wrote before the boot.
    let disk = passthrough_disk(vfio_options()).expect("passthrough disk");
    let seen = field(text, "L1-DISK ", "sha256").unwrap_or_else(|| panic!("{text}"));
    assert_eq!(seen, PassthroughDisk::original_sha256(), "{text}");
    assert_eq!(disk.sha256_at_boot().as_deref(), Some(seen));
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vfio_host_boots_the_usual_guest() {
    let text = vfio_host().passed("boot");
    assert_eq!(field(text, "RVVMM-L2-BOOTED", "harts"), Some("2"), "{text}");
    assert_eq!(field(text, "L2-BOOT-EXIT", "rc"), Some("0"), "{text}");
    assert!(
        text.contains("interrupt controller: AIA"),
        "not on the AIA:\n{text}"
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vfio_passthrough_errors_get_one_line_and_leave_the_device_as_it_was() {
    vfio_host().assert_markers(
        "vfio-errors",
        &[
            "PT-ERR-LEFT-AS-IT-WAS",
            "PT-FIRST-VM-STILL-RUNNING",
            "PT-FREE-AGAIN rc=0",
            "PT-ERR-FAILS 0",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn passthrough_on_a_stock_kernel_host_says_how_to_bind() {
    aia_host().assert_markers("vfio-stock-errors", &["PT-STOCK-NOT-BOUND-OK"]);
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vfio_passthrough_disk_and_nic_work_in_the_guest_with_msix() {
    let run = vfio_host();
    run.assert_markers(
        "vfio",
        &[
            "PT-DISK-READ-MATCH",
            "PT-DISK-WRITE-OK",
            "PT-WITH-VIRTIO-DISK-OK",
            "PT-NET-DHCP-OK",
            "PT-NET-PING-OK",
            "PT-NET-TCP-OK",
            "PT-FAILS 0 rc=0",
        ],
    );
    // What the guest wrote through the passed-through disk is in L0's backing file, and nothing else
    // changed: one sector at 32 MiB, the marker padded with zeros (dd conv=sync).
    let disk = passthrough_disk(vfio_options()).expect("passthrough disk");
    let marker = b"RVVMM-PT-WRITE-MARKER\n";
    let got = disk
        .read_at(32 << 20, 512)
        .unwrap_or_else(|e| panic!("{}: {e}", disk.path().display()));
    let mut want = marker.to_vec();
    want.resize(512, 0);
    assert!(
        got == want,
        "the guest's write is not at offset 32 MiB of {}",
        disk.path().display()
    );
    assert_eq!(
        disk.changed_sectors().expect("read the disk"),
        vec![(65536, 1)],
        "sectors changed in {}",
        disk.path().display()
    );
}

/// What the bare-metal test kernel must print on every host, as an ELF and as a raw binary.
const BAREMETAL_MARKERS: &[&str] = &[
    "[elf] BM-PASS dbcn-console",
    "[elf] BM-PASS dbcn-read char=D",
    "[elf] BM-PASS timer-sbi ticks=5",
    "[elf] BM-PASS timer-sstc ticks=5",
    "[elf] BM-PASS rtc",
    "[elf] BM-PASS hsm",
    "[elf] BM-PASS virtio-blk read-sector0",
    "[raw] BM-PASS dbcn-read char=D",
    "[raw] BM-PASS timer-sbi ticks=5",
    "[raw] BM-PASS timer-sstc ticks=5",
    "[raw] BM-PASS rtc",
    "[raw] BM-PASS hsm",
    "[raw] BM-PASS virtio-blk read-sector0",
    "BM-RUN elf rc=0",
    "BM-RUN raw rc=0",
    "BM-RUN raw-forced rc=0",
    "BM-RUN srst-reboot rc=3",
    "BM-RUN srst-fail rc=4",
    "BM-RUN test-fail rc=4",
    "BM-RUN test-reset rc=3",
    "BM-RUN timeout rc=124",
    "BM-BAD elf-machine rc=1",
    "BM-BAD elf-class rc=1",
    "BM-BAD elf-truncated rc=1",
    "BM-BAD raw-outside-ram rc=1",
    "BM-BAD image-forced rc=1",
    "BM-FAILS 0",
];

/// The interrupt checks of the bare-metal kernel through interrupt controller `chip` (plic or aplic).
fn baremetal_irq_markers(chip: &str) -> Vec<String> {
    ["elf", "raw"]
        .iter()
        .flat_map(|f| {
            [
                format!("[{f}] BM-PASS rtc-alarm-irq-{chip}"),
                format!("[{f}] BM-PASS uart-irq-{chip} char=Z"),
            ]
        })
        .collect()
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn baremetal_elf_and_raw_kernels_on_the_aia() {
    let run = aia_host();
    run.assert_markers("baremetal", BAREMETAL_MARKERS);
    let irqs = baremetal_irq_markers("aplic");
    run.assert_markers(
        "baremetal",
        &irqs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn baremetal_elf_and_raw_kernels_on_the_userspace_plic() {
    let irqs = baremetal_irq_markers("plic");
    let irqs: Vec<&str> = irqs.iter().map(String::as_str).collect();
    for (run, scenario) in [(plic_host(), "baremetal"), (aia_host(), "plic-baremetal")] {
        run.assert_markers(scenario, BAREMETAL_MARKERS);
        run.assert_markers(scenario, &irqs);
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn vfio_host_legacy_sbi_console_and_shutdown_on_a_host_with_sbi_v01() {
    vfio_host().assert_markers(
        "baremetal-legacy",
        &[
            "[elf] BM-PASS legacy-console",
            "[elf] BM-PASS legacy-getchar char=L",
            "[elf] BM-PASS timer-legacy ticks=5",
            "BM-LEGACY-RUN elf rc=0",
            "[raw] BM-PASS legacy-console",
            "[raw] BM-PASS legacy-getchar char=L",
            "[raw] BM-PASS timer-legacy ticks=5",
            "BM-LEGACY-RUN raw rc=0",
            "BM-LEGACY-CONSOLE-HELLO",
            "BM-LEGACY-FAILS 0",
        ],
    );
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn debian_guest_logs_in_on_the_console_and_over_ssh() {
    let text = distro_host().passed("distro");
    assert!(text.contains("DISTRO-CONSOLE-LOGIN-OK"), "{text}");
    let ssh = text
        .lines()
        .find(|l| l.starts_with("DISTRO-SSH-OK"))
        .unwrap_or_else(|| panic!("no ssh login:\n{text}"));
    assert!(ssh.contains(" debian-13 "), "not Debian 13: {ssh}");
    // The address L1's DHCP server leases to the guest's MAC.
    assert!(
        ssh.contains("addr=192.168.77.10/24"),
        "no DHCP address: {ssh}"
    );
    assert!(ssh.contains("harts=2"), "{ssh}");
    // The card is a virtio-pci function in slot 2 (the root disk has slot 1): systemd-udev names it by
    // its slot, a stable name (virtio-mmio cards get `end0` from their ethernet0 alias).
    assert!(ssh.contains("iface=enp0s2"), "{ssh}");
    assert!(
        text.contains("DISTRO-RNG virtio_rng"),
        "the guest's hwrng is not virtio-rng:\n{text}"
    );
    for boot in ["1", "2"] {
        let secs = text
            .lines()
            .filter(|l| l.starts_with("DISTRO-LOGIN-PROMPT"))
            .find(|l| field(l, "DISTRO-LOGIN-PROMPT", "boot") == Some(boot))
            .and_then(|l| field(l, "DISTRO-LOGIN-PROMPT", "seconds"));
        eprintln!("Debian boot {boot}: rvvmm start to the login prompt: {secs:?} s");
        assert!(secs.is_some(), "no login prompt on boot {boot}:\n{text}");
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn debian_guest_reaches_its_default_target_with_no_failed_units() {
    let text = distro_host().passed("distro");
    for boot in ["1", "2"] {
        let state = text
            .lines()
            .find(|l| l.starts_with(&format!("DISTRO-SYSTEM-STATE boot={boot} ")))
            .unwrap_or_else(|| panic!("no system state for boot {boot}:\n{text}"));
        assert!(state.ends_with(" running"), "boot {boot}: {state}\n{text}");
    }
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("DISTRO-FAILED-UNIT"))
        .collect();
    assert!(failed.is_empty(), "failed units: {failed:#?}");
    // Warnings the VM's hardware caused (the journal's warnings are in the log): the NIC has a stable
    // name (its device tree alias), and logins find their locale.
    for w in [
        "potentially unpredictable interface name",
        "Unable to open env file",
    ] {
        assert!(!text.contains(w), "journal warning '{w}':\n{text}");
    }
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn debian_guest_reboots_and_powers_off() {
    let text = distro_host().passed("distro");
    // rvvmm does not restart guests: a reset ends it with status 3 (the contract), the supervisor (the
    // scenario) starts it again on the same disk; poweroff ends it with 0.
    assert!(text.contains("DISTRO-BOOT-EXIT boot=1 rc=3"), "{text}");
    assert!(text.contains("DISTRO-REBOOTED new boot_id"), "{text}");
    assert!(text.contains("DISTRO-BOOT-EXIT boot=2 rc=0"), "{text}");
}

#[test]
#[ignore = "needs the nested riscv64 bench: run resources/test.sh"]
fn debian_guest_leaves_a_clean_filesystem() {
    distro_host().passed("distro");
    let disk = distro_disk(distro_options()).expect("distro host has a disk");
    let fsck = Command::new("e2fsck")
        .args(["-f", "-n"])
        .arg(&disk)
        .output()
        .expect("run e2fsck (e2fsprogs)");
    assert!(
        fsck.status.success(),
        "e2fsck -fn {}: {:?}\n{}{}",
        disk.display(),
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let sb = Command::new("dumpe2fs")
        .arg("-h")
        .arg(&disk)
        .output()
        .expect("run dumpe2fs (e2fsprogs)");
    let sb = String::from_utf8_lossy(&sb.stdout);
    let state = sb
        .lines()
        .find(|l| l.starts_with("Filesystem state:"))
        .unwrap_or("no state");
    assert!(state.ends_with(" clean"), "{state}: not cleanly unmounted");
    // Both boots mounted it (mke2fs leaves the count at 0).
    let mounts: u32 = sb
        .lines()
        .find_map(|l| l.strip_prefix("Mount count:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        mounts >= 2,
        "mount count {mounts}: the guest did not boot from it twice\n{sb}"
    );
}
