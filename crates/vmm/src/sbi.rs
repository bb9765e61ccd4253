//! SBI calls KVM forwards to userspace: the legacy console (putchar/getchar, on hosts whose KVM has
//! SBI v0.1), the debug console extension DBCN, and everything KVM does not implement, which is answered
//! `SBI_ERR_NOT_SUPPORTED`. Arch-neutral: guest memory is vm-memory's, so it is unit-tested on any host.

use std::io::Write;
use std::sync::Arc;

use devices::console::{ConsoleInput, ConsoleOutput};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Legacy SBI v0.1 console putchar.
pub const EXT_LEGACY_PUTCHAR: u64 = 0x01;
/// Legacy SBI v0.1 console getchar.
pub const EXT_LEGACY_GETCHAR: u64 = 0x02;
/// The debug console extension, "DBCN".
pub const EXT_DBCN: u64 = 0x4442_434E;
/// DBCN function: write a buffer.
pub const DBCN_WRITE: u64 = 0;
/// DBCN function: read into a buffer.
pub const DBCN_READ: u64 = 1;
/// DBCN function: write one byte.
pub const DBCN_WRITE_BYTE: u64 = 2;

/// SBI error codes (returned in a0).
pub const SBI_SUCCESS: i64 = 0;
/// Generic failure.
pub const SBI_ERR_FAILED: i64 = -1;
/// The extension or function is not implemented.
pub const SBI_ERR_NOT_SUPPORTED: i64 = -2;
/// A parameter (here: a guest buffer) is invalid.
pub const SBI_ERR_INVALID_PARAM: i64 = -3;

/// Largest buffer one DBCN call moves; the guest loops for the rest.
pub const DBCN_MAX_CHUNK: u64 = 64 * 1024;

/// Where SBI console output goes.
pub type ConsoleWriter = Box<dyn Fn(&[u8]) -> std::io::Result<()> + Send + Sync>;

/// The guest buffer of a DBCN write/read (a0 = length, a1/a2 = address low/high), capped at
/// [`DBCN_MAX_CHUNK`], if it lies wholly in guest RAM. On RV64 the address is a1 alone: a non-zero high
/// word is beyond any physical address.
fn dbcn_buffer(mem: &GuestMemoryMmap, args: [u64; 6]) -> Option<(GuestAddress, usize)> {
    let len = args[0].min(DBCN_MAX_CHUNK) as usize;
    let addr = GuestAddress(args[1]);
    (args[2] == 0 && mem.check_range(addr, len)).then_some((addr, len))
}

/// Handles console SBI calls for all vcpus.
pub struct SbiConsole {
    out: ConsoleWriter,
    input: Arc<ConsoleInput>,
}

fn ret(err: i64, value: u64) -> [u64; 2] {
    [err as u64, value]
}

impl SbiConsole {
    /// A console writing with `out` and reading from `input`.
    pub fn new(out: ConsoleWriter, input: Arc<ConsoleInput>) -> Self {
        SbiConsole { out, input }
    }

    /// A console printing through `out` (rvvmm's stdout, shared with the UART so the order holds).
    pub fn on_output(out: ConsoleOutput, input: Arc<ConsoleInput>) -> Self {
        Self::new(
            Box::new(move |b| {
                let mut o = out.clone();
                o.write_all(b)?;
                o.flush()
            }),
            input,
        )
    }

