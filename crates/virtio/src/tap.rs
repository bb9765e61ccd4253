//! A Linux tap interface: the host end of a virtio-net device.
//!
//! The tap is opened with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR` and a 12-byte virtio-net header
//! (`struct virtio_net_hdr_v1`, with `num_buffers`), so every frame read or written is preceded by the
//! same header the virtio 1 driver uses: headers pass through unchanged. The fd is non-blocking.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};

/// Size of the virtio-net header preceding every frame on the tap (`struct virtio_net_hdr_v1`).
pub const VNET_HDR_LEN: usize = 12;

/// Offload flag (`TUN_F_CSUM`): the tap may hand over frames with a partial checksum.
pub const TUN_F_CSUM: u32 = libc::TUN_F_CSUM;
/// Offload flag (`TUN_F_TSO4`): the tap may hand over TCP/IPv4 segmentation offload frames.
pub const TUN_F_TSO4: u32 = libc::TUN_F_TSO4;
/// Offload flag (`TUN_F_TSO6`): the tap may hand over TCP/IPv6 segmentation offload frames.
pub const TUN_F_TSO6: u32 = libc::TUN_F_TSO6;

/// Path of the tun/tap clone device.
const TUN_PATH: &str = "/dev/net/tun";

/// Errors opening or configuring a tap interface.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The interface name is not usable.
    #[error(
        "invalid tap interface name {name:?}: it must be 1 to 15 bytes long, without '/', ':' or \
         whitespace, and not \".\" or \"..\""
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// /dev/net/tun cannot be opened.
    #[error("cannot open {TUN_PATH} (is the tun kernel module available?): {source}")]
    OpenTun {
        /// The underlying error.
        source: io::Error,
    },
    /// Creating or attaching the interface needs privileges the process does not have.
    #[error(
        "permission denied creating or attaching tap interface {name}: this needs CAP_NET_ADMIN \
         (run as root, or create the interface beforehand for your user with \
         `ip tuntap add dev {name} mode tap user $USER`)"
    )]
    PermissionDenied {
        /// The interface name.
        name: String,
    },
    /// The interface exists and another process has it open.
    #[error("tap interface {name} is already in use by another process")]
    Busy {
        /// The interface name.
        name: String,
    },
    /// An interface of that name exists but is not a (single-queue) tap.
    #[error("network interface {name} exists but is not a single-queue tap interface")]
    NotATap {
        /// The interface name.
        name: String,
    },
    /// A tun ioctl failed.
    #[error("cannot configure tap interface {name}: {request} failed: {source}")]
    Ioctl {
        /// The interface name.
        name: String,
        /// The ioctl request (e.g. "TUNSETOFFLOAD").
        request: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The fd given to [`Tap::from_fd`] cannot be made non-blocking.
    /// An inherited fd (`--net fd=N`) is not a usable tap.
    #[error("fd {fd} is not a tap rvvmm can use: {why}")]
    BadFd {
        /// The fd.
        fd: i32,
        /// What is wrong with it.
        why: String,
    },
    #[error("cannot make the backend fd non-blocking: {source}")]
    NonBlocking {
        /// The underlying error.
        source: io::Error,
    },
}

/// A tap interface (or, for tests, any packet fd standing in for one), non-blocking.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    /// Whether `file` is a real tun fd that takes tun ioctls.
    is_tun: bool,
    /// The offload flags last set.
    offload: u32,
}

/// Whether `name` is a valid Linux network interface name (see the kernel's `dev_valid_name`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// The interface name an ifreq holds.
fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The error for a failed TUNSETIFF.
fn setiff_error(name: &str, source: io::Error) -> TapError {
    let name = name.to_string();
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => TapError::PermissionDenied { name },
        Some(libc::EBUSY) => TapError::Busy { name },
        Some(libc::EINVAL) => TapError::NotATap { name },
        _ => TapError::Ioctl {
            name,
            request: "TUNSETIFF",
            source,
        },
    }
}

