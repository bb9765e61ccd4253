//! Fuzz target `virtio_net`: a fuzzed driver ([`crate::virtio_driver`]) against virtio-net whose tap is
//! one end of a datagram socket pair; the harness plays the host network on the other end, sending
//! frames the input describes (virtio-net header included, so offload requests of any kind) and
//! draining what the guest transmits. Receive and transmit chains of any shape, mergeable buffers,
//! offload flags, control of every register.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;

use virtio::tap::Tap;
use virtio::{MmioTransport, Net};

use crate::input::Builder;
use crate::virtio_driver::{self, op, seed, Backend};

/// The host network: the other end of the card's socket pair.
struct HostNet {
    peer: UnixDatagram,
    frames_to_host: usize,
}

impl HostNet {
    fn drain(&mut self) {
        let mut buf = vec![0u8; 70_000];
        while self.peer.recv(&mut buf).is_ok() {
            self.frames_to_host += 1;
        }
    }
}

impl Backend for HostNet {
    /// `bytes`: the virtio-net header and frame start; its first byte after the header, times 64, pads
    /// the frame (so frames up to ~16 KiB).
    fn data(&mut self, transport: &mut MmioTransport, bytes: &[u8]) {
        let mut frame = bytes.to_vec();
        if let Some(&pad) = bytes.get(12) {
            frame.resize(frame.len() + usize::from(pad) * 64, 0x5a);
        }
        let _ = self.peer.send(&frame);
        transport.process_backend();
        self.drain();
    }

    fn poll(&mut self, transport: &mut MmioTransport) {
        transport.process_backend();
        self.drain();
    }
}

/// What one run did.
pub struct Report {
    /// Frames the card transmitted to the host.
    pub frames_to_host: usize,
    /// Used index of the receive queue.
    pub rx_used: u16,
}

/// Runs one input and reports what crossed the card.
pub fn run_and_report(data: &[u8]) -> Report {
    let (a, b) = UnixDatagram::pair().expect("socket pair");
    b.set_nonblocking(true).expect("non-blocking peer");
    let tap = Tap::from_fd(OwnedFd::from(a), "fuzz0").expect("tap from a socket");
    let net = Net::new(tap, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let mut host = HostNet {
        peer: b,
        frames_to_host: 0,
    };
    let mem = virtio_driver::run(data, Box::new(net), &mut host);
    host.drain();
    Report {
        frames_to_host: host.frames_to_host,
        rx_used: virtio_driver::used_idx(&mem, 0),
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    run_and_report(data);
}

/// Seeds: one transmitted frame (header + 60 bytes); one frame received into a 2 KiB buffer with
/// all features (mergeable buffers, offloads); a received frame with a checksum-offload header.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let frame: Vec<u8> = (0..72u8).collect();
    let mut b = Builder::default();
    b.u8(0).u8(0);
    let mut hdr_and_frame = vec![0u8; 12];
    hdr_and_frame.extend_from_slice(&frame[..60]);
    seed::mem_write(&mut b, 0x7000, &hdr_and_frame);
    seed::descriptor(&mut b, 1, 0, 0x7000, 72, 0, 0);
    seed::publish(&mut b, 1, 0, 0);
    out.push(b.0);

    for (features, header) in [
        (crate::virtio_driver::flags::ALL_FEATURES, [0u8; 12]),
        (
            crate::virtio_driver::flags::ALL_FEATURES,
            [1, 0, 0, 0, 0, 0, 14, 0, 16, 0, 0, 0],
        ),
    ] {
        let mut b = Builder::default();
        b.u8(0).u8(features);
        seed::descriptor(&mut b, 0, 0, 0x8000, 2048, seed::F_WRITE, 0);
        seed::publish(&mut b, 0, 0, 0);
        let mut datagram = header.to_vec();
        datagram.push(4);
        datagram.extend_from_slice(&frame);
        b.u8(op::BACKEND_DATA).short_bytes(&datagram);
        out.push(b.0);
    }
    out
}
