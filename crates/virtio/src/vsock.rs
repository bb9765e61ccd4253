//! virtio-vsock (virtio spec 1.2, 5.10), the socket device, with the kernel's vhost-vsock as its data
//! path: host programs reach the guest with AF_VSOCK sockets at the guest's CID.
//!
//! Three queues: receive (0) and transmit (1), which the kernel runs from DRIVER_OK on (see
//! [`crate::vhost_vsock`]), and the event queue (2), which stays with rvvmm and is never used: rvvmm
//! sends no transport events (only needed after a migration, which rvvmm does not do). The config space
//! is the guest's CID, a le64 at offset 0. rvvmm relays the kernel's call eventfd to the interrupt line
//! exactly as for vhost-net; the device has no counters of its own (the data never passes through
//! rvvmm).

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::device::{read_config_bytes, BackendStatus, VirtioDevice};
use crate::vhost_net::VhostError;
use crate::vhost_vsock::{VhostVsockBackend, VHOST_QUEUES};
use crate::{device_type, VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC};

/// Size of each of the three queues.
pub const QUEUE_SIZE: u16 = 256;
/// Smallest CID a guest may have (0 is the hypervisor, 1 local loopback, 2 the host).
pub const MIN_GUEST_CID: u64 = 3;
/// Index of the event queue (the one rvvmm keeps).
const EVENT_QUEUE: usize = 2;
/// Length of the config space: `guest_cid`.
const CONFIG_LEN: usize = 8;

/// Errors setting up or starting a vsock device.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// The CID is reserved, or does not fit the 32 bits AF_VSOCK addresses have.
    #[error(
        "invalid guest CID {0}: it must be at least 3 (0, 1 and 2 are the hypervisor, local loopback \
         and the host) and below 4294967295 (VMADDR_CID_ANY)"
    )]
    InvalidCid(u64),
    /// The host has no /dev/vhost-vsock.
    #[error("/dev/vhost-vsock: {0} (modprobe vhost_vsock)")]
    NoDevice(io::Error),
    /// /dev/vhost-vsock exists but cannot be opened (e.g. permissions).
    #[error("cannot open /dev/vhost-vsock: {0}")]
    Open(io::Error),
    /// Another vhost-vsock instance (another VM) has the CID, or it is one of the host's own.
    #[error("guest CID {0} is already used by another VM (or is one of this host's own CIDs)")]
    CidInUse(u64),
    /// A vhost ioctl failed.
    #[error("vhost-vsock: {what}: {source}")]
    Vhost {
        /// What rvvmm was doing.
        what: &'static str,
        /// The error.
        source: vhost::Error,
    },
    /// An eventfd could not be created.
    #[error("vhost-vsock: cannot create an eventfd: {0}")]
    EventFd(io::Error),
    /// The receive or transmit queue is missing or was not made ready by the driver.
    #[error("vhost-vsock: the receive and transmit queues must both be ready")]
    Queues,
    /// The device has no vhost-vsock instance (only devices built for unit tests).
    #[error("vhost-vsock: no backend")]
    NoBackend,
}

impl From<VhostError> for VsockError {
    fn from(e: VhostError) -> VsockError {
        match e {
            VhostError::Ioctl { what, source } => VsockError::Vhost { what, source },
            VhostError::EventFd(e) => VsockError::EventFd(e),
        }
    }
}

/// Checks that `cid` can be a guest's CID: at least [`MIN_GUEST_CID`] and below `u32::MAX`
/// (VMADDR_CID_ANY; AF_VSOCK addresses are 32 bits).
pub fn check_cid(cid: u64) -> Result<u64, VsockError> {
    if (MIN_GUEST_CID..u64::from(u32::MAX)).contains(&cid) {
        Ok(cid)
    } else {
        Err(VsockError::InvalidCid(cid))
    }
}

/// The features offered with a data path supporting `backend` (its VHOST_GET_FEATURES): VERSION_1
/// and indirect descriptors when the kernel has them.
///
/// VIRTIO_RING_F_EVENT_IDX is not offered even though vhost-vsock supports it: the transport applies
/// used-event suppression to the interrupt with its own view of the used rings, which the kernel's
/// rings never move, so with EVENT_IDX no interrupt would ever reach the driver.
fn offered_features(backend: u64) -> u64 {
    (1u64 << VIRTIO_F_VERSION_1) | (backend & (1u64 << VIRTIO_RING_F_INDIRECT_DESC))
}