impl Tap {
    /// Opens the tap interface `name`, creating it when it does not exist (which needs
    /// CAP_NET_ADMIN; attaching to an existing tap owned by the user does not). A name containing
    /// `%d` (e.g. "tap%d") lets the kernel pick a free one; [`Tap::name`] tells which.
    ///
    /// The tap is set up with a 12-byte virtio-net header ([`VNET_HDR_LEN`]), no offloads (see
    /// [`Tap::set_offload`]) and a non-blocking fd. It goes away with the fd unless it was made
    /// persistent beforehand (e.g. with `ip tuntap add`). The interface is not brought up: that, and
    /// addresses or bridging, is the host administrator's business.
    pub fn open_or_create(name: &str) -> Result<Tap, TapError> {
        if !valid_name(name) {
            return Err(TapError::InvalidName {
                name: name.to_string(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(TUN_PATH)
            .map_err(|source| TapError::OpenTun { source })?;

        // SAFETY: ifreq is plain old data (a name array and a union of integers, addresses and a
        // pointer), for which all zeros is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = libc::c_char::from_ne_bytes([src]);
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
        // SAFETY: TUNSETIFF reads and writes back one ifreq, which `ifr` is and outlives the call; the
        // fd is owned by `file`; the return value is checked.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if ret < 0 {
            return Err(setiff_error(name, io::Error::last_os_error()));
        }
        // The kernel writes back the actual name (different when `name` was a pattern).
        Tap::set_up(file, ifreq_name(&ifr))
    }

    /// Takes over a tap fd opened by someone else (`--net fd=N`: libvirt, Kata and other orchestrators
    /// open the tap, with the privilege that needs, and pass it). The fd must be a tap (IFF_TAP) opened
    /// with IFF_NO_PI and IFF_VNET_HDR, as cloud-hypervisor expects too; it is then set up as
    /// [`Tap::open_or_create`] does (header size, little endian, no offloads, non-blocking).
    pub fn from_tap_fd(fd: OwnedFd) -> Result<Tap, TapError> {
        let raw = fd.as_raw_fd();
        let bad = |why: String| TapError::BadFd { fd: raw, why };
        // SAFETY: ifreq is plain old data, for which all zeros is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF writes one ifreq, which `ifr` is and outlives the call; the fd is owned by
        // `fd`; the return value is checked.
        if unsafe { libc::ioctl(raw, libc::TUNGETIFF, &mut ifr) } < 0 {
            return Err(bad(format!(
                "TUNGETIFF failed ({}): not a tun/tap fd",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: TUNGETIFF filled the flags member of the union.
        let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags });
        let want = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        if flags & want != want {
            return Err(bad(format!(
                "interface {} has flags {flags:#x}; rvvmm needs a tap opened with IFF_TAP, IFF_NO_PI and IFF_VNET_HDR",
                ifreq_name(&ifr)
            )));
        }
        // SAFETY: F_GETFL / F_SETFL on an fd we own, with integer arguments; return values checked.
        let ok = unsafe {
            let fl = libc::fcntl(raw, libc::F_GETFL);
            fl >= 0 && libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK) >= 0
        };
        if !ok {
            return Err(TapError::NonBlocking {
                source: io::Error::last_os_error(),
            });
        }
        Tap::set_up(File::from(fd), ifreq_name(&ifr))
    }

    /// Sets up an open, attached tap: the virtio-net header, its byte order, no offloads.
    fn set_up(file: File, name: String) -> Result<Tap, TapError> {
        let mut tap = Tap {
            file,
            name,
            is_tun: true,
            offload: 0,
        };

        let hdr_len = VNET_HDR_LEN as libc::c_int;
        tap.ioctl_int(libc::TUNSETVNETHDRSZ, "TUNSETVNETHDRSZ", &hdr_len)?;
        // The virtio 1 header is little endian; the tap's is native endian unless told otherwise.
        let little_endian: libc::c_int = 1;
        if let Err(e) = tap.ioctl_int(libc::TUNSETVNETLE, "TUNSETVNETLE", &little_endian) {
            if cfg!(target_endian = "big") {
                return Err(e);
            }
            // Native endian is little endian: nothing to change.
            log::debug!("virtio-net: {e}");
        }
        // A known state: a previous user of a persistent tap may have left offloads enabled.
        tap.set_offload(0)?;
        Ok(tap)
    }

    /// Wraps an already open packet fd: a tap set up elsewhere, or a datagram socket standing in for a
    /// tap in tests. Frames read and written on it must carry the 12-byte virtio-net header. The fd is
    /// made non-blocking. No tun ioctl is ever issued on it: [`Tap::set_offload`] only records the
    /// flags, so the fd's owner must make sure it never hands over offloaded frames the guest did not
    /// negotiate (frames it does are dropped).
    pub fn from_fd(fd: OwnedFd, name: &str) -> Result<Tap, TapError> {
        let raw = fd.as_raw_fd();
        // SAFETY: F_GETFL / F_SETFL on an fd we own, with integer arguments; return values checked.
        let ok = unsafe {
            let flags = libc::fcntl(raw, libc::F_GETFL);
            flags >= 0 && libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
        };
        if !ok {
            return Err(TapError::NonBlocking {
                source: io::Error::last_os_error(),
            });
        }
        Ok(Tap {
            file: File::from(fd),
            name: name.to_string(),
            is_tun: false,
            offload: 0,
        })
    }

    fn ioctl_int(
        &self,
        request: libc::Ioctl,
        request_name: &'static str,
        value: &libc::c_int,
    ) -> Result<(), TapError> {
        // SAFETY: the tun "set" ioctls used here (TUNSETVNETHDRSZ, TUNSETVNETLE) read one int
        // through the pointer, which is valid for the call; the fd is owned by `self.file`; the
        // return value is checked.
        let ret =
            unsafe { libc::ioctl(self.file.as_raw_fd(), request, value as *const libc::c_int) };
        if ret < 0 {
            return Err(TapError::Ioctl {
                name: self.name.clone(),
                request: request_name,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// The tap file (for handing it to vhost-net as the backend).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tells the tap which offloaded frames it may hand over on reads (`TUN_F_*` flags, e.g.
    /// [`TUN_F_CSUM`] | [`TUN_F_TSO4`]): those the guest negotiated. Frames written to the tap may
    /// use any offload regardless. TSO flags are only honoured with [`TUN_F_CSUM`].
    pub fn set_offload(&mut self, flags: u32) -> Result<(), TapError> {
        if self.is_tun {
            // SAFETY: TUNSETOFFLOAD takes its flags as the ioctl argument itself (an unsigned long,
            // not a pointer); the fd is owned by `self.file`; the return value is checked.
            let ret = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    libc::c_ulong::from(flags),
                )
            };
            if ret < 0 {
                return Err(TapError::Ioctl {
                    name: self.name.clone(),
                    request: "TUNSETOFFLOAD",
                    source: io::Error::last_os_error(),
                });
            }
        }
        self.offload = flags;
        Ok(())
    }

    /// The offload flags last set with [`Tap::set_offload`].
    pub fn offload(&self) -> u32 {
        self.offload
    }

    /// Reads one frame (virtio-net header included) into `buf`; `WouldBlock` when there is none. A
    /// tap returns the whole frame's length even when `buf` was too short for it.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame (virtio-net header included).
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    /// Writes one frame gathered from several buffers (virtio-net header included).
    pub fn writev(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.file).write_vectored(bufs)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fd_that_is_not_a_tap_is_refused() {
        let (r, _w) = std::io::pipe().unwrap();
        let fd: OwnedFd = r.into();
        let e = Tap::from_tap_fd(fd).err().unwrap().to_string();
        assert!(e.contains("not a tun/tap fd"), "{e}");
    }
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};

    #[test]
    fn names() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\0b",
            "abcdefghijklmnop",
        ] {
            let e = Tap::open_or_create(bad).unwrap_err();
            assert!(matches!(e, TapError::InvalidName { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("15 bytes"), "{e}");
        }
        assert!(valid_name("abcdefghijklmno"));
        assert!(valid_name("tap%d"));
    }

    #[test]
    fn setiff_errors() {
        let e = setiff_error("tap7", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, TapError::PermissionDenied { .. }));
        let text = e.to_string();
        assert!(
            text.contains("CAP_NET_ADMIN") && text.contains("tap7"),
            "{text}"
        );
        let e = setiff_error("tap7", io::Error::from_raw_os_error(libc::EBUSY));
        assert!(e.to_string().contains("in use"), "{e}");
        let e = setiff_error("eth0", io::Error::from_raw_os_error(libc::EINVAL));
        assert!(e.to_string().contains("not a single-queue tap"), "{e}");
        let e = setiff_error("tap7", io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(e.to_string().contains("TUNSETIFF"), "{e}");
    }

    #[test]
    fn from_fd_is_nonblocking_and_keeps_frames() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut tap = Tap::from_fd(OwnedFd::from(a), "test").unwrap();
        assert_eq!(tap.name(), "test");
        let mut buf = [0u8; 64];
        assert_eq!(
            tap.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        tap.set_offload(TUN_F_CSUM | TUN_F_TSO4).unwrap();
        assert_eq!(tap.offload(), TUN_F_CSUM | TUN_F_TSO4);
        assert_eq!(
            tap.writev(&[IoSlice::new(&[1, 2]), IoSlice::new(&[3])])
                .unwrap(),
            3
        );
        assert_eq!(tap.write(&[4]).unwrap(), 1);
        let mut got = [0u8; 8];
        assert_eq!(b.recv(&mut got).unwrap(), 3);
        assert_eq!(&got[..3], &[1, 2, 3]);
        assert_eq!(b.recv(&mut got).unwrap(), 1);
        b.send(&[9; 5]).unwrap();
        assert_eq!(tap.read(&mut buf).unwrap(), 5);
        assert!(tap.as_raw_fd() >= 0);
    }

    /// Test-only helpers talking to the interface through ordinary sockets.
    fn if_index(name: &str) -> u32 {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    }

    fn bring_up(name: &str) {
        // SAFETY: socket() with constant arguments; the result is checked and closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(sock >= 0, "{}", io::Error::last_os_error());
        // SAFETY: ifreq is plain old data: all zeros is valid.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = libc::c_char::from_ne_bytes([src]);
        }
        ifr.ifr_ifru.ifru_flags = libc::IFF_UP as i16;
        // SAFETY: SIOCSIFFLAGS reads one ifreq, valid for the call; sock is ours; checked below.
        let ret = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut ifr) };
        let err = io::Error::last_os_error();
        // SAFETY: closing the socket created above, not used afterwards.
        unsafe { libc::close(sock) };
        assert!(ret == 0, "cannot bring {name} up: {err}");
    }

    /// An AF_PACKET socket bound to interface `index` for ethertype `proto`.
    fn packet_socket(index: u32, proto: u16) -> OwnedFd {
        use std::os::fd::FromRawFd;
        // SAFETY: socket() with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                i32::from(proto.to_be()),
            )
        };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: fd was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data: all zeros is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto.to_be();
        addr.sll_ifindex = index as i32;
        // SAFETY: bind reads a sockaddr_ll of the given size, valid for the call.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(ret, 0, "bind: {}", io::Error::last_os_error());
        fd
    }

