//! SMKI certificates: parsed, checked against the SMKI profile (`smki.md` §1
//! and §3), with their DER kept for signatures and digests.
//!
//! [`Certificate`] accepts three kinds of certificate:
//! - **organisation** certificates: subject `CN` (optional) · `OU` (role as
//!   two hex digits) · `x500UniqueIdentifier` (the EUI-64 as a BIT STRING),
//!   exactly one of digitalSignature / keyAgreement;
//! - **device** certificates: empty subject, the EUI-64 in the
//!   subjectAltName `hardwareModuleName`;
//! - **authority** certificates (root `OU=00`, issuing CA `OU=07`, or a device
//!   CA): basicConstraints CA and keyCertSign.
//!
//! Anything outside that profile is a [`CertError`] that names the field.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::name::{GeneralName, HardwareModuleName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies, KeyUsage as X509KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use crate::{Eui64, P256PublicKey, Role, RoleError};

/// Well-known object identifiers used by the SMKI profile.
pub mod oid {
    use der::asn1::ObjectIdentifier as Oid;

    /// ecdsa-with-SHA256.
    pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// id-ecPublicKey.
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// prime256v1 (P-256).
    pub const PRIME256V1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// commonName.
    pub const CN: Oid = Oid::new_unwrap("2.5.4.3");
    /// organizationalUnitName.
    pub const OU: Oid = Oid::new_unwrap("2.5.4.11");
    /// x500UniqueIdentifier.
    pub const UNIQUE_ID: Oid = Oid::new_unwrap("2.5.4.45");
    /// subjectKeyIdentifier.
    pub const SKI: Oid = Oid::new_unwrap("2.5.29.14");
    /// keyUsage.
    pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
    /// subjectAltName.
    pub const SAN: Oid = Oid::new_unwrap("2.5.29.17");
    /// basicConstraints.
    pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    /// certificatePolicies.
    pub const CERT_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
    /// authorityKeyIdentifier.
    pub const AKI: Oid = Oid::new_unwrap("2.5.29.35");
    /// id-on-hardwareModuleName (RFC 4108).
    pub const HARDWARE_MODULE_NAME: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.8.4");
    /// The ZAZ1 test-PKI organisation policy.
    pub const TEST_ORG_POLICY: Oid = Oid::new_unwrap("1.2.826.0.1.8641679.1.2.1.4");
    /// The test device policy.
    pub const TEST_DEVICE_POLICY: Oid = Oid::new_unwrap("1.2.826.0.1.1800000.1.2.1.4");
    /// The hwType of SMKI device certificates' hardwareModuleName.
    pub const DEVICE_HW_TYPE: Oid = Oid::new_unwrap("1.2.826.0.1.8641679.1.2.2.1");
}

