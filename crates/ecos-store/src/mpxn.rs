//! MPAN and MPRN: the meter point identifiers, their fuel and their check digits.
//!
//! The fuel follows from the form (`ecos-domain.md` §5): a 13-digit MPAN core is
//! electricity, an MPRN of 1 to 10 digits is gas. The check digits are verified
//! according to a [`CheckDigitPolicy`]; the reference test data fails them, so the
//! default is [`CheckDigitPolicy::Warn`].

use std::fmt;
use std::str::FromStr;

/// The fuel of a meter point.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Fuel {
    /// Electricity: identified by an MPAN.
    Electricity,
    /// Gas: identified by an MPRN.
    Gas,
}

impl Fuel {
    /// `electricity` or `gas`: the form stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Fuel::Electricity => "electricity",
            Fuel::Gas => "gas",
        }
    }
}

impl fmt::Display for Fuel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when an MPxN's check digit is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckDigitPolicy {
    /// Refuse the identifier.
    Reject,
    /// Accept it, but log a warning (the default: the reference test data fails the check).
    #[default]
    Warn,
    /// Do not compute the check digit.
    Off,
}

impl FromStr for CheckDigitPolicy {
    type Err = MpxnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "reject" | "fail" => Ok(CheckDigitPolicy::Reject),
            "warn" => Ok(CheckDigitPolicy::Warn),
            "off" => Ok(CheckDigitPolicy::Off),
            _ => Err(MpxnError::Policy(s.to_string())),
        }
    }
}

/// Check-digit strictness per fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CheckDigitPolicies {
    /// Policy for MPANs (`mpan_check_digit`).
    pub mpan: CheckDigitPolicy,
    /// Policy for MPRNs (`mprn_check_digit`).
    pub mprn: CheckDigitPolicy,
}

impl CheckDigitPolicies {
    /// The same policy for both fuels.
    pub fn both(p: CheckDigitPolicy) -> Self {
        CheckDigitPolicies { mpan: p, mprn: p }
    }

    /// The policy for one fuel.
    pub fn for_fuel(&self, fuel: Fuel) -> CheckDigitPolicy {
        match fuel {
            Fuel::Electricity => self.mpan,
            Fuel::Gas => self.mprn,
        }
    }
}

/// Why a string is not an acceptable MPxN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MpxnError {
    /// Empty input.
    #[error("MPxN is empty")]
    Empty,
    /// A character that is not an ASCII digit.
    #[error("MPxN {input:?}: character {ch:?} at position {pos} is not a digit")]
    NotDigit {
        /// The rejected input.
        input: String,
        /// The offending character.
        ch: char,
        /// Its zero-based character position.
        pos: usize,
    },
    /// Neither 13 digits (MPAN) nor 1 to 10 digits (MPRN).
    #[error("MPxN {input:?}: {len} digits is neither an MPAN core (13) nor an MPRN (1 to 10)")]
    Length {
        /// The rejected input.
        input: String,
        /// Its length.
        len: usize,
    },
    /// The check digit is wrong and the policy is [`CheckDigitPolicy::Reject`].
    #[error("{fuel} meter point {input}: check digit(s) {given:?}, expected {expected:?}")]
    CheckDigit {
        /// The rejected identifier.
        input: String,
        /// Its fuel.
        fuel: Fuel,
        /// The check digit(s) given.
        given: String,
        /// The check digit(s) computed.
        expected: String,
    },
    /// An unknown policy name.
    #[error("check-digit policy {0:?}: expected reject, warn or off")]
    Policy(String),
}

/// An MPAN core (13 digits, electricity) or an MPRN (1 to 10 digits, gas), as canonical digits.
///
/// Held inline (no allocation): the digits, zero-padded, then their count. Ordering is that of
/// the digit strings (a digit sorts after the padding).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mpxn {
    digits: [u8; 13],
    len: u8,
    fuel: Fuel,
}

/// MPAN weights for core digits 1 to 12 (primes, skipping 11).
const MPAN_WEIGHTS: [u32; 12] = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43];

/// The MPAN check digit computed from the first 12 digits of a 13-digit core.
///
/// `(Σ dᵢ·wᵢ mod 11) mod 10` with weights 3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43.
pub fn mpan_check_digit(first12: &[u8; 12]) -> u8 {
    let sum: u32 = first12
        .iter()
        .zip(MPAN_WEIGHTS)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    ((sum % 11) % 10) as u8
}

/// The two MPRN check digits computed from the body (all digits but the last two).
///
/// `Σ bodyᵢ·wᵢ mod 11` with weights from the body length down to 1, as a number 0..=10
/// written with two digits.
pub fn mprn_check_digits(body: &[u8]) -> u8 {
    let n = body.len() as u32;
    let sum: u32 = body
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * (n - i as u32))
        .sum();
    (sum % 11) as u8
}

