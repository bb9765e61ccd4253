//! The VMM's control loop: one channel of [`VmmEvent`]s (the guest stopped, a signal, an API request)
//! served by the main thread, and the VM's life cycle as the API sees it (no VM, created, running,
//! paused).
//!
//! rvvmm runs one VM per process: once a VM has booted, it ends with the process. `vm.shutdown`,
//! `vm.delete` and `vmm.shutdown` stop the guest, make its disks durable, answer, and end rvvmm with
//! status 0 (cloud-hypervisor would keep the VMM running for another `vm.boot`); a guest that powers off
//! or resets ends rvvmm with its status as from the command line.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};

use api::types::{VmInfoResponse, VmmPingResponse};
use api::{ApiError, ApiRequest, ApiResponse};

use crate::api_config;
use crate::config::VmConfig;
use crate::{Error, GuestExit};

/// What the main thread waits for.
pub enum VmmEvent {
    /// The guest stopped, or rvvmm was told to stop (signal, console escape, --timeout).
    Exit(GuestExit),
    /// An API request and where its answer goes.
    Api(ApiRequest, Sender<ApiResponse>),
}

/// Sends the guest's exit to the control loop; what devices and vcpu threads hold.
#[derive(Clone)]
pub struct ExitSender(Sender<VmmEvent>);

impl ExitSender {
    /// An exit sender on the control loop's channel.
    pub fn new(events: Sender<VmmEvent>) -> ExitSender {
        ExitSender(events)
    }

    /// Reports that the VM stops, and why (the first report wins).
    pub fn send(&self, why: GuestExit) {
        let _ = self.0.send(VmmEvent::Exit(why));
    }
}

/// Per-device counters: device id -> counter name -> value.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// A VM that runs, as the control loop drives it.
pub trait RunningVm {
    /// Stops every vcpu and the I/O thread at a safe point.
    fn pause(&mut self) -> Result<(), String>;
    /// Lets them go on.
    fn resume(&mut self) -> Result<(), String>;
    /// The devices' counters.
    fn counters(&self) -> Counters;
    /// Makes everything durable (disks flushed) before rvvmm exits; the guest does not run afterwards.
    /// An error says what could not be made durable.
    fn shutdown(self: Box<Self>) -> Result<(), String>;
}

/// Builds and starts the VM of a configuration; `Ok(None)` when there is nothing to run (the device
/// tree was only dumped).
pub type BootFn<'a> = dyn FnMut(&VmConfig) -> Result<Option<Box<dyn RunningVm>>, Error> + 'a;

enum State {
    Empty,
    Created {
        config: Box<VmConfig>,
        api: Box<api::types::VmConfig>,
    },
    Running {
        config: Box<VmConfig>,
        api: Box<api::types::VmConfig>,
        vm: Box<dyn RunningVm>,
        paused: bool,
    },
}

/// The control loop (see the module documentation).
pub struct Controller<'a> {
    events: Receiver<VmmEvent>,
    defaults: VmConfig,
    boot: &'a mut BootFn<'a>,
    state: State,
}

/// How the loop ended: the exit status to report.
type Ended = GuestExit;

