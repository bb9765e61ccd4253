//! The JSON bodies, with cloud-hypervisor's field names (`vmm/src/vm_config.rs` there).
//!
//! rvvmm takes the part of cloud-hypervisor's VM configuration it implements. Unlike cloud-hypervisor,
//! which ignores fields it does not know, a field that is in neither (a typo such as `disk` for `disks`)
//! is an error: a VM must not boot without a device its orchestrator asked for. Fields cloud-hypervisor
//! has and rvvmm does not implement are accepted when they ask for nothing (absent, `null`, `false`,
//! empty), and named in the error otherwise (see [`VmConfig::unsupported`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether a JSON value asks for nothing: null, false, 0, "", [] or {}.
fn is_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Collects `name` into `out` when `value` asks for something.
fn check(out: &mut Vec<String>, name: &str, value: &Option<Value>) {
    if value.as_ref().is_some_and(|v| !is_nothing(v)) {
        out.push(name.to_string());
    }
}

/// vCPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpusConfig {
    /// vCPUs at boot (each pinned to a host core of its own).
    pub boot_vcpus: u32,
    /// Most vCPUs (rvvmm has no CPU hotplug: must equal `boot_vcpus`).
    pub max_vcpus: u32,
    /// Accepted, ignored (the topology is one core per vCPU).
    #[serde(default, skip_serializing)]
    pub topology: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub max_phys_bits: Option<Value>,
    /// Accepted, ignored (rvvmm has no nested virtualization for guests).
    #[serde(default, skip_serializing)]
    pub nested: Option<Value>,
    /// Not implemented (rvvmm picks free host cores itself): must ask for nothing.
    #[serde(default, skip_serializing)]
    pub affinity: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub kvm_hyperv: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub features: Option<Value>,
}

impl Default for CpusConfig {
    fn default() -> Self {
        CpusConfig {
            boot_vcpus: 1,
            max_vcpus: 1,
            topology: None,
            max_phys_bits: None,
            nested: None,
            affinity: None,
            kvm_hyperv: None,
            features: None,
        }
    }
}

/// Guest RAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Bytes of guest RAM.
    pub size: u64,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub mergeable: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub thp: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub prefault: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub shared: Option<Value>,
    /// Back guest RAM with 2 MiB huge pages (rvvmm's `--hugepages`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hugepages: bool,
    /// The huge page size: 2 MiB is the only one rvvmm uses (absent or 2097152).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepage_size: Option<u64>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub hotplug_method: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub hotplug_size: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub zones: Option<Value>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            size: 512 << 20,
            mergeable: None,
            thp: None,
            prefault: None,
            shared: None,
            hugepages: false,
            hugepage_size: None,
            hotplug_method: None,
            hotplug_size: None,
            zones: None,
        }
    }
}

/// What to boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadConfig {
    /// The kernel (Image, ELF or raw; rvvmm detects the format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The initramfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<String>,
    /// The kernel command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// Not implemented (rvvmm boots kernels directly): must ask for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

/// One token bucket of a rate limiter (cloud-hypervisor's `TokenBucketConfig`): `size` tokens (bytes or
/// operations) refilled every `refill_time` milliseconds, plus `one_time_burst` tokens spent first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucketConfig {
    /// Tokens of a full bucket.
    pub size: u64,
    /// Extra tokens available once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_burst: Option<u64>,
    /// Milliseconds to refill the bucket.
    pub refill_time: u64,
}

/// A device's rate limits (cloud-hypervisor's `RateLimiterConfig`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimiterConfig {
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<TokenBucketConfig>,
    /// Operations (requests, frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<TokenBucketConfig>,
}

/// A virtio-blk disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// The raw image.
    pub path: Option<String>,
    /// Read-only disk.
    #[serde(default)]
    pub readonly: bool,
    /// The device id (names its `vm.counters` entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The serial number the guest reads (virtio-blk GET_ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub queue_size: Option<Value>,
    /// Accepted, ignored (sparse images are used as they are).
    #[serde(default, skip_serializing)]
    pub sparse: Option<Value>,
    /// Accepted, ignored (rvvmm takes raw images only).
    #[serde(default, skip_serializing)]
    pub image_type: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub pci_segment: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub direct: Option<Value>,
    /// Not implemented: must ask for nothing (or 1).
    #[serde(default, skip_serializing)]
    pub num_queues: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub vhost_user: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub vhost_socket: Option<Value>,
    /// Bandwidth and operations limits of the device's data path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter_config: Option<RateLimiterConfig>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
}

