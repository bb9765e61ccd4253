//! Fuzz target `kernel_loader`: see [`rvvmm_fuzz::kernel_loader`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::kernel_loader::run(data));
