//! Checks on the configuration that need no KVM: the kernel and initrd files, guest RAM against the host,
//! where the boot blobs go, and which host cores the vcpus get. Every bad input is refused here with a clear
//! error before a VM exists.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arch::layout::{DRAM_BASE, MIN_MEMORY};
use arch::{place_boot_blobs, BootLayout};

use crate::config::{IrqchipMode, VirtioTransport, VmConfig};
use crate::kernel::HEADER_SIZE;
use crate::loader::{detect_format, place_kernel, KernelFormat, KernelPlacement};
use crate::{host, Error};

/// What the checks established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Where the kernel goes and where it starts.
    pub kernel: KernelPlacement,
    /// Kernel file length.
    pub kernel_len: u64,
    /// Where the FDT and initrd go.
    pub layout: BootLayout,
    /// One host core per vcpu.
    pub cores: Vec<usize>,
}

fn open_file(path: &Path, what: &'static str) -> Result<(File, u64), Error> {
    let err = |source| Error::File {
        what,
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((f, meta.len()))
}

fn mib(b: u64) -> String {
    format!("{} MiB", b >> 20)
}

/// The guest name of disk `index` (vda, vdb, ...).
fn disk_name(index: usize) -> String {
    format!("vd{}", (b'a' + index as u8) as char)
}

/// One image file may back only one disk: the same file twice (under any name) would be two devices
/// writing one image, and its lock would call the second "in use by another rvvmm".
fn check_distinct_disks(config: &VmConfig) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: Vec<((u64, u64), usize)> = Vec::new();
    for (i, disk) in config.disks.iter().enumerate() {
        // A file that cannot be inspected is reported when the disk is opened.
        let Ok(meta) = std::fs::metadata(&disk.path) else {
            continue;
        };
        let key = (meta.dev(), meta.ino());
        if let Some(&(_, first)) = seen.iter().find(|(k, _)| *k == key) {
            return Err(Error::Devices(format!(
                "--disk {} is the image of {} already; one image can back only one disk",
                disk.path.display(),
                disk_name(first)
            )));
        }
        seen.push((key, i));
    }
    Ok(())
}

/// The huge page size `--hugepages` backs guest RAM with.
pub const HUGE_PAGE: u64 = 2 << 20;

