//! The I/O thread: one event-manager loop serving the queue notifications of every virtio device, off the
//! vcpu threads.

use std::sync::{Arc, Mutex};

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};

use crate::MmioTransport;

/// Serves one device's queue eventfds.
pub struct QueueNotifications {
    transport: Arc<Mutex<MmioTransport>>,
}

impl QueueNotifications {
    /// A subscriber for `transport`'s queues.
    pub fn new(transport: Arc<Mutex<MmioTransport>>) -> QueueNotifications {
        QueueNotifications { transport }
    }
}

impl MutEventSubscriber for QueueNotifications {
    fn init(&mut self, ops: &mut EventOps) {
        let t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        for (i, fd) in t.queue_eventfds().iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(fd, i as u32, EventSet::IN)) {
                log::error!("virtio: cannot watch queue {i}: {e}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let index = events.data() as usize;
        let mut t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fd) = t.queue_eventfds().get(index) {
            // Consume the notification count; EAGAIN just means it was already consumed.
            let _ = fd.read();
        }
        t.process_queue(index);
    }
}

/// The event loop type.
pub type IoEventManager = EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>>;

/// Starts the I/O thread serving `transports`.
pub fn spawn(transports: &[Arc<Mutex<MmioTransport>>]) -> std::io::Result<()> {
    let mut manager = IoEventManager::new().map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    for t in transports {
        let sub: Arc<Mutex<dyn MutEventSubscriber + Send>> =
            Arc::new(Mutex::new(QueueNotifications::new(t.clone())));
        manager.add_subscriber(sub);
    }
    std::thread::Builder::new()
        .name("virtio-io".into())
        .spawn(move || loop {
            if let Err(e) = manager.run() {
                log::error!("virtio I/O loop: {e:?}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })?;
    Ok(())
}
