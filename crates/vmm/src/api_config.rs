//! The API's VM configuration (cloud-hypervisor's JSON, [`api::types::VmConfig`]) to and from rvvmm's one
//! [`VmConfig`]: a VM created through `vm.create` is built by the same code as one from the command line.

use std::path::PathBuf;

use api::types as json;
use virtio::rate_limiter::{BucketConfig, RateLimiterConfig};

use crate::config::{
    CpuPlacement, DiskConfig, MacAddr, NetConfig, PciAddress, VmConfig, VsockConfig,
};

/// rvvmm's configuration for `api`; what the API does not carry (irqchip, seccomp, shared cores, the
/// timeout, ...) comes from `defaults` (the command line). The error says what is wrong, in one line.
pub fn from_api(api: &json::VmConfig, defaults: &VmConfig) -> Result<VmConfig, String> {
    let unsupported = api.unsupported();
    if !unsupported.is_empty() {
        return Err(format!(
            "not supported by rvvmm: {}",
            unsupported.join(", ")
        ));
    }
    let cpus = &api.cpus;
    if cpus.boot_vcpus == 0 {
        return Err("cpus.boot_vcpus must be at least 1".into());
    }
    if cpus.max_vcpus != cpus.boot_vcpus {
        return Err(format!(
            "cpus.max_vcpus ({}) must equal cpus.boot_vcpus ({}): rvvmm has no CPU hotplug",
            cpus.max_vcpus, cpus.boot_vcpus
        ));
    }
    if api.memory.size == 0 {
        return Err("memory.size must be greater than zero".into());
    }
    let payload = api.payload.clone().unwrap_or_default();
    let kernel = payload
        .kernel
        .ok_or("payload.kernel is required (rvvmm boots a kernel directly)")?;
    let mut disks = Vec::new();
    for (i, d) in api.disks.iter().flatten().enumerate() {
        let path = d
            .path
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or(format!("disks[{i}].path is required"))?;
        if d.serial.as_ref().is_some_and(|s| s.len() > 20) {
            return Err(format!("disks[{i}].serial is longer than 20 bytes"));
        }
        disks.push(DiskConfig {
            path: PathBuf::from(path),
            readonly: d.readonly,
            id: d.serial.clone(),
            rate_limiter: rate_limiter_from_api(&d.rate_limiter_config)
                .map_err(|e| format!("disks[{i}].rate_limiter_config: {e}"))?,
        });
    }
    let mut nets = Vec::new();
    for (i, n) in api.net.iter().flatten().enumerate() {
        let tap = n.tap.as_deref().ok_or(format!(
            "net[{i}].tap is required (rvvmm does not create unnamed taps)"
        ))?;
        // The command line's parser checks the name and the MAC.
        let mut spec = format!("tap={tap}");
        if let Some(mac) = &n.mac {
            spec.push_str(&format!(",mac={mac}"));
        }
        if n.vhost {
            spec.push_str(",vhost=on");
        }
        let mut net: NetConfig = spec.parse().map_err(|e| format!("net[{i}]: {e}"))?;
        net.rate_limiter = rate_limiter_from_api(&n.rate_limiter_config)
            .map_err(|e| format!("net[{i}].rate_limiter_config: {e}"))?;
        if net.vhost && net.rate_limiter.is_some() {
            return Err(format!(
                "net[{i}]: rate limits apply to rvvmm's own data path, not to vhost"
            ));
        }
        nets.push(net);
    }
    let rng = match &api.rng {
        None => false,
        Some(r) if r.src == "/dev/urandom" || r.src == "/dev/random" => true,
        Some(r) => {
            return Err(format!(
                "rng.src '{}': rvvmm serves entropy from getrandom(2) only (/dev/urandom or /dev/random)",
                r.src
            ))
        }
    };
    let vsock = match &api.vsock {
        None => None,
        Some(v) => {
            if let Some(socket) = &v.socket {
                log::warn!(
                    "vsock.socket {socket} is not used: rvvmm's vsock is the kernel's vhost-vsock (host programs use AF_VSOCK, CID 2)"
                );
            }
            Some(VsockConfig::new(v.cid).map_err(|e| e.to_string())?)
        }
    };
    let mut devices = Vec::new();
    for (i, d) in api.devices.iter().flatten().enumerate() {
        let addr: PciAddress = format!("path={}", d.path)
            .parse()
            .map_err(|e| format!("devices[{i}]: {e}"))?;
        devices.push(addr);
    }
    Ok(VmConfig {
        kernel: PathBuf::from(kernel),
        kernel_format: None,
        initrd: payload.initramfs.map(PathBuf::from),
        cmdline: payload.cmdline.unwrap_or_else(|| defaults.cmdline.clone()),
        memory: api.memory.size,
        hugepages: api.memory.hugepages,
        cpus: CpuPlacement::Count(cpus.boot_vcpus as usize),
        disks,
        nets,
        devices,
        rng,
        vsock,
        dump_dtb: None,
        ..defaults.clone()
    })
}

