//! The I/O thread: one event-manager loop serving the queue notifications of every virtio device, and
//! the backend fds of devices that have one (e.g. a tap), off the vcpu threads.

use std::os::unix::io::RawFd;
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};

use vmm_sys_util::eventfd::EventFd;

use crate::MmioTransport;

/// The `Events` data of a device's backend fd (queue eventfds use their queue index).
pub const BACKEND_DATA: u32 = u32::MAX;

/// The `Events` data of a device's first rate-limiter timer; timer `k` has `TIMER_DATA - k`.
const TIMER_DATA: u32 = u32::MAX - 1;

/// Most timers a device may have (their `Events` data stays far above any queue index).
const MAX_TIMERS: usize = 16;

/// The queue whose notification resumes polling a stalled backend (the receive queue of virtio-net:
/// the driver made receive buffers available).
const BACKEND_RESUME_QUEUE: usize = crate::mmio::RESUME_QUEUE;

/// Serves one device's queue eventfds and its backend fd.
pub struct QueueNotifications {
    transport: Arc<Mutex<MmioTransport>>,
    /// The device's backend fd, if it has one.
    backend: Option<RawFd>,
    /// Whether `backend` is in the epoll set (it is taken out while the device is stalled).
    backend_watched: bool,
}

impl QueueNotifications {
    /// A subscriber for `transport`'s queues (and its backend fd, if the device has one).
    pub fn new(transport: Arc<Mutex<MmioTransport>>) -> QueueNotifications {
        QueueNotifications {
            transport,
            backend: None,
            backend_watched: false,
        }
    }

    /// Puts the backend fd (back) in the epoll set.
    fn watch_backend(&mut self, ops: &mut EventOps) {
        let Some(fd) = self.backend else {
            return;
        };
        if self.backend_watched {
            return;
        }
        match ops.add(Events::with_data_raw(fd, BACKEND_DATA, EventSet::IN)) {
            Ok(()) => self.backend_watched = true,
            Err(e) => log::error!("virtio: cannot watch device backend fd {fd}: {e}"),
        }
    }

    /// Takes the backend fd out of the epoll set until the resume queue is notified.
    fn unwatch_backend(&mut self, ops: &mut EventOps) {
        let Some(fd) = self.backend else {
            return;
        };
        if !self.backend_watched {
            return;
        }
        match ops.remove(Events::with_data_raw(fd, BACKEND_DATA, EventSet::IN)) {
            Ok(()) => self.backend_watched = false,
            Err(e) => log::error!("virtio: cannot stop watching device backend fd {fd}: {e}"),
        }
    }
}

impl MutEventSubscriber for QueueNotifications {
    fn init(&mut self, ops: &mut EventOps) {
        let t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        let queue_fds = if t.owns_queue_notifications() {
            &[][..]
        } else {
            t.queue_eventfds()
        };
        for (i, fd) in queue_fds.iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(fd, i as u32, EventSet::IN)) {
                log::error!("virtio: cannot watch queue {i}: {e}");
            }
        }
        for (k, fd) in t.timer_fds().into_iter().take(MAX_TIMERS).enumerate() {
            let data = TIMER_DATA - k as u32;
            if let Err(e) = ops.add(Events::with_data_raw(fd, data, EventSet::IN)) {
                log::error!("virtio: cannot watch rate limiter timer {k}: {e}");
            }
        }
        self.backend = t.backend_fd();
        drop(t);
        self.watch_backend(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.data() == BACKEND_DATA {
            let status = self
                .transport
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .process_backend();
            if status.stalled {
                self.unwatch_backend(ops);
            }
            return;
        }
        let k = TIMER_DATA.wrapping_sub(events.data()) as usize;
        if k < MAX_TIMERS {
            self.transport
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .process_timer(k);
            // A receive path the limiter stopped goes on (epoll is level-triggered: frames waiting in
            // the backend are reported at once).
            self.watch_backend(ops);
            return;
        }
        let index = events.data() as usize;
        let mut t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fd) = t.queue_eventfds().get(index) {
            // Consume the notification count; EAGAIN just means it was already consumed.
            let _ = fd.read();
        }
        t.process_queue(index);
        drop(t);
        if index == BACKEND_RESUME_QUEUE {
            // The driver may have made buffers available: poll the backend again (epoll is
            // level-triggered, so data that arrived meanwhile is reported at once).
            self.watch_backend(ops);
        }
    }
}

/// A control eventfd of the I/O thread: when it is signalled, the thread runs the handler (between
/// queue notifications, holding no device lock), e.g. to park while the VM is paused.
pub struct IoControl {
    /// Signalled by the controller.
    pub wake: Arc<EventFd>,
    /// Run on the I/O thread after each wake-up.
    pub handler: Box<dyn FnMut() + Send>,
}

impl MutEventSubscriber for IoControl {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.wake.as_ref(), EventSet::IN)) {
            log::error!("virtio: cannot watch the I/O thread's control eventfd: {e}");
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.wake.read();
        (self.handler)();
    }
}

/// The event loop type.
pub type IoEventManager = EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>>;

/// Starts the I/O thread serving `transports` (and `control`, if given); it runs `on_start` first.
pub fn spawn(
    transports: &[Arc<Mutex<MmioTransport>>],
    control: Option<IoControl>,
    on_start: devices::ThreadHook,
) -> std::io::Result<()> {
    let mut manager = IoEventManager::new().map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    for t in transports {
        let sub: Arc<Mutex<dyn MutEventSubscriber + Send>> =
            Arc::new(Mutex::new(QueueNotifications::new(t.clone())));
        manager.add_subscriber(sub);
    }
    if let Some(control) = control {
        manager.add_subscriber(Arc::new(Mutex::new(control)));
    }
    std::thread::Builder::new()
        .name("virtio-io".into())
        .spawn(move || {
            on_start();
            loop {
                if let Err(e) = manager.run() {
                    log::error!("virtio I/O loop: {e:?}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        })?;
    Ok(())
}
