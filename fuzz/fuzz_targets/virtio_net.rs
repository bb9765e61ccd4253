//! Fuzz target `virtio_net`: see [`rvvmm_fuzz::virtio_net`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvvmm_fuzz::virtio_net::run(data));
