//! The HTTP/1.1 subset the API needs: one request at a time on a stream (keep-alive), a head parsed by
//! httparse, a body of `Content-Length` bytes (no chunked uploads), responses with `Content-Length`.
//!
//! Limits keep a broken or hostile client from holding the API: heads up to [`MAX_HEAD`] bytes, bodies up
//! to [`MAX_BODY`] bytes; the server gives each request a deadline (`server.rs`). On a non-blocking stream
//! [`Connection::read_request`] returns the `WouldBlock` error when the request is not all there yet and
//! keeps what it read: call it again when more arrives.

use std::io::{Read, Write};

/// Largest request head (request line + headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;

/// A request as the routes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (`GET`, `PUT`, ...).
    pub method: String,
    /// The path, without a query string.
    pub path: String,
    /// The body; `None` when there is none (no `Content-Length`, or 0).
    pub body: Option<Vec<u8>>,
    /// Whether the client asked to close the connection after this request.
    pub close: bool,
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The head is not HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The head or body is larger than allowed.
    #[error("request too large: {0}")]
    TooLarge(&'static str),
    /// The client sent a chunked body, which the API does not take.
    #[error("chunked request bodies are not supported (send Content-Length)")]
    Chunked,
    /// The connection ended in the middle of a request.
    #[error("connection closed in the middle of a request")]
    Truncated,
    /// Reading failed (including a read timeout).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A request reader on one connection; keeps bytes of the next request that arrived with this one.
pub struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Connection<S> {
    /// A connection on `stream`.
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream,
            buf: Vec::new(),
        }
    }

    /// The underlying stream.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The underlying stream, shared.
    pub fn stream_ref(&self) -> &S {
        &self.stream
    }

    /// Whether bytes of a request not complete yet are buffered.
    pub fn has_partial_request(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, HttpError> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next request, or `None` when the client closed the connection between requests. An error
    /// of the stream (e.g. `WouldBlock`) leaves the bytes read so far buffered for the next call.
    pub fn read_request(&mut self) -> Result<Option<Request>, HttpError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let status = req
                .parse(&self.buf)
                .map_err(|e| HttpError::Malformed(e.to_string()))?;
            if let httparse::Status::Complete(head_len) = status {
                let method = req.method.unwrap_or_default().to_string();
                let target = req.path.unwrap_or_default();
                let path = target.split('?').next().unwrap_or_default().to_string();
                let mut length = 0usize;
                let mut close = req.version == Some(0);
                for h in req.headers.iter() {
                    let value = String::from_utf8_lossy(h.value);
                    let value = value.trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = value.parse().map_err(|_| {
                            HttpError::Malformed(format!("bad Content-Length '{value}'"))
                        })?;
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(HttpError::Chunked);
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    }
                }
                if length > MAX_BODY {
                    return Err(HttpError::TooLarge("body"));
                }
                while self.buf.len() < head_len + length {
                    if !self.fill()? {
                        return Err(HttpError::Truncated);
                    }
                }
                let body = (length > 0).then(|| self.buf[head_len..head_len + length].to_vec());
                self.buf.drain(..head_len + length);
                return Ok(Some(Request {
                    method,
                    path,
                    body,
                    close,
                }));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HttpError::TooLarge("head"));
            }
            if !self.fill()? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::Truncated)
                };
            }
        }
    }
}

/// A response: status and an optional JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// JSON body (`None`: no body).
    pub body: Option<String>,
}

impl Response {
    /// A response without a body.
    pub fn empty(status: u16) -> Response {
        Response { status, body: None }
    }

    /// A response with a JSON body.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            body: Some(body),
        }
    }

    /// The bytes sent on the wire. As cloud-hypervisor: every status but 204 carries `Content-Type:
    /// application/json` and `Content-Length` (0 without a body).
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nServer: rvvmm API\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            if close { "close" } else { "keep-alive" }
        );
        let body = self.body.as_deref().unwrap_or("");
        if self.status != 204 {
            out.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        out.push_str("\r\n");
        if self.status != 204 {
            out.push_str(body);
        }
        out.into_bytes()
    }

    /// Writes the response to `w`.
    pub fn write_to(&self, w: &mut impl Write, close: bool) -> std::io::Result<()> {
        w.write_all(&self.to_bytes(close))?;
        w.flush()
    }
}

