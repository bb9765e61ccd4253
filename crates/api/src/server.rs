//! The API socket and the thread that serves it.
//!
//! [`ApiServer::bind`] creates the Unix socket with mode 0600 (only its owner may drive the VMM). A path
//! another live process serves is refused; a stale socket left by a process that died is replaced; any
//! other file is left alone and refused. [`ApiServer::serve`] starts the `api` thread, which serves up to
//! [`MAX_CONNECTIONS`] connections at once (the requests of more are answered 503) with non-blocking sockets
//! and `ppoll`: one thread, so its seccomp filter needs no thread creation, and the handler (the VMM's
//! control loop) gets one request at a time. Requests on a connection may be kept alive; each must
//! arrive whole (head and body) within [`REQUEST_DEADLINE`] of the connection's accept or of the
//! previous answer, and its answer must be taken within the same time, else the connection is closed:
//! a slow or silent client holds only its own connection. The socket file is removed when the
//! [`ApiHandle`] is dropped.

use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{Connection, HttpError, Response};
use crate::routes::{response_of, route, ApiRequest, ApiResponse};

/// How long a client may take to send a whole request (from its connection or the previous answer), or
/// to take an answer, before it is disconnected.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Most requests of one connection answered before the others get a turn.
const REQUESTS_PER_TURN: usize = 8;
/// Most connections served at once; a client beyond them is answered 503 and disconnected.
pub const MAX_CONNECTIONS: usize = 16;

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
    /// The socket rvvmm created (and removes); `None` for an inherited one.
    path: Option<PathBuf>,
    deadline: Duration,
    max_connections: usize,
}

/// The running API: removes the socket when dropped, and lets the VMM wait for an answer in flight.
pub struct ApiHandle {
    path: Option<PathBuf>,
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
            path: Some(path.to_path_buf()),
            deadline: REQUEST_DEADLINE,
            max_connections: MAX_CONNECTIONS,
        })
    }

    /// Serves a listening Unix socket someone else created and passed to rvvmm (`--api-socket fd=N`,
    /// as libvirt does): its file is its creator's to remove.
    pub fn from_listener(listener: UnixListener) -> ApiServer {
        ApiServer {
            listener,
            path: None,
            deadline: REQUEST_DEADLINE,
            max_connections: MAX_CONNECTIONS,
        }
    }

    /// Other limits than [`REQUEST_DEADLINE`] and [`MAX_CONNECTIONS`] (for tests).
    pub fn with_limits(mut self, deadline: Duration, max_connections: usize) -> ApiServer {
        self.deadline = deadline;
        self.max_connections = max_connections.max(1);
        self
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
        // Here, before the thread's seccomp filter: accepting must never block the loop.
        self.listener
            .set_nonblocking(true)
            .map_err(ServerError::Thread)?;
        let mut server = Server {
            listener: self.listener,
            clients: Vec::new(),
            deadline: self.deadline,
            max_connections: self.max_connections,
            busy,
        };
        std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                on_start();
                loop {
                    server.poll_once(&mut handler);
                }
            })
            .map_err(ServerError::Thread)?;
        Ok(handle)
    }
}

/// One client connection.
struct Client {
    conn: Connection<UnixStream>,
    /// When the request being read, or the answer being written, must be done.
    deadline: Instant,
    /// The answer not written yet (a client reads it at its own pace).
    out: Vec<u8>,
    /// Close once `out` is written.
    close_after: bool,
    /// Accepted beyond [`MAX_CONNECTIONS`]: its request is read (closing a socket with unread bytes
    /// would reset it before the client reads the answer) and answered 503.
    refused: bool,
    /// It used its turn with requests possibly left: served again without waiting.
    more: bool,
}

/// What to do with a client after serving it.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Drop,
}

/// The `api` thread's state.
struct Server {
    listener: UnixListener,
    clients: Vec<Client>,
    deadline: Duration,
    max_connections: usize,
    /// An answer is being produced or written.
    busy: Arc<AtomicBool>,
}

