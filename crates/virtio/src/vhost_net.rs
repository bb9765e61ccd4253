//! The in-kernel data path of virtio-net (`vhost=on`): /dev/vhost-net moves frames between the guest's
//! rings and the tap itself. rvvmm hands it guest RAM, the rings at DRIVER_OK, the queue eventfds KVM
//! signals (ioeventfds) as kicks, and one call eventfd that the I/O thread turns into the device's interrupt
//! level (the irqchip lines are levels, see [`crate::interrupt`]).

use std::fs::File;
use std::sync::Arc;

use vhost::net::VhostNet as _;
use vhost::vhost_kern::net::Net as KernNet;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

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

fn verr(what: &'static str) -> impl FnOnce(vhost::Error) -> VhostNetError {
    move |source| VhostNetError::Vhost { what, source }
}

/// A vhost-net instance for one network card.
pub struct VhostNetBackend {
    net: KernNet<Arc<GuestMemoryMmap>>,
    call: EventFd,
    features: u64,
    running: bool,
}

impl VhostNetBackend {
    /// Opens /dev/vhost-net, becomes its owner and gives it the guest RAM `mem`.
    pub fn new(mem: &GuestMemoryMmap) -> Result<VhostNetBackend, VhostNetError> {
        let net =
            KernNet::new(Arc::new(mem.clone())).map_err(verr("cannot open /dev/vhost-net"))?;
        net.set_owner().map_err(verr("VHOST_SET_OWNER"))?;
        let features = net.get_features().map_err(verr("VHOST_GET_FEATURES"))?;
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
        net.set_mem_table(&regions)
            .map_err(verr("VHOST_SET_MEM_TABLE"))?;
        let call = EventFd::new(EFD_NONBLOCK).map_err(VhostNetError::EventFd)?;
        Ok(VhostNetBackend {
            net,
            call,
            features,
            running: false,
        })
    }

    /// The virtio feature bits the kernel's data path supports (ring layout, VERSION_1, MRG_RXBUF, ...).
    pub fn features(&self) -> u64 {
        self.features
    }

    /// The eventfd vhost signals when it used buffers (all queues).
    pub fn call_fd(&self) -> &EventFd {
        &self.call
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
        self.net
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
            self.net
                .set_vring_num(i, q.size())
                .map_err(verr("VHOST_SET_VRING_NUM"))?;
            self.net
                .set_vring_addr(i, &config)
                .map_err(verr("VHOST_SET_VRING_ADDR"))?;
            self.net
                .set_vring_base(i, q.next_avail())
                .map_err(verr("VHOST_SET_VRING_BASE"))?;
            self.net
                .set_vring_call(i, &self.call)
                .map_err(verr("VHOST_SET_VRING_CALL"))?;
            self.net
                .set_vring_kick(i, kick)
                .map_err(verr("VHOST_SET_VRING_KICK"))?;
        }
        for i in 0..queues.len() {
            self.net
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
            if let Err(e) = self.net.set_backend(i, None) {
                log::warn!("vhost-net: cannot detach the tap from queue {i}: {e}");
            }
        }
        self.running = false;
    }
}
