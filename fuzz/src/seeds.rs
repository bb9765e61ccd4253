//! The seed corpus of each target: small valid inputs that reach the interesting code, from which the
//! fuzzer mutates. `resources/fuzz.sh` writes them to the corpus directory before a run.

/// The seeds of target `name` (empty for an unknown name).
pub fn for_target(name: &str) -> Vec<Vec<u8>> {
    match name {
        "virtio_blk" => crate::virtio_blk::seeds(),
        "virtio_net" => crate::virtio_net::seeds(),
        "mmio_devices" => crate::mmio_devices::seeds(),
        "plic" => crate::plic::seeds(),
        "sbi" => crate::sbi::seeds(),
        "kernel_loader" => crate::kernel_loader::seeds(),
        "cmdline" => crate::cmdline::seeds(),
        "pci_config" => crate::pci_config::seeds(),
        "virtio_pci" => crate::virtio_pci::seeds(),
        "api" => crate::api::seeds(),
        _ => Vec::new(),
    }
}