impl Mpxn {
    /// Parse without judging the check digit (the form alone gives the fuel).
    pub fn parse_unchecked(s: &str) -> Result<Self, MpxnError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(MpxnError::Empty);
        }
        if let Some((pos, ch)) = t.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(MpxnError::NotDigit {
                input: s.to_string(),
                ch,
                pos,
            });
        }
        let fuel = match t.len() {
            13 => Fuel::Electricity,
            1..=10 => Fuel::Gas,
            len => {
                return Err(MpxnError::Length {
                    input: s.to_string(),
                    len,
                });
            }
        };
        Ok(Mpxn::from_digits(t.as_bytes(), fuel))
    }

    /// From 1 to 13 ASCII digits already checked for form.
    fn from_digits(d: &[u8], fuel: Fuel) -> Mpxn {
        let mut digits = [0u8; 13];
        digits[..d.len()].copy_from_slice(d);
        Mpxn {
            digits,
            len: d.len() as u8,
            fuel,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// Parse and apply the check-digit policy for the identifier's fuel.
    ///
    /// With [`CheckDigitPolicy::Warn`] a wrong check digit is logged with `tracing::warn!`
    /// and the identifier is accepted.
    pub fn parse(s: &str, policies: CheckDigitPolicies) -> Result<Self, MpxnError> {
        let m = Self::parse_unchecked(s)?;
        m.apply_policy(policies.for_fuel(m.fuel))?;
        Ok(m)
    }

    /// Apply a check-digit policy to an already parsed identifier.
    pub fn apply_policy(&self, policy: CheckDigitPolicy) -> Result<(), MpxnError> {
        match policy {
            CheckDigitPolicy::Off => Ok(()),
            CheckDigitPolicy::Warn => {
                if let Err(e) = self.verify_check_digit() {
                    tracing::warn!(mpxn = %self, "{e}");
                }
                Ok(())
            }
            CheckDigitPolicy::Reject => self.verify_check_digit(),
        }
    }

    /// Whether the check digit(s) are right.
    pub fn check_digit_valid(&self) -> bool {
        let b = self.bytes();
        let mut d = [0u8; 13];
        for (o, c) in d.iter_mut().zip(b) {
            *o = c - b'0';
        }
        let d = &d[..b.len()];
        match self.fuel {
            Fuel::Electricity => {
                let mut first = [0u8; 12];
                first.copy_from_slice(&d[..12]);
                mpan_check_digit(&first) == d[12]
            }
            Fuel::Gas => {
                d.len() >= 3 && {
                    let (body, check) = d.split_at(d.len() - 2);
                    mprn_check_digits(body) == check[0] * 10 + check[1]
                }
            }
        }
    }

    /// Verify the check digit(s), returning [`MpxnError::CheckDigit`] when they are wrong.
    ///
    /// An MPRN of fewer than three digits has no body to check and fails.
    pub fn verify_check_digit(&self) -> Result<(), MpxnError> {
        if self.check_digit_valid() {
            return Ok(());
        }
        let d: Vec<u8> = self.bytes().iter().map(|b| b - b'0').collect();
        let (given, expected) = match self.fuel {
            Fuel::Electricity => {
                let mut first = [0u8; 12];
                first.copy_from_slice(&d[..12]);
                (d[12].to_string(), mpan_check_digit(&first).to_string())
            }
            Fuel::Gas => {
                if d.len() < 3 {
                    (self.to_string(), "at least 3 digits".to_string())
                } else {
                    let (body, check) = d.split_at(d.len() - 2);
                    (
                        format!("{}{}", check[0], check[1]),
                        format!("{:02}", mprn_check_digits(body)),
                    )
                }
            }
        };
        if given == expected {
            Ok(())
        } else {
            Err(MpxnError::CheckDigit {
                input: self.to_string(),
                fuel: self.fuel,
                given,
                expected,
            })
        }
    }

    /// The canonical digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }

    /// The fuel given by the form.
    pub fn fuel(&self) -> Fuel {
        self.fuel
    }

    /// Build a valid MPAN from 12 leading digits by appending the check digit.
    ///
    /// Returns `None` unless `first12` is exactly 12 ASCII digits.
    pub fn mpan_with_check_digit(first12: &str) -> Option<Self> {
        let b = first12.as_bytes();
        if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut d = [0u8; 12];
        for (o, c) in d.iter_mut().zip(b) {
            *o = c - b'0';
        }
        let mut all = [0u8; 13];
        all[..12].copy_from_slice(b);
        all[12] = b'0' + mpan_check_digit(&d);
        Some(Mpxn::from_digits(&all, Fuel::Electricity))
    }

    /// Build a valid MPRN from its body (1 to 8 digits) by appending the check digits.
    ///
    /// A body whose check value is 10 yields `None` (two digits cannot hold it).
    pub fn mprn_with_check_digits(body: &str) -> Option<Self> {
        let b = body.as_bytes();
        if b.is_empty() || b.len() > 8 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let d: Vec<u8> = b.iter().map(|c| c - b'0').collect();
        let c = mprn_check_digits(&d);
        if c > 9 {
            return None;
        }
        let mut all = [0u8; 10];
        all[..b.len()].copy_from_slice(b);
        all[b.len()] = b'0' + c / 10;
        all[b.len() + 1] = b'0' + c % 10;
        Some(Mpxn::from_digits(&all[..b.len() + 2], Fuel::Gas))
    }
}

impl FromStr for Mpxn {
    type Err = MpxnError;
    /// Parse with the default policies (warn for both fuels).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mpxn::parse(s, CheckDigitPolicies::default())
    }
}

