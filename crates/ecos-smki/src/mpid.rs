//! MPIDs in the Common Name of an XML Sign certificate (`smki.md` §5).
//!
//! The public text is silent on the CN syntax, so every rule of the
//! project's interpretation **\[P\]** is a field of [`MpidRules`]; the
//! defaults are those of the reference: tokens separated by exactly one
//! ASCII space, upper-case `[A-Z0-9]`, a 4-character token is an
//! electricity MPID and a 3-character token a gas short code, at most one
//! per fuel, at most two tokens, and a CN is required.

use std::fmt;

use crate::Certificate;

/// The fuel an MPID belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fuel {
    /// Electricity (MPAN; Elexon MPID).
    Electricity,
    /// Gas (MPRN; Xoserve short code).
    Gas,
}

impl fmt::Display for Fuel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fuel::Electricity => "electricity",
            Fuel::Gas => "gas",
        })
    }
}

/// The MPIDs a CN carries: at most one per fuel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mpids {
    /// The electricity supplier MPID (4 characters by default).
    pub electricity: Option<String>,
    /// The gas supplier short code (3 characters by default).
    pub gas: Option<String>,
}

/// The configurable CN → MPID rules (`cn_mpid.*` in the reference).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MpidRules {
    /// Token separator (default one ASCII space).
    pub separator: String,
    /// Reject leading, trailing and repeated separators (default true).
    /// When false, empty tokens are dropped.
    pub strict_whitespace: bool,
    /// Accept lower-case letters (default false); accepted tokens are upper-cased.
    pub allow_lowercase: bool,
    /// Length of an electricity MPID (default 4).
    pub electricity_len: usize,
    /// Length of a gas short code (default 3).
    pub gas_len: usize,
    /// Maximum number of tokens (default 2).
    pub max_tokens: usize,
    /// A missing or empty CN is an error (default true); when false it yields no MPIDs.
    pub require: bool,
    /// Optional market-domain reference lists (Elexon MPIDs, Xoserve short
    /// codes); when set, each token must be in the list of its fuel. Off by default.
    pub reference_lists: Option<ReferenceLists>,
}

/// The known MPIDs per fuel, from market domain data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferenceLists {
    /// Electricity supplier MPIDs (Elexon MDD).
    pub electricity: std::collections::BTreeSet<String>,
    /// Gas supplier short codes (Xoserve MDD).
    pub gas: std::collections::BTreeSet<String>,
}

impl Default for MpidRules {
    fn default() -> Self {
        MpidRules {
            separator: " ".into(),
            strict_whitespace: true,
            allow_lowercase: false,
            electricity_len: 4,
            gas_len: 3,
            max_tokens: 2,
            require: true,
            reference_lists: None,
        }
    }
}

