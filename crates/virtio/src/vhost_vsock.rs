//! The in-kernel data path of virtio-vsock: /dev/vhost-vsock moves the packets between the guest's
//! receive and transmit rings and the host's AF_VSOCK sockets itself, routing by the guest's CID. rvvmm
//! hands it guest RAM and the CID at creation, the two rings at DRIVER_OK with the queue eventfds KVM
//! signals (ioeventfds) as kicks, and one call eventfd that the I/O thread turns into the device's
//! interrupt level, as for vhost-net (the shared part is [`crate::vhost_net::VhostKern`]).

use std::sync::Arc;

use vhost::vhost_kern::vsock::Vsock as KernVsock;
use vhost::vsock::VhostVsock as _;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::vhost_net::{verr, VhostKern};
use crate::vsock::VsockError;

/// Number of rings the kernel runs: receive (0) and transmit (1); the event queue stays with rvvmm.
pub const VHOST_QUEUES: usize = 2;

/// What opening /dev/vhost-vsock failed with, as a [`VsockError`]: a host without the device gets the
/// hint to load its module.
pub(crate) fn open_error(e: vhost::Error) -> VsockError {
    match e {
        vhost::Error::VhostOpen(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO)
            ) =>
        {
            VsockError::NoDevice(e)
        }
        vhost::Error::VhostOpen(e) => VsockError::Open(e),
        source => VsockError::Vhost {
            what: "cannot open /dev/vhost-vsock",
            source,
        },
    }
}

/// What VHOST_VSOCK_SET_GUEST_CID failed with, as a [`VsockError`]: a CID another VM (or the host)
/// has is said so.
pub(crate) fn cid_error(cid: u64, e: vhost::Error) -> VsockError {
    match e {
        vhost::Error::IoctlError(ref io) if io.raw_os_error() == Some(libc::EADDRINUSE) => {
            VsockError::CidInUse(cid)
        }
        source => VsockError::Vhost {
            what: "VHOST_VSOCK_SET_GUEST_CID",
            source,
        },
    }
}

/// A vhost-vsock instance for one vsock device; it holds the guest's CID until dropped.
pub type VhostVsockBackend = VhostKern<KernVsock<Arc<GuestMemoryMmap>>>;

impl VhostVsockBackend {
    /// Opens /dev/vhost-vsock, becomes its owner, gives it the guest RAM `mem` and the guest's CID
    /// `cid` (checked by the caller).
    pub fn new(cid: u64, mem: &GuestMemoryMmap) -> Result<VhostVsockBackend, VsockError> {
        let vsock = KernVsock::new(Arc::new(mem.clone())).map_err(open_error)?;
        let kern = VhostKern::setup(vsock, mem)?;
        kern.backend()
            .set_guest_cid(cid)
            .map_err(|e| cid_error(cid, e))?;
        Ok(kern)
    }

    /// Starts the data path: the negotiated `features`, the receive and transmit rings (`queues` 0 and
    /// 1) and their queue eventfds `kicks`. A running data path is stopped first.
    pub fn start(
        &mut self,
        features: u64,
        queues: &[Queue],
        kicks: &[EventFd],
    ) -> Result<(), VsockError> {
        self.stop();
        let (Some(queues), Some(kicks)) = (queues.get(..VHOST_QUEUES), kicks.get(..VHOST_QUEUES))
        else {
            return Err(VsockError::Queues);
        };
        self.set_rings(features, queues, kicks)?;
        self.backend()
            .start()
            .map_err(verr("VHOST_VSOCK_SET_RUNNING"))?;
        self.set_running(true);
        Ok(())
    }

    /// Stops the data path (device reset, shutdown): the kernel lets go of the rings, which
    /// [`VhostVsockBackend::start`] may hand over again.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        if let Err(e) = self.backend().stop() {
            log::warn!("vhost-vsock: cannot stop the data path: {e}");
        }
        self.set_running(false);
    }
}
