//! Enumerations copied from DUIS XSD 5.4 (`sr:ServiceReference`, `sr:ServiceReferenceVariant`, `sr:ResponseCode`).

/// Every `sr:ServiceReference` value of DUIS XSD 5.4.
pub const SERVICE_REFERENCES: &[&str] = &[
    "1.1", "1.2", "1.5", "1.6", "1.7", "2.1", "2.2", "2.3", "2.5", "3.1", "3.2", "3.3", "3.4",
    "3.5", "4.1", "4.2", "4.3", "4.4", "4.6", "4.8", "4.10", "4.11", "4.12", "4.13", "4.14",
    "4.15", "4.16", "4.17", "4.18", "5.1", "5.2", "5.3", "6.2", "6.4", "6.5", "6.6", "6.7", "6.8",
    "6.11", "6.12", "6.13", "6.14", "6.15", "6.17", "6.18", "6.20", "6.21", "6.22", "6.23", "6.24",
    "6.25", "6.26", "6.27", "6.28", "6.29", "6.30", "6.31", "6.32", "7.1", "7.2", "7.3", "7.4",
    "7.5", "7.6", "7.7", "7.8", "7.9", "7.10", "7.11", "7.12", "7.13", "7.14", "7.15", "7.16",
    "8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7", "8.8", "8.9", "8.11", "8.12", "8.13", "8.14",
    "9.1", "11.1", "11.2", "11.3", "11.4", "12.1", "12.2", "14.1",
];

/// Every `sr:ServiceReferenceVariant` value of DUIS XSD 5.4.
pub const SERVICE_REFERENCE_VARIANTS: &[&str] = &[
    "1.1.1", "1.1.2", "1.2.1", "1.2.2", "1.5", "1.6", "1.7", "2.1", "2.2", "2.3", "2.5", "3.1",
    "3.2", "3.3", "3.4", "3.5", "4.1.1", "4.1.2", "4.1.3", "4.1.4", "4.2", "4.3", "4.4.2", "4.4.3",
    "4.4.4", "4.4.5", "4.6.1", "4.6.2", "4.8.1", "4.8.2", "4.8.3", "4.10", "4.11.1", "4.11.2",
    "4.12.1", "4.12.2", "4.13", "4.14", "4.15", "4.16", "4.17", "4.18", "5.1", "5.2", "5.3",
    "6.2.1", "6.2.2", "6.2.3", "6.2.4", "6.2.5", "6.2.7", "6.2.8", "6.2.9", "6.2.10", "6.4.1",
    "6.4.2", "6.5", "6.6", "6.7", "6.8", "6.11", "6.12", "6.13", "6.14.1", "6.14.2", "6.14.3",
    "6.15.1", "6.15.2", "6.17", "6.18.1", "6.18.2", "6.20.1", "6.20.2", "6.21", "6.22", "6.23",
    "6.24.1", "6.24.2", "6.25", "6.26", "6.27", "6.28", "6.29", "6.30", "6.31", "6.32", "7.1",
    "7.2", "7.3", "7.4", "7.5", "7.6", "7.7", "7.8", "7.9", "7.10", "7.11", "7.12", "7.13", "7.14",
    "7.15", "7.16", "8.1.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7.1", "8.7.2", "8.8.1", "8.8.2",
    "8.9", "8.11", "8.12.1", "8.12.2", "8.13", "8.14.1", "8.14.2", "8.14.3", "8.14.4", "9.1",
    "11.1", "11.2", "11.3", "11.4", "12.1", "12.2", "14.1",
];

/// A string of at most 7 bytes as one number: its bytes, then its length
/// in the low byte (so that no two strings share a key); `None` if longer.
/// Every value of the two lists has at most 6 bytes.
fn key(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() > 7 {
        return None;
    }
    let mut k = [0u8; 8];
    k[..b.len()].copy_from_slice(b);
    k[7] = b.len() as u8;
    Some(u64::from_be_bytes(k))
}

/// The keys of `values`, sorted once, for look-ups by binary search.
fn sorted(values: &'static [&'static str]) -> Vec<u64> {
    let mut v: Vec<u64> = values.iter().filter_map(|s| key(s)).collect();
    assert_eq!(v.len(), values.len(), "a value longer than 7 bytes");
    v.sort_unstable();
    v
}