/// Why a CN does not yield MPIDs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MpidError {
    /// The certificate has no CN.
    #[error("CN: missing; the XML Sign certificate carries no MPIDs")]
    MissingCn,
    /// The CN is empty (or only separators).
    #[error("CN: empty; the XML Sign certificate carries no MPIDs")]
    EmptyCn,
    /// A leading, trailing or repeated separator under strict whitespace.
    #[error("CN {cn:?}: empty token at byte {position} (leading, trailing or repeated separator)")]
    Whitespace {
        /// The CN.
        cn: String,
        /// Byte offset of the empty token.
        position: usize,
    },
    /// A token of the wrong alphabet, case or length.
    #[error("CN {cn:?}: token {token:?} {reason}")]
    TokenShape {
        /// The CN.
        cn: String,
        /// The token.
        token: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two tokens of the same fuel.
    #[error("CN {cn:?}: two {fuel} MPIDs ({first:?} and {second:?})")]
    DuplicateFuel {
        /// The CN.
        cn: String,
        /// The fuel.
        fuel: Fuel,
        /// The first token.
        first: String,
        /// The second token.
        second: String,
    },
    /// More tokens than allowed.
    #[error("CN {cn:?}: {count} tokens, at most {max} allowed")]
    TooManyTokens {
        /// The CN.
        cn: String,
        /// Tokens found.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A token absent from the reference list of its fuel.
    #[error("CN {cn:?}: {fuel} MPID {token:?} is not in the reference list")]
    NotInReferenceList {
        /// The CN.
        cn: String,
        /// The fuel.
        fuel: Fuel,
        /// The token.
        token: String,
    },
    /// The rules themselves are inconsistent.
    #[error("MPID rules: {0}")]
    Config(String),
}

impl MpidRules {
    /// Check the rules are usable: a non-empty separator, distinct positive lengths.
    pub fn validate(&self) -> Result<(), MpidError> {
        if self.separator.is_empty() {
            return Err(MpidError::Config("separator is empty".into()));
        }
        if self.electricity_len == 0 || self.gas_len == 0 {
            return Err(MpidError::Config("token lengths must be positive".into()));
        }
        if self.electricity_len == self.gas_len {
            return Err(MpidError::Config(format!(
                "electricity_len and gas_len are both {}: length cannot classify the fuel",
                self.gas_len
            )));
        }
        if self.max_tokens == 0 {
            return Err(MpidError::Config("max_tokens is 0".into()));
        }
        Ok(())
    }
}

impl Mpids {
    /// Read MPIDs from a certificate's CN (`None` when the CN is absent).
    pub fn from_cn(cn: Option<&str>, rules: &MpidRules) -> Result<Mpids, MpidError> {
        rules.validate()?;
        let Some(cn) = cn else {
            return if rules.require {
                Err(MpidError::MissingCn)
            } else {
                Ok(Mpids::default())
            };
        };
        let blank = cn.split(rules.separator.as_str()).all(str::is_empty);
        if cn.is_empty() || (blank && !rules.strict_whitespace) {
            return if rules.require {
                Err(MpidError::EmptyCn)
            } else {
                Ok(Mpids::default())
            };
        }

        let mut tokens: Vec<&str> = Vec::new();
        let mut offset = 0;
        for raw in cn.split(rules.separator.as_str()) {
            if raw.is_empty() {
                if rules.strict_whitespace {
                    return Err(MpidError::Whitespace {
                        cn: cn.into(),
                        position: offset,
                    });
                }
            } else {
                tokens.push(raw);
            }
            offset += raw.len() + rules.separator.len();
        }
        if tokens.len() > rules.max_tokens {
            return Err(MpidError::TooManyTokens {
                cn: cn.into(),
                count: tokens.len(),
                max: rules.max_tokens,
            });
        }

        let mut out = Mpids::default();
        for token in tokens {
            let shape = |reason: String| MpidError::TokenShape {
                cn: cn.into(),
                token: token.into(),
                reason,
            };
            if let Some(c) = token
                .chars()
                .find(|c| !(c.is_ascii_digit() || c.is_ascii_alphabetic()))
            {
                return Err(shape(format!("holds {c:?}: only [A-Z0-9] is allowed")));
            }
            if !rules.allow_lowercase && token.chars().any(|c| c.is_ascii_lowercase()) {
                return Err(shape("is not upper case".into()));
            }
            let len = token.len();
            let fuel = if len == rules.electricity_len {
                Fuel::Electricity
            } else if len == rules.gas_len {
                Fuel::Gas
            } else {
                return Err(shape(format!(
                    "has {len} characters: an electricity MPID has {}, a gas short code {}",
                    rules.electricity_len, rules.gas_len
                )));
            };
            let slot = match fuel {
                Fuel::Electricity => &mut out.electricity,
                Fuel::Gas => &mut out.gas,
            };
            let value = token.to_ascii_uppercase();
            if let Some(lists) = &rules.reference_lists {
                let list = match fuel {
                    Fuel::Electricity => &lists.electricity,
                    Fuel::Gas => &lists.gas,
                };
                if !list.contains(&value) {
                    return Err(MpidError::NotInReferenceList {
                        cn: cn.into(),
                        fuel,
                        token: value,
                    });
                }
            }
            if let Some(first) = slot {
                return Err(MpidError::DuplicateFuel {
                    cn: cn.into(),
                    fuel,
                    first: first.clone(),
                    second: value,
                });
            }
            *slot = Some(value);
        }
        Ok(out)
    }

    /// Read MPIDs from a certificate's subject CN.
    pub fn from_certificate(cert: &Certificate, rules: &MpidRules) -> Result<Mpids, MpidError> {
        Self::from_cn(cert.common_name(), rules)
    }

    /// The MPID for a fuel.
    pub fn for_fuel(&self, fuel: Fuel) -> Option<&str> {
        match fuel {
            Fuel::Electricity => self.electricity.as_deref(),
            Fuel::Gas => self.gas.as_deref(),
        }
    }

    /// Whether no MPID is present.
    pub fn is_empty(&self) -> bool {
        self.electricity.is_none() && self.gas.is_none()
    }

    /// The canonical CN: electricity then gas, separated by one space.
    pub fn to_cn(&self) -> String {
        [self.electricity.as_deref(), self.gas.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(e: Option<&str>, g: Option<&str>) -> Mpids {
        Mpids {
            electricity: e.map(Into::into),
            gas: g.map(Into::into),
        }
    }

    /// Every example of smki.md §5 and every error, under the default rules.
    #[test]
    fn table_default_rules() {
        type Want = Result<Mpids, fn(&MpidError) -> bool>;
        let cases: Vec<(Option<&str>, Want)> = vec![
            (Some("ACEE ACG"), Ok(m(Some("ACEE"), Some("ACG")))),
            (Some("ACG ACEE"), Ok(m(Some("ACEE"), Some("ACG")))),
            (Some("ACEE"), Ok(m(Some("ACEE"), None))),
            (Some("ACG"), Ok(m(None, Some("ACG")))),
            (Some("BD12 9Z9"), Ok(m(Some("BD12"), Some("9Z9")))),
            (
                Some("ACEE  ACG"),
                Err(|e| matches!(e, MpidError::Whitespace { position: 5, .. })),
            ),
            (
                Some(" ACEE"),
                Err(|e| matches!(e, MpidError::Whitespace { position: 0, .. })),
            ),
            (
                Some("ACEE "),
                Err(|e| matches!(e, MpidError::Whitespace { position: 5, .. })),
            ),
            (
                Some("ACEE\tACG"),
                Err(|e| matches!(e, MpidError::TokenShape { .. })),
            ),
            (
                Some("ACEE BCEE"),
                Err(|e| {
                    matches!(e, MpidError::DuplicateFuel { fuel: Fuel::Electricity, first, second, .. }
                        if first == "ACEE" && second == "BCEE")
                }),
            ),
            (
                Some("ACG BCG"),
                Err(|e| {
                    matches!(
                        e,
                        MpidError::DuplicateFuel {
                            fuel: Fuel::Gas,
                            ..
                        }
                    )
                }),
            ),
            (
                Some("ACEE ACG XYZ"),
                Err(|e| {
                    matches!(
                        e,
                        MpidError::TooManyTokens {
                            count: 3,
                            max: 2,
                            ..
                        }
                    )
                }),
            ),
            (
                Some("acee"),
                Err(
                    |e| matches!(e, MpidError::TokenShape { reason, .. } if reason.contains("upper case")),
                ),
            ),
            (
                Some("ACEEE"),
                Err(
                    |e| matches!(e, MpidError::TokenShape { reason, .. } if reason.contains("5 characters")),
                ),
            ),
            (
                Some("AC"),
                Err(|e| matches!(e, MpidError::TokenShape { .. })),
            ),
            (
                Some("AC-E"),
                Err(
                    |e| matches!(e, MpidError::TokenShape { reason, .. } if reason.contains("'-'")),
                ),
            ),
            (
                Some("ÄCEE"),
                Err(|e| matches!(e, MpidError::TokenShape { .. })),
            ),
            (Some(""), Err(|e| matches!(e, MpidError::EmptyCn))),
            (
                Some(" "),
                Err(|e| matches!(e, MpidError::Whitespace { position: 0, .. })),
            ),
            (None, Err(|e| matches!(e, MpidError::MissingCn))),
        ];
        let rules = MpidRules::default();
        for (cn, want) in cases {
            let got = Mpids::from_cn(cn, &rules);
            match (&got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, &w, "{cn:?}"),
                (Err(e), Err(pred)) => {
                    assert!(pred(e), "{cn:?}: unexpected error {e:?}");
                    assert!(!e.to_string().is_empty());
                }
                _ => panic!("{cn:?}: got {got:?}"),
            }
        }
    }

    #[test]
    fn configured_rules() {
        let lax = MpidRules {
            strict_whitespace: false,
            allow_lowercase: true,
            require: false,
            ..MpidRules::default()
        };
        assert_eq!(
            Mpids::from_cn(Some(" acee  acg "), &lax).unwrap(),
            m(Some("ACEE"), Some("ACG"))
        );
        assert_eq!(Mpids::from_cn(None, &lax).unwrap(), Mpids::default());
        assert_eq!(Mpids::from_cn(Some(""), &lax).unwrap(), Mpids::default());
        assert_eq!(Mpids::from_cn(Some("   "), &lax).unwrap(), Mpids::default());
        let strict_optional = MpidRules {
            require: false,
            ..MpidRules::default()
        };
        assert!(Mpids::from_cn(Some("acee"), &strict_optional).is_err());

        let comma = MpidRules {
            separator: ",".into(),
            max_tokens: 1,
            ..MpidRules::default()
        };
        assert_eq!(
            Mpids::from_cn(Some("ACEE"), &comma).unwrap(),
            m(Some("ACEE"), None)
        );
        assert!(matches!(
            Mpids::from_cn(Some("ACEE,ACG"), &comma),
            Err(MpidError::TooManyTokens { max: 1, .. })
        ));

        let lengths = MpidRules {
            electricity_len: 5,
            gas_len: 2,
            ..MpidRules::default()
        };
        assert_eq!(
            Mpids::from_cn(Some("AB ABCDE"), &lengths).unwrap(),
            m(Some("ABCDE"), Some("AB"))
        );

        for bad in [
            MpidRules {
                separator: String::new(),
                ..MpidRules::default()
            },
            MpidRules {
                gas_len: 4,
                ..MpidRules::default()
            },
            MpidRules {
                max_tokens: 0,
                ..MpidRules::default()
            },
        ] {
            assert!(matches!(
                Mpids::from_cn(Some("ACEE"), &bad),
                Err(MpidError::Config(_))
            ));
        }
    }

    #[test]
    fn reference_lists() {
        let rules: MpidRules = serde_json::from_str(
            r#"{"reference_lists": {"electricity": ["ACEE"], "gas": ["ACG"]}}"#,
        )
        .unwrap();
        assert_eq!(
            Mpids::from_cn(Some("ACEE ACG"), &rules).unwrap(),
            m(Some("ACEE"), Some("ACG"))
        );
        assert!(matches!(
            Mpids::from_cn(Some("BDEE"), &rules),
            Err(MpidError::NotInReferenceList { fuel: Fuel::Electricity, token, .. }) if token == "BDEE"
        ));
        assert!(matches!(
            Mpids::from_cn(Some("ACEE BDG"), &rules),
            Err(MpidError::NotInReferenceList {
                fuel: Fuel::Gas,
                ..
            })
        ));
    }

    #[test]
    fn rules_deserialise_with_defaults() {
        let r: MpidRules = serde_json::from_str(r#"{"allow_lowercase": true}"#).unwrap();
        assert!(r.allow_lowercase);
        assert_eq!(r.electricity_len, 4);
        assert_eq!(r.separator, " ");
        assert!(serde_json::from_str::<MpidRules>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn accessors() {
        let x = m(Some("ACEE"), Some("ACG"));
        assert_eq!(x.for_fuel(Fuel::Gas), Some("ACG"));
        assert_eq!(x.to_cn(), "ACEE ACG");
        assert!(!x.is_empty());
        assert_eq!(m(None, Some("ACG")).to_cn(), "ACG");
    }
}