/// A virtio-net card on a tap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// The tap interface (opened, or created).
    pub tap: Option<String>,
    /// The guest's MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The device id (names its `vm.counters` entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// rvvmm's own: move the data path into /dev/vhost-net.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vhost: bool,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub queue_size: Option<Value>,
    /// Accepted, ignored (the offloads are negotiated with the guest).
    #[serde(default, skip_serializing)]
    pub offload_tso: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub offload_ufo: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub offload_csum: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub pci_segment: Option<Value>,
    /// Not implemented (rvvmm does not configure the host side of the tap): must ask for nothing.
    #[serde(default, skip_serializing)]
    pub ip: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub mask: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub host_mac: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub mtu: Option<Value>,
    /// Not implemented (one queue pair): must ask for nothing (or 2).
    #[serde(default, skip_serializing)]
    pub num_queues: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub vhost_user: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub vhost_socket: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub vhost_mode: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub fds: Option<Value>,
    /// Bandwidth and operations limits of the device's data path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter_config: Option<RateLimiterConfig>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
}

/// virtio-rng.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngConfig {
    /// The entropy source: `/dev/urandom` or `/dev/random` (rvvmm serves both with getrandom(2)).
    pub src: String,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
}

/// virtio-vsock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsockConfig {
    /// The guest's context id (3 or more).
    pub cid: u64,
    /// cloud-hypervisor's host-side Unix socket. rvvmm's vsock is the kernel's vhost-vsock: host
    /// programs use AF_VSOCK (the host is CID 2), so a socket given here is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// The device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub pci_segment: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
}

/// A host PCI device passed through with VFIO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// `/sys/bus/pci/devices/DDDD:BB:DD.F`.
    pub path: String,
    /// The device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub pci_segment: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
}

/// The serial port or virtio console. rvvmm's UART is always on its standard input and output, and it
/// has no virtio console: accepted and reported, not acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// `Off`, `Pty`, `Tty`, `File`, `Socket` or `Null`.
    pub mode: String,
    /// For `File`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For `Socket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
}

/// The VM configuration of `vm.create` and `vm.info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// vCPUs (default 1).
    #[serde(default)]
    pub cpus: CpusConfig,
    /// Guest RAM (default 512 MiB, as cloud-hypervisor).
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Kernel, initramfs, command line (a kernel is required to boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadConfig>,
    /// Disks, vda, vdb, ... in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<DiskConfig>>,
    /// Network cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<Vec<NetConfig>>,
    /// virtio-rng.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rng: Option<RngConfig>,
    /// virtio-vsock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock: Option<VsockConfig>,
    /// VFIO passthrough devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceConfig>>,
    /// The serial port (accepted; rvvmm's UART is on its stdio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<ConsoleConfig>,
    /// The virtio console (accepted; rvvmm has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleConfig>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub iommu: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub watchdog: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub pvpanic: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub landlock_enable: Option<Value>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing)]
    pub platform: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub fs: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub pmem: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub balloon: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub numa: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub tpm: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub sgx_epc: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub rate_limit_groups: Option<Value>,
    /// Not implemented: must ask for nothing.
    #[serde(default, skip_serializing)]
    pub debug_console: Option<Value>,
}

impl VmConfig {
    /// The fields that ask for something rvvmm does not implement, as `section.field` names.
    pub fn unsupported(&self) -> Vec<String> {
        let mut out = Vec::new();
        let c = &self.cpus;
        check(&mut out, "cpus.affinity", &c.affinity);
        check(&mut out, "cpus.kvm_hyperv", &c.kvm_hyperv);
        check(&mut out, "cpus.features", &c.features);
        let m = &self.memory;
        if m.hugepage_size.is_some_and(|s| s != 2 << 20) {
            out.push("memory.hugepage_size (only 2097152)".into());
        }
        for (name, v) in [
            ("memory.shared", &m.shared),
            ("memory.hotplug_method", &m.hotplug_method),
            ("memory.hotplug_size", &m.hotplug_size),
            ("memory.zones", &m.zones),
        ] {
            check(&mut out, name, v);
        }
        if self.payload.as_ref().is_some_and(|p| p.firmware.is_some()) {
            out.push("payload.firmware".into());
        }
        let one = |v: &Option<Value>, n: u64| v.as_ref().and_then(Value::as_u64) == Some(n);
        for (i, d) in self.disks.iter().flatten().enumerate() {
            for (name, v) in [
                ("direct", &d.direct),
                ("vhost_user", &d.vhost_user),
                ("vhost_socket", &d.vhost_socket),
                ("iommu", &d.iommu),
            ] {
                check(&mut out, &format!("disks[{i}].{name}"), v);
            }
            if !one(&d.num_queues, 1) {
                check(&mut out, &format!("disks[{i}].num_queues"), &d.num_queues);
            }
        }
        for (i, n) in self.net.iter().flatten().enumerate() {
            for (name, v) in [
                ("ip", &n.ip),
                ("mask", &n.mask),
                ("host_mac", &n.host_mac),
                ("mtu", &n.mtu),
                ("vhost_user", &n.vhost_user),
                ("vhost_socket", &n.vhost_socket),
                ("vhost_mode", &n.vhost_mode),
                ("fds", &n.fds),
                ("iommu", &n.iommu),
            ] {
                check(&mut out, &format!("net[{i}].{name}"), v);
            }
            if !one(&n.num_queues, 2) {
                check(&mut out, &format!("net[{i}].num_queues"), &n.num_queues);
            }
        }
        if let Some(r) = &self.rng {
            check(&mut out, "rng.iommu", &r.iommu);
        }
        if let Some(v) = &self.vsock {
            check(&mut out, "vsock.iommu", &v.iommu);
        }
        for (i, d) in self.devices.iter().flatten().enumerate() {
            check(&mut out, &format!("devices[{i}].iommu"), &d.iommu);
        }
        for (name, v) in [
            ("fs", &self.fs),
            ("pmem", &self.pmem),
            ("balloon", &self.balloon),
            ("numa", &self.numa),
            ("tpm", &self.tpm),
            ("sgx_epc", &self.sgx_epc),
            ("rate_limit_groups", &self.rate_limit_groups),
            ("debug_console", &self.debug_console),
        ] {
            check(&mut out, name, v);
        }
        out
    }
}

