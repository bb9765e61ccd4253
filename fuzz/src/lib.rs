//! Fuzz targets for rvvmm: everything that parses guest-controlled or file data, driven through the same
//! arch-neutral code the VMM runs. Each module has a `run(data)` that a libFuzzer target in
//! `fuzz_targets/` calls; `seeds` builds each target's seed corpus of valid inputs, and the unit tests
//! of this crate run every seed and every saved regression input (`regressions/<target>/`) through
//! `run` without instrumentation.
//!
//! A target "fails" when rvvmm's code panics (including arithmetic overflow: targets are built with
//! overflow checks and debug assertions), aborts, hangs, or reads out of bounds. Guest memory in the
//! virtio targets is a small mapping, so an access outside it that vm-memory did not refuse would crash.

pub mod input;
pub mod seeds;

pub mod api;
pub mod cmdline;
pub mod kernel_loader;
pub mod mmio_devices;
pub mod pci_config;
pub mod plic;
pub mod sbi;
pub mod virtio_blk;
pub mod virtio_driver;
pub mod virtio_net;
pub mod virtio_pci;

/// A target's entry point: runs one input.
pub type Entry = fn(&[u8]);

/// The fuzz targets: name and entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("virtio_blk", virtio_blk::run),
    ("virtio_net", virtio_net::run),
    ("mmio_devices", mmio_devices::run),
    ("plic", plic::run),
    ("sbi", sbi::run),
    ("kernel_loader", kernel_loader::run),
    ("cmdline", cmdline::run),
    ("pci_config", pci_config::run),
    ("api", api::run),
    ("virtio_pci", virtio_pci::run),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every seed of every target runs to completion.
    #[test]
    fn seeds_run_cleanly() {
        for (name, run) in TARGETS {
            let seeds = seeds::for_target(name);
            assert!(!seeds.is_empty(), "{name} has no seeds");
            for seed in seeds {
                run(&seed);
            }
        }
    }

    /// Every input a fuzzer once crashed rvvmm with (saved under `regressions/<target>/`) runs cleanly now.
    #[test]
    fn regression_inputs_run_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
        for (name, run) in TARGETS {
            let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                eprintln!("regression {}", path.display());
                run(&std::fs::read(&path).unwrap());
            }
        }
    }

    /// Writes every target's seed corpus to `$RVVMM_FUZZ_SEEDS/<target>/seed-<n>` (run by
    /// `resources/fuzz.sh`; ignored otherwise).
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        let dir =
            std::env::var_os("RVVMM_FUZZ_SEEDS").expect("RVVMM_FUZZ_SEEDS names the directory");
        for (name, _) in TARGETS {
            let target_dir = Path::new(&dir).join(name);
            std::fs::create_dir_all(&target_dir).unwrap();
            for (i, seed) in seeds::for_target(name).iter().enumerate() {
                std::fs::write(target_dir.join(format!("seed-{i}")), seed).unwrap();
            }
        }
    }

    /// The virtio seeds reach the device: a valid block read completes (checked through the used ring).
    #[test]
    fn block_read_seed_completes_one_request() {
        let used = virtio_blk::run_and_report(&seeds::for_target("virtio_blk")[0]);
        assert_eq!(used, 1, "the seed's read request was not completed");
    }

    /// The virtio-pci seeds complete their buffer and signal its queue's MSI-X vector.
    #[test]
    fn virtio_pci_seeds_complete_one_buffer_and_fire_its_vector() {
        for seed in &seeds::for_target("virtio_pci") {
            assert_eq!(virtio_pci::run_and_report(seed), (1, 1));
        }
    }

    /// The net seed's transmitted frame reaches the host side of the socket pair.
    #[test]
    fn net_tx_seed_sends_one_frame() {
        let report = virtio_net::run_and_report(&seeds::for_target("virtio_net")[0]);
        assert_eq!(report.frames_to_host, 1);
    }

    /// The net receive seeds deliver the host's frame into the guest's buffer.
    #[test]
    fn net_rx_seeds_receive_one_frame() {
        for seed in &seeds::for_target("virtio_net")[1..] {
            assert_eq!(virtio_net::run_and_report(seed).rx_used, 1);
        }
    }
}
