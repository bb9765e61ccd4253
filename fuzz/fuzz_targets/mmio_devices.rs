//! Fuzz target `mmio_devices`: see [`rvvmm_fuzz::mmio_devices`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::mmio_devices::run(data));
