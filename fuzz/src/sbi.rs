//! Fuzz target `sbi`: SBI calls KVM forwards to rvvmm (legacy console putchar/getchar, DBCN write,
//! read and write_byte, anything else) with any extension, function and arguments, against guest RAM
//! at 0x8000_0000. Buffers that wrap around the address space, straddle the end of RAM or are huge
//! must be refused; what a successful DBCN write prints must be exactly the guest's bytes.

use std::sync::{Arc, Mutex};

use devices::console::ConsoleInput;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::sbi::{self, SbiConsole};

use crate::input::{Builder, Input};

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: usize = 0x2_0000;

const EXTENSIONS: [u64; 4] = [
    sbi::EXT_LEGACY_PUTCHAR,
    sbi::EXT_LEGACY_GETCHAR,
    sbi::EXT_DBCN,
    0x10,
];

/// Runs one input: RAM contents (a length byte and the bytes, at RAM start), then calls: `ext: u8`
/// (one of four, or a raw u64 after 0xff), `fid: u8`, six `u64` arguments (the first two relative to
/// RAM when the selector byte before them is odd), and console input (a length byte and the bytes).
pub fn run(data: &[u8]) {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(RAM_BASE), RAM_SIZE)]).unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let input_queue = Arc::new(ConsoleInput::new());
    let console = SbiConsole::new(
        Box::new(move |b| {
            sink.lock().unwrap().extend_from_slice(b);
            Ok(())
        }),
        input_queue.clone(),
    );
    let mut input = Input::new(data);
    let _ = mem.write_slice(input.short_bytes(), GuestAddress(RAM_BASE));
    while !input.is_empty() {
        let sel = input.u8();
        let ext = match EXTENSIONS.get(usize::from(sel % 5)) {
            Some(&e) => e,
            None => input.u64(),
        };
        let fid = u64::from(input.u8() % 4);
        let relative = input.u8() & 1 != 0;
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = input.u64();
        }
        if relative {
            args[0] %= 2 * RAM_SIZE as u64;
            args[1] = RAM_BASE.wrapping_add(args[1] % (2 * RAM_SIZE as u64));
            args[2] = 0;
        }
        input_queue.push(input.short_bytes());
        out.lock().unwrap().clear();
        let [err, value] = console.handle(&mem, ext, fid, args);
        if ext == sbi::EXT_DBCN && fid == sbi::DBCN_WRITE && err == 0 {
            let printed = out.lock().unwrap().clone();
            assert_eq!(printed.len() as u64, value, "DBCN write: printed length");
            let mut expected = vec![0u8; printed.len()];
            mem.read_slice(&mut expected, GuestAddress(args[1]))
                .expect("a successful DBCN write's buffer is in RAM");
            assert_eq!(printed, expected, "DBCN write printed other bytes");
        }
        if ext == sbi::EXT_DBCN && fid == sbi::DBCN_READ && err == 0 {
            assert!(value <= args[0], "DBCN read returned more than asked");
        }
    }
}

/// Seeds: a DBCN write of a string in RAM, a DBCN read with input waiting, a write_byte, legacy
/// putchar and getchar, and an unknown extension.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut b = Builder::default();
    b.short_bytes(b"hello from the guest\n");
    let call = |b: &mut Builder, sel: u8, fid: u8, a0: u64, a1: u64, input: &[u8]| {
        b.u8(sel).u8(fid).u8(1).u64(a0).u64(a1);
        for _ in 0..4 {
            b.u64(0);
        }
        b.short_bytes(input);
    };
    call(&mut b, 2, 0, 21, 0, b"");
    call(&mut b, 2, 1, 8, 0x100, b"typed");
    call(&mut b, 2, 2, u64::from(b'!'), 0, b"");
    call(&mut b, 0, 0, u64::from(b'x'), 0, b"");
    call(&mut b, 1, 0, 0, 0, b"k");
    call(&mut b, 3, 0, 0, 0, b"");
    vec![b.0]
}
