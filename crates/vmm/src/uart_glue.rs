//! What the UART needs from KVM (riscv64 only): its data register in a coalesced MMIO zone while the
//! guest polls it, so that a console byte costs one exit (the status read before it) instead of two.
//! See [`devices::serial`] for when the zone is on.

use std::sync::Arc;

use devices::serial::HeldWrites;
use hypervisor::{CoalescedRing, Vm};

/// The UART's data register as a coalesced MMIO zone of one byte.
pub struct KvmHeldWrites {
    vm: Arc<Vm>,
    ring: CoalescedRing,
    base: u64,
}

/// Size of the zone: the data register only (a wider store there exits as before).
const ZONE: u32 = 1;

impl KvmHeldWrites {
    /// Held writes for the UART at `base`, through `ring` (the VM's coalesced MMIO ring).
    pub fn new(vm: Arc<Vm>, ring: CoalescedRing, base: u64) -> KvmHeldWrites {
        KvmHeldWrites { vm, ring, base }
    }
}

impl HeldWrites for KvmHeldWrites {
    fn take(&self, f: &mut dyn FnMut(u64, u8)) {
        let base = self.base;
        self.ring.drain(&mut |w| {
            // Only the UART's zone is registered; anything else would be a KVM bug, dropped.
            if w.len >= 1 && w.addr >= base && w.addr < base + u64::from(ZONE) {
                f(w.addr - base, w.data[0]);
            } else {
                log::warn!(
                    "coalesced MMIO write outside the UART at {:#x} ({} bytes) dropped",
                    w.addr,
                    w.len
                );
            }
        });
    }

    fn hold(&self, on: bool) -> Result<(), String> {
        let r = if on {
            self.vm.register_coalesced_mmio(self.base, ZONE)
        } else {
            self.vm.unregister_coalesced_mmio(self.base, ZONE)
        };
        r.map_err(|e| e.to_string())
    }
}
