//! Fuzz target `virtio_pci`: see [`rvvmm_fuzz::virtio_pci`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::virtio_pci::run(data));
