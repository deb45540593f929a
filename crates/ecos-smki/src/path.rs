//! Certification path validation at a given instant.
//!
//! SMKI paths are short: leaf → issuing CA (`OU=07`, pathlen 0) → root
//! (`OU=00`), or leaf → device CA → root. A [`TrustStore`] holds the trust
//! anchors (a root, or the issuing CA alone: a partial chain, as the ZAZ1
//! tests need because the ZA root is not public) and known intermediate CAs.
//! [`validate_path`] builds the path by issuer name (byte-exact DER match,
//! narrowed by AKI/SKI), then checks for each link: the signature, the
//! issuer being a CA with keyCertSign and within its pathLenConstraint, the
//! validity at the instant (optional), revocation, and the policy OIDs of
//! [`PathPolicy`]; the store also holds the [`Revocations`]. Each failure is its own [`PathError`] variant.
//!
//! Nothing is cached globally; every call does one ECDSA verify per link.

use std::collections::HashSet;

use crate::cert::oid;
use crate::{Certificate, KeyUsage};

/// Upper bound on path length (leaf and anchor included).
const MAX_DEPTH: usize = 8;

/// Trust anchors and known intermediate CAs.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    revocations: Revocations,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with these anchors.
    pub fn with_anchors(anchors: impl IntoIterator<Item = Certificate>) -> Self {
        TrustStore {
            anchors: anchors.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Trust `cert` as an anchor: a root, or an issuing CA alone (partial chain).
    pub fn add_anchor(&mut self, cert: Certificate) -> &mut Self {
        if !self.anchors.contains(&cert) {
            self.anchors.push(cert);
        }
        self
    }

    /// Know `cert` as an intermediate CA (it must itself chain to an anchor).
    pub fn add_intermediate(&mut self, cert: Certificate) -> &mut Self {
        if !self.intermediates.contains(&cert) {
            self.intermediates.push(cert);
        }
        self
    }

    /// Replace the revocation list.
    pub fn set_revocations(&mut self, revocations: Revocations) -> &mut Self {
        self.revocations = revocations;
        self
    }

    /// The revocation list.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Mutable access to the revocation list.
    pub fn revocations_mut(&mut self) -> &mut Revocations {
        &mut self.revocations
    }

    /// The anchors.
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }

    /// The intermediates.
    pub fn intermediates(&self) -> &[Certificate] {
        &self.intermediates
    }

    fn is_anchor(&self, cert: &Certificate) -> bool {
        self.anchors.iter().any(|a| a == cert)
    }
}

/// One revoked certificate: its issuer (RFC 2253, e.g. `CN=Z1,OU=07`) and serial (hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedEntry {
    /// The issuer name in RFC 2253 form.
    pub issuer: String,
    /// The serial number in hex (leading zeros ignored).
    pub serial: String,
}

/// A set of revoked issuer + serial pairs.
///
/// Keyed by the issuer's RFC 2253 string, so a revocation applies whatever
/// string type the certificate used to encode the issuer name.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    set: HashSet<(String, Vec<u8>)>,
}

/// A revocation entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The serial is not hex.
    #[error("revocation entry for issuer {issuer:?}: serial {serial:?} is not hex")]
    Serial {
        /// The issuer.
        issuer: String,
        /// The serial text.
        serial: String,
    },
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    b.iter().copied().skip_while(|&x| x == 0).collect()
}

impl Revocations {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revoke the certificate with this issuer (RFC 2253) and serial (big-endian).
    pub fn add(&mut self, issuer_rfc2253: &str, serial: &[u8]) -> &mut Self {
        self.set
            .insert((issuer_rfc2253.to_string(), strip_zeros(serial)));
        self
    }

    /// Revoke this certificate.
    pub fn add_certificate(&mut self, cert: &Certificate) -> &mut Self {
        self.add(&cert.issuer_rfc2253(), cert.serial())
    }

    /// From configuration entries.
    pub fn from_entries(entries: &[RevokedEntry]) -> Result<Self, RevocationError> {
        let mut r = Revocations::new();
        for e in entries {
            let hex_text = if e.serial.len() % 2 == 1 {
                format!("0{}", e.serial)
            } else {
                e.serial.clone()
            };
            let serial = hex::decode(&hex_text).map_err(|_| RevocationError::Serial {
                issuer: e.issuer.clone(),
                serial: e.serial.clone(),
            })?;
            r.add(&e.issuer, &serial);
        }
        Ok(r)
    }

