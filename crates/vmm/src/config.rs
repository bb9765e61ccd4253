//! The VM configuration and the parsers for the command line's value syntaxes (sizes, core lists,
//! `key=value` device options). Everything here is arch-neutral and unit-tested on any host.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use virtio::rate_limiter::{BucketConfig, RateLimiterConfig};

/// Default guest RAM: 256 MiB.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// Default kernel command line.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0";

/// A value on the command line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn perr(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// Parses a guest physical address: hexadecimal with `0x` (`0x80200000`) or decimal.
pub fn parse_addr(s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => t.parse::<u64>(),
    };
    v.map_err(|_| perr(format!("invalid address '{s}': expected e.g. 0x80200000")))
}

/// Parses a size: plain bytes (`536870912`) or a number with a binary suffix K, M, G, T (`512M`, `2G`,
/// `64KiB`). Zero and overflowing sizes are errors.
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(perr(format!(
            "invalid size '{s}': expected e.g. 512M, 2G or a number of bytes"
        )));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| perr(format!("invalid size '{s}': number too large")))?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(perr(format!(
                "invalid size '{s}': unknown suffix '{suffix}' (use K, M, G or T)"
            )))
        }
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| perr(format!("invalid size '{s}': too large")))?;
    if bytes == 0 {
        return Err(perr(format!(
            "invalid size '{s}': must be greater than zero"
        )));
    }
    Ok(bytes)
}

/// A set of host cores, e.g. `1-2,5`; kept sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// The largest core number `--cpus` accepts (CPU_SETSIZE).
pub const MAX_HOST_CPU: usize = 1023;

