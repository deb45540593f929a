//! EUI-64 identifiers of organisations and devices.

use std::fmt;
use std::str::FromStr;

/// An EUI-64: the identifier of every SMKI organisation and device.
///
/// Parses `90-B3-D5-1F-30-01-00-00` and `90B3D51F30010000` in any case.
/// `Display` writes the hyphenated DUIS form; [`Eui64::to_compact`] the bare hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Eui64(pub [u8; 8]);

/// Why a string is not an EUI-64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EuiError {
    /// Wrong overall length.
    #[error(
        "EUI-64 {input:?}: expected 16 hex digits or 8 hyphen-separated pairs, got {len} characters"
    )]
    Length {
        /// The rejected input.
        input: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character that is not a hex digit (or a hyphen in the wrong place).
    #[error("EUI-64 {input:?}: invalid character {ch:?} at position {pos}")]
    Character {
        /// The rejected input.
        input: String,
        /// The offending character.
        ch: char,
        /// Its zero-based position.
        pos: usize,
    },
}

impl Eui64 {
    /// The eight bytes.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// From a slice that must be exactly eight bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Eui64)
    }

    /// Upper-case hex without separators: `90B3D51F30010000`.
    pub fn to_compact(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// Upper-case hyphenated form used by DUIS: `90-B3-D5-1F-30-01-00-00`.
    pub fn to_hyphenated(&self) -> String {
        self.to_string()
    }

    /// As a big-endian u64.
    pub fn to_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// From a big-endian u64.
    pub fn from_u64(v: u64) -> Self {
        Eui64(v.to_be_bytes())
    }
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Eui64 {
    type Err = EuiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let hyphenated = match b.len() {
            16 => false,
            23 => true,
            _ => {
                return Err(EuiError::Length {
                    input: s.to_string(),
                    len: s.chars().count(),
                });
            }
        };
        let bad = |pos: usize| EuiError::Character {
            input: s.to_string(),
            ch: s[pos..].chars().next().unwrap_or('?'),
            pos,
        };
        let mut out = [0u8; 8];
        for (i, o) in out.iter_mut().enumerate() {
            let p = if hyphenated { i * 3 } else { i * 2 };
            if hyphenated && i > 0 && b[p - 1] != b'-' {
                return Err(bad(p - 1));
            }
            let hi = hexval(b[p]).ok_or_else(|| bad(p))?;
            let lo = hexval(b[p + 1]).ok_or_else(|| bad(p + 1))?;
            *o = hi << 4 | lo;
        }
        Ok(Eui64(out))
    }
}

impl fmt::Display for Eui64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of the whole form (it is written for every RequestID,
        // audit entry and response): `XX-XX-…-XX`, upper-case.
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [b'-'; 23];
        for (i, b) in self.0.iter().enumerate() {
            out[3 * i] = HEX[usize::from(b >> 4)];
            out[3 * i + 1] = HEX[usize::from(b & 0x0F)];
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Eui64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eui64({self})")
    }
}

impl serde::Serialize for Eui64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Eui64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_any_case() {
        let want = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x01, 0x00, 0x00]);
        for s in [
            "90-B3-D5-1F-30-01-00-00",
            "90-b3-d5-1f-30-01-00-00",
            "90B3D51F30010000",
            "90b3d51f30010000",
        ] {
            assert_eq!(s.parse::<Eui64>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "90-B3-D5-1F-30-01-00-00");
        assert_eq!(want.to_compact(), "90B3D51F30010000");
        assert_eq!(Eui64::from_u64(want.to_u64()), want);
    }

    #[test]
    fn display_is_hyphenated_upper_hex_for_every_byte() {
        for v in [
            0u64,
            u64::MAX,
            0x0123_4567_89AB_CDEF,
            0xFEDC_BA98_7654_3210,
            0x0A0B_0C0D_A0B0_C0D0,
        ] {
            let e = Eui64::from_u64(v);
            let want =
                e.0.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join("-");
            assert_eq!(e.to_string(), want);
            assert_eq!(e.to_string().parse::<Eui64>().unwrap(), e);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let cases = [
            ("", "expected 16 hex digits"),
            ("90B3D51F3001000", "got 15 characters"),
            ("90B3D51F300100000", "got 17 characters"),
            ("90B3D51F3001000G", "invalid character 'G' at position 15"),
            (
                "90:B3-D5-1F-30-01-00-00",
                "invalid character ':' at position 2",
            ),
            (
                "90-B3-D5-1F-30-01-00-0Z",
                "invalid character 'Z' at position 22",
            ),
            ("90B3-D51F-3001-0000-xx", "got 22 characters"),
            ("-90B3D51F30010000-------", "got 24 characters"),
        ];
        for (input, msg) in cases {
            let err = input.parse::<Eui64>().unwrap_err().to_string();
            assert!(err.contains(msg), "{input:?}: {err}");
        }
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        assert!("é0B3D51F3001000".parse::<Eui64>().is_err());
        assert!("90-B3-D5-1F-30-01-00-é".parse::<Eui64>().is_err());
    }
}
