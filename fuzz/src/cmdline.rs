//! Fuzz target `cmdline`: the parsers behind rvvmm's command line options (`--memory` sizes, addresses,
//! `--cpus` lists, `--cores N[,shared]`, `--disk`, `--net`, MAC addresses, `--device` PCI addresses,
//! `--irqchip`) on any string. A value a parser accepts must survive being printed and parsed again
//! where the option has a canonical form.

use std::str::FromStr;

use vmm::config::{
    parse_addr, parse_size, CoresArg, CpuList, DiskConfig, IrqchipMode, MacAddr, NetConfig,
    PciAddress,
};

/// Runs one input: the whole input (lossily decoded as UTF-8) goes to every parser.
pub fn run(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    let _ = parse_size(s);
    let _ = parse_addr(s);
    if let Ok(list) = CpuList::from_str(s) {
        assert!(!list.0.is_empty(), "an accepted CPU list is empty");
    }
    let _ = CoresArg::<usize>::from_str(s);
    let _ = CoresArg::<CpuList>::from_str(s);
    let _ = DiskConfig::from_str(s);
    let _ = NetConfig::from_str(s);
    if let Ok(mac) = MacAddr::from_str(s) {
        let m = mac.0;
        let text = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        assert_eq!(
            MacAddr::from_str(&text).ok().map(|x| x.0),
            Some(m),
            "MAC round trip"
        );
    }
    let _ = PciAddress::from_str(s);
    let _ = IrqchipMode::from_str(s);
}

/// Seeds: one valid value of each option, and a few near misses.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        "512M",
        "2G",
        "0x80200000",
        "4096",
        "2-3,6",
        "0-1,shared",
        "2,shared",
        "path=/tmp/disk.img,readonly=on,id=root",
        "tap=tap0,mac=52:54:00:12:34:56,vhost=on",
        "52:54:00:12:34:56",
        "path=/sys/bus/pci/devices/0000:00:02.0",
        "0000:00:03.0",
        "aia",
        "18446744073709551615G",
        "3-1",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
