//! rvvmm's API: an HTTP/1.1 REST endpoint on a Unix socket that follows cloud-hypervisor's API (the same
//! paths, verbs, JSON field names, status codes and error bodies, for what rvvmm supports), so that
//! orchestrators written for cloud-hypervisor (Kata's `clh` driver, libvirt's `ch` driver) can drive it.
//!
//! - [`http`]: reading requests and writing responses (request heads parsed by httparse);
//! - [`routes`]: which path and verb is which [`ApiRequest`], and the error responses;
//! - [`types`]: the JSON bodies (the VM configuration of `vm.create`, `vm.info`, `vmm.ping`);
//! - [`server`]: the socket (mode 0600, refused when another process serves it, removed on drop) and
//!   the thread that serves it;
//! - [`client`]: a small client for `rvvmm remote`.
//!
//! Nothing here knows about KVM: the server hands each [`ApiRequest`] to a handler (the VMM's control
//! loop) and writes back the [`ApiResponse`] it gets.

pub mod client;
pub mod http;
pub mod routes;
pub mod server;
pub mod types;

pub use routes::{ApiError, ApiRequest, ApiResponse};
pub use server::{ApiServer, ServerError};

/// The path prefix of every endpoint.
pub const HTTP_ROOT: &str = "/api/v1";
