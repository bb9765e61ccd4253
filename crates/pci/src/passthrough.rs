//! Checks that a host PCI device can be handed to a guest with VFIO, before anything is opened, so that
//! each reason it cannot gets its own message (with what to do about it) and the device is left as it was.
//!
//! The sysfs and /dev roots are parameters so the checks are unit-tested on a fake tree.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The driver a passed-through device must be bound to.
pub const VFIO_DRIVER: &str = "vfio-pci";
/// Drivers VFIO accepts for the other devices of a group (besides vfio-pci or no driver).
const GROUP_FRIENDLY_DRIVERS: &[&str] = &["vfio-pci", "pci-stub", "pcieport"];

/// A device that passed the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassthroughTarget {
    /// `DDDD:BB:DD.F`.
    pub bdf: String,
    /// Its sysfs directory (`<sysfs>/bus/pci/devices/<bdf>`).
    pub sysfs_path: PathBuf,
    /// Its IOMMU group.
    pub group: u32,
}

/// Why a device cannot be passed through.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PassthroughError {
    /// No such PCI device.
    #[error("--device {bdf}: no such PCI device ({path} does not exist)")]
    NoSuchDevice {
        /// The address.
        bdf: String,
        /// The sysfs path looked at.
        path: String,
    },
    /// Bound to another driver, or to none.
    #[error("--device {bdf}: {}, not to vfio-pci; bind it with: echo vfio-pci > /sys/bus/pci/devices/{bdf}/driver_override; {}echo {bdf} > /sys/bus/pci/drivers_probe",
        driver.as_ref().map_or("it is not bound to any driver".to_string(), |d| format!("it is bound to {d}")),
        if driver.is_some() { format!("echo {bdf} > /sys/bus/pci/devices/{bdf}/driver/unbind; ") } else { String::new() })]
    NotBoundToVfio {
        /// The address.
        bdf: String,
        /// Its driver now.
        driver: Option<String>,
    },
    /// The device has no IOMMU group.
    #[error("--device {bdf}: it has no IOMMU group: VFIO passthrough needs an IOMMU for this device (is one present and enabled in the host kernel?)")]
    NoIommuGroup {
        /// The address.
        bdf: String,
    },
    /// Another device of the group is bound to a driver VFIO does not accept.
    #[error("--device {bdf}: its IOMMU group {group} also holds {other}, which is bound to {driver}; every device of the group must be bound to vfio-pci (or to no driver)")]
    GroupNotViable {
        /// The address.
        bdf: String,
        /// The group.
        group: u32,
        /// The other device.
        other: String,
        /// Its driver.
        driver: String,
    },
    /// The host has no VFIO.
    #[error("--device {bdf}: this host has no VFIO ({path} is missing): load it with 'modprobe vfio-pci'")]
    NoVfio {
        /// The address.
        bdf: String,
        /// The missing node.
        path: String,
    },
    /// The group is open in another process.
    #[error("--device {bdf}: IOMMU group {group} is in use by another process (another VM?)")]
    Busy {
        /// The address.
        bdf: String,
        /// The group.
        group: u32,
    },
    /// The group node cannot be opened for another reason.
    #[error("--device {bdf}: cannot open {path}: {reason}")]
    GroupOpen {
        /// The address.
        bdf: String,
        /// The node.
        path: String,
        /// Why.
        reason: String,
    },
    /// The same device twice.
    #[error("--device {bdf} is given twice")]
    Duplicate {
        /// The address.
        bdf: String,
    },
}

fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// Checks device `bdf` (`DDDD:BB:DD.F`) under the sysfs root `sysfs` (normally `/sys`) and device root
/// `dev` (normally `/dev`): it exists, is bound to vfio-pci, has an IOMMU group whose other devices VFIO
/// accepts, VFIO is there, and no other process holds the group.
pub fn check_passthrough(
    sysfs: &Path,
    dev: &Path,
    bdf: &str,
) -> Result<PassthroughTarget, PassthroughError> {
    let bdf = bdf.to_string();
    let path = sysfs.join("bus/pci/devices").join(&bdf);
    if !path.exists() {
        return Err(PassthroughError::NoSuchDevice {
            bdf,
            path: path.display().to_string(),
        });
    }
    let driver = link_name(&path.join("driver"));
    if driver.as_deref() != Some(VFIO_DRIVER) {
        return Err(PassthroughError::NotBoundToVfio { bdf, driver });
    }
    let group = link_name(&path.join("iommu_group"))
        .and_then(|g| g.parse::<u32>().ok())
        .ok_or_else(|| PassthroughError::NoIommuGroup { bdf: bdf.clone() })?;
    let members = sysfs.join(format!("kernel/iommu_groups/{group}/devices"));
    if let Ok(entries) = fs::read_dir(&members) {
        let mut others: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| *n != bdf)
            .collect();
        others.sort();
        for other in others {
            let drv = link_name(&sysfs.join("bus/pci/devices").join(&other).join("driver"));
            if let Some(d) = drv.filter(|d| !GROUP_FRIENDLY_DRIVERS.contains(&d.as_str())) {
                return Err(PassthroughError::GroupNotViable {
                    bdf,
                    group,
                    other,
                    driver: d,
                });
            }
        }
    }
    let container = dev.join("vfio/vfio");
    if !container.exists() {
        return Err(PassthroughError::NoVfio {
            bdf,
            path: container.display().to_string(),
        });
    }
    let node = dev.join(format!("vfio/{group}"));
    // A VFIO group can be open in one process only: opening it (and closing it at once) tells whether
    // another VM holds it.
    match fs::OpenOptions::new().read(true).write(true).open(&node) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            return Err(PassthroughError::Busy { bdf, group })
        }
        Err(e) => {
            let reason = if e.kind() == ErrorKind::NotFound {
                "no such file (is the group's device bound to vfio-pci?)".to_string()
            } else {
                e.to_string()
            };
            return Err(PassthroughError::GroupOpen {
                bdf,
                path: node.display().to_string(),
                reason,
            });
        }
    }
    Ok(PassthroughTarget {
        bdf,
        sysfs_path: path,
        group,
    })
}