/// Why bytes are not an SMKI certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The certificate file could not be read.
    #[error("reading certificate {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a PEM `CERTIFICATE` block.
    #[error("PEM: {0}")]
    Pem(String),
    /// Not a DER X.509 certificate.
    #[error("DER: {0}")]
    Der(String),
    /// Not an X.509 v3 certificate.
    #[error("version: expected v3, got v{0}")]
    Version(u8),
    /// A signature algorithm other than ecdsa-with-SHA256.
    #[error("{field}: expected ecdsa-with-SHA256 without parameters, got {oid}")]
    SignatureAlgorithm {
        /// `tbsCertificate.signature` or `signatureAlgorithm`.
        field: &'static str,
        /// The algorithm found.
        oid: String,
    },
    /// The signature value is not a DER ECDSA-Sig-Value of a P-256 signature.
    #[error("signatureValue: {0}")]
    SignatureValue(String),
    /// The public key is not an uncompressed P-256 point.
    #[error("subjectPublicKeyInfo: {0}")]
    PublicKey(String),
    /// The serial number is not a positive integer of at most 20 bytes.
    #[error("serialNumber: {0}")]
    Serial(String),
    /// notBefore after notAfter.
    #[error("validity: {0}")]
    Validity(String),
    /// issuerUniqueID or subjectUniqueID is present.
    #[error("{0}: not allowed in the SMKI profile")]
    UniqueIdField(&'static str),
    /// The issuer name is empty.
    #[error("issuer: empty name")]
    EmptyIssuer,
    /// A subject attribute outside the profile (only CN, OU, x500UniqueIdentifier).
    #[error("subject: attribute {oid} is not in the SMKI profile")]
    SubjectAttribute {
        /// The attribute type.
        oid: String,
    },
    /// A multi-valued RDN.
    #[error("subject: multi-valued RDN (only one attribute per RDN is allowed)")]
    MultiValuedRdn,
    /// An attribute appears more than once.
    #[error("subject: {0} appears more than once")]
    DuplicateAttribute(&'static str),
    /// An attribute with a string type that is not UTF8String or PrintableString, or bad text.
    #[error("subject {attr}: {detail}")]
    AttributeString {
        /// `CN` or `OU`.
        attr: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The OU is not a role code (for example the legacy decimal text `137`).
    #[error("subject OU {ou:?}: {reason}")]
    Ou {
        /// The OU text.
        ou: String,
        /// Why it is not a role code.
        reason: RoleError,
    },
    /// An organisation certificate without an OU.
    #[error("subject: OU (role code) is missing")]
    MissingOu,
    /// The x500UniqueIdentifier is not a BIT STRING of 8 bytes with 0 unused bits.
    #[error("subject x500UniqueIdentifier (2.5.4.45): {0}")]
    UniqueIdentifier(String),
    /// An organisation certificate without an x500UniqueIdentifier.
    #[error("subject: x500UniqueIdentifier (2.5.4.45, the organisation EUI-64) is missing")]
    MissingUniqueIdentifier,
    /// An extension appears twice.
    #[error("extension {oid}: appears more than once")]
    DuplicateExtension {
        /// The extension OID.
        oid: String,
    },
    /// An extension outside the profile.
    #[error("extension {oid} (critical: {critical}): not in the SMKI profile")]
    UnexpectedExtension {
        /// The extension OID.
        oid: String,
        /// Its critical flag.
        critical: bool,
    },
    /// A required extension is missing.
    #[error("extension {0}: missing")]
    MissingExtension(&'static str),
    /// An extension that must be critical is not.
    #[error("extension {0}: must be critical")]
    NotCritical(&'static str),
    /// An extension's value does not decode.
    #[error("extension {name}: {detail}")]
    Extension {
        /// The extension name.
        name: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The keyUsage bits are outside the profile.
    #[error("extension keyUsage: {0}")]
    KeyUsage(String),
    /// The role, basicConstraints and keyUsage disagree.
    #[error("certificate kind: {0}")]
    Kind(String),
}

impl CertError {
    fn der(context: &str, e: impl fmt::Display) -> Self {
        CertError::Der(format!("{context}: {e}"))
    }
    fn ext(name: &'static str, detail: impl fmt::Display) -> Self {
        CertError::Extension {
            name,
            detail: detail.to_string(),
        }
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertKind {
    /// An organisation (SMKI user) certificate: OU role and x500UniqueIdentifier EUI.
    Organisation,
    /// A device certificate: empty subject, EUI in the SAN hardwareModuleName.
    Device,
    /// A CA: root (OU 00), issuing CA (OU 07) or a device CA, with keyCertSign.
    Authority,
}

/// The key usage of a certificate (the SMKI profile allows exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyUsage {
    /// digitalSignature only.
    DigitalSignature,
    /// keyAgreement only.
    KeyAgreement,
    /// keyCertSign (with or without cRLSign): a CA.
    CertSign,
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyUsage::DigitalSignature => "digitalSignature",
            KeyUsage::KeyAgreement => "keyAgreement",
            KeyUsage::CertSign => "keyCertSign",
        })
    }
}

/// A parsed, profile-checked SMKI certificate that keeps its DER.
///
/// Immutable and shared: a clone is a reference-count increment, so a
/// certificate parsed once (see [`CertCache`](crate::CertCache)) can be
/// handed to every request that carries it.
#[derive(Clone)]
pub struct Certificate {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    der: Vec<u8>,
    sha256: [u8; 32],
    tbs: Range<usize>,
    issuer: Range<usize>,
    subject: Range<usize>,
    signature: [u8; 64],
    serial: Vec<u8>,
    kind: CertKind,
    eui: Option<Eui64>,
    role: Option<Role>,
    common_name: Option<String>,
    key_usage: KeyUsage,
    public_key: P256PublicKey,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    not_before: jiff::Timestamp,
    not_after: jiff::Timestamp,
    policies: Vec<String>,
    ca: Option<Option<u8>>,
    issuer_rfc2253: String,
    subject_rfc2253: String,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.inner, &other.inner) || self.inner.der == other.inner.der
    }
}
impl Eq for Certificate {}

impl std::hash::Hash for Certificate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.der.hash(state);
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("kind", &self.inner.kind)
            .field("subject", &self.inner.subject_rfc2253)
            .field("eui", &self.inner.eui)
            .field("role", &self.inner.role)
            .field("key_usage", &self.inner.key_usage)
            .field("issuer", &self.inner.issuer_rfc2253)
            .field("serial", &hex::encode_upper(&self.inner.serial))
            .finish_non_exhaustive()
    }
}

/// Decode a PEM `CERTIFICATE` block (the first one) to DER. Tolerates CRLF
/// line ends, long lines and text around the block.
pub(crate) fn pem_block(bytes: &[u8], label: &str) -> Result<Vec<u8>, CertError> {
    let text = std::str::from_utf8(bytes).map_err(|_| CertError::Pem("not UTF-8".into()))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = text.find(&begin) else {
        let found = text
            .find("-----BEGIN ")
            .and_then(|i| text[i + 11..].split("-----").next())
            .unwrap_or("none");
        return Err(CertError::Pem(format!(
            "no {begin} block (found label {found:?})"
        )));
    };
    let body = &text[start + begin.len()..];
    let stop = body
        .find(&end)
        .ok_or_else(|| CertError::Pem(format!("{end} missing")))?;
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64_decode(b64.as_bytes()).map_err(|e| CertError::Pem(format!("base64: {e}")))
}

