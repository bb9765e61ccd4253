//! Fuzz target `sbi`: see [`rvvmm_fuzz::sbi`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::sbi::run(data));
