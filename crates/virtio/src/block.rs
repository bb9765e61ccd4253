//! virtio-blk (virtio spec 1.2, 5.2) backed by a raw disk image: a regular file or a block device node.
//!
//! One request queue, served synchronously with positional vectored I/O between the image and guest
//! memory (`preadv`/`pwritev` on the request's segments, each checked to lie inside guest RAM; a bounce
//! buffer and vm-memory's checked accessors where a segment is not one piece of RAM). Every request is validated as a
//! whole (descriptor layout, guest addresses, lengths, sector range) before the image is touched, so a
//! rejected write never leaves a partial write behind.
//!
//! Request layout accepted (no framing is assumed, as VIRTIO_F_VERSION_1 implies ANY_LAYOUT): the
//! device-readable descriptors come first and carry the 16-byte header (possibly split over several
//! descriptors) followed by the data-out bytes; the device-writable descriptors follow and carry the
//! data-in bytes; the status byte is the last byte of the last descriptor, which must be writable.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use virtio_queue::desc::split::Descriptor;
use virtio_queue::Queue;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};
use vmm_sys_util::fallocate::{fallocate, FallocateMode};

use crate::device::{read_config_bytes, serve_chains, VirtioDevice};
use crate::iov::GuestIovecs;
use crate::rate_limiter::{self, RateLimiter};
use crate::{
    device_type, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};

/// Sector size of the virtio-blk protocol (capacity, request sectors), in bytes.
pub const SECTOR_SIZE: u64 = 512;
/// Size of the single request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Maximum length of the device id string (VIRTIO_BLK_T_GET_ID), in bytes.
pub const ID_LEN: usize = 20;

/// Feature bit: `seg_max` is valid.
const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
/// Feature bit: the device is read-only.
const VIRTIO_BLK_F_RO: u32 = 5;
/// Feature bit: `blk_size` is valid.
const VIRTIO_BLK_F_BLK_SIZE: u32 = 6;
/// Feature bit: the device has a cache and supports VIRTIO_BLK_T_FLUSH.
const VIRTIO_BLK_F_FLUSH: u32 = 9;
/// Feature bit: the device supports VIRTIO_BLK_T_DISCARD.
const VIRTIO_BLK_F_DISCARD: u32 = 13;
/// Feature bit: the device supports VIRTIO_BLK_T_WRITE_ZEROES.
const VIRTIO_BLK_F_WRITE_ZEROES: u32 = 14;

const VIRTIO_BLK_T_IN: u32 = 0;
const VIRTIO_BLK_T_OUT: u32 = 1;
const VIRTIO_BLK_T_FLUSH: u32 = 4;
const VIRTIO_BLK_T_GET_ID: u32 = 8;
const VIRTIO_BLK_T_DISCARD: u32 = 11;
const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

const VIRTIO_BLK_S_OK: u8 = 0;
const VIRTIO_BLK_S_IOERR: u8 = 1;
const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Flag of a discard / write-zeroes segment: the device may deallocate the range.
const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: u32 = 1;

/// Size of the request header (type, reserved, sector).
const HEADER_LEN: u64 = 16;
/// Size of a discard / write-zeroes segment (sector, num_sectors, flags).
const SEGMENT_LEN: u64 = 16;

/// Advertised maximum number of data segments per request (queue size - 2: header and status).
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Hard limit on the number of descriptors of one chain (indirect tables can be longer than the queue);
/// longer chains are refused with IOERR. Generous compared to what is advertised (SEG_MAX + 2).
const MAX_CHAIN_DESCRIPTORS: usize = 1024;
/// Advertised maximum number of sectors of one discard segment (2 GiB).
const MAX_DISCARD_SECTORS: u32 = 1 << 22;
/// Advertised maximum number of segments of one discard request.
const MAX_DISCARD_SEG: u32 = 32;
/// Advertised discard alignment, in sectors (4 KiB: the usual file system block).
const DISCARD_SECTOR_ALIGNMENT: u32 = 8;
/// Advertised maximum number of sectors of one write-zeroes segment (32 MiB). Where the host cannot zero
/// a range the fallback writes zeros, under the device's lock: the guest splits larger ranges into
/// requests of at most [`MAX_WRITE_ZEROES_SEG`] x 32 MiB, so one request holds the I/O thread for a
/// bounded time.
const MAX_WRITE_ZEROES_SECTORS: u32 = 1 << 16;
/// Advertised maximum number of segments of one write-zeroes request.
const MAX_WRITE_ZEROES_SEG: u32 = 2;

/// Size of the bounce buffer between guest memory and the image.
const BOUNCE_LEN: usize = 128 * 1024;

/// Length of the config space served (struct virtio_blk_config up to `unused1`, before the secure-erase
/// fields).
const CONFIG_LEN: usize = 60;

/// Errors opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The image cannot be opened or inspected (missing, permissions, ...).
    #[error("cannot open disk image {}: {source}", path.display())]
    Open {
        /// Path of the image.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path is neither a regular file nor a block device.
    #[error("disk image {} is not a regular file or a block device", path.display())]
    NotAFile {
        /// Path of the image.
        path: PathBuf,
    },
    /// The image is empty.
    #[error("disk image {} is empty", path.display())]
    Empty {
        /// Path of the image.
        path: PathBuf,
    },
    /// The image size is not a whole number of 512-byte sectors.
    #[error(
        "size of disk image {} ({size} bytes) is not a multiple of 512 bytes",
        path.display()
    )]
    BadSize {
        /// Path of the image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// Another process holds a conflicting lock on the image.
    #[error(
        "disk image {} is in use by another process (it holds a lock on it)",
        path.display()
    )]
    Locked {
        /// Path of the image.
        path: PathBuf,
    },
    /// Locking the image failed for another reason.
    #[error("cannot lock disk image {}: {source}", path.display())]
    Lock {
        /// Path of the image.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The id given for the disk is longer than the 20 bytes virtio-blk allows.
    #[error("disk id {id:?} of disk image {} is longer than 20 bytes", path.display())]
    IdTooLong {
        /// Path of the image.
        path: PathBuf,
        /// The id given.
        id: String,
    },
}

/// Request and byte counters of a [`Block`] device.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockStats {
    /// Requests completed (whatever their status).
    pub requests: u64,
    /// Requests completed with a status other than OK, or dropped for a malformed chain.
    pub errors: u64,
    /// Bytes read from the image into guest memory.
    pub bytes_read: u64,
    /// Bytes written from guest memory to the image (write-zeroes included).
    pub bytes_written: u64,
    /// Read requests completed successfully.
    pub read_ops: u64,
    /// Write requests completed successfully.
    pub write_ops: u64,
    /// Flush requests served.
    pub flushes: u64,
}

/// A byte range of guest memory from one descriptor, already checked to lie inside guest RAM.
#[derive(Debug, Clone, Copy)]
struct Segment {
    addr: GuestAddress,
    len: u32,
}

/// Why a request cannot be served.
enum Reject {
    /// No usable status byte: return the chain with used length 0.
    NoStatus(&'static str),
    /// Usable status byte (at this address): complete with this status.
    Status(u8, GuestAddress, &'static str),
}

/// A descriptor chain split into its parts, every range checked against guest memory.
struct Request {
    /// Device-readable bytes: header then data-out.
    readable: Vec<Segment>,
    readable_len: u64,
    /// Device-writable bytes before the status byte: data-in.
    writable: Vec<Segment>,
    writable_len: u64,
    /// The status byte.
    status: GuestAddress,
}

/// Host iovecs for the `len` bytes at `cursor`, if each piece is one range of guest RAM.
fn guest_iovecs(mem: &GuestMemoryMmap, mut cursor: Cursor, len: u64) -> Option<GuestIovecs> {
    let mut iovs = GuestIovecs::new();
    cursor
        .walk(usize::try_from(len).ok()?, |addr, r| {
            iovs.push(mem, addr, r.len()).ok_or(())
        })
        .ok()?;
    Some(iovs)
}

/// A sequential cursor over a list of guest memory segments.
#[derive(Clone)]
struct Cursor<'a> {
    segments: &'a [Segment],
    index: usize,
    offset: u32,
}

impl<'a> Cursor<'a> {
    fn new(segments: &'a [Segment]) -> Self {
        Cursor {
            segments,
            index: 0,
            offset: 0,
        }
    }

