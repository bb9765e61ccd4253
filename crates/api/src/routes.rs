//! Which path and verb is which request, and how results become HTTP responses, as cloud-hypervisor
//! answers them (`vmm/src/api/http/` there):
//!
//! - `GET` `vmm.ping`, `vm.info`, `vm.counters`; `PUT` `vm.create` (with a JSON body), `vmm.shutdown` and
//!   the actions `vm.boot`, `vm.pause`, `vm.resume`, `vm.shutdown`, `vm.reboot`, `vm.power-button`,
//!   `vm.delete` (without a body);
//! - an unknown path: 404; a wrong verb, a body where none belongs, a missing body: 400; a body that is
//!   not the JSON of the request: 400;
//! - an action that fails: 404 when there is no VM (as cloud-hypervisor 53), else 500;
//! - error bodies are a JSON array of messages, outermost first (`["Error from API", "The VM could not
//!   be paused", "VM is not running"]`).

use crate::http::{Request, Response};
use crate::types::VmConfig;
use crate::HTTP_ROOT;

/// A request the VMM's control loop carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiRequest {
    /// `vmm.ping`.
    VmmPing,
    /// `vmm.shutdown`: stop the VM if it runs and end rvvmm.
    VmmShutdown,
    /// `vm.create`.
    VmCreate(Box<VmConfig>),
    /// `vm.boot`.
    VmBoot,
    /// `vm.info`.
    VmInfo,
    /// `vm.counters`.
    VmCounters,
    /// `vm.pause`.
    VmPause,
    /// `vm.resume`.
    VmResume,
    /// `vm.shutdown`.
    VmShutdown,
    /// `vm.reboot`.
    VmReboot,
    /// `vm.power-button`.
    VmPowerButton,
    /// `vm.delete`.
    VmDelete,
}

impl ApiRequest {
    /// The endpoint's name (`vm.pause`), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ApiRequest::VmmPing => "vmm.ping",
            ApiRequest::VmmShutdown => "vmm.shutdown",
            ApiRequest::VmCreate(_) => "vm.create",
            ApiRequest::VmBoot => "vm.boot",
            ApiRequest::VmInfo => "vm.info",
            ApiRequest::VmCounters => "vm.counters",
            ApiRequest::VmPause => "vm.pause",
            ApiRequest::VmResume => "vm.resume",
            ApiRequest::VmShutdown => "vm.shutdown",
            ApiRequest::VmReboot => "vm.reboot",
            ApiRequest::VmPowerButton => "vm.power-button",
            ApiRequest::VmDelete => "vm.delete",
        }
    }
}

/// A failed request: its status and the messages of its error chain, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The messages.
    pub messages: Vec<String>,
}

