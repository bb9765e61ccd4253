//! Positional vectored I/O straight between a file and guest memory (`preadv`/`pwritev` on iovecs that
//! point into the guest RAM mapping): one system call per request and no copy through a buffer of
//! rvvmm's, as QEMU's and cloud-hypervisor's block devices do.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Most iovecs one system call takes (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Host ranges of guest memory, built from ranges checked to lie inside guest RAM.
pub struct GuestIovecs {
    iovs: Vec<libc::iovec>,
    len: u64,
}

// SAFETY: the iovecs point into the guest RAM mapping, which is shared by design; they are only handed to
// the kernel.
unsafe impl Send for GuestIovecs {}

impl GuestIovecs {
    /// No ranges yet.
    pub fn new() -> GuestIovecs {
        GuestIovecs {
            iovs: Vec::new(),
            len: 0,
        }
    }

    /// Adds `len` bytes of guest memory at `addr`; `None` (and nothing added) when the range is not one
    /// piece of guest RAM.
    pub fn push(&mut self, mem: &GuestMemoryMmap, addr: GuestAddress, len: usize) -> Option<()> {
        if len == 0 {
            return Some(());
        }
        let slice = mem.get_slice(addr, len).ok()?;
        let ptr = slice.ptr_guard_mut().as_ptr();
        self.iovs.push(libc::iovec {
            iov_base: ptr as *mut libc::c_void,
            iov_len: len,
        });
        self.len += len as u64;
        Some(())
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole length from `file` at `offset` into the ranges (a short file is an error).
    pub fn read_from(&mut self, file: &File, offset: u64) -> io::Result<()> {
        self.transfer(file, offset, false)
    }

    /// Writes the ranges' bytes to `file` at `offset`.
    pub fn write_to(&mut self, file: &File, offset: u64) -> io::Result<()> {
        self.transfer(file, offset, true)
    }

    fn transfer(&mut self, file: &File, mut offset: u64, write: bool) -> io::Result<()> {
        let mut start = 0;
        while start < self.iovs.len() {
            let iovs = &self.iovs[start..];
            let cnt = iovs.len().min(IOV_MAX) as libc::c_int;
            let off = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: every iovec is a range of the guest RAM mapping that `push` found mapped, and the
            // mapping outlives the call (the device holds the guest memory); the kernel checks the
            // descriptor.
            let n = unsafe {
                if write {
                    libc::pwritev(file.as_raw_fd(), iovs.as_ptr(), cnt, off)
                } else {
                    libc::preadv(file.as_raw_fd(), iovs.as_ptr(), cnt, off)
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::from(if write {
                    io::ErrorKind::WriteZero
                } else {
                    io::ErrorKind::UnexpectedEof
                }));
            }
            offset += n as u64;
            // Step over what was done; a partly done iovec keeps its rest.
            let mut n = n as usize;
            while n > 0 {
                let v = &mut self.iovs[start];
                if n >= v.iov_len {
                    n -= v.iov_len;
                    start += 1;
                } else {
                    // SAFETY: n < iov_len, so the new base stays inside the same range.
                    v.iov_base = unsafe { (v.iov_base as *mut u8).add(n) } as *mut libc::c_void;
                    v.iov_len -= n;
                    n = 0;
                }
            }
        }
        Ok(())
    }
}

impl Default for GuestIovecs {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use vm_memory::Bytes;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0x1000), 0x10000)]).unwrap()
    }

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile_in_tmp();
        f.write_all(bytes).unwrap();
        f
    }

    fn tempfile_in_tmp() -> File {
        let path = std::env::temp_dir().join(format!(
            "rvvmm-iov-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn scattered_ranges_read_and_write_in_order() {
        let m = mem();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let f = file(&data);
        let mut v = GuestIovecs::new();
        // Three pieces out of order in guest memory, one empty.
        v.push(&m, GuestAddress(0x8000), 3000).unwrap();
        v.push(&m, GuestAddress(0x2000), 0).unwrap();
        v.push(&m, GuestAddress(0x2000), 4000).unwrap();
        v.push(&m, GuestAddress(0x5000), 2000).unwrap();
        assert_eq!(v.len(), 9000);
        v.read_from(&f, 500).unwrap();
        let mut got = vec![0u8; 3000];
        m.read_slice(&mut got, GuestAddress(0x8000)).unwrap();
        assert_eq!(got, data[500..3500]);
        let mut got = vec![0u8; 4000];
        m.read_slice(&mut got, GuestAddress(0x2000)).unwrap();
        assert_eq!(got, data[3500..7500]);
        let mut got = vec![0u8; 2000];
        m.read_slice(&mut got, GuestAddress(0x5000)).unwrap();
        assert_eq!(got, data[7500..9500]);

        // And back out, to another offset.
        let mut w = GuestIovecs::new();
        w.push(&m, GuestAddress(0x2000), 4000).unwrap();
        w.push(&m, GuestAddress(0x5000), 2000).unwrap();
        w.write_to(&f, 20_000).unwrap();
        let mut back = vec![0u8; 6000];
        f.read_exact_at(&mut back, 20_000).unwrap();
        assert_eq!(back, data[3500..9500]);
    }

    #[test]
    fn ranges_outside_guest_ram_are_refused_and_short_files_are_errors() {
        let m = mem();
        let mut v = GuestIovecs::new();
        assert!(v.push(&m, GuestAddress(0x0), 16).is_none());
        assert!(v.push(&m, GuestAddress(0x10ff0), 0x20).is_none());
        assert!(v.is_empty());
        let f = file(&[1u8; 100]);
        v.push(&m, GuestAddress(0x1000), 200).unwrap();
        let e = v.read_from(&f, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // A partial read landed before the error.
        let mut got = [0u8; 100];
        m.read_slice(&mut got, GuestAddress(0x1000)).unwrap();
        assert_eq!(got, [1u8; 100]);
    }

    #[test]
    fn more_ranges_than_one_system_call_takes() {
        let m = mem();
        let data: Vec<u8> = (0..(IOV_MAX as u32 + 300) * 8)
            .map(|i| (i % 253) as u8)
            .collect();
        let f = file(&data);
        let mut v = GuestIovecs::new();
        for i in 0..IOV_MAX + 300 {
            v.push(&m, GuestAddress(0x1000 + i as u64 * 8), 8).unwrap();
        }
        v.read_from(&f, 0).unwrap();
        let mut got = vec![0u8; data.len()];
        m.read_slice(&mut got, GuestAddress(0x1000)).unwrap();
        assert_eq!(got, data);
    }
}
