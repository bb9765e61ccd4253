//! The in-kernel data path of virtio-net (`vhost=on`): /dev/vhost-net moves frames between the guest's
//! rings and the tap itself. rvvmm hands it guest RAM, the rings at DRIVER_OK, the queue eventfds KVM
//! signals (ioeventfds) as kicks, and one call eventfd that the I/O thread turns into the device's interrupt
//! level (the irqchip lines are levels, see [`crate::interrupt`]).
//!
//! [`VhostKern`] is the part every in-kernel vhost backend shares (ownership, memory table, call eventfd,
//! ring hand-over, call relay); [`crate::vhost_vsock`] uses it too.

use std::fs::File;
use std::sync::Arc;

use vhost::net::VhostNet as _;
use vhost::vhost_kern::net::Net as KernNet;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::BackendStatus;

/// A step of driving an in-kernel vhost backend that failed (shared by the vhost backends).
#[derive(Debug, thiserror::Error)]
pub enum VhostError {
    /// A vhost ioctl failed.
    #[error("{what}: {source}")]
    Ioctl {
        /// What rvvmm was doing.
        what: &'static str,
        /// The error.
        source: vhost::Error,
    },
    /// An eventfd could not be created.
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
}

/// Maps a vhost error to a [`VhostError::Ioctl`] saying what rvvmm was doing.
pub(crate) fn verr(what: &'static str) -> impl FnOnce(vhost::Error) -> VhostError {
    move |source| VhostError::Ioctl { what, source }
}

/// An in-kernel vhost backend (`B`) that rvvmm owns, with guest RAM mapped and one call eventfd for all
/// its rings. [`VhostNetBackend`] and [`crate::vhost_vsock::VhostVsockBackend`] are its two kinds.
pub struct VhostKern<B> {
    backend: B,
    call: EventFd,
    features: u64,
    /// The kernel runs the rings.
    running: bool,
}