/// The reason phrase of the statuses the API uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A stream that yields its input in small pieces and records what is written.
    struct Trickle {
        input: Vec<u8>,
        pos: usize,
        step: usize,
        out: Vec<u8>,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.input.len() - self.pos);
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn conn(input: &[u8], step: usize) -> Connection<Trickle> {
        Connection::new(Trickle {
            input: input.to_vec(),
            pos: 0,
            step,
            out: Vec::new(),
        })
    }

    #[test]
    fn pipelined_requests_in_small_pieces() {
        let wire = b"PUT /api/v1/vm.create HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}GET /api/v1/vm.info?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n";
        for step in [1, 3, 4096] {
            let mut c = conn(wire, step);
            let a = c.read_request().unwrap().unwrap();
            assert_eq!(
                (a.method.as_str(), a.path.as_str()),
                ("PUT", "/api/v1/vm.create")
            );
            assert_eq!(a.body.as_deref(), Some(&b"{\"a\":1}"[..]));
            assert!(!a.close);
            let b = c.read_request().unwrap().unwrap();
            assert_eq!(
                (b.path.as_str(), b.body, b.close),
                ("/api/v1/vm.info", None, true)
            );
            assert!(c.read_request().unwrap().is_none());
        }
    }

    /// A non-blocking stream: each piece, then `WouldBlock` until the next one is released.
    struct Pieces {
        pieces: Vec<Vec<u8>>,
        released: usize,
        next: usize,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.next >= self.released {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let p = &self.pieces[self.next];
            assert!(p.len() <= buf.len());
            buf[..p.len()].copy_from_slice(p);
            self.next += 1;
            Ok(p.len())
        }
    }

    impl Write for Pieces {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_request_that_arrives_between_would_blocks_is_read_whole() {
        let wire = b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let pieces = vec![
            wire[..10].to_vec(),
            wire[10..40].to_vec(),
            wire[40..52].to_vec(),
            wire[52..].to_vec(),
        ];
        let mut c = Connection::new(Pieces {
            pieces,
            released: 0,
            next: 0,
        });
        for i in 1..4 {
            match c.read_request() {
                Err(HttpError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("piece {i}: {other:?}"),
            }
            assert_eq!(c.has_partial_request(), i > 1);
            c.stream().released = i;
        }
        c.stream().released = 4;
        let r = c.read_request().unwrap().unwrap();
        assert_eq!(r.path, "/api/v1/vm.create");
        assert_eq!(r.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert!(!c.has_partial_request());
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let cases: [&[u8]; 6] = [
            b"\x00\x01garbage\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
            b"PUT / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost",
        ];
        for wire in cases {
            assert!(conn(wire, 2).read_request().is_err(), "{wire:?}");
        }
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_HEAD + 10, b'a');
        assert!(matches!(
            conn(&huge, 4096).read_request(),
            Err(HttpError::TooLarge("head"))
        ));
    }

    #[test]
    fn responses_follow_cloud_hypervisor() {
        let no_content = String::from_utf8(Response::empty(204).to_bytes(false)).unwrap();
        assert!(no_content.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(!no_content.contains("Content-Length"));
        let ok = String::from_utf8(Response::json(200, "{}".into()).to_bytes(true)).unwrap();
        assert!(ok.contains("Content-Type: application/json\r\nContent-Length: 2\r\n"));
        assert!(ok.contains("Connection: close") && ok.ends_with("\r\n\r\n{}"));
        let empty = String::from_utf8(Response::empty(200).to_bytes(false)).unwrap();
        assert!(empty.contains("Content-Length: 0\r\n"));
        let mut c = Cursor::new(Vec::new());
        Response::empty(404).write_to(&mut c, false).unwrap();
        assert!(c.into_inner().starts_with(b"HTTP/1.1 404 Not Found"));
    }
}