static SORTED_REFERENCES: std::sync::LazyLock<Vec<u64>> =
    std::sync::LazyLock::new(|| sorted(SERVICE_REFERENCES));
static SORTED_VARIANTS: std::sync::LazyLock<Vec<u64>> =
    std::sync::LazyLock::new(|| sorted(SERVICE_REFERENCE_VARIANTS));

/// Is `s` one of [`SERVICE_REFERENCES`]? (Binary search over numbers, not a scan.)
pub fn is_service_reference(s: &str) -> bool {
    key(s).is_some_and(|k| SORTED_REFERENCES.binary_search(&k).is_ok())
}

/// Is `s` one of [`SERVICE_REFERENCE_VARIANTS`]? (Binary search over numbers, not a scan.)
pub fn is_service_reference_variant(s: &str) -> bool {
    key(s).is_some_and(|k| SORTED_VARIANTS.binary_search(&k).is_ok())
}

/// Every `sr:ResponseCode` value of DUIS XSD 5.4.
pub const RESPONSE_CODES: &[&str] = &[
    "I0", "I99", "E1", "E2", "E3", "E4", "E5", "E11", "E12", "E13", "E17", "E19", "E20", "E21",
    "E30", "E31", "E40", "E41", "E42", "E43", "E44", "E45", "E46", "E47", "E48", "E49", "E50",
    "E51", "E52", "E53", "E54", "E55", "E56", "E57", "E58", "E59", "E60", "E61", "E62", "E63",
    "E64", "E65", "E66", "E67", "E68", "E69", "E70", "E71", "E100", "E1000", "E1001", "E1003",
    "E1004", "E1006", "E1007", "E1008", "E1010", "E1011", "E010101", "E010102", "E010201",
    "E030301", "E030302", "E040101", "E041701", "E050101", "E050102", "E050103", "E050105",
    "E050107", "E050108", "E050109", "E050110", "E050111", "E050112", "E050201", "E050202",
    "W050201", "E050301", "E050302", "W050301", "E060501", "E060502", "E060701", "E060801",
    "E060802", "E060803", "E061301", "E061304", "E061305", "E061501", "E061504", "E061505",
    "E061506", "E061507", "E061508", "E061509", "E061801", "E061802", "E061803", "E062101",
    "E062102", "E062103", "E062105", "E062201", "E062202", "E062203", "E062301", "E062302",
    "E062303", "E062304", "E062305", "E062306", "E062401", "E062402", "E062403", "E062801",
    "E062802", "E062803", "E080201", "E080202", "E080301", "E080302", "E080405", "E080406",
    "E080407", "E080408", "E080409", "E080410", "E080411", "E080412", "E080413", "E080414",
    "E080415", "E080501", "E080502", "E080503", "E080601", "E080602", "E080604", "E080606",
    "E080607", "E080702", "E080721", "E080722", "E080723", "E080801", "E080821", "E080822",
    "E080901", "E080902", "E080903", "E081101", "E081102", "E081104", "E081105", "E081106",
    "E081107", "E081108", "E081109", "E081110", "E081111", "E081202", "E081204", "E081205",
    "E081221", "E081222", "E081223", "E081301", "E081302", "E081303", "E081401", "E081402",
    "E081405", "E081406", "W081401", "E110101", "E110102", "E110103", "E110105", "E110106",
    "W110101", "E110401", "E110402", "E110403", "E110405", "W110401", "E120101", "E120102",
    "E120103", "E120201", "E120203", "E120204", "E120207",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_ups_agree_with_the_lists() {
        let probes = [
            "",
            "6",
            "6.2",
            "6.23",
            "6.23.1",
            "1.1",
            "1.1.1",
            "14.1",
            "14.2",
            "x",
            "6.23\0",
            "1.1\0\0\0",
            "6.2.10\0",
            "6.2.10\0\0",
            "6.15.1.1",
        ];
        for s in SERVICE_REFERENCES
            .iter()
            .chain(SERVICE_REFERENCE_VARIANTS)
            .chain(&probes)
        {
            assert_eq!(
                is_service_reference(s),
                SERVICE_REFERENCES.contains(s),
                "{s}"
            );
            assert_eq!(
                is_service_reference_variant(s),
                SERVICE_REFERENCE_VARIANTS.contains(s),
                "{s}"
            );
        }
    }
}