impl FromStr for CpuList {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut cpus = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let num = |t: &str| -> Result<usize, ParseError> {
                let n: usize = t.trim().parse().map_err(|_| {
                    perr(format!(
                        "invalid core list '{s}': '{t}' is not a core number"
                    ))
                })?;
                if n > MAX_HOST_CPU {
                    return Err(perr(format!(
                        "invalid core list '{s}': core {n} is above {MAX_HOST_CPU}"
                    )));
                }
                Ok(n)
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(perr(format!(
                            "invalid core list '{s}': range {a}-{b} is backwards"
                        )));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(num(part)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(|c| c.to_string()).collect();
        f.write_str(&s.join(","))
    }
}

/// Splits `key=value,key=value` into pairs, rejecting keys not in `allowed` and repeated keys.
fn parse_kv<'a>(
    s: &'a str,
    what: &str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, ParseError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| perr(format!("invalid {what} '{s}': '{item}' is not key=value")))?;
        if !allowed.contains(&k) {
            return Err(perr(format!(
                "invalid {what} '{s}': unknown key '{k}' (expected {})",
                allowed.join(", ")
            )));
        }
        if out.iter().any(|(ok, _)| *ok == k) {
            return Err(perr(format!("invalid {what} '{s}': '{k}' given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn parse_on_off(v: &str, key: &str) -> Result<bool, ParseError> {
    match v {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(perr(format!("invalid {key}='{v}': expected on or off"))),
    }
}

/// The rate limiter keys of `--disk` and `--net` (cloud-hypervisor's): a bandwidth bucket of `bw_size`
/// bytes refilled every `bw_refill_time` ms, an operations bucket of `ops_size` requests refilled every
/// `ops_refill_time` ms, and the one-time bursts of each.
const RATE_LIMITER_KEYS: [&str; 6] = [
    "bw_size",
    "bw_one_time_burst",
    "bw_refill_time",
    "ops_size",
    "ops_one_time_burst",
    "ops_refill_time",
];

/// Collects the rate limiter keys of one `--disk` or `--net` value (`what` and `s` name it in errors):
/// `None` when none is given; a bucket needs both its size and its refill time.
fn parse_rate_limiter(
    pairs: &[(&str, &str)],
    what: &str,
    s: &str,
) -> Result<Option<RateLimiterConfig>, ParseError> {
    let mut values = [None::<u64>; 6];
    for (k, v) in pairs {
        if let Some(i) = RATE_LIMITER_KEYS.iter().position(|key| key == k) {
            values[i] = Some(v.parse().map_err(|_| {
                perr(format!(
                    "invalid {what} '{s}': {k}='{v}' is not a non-negative number"
                ))
            })?);
        }
    }
    let bucket = |prefix: &str, [size, burst, refill]: [Option<u64>; 3]| {
        match (size, refill) {
        (None, None) if burst.is_none() => Ok(None),
        (Some(size), Some(refill_time_ms)) if size > 0 && refill_time_ms > 0 => {
            Ok(Some(BucketConfig {
                size,
                one_time_burst: burst.unwrap_or(0),
                refill_time_ms,
            }))
        }
        _ => Err(perr(format!(
            "invalid {what} '{s}': a rate limit needs {prefix}_size and {prefix}_refill_time, both above 0"
        ))),
    }
    };
    let [a, b, c, d, e, f] = values;
    let config = RateLimiterConfig {
        bandwidth: bucket("bw", [a, b, c])?,
        ops: bucket("ops", [d, e, f])?,
    };
    Ok((!config.is_unlimited()).then_some(config))
}

/// `--disk path=FILE[,readonly=on][,id=NAME][,bw_size=..,bw_refill_time=..][,ops_size=..,..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// Backing raw image.
    pub path: PathBuf,
    /// Refuse guest writes.
    pub readonly: bool,
    /// Serial reported through VIRTIO_BLK_T_GET_ID.
    pub id: Option<String>,
    /// Limits of the guest's requests, if any.
    pub rate_limiter: Option<RateLimiterConfig>,
}

impl FromStr for DiskConfig {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut path = None;
        let mut readonly = false;
        let mut id = None;
        let keys: Vec<&str> = ["path", "readonly", "id"]
            .into_iter()
            .chain(RATE_LIMITER_KEYS)
            .collect();
        let pairs = parse_kv(s, "disk", &keys)?;
        let rate_limiter = parse_rate_limiter(&pairs, "disk", s)?;
        for (k, v) in pairs {
            match k {
                _ if RATE_LIMITER_KEYS.contains(&k) => {}
                "path" if !v.is_empty() => path = Some(PathBuf::from(v)),
                "readonly" => readonly = parse_on_off(v, k)?,
                "id" if v.len() <= 20 => id = Some(v.to_string()),
                "id" => {
                    return Err(perr(format!(
                        "invalid disk '{s}': id is longer than 20 bytes"
                    )))
                }
                _ => return Err(perr(format!("invalid disk '{s}': empty {k}"))),
            }
        }
        let path =
            path.ok_or_else(|| perr(format!("invalid disk '{s}': path=FILE is required")))?;
        Ok(DiskConfig {
            path,
            readonly,
            id,
            rate_limiter,
        })
    }
}

/// `--api-socket PATH`, `path=PATH` or `fd=N` (cloud-hypervisor's forms): a socket rvvmm creates, or a
/// listening Unix socket it inherited (libvirt's ch driver passes one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSocket {
    /// Created at this path (mode 0600) and removed on exit.
    Path(PathBuf),
    /// An inherited listening socket.
    Fd(i32),
}

impl FromStr for ApiSocket {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if let Some(n) = s.strip_prefix("fd=") {
            return match n.parse::<i32>() {
                Ok(fd) if fd >= 3 => Ok(ApiSocket::Fd(fd)),
                _ => Err(perr(format!(
                    "invalid --api-socket '{s}': fd '{n}' is not an inherited fd number (3 or more)"
                ))),
            };
        }
        let path = s.strip_prefix("path=").unwrap_or(s);
        if path.is_empty() {
            return Err(perr(format!("invalid --api-socket '{s}': empty path")));
        }
        Ok(ApiSocket::Path(PathBuf::from(path)))
    }
}