/// Checks every device of `bdfs` with [`check_passthrough`], and that none is given twice.
pub fn check_all(
    sysfs: &Path,
    dev: &Path,
    bdfs: &[String],
) -> Result<Vec<PassthroughTarget>, PassthroughError> {
    let mut out: Vec<PassthroughTarget> = Vec::new();
    for bdf in bdfs {
        if out.iter().any(|t| &t.bdf == bdf) {
            return Err(PassthroughError::Duplicate { bdf: bdf.clone() });
        }
        out.push(check_passthrough(sysfs, dev, bdf)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const BDF: &str = "0000:00:02.0";

    struct Tree {
        dir: vmm_sys_util::tempdir::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            let dir = vmm_sys_util::tempdir::TempDir::new_with_prefix("/tmp/rvvmm-pci-").unwrap();
            for d in ["sys/bus/pci/devices", "sys/bus/pci/drivers", "dev/vfio"] {
                fs::create_dir_all(dir.as_path().join(d)).unwrap();
            }
            Tree { dir }
        }
        fn sys(&self) -> PathBuf {
            self.dir.as_path().join("sys")
        }
        fn dev(&self) -> PathBuf {
            self.dir.as_path().join("dev")
        }
        fn device(&self, bdf: &str, driver: Option<&str>, group: Option<u32>) {
            let d = self.sys().join("bus/pci/devices").join(bdf);
            fs::create_dir_all(&d).unwrap();
            if let Some(drv) = driver {
                let p = self.sys().join("bus/pci/drivers").join(drv);
                fs::create_dir_all(&p).unwrap();
                symlink(&p, d.join("driver")).unwrap();
            }
            if let Some(g) = group {
                let p = self.sys().join(format!("kernel/iommu_groups/{g}"));
                fs::create_dir_all(p.join("devices")).unwrap();
                symlink(&p, d.join("iommu_group")).unwrap();
                symlink(&d, p.join("devices").join(bdf)).unwrap();
            }
        }
        fn vfio(&self, group: u32) {
            fs::write(self.dev().join("vfio/vfio"), "").unwrap();
            fs::write(self.dev().join(format!("vfio/{group}")), "").unwrap();
        }
        fn check(&self, bdf: &str) -> Result<PassthroughTarget, PassthroughError> {
            check_passthrough(&self.sys(), &self.dev(), bdf)
        }
    }

    #[test]
    fn a_bound_device_in_its_own_group_passes() {
        let t = Tree::new();
        t.device(BDF, Some("vfio-pci"), Some(5));
        t.vfio(5);
        let target = t.check(BDF).unwrap();
        assert_eq!(target.group, 5);
        assert!(target.sysfs_path.ends_with(BDF));
    }

    #[test]
    fn each_problem_gets_its_own_error() {
        let t = Tree::new();
        let e = t.check("0000:00:09.0").unwrap_err();
        assert!(matches!(e, PassthroughError::NoSuchDevice { .. }));
        assert!(e.to_string().contains("no such PCI device"), "{e}");

        t.device(BDF, Some("virtio-pci"), Some(3));
        let e = t.check(BDF).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bound to virtio-pci"), "{msg}");
        assert!(
            msg.contains("driver_override") && msg.contains("driver/unbind"),
            "{msg}"
        );

        t.device("0000:00:03.0", None, Some(4));
        let msg = t.check("0000:00:03.0").unwrap_err().to_string();
        assert!(msg.contains("not bound to any driver"), "{msg}");
        assert!(!msg.contains("driver/unbind"), "{msg}");

        t.device("0000:00:04.0", Some("vfio-pci"), None);
        assert!(matches!(
            t.check("0000:00:04.0").unwrap_err(),
            PassthroughError::NoIommuGroup { .. }
        ));

        t.device("0000:00:05.0", Some("vfio-pci"), Some(7));
        let e = t.check("0000:00:05.0").unwrap_err();
        assert!(matches!(e, PassthroughError::NoVfio { .. }), "{e}");
        assert!(e.to_string().contains("modprobe vfio-pci"));
        fs::write(t.dev().join("vfio/vfio"), "").unwrap();
        let e = t.check("0000:00:05.0").unwrap_err();
        assert!(matches!(e, PassthroughError::GroupOpen { .. }), "{e}");
    }

    #[test]
    fn a_group_with_a_device_on_another_driver_is_refused() {
        let t = Tree::new();
        t.device(BDF, Some("vfio-pci"), Some(2));
        t.device("0000:00:02.1", Some("e1000e"), None);
        // Put the second function in group 2 by hand.
        let g = t.sys().join("kernel/iommu_groups/2/devices/0000:00:02.1");
        symlink(t.sys().join("bus/pci/devices/0000:00:02.1"), g).unwrap();
        t.vfio(2);
        let e = t.check(BDF).unwrap_err();
        assert_eq!(
            e,
            PassthroughError::GroupNotViable {
                bdf: BDF.into(),
                group: 2,
                other: "0000:00:02.1".into(),
                driver: "e1000e".into()
            }
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let t = Tree::new();
        t.device(BDF, Some("vfio-pci"), Some(5));
        t.vfio(5);
        let list = vec![BDF.to_string(), BDF.to_string()];
        assert!(matches!(
            check_all(&t.sys(), &t.dev(), &list).unwrap_err(),
            PassthroughError::Duplicate { .. }
        ));
        assert_eq!(check_all(&t.sys(), &t.dev(), &list[..1]).unwrap().len(), 1);
    }
}
