//! Fuzz target `cmdline`: see [`rvvmm_fuzz::cmdline`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::cmdline::run(data));
