//! Fuzz target `api`: see [`rvvmm_fuzz::api`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::api::run(data));