/// A virtio-vsock device whose receive and transmit queues the kernel runs (/dev/vhost-vsock).
pub struct Vsock {
    cid: u64,
    config: [u8; CONFIG_LEN],
    queue_sizes: [u16; 3],
    features: u64,
    acked_features: u64,
    /// The kernel's data path; `None` only in unit tests.
    backend: Option<VhostVsockBackend>,
}

impl Vsock {
    /// A vsock device for a guest with CID `cid` (see [`check_cid`]) and RAM `mem`: opens
    /// /dev/vhost-vsock and claims the CID there (until the device is dropped).
    pub fn new(cid: u64, mem: &GuestMemoryMmap) -> Result<Vsock, VsockError> {
        let cid = check_cid(cid)?;
        let backend = VhostVsockBackend::new(cid, mem)?;
        Ok(Vsock::with_backend(cid, backend.features(), Some(backend)))
    }

    /// A device for CID `cid` (checked) offering what a data path supporting `backend_features`
    /// allows.
    fn with_backend(cid: u64, backend_features: u64, backend: Option<VhostVsockBackend>) -> Vsock {
        Vsock {
            cid,
            config: cid.to_le_bytes(),
            queue_sizes: [QUEUE_SIZE; 3],
            features: offered_features(backend_features),
            acked_features: 0,
            backend,
        }
    }

