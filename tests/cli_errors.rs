//! Bad input on the command line and in files, run through the real `rvvmm` binary on the build host:
//! every case gets exactly one line `rvvmm: error: ...` on stderr, nothing on stdout, no panic, and the
//! documented status (2 for usage errors, 1 for setup errors). These checks all happen before rvvmm
//! touches KVM, so they run on any host; the nested bench covers what needs a riscv64 host (disk files,
//! taps, /dev/kvm, VFIO devices).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory with the files the cases use.
fn files() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvvmm-cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    w("raw.bin", &[0x73, 0, 0x10, 0x10]);
    w("empty", b"");
    w("junk", &[0x42; 200]);
    // An ELF header cut short, a 64-bit ELF for x86-64, a 32-bit RISC-V ELF.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[6] = 1;
    elf[16] = 2;
    elf[18] = 243;
    w("short.elf", &elf[..20]);
    let mut x86 = elf.clone();
    x86[18] = 62;
    w("x86.elf", &x86);
    let mut elf32 = elf.clone();
    elf32[4] = 1;
    w("elf32.elf", &elf32);
    // A Linux Image header asking for 2 GiB.
    let mut image = vec![0u8; 64];
    image[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
    image[16..24].copy_from_slice(&(2u64 << 30).to_le_bytes());
    image[56..60].copy_from_slice(b"RSC\x05");
    w("huge.Image", &image);
    w("disk.img", &[0u8; 4096]);
    // A 200 MiB initrd (sparse) for a 64 MiB guest.
    let big = std::fs::File::create(dir.join("big-initrd")).unwrap();
    big.set_len(200 << 20).unwrap();
    dir
}

