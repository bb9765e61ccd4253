//! KVM's binary statistics (`KVM_GET_STATS_FD`, Documentation/virt/kvm/api.rst): the counters KVM keeps
//! per vcpu, such as how many exits it took and how many of them it served without userspace. The
//! parser is arch-neutral and unit-tested on any host; the descriptor comes from the KVM glue.

/// Size of `struct kvm_stats_header`.
const HEADER_LEN: usize = 24;
/// Size of `struct kvm_stats_desc` before its name.
const DESC_LEN: usize = 16;
/// Type bits of a descriptor's flags.
const TYPE_MASK: u32 = 0xf;
/// Type: a counter that only grows.
const TYPE_CUMULATIVE: u32 = 0;

/// One cumulative counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmStat {
    /// KVM's name for it (`exits`, `mmio_exit_user`, ...).
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// Why a stats buffer could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatsError {
    /// The buffer ends before what its header describes.
    #[error("KVM stats: truncated ({0})")]
    Truncated(&'static str),
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// The cumulative single-value counters of a stats file's contents `buf` (read from offset 0), in the
/// order KVM lists them; histograms and instant values are left out.
pub fn parse_stats(buf: &[u8]) -> Result<Vec<KvmStat>, StatsError> {
    if buf.len() < HEADER_LEN {
        return Err(StatsError::Truncated("header"));
    }
    let field = |i: usize| u32_at(buf, i * 4).unwrap_or(0) as usize;
    let (name_size, num_desc, desc_offset, data_offset) = (field(1), field(2), field(4), field(5));
    let desc_size = DESC_LEN
        .checked_add(name_size)
        .ok_or(StatsError::Truncated("descriptor size"))?;
    let mut out = Vec::new();
    for i in 0..num_desc {
        let at = i
            .checked_mul(desc_size)
            .and_then(|o| o.checked_add(desc_offset))
            .ok_or(StatsError::Truncated("descriptors"))?;
        let desc = buf
            .get(at..at.saturating_add(desc_size))
            .ok_or(StatsError::Truncated("descriptors"))?;
        let flags = u32_at(desc, 0).unwrap_or(0);
        let size = u16_at(desc, 6).unwrap_or(0);
        let offset = u32_at(desc, 8).unwrap_or(0) as usize;
        if flags & TYPE_MASK != TYPE_CUMULATIVE || size != 1 {
            continue;
        }
        let name = &desc[DESC_LEN..];
        let name = String::from_utf8_lossy(
            &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())],
        )
        .into_owned();
        let value = data_offset
            .checked_add(offset)
            .and_then(|o| u64_at(buf, o))
            .ok_or(StatsError::Truncated("data"))?;
        out.push(KvmStat { name, value });
    }
    Ok(out)
}

/// Adds `more` into `total` by name (the counters of several vcpus into one list, first-seen order).
pub fn add_stats(total: &mut Vec<KvmStat>, more: &[KvmStat]) {
    for s in more {
        match total.iter_mut().find(|t| t.name == s.name) {
            Some(t) => t.value = t.value.saturating_add(s.value),
            None => total.push(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stats file laid out as KVM lays it out: header, id, descriptors, data.
    fn file(stats: &[(&str, u32, u16, &[u64])]) -> Vec<u8> {
        let name_size = 48usize;
        let id = b"kvm-1234/vcpu0\0";
        let id_offset = HEADER_LEN;
        let desc_offset = id_offset + name_size;
        let data_offset = desc_offset + stats.len() * (DESC_LEN + name_size);
        let mut b = Vec::new();
        for v in [
            0u32,
            name_size as u32,
            stats.len() as u32,
            id_offset as u32,
            desc_offset as u32,
            data_offset as u32,
        ] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let mut idb = vec![0u8; name_size];
        idb[..id.len()].copy_from_slice(id);
        b.extend_from_slice(&idb);
        let mut data = Vec::new();
        for (name, flags, size, values) in stats {
            b.extend_from_slice(&flags.to_ne_bytes());
            b.extend_from_slice(&0i16.to_ne_bytes());
            b.extend_from_slice(&size.to_ne_bytes());
            b.extend_from_slice(&((data.len() * 8) as u32).to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            let mut nb = vec![0u8; name_size];
            nb[..name.len()].copy_from_slice(name.as_bytes());
            b.extend_from_slice(&nb);
            data.extend_from_slice(values);
        }
        for v in data {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b
    }

    #[test]
    fn counters_are_read_and_other_kinds_skipped() {
        let buf = file(&[
            ("halt_successful_poll", 0, 1, &[3]),
            ("blocking", 1, 1, &[1]),                      // instant
            ("halt_poll_success_hist", 0x3, 32, &[0; 32]), // log histogram
            ("exits", 0, 1, &[123_456]),
            ("mmio_exit_user", 0, 1, &[789]),
        ]);
        let got = parse_stats(&buf).unwrap();
        assert_eq!(
            got,
            vec![
                KvmStat {
                    name: "halt_successful_poll".into(),
                    value: 3
                },
                KvmStat {
                    name: "exits".into(),
                    value: 123_456
                },
                KvmStat {
                    name: "mmio_exit_user".into(),
                    value: 789
                },
            ]
        );
        let mut total = got.clone();
        add_stats(&mut total, &got);
        add_stats(
            &mut total,
            &[KvmStat {
                name: "new".into(),
                value: 1,
            }],
        );
        assert_eq!(total[1].value, 246_912);
        assert_eq!(total.last().unwrap().name, "new");
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let buf = file(&[("exits", 0, 1, &[5]), ("wfi_exit_stat", 0, 1, &[6])]);
        for cut in 0..buf.len() {
            let r = parse_stats(&buf[..cut]);
            assert!(r.is_err(), "cut at {cut}");
        }
        assert_eq!(parse_stats(&buf).unwrap().len(), 2);
        // A header claiming absurd sizes.
        let mut bad = buf.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        bad[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_stats(&bad).is_err());
    }
}