/// Standard base64 with optional `=` padding (whitespace already removed).
pub(crate) fn base64_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let body = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="))
        .unwrap_or(input);
    if input.len() % 4 != 0 && body.len() == input.len() && input.len() % 4 == 1 {
        return Err(format!("length {} is not a base64 length", input.len()));
    }
    if body.len() != input.len() && input.len() % 4 != 0 {
        return Err("padding in a length that is not a multiple of 4".into());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, &c) in body.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid character {:?} at {i}", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 || acc != 0 {
        return Err("truncated or non-canonical final group".into());
    }
    Ok(out)
}

/// One DER TLV: its start, content range and end, in the enclosing buffer.
#[derive(Debug, Clone, Copy)]
struct Tlv {
    tag: u8,
    start: usize,
    content_start: usize,
    end: usize,
}

/// Read the TLV at `pos`; single-byte tags and definite lengths only (DER).
fn read_tlv(buf: &[u8], pos: usize) -> Option<Tlv> {
    let tag = *buf.get(pos)?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let first = *buf.get(pos + 1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *buf.get(pos + 2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let content_start = pos.checked_add(hdr)?;
    let end = content_start.checked_add(len)?;
    if end > buf.len() {
        return None;
    }
    Some(Tlv {
        tag,
        start: pos,
        content_start,
        end,
    })
}

/// Byte ranges of the TBS, issuer, subject and subjectPublicKeyInfo.
struct Layout {
    tbs: Range<usize>,
    issuer: Range<usize>,
    subject: Range<usize>,
    spki: Range<usize>,
}

fn layout(der: &[u8]) -> Option<Layout> {
    let outer = read_tlv(der, 0)?;
    if outer.tag != 0x30 || outer.end != der.len() {
        return None;
    }
    let tbs = read_tlv(der, outer.content_start)?;
    if tbs.tag != 0x30 {
        return None;
    }
    let mut p = tbs.content_start;
    let mut t = read_tlv(der, p)?;
    if t.tag == 0xA0 {
        p = t.end;
        t = read_tlv(der, p)?;
    }
    // serial
    p = t.end;
    let sigalg = read_tlv(der, p)?;
    let issuer = read_tlv(der, sigalg.end)?;
    let validity = read_tlv(der, issuer.end)?;
    let subject = read_tlv(der, validity.end)?;
    let spki = read_tlv(der, subject.end)?;
    if issuer.tag != 0x30 || subject.tag != 0x30 || spki.tag != 0x30 || spki.end > tbs.end {
        return None;
    }
    Some(Layout {
        tbs: tbs.start..tbs.end,
        issuer: issuer.start..issuer.end,
        subject: subject.start..subject.end,
        spki: spki.start..spki.end,
    })
}

/// The P-256 key of a subjectPublicKeyInfo: id-ecPublicKey on prime256v1,
/// an uncompressed point on the curve.
fn p256_key(spki: &spki::SubjectPublicKeyInfoRef<'_>) -> Result<P256PublicKey, CertError> {
    let algorithm = spki.algorithm.oid;
    if algorithm != oid::EC_PUBLIC_KEY {
        return Err(CertError::PublicKey(format!(
            "algorithm {algorithm} is not id-ecPublicKey"
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(oid::PRIME256V1) {
        return Err(CertError::PublicKey(
            "curve parameter is not prime256v1".into(),
        ));
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CertError::PublicKey("BIT STRING has unused bits".into()))?;
    P256PublicKey::from_sec1(key).map_err(|e| CertError::PublicKey(e.to_string()))
}

/// A DER ECDSA-Sig-Value `SEQUENCE { r INTEGER, s INTEGER }` to raw r‖s.
pub(crate) fn ecdsa_der_to_raw(sig: &[u8]) -> Result<[u8; 64], String> {
    let seq = read_tlv(sig, 0).ok_or("not a DER SEQUENCE")?;
    if seq.tag != 0x30 || seq.end != sig.len() {
        return Err("not a single DER SEQUENCE".into());
    }
    let mut out = [0u8; 64];
    let mut p = seq.content_start;
    for (i, name) in ["r", "s"].into_iter().enumerate() {
        let int = read_tlv(sig, p).ok_or_else(|| format!("{name}: truncated"))?;
        if int.tag != 0x02 {
            return Err(format!("{name}: not an INTEGER"));
        }
        let v = &sig[int.content_start..int.end];
        match v {
            [] => return Err(format!("{name}: empty INTEGER")),
            [first, ..] if *first >= 0x80 => return Err(format!("{name}: negative")),
            _ => {}
        }
        // Leading zero bytes beyond the DER minimum are tolerated: real
        // device certificates in the RTDS keystore carry them (BER).
        let v = &v[v.iter().take_while(|&&b| b == 0).count()..];
        if v.len() > 32 {
            return Err(format!("{name}: {} bytes, more than 32", v.len()));
        }
        out[i * 32 + 32 - v.len()..(i + 1) * 32].copy_from_slice(v);
        p = int.end;
    }
    if p != seq.end {
        return Err("trailing data after s".into());
    }
    Ok(out)
}

/// RFC 4514/2253 string of a DER Name: RDNs in reverse order.
fn name_rfc2253(name: &Name) -> String {
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter_rdn() {
        let parts: Vec<String> = rdn.iter().map(atv_rfc2253).collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn atv_rfc2253(atv: &x509_cert::attr::AttributeTypeAndValue) -> String {
    let key = match atv.oid.to_string().as_str() {
        "2.5.4.3" => "CN".to_string(),
        "2.5.4.11" => "OU".to_string(),
        "2.5.4.10" => "O".to_string(),
        "2.5.4.6" => "C".to_string(),
        "2.5.4.7" => "L".to_string(),
        "2.5.4.8" => "ST".to_string(),
        "2.5.4.9" => "STREET".to_string(),
        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
        other => other.to_string(),
    };
    let tag = atv.value.tag();
    let text = match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(atv.value.value()).ok()
        }
        _ => None,
    };
    match text {
        Some(t) if !key.contains('.') => format!("{key}={}", escape_rfc2253(t)),
        _ => {
            let tlv = der::Encode::to_der(&atv.value).unwrap_or_default();
            format!("{key}=#{}", hex::encode(tlv))
        }
    }
}

fn escape_rfc2253(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let n = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

fn attr_text(attr: &'static str, value: &der::asn1::Any) -> Result<String, CertError> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String => {
            std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|_| CertError::AttributeString {
                    attr,
                    detail: "UTF8String is not valid UTF-8".into(),
                })
        }
        Tag::PrintableString => {
            let ok = bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
            if ok {
                // Checked ASCII above.
                Ok(String::from_utf8_lossy(bytes).into_owned())
            } else {
                Err(CertError::AttributeString {
                    attr,
                    detail: "PrintableString holds characters outside its alphabet".into(),
                })
            }
        }
        other => Err(CertError::AttributeString {
            attr,
            detail: format!("{other} is neither UTF8String nor PrintableString"),
        }),
    }
}

struct Subject {
    cn: Option<String>,
    ou: Option<String>,
    eui: Option<Eui64>,
}

fn parse_subject(name: &Name) -> Result<Subject, CertError> {
    let mut s = Subject {
        cn: None,
        ou: None,
        eui: None,
    };
    for rdn in name.iter_rdn() {
        if rdn.len() != 1 {
            return Err(CertError::MultiValuedRdn);
        }
        for atv in rdn.iter() {
            if atv.oid == oid::CN {
                if s.cn.is_some() {
                    return Err(CertError::DuplicateAttribute("CN"));
                }
                s.cn = Some(attr_text("CN", &atv.value)?);
            } else if atv.oid == oid::OU {
                if s.ou.is_some() {
                    return Err(CertError::DuplicateAttribute("OU"));
                }
                s.ou = Some(attr_text("OU", &atv.value)?);
            } else if atv.oid == oid::UNIQUE_ID {
                if s.eui.is_some() {
                    return Err(CertError::DuplicateAttribute("x500UniqueIdentifier"));
                }
                if atv.value.tag() != Tag::BitString {
                    return Err(CertError::UniqueIdentifier(format!(
                        "{} instead of BIT STRING",
                        atv.value.tag()
                    )));
                }
                let v = atv.value.value();
                match v {
                    [0, rest @ ..] if rest.len() == 8 => s.eui = Eui64::from_slice(rest),
                    [0, rest @ ..] => {
                        return Err(CertError::UniqueIdentifier(format!(
                            "{} bytes, expected 8 (an EUI-64)",
                            rest.len()
                        )));
                    }
                    [] => return Err(CertError::UniqueIdentifier("empty BIT STRING".into())),
                    [u, ..] => {
                        return Err(CertError::UniqueIdentifier(format!(
                            "{u} unused bits, expected 0"
                        )));
                    }
                }
            } else {
                return Err(CertError::SubjectAttribute {
                    oid: atv.oid.to_string(),
                });
            }
        }
    }
    Ok(s)
}

fn octets_8(name: &'static str, v: &OctetString) -> Result<Vec<u8>, CertError> {
    let b = v.as_bytes();
    if b.len() != 8 {
        return Err(CertError::ext(
            name,
            format!("key identifier is {} bytes, expected 8", b.len()),
        ));
    }
    Ok(b.to_vec())
}

fn to_timestamp(t: x509_cert::time::Time, field: &str) -> Result<jiff::Timestamp, CertError> {
    let d = t.to_unix_duration();
    let secs = i64::try_from(d.as_secs())
        .map_err(|_| CertError::Validity(format!("{field} out of range")))?;
    // `99991231235959Z` ("no expiry", device certificates) lies past
    // jiff's maximum by a few hours: clamp it to `Timestamp::MAX`.
    if secs > jiff::Timestamp::MAX.as_second() {
        return Ok(jiff::Timestamp::MAX);
    }
    jiff::Timestamp::from_second(secs)
        .map_err(|e| CertError::Validity(format!("{field} out of range: {e}")))
}

impl Certificate {
    /// Parse and profile-check a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let cert =
            x509_cert::Certificate::from_der(der).map_err(|e| CertError::der("certificate", e))?;
        let lay = layout(der).ok_or_else(|| CertError::Der("malformed TLV layout".into()))?;
        let tbs = cert.tbs_certificate();

        if tbs.version() != x509_cert::certificate::Version::V3 {
            return Err(CertError::Version(tbs.version() as u8 + 1));
        }
        for (field, alg) in [
            ("tbsCertificate.signature", tbs.signature()),
            ("signatureAlgorithm", cert.signature_algorithm()),
        ] {
            if alg.oid != oid::ECDSA_WITH_SHA256 || alg.parameters.is_some() {
                return Err(CertError::SignatureAlgorithm {
                    field,
                    oid: alg.oid.to_string(),
                });
            }
        }
        let sig_bits = cert.signature();
        let sig_bytes = sig_bits
            .as_bytes()
            .ok_or_else(|| CertError::SignatureValue("BIT STRING has unused bits".into()))?;
        let signature = ecdsa_der_to_raw(sig_bytes).map_err(CertError::SignatureValue)?;

        // Public key.
        let public_key = p256_key(&der::referenced::OwnedToRef::owned_to_ref(
            tbs.subject_public_key_info(),
        ))?;

        // Serial.
        let raw_serial = tbs.serial_number().as_bytes();
        let serial = match raw_serial {
            [] => return Err(CertError::Serial("empty".into())),
            [b, ..] if *b >= 0x80 => return Err(CertError::Serial("negative".into())),
            [0, rest @ ..] => rest.to_vec(),
            all => all.to_vec(),
        };
        if serial.is_empty() {
            return Err(CertError::Serial("zero".into()));
        }
        if serial.len() > 20 {
            return Err(CertError::Serial(format!(
                "{} bytes, more than 20",
                serial.len()
            )));
        }

        // Validity.
        let not_before = to_timestamp(tbs.validity().not_before, "notBefore")?;
        let not_after = to_timestamp(tbs.validity().not_after, "notAfter")?;
        if not_before > not_after {
            return Err(CertError::Validity(format!(
                "notBefore {not_before} is after notAfter {not_after}"
            )));
        }

        if tbs.issuer_unique_id().is_some() {
            return Err(CertError::UniqueIdField("issuerUniqueID"));
        }
        if tbs.subject_unique_id().is_some() {
            return Err(CertError::UniqueIdField("subjectUniqueID"));
        }
        if tbs.issuer().is_empty() {
            return Err(CertError::EmptyIssuer);
        }
        let subject = parse_subject(tbs.subject())?;

        // Extensions.
        let mut ku: Option<(bool, X509KeyUsage)> = None;
        let mut bc: Option<(bool, BasicConstraints)> = None;
        let mut pol: Option<(bool, CertificatePolicies)> = None;
        let mut ski: Option<Vec<u8>> = None;
        let mut aki: Option<Vec<u8>> = None;
        let mut san: Option<(bool, SubjectAltName)> = None;
        let mut seen: Vec<ObjectIdentifier> = Vec::new();
        for ext in tbs.extensions().map(|e| e.as_slice()).unwrap_or(&[]) {
            if seen.contains(&ext.extn_id) {
                return Err(CertError::DuplicateExtension {
                    oid: ext.extn_id.to_string(),
                });
            }
            seen.push(ext.extn_id);
            let v = ext.extn_value.as_bytes();
            let c = ext.critical;
            match ext.extn_id {
                o if o == oid::KEY_USAGE => {
                    ku = Some((
                        c,
                        X509KeyUsage::from_der(v).map_err(|e| CertError::ext("keyUsage", e))?,
                    ));
                }
                o if o == oid::BASIC_CONSTRAINTS => {
                    bc = Some((
                        c,
                        BasicConstraints::from_der(v)
                            .map_err(|e| CertError::ext("basicConstraints", e))?,
                    ));
                }
                o if o == oid::CERT_POLICIES => {
                    pol = Some((
                        c,
                        CertificatePolicies::from_der(v)
                            .map_err(|e| CertError::ext("certificatePolicies", e))?,
                    ));
                }
                o if o == oid::SKI => {
                    let k = SubjectKeyIdentifier::from_der(v)
                        .map_err(|e| CertError::ext("subjectKeyIdentifier", e))?;
                    ski = Some(octets_8("subjectKeyIdentifier", &k.0)?);
                }
                o if o == oid::AKI => {
                    let k = AuthorityKeyIdentifier::from_der(v)
                        .map_err(|e| CertError::ext("authorityKeyIdentifier", e))?;
                    if k.authority_cert_issuer.is_some() || k.authority_cert_serial_number.is_some()
                    {
                        return Err(CertError::ext(
                            "authorityKeyIdentifier",
                            "only keyIdentifier is allowed",
                        ));
                    }
                    let id = k.key_identifier.as_ref().ok_or_else(|| {
                        CertError::ext("authorityKeyIdentifier", "keyIdentifier missing")
                    })?;
                    aki = Some(octets_8("authorityKeyIdentifier", id)?);
                }
                o if o == oid::SAN => {
                    san = Some((
                        c,
                        SubjectAltName::from_der(v)
                            .map_err(|e| CertError::ext("subjectAltName", e))?,
                    ));
                }
                o => {
                    return Err(CertError::UnexpectedExtension {
                        oid: o.to_string(),
                        critical: c,
                    });
                }
            }
        }

        let (ku_critical, ku) = ku.ok_or(CertError::MissingExtension("keyUsage"))?;
        if !ku_critical {
            return Err(CertError::NotCritical("keyUsage"));
        }
        let (pol_critical, pol) = pol.ok_or(CertError::MissingExtension("certificatePolicies"))?;
        if !pol_critical {
            return Err(CertError::NotCritical("certificatePolicies"));
        }
        if pol.0.is_empty() {
            return Err(CertError::ext("certificatePolicies", "no policy"));
        }
        let policies: Vec<String> = pol
            .0
            .iter()
            .map(|p| p.policy_identifier.to_string())
            .collect();
        if ski.is_none() {
            return Err(CertError::MissingExtension("subjectKeyIdentifier"));
        }

        let flags = ku.0;
        let only = |u: KeyUsages| flags == der::flagset::FlagSet::from(u);
        let key_usage = if only(KeyUsages::DigitalSignature) {
            KeyUsage::DigitalSignature
        } else if only(KeyUsages::KeyAgreement) {
            KeyUsage::KeyAgreement
        } else if only(KeyUsages::KeyCertSign)
            || flags == (KeyUsages::KeyCertSign | KeyUsages::CRLSign)
        {
            KeyUsage::CertSign
        } else {
            return Err(CertError::KeyUsage(format!(
                "{:?}: expected exactly digitalSignature, exactly keyAgreement, or keyCertSign[+cRLSign]",
                flags
            )));
        };

        let is_ca = match &bc {
            None => false,
            Some((critical, b)) => {
                if !critical {
                    return Err(CertError::NotCritical("basicConstraints"));
                }
                if !b.ca {
                    return Err(CertError::ext(
                        "basicConstraints",
                        "present with cA FALSE (the profile omits it on end-entity certificates)",
                    ));
                }
                true
            }
        };
        let role = match &subject.ou {
            Some(ou) => Some(Role::from_ou(ou).map_err(|reason| CertError::Ou {
                ou: ou.clone(),
                reason,
            })?),
            None => None,
        };

        let mut eui = subject.eui;
        let kind = if is_ca {
            if key_usage != KeyUsage::CertSign {
                return Err(CertError::Kind(format!(
                    "basicConstraints cA but keyUsage {key_usage}, not keyCertSign"
                )));
            }
            match role {
                None | Some(Role::Root) | Some(Role::IssuingAuthority) => {}
                Some(r) => {
                    return Err(CertError::Kind(format!(
                        "a CA certificate with role {r}; only OU 00 or 07"
                    )));
                }
            }
            if tbs.subject().is_empty() {
                return Err(CertError::Kind(
                    "a CA certificate with an empty subject".into(),
                ));
            }
            if san.is_some() {
                return Err(CertError::UnexpectedExtension {
                    oid: oid::SAN.to_string(),
                    critical: san.as_ref().is_some_and(|s| s.0),
                });
            }
            CertKind::Authority
        } else if key_usage == KeyUsage::CertSign {
            return Err(CertError::Kind(
                "keyCertSign without basicConstraints cA".into(),
            ));
        } else if tbs.subject().is_empty() {
            let (san_critical, san) = san.ok_or(CertError::MissingExtension(
                "subjectAltName (device hardwareModuleName)",
            ))?;
            if !san_critical {
                return Err(CertError::NotCritical("subjectAltName"));
            }
            let [GeneralName::OtherName(other)] = san.0.as_slice() else {
                return Err(CertError::ext(
                    "subjectAltName",
                    format!(
                        "expected exactly one otherName hardwareModuleName, got {} names",
                        san.0.len()
                    ),
                ));
            };
            let hw = HardwareModuleName::from_other_name(other)
                .map_err(|e| CertError::ext("subjectAltName", format!("hardwareModuleName: {e}")))?
                .ok_or_else(|| {
                    CertError::ext(
                        "subjectAltName",
                        format!("otherName {} is not hardwareModuleName", other.type_id),
                    )
                })?;
            let serial = hw.hw_serial_num.as_bytes();
            eui = Some(Eui64::from_slice(serial).ok_or_else(|| {
                CertError::ext(
                    "subjectAltName",
                    format!(
                        "hardwareModuleName hwSerialNum is {} bytes, expected 8 (an EUI-64)",
                        serial.len()
                    ),
                )
            })?);
            CertKind::Device
        } else {
            match role {
                None => return Err(CertError::MissingOu),
                Some(r @ (Role::Root | Role::IssuingAuthority)) => {
                    return Err(CertError::Kind(format!(
                        "role {r} without basicConstraints cA and keyCertSign"
                    )));
                }
                Some(_) => {}
            }
            if eui.is_none() {
                return Err(CertError::MissingUniqueIdentifier);
            }
            if let Some((critical, _)) = san {
                return Err(CertError::UnexpectedExtension {
                    oid: oid::SAN.to_string(),
                    critical,
                });
            }
            CertKind::Organisation
        };

        let sha256 = digest_of(der);
        Ok(Certificate {
            inner: std::sync::Arc::new(Inner {
                sha256,
                tbs: lay.tbs,
                issuer: lay.issuer,
                subject: lay.subject,
                signature,
                serial,
                kind,
                eui,
                role,
                common_name: subject.cn,
                key_usage,
                public_key,
                ski,
                aki,
                not_before,
                not_after,
                policies,
                ca: bc.map(|(_, b)| b.path_len_constraint),
                issuer_rfc2253: name_rfc2253(tbs.issuer()),
                subject_rfc2253: name_rfc2253(tbs.subject()),
                der: der.to_vec(),
            }),
        })
    }

    /// Parse a PEM `CERTIFICATE` (the first block).
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, CertError> {
        Self::from_der(&pem_block(pem, "CERTIFICATE")?)
    }

    /// Parse PEM if the bytes look like PEM, else DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Certificate, CertError> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            Self::from_pem(bytes)
        } else {
            Self::from_der(bytes)
        }
    }

    /// The P-256 public key of a certificate (PEM or DER), without decoding
    /// the rest of it: for a use that needs only the key (the ECDH with a
    /// device's key-agreement certificate from the inventory, on every
    /// command MACed for a device not seen before). The DER's outer layout is
    /// walked to the subjectPublicKeyInfo, which is checked as
    /// [`Certificate::from_der`] checks it (id-ecPublicKey on prime256v1, an
    /// uncompressed point on the curve); nothing else is.
    pub fn public_key_of(bytes: &[u8]) -> Result<P256PublicKey, CertError> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Self::from_pem(bytes).map(|c| c.public_key().clone());
        }
        let lay = layout(bytes).ok_or_else(|| CertError::Der("malformed TLV layout".into()))?;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&bytes[lay.spki])
            .map_err(|e| CertError::der("subjectPublicKeyInfo", e))?;
        p256_key(&spki)
    }

    /// Read a certificate file (PEM or DER).
    pub fn load(path: impl AsRef<Path>) -> Result<Certificate, CertError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CertError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem_or_der(&bytes)
    }

    /// The whole certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// PEM text of the certificate.
    pub fn to_pem(&self) -> String {
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &self.inner.der)
            .unwrap_or_default()
    }

    /// SHA-256 of the DER (computed once, when the certificate was parsed).
    pub fn sha256(&self) -> [u8; 32] {
        self.inner.sha256
    }

    /// Organisation, device or authority.
    pub fn kind(&self) -> CertKind {
        self.inner.kind
    }

    /// The EUI-64: x500UniqueIdentifier for organisations, SAN hwSerialNum for devices.
    pub fn eui(&self) -> Option<Eui64> {
        self.inner.eui
    }

    /// The role from the subject OU (none for devices and a device CA without OU).
    pub fn role(&self) -> Option<Role> {
        self.inner.role
    }

    /// The subject CN, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.inner.common_name.as_deref()
    }

    /// The single key usage.
    pub fn key_usage(&self) -> KeyUsage {
        self.inner.key_usage
    }

    /// The P-256 public key.
    pub fn public_key(&self) -> &P256PublicKey {
        &self.inner.public_key
    }

    /// The serial number: big-endian magnitude without a leading zero.
    pub fn serial(&self) -> &[u8] {
        &self.inner.serial
    }

    /// The serial number in decimal (as XML `X509SerialNumber` writes it).
    pub fn serial_decimal(&self) -> String {
        bytes_to_decimal(&self.inner.serial)
    }

    /// The issuer in RFC 2253 form, e.g. `CN=Z1,OU=07`.
    pub fn issuer_rfc2253(&self) -> String {
        self.inner.issuer_rfc2253.clone()
    }

    /// The subject in RFC 2253 form (empty for devices).
    pub fn subject_rfc2253(&self) -> String {
        self.inner.subject_rfc2253.clone()
    }

    /// The issuer Name TLV.
    pub fn issuer_der(&self) -> &[u8] {
        &self.inner.der[self.inner.issuer.clone()]
    }

    /// The subject Name TLV.
    pub fn subject_der(&self) -> &[u8] {
        &self.inner.der[self.inner.subject.clone()]
    }

    /// The TBSCertificate TLV (what the issuer signed).
    pub fn tbs_der(&self) -> &[u8] {
        &self.inner.der[self.inner.tbs.clone()]
    }

    /// The issuer's signature as raw r‖s.
    pub fn signature_raw(&self) -> &[u8; 64] {
        &self.inner.signature
    }

    /// The subjectKeyIdentifier (8 bytes).
    pub fn ski(&self) -> Option<&[u8]> {
        self.inner.ski.as_deref()
    }

    /// The authorityKeyIdentifier keyIdentifier (8 bytes), if present.
    pub fn aki(&self) -> Option<&[u8]> {
        self.inner.aki.as_deref()
    }

    /// Start of validity.
    pub fn not_before(&self) -> jiff::Timestamp {
        self.inner.not_before
    }

    /// End of validity (inclusive). `99991231235959Z` (no expiry) reads as
    /// `jiff::Timestamp::MAX`, a few hours earlier.
    pub fn not_after(&self) -> jiff::Timestamp {
        self.inner.not_after
    }

    /// Whether `at` lies within notBefore..=notAfter.
    pub fn is_valid_at(&self, at: jiff::Timestamp) -> bool {
        self.inner.not_before <= at && at <= self.inner.not_after
    }

    /// The certificate policy OIDs, dotted.
    pub fn policies(&self) -> &[String] {
        &self.inner.policies
    }

    /// Whether basicConstraints says cA.
    pub fn is_ca(&self) -> bool {
        self.inner.ca.is_some()
    }

    /// The basicConstraints pathLenConstraint of a CA.
    pub fn path_len(&self) -> Option<u8> {
        self.inner.ca.flatten()
    }

    /// Whether issuer and subject names are byte-identical.
    pub fn is_self_issued(&self) -> bool {
        self.issuer_der() == self.subject_der()
    }

    /// Verify this certificate's signature with `issuer_key`.
    pub fn verify_signature(&self, issuer_key: &P256PublicKey) -> Result<(), crate::KeyError> {
        issuer_key.verify(self.tbs_der(), &self.inner.signature)
    }
}