impl fmt::Display for Mpxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mpxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mpxn({}, {})", self.as_str(), self.fuel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject() -> CheckDigitPolicies {
        CheckDigitPolicies::both(CheckDigitPolicy::Reject)
    }

    #[test]
    fn reference_examples() {
        let m = Mpxn::parse("1312345678907", reject()).unwrap();
        assert_eq!(m.fuel(), Fuel::Electricity);
        let g = Mpxn::parse("3938424403", reject()).unwrap();
        assert_eq!(g.fuel(), Fuel::Gas);
        assert!(
            !Mpxn::parse_unchecked("1312345678111")
                .unwrap()
                .check_digit_valid()
        );
        assert!(
            !Mpxn::parse_unchecked("1000999888")
                .unwrap()
                .check_digit_valid()
        );
    }

    #[test]
    fn rtds_mpan_fails_but_warns_by_default() {
        let err = Mpxn::parse("1312345678333", reject()).unwrap_err();
        assert_eq!(
            err,
            MpxnError::CheckDigit {
                input: "1312345678333".into(),
                fuel: Fuel::Electricity,
                given: "3".into(),
                expected: "0".into()
            }
        );
        let m: Mpxn = "1312345678333".parse().unwrap();
        assert_eq!(m.as_str(), "1312345678333");
        assert!(!m.check_digit_valid());
        let off = Mpxn::parse(
            "1312345678333",
            CheckDigitPolicies::both(CheckDigitPolicy::Off),
        );
        assert!(off.is_ok());
    }

    #[test]
    fn shapes() {
        assert!(matches!(Mpxn::parse_unchecked(""), Err(MpxnError::Empty)));
        assert!(matches!(
            Mpxn::parse_unchecked("12345678901"),
            Err(MpxnError::Length { len: 11, .. })
        ));
        assert!(matches!(
            Mpxn::parse_unchecked("13123456789O7"),
            Err(MpxnError::NotDigit {
                ch: 'O',
                pos: 11,
                ..
            })
        ));
        assert_eq!(Mpxn::parse_unchecked("42").unwrap().fuel(), Fuel::Gas);
        assert!(!Mpxn::parse_unchecked("42").unwrap().check_digit_valid());
        assert_eq!(
            "warn".parse::<CheckDigitPolicy>().unwrap(),
            CheckDigitPolicy::Warn
        );
        assert_eq!(
            "fail".parse::<CheckDigitPolicy>().unwrap(),
            CheckDigitPolicy::Reject
        );
        assert!("maybe".parse::<CheckDigitPolicy>().is_err());
    }

    #[test]
    fn builders_round_trip() {
        assert_eq!(
            Mpxn::mpan_with_check_digit("131234567890")
                .unwrap()
                .as_str(),
            "1312345678907"
        );
        assert_eq!(
            Mpxn::mprn_with_check_digits("39384244").unwrap().as_str(),
            "3938424403"
        );
        assert!(Mpxn::mpan_with_check_digit("13123456789").is_none());
    }

    proptest::proptest! {
        #[test]
        fn built_mpans_verify(n in 0u64..1_000_000_000_000) {
            let m = Mpxn::mpan_with_check_digit(&format!("{n:012}")).unwrap();
            proptest::prop_assert!(Mpxn::parse(m.as_str(), reject()).is_ok());
        }

        #[test]
        fn single_digit_change_breaks_mpan(n in 0u64..1_000_000_000_000, pos in 0usize..12, delta in 1u8..10) {
            let m = Mpxn::mpan_with_check_digit(&format!("{n:012}")).unwrap();
            let mut b = m.as_str().as_bytes().to_vec();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let s = String::from_utf8(b).unwrap();
            // Weights are distinct primes < 11·k; a one-digit change alters the sum by delta·w,
            // which is 0 mod 11 only if 11 | w (never). Mod 10 folding can collide for 10 ↔ 0.
            let changed = Mpxn::parse_unchecked(&s).unwrap();
            let sum_changed = !changed.check_digit_valid() || (s.as_bytes()[12] == b'0');
            proptest::prop_assert!(sum_changed);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = Mpxn::parse(&s, reject());
        }
    }
}