    /// Handles one SBI call; returns (a0, a1) for the guest.
    pub fn handle(&self, mem: &GuestMemoryMmap, ext: u64, fid: u64, args: [u64; 6]) -> [u64; 2] {
        match (ext, fid) {
            (EXT_LEGACY_PUTCHAR, _) => {
                let _ = (self.out)(&[args[0] as u8]);
                ret(0, 0)
            }
            (EXT_LEGACY_GETCHAR, _) => match self.input.take(1).first() {
                Some(&b) => ret(i64::from(b), 0),
                None => ret(-1, 0),
            },
            (EXT_DBCN, DBCN_WRITE) => {
                let Some((addr, len)) = dbcn_buffer(mem, args) else {
                    return ret(SBI_ERR_INVALID_PARAM, 0);
                };
                let mut buf = vec![0u8; len];
                if mem.read_slice(&mut buf, addr).is_err() {
                    return ret(SBI_ERR_INVALID_PARAM, 0);
                }
                match (self.out)(&buf) {
                    Ok(()) => ret(SBI_SUCCESS, len as u64),
                    Err(_) => ret(SBI_ERR_FAILED, 0),
                }
            }
            (EXT_DBCN, DBCN_READ) => {
                // The whole buffer is checked before any input is consumed.
                let Some((addr, len)) = dbcn_buffer(mem, args) else {
                    return ret(SBI_ERR_INVALID_PARAM, 0);
                };
                let bytes = self.input.take(len);
                match mem.write_slice(&bytes, addr) {
                    Ok(()) => ret(SBI_SUCCESS, bytes.len() as u64),
                    Err(_) => ret(SBI_ERR_FAILED, 0),
                }
            }
            (EXT_DBCN, DBCN_WRITE_BYTE) => match (self.out)(&[args[0] as u8]) {
                Ok(()) => ret(SBI_SUCCESS, 0),
                Err(_) => ret(SBI_ERR_FAILED, 0),
            },
            _ => {
                devices::log_limited!(
                    log::Level::Debug,
                    "SBI call ext {ext:#x} fid {fid} not supported"
                );
                ret(SBI_ERR_NOT_SUPPORTED, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn setup() -> (
        SbiConsole,
        Arc<Mutex<Vec<u8>>>,
        Arc<ConsoleInput>,
        GuestMemoryMmap,
    ) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let o2 = out.clone();
        let input = Arc::new(ConsoleInput::new());
        let c = SbiConsole::new(
            Box::new(move |b| {
                o2.lock().unwrap().extend_from_slice(b);
                Ok(())
            }),
            input.clone(),
        );
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0x8000_0000), 0x10000)]).unwrap();
        (c, out, input, mem)
    }

    #[test]
    fn legacy_console() {
        let (c, out, input, mem) = setup();
        assert_eq!(
            c.handle(&mem, EXT_LEGACY_PUTCHAR, 0, [b'A' as u64, 0, 0, 0, 0, 0]),
            [0, 0]
        );
        assert_eq!(&*out.lock().unwrap(), b"A");
        assert_eq!(c.handle(&mem, EXT_LEGACY_GETCHAR, 0, [0; 6])[0], u64::MAX);
        input.push(b"z");
        assert_eq!(
            c.handle(&mem, EXT_LEGACY_GETCHAR, 0, [0; 6])[0],
            b'z' as u64
        );
    }

    #[test]
    fn dbcn_write_read_and_bad_buffers() {
        let (c, out, input, mem) = setup();
        mem.write_slice(b"hello", GuestAddress(0x8000_0100))
            .unwrap();
        assert_eq!(
            c.handle(&mem, EXT_DBCN, DBCN_WRITE, [5, 0x8000_0100, 0, 0, 0, 0]),
            [0, 5]
        );
        assert_eq!(
            c.handle(
                &mem,
                EXT_DBCN,
                DBCN_WRITE_BYTE,
                [b'!' as u64, 0, 0, 0, 0, 0]
            ),
            [0, 0]
        );
        assert_eq!(&*out.lock().unwrap(), b"hello!");
        // Outside guest RAM, straddling its end, and with a high half: invalid, nothing printed.
        let bad = SBI_ERR_INVALID_PARAM as u64;
        assert_eq!(
            c.handle(&mem, EXT_DBCN, DBCN_WRITE, [4, 0x1000, 0, 0, 0, 0])[0],
            bad
        );
        assert_eq!(
            c.handle(&mem, EXT_DBCN, DBCN_WRITE, [8, 0x8000_fffc, 0, 0, 0, 0])[0],
            bad
        );
        assert_eq!(
            c.handle(&mem, EXT_DBCN, DBCN_WRITE, [1, 0x8000_0100, 1, 0, 0, 0])[0],
            bad
        );
        assert_eq!(
            c.handle(
                &mem,
                EXT_DBCN,
                DBCN_WRITE,
                [u64::MAX, 0x8000_8000, 0, 0, 0, 0]
            )[0],
            bad
        );
        assert_eq!(out.lock().unwrap().len(), 6);
        // Read: the input arrives in guest memory.
        input.push(b"ok");
        assert_eq!(
            c.handle(&mem, EXT_DBCN, DBCN_READ, [16, 0x8000_0200, 0, 0, 0, 0]),
            [0, 2]
        );
        let mut b = [0u8; 2];
        mem.read_slice(&mut b, GuestAddress(0x8000_0200)).unwrap();
        assert_eq!(&b, b"ok");
        input.push(b"kept");
        assert_eq!(
            c.handle(&mem, EXT_DBCN, DBCN_READ, [4, 0x10, 0, 0, 0, 0])[0],
            bad
        );
        assert_eq!(input.len(), 4, "input is not consumed by a failed read");
    }

    #[test]
    fn unknown_calls_are_not_supported() {
        let (c, _, _, mem) = setup();
        let ns = SBI_ERR_NOT_SUPPORTED as u64;
        assert_eq!(c.handle(&mem, 0x0A00_0000, 0, [0; 6])[0], ns);
        assert_eq!(c.handle(&mem, EXT_DBCN, 7, [0; 6])[0], ns);
    }
}