impl Server {
    /// Waits for a connection, bytes from a client, room for an answer, or a client's deadline, and
    /// serves what is ready.
    fn poll_once(&mut self, handler: &mut impl FnMut(ApiRequest) -> ApiResponse) {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.listener.as_raw_fd())
            .chain(self.clients.iter().map(|c| c.conn.stream_ref().as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        for (fd, c) in fds[1..].iter_mut().zip(&self.clients) {
            if !c.out.is_empty() {
                fd.events = libc::POLLOUT;
            }
        }
        let soonest = if self.clients.iter().any(|c| c.more) {
            Some(Instant::now())
        } else {
            self.clients.iter().map(|c| c.deadline).min()
        };
        let timeout = soonest.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                // Rounded up: waking before the deadline would only poll again.
                tv_nsec: libc::c_long::from(left.subsec_nanos()) + 1_000_000,
            }
        });
        let timeout = timeout.map(|mut t| {
            if t.tv_nsec >= 1_000_000_000 {
                t.tv_sec += 1;
                t.tv_nsec -= 1_000_000_000;
            }
            t
        });
        let tp = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds and `tp` null or a valid timespec, both
        // alive for the call; no signal mask is passed.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                tp,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                log::warn!("API socket: poll: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        // Clients first (those accepted below were not polled). One whose deadline passed gets a last
        // read: its request may have come while the handler ran.
        let now = Instant::now();
        let mut i = 0;
        for fd in &fds[1..] {
            let c = &self.clients[i];
            let next = if fd.revents != 0 || c.more || now >= c.deadline {
                self.serve_client(i, handler)
            } else {
                Next::Keep
            };
            if next == Next::Drop {
                self.clients.remove(i);
            } else {
                i += 1;
            }
        }
        // A client still without a whole request at its deadline is disconnected.
        self.clients.retain_mut(|c| {
            if now < c.deadline {
                return true;
            }
            if c.out.is_empty() && c.conn.has_partial_request() {
                log::warn!("API: a request did not arrive whole in time: connection closed");
                let r = Response::json(
                    408,
                    serde_json::json!(["Request Timeout", "the request did not arrive in time"])
                        .to_string(),
                );
                // A best effort: the socket does not block.
                let _ = c.conn.stream().write(&r.to_bytes(true));
            } else {
                log::debug!("API: idle or unread connection closed");
            }
            false
        });
        if fds[0].revents != 0 {
            self.accept_all();
        }
        self.update_busy();
    }

    fn update_busy(&self) {
        let pending = self.clients.iter().any(|c| !c.out.is_empty());
        self.busy.store(pending, Ordering::SeqCst);
    }

    /// Accepts every waiting connection; those beyond the limit are refused (503).
    fn accept_all(&mut self) {
        loop {
            // SAFETY: accept4 on our listening socket, with no address wanted; the result is checked.
            let fd = unsafe {
                libc::accept4(
                    self.listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    ErrorKind::WouldBlock => return,
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted => continue,
                    _ => {
                        log::warn!("API socket: accept: {e}");
                        return;
                    }
                }
            }
            // SAFETY: `fd` is a new connected socket that nothing else owns.
            let mut stream = unsafe { UnixStream::from_raw_fd(fd) };
            let served = self.clients.iter().filter(|c| !c.refused).count();
            let refused = served >= self.max_connections;
            if refused {
                log::warn!("API: {served} connections are open: a new one is refused");
                if self.clients.len() >= 2 * self.max_connections {
                    // Not even room to read its request: a best effort.
                    let _ = stream.write(&self.refusal().to_bytes(true));
                    continue;
                }
            }
            self.clients.push(Client {
                conn: Connection::new(stream),
                deadline: Instant::now() + self.deadline,
                out: Vec::new(),
                close_after: false,
                refused,
                more: false,
            });
        }
    }

    /// The answer to a connection beyond the limit.
    fn refusal(&self) -> Response {
        Response::json(
            503,
            serde_json::json!([
                "Service Unavailable",
                format!("too many API connections ({})", self.max_connections)
            ])
            .to_string(),
        )
    }

    /// Writes what is pending for client `i`, then reads and answers its requests while they are
    /// there whole.
    fn serve_client(
        &mut self,
        i: usize,
        handler: &mut impl FnMut(ApiRequest) -> ApiResponse,
    ) -> Next {
        let deadline = self.deadline;
        let refusal = self.refusal();
        let c = &mut self.clients[i];
        c.more = false;
        for _ in 0..REQUESTS_PER_TURN {
            if !c.out.is_empty() {
                match write_some(c) {
                    Ok(true) => {}
                    Ok(false) => return Next::Keep,
                    Err(e) => {
                        log::debug!("API connection: {e}");
                        return Next::Drop;
                    }
                }
                // The answer is out: the next request has its own time.
                if c.close_after {
                    return Next::Drop;
                }
                c.deadline = Instant::now() + deadline;
            }
            let req = match c.conn.read_request() {
                Ok(Some(req)) => req,
                Ok(None) => return Next::Drop,
                Err(HttpError::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(HttpError::Io(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Err(HttpError::Io(e)) => {
                    log::debug!("API connection: {e}");
                    return Next::Drop;
                }
                Err(e) => {
                    log::warn!("API: {e}");
                    let r = Response::json(
                        400,
                        serde_json::json!(["Bad Request", e.to_string()]).to_string(),
                    );
                    c.out = r.to_bytes(true);
                    c.close_after = true;
                    continue;
                }
            };
            if c.refused {
                c.out = refusal.to_bytes(true);
                c.close_after = true;
                continue;
            }
            let response = match route(&req) {
                Ok(request) => {
                    let name = request.name();
                    log::info!("API: {name}");
                    self.busy.store(true, Ordering::SeqCst);
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
            c.out = response.to_bytes(req.close);
            c.close_after = req.close;
            // The answer gets its own time to be taken.
            c.deadline = Instant::now() + deadline;
        }
        // Other clients' turn; this one's pipelined requests may wait in its buffer.
        c.more = true;
        Next::Keep
    }
}

/// Writes as much of the client's answer as its socket takes: `Ok(true)` once all of it is written.
fn write_some(c: &mut Client) -> std::io::Result<bool> {
    while !c.out.is_empty() {
        match c.conn.stream().write(&c.out) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl ApiHandle {
    /// The socket's path, when rvvmm created it.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
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
        let Some(path) = &self.path else {
            return;
        };
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("cannot remove the API socket {}: {e}", path.display());
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
        use std::io::Read;
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

    fn limited_echo_server(path: &Path, deadline: Duration, max: usize) -> ApiHandle {
        ApiServer::bind(path)
            .unwrap()
            .with_limits(deadline, max)
            .serve(Box::new(|| {}), |r| match r {
                ApiRequest::VmmPing => Ok(Some(serde_json::json!({"version": "test"}))),
                _ => Ok(None),
            })
            .unwrap()
    }

    /// Reads until the server closes the connection (or 10 s pass); returns what came and when.
    fn read_until_closed(s: &mut UnixStream) -> (String, Duration) {
        use std::io::Read;
        let start = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
    }

    #[test]
    fn slow_and_silent_clients_do_not_hold_the_api_and_are_dropped_at_the_deadline() {
        let path = temp_socket("slow");
        let _handle = limited_echo_server(&path, Duration::from_millis(1500), MAX_CONNECTIONS);
        let mut silent = UnixStream::connect(&path).unwrap();
        let mut trickler = UnixStream::connect(&path).unwrap();
        let accepted = Instant::now();
        // One byte every 100 ms: each read comes well within any per-read timeout.
        let mut writer = trickler.try_clone().unwrap();
        std::thread::spawn(move || {
            let head = b"GET /api/v1/vmm.ping HTTP/1.1\r\nX-Slow: ";
            for &b in head.iter().chain(std::iter::repeat_n(&b'a', 200)) {
                if writer.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        // Meanwhile another client is answered at once, twice on one kept-alive connection.
        let start = Instant::now();
        assert_eq!(
            client::request(&path, "GET", "vmm.ping", None).unwrap(),
            (200, r#"{"version":"test"}"#.to_string())
        );
        let mut keep = UnixStream::connect(&path).unwrap();
        keep.write_all(
            b"GET /api/v1/vmm.ping HTTP/1.1\r\n\r\nPUT /api/v1/vm.boot HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let (answers, _) = read_until_closed(&mut keep);
        assert!(
            answers.starts_with("HTTP/1.1 200 OK") && answers.contains("HTTP/1.1 204 No Content"),
            "{answers}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "answered in {:?} while a client trickles",
            start.elapsed()
        );
        // The trickling client gets 408 and is disconnected at the deadline, the silent one too.
        let (answer, _) = read_until_closed(&mut trickler);
        let waited = accepted.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            waited >= Duration::from_millis(1400) && waited < Duration::from_secs(4),
            "dropped after {waited:?}"
        );
        let (answer, _) = read_until_closed(&mut silent);
        assert_eq!(answer, "", "an idle connection is just closed");
        assert!(accepted.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn many_pipelined_requests_are_all_answered_in_turns() {
        let path = temp_socket("pipelined");
        let _handle = limited_echo_server(&path, Duration::from_secs(10), MAX_CONNECTIONS);
        let mut s = UnixStream::connect(&path).unwrap();
        let mut wire = b"GET /api/v1/vmm.ping HTTP/1.1\r\n\r\n".repeat(3 * REQUESTS_PER_TURN);
        wire.extend_from_slice(b"PUT /api/v1/vm.boot HTTP/1.1\r\nConnection: close\r\n\r\n");
        s.write_all(&wire).unwrap();
        let (answers, _) = read_until_closed(&mut s);
        assert_eq!(
            answers.matches("HTTP/1.1 200 OK").count(),
            3 * REQUESTS_PER_TURN
        );
        assert!(answers.ends_with("Connection: close\r\n\r\n"), "{answers}");
    }

    #[test]
    fn connections_beyond_the_limit_get_503_until_one_closes() {
        let path = temp_socket("limit");
        let _handle = limited_echo_server(&path, Duration::from_secs(10), 2);
        let idle: Vec<UnixStream> = (0..2)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let (status, body) = client::request(&path, "GET", "vmm.ping", None).unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("too many API connections (2)"), "{body}");
        drop(idle);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            client::request(&path, "GET", "vmm.ping", None).unwrap().0,
            200
        );
    }
}