    /// Calls `f(address, range)` for consecutive pieces covering `len` bytes, advancing the cursor.
    fn walk(
        &mut self,
        len: usize,
        mut f: impl FnMut(GuestAddress, std::ops::Range<usize>) -> Result<(), ()>,
    ) -> Result<(), ()> {
        let mut done = 0usize;
        while done < len {
            let seg = self.segments.get(self.index).ok_or(())?;
            let avail = seg.len.checked_sub(self.offset).ok_or(())? as usize;
            if avail == 0 {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            let n = avail.min(len - done);
            let addr = seg.addr.checked_add(u64::from(self.offset)).ok_or(())?;
            f(addr, done..done + n)?;
            done += n;
            // n <= avail <= u32::MAX.
            self.offset += n as u32;
        }
        Ok(())
    }

    /// Copies guest memory into `buf`.
    fn read(&mut self, mem: &GuestMemoryMmap, buf: &mut [u8]) -> Result<(), ()> {
        let len = buf.len();
        self.walk(len, |addr, r| {
            mem.read_slice(&mut buf[r], addr).map_err(|_| ())
        })
    }

    /// Copies `buf` into guest memory.
    fn write(&mut self, mem: &GuestMemoryMmap, buf: &[u8]) -> Result<(), ()> {
        self.walk(buf.len(), |addr, r| {
            mem.write_slice(&buf[r], addr).map_err(|_| ())
        })
    }
}

/// Splits a descriptor chain into a [`Request`], checking its layout and every range.
fn parse_chain<I: Iterator<Item = Descriptor>>(
    mem: &GuestMemoryMmap,
    chain: I,
) -> Result<Request, Reject> {
    let mut descs = Vec::new();
    let mut count = 0usize;
    let mut last = None;
    for desc in chain {
        count += 1;
        if count <= MAX_CHAIN_DESCRIPTORS {
            descs.push(desc);
        }
        last = Some(desc);
    }
    let last = last.ok_or(Reject::NoStatus("empty descriptor chain"))?;
    // The iterator stops early (without error) on a loop (its length bound), an index out of the table,
    // an unreadable descriptor or a bad indirect table: the last descriptor then still has NEXT set and
    // is not the real end of the chain.
    if last.has_next() {
        return Err(Reject::NoStatus("descriptor chain broken or too long"));
    }
    if !last.is_write_only() {
        return Err(Reject::NoStatus("last descriptor is not device-writable"));
    }
    if last.len() == 0 {
        return Err(Reject::NoStatus("status descriptor is empty"));
    }
    let status = last
        .addr()
        .checked_add(u64::from(last.len()).saturating_sub(1))
        .filter(|&a| mem.check_range(a, 1, Permissions::Write))
        .ok_or(Reject::NoStatus("status byte outside guest memory"))?;
    let ioerr = |why| Reject::Status(VIRTIO_BLK_S_IOERR, status, why);
    if count > MAX_CHAIN_DESCRIPTORS {
        return Err(ioerr("too many descriptors"));
    }

    let mut request = Request {
        readable: Vec::new(),
        readable_len: 0,
        writable: Vec::new(),
        writable_len: 0,
        status,
    };
    let n = descs.len();
    let mut seen_writable = false;
    for (i, desc) in descs.into_iter().enumerate() {
        // The status byte is not part of the data-in area.
        let len = if i + 1 == n {
            desc.len().saturating_sub(1)
        } else {
            desc.len()
        };
        if desc.is_write_only() {
            seen_writable = true;
            request.writable_len += u64::from(len);
            if len > 0 {
                request.writable.push(Segment {
                    addr: desc.addr(),
                    len,
                });
            }
        } else {
            if seen_writable {
                return Err(ioerr(
                    "device-readable descriptor after a device-writable one",
                ));
            }
            request.readable_len += u64::from(len);
            if len > 0 {
                request.readable.push(Segment {
                    addr: desc.addr(),
                    len,
                });
            }
        }
        let access = if desc.is_write_only() {
            Permissions::Write
        } else {
            Permissions::Read
        };
        if len > 0 && !mem.check_range(desc.addr(), len as usize, access) {
            return Err(ioerr("descriptor outside guest memory"));
        }
    }
    Ok(request)
}

/// Writes `len` zero bytes at `offset`, in bounce-buffer sized pieces.
fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; BOUNCE_LEN.min(usize::try_from(len).unwrap_or(BOUNCE_LEN))];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Whether a fallocate error means the operation is not supported on this image at all.
fn is_unsupported(e: &vmm_sys_util::errno::Error) -> bool {
    matches!(e.errno(), libc::EOPNOTSUPP | libc::ENOSYS | libc::ENODEV)
}

/// The size of an open image in bytes (block devices: by seeking to their end).
fn image_size(mut file: &File, is_block_device: bool) -> io::Result<u64> {
    if is_block_device {
        let size = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(size)
    } else {
        Ok(file.metadata()?.len())
    }
}

/// A virtio-blk device backed by a raw disk image.
///
/// [`VirtioDevice::process_queue`] returns true whenever it added at least one used buffer; it does
/// not apply notification suppression itself (the transport does).
pub struct Block {
    path: PathBuf,
    file: File,
    readonly: bool,
    /// Image size in bytes (a multiple of [`SECTOR_SIZE`]).
    size: u64,
    id: [u8; ID_LEN],
    queue_sizes: [u16; 1],
    acked_features: u64,
    config: [u8; CONFIG_LEN],
    bounce: Vec<u8>,
    /// False once fallocate(PUNCH_HOLE) reported it is unsupported on the image.
    punch_hole: bool,
    /// False once fallocate(ZERO_RANGE) reported it is unsupported on the image.
    zero_range: bool,
    stats: BlockStats,
    /// Bandwidth and operations limits of the guest's requests.
    limiter: Option<RateLimiter>,
}

impl Block {
    /// Opens the raw image at `path` (read-write, or read-only when `readonly`) and locks it (exclusive
    /// lock when read-write, shared when read-only, so two rvvmm cannot write the same image). The
    /// image must be a non-empty regular file or block device whose size is a multiple of 512 bytes.
    /// `id` is what the guest reads with VIRTIO_BLK_T_GET_ID (at most 20 bytes, e.g. shown in
    /// /sys/block/vda/serial); by default the first 20 bytes of the image's file name.
    pub fn new(path: &Path, readonly: bool, id: Option<String>) -> Result<Block, BlockError> {
        let pathbuf = path.to_path_buf();
        let open_err = |source| BlockError::Open {
            path: pathbuf.clone(),
            source,
        };
        // Check the type before opening: opening a FIFO would block.
        let meta = std::fs::metadata(path).map_err(open_err)?;
        let file_type = meta.file_type();
        if !file_type.is_file() && !file_type.is_block_device() {
            return Err(BlockError::NotAFile { path: pathbuf });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!readonly)
            .open(path)
            .map_err(open_err)?;
        // The path may have been replaced in between.
        let file_type = file.metadata().map_err(open_err)?.file_type();
        let is_block_device = file_type.is_block_device();
        if !file_type.is_file() && !is_block_device {
            return Err(BlockError::NotAFile { path: pathbuf });
        }

        let operation = if readonly {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        } | libc::LOCK_NB;
        // SAFETY: flock only takes an fd (owned by `file`, open for the call's duration) and flags;
        // the return value is checked.
        let ret = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if ret != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => return Err(BlockError::Locked { path: pathbuf }),
                // File systems without flock support: locking is a safety net, not a requirement.
                Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                    log::warn!("virtio-blk: cannot lock {}: {e}", path.display())
                }
                _ => {
                    return Err(BlockError::Lock {
                        path: pathbuf,
                        source: e,
                    })
                }
            }
        }

        let size = image_size(&file, is_block_device).map_err(open_err)?;
        if size == 0 {
            return Err(BlockError::Empty { path: pathbuf });
        }
        if size % SECTOR_SIZE != 0 {
            return Err(BlockError::BadSize {
                path: pathbuf,
                size,
            });
        }

        let id_bytes: Vec<u8> = match id {
            Some(id) if id.len() > ID_LEN => {
                return Err(BlockError::IdTooLong { path: pathbuf, id })
            }
            Some(id) => id.into_bytes(),
            None => path
                .file_name()
                .map(|n| n.as_bytes().iter().copied().take(ID_LEN).collect())
                .unwrap_or_default(),
        };
        let mut id = [0u8; ID_LEN];
        id[..id_bytes.len()].copy_from_slice(&id_bytes);

        let mut block = Block {
            path: pathbuf,
            file,
            readonly,
            size,
            id,
            queue_sizes: [QUEUE_SIZE],
            acked_features: 0,
            config: [0; CONFIG_LEN],
            bounce: vec![0; BOUNCE_LEN],
            punch_hole: true,
            zero_range: true,
            stats: BlockStats::default(),
            limiter: None,
        };
        block.config = block.build_config();
        Ok(block)
    }

    /// Limits the guest's requests (bytes read or written, requests) with `limiter`.
    pub fn with_rate_limiter(mut self, limiter: RateLimiter) -> Block {
        self.limiter = Some(limiter);
        self
    }

    /// Path of the image.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the device is read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.size / SECTOR_SIZE
    }

    /// The id string served to GET_ID (up to 20 bytes, zero padded).
    pub fn id(&self) -> &[u8; ID_LEN] {
        &self.id
    }

    /// Request and byte counters so far.
    pub fn stats(&self) -> BlockStats {
        self.stats
    }

    fn build_config(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        fn put32(c: &mut [u8; CONFIG_LEN], off: usize, v: u32) {
            c[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        c[0..8].copy_from_slice(&self.capacity().to_le_bytes());
        // size_max (8): 0, VIRTIO_BLK_F_SIZE_MAX not offered.
        put32(&mut c, 12, SEG_MAX);
        // geometry (16..20): zeros, VIRTIO_BLK_F_GEOMETRY not offered.
        put32(&mut c, 20, SECTOR_SIZE as u32);
        // topology (24..32), writeback (32), num_queues (34): zeros, features not offered.
        if !self.readonly {
            put32(&mut c, 36, MAX_DISCARD_SECTORS);
            put32(&mut c, 40, MAX_DISCARD_SEG);
            put32(&mut c, 44, DISCARD_SECTOR_ALIGNMENT);
            put32(&mut c, 48, MAX_WRITE_ZEROES_SECTORS);
            put32(&mut c, 52, MAX_WRITE_ZEROES_SEG);
            c[56] = 1; // write_zeroes_may_unmap
        }
        c
    }

    /// Whether the driver accepted VIRTIO_BLK_F_FLUSH (else writes are written through).
    fn writeback(&self) -> bool {
        self.acked_features & (1 << VIRTIO_BLK_F_FLUSH) != 0
    }

    /// The byte offset of `len` bytes at `sector`, if the range lies inside the image.
    fn byte_range(&self, sector: u64, len: u64) -> Option<u64> {
        let offset = sector.checked_mul(SECTOR_SIZE)?;
        let end = offset.checked_add(len)?;
        (end <= self.size).then_some(offset)
    }

    /// Serves one request chain, whatever it holds; returns its used length (status byte included).
    fn serve<I: Iterator<Item = Descriptor>>(&mut self, mem: &GuestMemoryMmap, chain: I) -> u32 {
        self.stats.requests += 1;
        match parse_chain(mem, chain) {
            Ok(req) => {
                let (status, written) = self.execute(mem, &req);
                if status != VIRTIO_BLK_S_OK {
                    self.stats.errors += 1;
                }
                match mem.write_obj(status, req.status) {
                    Ok(()) => written.saturating_add(1),
                    Err(e) => {
                        log::warn!("virtio-blk: cannot write status: {e}");
                        0
                    }
                }
            }
            Err(Reject::Status(status, addr, why)) => {
                log::debug!("virtio-blk: bad request: {why}");
                self.stats.errors += 1;
                match mem.write_obj(status, addr) {
                    Ok(()) => 1,
                    Err(e) => {
                        log::warn!("virtio-blk: cannot write status: {e}");
                        0
                    }
                }
            }
            Err(Reject::NoStatus(why)) => {
                log::debug!("virtio-blk: malformed descriptor chain: {why}");
                self.stats.errors += 1;
                0
            }
        }
    }

    /// Serves a parsed request: returns its status and the number of bytes written to guest memory
    /// besides the status byte.
    fn execute(&mut self, mem: &GuestMemoryMmap, req: &Request) -> (u8, u32) {
        let mut cursor = Cursor::new(&req.readable);
        let mut header = [0u8; HEADER_LEN as usize];
        if req.readable_len < HEADER_LEN || cursor.read(mem, &mut header).is_err() {
            log::debug!("virtio-blk: request header shorter than 16 bytes");
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&header[0..4]);
        let request_type = u32::from_le_bytes(word);
        let mut sector = [0u8; 8];
        sector.copy_from_slice(&header[8..16]);
        let sector = u64::from_le_bytes(sector);
        let out_len = req.readable_len - HEADER_LEN;

        let result = match request_type {
            VIRTIO_BLK_T_IN => self.read(mem, req, out_len, sector),
            VIRTIO_BLK_T_OUT => self.write(mem, req, &mut cursor, out_len, sector),
            VIRTIO_BLK_T_FLUSH => {
                self.stats.flushes += 1;
                match self.file.sync_data() {
                    Ok(()) => Ok(0),
                    Err(e) => {
                        log::error!("virtio-blk: flush of {}: {e}", self.path.display());
                        Err(VIRTIO_BLK_S_IOERR)
                    }
                }
            }
            VIRTIO_BLK_T_GET_ID => self.get_id(mem, req),
            VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES if !self.readonly => {
                self.discard_write_zeroes(mem, req, &mut cursor, out_len, request_type)
            }
            other => {
                log::debug!("virtio-blk: unsupported request type {other}");
                Err(VIRTIO_BLK_S_UNSUPP)
            }
        };
        match result {
            Ok(written) => (VIRTIO_BLK_S_OK, written),
            Err(status) => (status, 0),
        }
    }

    fn read(
        &mut self,
        mem: &GuestMemoryMmap,
        req: &Request,
        out_len: u64,
        sector: u64,
    ) -> Result<u32, u8> {
        let len = req.writable_len;
        if out_len != 0 || !len.is_multiple_of(SECTOR_SIZE) {
            log::debug!("virtio-blk: bad read request layout ({out_len} bytes out, {len} in)");
            return Err(VIRTIO_BLK_S_IOERR);
        }
        let mut offset = self.byte_range(sector, len).ok_or_else(|| {
            log::debug!("virtio-blk: read of {len} bytes at sector {sector} past the end");
            VIRTIO_BLK_S_IOERR
        })?;
        // The chain is at most 4 GiB (virtio-queue stops iterating beyond).
        let written = u32::try_from(len).map_err(|_| VIRTIO_BLK_S_IOERR)?;
        // Straight into guest memory when every segment is one piece of guest RAM (always, with one
        // RAM region); else through the bounce buffer.
        if let Some(mut iovs) = guest_iovecs(mem, Cursor::new(&req.writable), len) {
            if let Err(e) = iovs.read_from(&self.file, offset) {
                log::error!(
                    "virtio-blk: read of {} at {offset}: {e}",
                    self.path.display()
                );
                return Err(VIRTIO_BLK_S_IOERR);
            }
            self.stats.bytes_read += len;
            self.stats.read_ops += 1;
            return Ok(written);
        }
        let mut cursor = Cursor::new(&req.writable);
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(BOUNCE_LEN as u64) as usize;
            let buf = &mut self.bounce[..n];
            if let Err(e) = self.file.read_exact_at(buf, offset) {
                log::error!(
                    "virtio-blk: read of {} at {offset}: {e}",
                    self.path.display()
                );
                return Err(VIRTIO_BLK_S_IOERR);
            }
            cursor.write(mem, buf).map_err(|_| VIRTIO_BLK_S_IOERR)?;
            offset += n as u64;
            done += n as u64;
            self.stats.bytes_read += n as u64;
        }
        self.stats.read_ops += 1;
        Ok(written)
    }

    fn write(
        &mut self,
        mem: &GuestMemoryMmap,
        req: &Request,
        cursor: &mut Cursor,
        len: u64,
        sector: u64,
    ) -> Result<u32, u8> {
        if self.readonly {
            log::debug!("virtio-blk: write to read-only {}", self.path.display());
            return Err(VIRTIO_BLK_S_IOERR);
        }
        if req.writable_len != 0 || !len.is_multiple_of(SECTOR_SIZE) {
            log::debug!(
                "virtio-blk: bad write request layout ({len} bytes out, {} in)",
                req.writable_len
            );
            return Err(VIRTIO_BLK_S_IOERR);
        }
        let mut offset = self.byte_range(sector, len).ok_or_else(|| {
            log::debug!("virtio-blk: write of {len} bytes at sector {sector} past the end");
            VIRTIO_BLK_S_IOERR
        })?;
        if let Some(mut iovs) = guest_iovecs(mem, cursor.clone(), len) {
            if let Err(e) = iovs.write_to(&self.file, offset) {
                log::error!(
                    "virtio-blk: write of {} at {offset}: {e}",
                    self.path.display()
                );
                return Err(VIRTIO_BLK_S_IOERR);
            }
            self.stats.bytes_written += len;
            self.write_through()?;
            self.stats.write_ops += 1;
            return Ok(0);
        }
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(BOUNCE_LEN as u64) as usize;
            let buf = &mut self.bounce[..n];
            cursor.read(mem, buf).map_err(|_| VIRTIO_BLK_S_IOERR)?;
            if let Err(e) = self.file.write_all_at(buf, offset) {
                log::error!(
                    "virtio-blk: write of {} at {offset}: {e}",
                    self.path.display()
                );
                return Err(VIRTIO_BLK_S_IOERR);
            }
            offset += n as u64;
            done += n as u64;
            self.stats.bytes_written += n as u64;
        }
        self.write_through()?;
        self.stats.write_ops += 1;
        Ok(0)
    }

    /// Without a negotiated flush, the device has no volatile cache: make writes durable now.
    fn write_through(&self) -> Result<(), u8> {
        if self.writeback() {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| {
            log::error!("virtio-blk: sync of {}: {e}", self.path.display());
            VIRTIO_BLK_S_IOERR
        })
    }

    fn get_id(&mut self, mem: &GuestMemoryMmap, req: &Request) -> Result<u32, u8> {
        if req.writable_len == 0 {
            log::debug!("virtio-blk: GET_ID without a device-writable buffer");
            return Err(VIRTIO_BLK_S_IOERR);
        }
        let n = req.writable_len.min(ID_LEN as u64) as usize;
        Cursor::new(&req.writable)
            .write(mem, &self.id[..n])
            .map_err(|_| VIRTIO_BLK_S_IOERR)?;
        Ok(n as u32)
    }

    fn discard_write_zeroes(
        &mut self,
        mem: &GuestMemoryMmap,
        req: &Request,
        cursor: &mut Cursor,
        len: u64,
        request_type: u32,
    ) -> Result<u32, u8> {
        let discard = request_type == VIRTIO_BLK_T_DISCARD;
        let (max_seg, max_sectors) = if discard {
            (MAX_DISCARD_SEG, MAX_DISCARD_SECTORS)
        } else {
            (MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SECTORS)
        };
        if req.writable_len != 0
            || len == 0
            || !len.is_multiple_of(SEGMENT_LEN)
            || len / SEGMENT_LEN > u64::from(max_seg)
        {
            log::debug!("virtio-blk: bad discard/write-zeroes layout ({len} bytes of segments)");
            return Err(VIRTIO_BLK_S_IOERR);
        }
        // Validate every segment before acting on any.
        let mut ranges = Vec::new();
        for _ in 0..len / SEGMENT_LEN {
            let mut seg = [0u8; SEGMENT_LEN as usize];
            cursor.read(mem, &mut seg).map_err(|_| VIRTIO_BLK_S_IOERR)?;
            let mut b8 = [0u8; 8];
            b8.copy_from_slice(&seg[0..8]);
            let sector = u64::from_le_bytes(b8);
            let mut b4 = [0u8; 4];
            b4.copy_from_slice(&seg[8..12]);
            let num_sectors = u32::from_le_bytes(b4);
            b4.copy_from_slice(&seg[12..16]);
            let flags = u32::from_le_bytes(b4);
            // Spec 5.2.6.2: unknown flags, and UNMAP on a discard, are UNSUPP.
            if flags & !VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0
                || (discard && flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0)
            {
                log::debug!("virtio-blk: discard/write-zeroes flags {flags:#x} unsupported");
                return Err(VIRTIO_BLK_S_UNSUPP);
            }
            let bytes = u64::from(num_sectors) * SECTOR_SIZE;
            let offset = self
                .byte_range(sector, bytes)
                .filter(|_| num_sectors <= max_sectors)
                .ok_or_else(|| {
                    log::debug!("virtio-blk: discard/write-zeroes {num_sectors} at {sector} bad");
                    VIRTIO_BLK_S_IOERR
                })?;
            let unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0;
            ranges.push((offset, bytes, unmap));
        }
        for (offset, bytes, unmap) in ranges {
            if bytes == 0 {
                continue;
            }
            let result = if discard {
                self.discard(offset, bytes)
            } else {
                self.write_zeroes(offset, bytes, unmap)
            };
            result.map_err(|e| {
                log::error!(
                    "virtio-blk: discard/write-zeroes of {} at {offset}: {e}",
                    self.path.display()
                );
                VIRTIO_BLK_S_IOERR
            })?;
        }
        self.write_through()?;
        Ok(0)
    }

    /// Deallocates a range. A hint: where hole punching is unsupported nothing happens.
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if !self.punch_hole {
            return Ok(());
        }
        match fallocate(&self.file, FallocateMode::PunchHole, true, offset, len) {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == libc::EINVAL => Ok(()),
            Err(e) if is_unsupported(&e) => {
                log::info!(
                    "virtio-blk: {} does not support discard: {e}",
                    self.path.display()
                );
                self.punch_hole = false;
                Ok(())
            }
            Err(e) => Err(io::Error::from_raw_os_error(e.errno())),
        }
    }

    /// Zeroes a range: hole punching when unmapping is allowed, else ZERO_RANGE, else (or when these
    /// fail) writing zeros.
    fn write_zeroes(&mut self, offset: u64, len: u64, unmap: bool) -> io::Result<()> {
        let mut methods = Vec::with_capacity(2);
        if unmap && self.punch_hole {
            methods.push(FallocateMode::PunchHole);
        }
        if self.zero_range {
            methods.push(FallocateMode::ZeroRange);
        }
        for mode in methods {
            let punch = matches!(mode, FallocateMode::PunchHole);
            match fallocate(&self.file, mode, true, offset, len) {
                Ok(()) => {
                    self.stats.bytes_written += len;
                    return Ok(());
                }
                Err(e) => {
                    log::debug!("virtio-blk: fallocate on {}: {e}", self.path.display());
                    if is_unsupported(&e) {
                        if punch {
                            self.punch_hole = false;
                        } else {
                            self.zero_range = false;
                        }
                    }
                }
            }
        }
        write_zeros(&self.file, offset, len)?;
        self.stats.bytes_written += len;
        Ok(())
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        let mut features = (1u64 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_BLK_SIZE)
            | (1 << VIRTIO_BLK_F_FLUSH);
        if self.readonly {
            features |= 1 << VIRTIO_BLK_F_RO;
        } else {
            features |= (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
        }
        features
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.features();
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    /// Serves every available request; returns true when at least one used buffer was added (no
    /// notification suppression here: the transport applies it).
    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        if index != 0 {
            log::warn!("virtio-blk: notification for nonexistent queue {index}");
            return false;
        }
        let mut limiter = self.limiter.take();
        let added = serve_chains("virtio-blk", queue, mem, limiter.as_mut(), |chain| {
            let moved = |s: BlockStats| s.bytes_read + s.bytes_written;
            let before = moved(self.stats);
            let used = self.serve(mem, chain);
            (used, moved(self.stats) - before)
        });
        self.limiter = limiter;
        added
    }

    fn timer_fds(&self) -> Vec<RawFd> {
        rate_limiter::timer_fds([&self.limiter])
    }

    fn timer_fired(&mut self, k: usize) {
        rate_limiter::timer_fired([&mut self.limiter], k);
    }

    fn throttled(&self, _index: usize) -> bool {
        rate_limiter::blocked(&self.limiter)
    }

    fn reset(&mut self) {
        self.acked_features = 0;
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let synced = if self.readonly {
            Ok(())
        } else {
            self.file
                .sync_all()
                .map_err(|e| format!("cannot sync disk {}: {e}", self.path.display()))
        };
        let s = self.stats;
        log::info!(
            "virtio-blk {}: {} requests ({} failed), {} bytes read, {} bytes written, {} flushes",
            self.path.display(),
            s.requests,
            s.errors,
            s.bytes_read,
            s.bytes_written,
            s.flushes
        );
        synced
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats;
        vec![
            ("read_bytes", s.bytes_read),
            ("read_ops", s.read_ops),
            ("write_bytes", s.bytes_written),
            ("write_ops", s.write_ops),
            ("errors", s.errors),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vmm_sys_util::tempdir::TempDir;

    use crate::test_utils::{chain, mem, F_INDIRECT, F_NEXT, F_WRITE, MEM_SIZE};
    const HDR: u64 = 0x1000;
    const STATUS: u64 = 0x2000;
    const DATA: u64 = 0x10_0000;
    const DISK_SECTORS: u64 = 64;

    /// A temp dir with a patterned image `disk.img` of `size` bytes.
    fn image(size: usize) -> (TempDir, PathBuf) {
        let dir = TempDir::new().unwrap();
        let path = dir.as_path().join("disk.img");
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        (dir, path)
    }

    fn disk() -> (TempDir, PathBuf, Block) {
        let (dir, path) = image(DISK_SECTORS as usize * 512);
        let mut block = Block::new(&path, false, None).unwrap();
        block.set_acked_features(block.features());
        (dir, path, block)
    }

    fn header(mem: &GuestMemoryMmap, request_type: u32, sector: u64) {
        mem.write_obj(request_type, GuestAddress(HDR)).unwrap();
        mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
        mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    }

    /// Runs raw descriptors (chains starting at index 0) through the device; returns the used lengths.
    fn run_raw(block: &mut Block, mem: &GuestMemoryMmap, descs: &[RawDescriptor]) -> Vec<u32> {
        let vq = MockSplitQueue::new(mem, 16);
        vq.add_desc_chains(descs, 0).unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(block.process_queue(0, &mut queue, mem));
        let used = vq.used().idx().load();
        (0..used as usize)
            .map(|i| vq.used().ring().ref_at(i).unwrap().load().len())
            .collect()
    }

    /// Runs one chain; returns (used len, status byte).
    fn run(block: &mut Block, mem: &GuestMemoryMmap, descs: &[(u64, u32, bool)]) -> (u32, u8) {
        let used = run_raw(block, mem, &chain(descs));
        assert_eq!(used.len(), 1);
        (used[0], mem.read_obj(GuestAddress(STATUS)).unwrap())
    }

    fn file_bytes(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn write_then_read_multi_segment() {
        let (_dir, path, mut block) = disk();
        let mem = mem();
        let data: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 256) as u8).collect();
        mem.write_slice(&data[..512], GuestAddress(DATA)).unwrap();
        mem.write_slice(&data[512..1536], GuestAddress(DATA + 0x10000))
            .unwrap();
        mem.write_slice(&data[1536..], GuestAddress(DATA + 0x20000))
            .unwrap();
        header(&mem, VIRTIO_BLK_T_OUT, 2);
        let out = [
            (HDR, 16, false),
            (DATA, 512, false),
            (DATA + 0x10000, 1024, false),
            (DATA + 0x20000, 512, false),
            (STATUS, 1, true),
        ];
        assert_eq!(run(&mut block, &mem, &out), (1, VIRTIO_BLK_S_OK));
        assert_eq!(&file_bytes(&path)[1024..3072], &data[..]);

        // Read back with a different split into a different place.
        header(&mem, VIRTIO_BLK_T_IN, 2);
        let read = [
            (HDR, 16, false),
            (DATA + 0x30000, 1024, true),
            (DATA + 0x40000, 512, true),
            (DATA + 0x50000, 512, true),
            (STATUS, 1, true),
        ];
        assert_eq!(run(&mut block, &mem, &read), (2049, VIRTIO_BLK_S_OK));
        let mut back = vec![0u8; 2048];
        mem.read_slice(&mut back[..1024], GuestAddress(DATA + 0x30000))
            .unwrap();
        mem.read_slice(&mut back[1024..1536], GuestAddress(DATA + 0x40000))
            .unwrap();
        mem.read_slice(&mut back[1536..], GuestAddress(DATA + 0x50000))
            .unwrap();
        assert_eq!(back, data);
        let stats = block.stats();
        assert_eq!((stats.requests, stats.errors), (2, 0));
        assert_eq!((stats.bytes_written, stats.bytes_read), (2048, 2048));
    }

    #[test]
    fn a_segment_across_two_ram_regions_goes_through_the_bounce_buffer() {
        // Two adjacent regions: a segment crossing the boundary is not one host range.
        let mem = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), MEM_SIZE / 2),
            (GuestAddress(MEM_SIZE as u64 / 2), MEM_SIZE / 2),
        ])
        .unwrap();
        let (_d, path, mut block) = disk();
        let across = MEM_SIZE as u64 / 2 - 512;
        let data: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 256) as u8).collect();
        mem.write_slice(&data, GuestAddress(across)).unwrap();
        header(&mem, VIRTIO_BLK_T_OUT, 4);
        let out = [(HDR, 16, false), (across, 1024, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &out), (1, VIRTIO_BLK_S_OK));
        assert_eq!(&file_bytes(&path)[2048..3072], &data[..]);
        mem.write_slice(&[0u8; 1024], GuestAddress(across)).unwrap();
        header(&mem, VIRTIO_BLK_T_IN, 4);
        let read = [(HDR, 16, false), (across, 1024, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &read), (1025, VIRTIO_BLK_S_OK));
        let mut back = vec![0u8; 1024];
        mem.read_slice(&mut back, GuestAddress(across)).unwrap();
        assert_eq!(back, data);
        assert_eq!(block.stats().bytes_read, 1024);
        assert_eq!(block.stats().bytes_written, 1024);
    }

    #[test]
    fn read_larger_than_bounce_buffer_and_any_layout() {
        let len = 2 * BOUNCE_LEN as u32 + 1024;
        let (_dir, path) = image(len as usize);
        let mut block = Block::new(&path, false, None).unwrap();
        let mem = mem();
        // Header split over two descriptors, data-in and status sharing the last descriptor.
        header(&mem, VIRTIO_BLK_T_IN, 0);
        let descs = [(HDR, 8, false), (HDR + 8, 8, false), (DATA, len + 1, true)];
        let used = run_raw(&mut block, &mem, &chain(&descs));
        assert_eq!(used, vec![len + 1]);
        let status: u8 = mem.read_obj(GuestAddress(DATA + u64::from(len))).unwrap();
        assert_eq!(status, VIRTIO_BLK_S_OK);
        let mut back = vec![0u8; len as usize];
        mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert_eq!(back, file_bytes(&path));
    }

    #[test]
    fn indirect_descriptors() {
        let (_dir, path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_IN, 1);
        let table = 0x8000u64;
        let inner = chain(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]);
        for (i, d) in inner.iter().enumerate() {
            mem.write_obj(*d, GuestAddress(table + 16 * i as u64))
                .unwrap();
        }
        let head = RawDescriptor::from(SplitDescriptor::new(table, 48, F_INDIRECT, 0));
        assert_eq!(run_raw(&mut block, &mem, &[head]), vec![513]);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
            VIRTIO_BLK_S_OK
        );
        let mut back = vec![0u8; 512];
        mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert_eq!(back, file_bytes(&path)[512..1024]);
    }

    #[test]
    fn several_chains_in_one_call() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        let mut descs = chain(&[(HDR, 16, false), (STATUS, 1, true)]);
        let mut second = chain(&[(HDR, 16, false), (STATUS + 1, 1, true)]);
        // Relink the second chain at indices 2, 3.
        second[0] = RawDescriptor::from(SplitDescriptor::new(HDR, 16, F_NEXT, 3));
        descs.append(&mut second);
        assert_eq!(run_raw(&mut block, &mem, &descs), vec![1, 1]);
        assert_eq!(block.stats().flushes, 2);
    }

    /// A bandwidth limit of 4 KiB per second serves two 2.5 KiB reads at once (the second puts the bucket
    /// in debt) and holds the rest back (the device says the queue is throttled).
    #[test]
    fn rate_limited_reads_wait_for_tokens() {
        use crate::rate_limiter::{BucketConfig, RateLimiterConfig};
        let (_dir, _path, block) = disk();
        let config = RateLimiterConfig {
            bandwidth: Some(BucketConfig {
                size: 4096,
                one_time_burst: 0,
                refill_time_ms: 1000,
            }),
            ops: None,
        };
        let mut block = block.with_rate_limiter(RateLimiter::new(&config).unwrap());
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_IN, 0);
        let vq = MockSplitQueue::new(&mem, 16);
        let read = [(HDR, 16, false), (DATA, 2560, true), (STATUS, 1, true)];
        let mut descs = Vec::new();
        for i in 0..4u16 {
            descs.extend(crate::test_utils::chain_at(3 * i, &read));
        }
        vq.add_desc_chains(&descs, 0).unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(!block.throttled(0));
        assert_eq!(block.timer_fds().len(), 1);
        assert!(block.process_queue(0, &mut queue, &mem));
        assert_eq!(block.stats().read_ops, 2);
        assert!(block.throttled(0));
        assert!(!block.process_queue(0, &mut queue, &mem), "still held back");
        assert_eq!(block.stats().read_ops, 2);
    }

    #[test]
    fn flush() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        let descs = [(HDR, 16, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_OK));
    }

    #[test]
    fn get_id() {
        let (_dir, path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_GET_ID, 0);
        mem.write_slice(&[0xaa; 20], GuestAddress(DATA)).unwrap();
        let descs = [(HDR, 16, false), (DATA, 20, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (21, VIRTIO_BLK_S_OK));
        let mut id = [0u8; 20];
        mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
        assert_eq!(&id[..8], b"disk.img");
        assert_eq!(id[8..], [0; 12]);
        drop(block);

        // Explicit id, and a buffer shorter than 20 bytes.
        let mut block = Block::new(&path, false, Some("serial-0123456789abc".into())).unwrap();
        header(&mem, VIRTIO_BLK_T_GET_ID, 0);
        let descs = [(HDR, 16, false), (DATA, 6, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (7, VIRTIO_BLK_S_OK));
        mem.read_slice(&mut id[..6], GuestAddress(DATA)).unwrap();
        assert_eq!(&id[..6], b"serial");

        // No writable buffer.
        header(&mem, VIRTIO_BLK_T_GET_ID, 0);
        let descs = [(HDR, 16, false), (DATA, 20, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        drop(block);

        let e = Block::new(&path, false, Some("x".repeat(21)))
            .err()
            .unwrap();
        assert!(matches!(e, BlockError::IdTooLong { .. }), "{e}");
        // Long file names are truncated.
        let long = path.with_file_name("a-very-long-disk-image-name.raw");
        std::fs::copy(&path, &long).unwrap();
        let block = Block::new(&long, true, None).unwrap();
        assert_eq!(block.id(), b"a-very-long-disk-ima");
    }

    #[test]
    fn readonly_refuses_writes() {
        let (_dir, path) = image(DISK_SECTORS as usize * 512);
        let before = file_bytes(&path);
        let mut block = Block::new(&path, true, None).unwrap();
        assert!(block.readonly());
        let f = block.features();
        assert_ne!(f & (1 << VIRTIO_BLK_F_RO), 0);
        assert_eq!(
            f & (1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES),
            0
        );
        block.set_acked_features(f);
        let mem = mem();
        mem.write_slice(&[0x55; 512], GuestAddress(DATA)).unwrap();
        header(&mem, VIRTIO_BLK_T_OUT, 0);
        let descs = [(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        mem.write_obj(0u64, GuestAddress(DATA)).unwrap();
        mem.write_obj(1u64 << 32, GuestAddress(DATA + 8)).unwrap();
        for t in [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES] {
            header(&mem, t, 0);
            let descs = [(HDR, 16, false), (DATA, 16, false), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_UNSUPP));
        }
        // Reads and flushes work.
        header(&mem, VIRTIO_BLK_T_IN, 0);
        let descs = [(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (513, VIRTIO_BLK_S_OK));
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        let descs = [(HDR, 16, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_OK));
        block.shutdown().unwrap();
        assert_eq!(file_bytes(&path), before);
    }

    #[test]
    fn unsupported_type() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        for t in [2, 99, u32::MAX] {
            header(&mem, t, 0);
            let descs = [(HDR, 16, false), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_UNSUPP));
        }
    }

    #[test]
    fn past_the_end_and_bad_lengths() {
        let (_dir, path, mut block) = disk();
        let before = file_bytes(&path);
        let mem = mem();
        let cases: [(u64, u32); 5] = [
            (DISK_SECTORS - 1, 1024), // crosses the end
            (DISK_SECTORS, 512),      // starts at the end
            (u64::MAX, 512),          // offset overflows
            (u64::MAX / 512, 1024),   // end overflows
            (0, 1000),                // not a multiple of 512
        ];
        for (sector, len) in cases {
            for (t, write) in [(VIRTIO_BLK_T_OUT, false), (VIRTIO_BLK_T_IN, true)] {
                header(&mem, t, sector);
                let descs = [(HDR, 16, false), (DATA, len, write), (STATUS, 1, true)];
                let r = run(&mut block, &mem, &descs);
                assert_eq!(
                    r,
                    (1, VIRTIO_BLK_S_IOERR),
                    "type {t} sector {sector} len {len}"
                );
            }
        }
        // The last sector is fine.
        header(&mem, VIRTIO_BLK_T_OUT, DISK_SECTORS - 1);
        let descs = [(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_OK));
        let after = file_bytes(&path);
        let last = (DISK_SECTORS as usize - 1) * 512;
        assert_eq!(after[..last], before[..last]);
    }

    #[test]
    fn wrong_direction_descriptors() {
        let (_dir, path, mut block) = disk();
        let before = file_bytes(&path);
        let mem = mem();
        // Read into device-readable buffers.
        header(&mem, VIRTIO_BLK_T_IN, 0);
        let descs = [(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        // Write from device-writable buffers.
        header(&mem, VIRTIO_BLK_T_OUT, 0);
        let descs = [(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        // A device-readable descriptor after a device-writable one.
        let descs = [
            (HDR, 16, false),
            (DATA, 512, true),
            (DATA + 512, 512, false),
            (STATUS, 1, true),
        ];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        // Header in a device-writable descriptor.
        let descs = [(HDR, 16, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        assert_eq!(file_bytes(&path), before);
    }

    #[test]
    fn descriptors_outside_memory() {
        let (_dir, path, mut block) = disk();
        let before = file_bytes(&path);
        let mem = mem();
        let end = MEM_SIZE as u64;
        header(&mem, VIRTIO_BLK_T_OUT, 0);
        let descs = [
            (HDR, 16, false),
            (DATA, 512, false),
            (end - 256, 512, false), // straddles the end of RAM
            (STATUS, 1, true),
        ];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        for addr in [end, u64::MAX - 100] {
            let descs = [(HDR, 16, false), (addr, 512, false), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
            header(&mem, VIRTIO_BLK_T_IN, 0);
            let descs = [(HDR, 16, false), (addr, 512, true), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
            header(&mem, VIRTIO_BLK_T_OUT, 0);
        }
        // Header outside memory.
        let descs = [(end + 0x1000, 16, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        // Status outside memory: returned with used length 0, nothing written.
        let descs = [(HDR, 16, false), (DATA, 512, false), (end, 1, true)];
        assert_eq!(run_raw(&mut block, &mem, &chain(&descs)), vec![0]);
        let descs = [(HDR, 16, false), (u64::MAX, u32::MAX, true)];
        assert_eq!(run_raw(&mut block, &mem, &chain(&descs)), vec![0]);
        assert_eq!(file_bytes(&path), before);
    }

    #[test]
    fn bad_status_descriptor() {
        let (_dir, path, mut block) = disk();
        let before = file_bytes(&path);
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_OUT, 0);
        // No status descriptor: the last one is device-readable.
        let descs = [(HDR, 16, false), (DATA, 512, false)];
        assert_eq!(run_raw(&mut block, &mem, &chain(&descs)), vec![0]);
        // Status descriptor not writable.
        let descs = [(HDR, 16, false), (DATA, 512, false), (STATUS, 1, false)];
        assert_eq!(run_raw(&mut block, &mem, &chain(&descs)), vec![0]);
        // Empty status descriptor.
        let descs = [(HDR, 16, false), (DATA, 512, false), (STATUS, 0, true)];
        assert_eq!(run_raw(&mut block, &mem, &chain(&descs)), vec![0]);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0xff);
        assert_eq!(file_bytes(&path), before);
        assert_eq!(block.stats().errors, 3);
    }

    #[test]
    fn header_too_short() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        let descs = [(HDR, 8, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
        // Only a status byte.
        let descs = [(STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
    }

    #[test]
    fn broken_chains() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        // A loop: 0 -> 1 -> 0 -> ...
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(HDR, 16, F_NEXT, 1)),
            RawDescriptor::from(SplitDescriptor::new(STATUS, 1, F_NEXT | F_WRITE, 0)),
        ];
        assert_eq!(run_raw(&mut block, &mem, &descs), vec![0]);
        // Next index out of the table.
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(HDR, 16, F_NEXT, 1)),
            RawDescriptor::from(SplitDescriptor::new(STATUS, 1, F_NEXT | F_WRITE, 200)),
        ];
        assert_eq!(run_raw(&mut block, &mem, &descs), vec![0]);
        // Indirect table outside memory, and of a bad length.
        for (addr, len) in [(MEM_SIZE as u64, 48), (0x8000, 47), (0x8000, 0)] {
            let descs = [
                RawDescriptor::from(SplitDescriptor::new(HDR, 16, F_NEXT, 1)),
                RawDescriptor::from(SplitDescriptor::new(addr, len, F_INDIRECT, 0)),
            ];
            assert_eq!(run_raw(&mut block, &mem, &descs), vec![0]);
        }
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0xff);
    }

    #[test]
    fn too_many_descriptors() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        header(&mem, VIRTIO_BLK_T_IN, 0);
        // An indirect table of 2000 descriptors: header, 1998 data (512 bytes each), status.
        let table = 0x20_0000u64;
        let n = 2000usize;
        let mut descs = vec![(HDR, 16, false)];
        descs.extend((0..n - 2).map(|i| (DATA + 512 * (i as u64 % 64), 512, true)));
        descs.push((STATUS, 1, true));
        for (i, d) in chain(&descs).iter().enumerate() {
            mem.write_obj(*d, GuestAddress(table + 16 * i as u64))
                .unwrap();
        }
        let head = RawDescriptor::from(SplitDescriptor::new(table, 16 * n as u32, F_INDIRECT, 0));
        assert_eq!(run_raw(&mut block, &mem, &[head]), vec![1]);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
            VIRTIO_BLK_S_IOERR
        );
    }

    fn segment(mem: &GuestMemoryMmap, i: u64, sector: u64, num: u32, flags: u32) {
        let addr = DATA + 16 * i;
        mem.write_obj(sector, GuestAddress(addr)).unwrap();
        mem.write_obj(num, GuestAddress(addr + 8)).unwrap();
        mem.write_obj(flags, GuestAddress(addr + 12)).unwrap();
    }

    #[test]
    fn discard_and_write_zeroes() {
        let (_dir, path, mut block) = disk();
        let mem = mem();
        let before = file_bytes(&path);
        let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;

        // Write zeroes: two segments, with and without unmap.
        header(&mem, VIRTIO_BLK_T_WRITE_ZEROES, 0);
        segment(&mem, 0, 1, 2, 0);
        segment(&mem, 1, 8, 8, unmap);
        let descs = [(HDR, 16, false), (DATA, 32, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_OK));
        let after = file_bytes(&path);
        assert_eq!(after.len(), before.len());
        assert_eq!(after[..512], before[..512]);
        assert!(after[512..1536].iter().all(|&b| b == 0));
        assert_eq!(after[1536..4096], before[1536..4096]);
        assert!(after[4096..8192].iter().all(|&b| b == 0));
        assert_eq!(after[8192..], before[8192..]);

        // Discard: the range reads back as zeros (hole punching on the test file system).
        header(&mem, VIRTIO_BLK_T_DISCARD, 0);
        segment(&mem, 0, 16, 16, 0);
        let descs = [(HDR, 16, false), (DATA, 16, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_OK));
        header(&mem, VIRTIO_BLK_T_IN, 16);
        let descs = [(HDR, 16, false), (DATA, 16 * 512, true), (STATUS, 1, true)];
        assert_eq!(
            run(&mut block, &mem, &descs),
            (16 * 512 + 1, VIRTIO_BLK_S_OK)
        );
        let mut back = vec![0xffu8; 16 * 512];
        mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert!(back.iter().all(|&b| b == 0));
        assert_eq!(file_bytes(&path).len(), before.len());
    }

    #[test]
    fn discard_and_write_zeroes_refused() {
        let (_dir, path, mut block) = disk();
        let mem = mem();
        let before = file_bytes(&path);
        let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        let descs = [(HDR, 16, false), (DATA, 16, false), (STATUS, 1, true)];
        let two = [(HDR, 16, false), (DATA, 32, false), (STATUS, 1, true)];
        for t in [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES] {
            header(&mem, t, 0);
            // Unknown flag.
            segment(&mem, 0, 0, 1, 2);
            assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_UNSUPP));
            // Past the end, in the second segment: the first one must not be applied.
            segment(&mem, 0, 0, 1, 0);
            segment(&mem, 1, DISK_SECTORS - 1, 2, 0);
            assert_eq!(run(&mut block, &mem, &two), (1, VIRTIO_BLK_S_IOERR));
            segment(&mem, 1, u64::MAX / 512, u32::MAX, 0);
            assert_eq!(run(&mut block, &mem, &two), (1, VIRTIO_BLK_S_IOERR));
            // More sectors than advertised.
            segment(
                &mem,
                0,
                0,
                MAX_DISCARD_SECTORS.max(MAX_WRITE_ZEROES_SECTORS) + 1,
                0,
            );
            assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_IOERR));
            // Not a whole number of segments, no segment, too many segments.
            let bad = [(HDR, 16, false), (DATA, 24, false), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &bad), (1, VIRTIO_BLK_S_IOERR));
            let none = [(HDR, 16, false), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &none), (1, VIRTIO_BLK_S_IOERR));
            for i in 0..33 {
                segment(&mem, i, 0, 1, 0);
            }
            let many = [(HDR, 16, false), (DATA, 33 * 16, false), (STATUS, 1, true)];
            assert_eq!(run(&mut block, &mem, &many), (1, VIRTIO_BLK_S_IOERR));
        }
        // Unmap on a discard is UNSUPP (spec 5.2.6.2).
        header(&mem, VIRTIO_BLK_T_DISCARD, 0);
        segment(&mem, 0, 0, 1, unmap);
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_UNSUPP));
        assert_eq!(file_bytes(&path), before);
    }

    #[test]
    fn write_zeros_fallback() {
        let (_dir, path, block) = disk();
        write_zeros(&block.file, 512, 3 * BOUNCE_LEN as u64 + 512).unwrap();
        let after = file_bytes(&path);
        assert!(after[512..512 + 3 * BOUNCE_LEN + 512]
            .iter()
            .all(|&b| b == 0));
        assert_ne!(after[511], 0);
    }

    #[test]
    fn lock() {
        let (_dir, path) = image(4096);
        let first = Block::new(&path, false, None).unwrap();
        let e = Block::new(&path, false, None).err().unwrap();
        assert!(matches!(e, BlockError::Locked { .. }));
        let text = e.to_string();
        assert!(text.contains("in use by another process"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(Block::new(&path, true, None).is_err());
        drop(first);
        let ro1 = Block::new(&path, true, None).unwrap();
        let _ro2 = Block::new(&path, true, None).unwrap();
        assert!(matches!(
            Block::new(&path, false, None),
            Err(BlockError::Locked { .. })
        ));
        drop(ro1);
    }

    #[test]
    fn bad_images_refused() {
        let (dir, path) = image(1000);
        let e = Block::new(&path, false, None).err().unwrap();
        assert!(matches!(e, BlockError::BadSize { size: 1000, .. }));
        let text = e.to_string();
        assert!(
            text.contains("1000") && text.contains("multiple of 512"),
            "{text}"
        );

        std::fs::File::create(&path).unwrap();
        let e = Block::new(&path, true, None).err().unwrap();
        assert!(matches!(e, BlockError::Empty { .. }), "{e}");

        let missing = dir.as_path().join("missing.img");
        let e = Block::new(&missing, false, None).err().unwrap();
        assert!(matches!(e, BlockError::Open { .. }), "{e}");
        assert!(e.to_string().contains("missing.img"));

        let e = Block::new(dir.as_path(), true, None).err().unwrap();
        assert!(matches!(e, BlockError::NotAFile { .. }), "{e}");
        let e = Block::new(Path::new("/dev/null"), true, None)
            .err()
            .unwrap();
        assert!(matches!(e, BlockError::NotAFile { .. }), "{e}");
    }

    fn config_u32(block: &Block, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        block.read_config(offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn config_space() {
        let (_dir, _path, block) = disk();
        assert_eq!(block.device_type(), 2);
        assert_eq!(block.queue_max_sizes(), &[256]);
        let f = block.features();
        for bit in [32, 28, 2, 6, 9, 13, 14] {
            assert_ne!(f & (1 << bit), 0, "bit {bit}");
        }
        assert_eq!(f & (1 << VIRTIO_BLK_F_RO), 0);
        let mut cap = [0u8; 8];
        block.read_config(0, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), DISK_SECTORS);
        assert_eq!(block.capacity(), DISK_SECTORS);
        assert_eq!(config_u32(&block, 8), 0); // size_max
        assert_eq!(config_u32(&block, 12), 254); // seg_max
        assert_eq!(config_u32(&block, 16), 0); // geometry
        assert_eq!(config_u32(&block, 20), 512); // blk_size
        assert_eq!(config_u32(&block, 24), 0); // topology
        assert_eq!(config_u32(&block, 28), 0);
        assert_eq!(config_u32(&block, 32), 0); // writeback, unused, num_queues
        assert_eq!(config_u32(&block, 36), MAX_DISCARD_SECTORS);
        assert_eq!(config_u32(&block, 40), MAX_DISCARD_SEG);
        assert_eq!(config_u32(&block, 44), DISCARD_SECTOR_ALIGNMENT);
        assert_eq!(config_u32(&block, 48), MAX_WRITE_ZEROES_SECTORS);
        assert_eq!(config_u32(&block, 52), MAX_WRITE_ZEROES_SEG);
        assert_eq!(config_u32(&block, 56), 1); // write_zeroes_may_unmap
                                               // Unaligned, partly and fully out of range reads.
        let mut b = [0xffu8; 3];
        block.read_config(1, &mut b);
        assert_eq!(b, [0, 0, 0]);
        let mut b = [0xffu8; 8];
        block.read_config(56, &mut b);
        assert_eq!(b, [1, 0, 0, 0, 0, 0, 0, 0]);
        for offset in [60, 0x1000, u64::MAX - 2, u64::MAX] {
            let mut b = [0xffu8; 8];
            block.read_config(offset, &mut b);
            assert_eq!(b, [0; 8], "offset {offset:#x}");
        }
    }

    #[test]
    fn readonly_config() {
        let (_dir, path) = image(4096);
        let block = Block::new(&path, true, None).unwrap();
        assert_eq!(config_u32(&block, 0), 8);
        assert_eq!(config_u32(&block, 36), 0);
        assert_eq!(config_u32(&block, 56), 0);
    }

    #[test]
    fn writes_through_without_flush_feature() {
        let (_dir, path, mut block) = disk();
        block.reset();
        block.set_acked_features(1 << VIRTIO_F_VERSION_1);
        assert!(!block.writeback());
        let mem = mem();
        mem.write_slice(&[0x5a; 512], GuestAddress(DATA)).unwrap();
        header(&mem, VIRTIO_BLK_T_OUT, 3);
        let descs = [(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &descs), (1, VIRTIO_BLK_S_OK));
        assert!(file_bytes(&path)[1536..2048].iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn other_queue_index_ignored() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        let vq = MockSplitQueue::new(&mem, 16);
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(!block.process_queue(1, &mut queue, &mem));
        assert!(!block.process_queue(0, &mut queue, &mem));
    }

    #[test]
    fn counters() {
        let (_dir, _path, mut block) = disk();
        let mem = mem();
        let zero = vec![
            ("read_bytes", 0),
            ("read_ops", 0),
            ("write_bytes", 0),
            ("write_ops", 0),
            ("errors", 0),
        ];
        assert_eq!(block.counters(), zero);
        // Two writes of 1024 and 512 bytes, one read of 2048, one flush (no op), one bad read.
        header(&mem, VIRTIO_BLK_T_OUT, 0);
        let out = [(HDR, 16, false), (DATA, 1024, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &out), (1, VIRTIO_BLK_S_OK));
        header(&mem, VIRTIO_BLK_T_OUT, 4);
        let out = [(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &out), (1, VIRTIO_BLK_S_OK));
        header(&mem, VIRTIO_BLK_T_IN, 0);
        let read = [(HDR, 16, false), (DATA, 2048, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &read), (2049, VIRTIO_BLK_S_OK));
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(
            run(&mut block, &mem, &[(HDR, 16, false), (STATUS, 1, true)]),
            (1, VIRTIO_BLK_S_OK)
        );
        header(&mem, VIRTIO_BLK_T_IN, DISK_SECTORS);
        let past_end = [(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)];
        assert_eq!(run(&mut block, &mem, &past_end), (1, VIRTIO_BLK_S_IOERR));
        assert_eq!(
            block.counters(),
            vec![
                ("read_bytes", 2048),
                ("read_ops", 1),
                ("write_bytes", 1536),
                ("write_ops", 2),
                ("errors", 1),
            ]
        );
        // Through the transport too.
        let line = std::sync::Arc::new(devices::interrupt::test_utils::RecordingLine::default());
        let t = crate::MmioTransport::new(
            Box::new(block),
            mem.clone(),
            std::sync::Arc::new(crate::VirtioInterrupt::new(line)),
        )
        .unwrap();
        assert_eq!(t.counters()[1], ("read_ops", 1));
    }
}