impl<B: VhostBackend> VhostKern<B> {
    /// Becomes the owner of `backend` (just opened), reads the features it supports, gives it the guest
    /// RAM `mem` and creates the call eventfd.
    pub(crate) fn setup(backend: B, mem: &GuestMemoryMmap) -> Result<VhostKern<B>, VhostError> {
        backend.set_owner().map_err(verr("VHOST_SET_OWNER"))?;
        let features = backend.get_features().map_err(verr("VHOST_GET_FEATURES"))?;
        let regions: Vec<VhostUserMemoryRegionInfo> = mem
            .iter()
            .map(|r| VhostUserMemoryRegionInfo {
                guest_phys_addr: r.start_addr().0,
                memory_size: r.len(),
                userspace_addr: r.as_ptr() as u64,
                mmap_offset: 0,
                mmap_handle: -1,
            })
            .collect();
        backend
            .set_mem_table(&regions)
            .map_err(verr("VHOST_SET_MEM_TABLE"))?;
        let call = EventFd::new(EFD_NONBLOCK).map_err(VhostError::EventFd)?;
        Ok(VhostKern {
            backend,
            call,
            features,
            running: false,
        })
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    /// Records whether the kernel runs the rings.
    pub(crate) fn set_running(&mut self, running: bool) {
        self.running = running;
    }

    /// Whether the kernel runs the rings (started and not stopped since).
    pub fn running(&self) -> bool {
        self.running
    }

    /// The virtio feature bits the kernel's data path supports (ring layout, VERSION_1, ...).
    pub fn features(&self) -> u64 {
        self.features
    }

    /// The eventfd the kernel signals when it used buffers (all rings).
    pub fn call_fd(&self) -> &EventFd {
        &self.call
    }

    /// Serves [`VhostKern::call_fd`] becoming readable: consumes its count (the kernel already put the
    /// buffers in the used rings and applied notification suppression) and asks for an interrupt.
    pub fn signalled(&self) -> BackendStatus {
        // EAGAIN only means another read got the count first.
        let _ = self.call.read();
        BackendStatus {
            notify: true,
            stalled: false,
        }
    }

    /// Sets the negotiated `features` (those the kernel supports) and hands over ring i of `queues`
    /// (size, addresses, next available index), kicked by `kicks[i]`, calling the call eventfd.
    pub(crate) fn set_rings(
        &self,
        features: u64,
        queues: &[Queue],
        kicks: &[EventFd],
    ) -> Result<(), VhostError> {
        self.backend
            .set_features(features & self.features)
            .map_err(verr("VHOST_SET_FEATURES"))?;
        for (i, (q, kick)) in queues.iter().zip(kicks).enumerate() {
            let config = VringConfigData {
                queue_max_size: q.max_size(),
                queue_size: q.size(),
                flags: 0,
                desc_table_addr: q.desc_table(),
                used_ring_addr: q.used_ring(),
                avail_ring_addr: q.avail_ring(),
                log_addr: None,
            };
            self.backend
                .set_vring_num(i, q.size())
                .map_err(verr("VHOST_SET_VRING_NUM"))?;
            self.backend
                .set_vring_addr(i, &config)
                .map_err(verr("VHOST_SET_VRING_ADDR"))?;
            self.backend
                .set_vring_base(i, q.next_avail())
                .map_err(verr("VHOST_SET_VRING_BASE"))?;
            self.backend
                .set_vring_call(i, &self.call)
                .map_err(verr("VHOST_SET_VRING_CALL"))?;
            self.backend
                .set_vring_kick(i, kick)
                .map_err(verr("VHOST_SET_VRING_KICK"))?;
        }
        Ok(())
    }
}

/// Errors from the vhost-net backend.
#[derive(Debug, thiserror::Error)]
pub enum VhostNetError {
    /// /dev/vhost-net cannot be opened or a vhost ioctl failed.
    #[error("vhost-net: {what}: {source}")]
    Vhost {
        /// What rvvmm was doing.
        what: &'static str,
        /// The error.
        source: vhost::Error,
    },
    /// An eventfd could not be created.
    #[error("vhost-net: cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
}

impl From<VhostError> for VhostNetError {
    fn from(e: VhostError) -> VhostNetError {
        match e {
            VhostError::Ioctl { what, source } => VhostNetError::Vhost { what, source },
            VhostError::EventFd(e) => VhostNetError::EventFd(e),
        }
    }
}

/// A vhost-net instance for one network card.
pub type VhostNetBackend = VhostKern<KernNet<Arc<GuestMemoryMmap>>>;

impl VhostNetBackend {
    /// Opens /dev/vhost-net, becomes its owner and gives it the guest RAM `mem`.
    pub fn new(mem: &GuestMemoryMmap) -> Result<VhostNetBackend, VhostNetError> {
        let net =
            KernNet::new(Arc::new(mem.clone())).map_err(verr("cannot open /dev/vhost-net"))?;
        Ok(VhostKern::setup(net, mem)?)
    }

    /// Starts the data path: the negotiated `features`, the rings of `queues`, the queue eventfds `kicks`,
    /// and `tap` as the backend of both queues.
    pub fn start(
        &mut self,
        features: u64,
        queues: &[Queue],
        kicks: &[EventFd],
        tap: &File,
    ) -> Result<(), VhostNetError> {
        self.set_rings(features, queues, kicks)?;
        for i in 0..queues.len() {
            self.backend
                .set_backend(i, Some(tap))
                .map_err(verr("VHOST_NET_SET_BACKEND"))?;
        }
        self.running = true;
        Ok(())
    }

    /// Stops the data path (device reset); [`VhostNetBackend::start`] may be called again.
    pub fn stop(&mut self, num_queues: usize) {
        if !self.running {
            return;
        }
        for i in 0..num_queues {
            if let Err(e) = self.backend.set_backend(i, None) {
                log::warn!("vhost-net: cannot detach the tap from queue {i}: {e}");
            }
        }
        self.running = false;
    }
}
