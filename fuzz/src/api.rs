//! Fuzz target `api`: bytes from an API client (the orchestrator's side of the socket) through rvvmm's
//! HTTP reader, the router and, for `vm.create`, the JSON configuration and its conversion into the
//! VMM's configuration. Every request gets an answer or an error, never a panic; an accepted
//! configuration survives the round trip through what `vm.info` reports.

use std::io::{Read, Write};

use api::http::Connection;
use api::routes::{response_of, route, ApiRequest};
use vmm::api_config::{from_api, to_api};
use vmm::config::VmConfig;

/// A client connection: reads the input, swallows the answers.
struct Wire<'a> {
    input: &'a [u8],
    written: usize,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Small reads exercise requests that arrive in pieces.
        let n = buf.len().min(self.input.len()).min(997);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one input: every request on the connection, until it ends or breaks the protocol.
pub fn run(data: &[u8]) {
    let mut conn = Connection::new(Wire {
        input: data,
        written: 0,
    });
    let defaults = VmConfig::default();
    for _ in 0..64 {
        let req = match conn.read_request() {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let answer = match route(&req) {
            Ok(ApiRequest::VmCreate(cfg)) => {
                if let Ok(config) = from_api(&cfg, &defaults) {
                    let again = from_api(&to_api(&config), &defaults)
                        .expect("what vm.info reports is accepted by vm.create");
                    assert_eq!(again, config, "vm.info's config means the same VM");
                }
                response_of("vm.create", &Ok(None))
            }
            Ok(r) => response_of(r.name(), &Ok(None)),
            Err(e) => e.response(),
        };
        let _ = answer.write_to(conn.stream(), req.close);
    }
}

/// Seeds: pipelined requests, a full vm.create, a few near misses.
pub fn seeds() -> Vec<Vec<u8>> {
    let create = r#"{"cpus": {"boot_vcpus": 2, "max_vcpus": 2}, "memory": {"size": 268435456},
 "payload": {"kernel": "/guest/Image", "initramfs": "/guest/initrd", "cmdline": "console=ttyS0"},
 "disks": [{"path": "/a.img", "readonly": true, "serial": "d0"}],
 "net": [{"tap": "tap0", "mac": "52:54:00:00:00:01", "vhost": true}],
 "rng": {"src": "/dev/urandom"}, "vsock": {"cid": 42},
 "devices": [{"path": "/sys/bus/pci/devices/0000:00:02.0"}], "serial": {"mode": "Tty"}}"#;
    let put = |name: &str, body: &str| {
        format!(
            "PUT /api/v1/{name} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    [
        put("vm.create", create),
        format!(
            "GET /api/v1/vmm.ping HTTP/1.1\r\n\r\n{}GET /api/v1/vm.info HTTP/1.1\r\n\r\n",
            put("vm.boot", "")
        ),
        put("vm.create", r#"{"payload": {"kernel": "/k"}, "disk": []}"#),
        put(
            "vm.create",
            r#"{"payload": {"kernel": "/k"}, "memory": {"size": 1, "hugepages": true}}"#,
        ),
        "POST /api/v1/vm.pause HTTP/1.0\r\nConnection: close\r\n\r\n".to_string(),
        "PUT /api/v1/vm.create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}
