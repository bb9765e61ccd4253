//! Fuzz target `pci_config`: see [`rvvmm_fuzz::pci_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::pci_config::run(data));