impl<'a> Controller<'a> {
    /// A controller reading `events`; VMs from `vm.create` take what the API does not say from
    /// `defaults`; `boot` builds them.
    pub fn new(
        events: Receiver<VmmEvent>,
        defaults: VmConfig,
        boot: &'a mut BootFn<'a>,
    ) -> Controller<'a> {
        Controller {
            events,
            defaults,
            boot,
            state: State::Empty,
        }
    }

    /// Boots `config` (from the command line) at once; its errors are rvvmm's setup errors.
    pub fn boot_now(&mut self, config: VmConfig) -> Result<Option<Ended>, Error> {
        let api = Box::new(api_config::to_api(&config));
        match (self.boot)(&config)? {
            None => Ok(Some(GuestExit::Poweroff)),
            Some(vm) => {
                self.state = State::Running {
                    config: Box::new(config),
                    api,
                    vm,
                    paused: false,
                };
                Ok(None)
            }
        }
    }

    /// Serves events until the VM ends (or rvvmm is told to end); returns the exit status to report.
    pub fn run(mut self) -> GuestExit {
        loop {
            let event = match self.events.recv() {
                Ok(e) => e,
                Err(_) => return self.stop(GuestExit::Failure),
            };
            match event {
                VmmEvent::Exit(why) => return self.stop(why),
                VmmEvent::Api(request, reply) => {
                    let (answer, ended) = self.handle(request);
                    match ended {
                        // Stop first (disks flushed), then answer, so the client knows it is done.
                        Some(why) => {
                            let why = self.stop(why);
                            let _ = reply.send(answer);
                            return why;
                        }
                        None => {
                            let _ = reply.send(answer);
                        }
                    }
                }
            }
        }
    }

    fn stop(&mut self, why: GuestExit) -> GuestExit {
        if let State::Running { vm, .. } = std::mem::replace(&mut self.state, State::Empty) {
            if let Err(e) = vm.shutdown() {
                log::error!("{e}: what the guest wrote there may be lost");
                return GuestExit::Unflushed;
            }
        }
        why
    }

    fn state_name(&self) -> &'static str {
        match &self.state {
            State::Empty => "NotCreated",
            State::Created { .. } => "Created",
            State::Running { paused: false, .. } => "Running",
            State::Running { paused: true, .. } => "Paused",
        }
    }

    /// Carries out one request: its answer, and whether the loop ends (with which status).
    fn handle(&mut self, request: ApiRequest) -> (ApiResponse, Option<Ended>) {
        let not_running = |what: &str, s: &State| match s {
            State::Empty => ApiError::no_vm(what),
            _ => ApiError::action(what, "VM is not running"),
        };
        match request {
            ApiRequest::VmmPing => (Ok(Some(ping())), None),
            ApiRequest::VmmShutdown => (Ok(None), Some(GuestExit::Poweroff)),
            ApiRequest::VmCreate(api) => {
                const WHAT: &str = "The VM could not be created";
                if !matches!(self.state, State::Empty) {
                    return (Err(ApiError::action(WHAT, "VM is already created")), None);
                }
                match api_config::from_api(&api, &self.defaults) {
                    Ok(config) => {
                        self.state = State::Created {
                            config: Box::new(config),
                            api,
                        };
                        (Ok(None), None)
                    }
                    Err(e) => (
                        Err(ApiError::new(400, &["Invalid VM configuration", &e])),
                        None,
                    ),
                }
            }
            ApiRequest::VmBoot => {
                const WHAT: &str = "The VM could not boot";
                match std::mem::replace(&mut self.state, State::Empty) {
                    State::Created { config, api } => match (self.boot)(&config) {
                        Ok(Some(vm)) => {
                            self.state = State::Running {
                                config,
                                api,
                                vm,
                                paused: false,
                            };
                            (Ok(None), None)
                        }
                        Ok(None) => (Ok(None), Some(GuestExit::Poweroff)),
                        Err(e) => {
                            // Nothing of it is left running: the VM stays created.
                            let msg = format!("{e:#}");
                            self.state = State::Created { config, api };
                            (Err(ApiError::action(WHAT, msg)), None)
                        }
                    },
                    State::Empty => (
                        Err(ApiError {
                            status: 404,
                            messages: vec![
                                "Error from API".into(),
                                WHAT.into(),
                                "VM config is missing".into(),
                            ],
                        }),
                        None,
                    ),
                    running => {
                        self.state = running;
                        (Err(ApiError::action(WHAT, "VM is already running")), None)
                    }
                }
            }
            ApiRequest::VmInfo => {
                let (config, api) = match &self.state {
                    State::Empty => return (Err(ApiError::no_vm("VM info is unavailable")), None),
                    State::Created { config, api } | State::Running { config, api, .. } => {
                        (config, api)
                    }
                };
                let info = VmInfoResponse {
                    config: (**api).clone(),
                    state: self.state_name().into(),
                    memory_actual_size: config.memory,
                };
                (
                    Ok(Some(serde_json::to_value(info).unwrap_or_default())),
                    None,
                )
            }
            ApiRequest::VmCounters => match &self.state {
                State::Running { vm, .. } => (
                    Ok(Some(
                        serde_json::to_value(vm.counters()).unwrap_or_default(),
                    )),
                    None,
                ),
                s => (
                    Err(not_running("The VM counters could not be read", s)),
                    None,
                ),
            },
            ApiRequest::VmPause => {
                const WHAT: &str = "The VM could not be paused";
                match &mut self.state {
                    State::Running { paused: true, .. } => {
                        (Err(ApiError::action(WHAT, "VM is already paused")), None)
                    }
                    State::Running { vm, paused, .. } => match vm.pause() {
                        Ok(()) => {
                            *paused = true;
                            (Ok(None), None)
                        }
                        Err(e) => (Err(ApiError::action(WHAT, e)), None),
                    },
                    s => (Err(not_running(WHAT, s)), None),
                }
            }
            ApiRequest::VmResume => {
                const WHAT: &str = "The VM could not be resumed";
                match &mut self.state {
                    State::Running { vm, paused, .. } if *paused => match vm.resume() {
                        Ok(()) => {
                            *paused = false;
                            (Ok(None), None)
                        }
                        Err(e) => (Err(ApiError::action(WHAT, e)), None),
                    },
                    State::Running { .. } => {
                        (Err(ApiError::action(WHAT, "VM is not paused")), None)
                    }
                    s => (Err(not_running(WHAT, s)), None),
                }
            }
            ApiRequest::VmShutdown => match &self.state {
                State::Running { .. } => {
                    log::info!("vm.shutdown: stopping the guest");
                    (Ok(None), Some(GuestExit::Poweroff))
                }
                s => (Err(not_running("The VM could not be shut down", s)), None),
            },
            ApiRequest::VmDelete => match &self.state {
                State::Running { .. } => (Ok(None), Some(GuestExit::Poweroff)),
                _ => {
                    self.state = State::Empty;
                    (Ok(None), None)
                }
            },
            ApiRequest::VmReboot => {
                const WHAT: &str = "The VM could not reboot";
                match &self.state {
                    State::Running { .. } => (
                        Err(ApiError::action(
                            WHAT,
                            "rvvmm does not restart guests: a guest reset ends rvvmm with status 3, for its supervisor to start it again",
                        )),
                        None,
                    ),
                    s => (Err(not_running(WHAT, s)), None),
                }
            }
            ApiRequest::VmPowerButton => {
                const WHAT: &str = "The VM could not be powered off with the power button";
                match &self.state {
                    State::Running { .. } => (
                        Err(ApiError::action(
                            WHAT,
                            "the machine has no power button device (RISC-V virt has no ACPI); use vm.shutdown, or poweroff inside the guest",
                        )),
                        None,
                    ),
                    s => (Err(not_running(WHAT, s)), None),
                }
            }
        }
    }
}

