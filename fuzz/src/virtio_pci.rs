//! Fuzz target `virtio_pci`: a fuzzed driver against the virtio-pci transport (virtio-rng behind it):
//! configuration space reads and writes of any offset and size (BAR sizing and moves, the command
//! register, the MSI-X capability's control), BAR 0 accesses of any offset and size (the common
//! configuration with any field, width and order, the ISR, the device configuration, notification
//! addresses, the MSI-X table and PBA), guest memory writes and queue processing.
//!
//! Besides not crashing, the transport must keep its bookkeeping with the VM straight: an ioeventfd is
//! never registered twice at one address nor removed where it is not, the registered ones are exactly
//! one per queue at BAR 0's notification area while the BAR is decoded inside a window (none otherwise),
//! and MSI routes and signalled vectors stay within the device's own GSIs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use pci::config::{BAR0, COMMAND};
use pci::{MsiRouting, PciDevice};
use virtio::pci::{layout, MsixInterrupt, VirtioPciDevice, VirtioPciVm};
use virtio::{MmioTransport, Rng};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::input::{Builder, Input};
use crate::virtio_driver::{guest_memory, AVAIL_OFFSET, USED_OFFSET};

/// BAR 0's first address, and the PCI window it must stay in to be decoded.
const BAR: u64 = 0x4000_0000;
const WINDOW: (u64, u64) = (0x4000_0000, 0x1000_0000);
/// The device's first GSI.
const GSI_BASE: u32 = 128;

/// The VM side, checking what the transport asks of it.
#[derive(Default)]
struct CheckedVm {
    ioeventfds: Mutex<BTreeSet<u64>>,
    vectors: Mutex<u32>,
}

impl MsiRouting for CheckedVm {
    fn set_msi_route(&self, gsi: u32, _message: Option<(u64, u32)>) -> std::io::Result<()> {
        let n = *self.vectors.lock().unwrap();
        assert!(
            (GSI_BASE..GSI_BASE + n).contains(&gsi),
            "MSI route for GSI {gsi}, not one of the device's"
        );
        Ok(())
    }
    fn register_irqfd(&self, _evt: &EventFd, gsi: u32) -> std::io::Result<()> {
        let mut n = self.vectors.lock().unwrap();
        assert_eq!(gsi, GSI_BASE + *n, "irqfds are not on consecutive GSIs");
        *n += 1;
        Ok(())
    }
}

impl VirtioPciVm for CheckedVm {
    fn register_ioeventfd(&self, _evt: &EventFd, addr: u64) -> std::io::Result<()> {
        assert!(
            self.ioeventfds.lock().unwrap().insert(addr),
            "ioeventfd registered twice at {addr:#x}"
        );
        Ok(())
    }
    fn unregister_ioeventfd(&self, _evt: &EventFd, addr: u64) -> std::io::Result<()> {
        assert!(
            self.ioeventfds.lock().unwrap().remove(&addr),
            "ioeventfd removed at {addr:#x} where none was"
        );
        Ok(())
    }
}

/// Reads the config space dword at `offset`.
fn config_dword(d: &mut VirtioPciDevice, offset: u16) -> u32 {
    let mut b = [0u8; 4];
    d.config_read(offset, &mut b);
    u32::from_le_bytes(b)
}

/// Checks that the registered ioeventfds are exactly those of the decoded BAR.
fn check_notifications(d: &mut VirtioPciDevice, vm: &CheckedVm, queues: u64) {
    let bar = u64::from(config_dword(d, BAR0) & !0xf);
    let decoded = config_dword(d, COMMAND) & 2 != 0;
    let inside = bar >= WINDOW.0 && bar + layout::BAR_SIZE <= WINDOW.0 + WINDOW.1;
    let want: BTreeSet<u64> = if decoded && inside {
        (0..queues)
            .map(|q| bar + layout::NOTIFY + q * u64::from(layout::NOTIFY_MULTIPLIER))
            .collect()
    } else {
        BTreeSet::new()
    };
    assert_eq!(
        *vm.ioeventfds.lock().unwrap(),
        want,
        "ioeventfds do not match BAR 0 at {bar:#x} (decoded: {decoded})"
    );
}

/// Header flag: skip the driver's set-up.
pub const NO_SETUP: u8 = 1;

/// Operations: 0 config read, 1 config write, 2 BAR read, 3 BAR write (`offset: u16`, `size: u8`, the
/// bytes), 4 guest memory write, 5 process queue 0, 6 publish buffers (`avail_idx: u16`).
const OPS: u8 = 7;

