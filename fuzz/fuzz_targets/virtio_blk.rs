//! Fuzz target `virtio_blk`: see [`rvvmm_fuzz::virtio_blk`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::virtio_blk::run(data));
