//! The guest CPU's ISA, built from what KVM reports (CONFIG `isa` MISA bits and the ISA_EXT
//! ONE_REG registers), rendered for the device tree.

use std::cmp::Ordering;

/// The base ISA of every guest hart (`riscv,isa-base`).
pub const ISA_BASE: &str = "rv64i";

/// Canonical order of single-letter extensions in an ISA string.
const CANONICAL_ORDER: &str = "imafdqcbkjpvh";

/// KVM's `enum KVM_RISCV_ISA_EXT_ID`: the ISA_EXT ONE_REG index is the position in this table.
/// Newer kernels append entries; indices past the end are ignored (the guest is then simply not
/// told about those extensions).
const ISA_EXT_NAMES: [&str; 71] = [
    "a",
    "c",
    "d",
    "f",
    "h",
    "i",
    "m",
    "svpbmt",
    "sstc",
    "svinval",
    "zihintpause",
    "zicbom",
    "zicboz",
    "zbb",
    "ssaia",
    "v",
    "svnapot",
    "zba",
    "zbs",
    "zicntr",
    "zicsr",
    "zifencei",
    "zihpm",
    "smstateen",
    "zicond",
    "zbc",
    "zbkb",
    "zbkc",
    "zbkx",
    "zknd",
    "zkne",
    "zknh",
    "zkr",
    "zksed",
    "zksh",
    "zkt",
    "zvbb",
    "zvbc",
    "zvkb",
    "zvkg",
    "zvkned",
    "zvknha",
    "zvknhb",
    "zvksed",
    "zvksh",
    "zvkt",
    "zfh",
    "zfhmin",
    "zihintntl",
    "zvfh",
    "zvfhmin",
    "zfa",
    "ztso",
    "zacas",
    "sscofpmf",
    "zimop",
    "zca",
    "zcb",
    "zcd",
    "zcf",
    "zcmop",
    "zawrs",
    "smnpm",
    "ssnpm",
    "svade",
    "svadu",
    "svvptc",
    "zabha",
    "ziccrse",
    "zaamo",
    "zalrsc",
];

/// Name of the extension behind KVM ISA_EXT ONE_REG index `index` (`KVM_RISCV_ISA_EXT_*`), or
/// `None` for an index this table does not know.
pub fn isa_ext_name(index: u64) -> Option<&'static str> {
    usize::try_from(index)
        .ok()
        .and_then(|i| ISA_EXT_NAMES.get(i))
        .copied()
}

/// FDT `mmu-type` for KVM's CONFIG `satp_mode` value (the satp MODE field), or `None` when the
/// guest has no paging (`Bare`) or the mode is unknown.
pub fn mmu_type_from_satp_mode(mode: u64) -> Option<&'static str> {
    match mode {
        8 => Some("riscv,sv39"),
        9 => Some("riscv,sv48"),
        10 => Some("riscv,sv57"),
        _ => None,
    }
}

/// Sort key of a multi-letter extension: `z*` first, then `s*`, then anything else, each group
/// alphabetical.
fn multi_letter_order(a: &str, b: &str) -> Ordering {
    fn class(name: &str) -> u8 {
        match name.as_bytes().first() {
            Some(b'z') => 0,
            Some(b's') => 1,
            _ => 2,
        }
    }
    class(a).cmp(&class(b)).then_with(|| a.cmp(b))
}

/// The ISA of a guest hart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuIsa {
    /// Single-letter extensions, in canonical order, always starting with 'i'.
    letters: Vec<char>,
    /// Multi-letter extensions, sorted by [`multi_letter_order`], no duplicates.
    multi: Vec<&'static str>,
}

impl CpuIsa {
    /// Builds the ISA from KVM's CONFIG `isa` register (`misa`: bit n = letter 'a' + n) and the
    /// indices of the ISA_EXT registers that read 1 (`enabled_ext_indices`). Single-letter
    /// extensions enabled through ISA_EXT (e.g. 'v') are merged with the MISA letters; 'i' is
    /// always present; MISA bits that are not ISA-string letters (e.g. 's', 'u') and unknown
    /// indices are ignored.
    pub fn from_kvm(misa: u64, enabled_ext_indices: &[u64]) -> CpuIsa {
        let names: Vec<&'static str> = enabled_ext_indices
            .iter()
            .filter_map(|&i| isa_ext_name(i))
            .collect();

        let letters = CANONICAL_ORDER
            .chars()
            .filter(|&c| {
                let bit = u32::from(c) - u32::from('a');
                c == 'i'
                    || misa & (1u64 << bit) != 0
                    || names.iter().any(|n| n.len() == 1 && n.starts_with(c))
            })
            .collect();

        let mut multi: Vec<&'static str> = names.into_iter().filter(|n| n.len() > 1).collect();
        multi.sort_by(|a, b| multi_letter_order(a, b));
        multi.dedup();

        CpuIsa { letters, multi }
    }