/// A Linux-like set-up through the common configuration: memory decoding, MSI-X on with both vectors
/// programmed, features (VERSION_1), queue 0 of `size` at the fixed ring addresses, DRIVER_OK.
fn setup(d: &mut VirtioPciDevice, size: u16) {
    let w = |d: &mut VirtioPciDevice, off: u64, v: u64, len: usize| {
        d.bar_write(0, off, &v.to_le_bytes()[..len])
    };
    d.config_write(COMMAND, &[6, 0]);
    for v in 0..2u64 {
        w(d, layout::MSIX_TABLE + 16 * v, 0x2800_0000, 8);
        w(d, layout::MSIX_TABLE + 16 * v + 8, 32 + v, 4);
        w(d, layout::MSIX_TABLE + 16 * v + 12, 0, 4);
    }
    d.config_write(0x8a, &0x8000u16.to_le_bytes());
    w(d, 0x14, 3, 1);
    w(d, 0x08, 1, 4);
    w(d, 0x0c, 1, 4);
    w(d, 0x14, 11, 1);
    w(d, 0x10, 0, 2);
    w(d, 0x16, 0, 2);
    w(d, 0x18, u64::from(size), 2);
    w(d, 0x1a, 1, 2);
    for (off, addr) in [(0x20, 0), (0x28, AVAIL_OFFSET), (0x30, USED_OFFSET)] {
        w(d, off, addr & 0xffff_ffff, 4);
        w(d, off + 4, addr >> 32, 4);
    }
    w(d, 0x1c, 1, 2);
    w(d, 0x14, 15, 1);
}

/// Runs one input.
pub fn run(data: &[u8]) {
    run_and_report(data);
}

/// Runs one input: `flags: u8`, `queue_size: u8` (as a power of two exponent), then operations;
/// returns the used index of queue 0 and how often its vector (1) fired.
pub fn run_and_report(data: &[u8]) -> (u16, u64) {
    let mem = guest_memory();
    let vm = Arc::new(CheckedVm::default());
    let Ok(interrupt) = MsixInterrupt::new(1, GSI_BASE, vm.clone()) else {
        return (0, 0);
    };
    let interrupt = Arc::new(interrupt);
    let Ok(t) = MmioTransport::new(Box::new(Rng::new()), mem.clone(), interrupt.clone()) else {
        return (0, 0);
    };
    let t = Arc::new(Mutex::new(t));
    let mut d = VirtioPciDevice::new(t.clone(), interrupt.clone(), vm.clone(), BAR, vec![WINDOW]);
    let mut input = Input::new(data);
    let flags = input.u8();
    let size = 1u16 << (input.u8() % 9);
    if flags & NO_SETUP == 0 {
        setup(&mut d, size);
    }
    check_notifications(&mut d, &vm, 1);
    while !input.is_empty() {
        let op = input.u8() % OPS;
        let offset = input.u16();
        let len = [1, 2, 4, 8, 3][usize::from(input.u8() % 5)];
        match op {
            0 => {
                let mut b = [0u8; 8];
                d.config_read(offset % 4096, &mut b[..len.min(4)]);
            }
            1 => {
                let bytes = input.bytes(len.min(4));
                d.config_write(offset % 4096, bytes);
            }
            2 => {
                let mut b = [0u8; 8];
                d.bar_read(0, u64::from(offset) % layout::BAR_SIZE, &mut b[..len]);
            }
            3 => {
                let bytes = input.bytes(len);
                d.bar_write(0, u64::from(offset) % layout::BAR_SIZE, bytes);
            }
            4 => {
                let bytes = input.short_bytes();
                let _ = mem.write_slice(bytes, GuestAddress(u64::from(offset)));
            }
            5 => t.lock().unwrap().process_queue(0),
            _ => {
                let _ = mem.write_obj(offset, GuestAddress(AVAIL_OFFSET + 2));
            }
        }
        check_notifications(&mut d, &vm, 1);
    }
    (crate::virtio_driver::used_idx(&mem, 0), interrupt.fired(1))
}

/// Seeds: the set-up and one 64-byte buffer served; the same with BAR 0 sized and moved (decoding off
/// and on again) in between.
pub fn seeds() -> Vec<Vec<u8>> {
    let chain = |b: &mut Builder| {
        let mut desc = Vec::new();
        desc.extend_from_slice(&0x8000u64.to_le_bytes());
        desc.extend_from_slice(&64u32.to_le_bytes());
        desc.extend_from_slice(&2u16.to_le_bytes()); // device-writable
        desc.extend_from_slice(&0u16.to_le_bytes());
        b.u8(4).u16(0).u8(0).short_bytes(&desc);
        b.u8(4)
            .u16(AVAIL_OFFSET as u16 + 4)
            .u8(0)
            .short_bytes(&[0, 0]);
        b.u8(6).u16(1).u8(0);
        b.u8(5).u16(0).u8(0);
    };
    let mut out = Vec::new();
    let mut b = Builder::default();
    b.u8(0).u8(4);
    chain(&mut b);
    out.push(b.0);

    let mut b = Builder::default();
    b.u8(0).u8(4);
    b.u8(1).u16(COMMAND).u8(1).bytes(&[0, 0]);
    b.u8(1).u16(BAR0).u8(2).bytes(&0xffff_ffffu32.to_le_bytes());
    b.u8(1).u16(BAR0).u8(2).bytes(&0x4001_0000u32.to_le_bytes());
    b.u8(1).u16(COMMAND).u8(1).bytes(&[6, 0]);
    chain(&mut b);
    out.push(b.0);
    out
}