impl fmt::Display for ApiSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiSocket::Path(p) => write!(f, "{}", p.display()),
            ApiSocket::Fd(fd) => write!(f, "fd={fd}"),
        }
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            perr(format!(
                "invalid MAC address '{s}': expected six hex bytes like 52:54:00:12:34:56"
            ))
        };
        let mut mac = [0u8; 6];
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        for (b, p) in mac.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 != 0 {
            return Err(perr(format!(
                "invalid MAC address '{s}': multicast bit set in the first byte"
            )));
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// `--net tap=IFNAME|fd=N[,mac=MAC][,vhost=on][,bw_size=..,bw_refill_time=..][,ops_size=..,..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Host tap interface name (empty with `fd`).
    pub tap: String,
    /// A tap fd rvvmm inherited, opened by whoever started it (`fd=N`, as libvirt and Kata pass them).
    pub fd: Option<i32>,
    /// Guest MAC address; generated when absent.
    pub mac: Option<MacAddr>,
    /// Move the data path into the kernel with /dev/vhost-net (falls back to userspace without it).
    pub vhost: bool,
    /// Limits of each direction (frames received, frames sent), if any: userspace data path only.
    pub rate_limiter: Option<RateLimiterConfig>,
}

impl FromStr for NetConfig {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut tap = None;
        let mut mac = None;
        let mut vhost = false;
        let mut fd = None;
        let keys: Vec<&str> = ["tap", "fd", "mac", "vhost"]
            .into_iter()
            .chain(RATE_LIMITER_KEYS)
            .collect();
        let pairs = parse_kv(s, "net", &keys)?;
        let rate_limiter = parse_rate_limiter(&pairs, "net", s)?;
        for (k, v) in pairs {
            match k {
                _ if RATE_LIMITER_KEYS.contains(&k) => {}
                "tap" => {
                    // IFNAMSIZ is 16 including the NUL.
                    if v.is_empty()
                        || v.len() > 15
                        || v.contains('/')
                        || v.contains(char::is_whitespace)
                    {
                        return Err(perr(format!("invalid net '{s}': bad interface name '{v}'")));
                    }
                    tap = Some(v.to_string());
                }
                "vhost" => vhost = parse_on_off(v, k)?,
                "fd" => {
                    // cloud-hypervisor writes a list: fd=[3]; one fd (one queue pair) here.
                    let n = v
                        .strip_prefix('[')
                        .and_then(|v| v.strip_suffix(']'))
                        .unwrap_or(v);
                    match n.parse::<i32>() {
                        Ok(n) if n >= 3 => fd = Some(n),
                        _ => {
                            return Err(perr(format!(
                                "invalid net '{s}': fd '{v}' is not an inherited fd number (3 or more; one fd)"
                            )))
                        }
                    }
                }
                _ => mac = Some(v.parse()?),
            }
        }
        let tap = match (tap, fd) {
            (Some(_), Some(_)) => {
                return Err(perr(format!(
                    "invalid net '{s}': give tap=IFNAME or fd=N, not both"
                )))
            }
            (None, None) => {
                return Err(perr(format!(
                    "invalid net '{s}': tap=IFNAME or fd=N is required"
                )))
            }
            (tap, _) => tap.unwrap_or_default(),
        };
        if vhost && rate_limiter.is_some() {
            return Err(perr(format!(
                "invalid net '{s}': rate limits apply to rvvmm's own data path, not to vhost=on"
            )));
        }
        Ok(NetConfig {
            tap,
            fd,
            mac,
            vhost,
            rate_limiter,
        })
    }
}

/// `--vsock cid=N`: a virtio-vsock device on the host's vhost-vsock, the guest at context id N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VsockConfig {
    /// The guest's context id: 3 or more (0-2 are reserved: any, hypervisor, host), below 2^32 - 1.
    pub cid: u64,
}

impl VsockConfig {
    /// A checked context id.
    pub fn new(cid: u64) -> Result<VsockConfig, ParseError> {
        if (3..u64::from(u32::MAX)).contains(&cid) {
            Ok(VsockConfig { cid })
        } else {
            Err(perr(format!(
                "invalid vsock cid {cid}: guest context ids are 3 to {} (0-2 are reserved)",
                u32::MAX - 1
            )))
        }
    }
}

