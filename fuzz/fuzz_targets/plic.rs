//! Fuzz target `plic`: see [`rvvmm_fuzz::plic`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::plic::run(data));