/// The body of `vmm.ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmmPingResponse {
    /// The build ("rvvmm 0.1.0").
    pub build_version: String,
    /// The version ("0.1.0").
    pub version: String,
    /// The process id.
    pub pid: i64,
    /// Optional features compiled in (none).
    pub features: Vec<String>,
}

/// The body of `vm.info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmInfoResponse {
    /// The configuration the VM was created with.
    pub config: VmConfig,
    /// `Created`, `Running`, `Paused` or `Shutdown`.
    pub state: String,
    /// Bytes of guest RAM.
    pub memory_actual_size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_hypervisor_config_parses() {
        let json = r#"{
            "cpus": {"boot_vcpus": 2, "max_vcpus": 2, "max_phys_bits": 46},
            "memory": {"size": 536870912, "mergeable": false, "shared": false},
            "payload": {"kernel": "/guest/Image", "initramfs": "/guest/initrd", "cmdline": "console=ttyS0"},
            "disks": [{"path": "/a.img", "readonly": true, "num_queues": 1, "queue_size": 128}],
            "net": [{"tap": "tap0", "mac": "52:54:00:00:00:01", "num_queues": 2}],
            "rng": {"src": "/dev/urandom"},
            "vsock": {"cid": 3, "socket": "/tmp/v.sock"},
            "serial": {"mode": "Tty"}, "console": {"mode": "Off"},
            "iommu": false, "watchdog": false
        }"#;
        let c: VmConfig = serde_json::from_str(json).unwrap();
        assert_eq!((c.cpus.boot_vcpus, c.memory.size), (2, 512 << 20));
        assert_eq!(c.disks.as_ref().unwrap()[0].path.as_deref(), Some("/a.img"));
        assert_eq!(c.vsock.as_ref().unwrap().cid, 3);
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
        // What rvvmm reports back is valid input again.
        let again: VmConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again.payload, c.payload);
        assert!(again.disks.unwrap()[0].readonly);
    }

    #[test]
    fn defaults_are_cloud_hypervisors() {
        let c: VmConfig = serde_json::from_str("{}").unwrap();
        assert_eq!((c.cpus.boot_vcpus, c.memory.size), (1, 512 << 20));
        assert!(c.payload.is_none());
    }

    #[test]
    fn unknown_fields_are_errors() {
        for json in [
            r#"{"disk": [{"path": "/a"}]}"#,
            r#"{"cpus": {"boot_vcpus": 1, "max_vcpus": 1, "count": 3}}"#,
            r#"{"payload": {"kernal": "/k"}}"#,
            r#"{"net": [{"tap": "t", "macaddr": "x"}]}"#,
        ] {
            let e = serde_json::from_str::<VmConfig>(json).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{json}: {e}");
        }
        // Required fields and types.
        assert!(serde_json::from_str::<VmConfig>(r#"{"memory": {}}"#).is_err());
        assert!(serde_json::from_str::<VmConfig>(
            r#"{"cpus": {"boot_vcpus": -1, "max_vcpus": 1}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<VmConfig>(r#"{"vsock": {"socket": "/x"}}"#).is_err());
    }

    #[test]
    fn fields_rvvmm_does_not_implement_are_named() {
        let json = r#"{
            "memory": {"size": 1048576, "hugepages": true, "hugepage_size": 1073741824},
            "payload": {"kernel": "/k", "firmware": "/fw"},
            "disks": [{"path": "/a", "direct": true, "num_queues": 4}],
            "net": [{"tap": "t", "ip": "192.168.1.1"}],
            "fs": [{"tag": "x"}], "balloon": null
        }"#;
        let c: VmConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            c.unsupported(),
            [
                "memory.hugepage_size (only 2097152)",
                "payload.firmware",
                "disks[0].direct",
                "disks[0].num_queues",
                "net[0].ip",
                "fs"
            ]
        );
    }
}