impl FromStr for VsockConfig {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut cid = None;
        for (k, v) in parse_kv(s, "vsock", &["cid"])? {
            debug_assert_eq!(k, "cid");
            cid =
                Some(v.parse::<u64>().map_err(|_| {
                    perr(format!("invalid vsock '{s}': cid '{v}' is not a number"))
                })?);
        }
        let cid = cid.ok_or_else(|| perr(format!("invalid vsock '{s}': cid=N is required")))?;
        VsockConfig::new(cid)
    }
}

/// A PCI address `DDDD:BB:DD.F`, given bare or as `path=/sys/bus/pci/devices/DDDD:BB:DD.F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || {
            perr(format!(
                "invalid PCI address '{s}': expected DDDD:BB:DD.F, e.g. 0000:00:01.0"
            ))
        };
        let addr = s.strip_prefix("path=").unwrap_or(s);
        let addr = addr.trim_end_matches('/');
        // A path must name the device in sysfs; anything else is not a PCI device.
        let addr = match addr.rsplit_once('/') {
            Some((dir, name)) if dir.trim_end_matches('/') == "/sys/bus/pci/devices" => name,
            Some(_) => {
                return Err(perr(format!(
                    "invalid PCI device path '{s}': expected /sys/bus/pci/devices/DDDD:BB:DD.F"
                )))
            }
            None => addr,
        };
        let (dbd, func) = addr.split_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = dbd.split(':').collect();
        let (dom, bus, dev) = match parts.as_slice() {
            [d, b, v] if d.len() == 4 && b.len() == 2 && v.len() == 2 => (*d, *b, *v),
            _ => return Err(bad()),
        };
        let domain = u16::from_str_radix(dom, 16).map_err(|_| bad())?;
        let bus = u8::from_str_radix(bus, 16).map_err(|_| bad())?;
        let device = u8::from_str_radix(dev, 16).map_err(|_| bad())?;
        let function = if func.len() == 1 {
            u8::from_str_radix(func, 16).map_err(|_| bad())?
        } else {
            8
        };
        if device >= 32 || function >= 8 {
            return Err(bad());
        }
        Ok(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// `--irqchip`: which interrupt controller the guest gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IrqchipMode {
    /// AIA when KVM offers it, else a userspace PLIC.
    #[default]
    Auto,
    /// KVM's in-kernel AIA (APLIC + IMSIC); an error when the host has none.
    Aia,
    /// A PLIC emulated by rvvmm.
    Plic,
}

impl FromStr for IrqchipMode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "auto" => Ok(IrqchipMode::Auto),
            "aia" => Ok(IrqchipMode::Aia),
            "plic" => Ok(IrqchipMode::Plic),
            _ => Err(perr(format!(
                "invalid irqchip '{s}': expected auto, aia or plic"
            ))),
        }
    }
}

/// `--virtio-transport`: how virtio devices reach the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VirtioTransport {
    /// virtio-pci for a Linux kernel on the in-kernel AIA, virtio-mmio otherwise (see
    /// [`VirtioTransport::resolve`]).
    #[default]
    Auto,
    /// virtio-mmio windows in the device tree, each on a wired interrupt (works with both irqchips).
    Mmio,
    /// Modern virtio-pci functions behind the PCIe host bridge, with an MSI-X vector per queue through
    /// irqfds (needs the in-kernel AIA: the vectors are MSIs to the guest's IMSIC).
    Pci,
}

impl VirtioTransport {
    /// The transport to use: `auto` is virtio-pci when the guest's interrupt controller takes MSIs
    /// (`msi`: the in-kernel AIA) and the kernel is a Linux `Image` (`linux`), which probes PCI and
    /// gets an interrupt per queue without an exit; virtio-mmio otherwise: the userspace PLIC has no
    /// MSI, and bare-metal kernels written for QEMU `virt` look for virtio-mmio devices.
    pub fn resolve(self, msi: bool, linux: bool) -> VirtioTransport {
        match self {
            VirtioTransport::Auto if msi && linux => VirtioTransport::Pci,
            VirtioTransport::Auto => VirtioTransport::Mmio,
            chosen => chosen,
        }
    }
}

impl std::fmt::Display for VirtioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VirtioTransport::Auto => "auto",
            VirtioTransport::Mmio => "mmio",
            VirtioTransport::Pci => "pci",
        })
    }
}