/// The device's limits from the API's `rate_limiter_config` (`None` when it limits nothing).
fn rate_limiter_from_api(
    api: &Option<json::RateLimiterConfig>,
) -> Result<Option<RateLimiterConfig>, String> {
    let Some(api) = api else {
        return Ok(None);
    };
    let bucket = |name: &str, b: Option<json::TokenBucketConfig>| match b {
        None => Ok(None),
        Some(b) if b.size > 0 && b.refill_time > 0 => Ok(Some(BucketConfig {
            size: b.size,
            one_time_burst: b.one_time_burst.unwrap_or(0),
            refill_time_ms: b.refill_time,
        })),
        Some(_) => Err(format!("{name}: size and refill_time must be above 0")),
    };
    let config = RateLimiterConfig {
        bandwidth: bucket("bandwidth", api.bandwidth)?,
        ops: bucket("ops", api.ops)?,
    };
    Ok((!config.is_unlimited()).then_some(config))
}

/// The API's form of a device's limits.
fn rate_limiter_to_api(config: &Option<RateLimiterConfig>) -> Option<json::RateLimiterConfig> {
    let bucket = |b: BucketConfig| json::TokenBucketConfig {
        size: b.size,
        one_time_burst: (b.one_time_burst > 0).then_some(b.one_time_burst),
        refill_time: b.refill_time_ms,
    };
    config.map(|c| json::RateLimiterConfig {
        bandwidth: c.bandwidth.map(bucket),
        ops: c.ops.map(bucket),
    })
}