    /// Whether `cert` is revoked.
    pub fn is_revoked(&self, cert: &Certificate) -> bool {
        !self.set.is_empty()
            && self
                .set
                .contains(&(cert.issuer_rfc2253(), cert.serial().to_vec()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// What a path must satisfy beyond signatures and CA constraints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathPolicy {
    /// Acceptable certificate policy OIDs (dotted). Every certificate in the
    /// path below the anchor must carry one of them, and one must be common
    /// to the whole path. The defaults are the test-PKI organisation and
    /// device policies; the production OIDs are configuration (`smki.md` \[P\]).
    pub allowed_policies: Vec<String>,
    /// Require each non-anchor certificate's AKI to equal its issuer's SKI
    /// (default true; the 8-byte identifiers are how GBCS names cells).
    /// When false, key identifiers are ignored and only names and
    /// signatures select the issuer.
    pub require_key_identifiers: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy {
            allowed_policies: vec![
                oid::TEST_ORG_POLICY.to_string(),
                oid::TEST_DEVICE_POLICY.to_string(),
            ],
            require_key_identifiers: true,
        }
    }
}

impl PathPolicy {
    /// Only the test organisation policy.
    pub fn test_organisation() -> Self {
        PathPolicy {
            allowed_policies: vec![oid::TEST_ORG_POLICY.to_string()],
            ..Self::default()
        }
    }

    /// Only the test device policy.
    pub fn test_device() -> Self {
        PathPolicy {
            allowed_policies: vec![oid::TEST_DEVICE_POLICY.to_string()],
            ..Self::default()
        }
    }
}

/// Why a certificate does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The trust store has no anchors.
    #[error("trust store has no trust anchors")]
    NoTrustAnchor,
    /// The certificate is self-signed but is not a trust anchor.
    #[error(
        "certificate {subject:?} (serial {serial}) is self-signed although it names issuer {issuer:?}: it does not chain to a trust anchor"
    )]
    SelfSigned {
        /// Subject, RFC 2253.
        subject: String,
        /// Named issuer, RFC 2253.
        issuer: String,
        /// Serial, hex.
        serial: String,
    },
    /// No known CA has the issuer name (byte-exact) of this certificate.
    #[error(
        "issuer {issuer:?} of certificate {subject:?} (serial {serial}) not found among the trust anchors and intermediates{note}"
    )]
    IssuerNotFound {
        /// Subject, RFC 2253.
        subject: String,
        /// Named issuer, RFC 2253.
        issuer: String,
        /// Serial, hex.
        serial: String,
        /// Extra explanation (e.g. a CA of the same name in another string encoding).
        note: String,
    },
    /// A CA has the issuer name but its SKI is not the certificate's AKI.
    #[error(
        "certificate {subject:?}: authorityKeyIdentifier {aki} matches no SKI of the CAs named {issuer:?}"
    )]
    KeyIdentifierMismatch {
        /// Subject, RFC 2253.
        subject: String,
        /// Issuer, RFC 2253.
        issuer: String,
        /// The AKI (hex) or `absent`.
        aki: String,
    },
    /// The signature does not verify with the issuer's key.
    #[error(
        "certificate {subject:?} (serial {serial}): signature does not verify with the key of {issuer:?}"
    )]
    BadSignature {
        /// Subject, RFC 2253.
        subject: String,
        /// Issuer, RFC 2253.
        issuer: String,
        /// Serial, hex.
        serial: String,
    },
    /// The issuer is not a CA (basicConstraints cA).
    #[error("issuer {issuer:?} is not a CA (no basicConstraints cA)")]
    IssuerNotCa {
        /// Issuer, RFC 2253.
        issuer: String,
    },
    /// The issuer lacks keyCertSign.
    #[error("issuer {issuer:?} keyUsage is {usage}, not keyCertSign")]
    IssuerNotCertSign {
        /// Issuer, RFC 2253.
        issuer: String,
        /// Its key usage.
        usage: KeyUsage,
    },
    /// A CA's pathLenConstraint is exceeded.
    #[error(
        "issuer {issuer:?}: pathLenConstraint {max} exceeded by {below} CA certificates below it"
    )]
    PathLenExceeded {
        /// Issuer, RFC 2253.
        issuer: String,
        /// Its pathLenConstraint.
        max: u8,
        /// CA certificates below it in the path.
        below: usize,
    },
    /// The path is longer than the limit (or loops).
    #[error("certification path longer than {0} certificates")]
    PathTooLong(usize),
    /// A certificate is not yet valid at the instant.
    #[error(
        "certificate {subject:?} (serial {serial}) is not valid before {not_before} (checked at {at})"
    )]
    NotYetValid {
        /// Subject, RFC 2253.
        subject: String,
        /// Serial, hex.
        serial: String,
        /// notBefore.
        not_before: jiff::Timestamp,
        /// The instant checked.
        at: jiff::Timestamp,
    },
    /// A certificate has expired at the instant.
    #[error("certificate {subject:?} (serial {serial}) expired at {not_after} (checked at {at})")]
    Expired {
        /// Subject, RFC 2253.
        subject: String,
        /// Serial, hex.
        serial: String,
        /// notAfter.
        not_after: jiff::Timestamp,
        /// The instant checked.
        at: jiff::Timestamp,
    },
    /// A certificate is on the revocation list.
    #[error("certificate {subject:?} (issuer {issuer:?}, serial {serial}) is revoked")]
    Revoked {
        /// Subject, RFC 2253.
        subject: String,
        /// Issuer, RFC 2253.
        issuer: String,
        /// Serial, hex.
        serial: String,
    },
    /// A certificate carries none of the allowed policies.
    #[error(
        "certificate {subject:?}: policies {policies:?} include none of the allowed {allowed:?}"
    )]
    PolicyNotAllowed {
        /// Subject, RFC 2253.
        subject: String,
        /// Its policies.
        policies: Vec<String>,
        /// The allowed set.
        allowed: Vec<String>,
    },
    /// No allowed policy is common to every certificate of the path.
    #[error("no allowed policy is common to the whole path (allowed {allowed:?})")]
    NoCommonPolicy {
        /// The allowed set.
        allowed: Vec<String>,
    },
}