    /// The `riscv,isa` string, e.g. `rv64imafdc_zicbom_zicboz_ssaia_sstc`.
    pub fn isa_string(&self) -> String {
        let mut s = String::from("rv64");
        s.extend(self.letters.iter());
        for name in &self.multi {
            s.push('_');
            s.push_str(name);
        }
        s
    }

    /// The `riscv,isa-extensions` list: each single letter as its own entry, then the
    /// multi-letter extensions in the same order as in [`CpuIsa::isa_string`].
    pub fn isa_extensions(&self) -> Vec<String> {
        self.letters
            .iter()
            .map(|c| c.to_string())
            .chain(self.multi.iter().map(|n| (*n).to_string()))
            .collect()
    }

    /// Whether the hart has extension `name` (single letter or multi-letter; case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let mut chars = name.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => self.letters.contains(&c),
            (Some(_), Some(_)) => self.multi.iter().any(|n| *n == name),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(name: &str) -> u64 {
        ISA_EXT_NAMES.iter().position(|n| *n == name).unwrap() as u64
    }

    #[test]
    fn table_matches_kvm_order() {
        assert_eq!(isa_ext_name(0), Some("a"));
        assert_eq!(isa_ext_name(5), Some("i"));
        assert_eq!(isa_ext_name(7), Some("svpbmt"));
        assert_eq!(isa_ext_name(14), Some("ssaia"));
        assert_eq!(isa_ext_name(15), Some("v"));
        assert_eq!(isa_ext_name(23), Some("smstateen"));
        assert_eq!(isa_ext_name(48), Some("zihintntl"));
        assert_eq!(isa_ext_name(53), Some("zacas"));
        assert_eq!(isa_ext_name(61), Some("zawrs"));
        assert_eq!(isa_ext_name(70), Some("zalrsc"));
        assert_eq!(isa_ext_name(71), None);
        assert_eq!(isa_ext_name(u64::MAX), None);
        let mut sorted = ISA_EXT_NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ISA_EXT_NAMES.len(), "duplicate names");
    }

    #[test]
    fn misa_letters() {
        let isa = CpuIsa::from_kvm(0x112d, &[]);
        assert_eq!(isa.isa_string(), "rv64imafdc");
        assert_eq!(isa.isa_extensions(), ["i", "m", "a", "f", "d", "c"]);
        assert!(isa.has("c") && isa.has("I") && !isa.has("v") && !isa.has(""));
    }

    #[test]
    fn i_always_present_and_non_isa_bits_ignored() {
        // Bits for 's' and 'u' (privilege modes) are not ISA-string letters.
        let misa = (1 << (b's' - b'a')) | (1 << (b'u' - b'a')) | (1 << (b'm' - b'a'));
        assert_eq!(CpuIsa::from_kvm(misa, &[]).isa_string(), "rv64im");
        assert_eq!(CpuIsa::from_kvm(0, &[]).isa_string(), "rv64i");
    }

    #[test]
    fn multi_letter_ordering() {
        let enabled: Vec<u64> = [
            "sstc",
            "zicboz",
            "ssaia",
            "zba",
            "zicbom",
            "svpbmt",
            "zbb",
            "smstateen",
            "zihpm",
        ]
        .iter()
        .map(|n| index_of(n))
        .collect();
        let isa = CpuIsa::from_kvm(0x112d, &enabled);
        assert_eq!(
            isa.isa_string(),
            "rv64imafdc_zba_zbb_zicbom_zicboz_zihpm_smstateen_ssaia_sstc_svpbmt"
        );
        let exts = isa.isa_extensions();
        assert_eq!(exts[..6], ["i", "m", "a", "f", "d", "c"]);
        assert_eq!(
            exts[6..],
            [
                "zba",
                "zbb",
                "zicbom",
                "zicboz",
                "zihpm",
                "smstateen",
                "ssaia",
                "sstc",
                "svpbmt"
            ]
        );
        assert!(isa.has("zicbom") && isa.has("SSAIA") && !isa.has("zicond"));
    }

    #[test]
    fn single_letters_from_isa_ext_and_duplicates() {
        // 'v' via ISA_EXT index 15, 'a' (index 0) also present in MISA, duplicates, unknown index.
        let isa = CpuIsa::from_kvm(0x112d, &[15, 0, 8, 8, 999, 71, u64::MAX]);
        assert_eq!(isa.isa_string(), "rv64imafdcv_sstc");
        assert!(isa.has("v"));
    }

    #[test]
    fn satp_modes() {
        assert_eq!(mmu_type_from_satp_mode(8), Some("riscv,sv39"));
        assert_eq!(mmu_type_from_satp_mode(9), Some("riscv,sv48"));
        assert_eq!(mmu_type_from_satp_mode(10), Some("riscv,sv57"));
        assert_eq!(mmu_type_from_satp_mode(0), None);
        assert_eq!(mmu_type_from_satp_mode(11), None);
        assert_eq!(mmu_type_from_satp_mode(u64::MAX), None);
    }
}
