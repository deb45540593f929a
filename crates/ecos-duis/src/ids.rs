//! DUIS RequestID / ResponseID: `originator EUI : target EUI : counter`.

use std::fmt;
use std::str::FromStr;

use ecos_smki::Eui64;

/// A DUIS `sr:RequestIDType` (the same lexical form is used by `sr:ResponseIDType`).
///
/// Lexically `HH-HH-HH-HH-HH-HH-HH-HH:HH-HH-HH-HH-HH-HH-HH-HH:counter` with
/// case-insensitive hex, mandatory dashes and a decimal u64 counter without
/// leading zeros. `Display` writes the canonical form (upper-case hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId {
    /// Business originator (the User for requests, the device or DCC for responses).
    pub originator: Eui64,
    /// Business target (the device for requests, the User for responses).
    pub target: Eui64,
    /// The counter.
    pub counter: u64,
}

/// A DUIS ResponseID: same lexical form as a RequestID.
pub type ResponseId = RequestId;

/// Why a string is not a RequestID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestIdError {
    /// Not three colon-separated parts.
    #[error("RequestID {0:?}: expected EUI:EUI:counter")]
    Shape(String),
    /// An EUI part is not eight dash-separated hex pairs.
    #[error("RequestID {input:?}: {which} EUI is not eight dash-separated hex pairs")]
    Eui {
        /// The rejected input.
        input: String,
        /// `originator` or `target`.
        which: &'static str,
    },
    /// The counter is empty, not decimal or has a leading zero.
    #[error("RequestID {0:?}: counter must be 0 or decimal digits without a leading zero")]
    CounterSyntax(String),
    /// The counter exceeds 2^64-1.
    #[error("RequestID {0:?}: counter exceeds 18446744073709551615")]
    CounterRange(String),
}

/// XML whitespace (the only characters xs:token collapses).
pub(crate) fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Strict dashed EUI: `HH-HH-...-HH`, case-insensitive hex.
pub(crate) fn parse_dashed_eui(s: &str) -> Option<Eui64> {
    let b: &[u8; 23] = s.as_bytes().try_into().ok()?;
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        let p = i * 3;
        if i > 0 && b[p - 1] != b'-' {
            return None;
        }
        // to_digit(16) is exactly the ASCII hex digits, either case
        *o = (hex(b[p])? << 4 | hex(b[p + 1])?) as u8;
    }
    Some(Eui64(out))
}

impl RequestId {
    /// Build from parts.
    pub fn new(originator: Eui64, target: Eui64, counter: u64) -> Self {
        RequestId {
            originator,
            target,
            counter,
        }
    }

    /// The ResponseID of a response to this request: originator and target
    /// swapped, the counter unchanged (DCC Boxed behaviour, `duis-6.23.md` §3).
    pub fn response_id(&self) -> ResponseId {
        RequestId {
            originator: self.target,
            target: self.originator,
            counter: self.counter,
        }
    }

    /// Parse the lexical form after xs:token whitespace collapsing.
    pub fn parse_token(s: &str) -> Result<Self, RequestIdError> {
        let t = s.trim_matches(is_xml_ws);
        if let Some(id) = Self::parse_plain(t) {
            return Ok(id);
        }
        let mut parts = t.split(':');
        let (Some(o), Some(g), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(RequestIdError::Shape(t.to_string()));
        };
        let originator = parse_dashed_eui(o).ok_or_else(|| RequestIdError::Eui {
            input: t.to_string(),
            which: "originator",
        })?;
        let target = parse_dashed_eui(g).ok_or_else(|| RequestIdError::Eui {
            input: t.to_string(),
            which: "target",
        })?;
        if c.is_empty()
            || !c.bytes().all(|b| b.is_ascii_digit())
            || (c.len() > 1 && c.starts_with('0'))
        {
            return Err(RequestIdError::CounterSyntax(t.to_string()));
        }
        let counter = c
            .parse::<u64>()
            .map_err(|_| RequestIdError::CounterRange(t.to_string()))?;
        Ok(RequestId {
            originator,
            target,
            counter,
        })
    }
}