fn ping() -> serde_json::Value {
    let version = env!("CARGO_PKG_VERSION");
    serde_json::to_value(VmmPingResponse {
        build_version: format!("rvvmm {version}"),
        version: version.into(),
        pid: i64::from(std::process::id()),
        features: Vec::new(),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::mpsc::channel;

    /// What the fake VM saw.
    #[derive(Default, Debug)]
    struct Log {
        boots: u32,
        pauses: u32,
        resumes: u32,
        shutdowns: u32,
        /// The next shutdown's flush fails.
        flush_fails: bool,
    }

    struct FakeVm(Rc<RefCell<Log>>);

    impl RunningVm for FakeVm {
        fn pause(&mut self) -> Result<(), String> {
            self.0.borrow_mut().pauses += 1;
            Ok(())
        }
        fn resume(&mut self) -> Result<(), String> {
            self.0.borrow_mut().resumes += 1;
            Ok(())
        }
        fn counters(&self) -> Counters {
            let mut c = Counters::new();
            c.entry("_disk0".into())
                .or_default()
                .insert("read_ops".into(), 7);
            c
        }
        fn shutdown(self: Box<Self>) -> Result<(), String> {
            let mut log = self.0.borrow_mut();
            log.shutdowns += 1;
            match log.flush_fails {
                true => Err("cannot sync disk /d.img: EIO".into()),
                false => Ok(()),
            }
        }
    }

    const CREATE: &str = r#"{"cpus": {"boot_vcpus": 2, "max_vcpus": 2}, "memory": {"size": 268435456},
        "payload": {"kernel": "/guest/Image", "cmdline": "console=ttyS0"}}"#;

    /// Runs `requests` through a controller (after `initial`, if any); returns the statuses of the
    /// answers, the exit status and the fake VM's log.
    fn drive(
        initial: Option<VmConfig>,
        requests: Vec<ApiRequest>,
        fail_boot: bool,
    ) -> (Vec<ApiResponse>, GuestExit, Log) {
        drive_with(initial, requests, fail_boot, Log::default())
    }

    /// [`drive`], with the fake VM's log (and what fails) starting as `log`.
    fn drive_with(
        initial: Option<VmConfig>,
        requests: Vec<ApiRequest>,
        fail_boot: bool,
        log: Log,
    ) -> (Vec<ApiResponse>, GuestExit, Log) {
        let log = Rc::new(RefCell::new(log));
        let l = log.clone();
        let mut boot = move |c: &VmConfig| -> Result<Option<Box<dyn RunningVm>>, Error> {
            if fail_boot {
                return Err(Error::Devices(format!(
                    "{}: no such file",
                    c.kernel.display()
                )));
            }
            l.borrow_mut().boots += 1;
            Ok(Some(Box::new(FakeVm(l.clone())) as Box<dyn RunningVm>))
        };
        let (tx, rx) = channel();
        let mut answers = Vec::new();
        let mut pending = Vec::new();
        for r in requests {
            let (atx, arx) = channel();
            tx.send(VmmEvent::Api(r, atx)).unwrap();
            pending.push(arx);
        }
        ExitSender::new(tx.clone()).send(GuestExit::Signal(15));
        let mut c = Controller::new(rx, VmConfig::default(), &mut boot);
        let why = match initial {
            Some(cfg) => match c.boot_now(cfg).unwrap() {
                Some(w) => w,
                None => c.run(),
            },
            None => c.run(),
        };
        for p in pending {
            if let Ok(a) = p.try_recv() {
                answers.push(a);
            }
        }
        let log = std::mem::take(&mut *log.borrow_mut());
        (answers, why, log)
    }

    fn create() -> ApiRequest {
        ApiRequest::VmCreate(Box::new(serde_json::from_str(CREATE).unwrap()))
    }

    fn statuses(a: &[ApiResponse]) -> Vec<u16> {
        a.iter()
            .map(|r| match r {
                Ok(Some(_)) => 200,
                Ok(None) => 204,
                Err(e) => e.status,
            })
            .collect()
    }

    #[test]
    fn create_boot_pause_resume_shutdown() {
        let (a, why, log) = drive(
            None,
            vec![
                ApiRequest::VmmPing,
                ApiRequest::VmInfo,
                ApiRequest::VmBoot,
                create(),
                create(),
                ApiRequest::VmInfo,
                ApiRequest::VmPause,
                ApiRequest::VmBoot,
                ApiRequest::VmBoot,
                ApiRequest::VmInfo,
                ApiRequest::VmPause,
                ApiRequest::VmPause,
                ApiRequest::VmInfo,
                ApiRequest::VmCounters,
                ApiRequest::VmResume,
                ApiRequest::VmResume,
                ApiRequest::VmReboot,
                ApiRequest::VmPowerButton,
                ApiRequest::VmShutdown,
                ApiRequest::VmmPing,
            ],
            false,
        );
        assert_eq!(
            statuses(&a),
            [
                200, 404, 404, 204, 500, 200, 500, 204, 500, 200, 204, 500, 200, 200, 204, 500,
                500, 500, 204
            ]
        );
        let state = |r: &ApiResponse| r.as_ref().unwrap().as_ref().unwrap()["state"].clone();
        assert_eq!(state(&a[5]), "Created");
        assert_eq!(state(&a[9]), "Running");
        assert_eq!(state(&a[12]), "Paused");
        assert_eq!(
            a[9].as_ref().unwrap().as_ref().unwrap()["config"]["cpus"]["boot_vcpus"],
            2
        );
        assert_eq!(
            a[13].as_ref().unwrap().as_ref().unwrap()["_disk0"]["read_ops"],
            7
        );
        assert_eq!(
            a[0].as_ref().unwrap().as_ref().unwrap()["version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(why, GuestExit::Poweroff);
        assert_eq!(
            (log.boots, log.pauses, log.resumes, log.shutdowns),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn a_failed_boot_leaves_the_vm_created() {
        let (a, why, log) = drive(
            None,
            vec![
                create(),
                ApiRequest::VmBoot,
                ApiRequest::VmInfo,
                ApiRequest::VmDelete,
                ApiRequest::VmInfo,
            ],
            true,
        );
        assert_eq!(statuses(&a), [204, 500, 200, 204, 404]);
        assert!(a[1].as_ref().unwrap_err().messages[2].contains("no such file"));
        // Nothing ran; the pending signal ends the loop.
        assert_eq!((why, log.shutdowns), (GuestExit::Signal(15), 0));
    }

    #[test]
    fn invalid_configs_get_400() {
        let bad = ApiRequest::VmCreate(Box::new(
            serde_json::from_str(r#"{"cpus": {"boot_vcpus": 2, "max_vcpus": 3}}"#).unwrap(),
        ));
        let (a, _, _) = drive(None, vec![bad, ApiRequest::VmInfo], false);
        assert_eq!(statuses(&a), [400, 404]);
    }

    #[test]
    fn a_command_line_vm_is_running_at_once_and_a_signal_stops_it() {
        let cfg = VmConfig {
            kernel: "/k".into(),
            ..VmConfig::default()
        };
        let (a, why, log) = drive(
            Some(cfg),
            vec![ApiRequest::VmInfo, create(), ApiRequest::VmCounters],
            false,
        );
        assert_eq!(statuses(&a), [200, 500, 200]);
        assert_eq!(
            a[0].as_ref().unwrap().as_ref().unwrap()["config"]["payload"]["kernel"],
            "/k"
        );
        assert_eq!((why, log.shutdowns), (GuestExit::Signal(15), 1));
    }

    /// A disk that cannot be made durable at exit turns any ending into status 5.
    #[test]
    fn a_failed_final_flush_makes_the_exit_status_non_zero() {
        let cfg = VmConfig {
            kernel: "/k".into(),
            ..VmConfig::default()
        };
        let failing = Log {
            flush_fails: true,
            ..Log::default()
        };
        let (_, why, log) = drive_with(Some(cfg), vec![ApiRequest::VmShutdown], false, failing);
        assert_eq!(
            (why, why.code(), log.shutdowns),
            (GuestExit::Unflushed, 5, 1)
        );
    }

    #[test]
    fn vmm_shutdown_before_anything_ends_with_status_0() {
        let (a, why, _) = drive(None, vec![ApiRequest::VmmShutdown], false);
        assert_eq!(statuses(&a), [204]);
        assert_eq!(why.code(), 0);
    }
}
