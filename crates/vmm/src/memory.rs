//! Host-side properties of guest RAM. [`exclude_from_core_dumps`] keeps the guest's memory out of a core
//! dump of rvvmm: a dump would otherwise hold all of the guest's RAM (its secrets, and gigabytes of it).

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// A region of guest memory that could not be excluded from core dumps.
#[derive(Debug, thiserror::Error)]
#[error("cannot exclude guest RAM at {start:#x} ({len} bytes) from core dumps: {source}")]
pub struct DumpExclusionError {
    /// The region's guest physical address.
    pub start: u64,
    /// The region's length in bytes.
    pub len: u64,
    /// What madvise said.
    pub source: std::io::Error,
}

/// Marks every region of `mem` MADV_DONTDUMP: a core dump of rvvmm leaves guest RAM out.
pub fn exclude_from_core_dumps(mem: &GuestMemoryMmap) -> Result<(), DumpExclusionError> {
    for region in mem.iter() {
        let len = region.len();
        // SAFETY: the range is exactly one mapping `mem` owns and keeps alive; MADV_DONTDUMP changes only
        // whether the kernel writes it into a core dump, never its contents or its accessibility.
        let ret =
            unsafe { libc::madvise(region.as_ptr().cast(), len as usize, libc::MADV_DONTDUMP) };
        if ret != 0 {
            return Err(DumpExclusionError {
                start: region.start_addr().0,
                len,
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    /// The VmFlags of the /proc/self/smaps entry that holds `addr` (adjacent mappings may share one).
    fn vm_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut in_entry = false;
        for line in smaps.lines() {
            // An entry starts with "start-end perms ...", in lowercase hex.
            let range = line.split(' ').next().and_then(|r| r.split_once('-'));
            if let Some((Ok(start), Ok(end))) =
                range.map(|(s, e)| (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16)))
            {
                in_entry = (start..end).contains(&addr);
                continue;
            }
            if in_entry {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return Some(flags.trim().to_string());
                }
            }
        }
        None
    }

    #[test]
    fn guest_ram_is_left_out_of_core_dumps() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0x8000_0000), 0x10_0000),
            (GuestAddress(0x9000_0000), 0x2_0000),
        ])
        .unwrap();
        // The first and last page of each region.
        let addrs: Vec<usize> = mem
            .iter()
            .flat_map(|r| {
                [
                    r.as_ptr() as usize,
                    r.as_ptr() as usize + r.len() as usize - 1,
                ]
            })
            .collect();
        for &a in &addrs {
            let flags = vm_flags(a).expect("the mapping is in /proc/self/smaps");
            assert!(!flags.split(' ').any(|f| f == "dd"), "{flags}");
        }
        exclude_from_core_dumps(&mem).unwrap();
        for &a in &addrs {
            let flags = vm_flags(a).expect("the mapping is in /proc/self/smaps");
            assert!(flags.split(' ').any(|f| f == "dd"), "{flags}");
        }
    }
}