impl RequestId {
    /// `t` in the usual form, two dashed EUIs and a counter at their fixed
    /// places: what [`RequestId::parse_token`] gives for it, without
    /// splitting; `None` for anything else (left to the general reading,
    /// which names the fault).
    fn parse_plain(t: &str) -> Option<Self> {
        let b = t.as_bytes();
        if b.get(23) != Some(&b':') || b.get(47) != Some(&b':') {
            return None;
        }
        // neither EUI can hold a ':', so these are the split's three parts
        let originator = parse_dashed_eui(t.get(..23)?)?;
        let target = parse_dashed_eui(t.get(24..47)?)?;
        let c = t.get(48..)?;
        if c.is_empty()
            || !c.bytes().all(|b| b.is_ascii_digit())
            || (c.len() > 1 && c.starts_with('0'))
        {
            return None;
        }
        Some(RequestId {
            originator,
            target,
            counter: c.parse().ok()?,
        })
    }
}

impl FromStr for RequestId {
    type Err = RequestIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestId::parse_token(s)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.originator, self.target, self.counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        let id: RequestId = " 90-b3-d5-1f-30-01-00-00:00-DB-12-34-56-78-90-A0:1006\n"
            .parse()
            .unwrap();
        assert_eq!(id.originator.to_compact(), "90B3D51F30010000");
        assert_eq!(id.target.to_compact(), "00DB1234567890A0");
        assert_eq!(id.counter, 1006);
        assert_eq!(
            id.to_string(),
            "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006"
        );
        assert_eq!(
            id.response_id().to_string(),
            "00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:1006"
        );
        let max: RequestId = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551615"
            .parse()
            .unwrap();
        assert_eq!(max.counter, u64::MAX);
        let zero: RequestId = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:0"
            .parse()
            .unwrap();
        assert_eq!(zero.counter, 0);
    }

    /// The one-pass EUI reading against the rule written out: dashes at
    /// every third place, hex digits elsewhere, then the EUI parse.
    #[test]
    fn dashed_eui_is_the_rule() {
        let reference = |s: &str| {
            let ok = s.len() == 23
                && s.bytes().enumerate().all(|(i, c)| {
                    if i % 3 == 2 {
                        c == b'-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                });
            ok.then(|| s.parse::<Eui64>().ok()).flatten()
        };
        let base = "0a-B3-D5-1F-30-01-00-9f".to_string();
        assert!(parse_dashed_eui(&base).is_some());
        for pos in 0..base.len() {
            for c in [
                b'0', b'9', b'a', b'f', b'A', b'F', b'g', b'G', b'-', b':', b' ', b'/',
            ] {
                let mut v = base.clone().into_bytes();
                v[pos] = c;
                let s = String::from_utf8(v).unwrap();
                assert_eq!(parse_dashed_eui(&s), reference(&s), "{s}");
            }
        }
        for s in [
            "",
            "0a-B3-D5-1F-30-01-00-9",
            "0a-B3-D5-1F-30-01-00-9f0",
            "é0-B3-D5-1F-30-01-00-9",
        ] {
            assert_eq!(parse_dashed_eui(s), reference(s), "{s}");
        }
    }

    #[test]
    fn rejects_each_fault() {
        use RequestIdError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0", |e| {
                matches!(e, E::Shape(_))
            }),
            ("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1:2", |e| {
                matches!(e, E::Shape(_))
            }),
            ("90B3D51F30010000:00-DB-12-34-56-78-90-A0:1", |e| {
                matches!(
                    e,
                    E::Eui {
                        which: "originator",
                        ..
                    }
                )
            }),
            ("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-AZ:1", |e| {
                matches!(
                    e,
                    E::Eui {
                        which: "target",
                        ..
                    }
                )
            }),
            (
                "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:01006",
                |e| matches!(e, E::CounterSyntax(_)),
            ),
            ("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:", |e| {
                matches!(e, E::CounterSyntax(_))
            }),
            ("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:+5", |e| {
                matches!(e, E::CounterSyntax(_))
            }),
            (
                "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551616",
                |e| matches!(e, E::CounterRange(_)),
            ),
            ("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1 0", |e| {
                matches!(e, E::CounterSyntax(_))
            }),
        ];
        for (input, check) in cases {
            let e = input.parse::<RequestId>().unwrap_err();
            assert!(check(&e), "{input}: {e:?}");
        }
    }
}