    /// The guest's CID.
    pub fn cid(&self) -> u64 {
        self.cid
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        device_type::VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    /// Never called for the kernel's queues (the I/O thread leaves their eventfds alone); the event
    /// queue's buffers are kept, never used.
    fn process_queue(&mut self, index: usize, _queue: &mut Queue, _mem: &GuestMemoryMmap) -> bool {
        if index > EVENT_QUEUE {
            log::warn!("virtio-vsock: notification for nonexistent queue {index}");
        }
        false
    }

    /// vhost signals used buffers on its call eventfd: the I/O thread raises the interrupt.
    fn backend_fd(&self) -> Option<RawFd> {
        self.backend.as_ref().map(|b| b.call_fd().as_raw_fd())
    }

    fn process_backend(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> BackendStatus {
        match &self.backend {
            // vhost already put the buffers in the used rings.
            Some(b) => b.signalled(),
            None => BackendStatus::default(),
        }
    }

    /// Hands the receive and transmit queues to the kernel and starts it.
    fn activate(
        &mut self,
        queues: &[Queue],
        kicks: &[EventFd],
        _mem: &GuestMemoryMmap,
    ) -> Result<(), String> {
        let ready =
            queues.len() >= VHOST_QUEUES && queues[..VHOST_QUEUES].iter().all(|q| q.ready());
        let result = match &mut self.backend {
            _ if !ready => Err(VsockError::Queues),
            Some(b) => b.start(self.acked_features, queues, kicks),
            None => Err(VsockError::NoBackend),
        };
        result.map_err(|e| e.to_string())
    }

    fn owns_queue_notifications(&self) -> bool {
        true
    }

    /// Stops the kernel's data path; the next DRIVER_OK hands it the (new) rings again.
    fn reset(&mut self) {
        if let Some(b) = &mut self.backend {
            b.stop();
        }
        self.acked_features = 0;
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(b) = &mut self.backend {
            b.stop();
        }
        log::info!("virtio-vsock: guest CID {} stopped", self.cid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use devices::interrupt::test_utils::RecordingLine as Line;
    use devices::MmioDevice;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;

    use crate::mmio::{reg, status};
    use crate::test_utils::{mem, F_WRITE};
    use crate::vhost_vsock::{cid_error, open_error};
    use crate::{MmioTransport, VirtioInterrupt, VIRTIO_RING_F_EVENT_IDX};

    const CID: u64 = 0x2345_6789;

    /// A device without a kernel data path, as if the kernel supported `backend_features`.
    fn device(cid: u64, backend_features: u64) -> Vsock {
        Vsock::with_backend(check_cid(cid).unwrap(), backend_features, None)
    }

    fn config_u32(v: &Vsock, offset: u64) -> u32 {
        let mut b = [0xffu8; 4];
        v.read_config(offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity_and_config_space() {
        let cid = 0xfedc_ba98u64;
        let mut v = device(cid, u64::MAX);
        assert_eq!(v.device_type(), 19);
        assert_eq!(v.queue_max_sizes(), &[256, 256, 256]);
        assert_eq!(v.cid(), cid);
        // le64 at 0, readable whole or as two 32-bit halves.
        let mut b = [0u8; 8];
        v.read_config(0, &mut b);
        assert_eq!(u64::from_le_bytes(b), cid);
        assert_eq!(config_u32(&v, 0), 0xfedc_ba98);
        assert_eq!(config_u32(&v, 4), 0);
        let mut one = [0u8; 1];
        v.read_config(1, &mut one);
        assert_eq!(one, [0xba]);
        // Beyond the config space: zeros.
        for offset in [8, 0x1000, u64::MAX - 1, u64::MAX] {
            let mut b = [0xffu8; 4];
            v.read_config(offset, &mut b);
            assert_eq!(b, [0; 4], "offset {offset:#x}");
        }
        // Writes are ignored.
        v.write_config(0, &[1; 8]);
        assert_eq!(config_u32(&v, 0), 0xfedc_ba98);
        // The layout with all eight bytes in use (no valid CID has them: built unchecked).
        let v = Vsock::with_backend(0x0807_0605_0403_0201, 0, None);
        assert_eq!(config_u32(&v, 0), 0x0403_0201);
        assert_eq!(config_u32(&v, 4), 0x0807_0605);
        let mut b = [0xffu8; 4];
        v.read_config(6, &mut b);
        assert_eq!(b, [7, 8, 0, 0], "straddling the end");
    }

    #[test]
    fn features_follow_the_kernel() {
        let version_1 = 1u64 << VIRTIO_F_VERSION_1;
        let indirect = 1u64 << VIRTIO_RING_F_INDIRECT_DESC;
        let event_idx = 1u64 << VIRTIO_RING_F_EVENT_IDX;
        // All the kernel has (VHOST_VSOCK_FEATURES of Linux 6.x: VERSION_1, ANY_LAYOUT, INDIRECT_DESC,
        // EVENT_IDX, NOTIFY_ON_EMPTY, LOG_ALL, ACCESS_PLATFORM, SEQPACKET): VERSION_1 | INDIRECT_DESC.
        let linux =
            version_1 | (1 << 27) | indirect | event_idx | (1 << 24) | (1 << 26) | (1 << 33) | 2;
        assert_eq!(device(CID, linux).features(), version_1 | indirect);
        assert_eq!(device(CID, u64::MAX).features(), version_1 | indirect);
        // A kernel without indirect descriptors; VERSION_1 is offered whatever the kernel says.
        assert_eq!(device(CID, event_idx).features(), version_1);
        assert_eq!(device(CID, 0).features(), version_1);
        let mut v = device(CID, linux);
        v.set_acked_features(u64::MAX);
        assert_eq!(v.acked_features, version_1 | indirect);
        v.reset();
        assert_eq!(v.acked_features, 0);
    }

    #[test]
    fn cid_validation() {
        for bad in [
            0,
            1,
            2,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            let e = check_cid(bad).unwrap_err();
            assert!(
                matches!(e, VsockError::InvalidCid(c) if c == bad),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(&format!("CID {bad}:")), "{e}");
        }
        for good in [3, 4, 1000, u64::from(u32::MAX) - 1] {
            assert_eq!(check_cid(good).unwrap(), good);
        }
        // Refused before the host is asked (this works without /dev/vhost-vsock).
        let mem = mem();
        for bad in [2, u64::from(u32::MAX)] {
            assert!(matches!(
                Vsock::new(bad, &mem),
                Err(VsockError::InvalidCid(c)) if c == bad
            ));
        }
    }

    #[test]
    fn host_errors_are_explained() {
        let os = |errno| io::Error::from_raw_os_error(errno);
        let e = open_error(vhost::Error::VhostOpen(os(libc::ENOENT)));
        assert!(matches!(e, VsockError::NoDevice(_)));
        assert!(e.to_string().starts_with("/dev/vhost-vsock: "), "{e}");
        assert!(e.to_string().ends_with("(modprobe vhost_vsock)"), "{e}");
        let e = open_error(vhost::Error::VhostOpen(os(libc::EACCES)));
        assert!(matches!(e, VsockError::Open(_)), "{e}");
        let e = cid_error(7, vhost::Error::IoctlError(os(libc::EADDRINUSE)));
        assert!(matches!(e, VsockError::CidInUse(7)));
        assert!(
            e.to_string()
                .starts_with("guest CID 7 is already used by another VM"),
            "{e}"
        );
        let e = cid_error(7, vhost::Error::IoctlError(os(libc::EINVAL)));
        assert!(
            e.to_string()
                .starts_with("vhost-vsock: VHOST_VSOCK_SET_GUEST_CID: "),
            "{e}"
        );
        // Without the device, Vsock::new says how to get it.
        if !std::path::Path::new("/dev/vhost-vsock").exists() {
            let e = Vsock::new(CID, &mem()).err().unwrap();
            assert!(matches!(e, VsockError::NoDevice(_)), "{e}");
        }
    }

    #[test]
    fn kernel_queues_and_the_event_queue() {
        let mem = mem();
        let mut v = device(CID, 0);
        assert!(v.owns_queue_notifications());
        assert_eq!(v.backend_fd(), None);
        assert_eq!(v.counters(), vec![]);
        // Event queue buffers are kept: never used.
        let mq = MockSplitQueue::new(&mem, 16);
        mq.add_desc_chains(
            &[RawDescriptor::from(SplitDescriptor::new(
                0x8000, 8, F_WRITE, 0,
            ))],
            0,
        )
        .unwrap();
        let mut q: Queue = mq.create_queue().unwrap();
        for i in 0..4 {
            assert!(!v.process_queue(i, &mut q, &mem));
        }
        assert_eq!(mq.used().idx().load(), 0);
        assert_eq!(q.next_avail(), 0);
        let mut qs: Vec<Queue> = (0..3).map(|_| mq.create_queue().unwrap()).collect();
        assert_eq!(v.process_backend(&mut qs, &mem), BackendStatus::default());
        // Activation needs the receive and transmit queues ready, and the kernel.
        let kicks: Vec<EventFd> = (0..3).map(|_| EventFd::new(0).unwrap()).collect();
        let e = v
            .activate(&[Queue::new(256).unwrap()], &kicks, &mem)
            .unwrap_err();
        assert!(e.contains("must both be ready"), "{e}");
        let e = v.activate(&qs, &kicks, &mem).unwrap_err();
        assert!(e.contains("no backend"), "{e}");
    }

    #[test]
    fn through_the_transport() {
        let mem = mem();
        let line = Arc::new(Line::default());
        let mut t = MmioTransport::new(
            Box::new(device(0x1234_5678, u64::MAX)),
            mem.clone(),
            Arc::new(VirtioInterrupt::new(line)),
        )
        .unwrap();
        let r = |t: &mut MmioTransport, off: u64| {
            let mut b = [0u8; 4];
            t.read(off, &mut b);
            u32::from_le_bytes(b)
        };
        assert_eq!(r(&mut t, reg::DEVICE_ID), 19);
        assert_eq!(r(&mut t, reg::CONFIG), 0x1234_5678);
        assert_eq!(r(&mut t, reg::CONFIG + 4), 0);
        assert_eq!(
            r(&mut t, reg::DEVICE_FEATURES),
            1 << VIRTIO_RING_F_INDIRECT_DESC
        );
        t.write(reg::DEVICE_FEATURES_SEL, &1u32.to_le_bytes());
        assert_eq!(r(&mut t, reg::DEVICE_FEATURES), 1);
        for i in 0u32..3 {
            t.write(reg::QUEUE_SEL, &i.to_le_bytes());
            assert_eq!(r(&mut t, reg::QUEUE_NUM_MAX), 256);
        }
        assert!(t.owns_queue_notifications());
        assert_eq!(t.counters(), vec![]);
        assert_eq!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    }
}