/// The API's view of `config` (what `vm.info` reports for a VM from the command line).
pub fn to_api(config: &VmConfig) -> json::VmConfig {
    let n = config.cpus.num_vcpus() as u32;
    let path = |p: &PathBuf| p.display().to_string();
    json::VmConfig {
        cpus: json::CpusConfig {
            boot_vcpus: n,
            max_vcpus: n,
            ..Default::default()
        },
        memory: json::MemoryConfig {
            size: config.memory,
            hugepages: config.hugepages,
            ..Default::default()
        },
        payload: Some(json::PayloadConfig {
            kernel: Some(path(&config.kernel)),
            initramfs: config.initrd.as_ref().map(path),
            cmdline: Some(config.cmdline.clone()),
            firmware: None,
        }),
        disks: (!config.disks.is_empty()).then(|| {
            config
                .disks
                .iter()
                .map(|d| json::DiskConfig {
                    path: Some(path(&d.path)),
                    readonly: d.readonly,
                    serial: d.id.clone(),
                    rate_limiter_config: rate_limiter_to_api(&d.rate_limiter),
                    ..Default::default()
                })
                .collect()
        }),
        net: (!config.nets.is_empty()).then(|| {
            config
                .nets
                .iter()
                .map(|n| json::NetConfig {
                    // A tap given as an inherited fd has no name rvvmm was told.
                    tap: (!n.tap.is_empty()).then(|| n.tap.clone()),
                    mac: n.mac.map(|m: MacAddr| m.to_string()),
                    vhost: n.vhost,
                    rate_limiter_config: rate_limiter_to_api(&n.rate_limiter),
                    ..Default::default()
                })
                .collect()
        }),
        rng: config.rng.then(|| json::RngConfig {
            src: "/dev/urandom".into(),
            iommu: None,
        }),
        vsock: config.vsock.map(|v| json::VsockConfig {
            cid: v.cid,
            socket: None,
            id: None,
            pci_segment: None,
            iommu: None,
        }),
        devices: (!config.devices.is_empty()).then(|| {
            config
                .devices
                .iter()
                .map(|d| json::DeviceConfig {
                    path: format!("/sys/bus/pci/devices/{d}"),
                    id: None,
                    pci_segment: None,
                    iommu: None,
                })
                .collect()
        }),
        serial: Some(json::ConsoleConfig {
            mode: "Tty".into(),
            file: None,
            socket: None,
            iommu: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> json::VmConfig {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_full_config_becomes_the_command_lines() {
        let api = parse(
            r#"{"cpus": {"boot_vcpus": 2, "max_vcpus": 2}, "memory": {"size": 536870912},
                "payload": {"kernel": "/guest/Image", "initramfs": "/guest/initrd", "cmdline": "console=ttyS0 quiet"},
                "disks": [{"path": "/d.img", "readonly": true, "serial": "disk0"}],
                "net": [{"tap": "tap0", "mac": "52:54:00:00:00:07", "vhost": true}],
                "rng": {"src": "/dev/urandom"}, "vsock": {"cid": 5, "socket": "/x"},
                "devices": [{"path": "/sys/bus/pci/devices/0000:00:02.0"}]}"#,
        );
        let defaults = VmConfig {
            seccomp: false,
            ..VmConfig::default()
        };
        let c = from_api(&api, &defaults).unwrap();
        assert_eq!(c.kernel, PathBuf::from("/guest/Image"));
        assert_eq!(c.initrd, Some(PathBuf::from("/guest/initrd")));
        assert_eq!((c.memory, c.cpus.num_vcpus()), (512 << 20, 2));
        assert_eq!(c.disks[0].id.as_deref(), Some("disk0"));
        assert!(c.disks[0].readonly);
        assert_eq!(c.nets[0].mac.unwrap().to_string(), "52:54:00:00:00:07");
        assert!(c.nets[0].vhost && c.rng && !c.seccomp);
        assert_eq!(c.vsock.unwrap().cid, 5);
        assert_eq!(c.devices[0].to_string(), "0000:00:02.0");
        // And back: what vm.info reports is accepted by vm.create and means the same.
        let again = from_api(&to_api(&c), &defaults).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn what_cannot_be_built_is_refused_with_its_name() {
        let d = VmConfig::default();
        let err = |s: &str| from_api(&parse(s), &d).unwrap_err();
        assert!(err("{}").contains("payload.kernel is required"));
        let k = r#""payload": {"kernel": "/k"}"#;
        assert!(err(&format!(
            r#"{{{k}, "cpus": {{"boot_vcpus": 1, "max_vcpus": 4}}}}"#
        ))
        .contains("no CPU hotplug"));
        assert!(err(&format!(
            r#"{{{k}, "cpus": {{"boot_vcpus": 0, "max_vcpus": 0}}}}"#
        ))
        .contains("at least 1"));
        assert!(err(&format!(r#"{{{k}, "memory": {{"size": 0}}}}"#)).contains("memory.size"));
        assert!(err(&format!(r#"{{{k}, "disks": [{{"readonly": true}}]}}"#))
            .contains("disks[0].path is required"));
        assert!(
            err(&format!(r#"{{{k}, "net": [{{"tap": "t", "mac": "zz"}}]}}"#))
                .contains("invalid MAC address")
        );
        assert!(err(&format!(
            r#"{{{k}, "net": [{{"mac": "52:54:00:00:00:01"}}]}}"#
        ))
        .contains("net[0].tap is required"));
        assert!(err(&format!(r#"{{{k}, "rng": {{"src": "/dev/hwrng"}}}}"#)).contains("getrandom"));
        assert!(err(&format!(r#"{{{k}, "vsock": {{"cid": 2}}}}"#)).contains("reserved"));
        assert!(
            err(&format!(r#"{{{k}, "devices": [{{"path": "/dev/sda"}}]}}"#)).contains("devices[0]")
        );
        assert!(err(&format!(
            r#"{{{k}, "memory": {{"size": 1048576, "zones": [{{}}]}}}}"#
        ))
        .contains("not supported by rvvmm: memory.zones"));
        let huge = parse(&format!(
            r#"{{{k}, "memory": {{"size": 4194304, "hugepages": true}}}}"#
        ));
        assert!(from_api(&huge, &d).unwrap().hugepages);
        assert!(to_api(&from_api(&huge, &d).unwrap()).memory.hugepages);
    }
}
