//! The API socket and the thread that serves it.
//!
//! [`ApiServer::bind`] creates the Unix socket with mode 0600 (only its owner may drive the VMM). A path
//! another live process serves is refused; a stale socket left by a process that died is replaced; any
//! other file is left alone and refused. [`ApiServer::serve`] starts the `api` thread: one connection at
//! a time (requests on it may be kept alive), each request routed and handed to the handler, which
//! runs the request on the VMM (the control loop) and returns its answer. The socket file is removed
//! when the [`ApiHandle`] is dropped.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{Connection, HttpError, Response};
use crate::routes::{response_of, route, ApiRequest, ApiResponse};

/// How long a client may take to send a request (or read the answer) before it is disconnected.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors creating the API socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another process serves this path.
    #[error("--api-socket {0}: another process (a running rvvmm?) already serves this socket")]
    InUse(PathBuf),
    /// The path exists and is not a socket.
    #[error("--api-socket {0}: the path exists and is not a socket (rvvmm does not replace it)")]
    NotASocket(PathBuf),
    /// The socket cannot be created.
    #[error("--api-socket {path}: {source}")]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The API thread cannot be started.
    #[error("cannot start the API thread: {0}")]
    Thread(std::io::Error),
}

/// A bound API socket, not served yet.
pub struct ApiServer {
    listener: UnixListener,
    path: PathBuf,
}

/// The running API: removes the socket when dropped, and lets the VMM wait for an answer in flight.
pub struct ApiHandle {
    path: PathBuf,
    busy: Arc<AtomicBool>,
}

/// Sets the process umask for the lifetime of the guard.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Umask {
        // SAFETY: umask only changes this process's file creation mask; it cannot fail.
        Umask(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as in `set`, restoring the previous mask.
        unsafe { libc::umask(self.0) };
    }
}