/// A validated path: the leaf first, the trust anchor last.
#[derive(Debug, Clone)]
pub struct ValidatedPath {
    certs: Vec<Certificate>,
    policies: Vec<String>,
}

impl ValidatedPath {
    /// The end-entity certificate.
    pub fn leaf(&self) -> &Certificate {
        &self.certs[0]
    }

    /// The trust anchor the path ends at.
    pub fn anchor(&self) -> &Certificate {
        &self.certs[self.certs.len() - 1]
    }

    /// Every certificate, leaf first.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    /// The allowed policies common to the path.
    pub fn policies(&self) -> &[String] {
        &self.policies
    }
}

fn serial_hex(c: &Certificate) -> String {
    hex::encode_upper(c.serial())
}

/// Find and check the issuer of `cert` among the candidates.
fn find_issuer<'a>(
    cert: &Certificate,
    store: &'a TrustStore,
    extra: &'a [Certificate],
    policy: &PathPolicy,
) -> Result<&'a Certificate, PathError> {
    let all = || {
        store
            .anchors
            .iter()
            .chain(store.intermediates.iter())
            .chain(extra.iter())
    };
    let named: Vec<&Certificate> = all()
        .filter(|c| c.subject_der() == cert.issuer_der() && *c != cert)
        .collect();
    if named.is_empty() {
        if cert.verify_signature(cert.public_key()).is_ok() {
            return Err(PathError::SelfSigned {
                subject: cert.subject_rfc2253(),
                issuer: cert.issuer_rfc2253(),
                serial: serial_hex(cert),
            });
        }
        let same_text = all().any(|c| c.subject_rfc2253() == cert.issuer_rfc2253());
        return Err(PathError::IssuerNotFound {
            subject: cert.subject_rfc2253(),
            issuer: cert.issuer_rfc2253(),
            serial: serial_hex(cert),
            note: if same_text {
                "; a CA with the same name in another string encoding exists, but names must match byte for byte".into()
            } else {
                String::new()
            },
        });
    }
    let keyed: Vec<&Certificate> = named
        .iter()
        .copied()
        .filter(|c| {
            !policy.require_key_identifiers
                || matches!((cert.aki(), c.ski()), (Some(aki), Some(ski)) if aki == ski)
        })
        .collect();
    if keyed.is_empty() {
        return Err(PathError::KeyIdentifierMismatch {
            subject: cert.subject_rfc2253(),
            issuer: cert.issuer_rfc2253(),
            aki: cert.aki().map(hex::encode_upper).unwrap_or("absent".into()),
        });
    }
    keyed
        .into_iter()
        .find(|c| cert.verify_signature(c.public_key()).is_ok())
        .ok_or_else(|| PathError::BadSignature {
            subject: cert.subject_rfc2253(),
            issuer: cert.issuer_rfc2253(),
            serial: serial_hex(cert),
        })
}