impl FromStr for VirtioTransport {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "auto" => Ok(VirtioTransport::Auto),
            "mmio" => Ok(VirtioTransport::Mmio),
            "pci" => Ok(VirtioTransport::Pci),
            _ => Err(perr(format!(
                "invalid virtio transport '{s}': expected auto, mmio or pci"
            ))),
        }
    }
}

/// Which host cores the vcpus run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuPlacement {
    /// N vcpus on the first N host cores this process may run on.
    Count(usize),
    /// One vcpu per listed host core.
    List(CpuList),
}

impl CpuPlacement {
    /// Number of vcpus.
    pub fn num_vcpus(&self) -> usize {
        match self {
            CpuPlacement::Count(n) => *n,
            CpuPlacement::List(l) => l.0.len(),
        }
    }
}

/// `--cores N[,shared]` or `--cpus LIST[,shared]`: a core request and whether it may share cores with
/// other VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoresArg<T> {
    /// The count or the list.
    pub value: T,
    /// `,shared` was given.
    pub shared: bool,
}

fn split_shared(s: &str) -> (&str, bool) {
    match s.strip_suffix(",shared") {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

impl FromStr for CoresArg<usize> {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (n, shared) = split_shared(s);
        let value: usize = n.parse().map_err(|_| {
            perr(format!(
                "invalid --cores '{s}': expected a number, optionally followed by ,shared"
            ))
        })?;
        if value == 0 || value > MAX_HOST_CPU + 1 {
            return Err(perr(format!(
                "invalid --cores '{s}': must be between 1 and {}",
                MAX_HOST_CPU + 1
            )));
        }
        Ok(CoresArg { value, shared })
    }
}

impl FromStr for CoresArg<CpuList> {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (list, shared) = split_shared(s);
        Ok(CoresArg {
            value: list.parse()?,
            shared,
        })
    }
}

/// Everything needed to build and run one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Kernel: a Linux RISC-V `Image` (also as PE/EFI-stub file), an ELF64 RISC-V executable or a raw binary.
    pub kernel: PathBuf,
    /// Kernel format; detected from the file when `None`.
    pub kernel_format: Option<crate::loader::KernelFormat>,
    /// Where a raw kernel is loaded (and starts).
    pub kernel_addr: u64,
    /// Stop the VM after this many seconds.
    pub timeout: Option<u64>,
    /// Optional initramfs.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Back guest RAM with 2 MiB huge pages (hugetlbfs), which KVM maps into the guest in 2 MiB blocks.
    pub hugepages: bool,
    /// vcpus and their host cores.
    pub cpus: CpuPlacement,
    /// Allow sharing host cores with other running VMs (`--cores N,shared`).
    pub shared_cores: bool,
    /// virtio-blk disks, in order (vda, vdb, ...).
    pub disks: Vec<DiskConfig>,
    /// virtio-net devices.
    pub nets: Vec<NetConfig>,
    /// PCI devices to pass through with VFIO.
    pub devices: Vec<PciAddress>,
    /// A virtio-rng device (entropy from the host's getrandom).
    pub rng: bool,
    /// A virtio-vsock device.
    pub vsock: Option<VsockConfig>,
    /// Interrupt controller choice.
    pub irqchip: IrqchipMode,
    /// The virtio transport of every virtio device.
    pub virtio_transport: VirtioTransport,
    /// Write the generated device tree here and exit instead of running.
    pub dump_dtb: Option<PathBuf>,
    /// Confine every thread with its seccomp filter once the guest runs (`--seccomp on`, the default).
    pub seccomp: bool,
    /// Switch to this user once every device is open, before the guest runs (`--user`).
    pub user: Option<crate::privileges::UserSpec>,
}