impl ApiError {
    /// A failure with `status` and `messages`.
    pub fn new(status: u16, messages: &[&str]) -> ApiError {
        ApiError {
            status,
            messages: messages.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// An action that failed: 500 with `["Error from API", what, why]`.
    pub fn action(what: &str, why: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            messages: vec!["Error from API".into(), what.into(), why.into()],
        }
    }

    /// An action that needs a VM when there is none: 404 (cloud-hypervisor 53's status).
    pub fn no_vm(what: &str) -> ApiError {
        ApiError {
            status: 404,
            messages: vec![
                "Error from API".into(),
                what.into(),
                "VM is not created".into(),
            ],
        }
    }

    /// A bad request: 400.
    pub fn bad_request(messages: &[&str]) -> ApiError {
        ApiError::new(400, messages)
    }

    /// The HTTP response.
    pub fn response(&self) -> Response {
        Response::json(
            self.status,
            serde_json::to_string(&self.messages).unwrap_or_else(|_| "[]".into()),
        )
    }
}

/// What the control loop answers: a JSON body (200), nothing (204), or an error.
pub type ApiResponse = Result<Option<serde_json::Value>, ApiError>;

/// The HTTP response of an [`ApiResponse`]. `vmm.shutdown` answers 200 without a body, as
/// cloud-hypervisor does.
pub fn response_of(request_name: &str, result: &ApiResponse) -> Response {
    match result {
        Ok(Some(body)) => Response::json(200, body.to_string()),
        Ok(None) if request_name == "vmm.shutdown" => Response::empty(200),
        Ok(None) => Response::empty(204),
        Err(e) => e.response(),
    }
}

fn bad_request() -> Result<ApiRequest, ApiError> {
    Err(ApiError::bad_request(&["Bad Request"]))
}

/// The request `req` asks for, or the error response it gets without reaching the VMM.
pub fn route(req: &Request) -> Result<ApiRequest, ApiError> {
    let Some(name) = req
        .path
        .strip_prefix(HTTP_ROOT)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return Err(ApiError::new(404, &["Not Found"]));
    };
    let get = req.method == "GET";
    let put = req.method == "PUT";
    let no_body = req.body.is_none();
    let action = |r: ApiRequest| {
        if put && no_body {
            Ok(r)
        } else {
            bad_request()
        }
    };
    match name {
        "vmm.ping" if get => Ok(ApiRequest::VmmPing),
        "vm.info" if get => Ok(ApiRequest::VmInfo),
        "vm.counters" if get => Ok(ApiRequest::VmCounters),
        "vmm.ping" | "vm.info" | "vm.counters" => bad_request(),
        "vm.create" if put => {
            let Some(body) = &req.body else {
                return bad_request();
            };
            serde_json::from_slice::<VmConfig>(body)
                .map(|c| ApiRequest::VmCreate(Box::new(c)))
                .map_err(|e| ApiError::bad_request(&["Failed to deserialize JSON", &e.to_string()]))
        }
        "vm.create" => bad_request(),
        "vmm.shutdown" => action(ApiRequest::VmmShutdown),
        "vm.boot" => action(ApiRequest::VmBoot),
        "vm.pause" => action(ApiRequest::VmPause),
        "vm.resume" => action(ApiRequest::VmResume),
        "vm.shutdown" => action(ApiRequest::VmShutdown),
        "vm.reboot" => action(ApiRequest::VmReboot),
        "vm.power-button" => action(ApiRequest::VmPowerButton),
        "vm.delete" => action(ApiRequest::VmDelete),
        _ => Err(ApiError::new(404, &["Not Found"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, name: &str, body: Option<&str>) -> Request {
        Request {
            method: method.into(),
            path: format!("{HTTP_ROOT}/{name}"),
            body: body.map(|b| b.as_bytes().to_vec()),
            close: false,
        }
    }

    #[test]
    fn every_endpoint_with_its_verb() {
        assert_eq!(
            route(&req("GET", "vmm.ping", None)),
            Ok(ApiRequest::VmmPing)
        );
        assert_eq!(route(&req("GET", "vm.info", None)), Ok(ApiRequest::VmInfo));
        assert_eq!(
            route(&req("GET", "vm.counters", None)),
            Ok(ApiRequest::VmCounters)
        );
        for (name, r) in [
            ("vmm.shutdown", ApiRequest::VmmShutdown),
            ("vm.boot", ApiRequest::VmBoot),
            ("vm.pause", ApiRequest::VmPause),
            ("vm.resume", ApiRequest::VmResume),
            ("vm.shutdown", ApiRequest::VmShutdown),
            ("vm.reboot", ApiRequest::VmReboot),
            ("vm.power-button", ApiRequest::VmPowerButton),
            ("vm.delete", ApiRequest::VmDelete),
        ] {
            assert_eq!(route(&req("PUT", name, None)), Ok(r.clone()));
            assert_eq!(r.name(), name);
            // Wrong verb, or a body where none belongs: 400.
            assert_eq!(route(&req("GET", name, None)).unwrap_err().status, 400);
            assert_eq!(
                route(&req("PUT", name, Some("{}"))).unwrap_err().status,
                400
            );
        }
        let create = route(&req(
            "PUT",
            "vm.create",
            Some(r#"{"memory":{"size":1048576}}"#),
        ));
        assert!(matches!(create, Ok(ApiRequest::VmCreate(c)) if c.memory.size == 1 << 20));
    }

    #[test]
    fn errors_as_cloud_hypervisor_sends_them() {
        let e = route(&req("GET", "vm.nothing", None)).unwrap_err();
        assert_eq!(
            (e.status, e.response().body.unwrap()),
            (404, r#"["Not Found"]"#.to_string())
        );
        assert_eq!(route(&req("GET", "../etc", None)).unwrap_err().status, 404);
        let mut other = req("GET", "vmm.ping", None);
        other.path = "/api/v2/vmm.ping".into();
        assert_eq!(route(&other).unwrap_err().status, 404);
        assert_eq!(
            route(&req("POST", "vmm.ping", None)).unwrap_err().status,
            400
        );
        assert_eq!(
            route(&req("PUT", "vm.create", None)).unwrap_err().status,
            400
        );
        let bad = route(&req("PUT", "vm.create", Some("{not json"))).unwrap_err();
        assert_eq!(bad.status, 400);
        assert_eq!(bad.messages[0], "Failed to deserialize JSON");
        let unknown = route(&req("PUT", "vm.create", Some(r#"{"cpu": {}}"#))).unwrap_err();
        assert!(
            unknown.messages[1].contains("unknown field `cpu`"),
            "{unknown:?}"
        );
        let r = response_of(
            "vm.pause",
            &Err(ApiError::action(
                "The VM could not be paused",
                "VM is not running",
            )),
        );
        assert_eq!(r.status, 500);
        assert_eq!(
            r.body.unwrap(),
            r#"["Error from API","The VM could not be paused","VM is not running"]"#
        );
        assert_eq!(response_of("vm.boot", &Ok(None)).status, 204);
        assert_eq!(response_of("vmm.shutdown", &Ok(None)), Response::empty(200));
        assert_eq!(ApiError::no_vm("x").status, 404);
    }
}