/// Validate `leaf` at instant `at` against `store` (its anchors,
/// intermediates and revocation list), with `extra_intermediates` (for
/// example the CAs sent alongside a request) as further path candidates.
///
/// With `time_checks` false the validity periods are not checked (for a
/// CPV of certificates whose lifetime is judged elsewhere).
pub fn validate_path(
    leaf: &Certificate,
    extra_intermediates: &[Certificate],
    store: &TrustStore,
    at: jiff::Timestamp,
    policy: &PathPolicy,
    time_checks: bool,
) -> Result<ValidatedPath, PathError> {
    let revocations = &store.revocations;
    if store.anchors.is_empty() {
        return Err(PathError::NoTrustAnchor);
    }
    // Build: leaf first, anchor last; signatures and CA constraints per link.
    let mut path: Vec<&Certificate> = vec![leaf];
    let mut cas_below = 0usize;
    while !store.is_anchor(path[path.len() - 1]) {
        if path.len() >= MAX_DEPTH {
            return Err(PathError::PathTooLong(MAX_DEPTH));
        }
        let cur = path[path.len() - 1];
        let issuer = find_issuer(cur, store, extra_intermediates, policy)?;
        if !issuer.is_ca() {
            return Err(PathError::IssuerNotCa {
                issuer: issuer.subject_rfc2253(),
            });
        }
        if issuer.key_usage() != KeyUsage::CertSign {
            return Err(PathError::IssuerNotCertSign {
                issuer: issuer.subject_rfc2253(),
                usage: issuer.key_usage(),
            });
        }
        if path.len() > 1 && !cur.is_self_issued() {
            cas_below += 1;
        }
        if let Some(max) = issuer.path_len()
            && cas_below > max as usize
        {
            return Err(PathError::PathLenExceeded {
                issuer: issuer.subject_rfc2253(),
                max,
                below: cas_below,
            });
        }
        if path.contains(&issuer) {
            return Err(PathError::PathTooLong(MAX_DEPTH));
        }
        path.push(issuer);
    }

    // Per certificate: validity, revocation.
    for cert in &path {
        if time_checks {
            if at < cert.not_before() {
                return Err(PathError::NotYetValid {
                    subject: cert.subject_rfc2253(),
                    serial: serial_hex(cert),
                    not_before: cert.not_before(),
                    at,
                });
            }
            if at > cert.not_after() {
                return Err(PathError::Expired {
                    subject: cert.subject_rfc2253(),
                    serial: serial_hex(cert),
                    not_after: cert.not_after(),
                    at,
                });
            }
        }
        if revocations.is_revoked(cert) {
            return Err(PathError::Revoked {
                subject: cert.subject_rfc2253(),
                issuer: cert.issuer_rfc2253(),
                serial: serial_hex(cert),
            });
        }
    }

    // Policy: every certificate below the anchor carries an allowed policy,
    // and at least one is common to all of them.
    let mut common: Vec<String> = policy.allowed_policies.clone();
    for cert in &path[..path.len() - 1] {
        if !cert
            .policies()
            .iter()
            .any(|p| policy.allowed_policies.contains(p))
        {
            return Err(PathError::PolicyNotAllowed {
                subject: cert.subject_rfc2253(),
                policies: cert.policies().to_vec(),
                allowed: policy.allowed_policies.clone(),
            });
        }
        common.retain(|p| cert.policies().contains(p));
    }
    if common.is_empty() {
        return Err(PathError::NoCommonPolicy {
            allowed: policy.allowed_policies.clone(),
        });
    }

    Ok(ValidatedPath {
        certs: path.into_iter().cloned().collect(),
        policies: common,
    })
}