impl ApiServer {
    /// Creates the socket at `path` (mode 0600). Call before other threads start (the umask is
    /// process-wide).
    pub fn bind(path: &Path) -> Result<ApiServer, ServerError> {
        let bind_err = |source| ServerError::Bind {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => return Err(ServerError::InUse(path.to_path_buf())),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    log::info!("--api-socket {}: replacing a stale socket", path.display());
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                Err(e) => return Err(bind_err(e)),
            },
            Ok(_) => return Err(ServerError::NotASocket(path.to_path_buf())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        let listener = {
            let _mask = Umask::set(0o177);
            UnixListener::bind(path).map_err(bind_err)?
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        Ok(ApiServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Starts the `api` thread: it runs `on_start` (e.g. installs its seccomp filter), then serves
    /// requests, handing each to `handler`.
    pub fn serve(
        self,
        on_start: Box<dyn FnOnce() + Send>,
        mut handler: impl FnMut(ApiRequest) -> ApiResponse + Send + 'static,
    ) -> Result<ApiHandle, ServerError> {
        let busy = Arc::new(AtomicBool::new(false));
        let handle = ApiHandle {
            path: self.path.clone(),
            busy: busy.clone(),
        };
        let listener = self.listener;
        std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                on_start();
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => serve_connection(stream, &busy, &mut handler),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            log::warn!("API socket: accept: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
            .map_err(ServerError::Thread)?;
        Ok(handle)
    }
}

/// Serves the requests of one connection until the client closes it, asks to, or breaks the protocol.
fn serve_connection(
    stream: UnixStream,
    busy: &AtomicBool,
    handler: &mut impl FnMut(ApiRequest) -> ApiResponse,
) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut conn = Connection::new(stream);
    loop {
        let req = match conn.read_request() {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(HttpError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return;
            }
            Err(HttpError::Io(e)) => {
                log::debug!("API connection: {e}");
                return;
            }
            Err(e) => {
                log::warn!("API: {e}");
                let r = Response::json(
                    400,
                    serde_json::json!(["Bad Request", e.to_string()]).to_string(),
                );
                let _ = r.write_to(conn.stream(), true);
                return;
            }
        };
        let response = match route(&req) {
            Ok(request) => {
                let name = request.name();
                log::info!("API: {name}");
                busy.store(true, Ordering::SeqCst);
                let result = handler(request);
                if let Err(e) = &result {
                    log::warn!("API: {name}: {} {}", e.status, e.messages.join(": "));
                }
                response_of(name, &result)
            }
            Err(e) => {
                log::warn!(
                    "API: {} {}: {} {}",
                    req.method,
                    req.path,
                    e.status,
                    e.messages.join(": ")
                );
                e.response()
            }
        };
        let written = response.write_to(conn.stream(), req.close);
        busy.store(false, Ordering::SeqCst);
        if written.is_err() || req.close {
            return;
        }
    }
}

impl ApiHandle {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits (up to `timeout`) until no answer is being written, so that the reply to `vm.shutdown` or
    /// `vmm.shutdown` reaches the client before rvvmm exits.
    pub fn wait_idle(&self, timeout: Duration) {
        let start = Instant::now();
        while self.busy.load(Ordering::SeqCst) && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove the API socket {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;
    use crate::routes::ApiError;

    fn temp_socket(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rvvmm-api-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("api.sock")
    }

    fn echo_server(path: &Path) -> ApiHandle {
        ApiServer::bind(path)
            .unwrap()
            .serve(Box::new(|| {}), |r| match r {
                ApiRequest::VmmPing => Ok(Some(serde_json::json!({"version": "test"}))),
                ApiRequest::VmPause => Err(ApiError::action(
                    "The VM could not be paused",
                    "VM is not running",
                )),
                _ => Ok(None),
            })
            .unwrap()
    }

    #[test]
    fn serves_requests_mode_0600_and_removes_the_socket() {
        let path = temp_socket("serve");
        let handle = echo_server(&path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (status, body) = client::request(&path, "GET", "vmm.ping", None).unwrap();
        assert_eq!((status, body.as_str()), (200, r#"{"version":"test"}"#));
        assert_eq!(
            client::request(&path, "PUT", "vm.boot", None).unwrap(),
            (204, String::new())
        );
        let (status, body) = client::request(&path, "PUT", "vm.pause", None).unwrap();
        assert_eq!(status, 500);
        assert!(body.contains("VM is not running"));
        assert_eq!(
            client::request(&path, "GET", "vm.boot", None).unwrap().0,
            400
        );
        assert_eq!(
            client::request(&path, "PUT", "vm.create", Some("{oops"))
                .unwrap()
                .0,
            400
        );
        assert_eq!(
            client::request(&path, "GET", "nothing", None).unwrap().0,
            404
        );
        // A second server on the same path is refused while the first one lives.
        assert!(matches!(ApiServer::bind(&path), Err(ServerError::InUse(_))));
        handle.wait_idle(Duration::from_secs(1));
        drop(handle);
        assert!(!path.exists());
    }

    #[test]
    fn garbage_gets_400_and_the_server_goes_on() {
        use std::io::{Read, Write};
        let path = temp_socket("garbage");
        let _handle = echo_server(&path);
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"\x01\x02 not http\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        // A client that connects and says nothing does not block the next one for long.
        let _idle = UnixStream::connect(&path).unwrap();
        drop(_idle);
        assert_eq!(
            client::request(&path, "GET", "vmm.ping", None).unwrap().0,
            200
        );
    }

    #[test]
    fn stale_sockets_are_replaced_other_files_refused() {
        let path = temp_socket("stale");
        drop(UnixListener::bind(&path).unwrap()); // a socket nobody serves
        let handle = echo_server(&path);
        assert_eq!(
            client::request(&path, "GET", "vmm.ping", None).unwrap().0,
            200
        );
        drop(handle);
        std::fs::write(&path, b"precious").unwrap();
        assert!(matches!(
            ApiServer::bind(&path),
            Err(ServerError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }
}
