//! A small client for rvvmm's (and cloud-hypervisor's) API socket, used by `rvvmm remote`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::HTTP_ROOT;

/// How long the client waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Errors talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached or the exchange failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The socket.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The answer is not HTTP.
    #[error("malformed answer from the API: {0}")]
    Malformed(String),
}

/// Sends `METHOD /api/v1/NAME` (with a JSON `body`) to the socket at `path`; returns the status and
/// the body of the answer.
pub fn request(
    path: &Path,
    method: &str,
    name: &str,
    body: Option<&str>,
) -> Result<(u16, String), ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(io)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {HTTP_ROOT}/{name} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nConnection: close\r\n"
    );
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(io)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(&answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(ClientError::Malformed("truncated".into())),
        Err(e) => return Err(ClientError::Malformed(e.to_string())),
    };
    let status = resp.code.unwrap_or(0);
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let rest = &answer[head_len..];
    let body = match length {
        Some(n) if n <= rest.len() => &rest[..n],
        Some(_) => {
            return Err(ClientError::Malformed(
                "body shorter than Content-Length".into(),
            ))
        }
        None => rest,
    };
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}