/// Runs every check; `allowed_cpus` and `host_memory` describe the host.
pub fn check(config: &VmConfig, allowed_cpus: &[usize], host_memory: u64) -> Result<Plan, Error> {
    check_distinct_disks(config)?;
    let mut fds: Vec<i32> = config.nets.iter().filter_map(|n| n.fd).collect();
    fds.sort_unstable();
    if let Some(w) = fds.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Devices(format!(
            "--net fd={} is given twice: each card needs its own tap fd",
            w[0]
        )));
    }
    for fd in &fds {
        // SAFETY: F_GETFD takes no pointer; it fails with EBADF when the fd is not open.
        if unsafe { libc::fcntl(*fd, libc::F_GETFD) } < 0 {
            return Err(Error::Devices(format!(
                "--net fd={fd}: fd {fd} is not open in rvvmm (pass it open, without close-on-exec)"
            )));
        }
    }
    if let Some(user) = config.user {
        if !crate::privileges::can_switch(user) {
            return Err(Error::Devices(format!(
                "--user {user}: only root can switch to another user (rvvmm runs as uid {})",
                // SAFETY: geteuid takes no arguments and cannot fail.
                unsafe { libc::geteuid() }
            )));
        }
    }
    if !config.devices.is_empty() && config.irqchip == IrqchipMode::Plic {
        return Err(Error::Devices(
            "--device needs the in-kernel AIA irqchip (passthrough interrupts are MSI-X, delivered to the guest's IMSIC); it cannot be used with --irqchip plic".into(),
        ));
    }
    if config.virtio_transport == VirtioTransport::Pci && config.irqchip == IrqchipMode::Plic {
        return Err(Error::Devices(
            "--virtio-transport pci needs the in-kernel AIA irqchip (its interrupts are MSI-X, delivered to the guest's IMSIC); it cannot be used with --irqchip plic".into(),
        ));
    }
    if config.memory < MIN_MEMORY {
        return Err(Error::Memory(format!(
            "--memory {} is too small: at least {}",
            config.memory,
            mib(MIN_MEMORY)
        )));
    }
    if config.hugepages && !config.memory.is_multiple_of(HUGE_PAGE) {
        return Err(Error::Memory(format!(
            "--memory {} is not a multiple of the 2 MiB huge page size (--hugepages)",
            config.memory
        )));
    }
    if DRAM_BASE.checked_add(config.memory).is_none() || config.memory > host_memory {
        return Err(Error::Memory(format!(
            "--memory {} is more than this host's {} of RAM",
            mib(config.memory),
            mib(host_memory)
        )));
    }
    let cores = host::select_cores(&config.cpus, allowed_cpus).map_err(Error::Cores)?;

    let (mut kernel_file, kernel_len) = open_file(&config.kernel, "kernel")?;
    let read_err = |source| Error::File {
        what: "kernel",
        path: config.kernel.clone(),
        source,
    };
    let mut head = Vec::with_capacity(HEADER_SIZE);
    (&mut kernel_file)
        .take(HEADER_SIZE as u64)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let format = config.kernel_format.unwrap_or_else(|| detect_format(&head));
    // An ELF is parsed whole (bare-metal kernels are small); the others need only their header.
    if format == KernelFormat::Elf {
        kernel_file.read_to_end(&mut head).map_err(read_err)?;
    }
    let ram_end = DRAM_BASE
        .checked_add(config.memory)
        .ok_or_else(|| Error::Memory("--memory overflows the address space".into()))?;
    let kernel = place_kernel(
        &head,
        kernel_len,
        Some(format),
        config.kernel_addr,
        (DRAM_BASE, ram_end),
    )
    .map_err(|source| Error::Kernel {
        path: config.kernel.clone(),
        source,
    })?;
    // `auto` is assumed to find the AIA unless the PLIC is asked for (if the host has none, the devices
    // go to virtio-mmio and the slot check happens when they are placed).
    let linux = kernel.format == KernelFormat::Image;
    let transport = config
        .virtio_transport
        .resolve(config.irqchip != IrqchipMode::Plic, linux);
    let extra = usize::from(config.rng) + usize::from(config.vsock.is_some());
    let virtio = config.disks.len() + config.nets.len() + extra;
    if transport == VirtioTransport::Pci {
        // PCI slot 0 is the host bridge; passthrough devices share the bus.
        let room = pci::root::NUM_SLOTS - 1;
        if virtio + config.devices.len() > room {
            return Err(Error::Devices(format!(
                "too many PCI devices: {virtio} virtio and {} --device, at most {room} in all",
                config.devices.len()
            )));
        }
    } else if virtio > arch::layout::VIRTIO_MMIO_SLOTS as usize {
        return Err(Error::Devices(format!(
            "too many virtio devices: {} --disk, {} --net and {extra} rng/vsock, at most {} in all",
            config.disks.len(),
            config.nets.len(),
            arch::layout::VIRTIO_MMIO_SLOTS
        )));
    }
    let kernel_end = kernel.end;
    let initrd_len = match &config.initrd {
        Some(p) => Some(open_file(p, "initrd")?.1),
        None => None,
    };
    let layout = place_boot_blobs(config.memory, kernel_end, initrd_len).map_err(Error::Layout)?;
    Ok(Plan {
        kernel,
        kernel_len,
        layout,
        cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CpuPlacement, IrqchipMode, VirtioTransport, VmConfig};
    use crate::kernel::tests::header;
    use std::io::Write;
    use std::path::PathBuf;

    fn tmpfile(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rvvmm-preflight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    fn config(kernel: PathBuf) -> VmConfig {
        VmConfig {
            kernel,
            memory: 512 << 20,
            cpus: CpuPlacement::Count(2),
            ..VmConfig::default()
        }
    }

    const HOST_MEM: u64 = 4 << 30;

    #[test]
    fn a_good_config_is_planned() {
        let mut k = header(20 << 20);
        k.resize(1 << 20, 0);
        let mut c = config(tmpfile("good-Image", &k));
        c.initrd = Some(tmpfile("good-initrd", &[0u8; 10000]));
        let plan = check(&c, &[0, 1, 2, 3], HOST_MEM).unwrap();
        assert_eq!(plan.kernel.entry, 0x8020_0000);
        assert_eq!(plan.cores, vec![0, 1]);
        assert_eq!(plan.layout.fdt_addr, 0x8000_0000 + (512 << 20) - 0x10000);
        let (start, size) = plan.layout.initrd.unwrap();
        assert_eq!(size, 10000);
        assert!(start + size <= plan.layout.fdt_addr);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let k = tmpfile("k", &header(0));
        let msg = |c: &VmConfig| check(c, &[0, 1], HOST_MEM).unwrap_err().to_string();

        // The same image twice, under two names.
        let img = tmpfile("disk.img", &[0u8; 1024]);
        let mut c = config(k.clone());
        let other_name = img.parent().unwrap().join(".").join("disk.img");
        for path in [img.clone(), other_name] {
            c.disks.push(crate::config::DiskConfig {
                path,
                readonly: false,
                id: None,
                rate_limiter: None,
            });
        }
        assert!(
            msg(&c).contains("is the image of vda already"),
            "{}",
            msg(&c)
        );

        let c = config(PathBuf::from("/nonexistent/Image"));
        assert!(
            msg(&c).contains("cannot read kernel /nonexistent/Image"),
            "{}",
            msg(&c)
        );

        // Neither ELF nor Image is loaded raw; forced as an Image it is refused.
        let mut c = config(tmpfile(
            "notimage",
            b"#!/bin/sh\necho this is not a kernel, but it is long enough to have a header\n",
        ));
        assert_eq!(
            check(&c, &[0, 1], HOST_MEM).unwrap().kernel.format,
            crate::loader::KernelFormat::Raw
        );
        c.kernel_format = Some(crate::loader::KernelFormat::Image);
        assert!(msg(&c).contains("not a RISC-V Linux Image"), "{}", msg(&c));
        // A raw kernel outside RAM, and an ELF for another machine.
        c.kernel_format = Some(crate::loader::KernelFormat::Raw);
        c.kernel_addr = 0x1000;
        assert!(msg(&c).contains("does not fit in guest RAM"), "{}", msg(&c));
        let c = config(tmpfile(
            "x86-elf",
            &crate::loader::tests::elf(62, 2, 0x8020_0000, &[(0x8020_0000, 16, 16)]),
        ));
        assert!(msg(&c).contains("ELF for machine 62"), "{}", msg(&c));

        let c = config(std::env::temp_dir());
        assert!(msg(&c).contains("not a regular file"), "{}", msg(&c));

        let mut c = config(k.clone());
        c.initrd = Some(PathBuf::from("/nonexistent/initrd"));
        assert!(msg(&c).contains("cannot read initrd"), "{}", msg(&c));

        let mut c = config(k.clone());
        c.cpus = CpuPlacement::Count(3);
        assert!(msg(&c).contains("--cores 3"), "{}", msg(&c));

        let mut c = config(k.clone());
        c.memory = 64 << 30;
        assert!(msg(&c).contains("more than this host"), "{}", msg(&c));
        c.memory = 1 << 20;
        assert!(msg(&c).contains("too small"), "{}", msg(&c));

        // A kernel whose image_size fills the RAM leaves no room for the FDT.
        let mut c = config(tmpfile("huge", &header(600 << 20)));
        c.memory = 512 << 20;
        assert!(msg(&c).contains("does not fit in guest RAM"), "{}", msg(&c));
        c.memory = 1 << 30;
        let mut big = header((1022 << 20) - 0x8000);
        big.resize(4096, 0);
        let c2 = VmConfig {
            kernel: tmpfile("huge2", &big),
            ..c.clone()
        };
        assert!(msg(&c2).contains("do not fit"), "{}", msg(&c2));

        // An initrd that does not fit.
        let mut c = config(k.clone());
        c.memory = 32 << 20;
        let big =
            std::fs::File::create(std::env::temp_dir().join("rvvmm-preflight-big-initrd")).unwrap();
        big.set_len(40 << 20).unwrap();
        c.initrd = Some(std::env::temp_dir().join("rvvmm-preflight-big-initrd"));
        assert!(msg(&c).contains("do not fit"), "{}", msg(&c));

        // virtio-pci's MSI-X needs the in-kernel AIA too.
        let mut c = config(k.clone());
        c.virtio_transport = VirtioTransport::Pci;
        c.irqchip = IrqchipMode::Plic;
        assert!(
            msg(&c).contains("--virtio-transport pci needs the in-kernel AIA"),
            "{}",
            msg(&c)
        );

        // Passthrough needs MSI, which the userspace PLIC cannot deliver.
        let mut c = config(k.clone());
        c.devices = vec!["0000:00:01.0".parse().unwrap()];
        c.irqchip = IrqchipMode::Plic;
        assert!(
            msg(&c).contains("--device needs the in-kernel AIA"),
            "{}",
            msg(&c)
        );
        c.irqchip = IrqchipMode::Auto;
        assert!(check(&c, &[0, 1], HOST_MEM).is_ok());

        // Nine disks fit the PCI bus a Linux kernel gets on the AIA, not the eight virtio-mmio slots.
        let mut c = config(k);
        c.disks = vec!["path=x".parse().unwrap(); 9];
        c.virtio_transport = VirtioTransport::Mmio;
        assert!(msg(&c).contains("too many virtio devices"), "{}", msg(&c));
        c.virtio_transport = VirtioTransport::Auto;
        c.disks = vec!["path=x".parse().unwrap(); 32];
        assert!(
            msg(&c).contains("too many PCI devices: 32 virtio"),
            "{}",
            msg(&c)
        );
    }
}