impl Default for VmConfig {
    /// The command line's defaults: no kernel yet, 256 MiB, one vcpu, the AIA when KVM has it.
    fn default() -> Self {
        VmConfig {
            kernel: PathBuf::new(),
            kernel_format: None,
            kernel_addr: crate::loader::DEFAULT_RAW_ADDR,
            timeout: None,
            initrd: None,
            cmdline: DEFAULT_CMDLINE.to_string(),
            memory: 256 << 20,
            hugepages: false,
            cpus: CpuPlacement::Count(1),
            shared_cores: false,
            disks: Vec::new(),
            nets: Vec::new(),
            devices: Vec::new(),
            rng: false,
            vsock: None,
            irqchip: IrqchipMode::Auto,
            virtio_transport: VirtioTransport::Auto,
            dump_dtb: None,
            seccomp: true,
            user: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_sockets() {
        assert_eq!(
            "/run/a.sock".parse::<ApiSocket>().unwrap(),
            ApiSocket::Path("/run/a.sock".into())
        );
        assert_eq!(
            "path=/run/a.sock".parse::<ApiSocket>().unwrap(),
            ApiSocket::Path("/run/a.sock".into())
        );
        assert_eq!("fd=4".parse::<ApiSocket>().unwrap(), ApiSocket::Fd(4));
        for bad in ["fd=", "fd=2", "fd=x", "path=", ""] {
            assert!(bad.parse::<ApiSocket>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits_of_disks_and_nets() {
        let d: DiskConfig = "path=a.img,bw_size=1048576,bw_refill_time=100,ops_size=100,ops_one_time_burst=50,ops_refill_time=1000"
            .parse()
            .unwrap();
        let bucket = |size, one_time_burst, refill_time_ms| BucketConfig {
            size,
            one_time_burst,
            refill_time_ms,
        };
        assert_eq!(
            d.rate_limiter,
            Some(RateLimiterConfig {
                bandwidth: Some(bucket(1 << 20, 0, 100)),
                ops: Some(bucket(100, 50, 1000)),
            })
        );
        let d: DiskConfig = "path=a.img".parse().unwrap();
        assert_eq!(d.rate_limiter, None);
        let n: NetConfig = "tap=t0,ops_size=10,ops_refill_time=1".parse().unwrap();
        assert_eq!(n.rate_limiter.and_then(|r| r.ops), Some(bucket(10, 0, 1)));
        for (bad, says) in [
            ("path=a.img,bw_size=1024", "bw_size and bw_refill_time"),
            ("path=a.img,bw_refill_time=10", "bw_size and bw_refill_time"),
            ("path=a.img,ops_size=0,ops_refill_time=10", "above 0"),
            (
                "path=a.img,bw_one_time_burst=5",
                "bw_size and bw_refill_time",
            ),
            (
                "path=a.img,bw_size=-1,bw_refill_time=1",
                "not a non-negative number",
            ),
        ] {
            let e = bad.parse::<DiskConfig>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let n: NetConfig = "fd=[5],mac=52:54:00:00:00:09".parse().unwrap();
        assert_eq!((n.fd, n.tap.as_str()), (Some(5), ""));
        assert_eq!("fd=7".parse::<NetConfig>().unwrap().fd, Some(7));
        for (bad, says) in [
            ("fd=3,tap=t0", "not both"),
            ("mac=52:54:00:00:00:01", "tap=IFNAME or fd=N is required"),
            ("fd=1", "3 or more"),
            ("fd=[3", "not an inherited fd number"),
        ] {
            let e = bad.parse::<NetConfig>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = "tap=t0,vhost=on,bw_size=1,bw_refill_time=1"
            .parse::<NetConfig>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("not to vhost=on"), "{e}");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("0x80200000").unwrap(), 0x8020_0000);
        assert_eq!(parse_addr("0x8020_0000").unwrap(), 0x8020_0000);
        assert_eq!(parse_addr("2149580800").unwrap(), 0x8020_0000);
        for bad in ["", "0x", "zz", "0x1g", "-1", "0x10000000000000000"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in [
            "",
            "M",
            "0",
            "0M",
            "12X",
            "-1G",
            "1.5G",
            "99999999999999999999",
            "17179869184T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!("1-2,5".parse::<CpuList>().unwrap().0, vec![1, 2, 5]);
        assert_eq!("3,1,3".parse::<CpuList>().unwrap().0, vec![1, 3]);
        assert_eq!("0".parse::<CpuList>().unwrap().to_string(), "0");
        for bad in ["", "a", "3-1", "1,,2", "1-", "5000", "-1"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn disks() {
        let d: DiskConfig = "path=/tmp/a.img,readonly=on,id=disk0".parse().unwrap();
        assert_eq!(d.path, PathBuf::from("/tmp/a.img"));
        assert!(d.readonly);
        assert_eq!(d.id.as_deref(), Some("disk0"));
        assert!(!"path=x".parse::<DiskConfig>().unwrap().readonly);
        for bad in [
            "",
            "readonly=on",
            "path=",
            "path=a,path=b",
            "path=a,ro=1",
            "path=a,readonly=maybe",
            "x",
        ] {
            assert!(
                bad.parse::<DiskConfig>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn nets_and_macs() {
        let n: NetConfig = "tap=tap0,mac=52:54:00:12:34:56".parse().unwrap();
        assert_eq!(n.tap, "tap0");
        assert_eq!(n.mac.unwrap().to_string(), "52:54:00:12:34:56");
        assert!(!n.vhost);
        assert!("tap=t,vhost=on".parse::<NetConfig>().unwrap().vhost);
        assert!("tap=t,vhost=maybe".parse::<NetConfig>().is_err());
        for bad in [
            "",
            "mac=52:54:00:12:34:56",
            "tap=",
            "tap=a/b",
            "tap=0123456789abcdef",
            "tap=t,mac=52:54:00:12:34",
            "tap=t,mac=01:00:00:00:00:00",
            "tap=t,mac=zz:54:00:12:34:56",
        ] {
            assert!(
                bad.parse::<NetConfig>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn pci_addresses() {
        let a: PciAddress = "0000:00:01.0".parse().unwrap();
        assert_eq!((a.domain, a.bus, a.device, a.function), (0, 0, 1, 0));
        let b: PciAddress = "path=/sys/bus/pci/devices/0001:0a:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "0001:0a:1f.7");
        for bad in [
            "",
            "00:01.0",
            "0000:00:20.0",
            "0000:00:01.8",
            "0000:00:01",
            "zzzz:00:01.0",
            "0000:00:01.00",
        ] {
            assert!(
                bad.parse::<PciAddress>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn cores_args() {
        let c: CoresArg<usize> = "2".parse().unwrap();
        assert_eq!((c.value, c.shared), (2, false));
        let c: CoresArg<usize> = "4,shared".parse().unwrap();
        assert_eq!((c.value, c.shared), (4, true));
        let l: CoresArg<CpuList> = "1-2,5,shared".parse().unwrap();
        assert_eq!((l.value.0, l.shared), (vec![1, 2, 5], true));
        for bad in ["0", "x", "2,share", "shared", "2,shared,shared", "99999"] {
            assert!(
                bad.parse::<CoresArg<usize>>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn virtio_transports() {
        assert_eq!(
            "mmio".parse::<VirtioTransport>().unwrap(),
            VirtioTransport::Mmio
        );
        assert_eq!(
            "pci".parse::<VirtioTransport>().unwrap(),
            VirtioTransport::Pci
        );
        assert!("virtio-pci".parse::<VirtioTransport>().is_err());
        let auto: VirtioTransport = "auto".parse().unwrap();
        assert_eq!(auto, VirtioTransport::default());
        // Linux on the AIA gets PCI; the PLIC or a bare-metal kernel gets virtio-mmio.
        assert_eq!(auto.resolve(true, true), VirtioTransport::Pci);
        assert_eq!(auto.resolve(false, true), VirtioTransport::Mmio);
        assert_eq!(auto.resolve(true, false), VirtioTransport::Mmio);
        // An explicit choice stands (the PLIC with pci is refused by the preflight checks).
        assert_eq!(
            VirtioTransport::Mmio.resolve(true, true),
            VirtioTransport::Mmio
        );
        assert_eq!(
            VirtioTransport::Pci.resolve(true, false),
            VirtioTransport::Pci
        );
    }

    #[test]
    fn irqchip_modes() {
        assert_eq!("aia".parse::<IrqchipMode>().unwrap(), IrqchipMode::Aia);
        assert!("apic".parse::<IrqchipMode>().is_err());
    }
}
