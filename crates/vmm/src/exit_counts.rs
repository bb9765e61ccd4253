//! Counts of vcpu exits to rvvmm by what they were for (a device's registers, SBI calls, signals): the
//! cheap profile of where the guest leaves KVM for the VMM. The control loop reports them as the
//! `__vcpu_exits` entry of `vm.counters`, and rvvmm logs them when the VM stops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use arch::layout::{
    APLIC_BASE, APLIC_SIZE, PCIE_ECAM_BASE, PCIE_ECAM_SIZE, PCIE_MMIO_BASE, PCIE_MMIO_SIZE,
    PLIC_BASE, PLIC_SIZE, RTC_BASE, RTC_SIZE, SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE, UART0_BASE,
    UART0_SIZE, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_SLOTS,
};

/// Fixed counters before the virtio slots (indices: the constants after it).
const NAMES: [&str; 9] = [
    "uart",
    "plic",
    "aplic",
    "rtc",
    "finisher",
    "pci",
    "other_mmio",
    "sbi",
    "interrupted",
];
const UART: usize = 0;
const PLIC: usize = 1;
const APLIC: usize = 2;
const RTC: usize = 3;
const FINISHER: usize = 4;
const PCI: usize = 5;
const OTHER_MMIO: usize = 6;
const SBI: usize = 7;
const INTERRUPTED: usize = 8;
const SLOTS: usize = VIRTIO_MMIO_SLOTS as usize;

/// The counters (all vcpus together).
#[derive(Debug, Default)]
pub struct ExitCounts {
    fixed: [AtomicU64; NAMES.len()],
    virtio: [AtomicU64; SLOTS],
}

fn within(addr: u64, base: u64, size: u64) -> bool {
    addr >= base && addr - base < size
}

impl ExitCounts {
    /// Counts one exit of counter `i` (called on every exit: an index, no lookup).
    fn bump(&self, i: usize) {
        self.fixed[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An MMIO read or write at `addr`.
    pub fn mmio(&self, addr: u64) {
        if within(addr, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE * SLOTS as u64) {
            let slot = ((addr - VIRTIO_MMIO_BASE) / VIRTIO_MMIO_SIZE) as usize;
            self.virtio[slot.min(SLOTS - 1)].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let counter = if within(addr, UART0_BASE, UART0_SIZE) {
            UART
        } else if within(addr, PLIC_BASE, PLIC_SIZE) {
            PLIC
        } else if within(addr, APLIC_BASE, APLIC_SIZE) {
            APLIC
        } else if within(addr, RTC_BASE, RTC_SIZE) {
            RTC
        } else if within(addr, SIFIVE_TEST_BASE, SIFIVE_TEST_SIZE) {
            FINISHER
        } else if within(addr, PCIE_ECAM_BASE, PCIE_ECAM_SIZE)
            || within(addr, PCIE_MMIO_BASE, PCIE_MMIO_SIZE)
        {
            PCI
        } else {
            OTHER_MMIO
        };
        self.bump(counter);
    }

    /// An SBI call that reached rvvmm.
    pub fn sbi(&self) {
        self.bump(SBI);
    }

    /// KVM_RUN interrupted by a signal (a pause, a stop).
    pub fn interrupted(&self) {
        self.bump(INTERRUPTED);
    }

    /// Every non-zero counter by name (`virtio0` .. for the virtio-mmio slots) and their `total`.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let fixed = NAMES.iter().map(|n| n.to_string()).zip(&self.fixed);
        let virtio = (0..SLOTS).map(|i| format!("virtio{i}")).zip(&self.virtio);
        for (name, c) in fixed.chain(virtio) {
            let v = c.load(Ordering::Relaxed);
            if v > 0 {
                out.insert(name, v);
            }
        }
        let total = out.values().sum();
        out.insert("total".into(), total);
        out
    }

    /// One line for the log: `total=N uart=.. virtio0=.. sbi=..`.
    pub fn summary(&self) -> String {
        let s = self.snapshot();
        let mut line = format!("total={}", s["total"]);
        for (k, v) in s.iter().filter(|(k, _)| *k != "total") {
            line.push_str(&format!(" {k}={v}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_counted_by_device() {
        let c = ExitCounts::default();
        c.mmio(UART0_BASE + 5);
        c.mmio(VIRTIO_MMIO_BASE + 0x50);
        c.mmio(VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE + 0x60);
        c.mmio(VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE + 0x64);
        c.mmio(PLIC_BASE + 0x20_0004);
        c.mmio(PCIE_ECAM_BASE);
        c.mmio(0x1234);
        c.mmio(u64::MAX);
        c.sbi();
        c.interrupted();
        let s = c.snapshot();
        assert_eq!(s["uart"], 1);
        assert_eq!((s["virtio0"], s["virtio1"]), (1, 2));
        assert_eq!((s["plic"], s["pci"], s["other_mmio"]), (1, 1, 2));
        assert_eq!((s["sbi"], s["interrupted"], s["total"]), (1, 1, 10));
        assert!(!s.contains_key("rtc"));
        assert_eq!(
            c.summary(),
            "total=10 interrupted=1 other_mmio=2 pci=1 plic=1 sbi=1 uart=1 virtio0=1 virtio1=2"
        );
    }
}