fn digest_of(der: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Big-endian unsigned bytes to decimal.
pub(crate) fn bytes_to_decimal(bytes: &[u8]) -> String {
    let mut n: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    if n.is_empty() {
        return "0".into();
    }
    let mut digits = Vec::new();
    while !n.is_empty() {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | *b as u32;
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
        let z = n.iter().take_while(|&&b| b == 0).count();
        n.drain(..z);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_conversion() {
        assert_eq!(bytes_to_decimal(&[]), "0");
        assert_eq!(bytes_to_decimal(&[0]), "0");
        assert_eq!(bytes_to_decimal(&[1, 0]), "256");
        assert_eq!(bytes_to_decimal(&[0xFF; 8]), u64::MAX.to_string());
        assert_eq!(
            bytes_to_decimal(&hex::decode("3CE369AB08F102975C5490D6B88FC066").unwrap()),
            u128::from_str_radix("3CE369AB08F102975C5490D6B88FC066", 16)
                .unwrap()
                .to_string()
        );
    }

    #[test]
    fn ecdsa_der_conversion() {
        let mut der = vec![0x30, 0x45, 0x02, 0x21, 0x00];
        der.extend([0x80; 32]);
        der.extend([0x02, 0x20]);
        der.extend([0x11; 32]);
        let raw = ecdsa_der_to_raw(&der).unwrap();
        assert_eq!(&raw[..32], &[0x80; 32]);
        assert_eq!(&raw[32..], &[0x11; 32]);
        assert!(ecdsa_der_to_raw(&[0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01]).is_err());
        // Non-minimal (BER) leading zeros are tolerated.
        assert_eq!(
            ecdsa_der_to_raw(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]).unwrap()[31],
            1
        );
        let mut long = vec![0x30, 0x26, 0x02, 0x21, 0x01];
        long.extend([0; 32]);
        long.extend([0x02, 0x01, 0x01]);
        assert!(ecdsa_der_to_raw(&long).is_err());
        assert!(ecdsa_der_to_raw(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert_eq!(
            ecdsa_der_to_raw(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07]).unwrap()[31],
            5
        );
    }

    #[test]
    fn base64_round_trip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let pem = der::pem::encode_string("X", der::pem::LineEnding::LF, data).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            assert_eq!(base64_decode(b64.as_bytes()).unwrap(), data);
        }
        assert!(base64_decode(b"Zm9v!").is_err());
        assert!(base64_decode(b"Z").is_err());
        assert!(base64_decode(b"Zm9=").is_err());
        assert!(base64_decode(b"Zg=").is_err());
    }

    #[test]
    fn rfc2253_escaping() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1"), "\\#1");
        assert_eq!(escape_rfc2253("ACEE ACG"), "ACEE ACG");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(Certificate::from_der(b""), Err(CertError::Der(_))));
        assert!(matches!(
            Certificate::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            Err(CertError::Der(_))
        ));
        assert!(matches!(
            Certificate::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err(CertError::Pem(_))
        ));
        assert!(matches!(
            Certificate::from_pem(
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
            ),
            Err(CertError::Pem(_))
        ));
    }
}