    fn wait_for(mut f: impl FnMut() -> Option<Vec<u8>>) -> Vec<u8> {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no frame within 5 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Creates a real tap (needs CAP_NET_ADMIN and /dev/net/tun: this test runs as root) and passes
    /// frames both ways through it, checking the 12-byte header and the lack of packet information.
    #[test]
    fn real_tap() {
        let name = format!("rvvmmt{}", std::process::id() % 1_000_000);
        // SAFETY: geteuid has no arguments and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let mut tap = match Tap::open_or_create(&name) {
            Ok(tap) => tap,
            // Not root: only the permission error can be checked (it must say what is missing).
            Err(e @ TapError::PermissionDenied { .. }) if !root => {
                assert!(e.to_string().contains("CAP_NET_ADMIN"));
                eprintln!("real_tap: not root, only the permission error was checked: {e}");
                return;
            }
            Err(e) => panic!("cannot create tap {name}: {e}"),
        };
        assert_eq!(tap.name(), name);
        // A second open of an attached tap is refused with a clear error.
        let e = Tap::open_or_create(&name).unwrap_err();
        assert!(matches!(e, TapError::Busy { .. }), "{e}");
        assert!(e.to_string().contains(&name));
        // Offloads: all the ones virtio-net negotiates, and back to none.
        tap.set_offload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            .unwrap();
        tap.set_offload(0).unwrap();
        let mut buf = vec![0u8; 70_000];
        assert_eq!(
            tap.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        bring_up(&name);
        const PROTO: u16 = 0x88b5; // IEEE local experimental ethertype
        let sock = packet_socket(if_index(&name), PROTO);
        let frame = |src: u8| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, src]);
            f.extend_from_slice(&PROTO.to_be_bytes());
            f.extend((0..100u8).map(|i| i ^ src));
            f
        };

        // Guest -> host: header + frame written to the tap arrive as the bare frame.
        let out = frame(1);
        let hdr = [0u8; VNET_HDR_LEN];
        let n = tap
            .writev(&[IoSlice::new(&hdr), IoSlice::new(&out)])
            .unwrap();
        assert_eq!(n, VNET_HDR_LEN + out.len());
        let got = wait_for(|| {
            let mut b = [0u8; 2048];
            // SAFETY: recv writes at most b.len() bytes into b.
            let n = unsafe { libc::recv(sock.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), 0) };
            (n > 0).then(|| b[..n as usize].to_vec())
        });
        assert_eq!(got, out);

        // Host -> guest: a frame sent on the interface is read with a 12-byte header in front.
        let back = frame(2);
        // SAFETY: send reads back.len() bytes from back.
        let n = unsafe { libc::send(sock.as_raw_fd(), back.as_ptr().cast(), back.len(), 0) };
        assert_eq!(n, back.len() as isize, "{}", io::Error::last_os_error());
        let got = wait_for(|| loop {
            match tap.read(&mut buf) {
                // Skip whatever else the host sends on a fresh interface (IPv6 neighbour discovery).
                Ok(n)
                    if n >= VNET_HDR_LEN + 14
                        && buf[VNET_HDR_LEN + 12..][..2] == PROTO.to_be_bytes() =>
                {
                    return Some(buf[..n].to_vec())
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => panic!("tap read: {e}"),
            }
        });
        assert_eq!(&got[..VNET_HDR_LEN - 2], &[0u8; VNET_HDR_LEN - 2]);
        assert_eq!(&got[VNET_HDR_LEN..], &back[..]);
    }
}
