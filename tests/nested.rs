//! End-to-end tests on the nested bench: L1 riscv64 Linux with a real /dev/kvm under QEMU TCG, rvvmm running
//! inside it. They need the images and the riscv64 binary, so they are `#[ignore]`d in plain `cargo test`;
//! `resources/test.sh` builds everything and runs them with `--ignored`.

mod bench;

use std::sync::OnceLock;

use bench::{boot_l1, L1Options, L1Run};

/// Scenarios that run in the one L1 boot on an AIA host (QEMU virt,aia=aplic-imsic), in this order.
const AIA_SCENARIOS: &[&str] = &["kvm", "version", "help"];

fn aia_host() -> &'static L1Run {
    static RUN: OnceLock<L1Run> = OnceLock::new();
    RUN.get_or_init(|| boot_l1("aia-2hart", AIA_SCENARIOS, &L1Options::from_env("aia", 2)))
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
    run_version(aia_host());
}

fn run_version(run: &L1Run) {
    let text = run.passed("version");
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
    let run = aia_host();
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
    run.assert_markers("help", &options);
}