/// Runs rvvmm with `args` (paths relative to `dir`); returns (status, stdout, stderr).
fn rvvmm(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvvmm"))
        .args(args)
        .current_dir(dir)
        .env("RVVMM_LOCK_DIR", dir.join("locks"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How a case's error line must read.
enum Want {
    /// The whole line.
    Line(&'static str),
    /// Text the line contains (for lines that name host properties, e.g. its RAM).
    Contains(&'static str),
}

#[test]
fn every_bad_input_gets_one_error_line_and_its_status() {
    let dir = files();
    let cases: &[(&str, &[&str], i32, Want)] = &[
        // Usage errors (2).
        ("no --kernel", &["--cores", "1"], 2, Want::Contains("--kernel <PATH>")),
        ("unknown option", &["--kernel", "raw.bin", "--frobnicate"], 2, Want::Contains("unexpected argument '--frobnicate'")),
        ("size 0", &["--kernel", "raw.bin", "--memory", "0"], 2, Want::Line("rvvmm: error: invalid value '0' for '--memory <SIZE>': invalid size '0': must be greater than zero (see rvvmm --help)")),
        ("size not a number", &["--kernel", "raw.bin", "--memory", "lots"], 2, Want::Contains("invalid size 'lots'")),
        ("size with a bad unit", &["--kernel", "raw.bin", "--memory", "12Q"], 2, Want::Contains("invalid size '12Q'")),
        ("size overflowing u64", &["--kernel", "raw.bin", "--memory", "99999999999999999999G"], 2, Want::Contains("invalid size")),
        ("cores 0", &["--kernel", "raw.bin", "--cores", "0"], 2, Want::Contains("invalid --cores '0'")),
        ("cores absurd", &["--kernel", "raw.bin", "--cores", "100000"], 2, Want::Line("rvvmm: error: invalid value '100000' for '--cores <N[,shared]>': invalid --cores '100000': must be between 1 and 1024 (see rvvmm --help)")),
        ("cores and cpus", &["--kernel", "raw.bin", "--cores", "1", "--cpus", "0"], 2, Want::Contains("cannot be used with")),
        ("cpu list backwards", &["--kernel", "raw.bin", "--cpus", "3-1"], 2, Want::Line("rvvmm: error: invalid value '3-1' for '--cpus <LIST[,shared]>': invalid core list '3-1': range 3-1 is backwards (see rvvmm --help)")),
        ("cpu list hole", &["--kernel", "raw.bin", "--cpus", "1,,2"], 2, Want::Line("rvvmm: error: invalid value '1,,2' for '--cpus <LIST[,shared]>': invalid core list '1,,2': '' is not a core number (see rvvmm --help)")),
        ("cpu list words", &["--kernel", "raw.bin", "--cpus", "all"], 2, Want::Contains("invalid core list 'all'")),
        ("disk without path", &["--kernel", "raw.bin", "--disk", "readonly=on"], 2, Want::Contains("invalid disk 'readonly=on'")),
        ("disk empty path", &["--kernel", "raw.bin", "--disk", "path="], 2, Want::Line("rvvmm: error: invalid value 'path=' for '--disk <path=FILE[,readonly=on][,id=NAME][,LIMITS]>': invalid disk 'path=': empty path (see rvvmm --help)")),
        ("disk unknown key", &["--kernel", "raw.bin", "--disk", "path=disk.img,bogus=1"], 2, Want::Contains("unknown key 'bogus' (expected path, readonly, id, bw_size, bw_one_time_burst, bw_refill_time, ops_size, ops_one_time_burst, ops_refill_time)")),
        ("disk rate limit without a refill time", &["--kernel", "raw.bin", "--disk", "path=disk.img,bw_size=1048576"], 2, Want::Contains("a rate limit needs bw_size and bw_refill_time, both above 0")),
        ("net fd not open", &["--kernel", "raw.bin", "--net", "fd=77"], 1, Want::Contains("fd 77 is not open in rvvmm")),
        ("net fd given twice", &["--kernel", "raw.bin", "--net", "fd=77", "--net", "fd=[77]"], 1, Want::Contains("--net fd=77 is given twice")),
        ("user not numeric", &["--kernel", "raw.bin", "--user", "nobody"], 2, Want::Contains("'nobody' is not a numeric id")),
        ("disk readonly=maybe", &["--kernel", "raw.bin", "--disk", "path=disk.img,readonly=maybe"], 2, Want::Contains("invalid readonly='maybe': expected on or off")),
        ("tap name with a slash", &["--kernel", "raw.bin", "--net", "tap=bad/name"], 2, Want::Line("rvvmm: error: invalid value 'tap=bad/name' for '--net <tap=IFNAME|fd=N[,mac=MAC][,vhost=on][,LIMITS]>': invalid net 'tap=bad/name': bad interface name 'bad/name' (see rvvmm --help)")),
        ("tap name too long", &["--kernel", "raw.bin", "--net", "tap=abcdefghijklmnopq"], 2, Want::Contains("bad interface name 'abcdefghijklmnopq'")),
        ("tap name empty", &["--kernel", "raw.bin", "--net", "tap="], 2, Want::Contains("bad interface name ''")),
        ("mac not hex", &["--kernel", "raw.bin", "--net", "tap=t0,mac=52:54:00:zz:00:01"], 2, Want::Contains("invalid MAC address '52:54:00:zz:00:01'")),
        ("mac multicast", &["--kernel", "raw.bin", "--net", "tap=t0,mac=01:00:5e:00:00:01"], 2, Want::Contains("01:00:5e:00:00:01")),
        ("mac short", &["--kernel", "raw.bin", "--net", "tap=t0,mac=52:54:00"], 2, Want::Contains("invalid MAC address '52:54:00'")),
        ("pci address malformed", &["--kernel", "raw.bin", "--device", "0000:zz:00.0"], 2, Want::Contains("invalid PCI address '0000:zz:00.0': expected DDDD:BB:DD.F")),
        ("pci path elsewhere", &["--kernel", "raw.bin", "--device", "path=/tmp/0000:00:01.0"], 2, Want::Contains("invalid PCI device path 'path=/tmp/0000:00:01.0': expected /sys/bus/pci/devices/DDDD:BB:DD.F")),
        ("pci function 8", &["--kernel", "raw.bin", "--device", "0000:00:01.8"], 2, Want::Contains("invalid PCI address '0000:00:01.8'")),
        ("irqchip unknown", &["--kernel", "raw.bin", "--irqchip", "gic"], 2, Want::Contains("'gic'")),
        ("virtio transport unknown", &["--kernel", "raw.bin", "--virtio-transport", "ccw"], 2, Want::Contains("invalid virtio transport 'ccw': expected auto, mmio or pci")),
        ("timeout 0", &["--kernel", "raw.bin", "--timeout", "0"], 2, Want::Contains("'--timeout <SECONDS>'")),
        ("kernel address not a number", &["--kernel", "raw.bin", "--kernel-addr", "zz"], 2, Want::Contains("'zz'")),
        ("kernel format unknown", &["--kernel", "raw.bin", "--kernel-format", "pe"], 2, Want::Contains("'pe'")),
        ("seccomp maybe", &["--kernel", "raw.bin", "--seccomp", "maybe"], 2, Want::Contains("'maybe' is neither on nor off")),
        ("log level unknown", &["--kernel", "raw.bin", "--log-level", "loud"], 2, Want::Contains("'loud'")),
        // Setup errors (1).
        ("kernel missing", &["--kernel", "/nonexistent/Image"], 1, Want::Line("rvvmm: error: cannot read kernel /nonexistent/Image: No such file or directory (os error 2)")),
        ("kernel is a directory", &["--kernel", "adir"], 1, Want::Line("rvvmm: error: cannot read kernel adir: not a regular file")),
        ("kernel empty", &["--kernel", "empty"], 1, Want::Line("rvvmm: error: kernel empty: the kernel file is empty")),
        ("kernel not an Image", &["--kernel", "junk", "--kernel-format", "image"], 1, Want::Contains("rvvmm: error: kernel junk: not a RISC-V Linux Image")),
        ("kernel ELF truncated", &["--kernel", "short.elf"], 1, Want::Line("rvvmm: error: kernel short.elf: truncated file: the ELF header needs 0x40 bytes, the file has 0x14")),
        ("kernel ELF for x86-64", &["--kernel", "x86.elf"], 1, Want::Contains("ELF for machine 62")),
        ("kernel ELF 32-bit", &["--kernel", "elf32.elf"], 1, Want::Contains("32-bit ELF")),
        ("kernel bigger than RAM", &["--kernel", "huge.Image", "--memory", "256M"], 1, Want::Contains("does not fit in guest RAM")),
        ("raw kernel outside RAM", &["--kernel", "raw.bin", "--kernel-addr", "0x1000"], 1, Want::Contains("does not fit in guest RAM")),
        ("initrd missing", &["--kernel", "raw.bin", "--initrd", "/nonexistent/initrd"], 1, Want::Line("rvvmm: error: cannot read initrd /nonexistent/initrd: No such file or directory (os error 2)")),
        ("initrd bigger than RAM", &["--kernel", "raw.bin", "--initrd", "big-initrd", "--memory", "64M"], 1, Want::Contains("rvvmm: error: kernel and initrd do not fit in --memory")),
        ("huge pages of a size that is no multiple of 2 MiB", &["--kernel", "raw.bin", "--memory", "33M", "--hugepages"], 1, Want::Line("rvvmm: error: --memory 34603008 is not a multiple of the 2 MiB huge page size (--hugepages)")),
        ("memory too small", &["--kernel", "raw.bin", "--memory", "1M"], 1, Want::Contains("--memory 1048576 is too small")),
        ("memory beyond the host", &["--kernel", "raw.bin", "--memory", "64T"], 1, Want::Contains("of RAM")),
        ("memory overflowing the address space", &["--kernel", "raw.bin", "--memory", "18446744073709551615"], 1, Want::Contains("of RAM")),
        ("more cpus than the host", &["--kernel", "raw.bin", "--cpus", "1000"], 1, Want::Contains("core 1000")),
        ("same disk twice", &["--kernel", "raw.bin", "--disk", "path=disk.img", "--disk", "path=./disk.img"], 1, Want::Line("rvvmm: error: --disk ./disk.img is the image of vda already; one image can back only one disk")),
        ("too many virtio devices", &["--kernel", "raw.bin", "--disk", "path=a", "--disk", "path=b", "--disk", "path=c", "--disk", "path=d", "--disk", "path=e", "--disk", "path=f", "--disk", "path=g", "--disk", "path=h", "--disk", "path=i"], 1, Want::Contains("too many virtio devices: 9 --disk, 0 --net and 0 rng/vsock, at most 8")),
        ("pci device missing", &["--kernel", "raw.bin", "--device", "0000:00:1f.7"], 1, Want::Line("rvvmm: error: --device 0000:00:1f.7: no such PCI device (/sys/bus/pci/devices/0000:00:1f.7 does not exist)")),
        ("pci with the PLIC", &["--kernel", "raw.bin", "--device", "0000:00:1f.7", "--irqchip", "plic"], 1, Want::Contains("--device needs the in-kernel AIA")),
        ("virtio-pci with the PLIC", &["--kernel", "raw.bin", "--virtio-transport", "pci", "--irqchip", "plic"], 1, Want::Line("rvvmm: error: --virtio-transport pci needs the in-kernel AIA irqchip (its interrupts are MSI-X, delivered to the guest's IMSIC); it cannot be used with --irqchip plic")),
    ];
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (name, args, rc, want) in cases {
        let (status, stdout, stderr) = rvvmm(&dir, args);
        let lines: Vec<&str> = stderr.lines().collect();
        let line = lines.first().copied().unwrap_or("");
        report.push(format!("{name}: rc={status} {line}"));
        let line_ok = match want {
            Want::Line(l) => line == *l,
            Want::Contains(c) => line.contains(c),
        };
        if status != *rc
            || lines.len() != 1
            || !stdout.is_empty()
            || stderr.contains("panicked")
            || !line.starts_with("rvvmm: error: ")
            || !line_ok
        {
            wrong.push(format!(
                "{name} (wanted rc={rc}): rc={status} stdout={stdout:?} stderr={stderr:?}"
            ));
        }
    }
    eprintln!("{} bad-input cases:\n{}", cases.len(), report.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
