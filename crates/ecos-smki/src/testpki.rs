//! A complete, deterministic test SMKI, with the profile of the ZAZ1 test
//! PKI (`smki.md` §1, §3, §4.2).
//!
//! - a root (`OU=00`), an issuing CA (`OU=07`, pathlen 0) and a device CA
//!   (pathlen 0), all under the root;
//! - per supplier organisation: the XML Sign certificate (`OU=87`, CN = the
//!   MPIDs, e.g. `ACEE ACG`), supplier DS (CN = organisation name), KA and
//!   prepayment top-up KA (`OU=02`);
//! - the DCC parties: transitional CoS and enduring CoS (both `OU=05` DS,
//!   different keys), ACB KA (`OU=04`) and DSP XML sign (`OU=89`);
//! - device DS and KA certificates (empty subject, EUI in the SAN
//!   hardwareModuleName, device policy, notAfter `99991231235959Z`).
//!
//! Every key, serial and signature derives from the seed and the
//! credential's label (for devices: the EUI), so the output is reproducible
//! byte for byte, and any one device's credentials can be minted on their
//! own with [`TestPki::mint_device`], independent of the others.
//!
//! Keys are generated and certificates signed with the pure-Rust `p256`
//! crate (RFC 6979 deterministic ECDSA); they are verified with aws-lc-rs.

use std::path::Path;

use der::asn1::ObjectIdentifier;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};

use crate::cert::oid;
use crate::{CertError, Certificate, Eui64, KeyError, Role};

/// Why a test PKI could not be generated or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestPkiError {
    /// The spec is inconsistent.
    #[error("test PKI spec: {0}")]
    Spec(String),
    /// A generated certificate did not parse (a builder defect).
    #[error("generated certificate {label}: {source}")]
    Cert {
        /// The credential.
        label: String,
        /// The parse error.
        source: CertError,
    },
    /// Key encoding failed.
    #[error("key {label}: {detail}")]
    Key {
        /// The credential.
        label: String,
        /// What failed.
        detail: String,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A supplier organisation of the test PKI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// A display name; also the CN of the supplier DS certificate.
    pub name: String,
    /// The organisation EUI-64.
    pub eui: Eui64,
    /// The CN of the XML Sign certificate: its MPIDs, e.g. `ACEE ACG`
    /// (absent or empty: no CN).
    #[serde(default)]
    pub mpids_cn: Option<String>,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestPkiSpec {
    /// The seed every key, serial and signature derives from.
    pub seed: u64,
    /// notBefore of every certificate.
    pub not_before: jiff::Timestamp,
    /// Lifetime of organisation certificates, in years.
    pub org_years: i16,
    /// Lifetime of the CA certificates, in years.
    pub ca_years: i16,
    /// CN of the root (`OU=00`).
    pub root_cn: String,
    /// CN of the issuing CA (`OU=07`).
    pub issuing_ca_cn: String,
    /// CN of the device CA.
    pub device_ca_cn: String,
    /// The supplier organisations.
    pub suppliers: Vec<OrgSpec>,
    /// EUI of the transitional CoS party.
    pub tcos_eui: Eui64,
    /// EUI of the enduring CoS party (the RTDS migration keeps the TCoS EUI).
    pub ecos_eui: Eui64,
    /// EUI of the access control broker.
    pub acb_eui: Eui64,
    /// EUI of the DSP (XML signer of responses).
    pub dsp_eui: Eui64,
    /// Device EUIs to issue DS and KA certificates for.
    pub devices: Vec<Eui64>,
}

impl Default for TestPkiSpec {
    fn default() -> Self {
        Self::demo()
    }
}

fn eui(v: u64) -> Eui64 {
    Eui64::from_u64(v)
}

impl TestPkiSpec {
    /// Three suppliers (`ACEE ACG`, `BDEE BDG`, electricity-only `CFEE`),
    /// the DCC parties at their RTDS EUIs and four devices.
    pub fn demo() -> Self {
        TestPkiSpec {
            seed: 1,
            not_before: jiff::Timestamp::from_second(1_735_689_600).unwrap_or_default(), // 2025-01-01
            org_years: 10,
            ca_years: 30,
            root_cn: "ZT".into(),
            issuing_ca_cn: "Z1T".into(),
            device_ca_cn: "DT".into(),
            suppliers: vec![
                OrgSpec {
                    name: "Supplier A".into(),
                    eui: eui(0x90B3_D51F_3001_0000),
                    mpids_cn: Some("ACEE ACG".into()),
                },
                OrgSpec {
                    name: "Supplier B".into(),
                    eui: eui(0x90B3_D51F_3003_0000),
                    mpids_cn: Some("BDEE BDG".into()),
                },
                OrgSpec {
                    name: "Supplier C".into(),
                    eui: eui(0x90B3_D51F_3004_0000),
                    mpids_cn: Some("CFEE".into()),
                },
            ],
            tcos_eui: eui(0x90B3_D51F_3000_0004),
            ecos_eui: eui(0x90B3_D51F_3000_0004),
            acb_eui: eui(0x90B3_D51F_3000_0002),
            dsp_eui: eui(0x90B3_D51F_3000_0002),
            devices: (0xA0..=0xA3)
                .map(|i| eui(0x00DB_1234_5678_9000 | i))
                .collect(),
        }
    }
}

/// A certificate with its private key (PKCS#8 DER).
#[derive(Clone)]
pub struct Credential {
    /// The certificate.
    pub cert: Certificate,
    /// The private key, PKCS#8 DER.
    pub key: Vec<u8>,
    label: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("label", &self.label)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// `(certificate, PKCS#8 DER key)`.
    pub fn pair(&self) -> (Certificate, Vec<u8>) {
        (self.cert.clone(), self.key.clone())
    }

    /// The label, e.g. `org/90B3D51F30010000/xml-sign`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &self.key)
            .unwrap_or_default()
    }

    /// A software signer over the key.
    pub fn signer(&self) -> Result<crate::SoftwareSigner, KeyError> {
        crate::SoftwareSigner::from_bytes(&self.key)
    }

    /// A software key-agreement key over the key.
    pub fn key_agreement(&self) -> Result<crate::SoftwareKeyAgreement, KeyError> {
        crate::SoftwareKeyAgreement::from_bytes(&self.key)
    }
}

/// The four credentials of a supplier organisation.
#[derive(Debug, Clone)]
pub struct OrgCredentials {
    /// What was asked for.
    pub spec: OrgSpec,
    /// XML Sign (`OU=87`, CN = MPIDs).
    pub xml_sign: Credential,
    /// Supplier digital signing (`OU=02`, DS).
    pub ds: Credential,
    /// Supplier key agreement (`OU=02`, KA).
    pub ka: Credential,
    /// Supplier prepayment top-up key agreement (`OU=02`, KA).
    pub pp_ka: Credential,
}

/// A device's DS and KA credentials.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    /// The device EUI.
    pub eui: Eui64,
    /// Digital signing.
    pub ds: Credential,
    /// Key agreement.
    pub ka: Credential,
}

/// A generated test PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    spec: TestPkiSpec,
    root: Credential,
    issuing_ca: Credential,
    device_ca: Credential,
    device_ca_key: SigningKey,
    orgs: Vec<OrgCredentials>,
    tcos: Credential,
    ecos: Credential,
    acb_ka: Credential,
    dsp_xml_sign: Credential,
    devices: Vec<DeviceCredentials>,
}

// ---------------------------------------------------------------- DER writer

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid_tlv(o: &ObjectIdentifier) -> Vec<u8> {
    tlv(0x06, o.as_bytes())
}

fn uint(bytes: &[u8]) -> Vec<u8> {
    let b: Vec<u8> = bytes.iter().copied().skip_while(|&x| x == 0).collect();
    let mut content = Vec::with_capacity(b.len() + 1);
    if b.first().is_none_or(|&x| x >= 0x80) {
        content.push(0);
    }
    content.extend(b);
    tlv(0x02, &content)
}

fn time(t: jiff::Timestamp) -> Vec<u8> {
    let dt = t.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    if dt.year() < 2050 {
        tlv(0x17, dt.strftime("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, dt.strftime("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

fn atv(o: &ObjectIdentifier, value: &[u8]) -> Vec<u8> {
    tlv(0x31, &seq(&[&oid_tlv(o), value]))
}

fn ext(o: &ObjectIdentifier, critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        seq(&[&oid_tlv(o), &[0x01, 0x01, 0xFF], &tlv(0x04, value)])
    } else {
        seq(&[&oid_tlv(o), &tlv(0x04, value)])
    }
}

fn ski_of(public: &[u8]) -> [u8; 8] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d.as_ref()[..8]);
    out[0] = 0x40 | (out[0] & 0x0F);
    out
}

// ----------------------------------------------------------- certificate kinds

#[derive(Clone, Copy)]
enum Usage {
    Ds,
    Ka,
}

enum Subject<'a> {
    Ca {
        ou: Option<&'a str>,
        cn: &'a str,
    },
    Org {
        cn: Option<&'a str>,
        role: Role,
        eui: Eui64,
    },
    Device {
        eui: Eui64,
    },
}

struct Issuer<'a> {
    name_der: &'a [u8],
    ski: &'a [u8],
    key: &'a SigningKey,
}

struct Tbs<'a> {
    subject: Subject<'a>,
    usage: Option<Usage>,
    path_len: Option<u8>,
    policies: &'a [ObjectIdentifier],
    not_before: jiff::Timestamp,
    not_after: Option<jiff::Timestamp>,
}

fn subject_der(s: &Subject<'_>) -> Vec<u8> {
    match s {
        Subject::Ca { ou, cn } => {
            let mut parts = Vec::new();
            if let Some(ou) = ou {
                parts.push(atv(&oid::OU, &tlv(0x13, ou.as_bytes())));
            }
            parts.push(atv(&oid::CN, &tlv(0x13, cn.as_bytes())));
            tlv(0x30, &parts.concat())
        }
        Subject::Org { cn, role, eui } => {
            let mut parts = Vec::new();
            if let Some(cn) = cn.filter(|c| !c.is_empty()) {
                parts.push(atv(&oid::CN, &tlv(0x0C, cn.as_bytes())));
            }
            parts.push(atv(&oid::OU, &tlv(0x0C, role.ou().as_bytes())));
            let mut bits = vec![0u8];
            bits.extend(eui.as_bytes());
            parts.push(atv(&oid::UNIQUE_ID, &tlv(0x03, &bits)));
            tlv(0x30, &parts.concat())
        }
        Subject::Device { .. } => vec![0x30, 0x00],
    }
}

/// Derive a ChaCha20 RNG for one credential from the seed and its label.
fn rng_for(seed: u64, label: &str) -> ChaCha20Rng {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"ecos-smki testpki v1\0");
    ctx.update(&seed.to_be_bytes());
    ctx.update(label.as_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(ctx.finish().as_ref());
    ChaCha20Rng::from_seed(s)
}

fn key_pkcs8(label: &str, key: &SigningKey) -> Result<Vec<u8>, TestPkiError> {
    use pkcs8::EncodePrivateKey as _;
    key.to_pkcs8_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| TestPkiError::Key {
            label: label.into(),
            detail: e.to_string(),
        })
}

/// Build, sign and parse one certificate. `issuer` None: self-signed.
/// Key material of a new credential.
struct NewKey {
    public: Vec<u8>,
    pkcs8: Vec<u8>,
    /// A p256 signing key, kept for CAs (they sign certificates).
    signer: Option<SigningKey>,
}

/// Draw a P-256 scalar from `rng` (rejection sampling) and build the key.
/// CAs get a p256 `SigningKey` (deterministic RFC 6979 signatures); leaves
/// only need their public key and PKCS#8, which aws-lc-rs derives several
/// times faster.
fn new_key(rng: &mut ChaCha20Rng, ca: bool, label: &str) -> Result<NewKey, TestPkiError> {
    let err = |detail: String| TestPkiError::Key {
        label: label.into(),
        detail,
    };
    for _ in 0..64 {
        let mut scalar = [0u8; 32];
        rng.fill_bytes(&mut scalar);
        if ca {
            let Ok(k) = SigningKey::from_slice(&scalar) else {
                continue;
            };
            return Ok(NewKey {
                public: k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
                pkcs8: key_pkcs8(label, &k)?,
                signer: Some(k),
            });
        }
        use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
        let Ok(k) = aws_lc_rs::agreement::PrivateKey::from_private_key(
            &aws_lc_rs::agreement::ECDH_P256,
            &scalar,
        ) else {
            continue;
        };
        let public = k
            .compute_public_key()
            .map_err(|_| err("public key".into()))?
            .as_ref()
            .to_vec();
        let pkcs8: Pkcs8V1Der<'static> = k.as_der().map_err(|_| err("PKCS#8".into()))?;
        return Ok(NewKey {
            public,
            pkcs8: pkcs8.as_ref().to_vec(),
            signer: None,
        });
    }
    Err(err("no valid scalar in 64 draws".into()))
}

/// Build, sign and parse one certificate. `issuer` None: self-signed.
/// Returns the signing key for CA certificates (`path_len` set).
fn build(
    seed: u64,
    label: &str,
    tbs: &Tbs<'_>,
    issuer: Option<&Issuer<'_>>,
) -> Result<(Credential, Option<SigningKey>), TestPkiError> {
    let mut rng = rng_for(seed, label);
    let key = new_key(&mut rng, tbs.path_len.is_some(), label)?;
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x3F) | 0x10;

    let public = key.public.as_slice();
    let ski = ski_of(public);
    let subject = subject_der(&tbs.subject);
    let (issuer_name, issuer_ski, signer) = match (issuer, &key.signer) {
        (Some(i), _) => (i.name_der.to_vec(), Some(i.ski.to_vec()), i.key),
        (None, Some(own)) => (subject.clone(), None, own),
        (None, None) => {
            return Err(TestPkiError::Spec(format!(
                "{label}: only a CA can be self-signed"
            )));
        }
    };

    let alg = seq(&[&oid_tlv(&oid::ECDSA_WITH_SHA256)]);
    let validity = seq(&[
        &time(tbs.not_before),
        &match tbs.not_after {
            Some(t) => time(t),
            None => tlv(0x18, b"99991231235959Z"),
        },
    ]);
    let mut bitkey = vec![0u8];
    bitkey.extend_from_slice(public);
    let spki = seq(&[
        &seq(&[&oid_tlv(&oid::EC_PUBLIC_KEY), &oid_tlv(&oid::PRIME256V1)]),
        &tlv(0x03, &bitkey),
    ]);

    let ku: &[u8] = match (tbs.usage, tbs.path_len) {
        (_, Some(_)) => &[0x03, 0x02, 0x01, 0x06],
        (Some(Usage::Ka), None) => &[0x03, 0x02, 0x03, 0x08],
        (Some(Usage::Ds), None) | (None, None) => &[0x03, 0x02, 0x07, 0x80],
    };
    let policies: Vec<u8> = tbs
        .policies
        .iter()
        .flat_map(|p| seq(&[&oid_tlv(p)]))
        .collect();
    let policies = tlv(0x30, &policies);
    let ski_ext = ext(&oid::SKI, false, &tlv(0x04, &ski));
    let aki_ext = issuer_ski.map(|s| ext(&oid::AKI, false, &seq(&[&tlv(0x80, &s)])));
    let mut exts: Vec<Vec<u8>> = vec![ext(&oid::KEY_USAGE, true, ku)];
    match (&tbs.subject, tbs.path_len) {
        (_, Some(pl)) => {
            exts.push(ext(
                &oid::BASIC_CONSTRAINTS,
                true,
                &seq(&[&[0x01, 0x01, 0xFF], &[0x02, 0x01, pl]]),
            ));
            exts.push(ext(&oid::CERT_POLICIES, true, &policies));
            exts.push(ski_ext);
        }
        (Subject::Device { eui }, None) => {
            let hw = seq(&[&oid_tlv(&oid::DEVICE_HW_TYPE), &tlv(0x04, eui.as_bytes())]);
            // otherName [0] { type-id, [0] EXPLICIT value }
            let other = tlv(
                0xA0,
                &[oid_tlv(&oid::HARDWARE_MODULE_NAME), tlv(0xA0, &hw)].concat(),
            );
            exts.push(ski_ext);
            exts.push(ext(&oid::SAN, true, &tlv(0x30, &other)));
            exts.push(ext(&oid::CERT_POLICIES, true, &policies));
        }
        (_, None) => {
            exts.push(ski_ext);
            exts.push(ext(&oid::CERT_POLICIES, true, &policies));
        }
    }
    exts.extend(aki_ext);
    let exts = tlv(0xA3, &tlv(0x30, &exts.concat()));

    let tbs_der = seq(&[
        &[0xA0, 0x03, 0x02, 0x01, 0x02],
        &uint(&serial),
        &alg,
        &issuer_name,
        &validity,
        &subject,
        &spki,
        &exts,
    ]);
    let sig: p256::ecdsa::Signature = signer.sign(&tbs_der);
    let mut sig_bits = vec![0u8];
    sig_bits.extend_from_slice(sig.to_der().as_bytes());
    let der = seq(&[&tbs_der, &alg, &tlv(0x03, &sig_bits)]);

    let cert = Certificate::from_der(&der).map_err(|source| TestPkiError::Cert {
        label: label.into(),
        source,
    })?;
    let cred = Credential {
        cert,
        key: key.pkcs8,
        label: label.into(),
    };
    Ok((cred, key.signer))
}

/// The signing key a CA credential must have.
fn ca_key(key: Option<SigningKey>, label: &str) -> Result<SigningKey, TestPkiError> {
    key.ok_or_else(|| TestPkiError::Key {
        label: label.into(),
        detail: "CA built without a signing key".into(),
    })
}

fn years_after(t: jiff::Timestamp, years: i16) -> Result<jiff::Timestamp, TestPkiError> {
    let z = t.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    z.checked_add(jiff::Span::new().years(years))
        .and_then(|z| z.checked_sub(jiff::Span::new().seconds(1)))
        .map(|z| z.timestamp())
        .map_err(|e| TestPkiError::Spec(format!("lifetime of {years} years: {e}")))
}

impl TestPki {
    /// Generate every credential of `spec`.
    pub fn generate(spec: &TestPkiSpec) -> Result<TestPki, TestPkiError> {
        let mut seen = std::collections::HashSet::new();
        for o in &spec.suppliers {
            if !seen.insert(o.eui) {
                return Err(TestPkiError::Spec(format!(
                    "supplier EUI {} appears twice",
                    o.eui
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &spec.devices {
            if !seen.insert(*d) {
                return Err(TestPkiError::Spec(format!("device EUI {d} appears twice")));
            }
        }
        let nb = spec.not_before;
        let ca_end = years_after(nb, spec.ca_years)?;
        let org_end = years_after(nb, spec.org_years)?;
        let seed = spec.seed;
        let both = [oid::TEST_ORG_POLICY, oid::TEST_DEVICE_POLICY];
        let org_pol = [oid::TEST_ORG_POLICY];
        let dev_pol = [oid::TEST_DEVICE_POLICY];

        let (root, root_key) = build(
            seed,
            "ca/root",
            &Tbs {
                subject: Subject::Ca {
                    ou: Some("00"),
                    cn: &spec.root_cn,
                },
                usage: None,
                path_len: Some(1),
                policies: &both,
                not_before: nb,
                not_after: Some(ca_end),
            },
            None,
        )?;
        let root_key = ca_key(root_key, "ca/root")?;
        let root_issuer = Issuer {
            name_der: root.cert.subject_der(),
            ski: root.cert.ski().unwrap_or_default(),
            key: &root_key,
        };
        let ca = |label: &str, ou: Option<&'static str>, cn: &str, pol: &[ObjectIdentifier]| {
            build(
                seed,
                label,
                &Tbs {
                    subject: Subject::Ca { ou, cn },
                    usage: None,
                    path_len: Some(0),
                    policies: pol,
                    not_before: nb,
                    not_after: Some(ca_end),
                },
                Some(&root_issuer),
            )
        };
        let (issuing_ca, issuing_key) =
            ca("ca/issuing-ca", Some("07"), &spec.issuing_ca_cn, &org_pol)?;
        let issuing_key = ca_key(issuing_key, "ca/issuing-ca")?;
        let (device_ca, device_ca_key) = ca("ca/device-ca", None, &spec.device_ca_cn, &dev_pol)?;
        let device_ca_key = ca_key(device_ca_key, "ca/device-ca")?;

        let issuer = Issuer {
            name_der: issuing_ca.cert.subject_der(),
            ski: issuing_ca.cert.ski().unwrap_or_default(),
            key: &issuing_key,
        };
        let org = |label: String, cn: Option<&str>, role: Role, eui: Eui64, usage: Usage| {
            build(
                seed,
                &label,
                &Tbs {
                    subject: Subject::Org { cn, role, eui },
                    usage: Some(usage),
                    path_len: None,
                    policies: &org_pol,
                    not_before: nb,
                    not_after: Some(org_end),
                },
                Some(&issuer),
            )
            .map(|(c, _)| c)
        };

        let mut orgs = Vec::with_capacity(spec.suppliers.len());
        for o in &spec.suppliers {
            let p = format!("org/{}", o.eui.to_compact());
            orgs.push(OrgCredentials {
                spec: o.clone(),
                xml_sign: org(
                    format!("{p}/xml-sign"),
                    o.mpids_cn.as_deref(),
                    Role::XmlSign,
                    o.eui,
                    Usage::Ds,
                )?,
                ds: org(
                    format!("{p}/ds"),
                    Some(&o.name),
                    Role::Supplier,
                    o.eui,
                    Usage::Ds,
                )?,
                ka: org(format!("{p}/ka"), None, Role::Supplier, o.eui, Usage::Ka)?,
                pp_ka: org(format!("{p}/pp-ka"), None, Role::Supplier, o.eui, Usage::Ka)?,
            });
        }
        let tcos = org(
            "dcc/tcos-ds".into(),
            None,
            Role::TransitionalCos,
            spec.tcos_eui,
            Usage::Ds,
        )?;
        let ecos = org(
            "dcc/ecos-ds".into(),
            None,
            Role::TransitionalCos,
            spec.ecos_eui,
            Usage::Ds,
        )?;
        let acb_ka = org(
            "dcc/acb-ka".into(),
            None,
            Role::AccessControlBroker,
            spec.acb_eui,
            Usage::Ka,
        )?;
        let dsp_xml_sign = org(
            "dcc/dsp-xml-sign".into(),
            None,
            Role::DspXmlSign,
            spec.dsp_eui,
            Usage::Ds,
        )?;

        let mut pki = TestPki {
            spec: spec.clone(),
            root,
            issuing_ca,
            device_ca,
            device_ca_key,
            orgs,
            tcos,
            ecos,
            acb_ka,
            dsp_xml_sign,
            devices: Vec::new(),
        };
        pki.devices = pki.mint_devices(&spec.devices)?;
        Ok(pki)
    }

    /// Mint many devices, in parallel over the available cores; the result
    /// is in input order and identical to minting each with [`Self::mint_device`].
    pub fn mint_devices(&self, euis: &[Eui64]) -> Result<Vec<DeviceCredentials>, TestPkiError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads <= 1 || euis.len() < 16 {
            return euis.iter().map(|&e| self.mint_device(e)).collect();
        }
        let chunk = euis.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = euis
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|&e| self.mint_device(e))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(euis.len());
            for h in handles {
                let part = h
                    .join()
                    .map_err(|_| TestPkiError::Spec("a device-minting thread panicked".into()))??;
                out.extend(part);
            }
            Ok(out)
        })
    }

    /// Mint the DS and KA credentials of any device, deterministically from
    /// the seed and its EUI (independent of the spec's device list).
    pub fn mint_device(&self, eui: Eui64) -> Result<DeviceCredentials, TestPkiError> {
        let issuer = Issuer {
            name_der: self.device_ca.cert.subject_der(),
            ski: self.device_ca.cert.ski().unwrap_or_default(),
            key: &self.device_ca_key,
        };
        let dev = |usage: Usage, suffix: &str| {
            build(
                self.spec.seed,
                &format!("device/{}/{suffix}", eui.to_compact()),
                &Tbs {
                    subject: Subject::Device { eui },
                    usage: Some(usage),
                    path_len: None,
                    policies: &[oid::TEST_DEVICE_POLICY],
                    not_before: self.spec.not_before,
                    not_after: None,
                },
                Some(&issuer),
            )
            .map(|(c, _)| c)
        };
        Ok(DeviceCredentials {
            eui,
            ds: dev(Usage::Ds, "ds")?,
            ka: dev(Usage::Ka, "ka")?,
        })
    }

    /// The spec this PKI was generated from.
    pub fn spec(&self) -> &TestPkiSpec {
        &self.spec
    }

    /// The root (`OU=00`).
    pub fn root(&self) -> &Credential {
        &self.root
    }

    /// The issuing CA (`OU=07`) of organisation certificates.
    pub fn issuing_ca(&self) -> &Credential {
        &self.issuing_ca
    }

    /// The device CA.
    pub fn device_ca(&self) -> &Credential {
        &self.device_ca
    }

    /// Every supplier organisation, in spec order.
    pub fn organisations(&self) -> &[OrgCredentials] {
        &self.orgs
    }

    /// The supplier organisation with this EUI.
    pub fn organisation(&self, eui: Eui64) -> Option<&OrgCredentials> {
        self.orgs.iter().find(|o| o.spec.eui == eui)
    }

    /// The transitional CoS DS credential (`OU=05`).
    pub fn tcos(&self) -> &Credential {
        &self.tcos
    }

    /// The enduring CoS DS credential (`OU=05`, a different key).
    pub fn ecos(&self) -> &Credential {
        &self.ecos
    }

    /// The ACB key-agreement credential (`OU=04`).
    pub fn acb_ka(&self) -> &Credential {
        &self.acb_ka
    }

    /// The DSP XML-sign credential (`OU=89`).
    pub fn dsp_xml_sign(&self) -> &Credential {
        &self.dsp_xml_sign
    }

    /// The devices of the spec.
    pub fn devices(&self) -> &[DeviceCredentials] {
        &self.devices
    }

    /// The device with this EUI (of the spec's list).
    pub fn device(&self, eui: Eui64) -> Option<&DeviceCredentials> {
        self.devices.iter().find(|d| d.eui == eui)
    }

    /// A trust store with the root as anchor and both CAs as intermediates.
    pub fn trust_store(&self) -> crate::TrustStore {
        let mut s = crate::TrustStore::with_anchors([self.root.cert.clone()]);
        s.add_intermediate(self.issuing_ca.cert.clone())
            .add_intermediate(self.device_ca.cert.clone());
        s
    }

    /// Every credential with its index metadata, in a stable order.
    fn all(&self) -> Vec<(&Credential, IndexMeta)> {
        let mut v: Vec<(&Credential, IndexMeta)> = vec![
            (&self.root, IndexMeta::new("root")),
            (&self.issuing_ca, IndexMeta::new("issuing-ca")),
            (&self.device_ca, IndexMeta::new("device-ca")),
        ];
        for o in &self.orgs {
            for (c, what) in [
                (&o.xml_sign, "xml-sign"),
                (&o.ds, "supplier-ds"),
                (&o.ka, "supplier-ka"),
                (&o.pp_ka, "supplier-pp-ka"),
            ] {
                let mut m = IndexMeta::new(what);
                m.organisation = Some(o.spec.name.clone());
                v.push((c, m));
            }
        }
        v.push((&self.tcos, IndexMeta::new("tcos-ds")));
        v.push((&self.ecos, IndexMeta::new("ecos-ds")));
        v.push((&self.acb_ka, IndexMeta::new("acb-ka")));
        v.push((&self.dsp_xml_sign, IndexMeta::new("dsp-xml-sign")));
        for d in &self.devices {
            v.push((&d.ds, IndexMeta::new("device-ds")));
            v.push((&d.ka, IndexMeta::new("device-ka")));
        }
        v
    }

    /// Write keys (PKCS#8 PEM), certificates (PEM), `chain.pem` (issuing CA
    /// then root), `device-chain.pem` and `index.json` under `dir`.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Index, TestPkiError> {
        let dir = dir.as_ref();
        let write = |rel: &str, data: &[u8]| -> Result<(), TestPkiError> {
            let path = dir.join(rel);
            let io = |source| TestPkiError::Io {
                path: path.display().to_string(),
                source,
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&path, data).map_err(io)
        };
        let mut entries = Vec::new();
        for (cred, meta) in self.all() {
            let cert_path = format!("{}.pem", cred.label);
            let key_path = format!("{}.key.pem", cred.label);
            write(&cert_path, cred.cert.to_pem().as_bytes())?;
            write(&key_path, cred.key_pem().as_bytes())?;
            entries.push(IndexEntry::new(cred, meta, cert_path, key_path));
        }
        let chain = format!(
            "{}{}",
            self.issuing_ca.cert.to_pem(),
            self.root.cert.to_pem()
        );
        write("chain.pem", chain.as_bytes())?;
        let chain = format!(
            "{}{}",
            self.device_ca.cert.to_pem(),
            self.root.cert.to_pem()
        );
        write("device-chain.pem", chain.as_bytes())?;
        let index = Index {
            format: "ecos-testpki/1".into(),
            seed: self.spec.seed,
            chain: "chain.pem".into(),
            device_chain: "device-chain.pem".into(),
            entries,
        };
        let json = serde_json::to_vec_pretty(&index).map_err(|e| TestPkiError::Io {
            path: dir.join("index.json").display().to_string(),
            source: std::io::Error::other(e),
        })?;
        write("index.json", &json)?;
        Ok(index)
    }
}

struct IndexMeta {
    what: &'static str,
    organisation: Option<String>,
}

impl IndexMeta {
    fn new(what: &'static str) -> Self {
        IndexMeta {
            what,
            organisation: None,
        }
    }
}

/// `index.json`: which file is what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Index {
    /// `ecos-testpki/1`.
    pub format: String,
    /// The seed.
    pub seed: u64,
    /// The organisation chain bundle (issuing CA, root).
    pub chain: String,
    /// The device chain bundle (device CA, root).
    pub device_chain: String,
    /// One entry per credential.
    pub entries: Vec<IndexEntry>,
}

/// One credential in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// What it is: `root`, `issuing-ca`, `device-ca`, `xml-sign`,
    /// `supplier-ds`, `supplier-ka`, `supplier-pp-ka`, `tcos-ds`, `ecos-ds`,
    /// `acb-ka`, `dsp-xml-sign`, `device-ds`, `device-ka`.
    pub credential: String,
    /// The supplier organisation name, for supplier credentials.
    pub organisation: Option<String>,
    /// The certificate file (PEM), relative to the directory.
    pub certificate: String,
    /// The private key file (PKCS#8 PEM), relative to the directory.
    pub key: String,
    /// The EUI-64 (hyphenated), if any.
    pub eui: Option<Eui64>,
    /// The OU (two hex digits), if any.
    pub ou: Option<String>,
    /// The subject CN, if any.
    pub common_name: Option<String>,
    /// `digitalSignature`, `keyAgreement` or `keyCertSign`.
    pub key_usage: String,
    /// Subject, RFC 2253.
    pub subject: String,
    /// Issuer, RFC 2253.
    pub issuer: String,
    /// Serial, upper-case hex.
    pub serial_hex: String,
    /// Serial, decimal.
    pub serial_decimal: String,
    /// SKI, upper-case hex.
    pub ski: String,
    /// SHA-256 of the certificate DER, hex.
    pub sha256: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
}

impl IndexEntry {
    fn new(cred: &Credential, meta: IndexMeta, certificate: String, key: String) -> Self {
        let c = &cred.cert;
        IndexEntry {
            credential: meta.what.into(),
            organisation: meta.organisation,
            certificate,
            key,
            eui: c.eui(),
            ou: c.role().map(Role::ou),
            common_name: c.common_name().map(str::to_string),
            key_usage: c.key_usage().to_string(),
            subject: c.subject_rfc2253(),
            issuer: c.issuer_rfc2253(),
            serial_hex: hex::encode_upper(c.serial()),
            serial_decimal: c.serial_decimal(),
            ski: c.ski().map(hex::encode_upper).unwrap_or_default(),
            sha256: hex::encode(c.sha256()),
            not_before: c.not_before().to_string(),
            not_after: c.not_after().to_string(),
        }
    }

    /// Whether this entry describes `cert` (compared field by field).
    pub fn describes(&self, cert: &Certificate) -> bool {
        let other = IndexEntry::new(
            &Credential {
                cert: cert.clone(),
                key: Vec::new(),
                label: String::new(),
            },
            IndexMeta {
                what: "",
                organisation: None,
            },
            String::new(),
            String::new(),
        );
        self.eui == other.eui
            && self.ou == other.ou
            && self.common_name == other.common_name
            && self.key_usage == other.key_usage
            && self.subject == other.subject
            && self.issuer == other.issuer
            && self.serial_hex == other.serial_hex
            && self.ski == other.ski
            && self.sha256 == other.sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PathError, PathPolicy, TrustStore, validate_path};

    fn signing_key(der: &[u8]) -> SigningKey {
        use pkcs8::DecodePrivateKey as _;
        SigningKey::from_pkcs8_der(der).unwrap()
    }

    fn at(pki: &TestPki) -> jiff::Timestamp {
        pki.spec().not_before + jiff::SignedDuration::from_hours(24)
    }

    /// An issuer that is an organisation certificate, not a CA.
    #[test]
    fn issuer_that_is_not_a_ca_is_refused() {
        let mut spec = TestPkiSpec::demo();
        spec.devices.clear();
        let pki = TestPki::generate(&spec).unwrap();
        let org = &pki.organisations()[0].ds;
        let org_key = signing_key(&org.key);
        let issuer = Issuer {
            name_der: org.cert.subject_der(),
            ski: org.cert.ski().unwrap(),
            key: &org_key,
        };
        let (leaf, _) = build(
            1,
            "test/leaf-under-org",
            &Tbs {
                subject: Subject::Org {
                    cn: None,
                    role: Role::Supplier,
                    eui: Eui64::from_u64(1),
                },
                usage: Some(Usage::Ds),
                path_len: None,
                policies: &[oid::TEST_ORG_POLICY],
                not_before: spec.not_before,
                not_after: None,
            },
            Some(&issuer),
        )
        .unwrap();
        let err = validate_path(
            &leaf.cert,
            std::slice::from_ref(&org.cert),
            &pki.trust_store(),
            at(&pki),
            &PathPolicy::test_organisation(),
            true,
        )
        .unwrap_err();
        assert!(matches!(err, PathError::IssuerNotCa { .. }), "{err:?}");
    }

    /// A sub-CA under the issuing CA (pathlen 0) exceeds its constraint.
    #[test]
    fn path_length_constraint_is_enforced() {
        let mut spec = TestPkiSpec::demo();
        spec.devices.clear();
        let pki = TestPki::generate(&spec).unwrap();
        let ca_key = signing_key(&pki.issuing_ca().key);
        let issuing = Issuer {
            name_der: pki.issuing_ca().cert.subject_der(),
            ski: pki.issuing_ca().cert.ski().unwrap(),
            key: &ca_key,
        };
        let (sub, sub_key) = build(
            1,
            "test/sub-ca",
            &Tbs {
                subject: Subject::Ca {
                    ou: Some("07"),
                    cn: "SUB",
                },
                usage: None,
                path_len: Some(0),
                policies: &[oid::TEST_ORG_POLICY],
                not_before: spec.not_before,
                not_after: Some(years_after(spec.not_before, 5).unwrap()),
            },
            Some(&issuing),
        )
        .unwrap();
        let sub_key = sub_key.unwrap();
        let sub_issuer = Issuer {
            name_der: sub.cert.subject_der(),
            ski: sub.cert.ski().unwrap(),
            key: &sub_key,
        };
        let (leaf, _) = build(
            1,
            "test/leaf-under-sub",
            &Tbs {
                subject: Subject::Org {
                    cn: Some("ACEE"),
                    role: Role::XmlSign,
                    eui: Eui64::from_u64(2),
                },
                usage: Some(Usage::Ds),
                path_len: None,
                policies: &[oid::TEST_ORG_POLICY],
                not_before: spec.not_before,
                not_after: Some(years_after(spec.not_before, 5).unwrap()),
            },
            Some(&sub_issuer),
        )
        .unwrap();
        let store = pki.trust_store();
        let err = validate_path(
            &leaf.cert,
            std::slice::from_ref(&sub.cert),
            &store,
            at(&pki),
            &PathPolicy::test_organisation(),
            true,
        )
        .unwrap_err();
        assert!(
            matches!(&err, PathError::PathLenExceeded { max: 0, below: 1, issuer } if issuer == "CN=Z1T,OU=07"),
            "{err:?}"
        );
        // Anchored at the sub-CA itself, the path is fine.
        let sub_only = TrustStore::with_anchors([sub.cert.clone()]);
        validate_path(
            &leaf.cert,
            &[],
            &sub_only,
            at(&pki),
            &PathPolicy::test_organisation(),
            true,
        )
        .unwrap();
    }

    #[test]
    fn der_writer_lengths() {
        assert_eq!(tlv(0x04, &[1; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[1; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[1; 300])[..4], [0x04, 0x82, 1, 44]);
        assert_eq!(uint(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0, 0, 5]), [0x02, 0x01, 0x05]);
        assert_eq!(uint(&[]), [0x02, 0x01, 0x00]);
    }
}

/// Every departure from the SMKI profile is a typed error naming the field.
#[cfg(test)]
mod profile {
    use super::*;
    use crate::CertError as E;

    const KU_DS: &[u8] = &[0x03, 0x02, 0x07, 0x80];
    const KU_KA: &[u8] = &[0x03, 0x02, 0x03, 0x08];
    const KU_CA: &[u8] = &[0x03, 0x02, 0x01, 0x06];

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn name_ca() -> Vec<u8> {
        subject_der(&Subject::Ca {
            ou: Some("07"),
            cn: "Z1",
        })
    }

    fn org_subject(ou: &[u8], uid: Option<Vec<u8>>, cn: Option<Vec<u8>>) -> Vec<u8> {
        let mut parts = Vec::new();
        if let Some(cn) = cn {
            parts.push(atv(&oid::CN, &cn));
        }
        parts.push(atv(&oid::OU, &tlv(0x0C, ou)));
        if let Some(uid) = uid {
            parts.push(atv(&oid::UNIQUE_ID, &uid));
        }
        tlv(0x30, &parts.concat())
    }

    fn uid_ok() -> Vec<u8> {
        tlv(0x03, &[0, 0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x01, 0x00, 0x00])
    }

    fn policies() -> Vec<u8> {
        seq(&[&seq(&[&oid_tlv(&oid::TEST_ORG_POLICY)])])
    }

    fn ski() -> Vec<u8> {
        ext(&oid::SKI, false, &tlv(0x04, &[0x41; 8]))
    }

    fn aki() -> Vec<u8> {
        ext(&oid::AKI, false, &seq(&[&tlv(0x80, &[0x4F; 8])]))
    }

    fn org_exts(ku: &[u8]) -> Vec<Vec<u8>> {
        vec![
            ext(&oid::KEY_USAGE, true, ku),
            ski(),
            ext(&oid::CERT_POLICIES, true, &policies()),
            aki(),
        ]
    }

    fn san(hw_serial: &[u8]) -> Vec<u8> {
        let hw = seq(&[&oid_tlv(&oid::DEVICE_HW_TYPE), &tlv(0x04, hw_serial)]);
        let other = tlv(
            0xA0,
            &[oid_tlv(&oid::HARDWARE_MODULE_NAME), tlv(0xA0, &hw)].concat(),
        );
        tlv(0x30, &other)
    }

    struct Parts {
        version: Vec<u8>,
        serial: Vec<u8>,
        alg: Vec<u8>,
        curve: ObjectIdentifier,
        not_before: jiff::Timestamp,
        not_after: jiff::Timestamp,
        subject: Vec<u8>,
        exts: Vec<Vec<u8>>,
    }

    fn org(ou: &[u8]) -> Parts {
        Parts {
            version: vec![0xA0, 0x03, 0x02, 0x01, 0x02],
            serial: uint(&[0x3C; 16]),
            alg: seq(&[&oid_tlv(&oid::ECDSA_WITH_SHA256)]),
            curve: oid::PRIME256V1,
            not_before: jiff::Timestamp::from_second(1_600_000_000).unwrap(),
            not_after: jiff::Timestamp::from_second(1_900_000_000).unwrap(),
            subject: org_subject(ou, Some(uid_ok()), None),
            exts: org_exts(KU_DS),
        }
    }

    fn der(p: &Parts) -> Vec<u8> {
        let k = key();
        let public = k.verifying_key().to_sec1_point(false);
        let mut bitkey = vec![0u8];
        bitkey.extend_from_slice(public.as_bytes());
        let spki = seq(&[
            &seq(&[&oid_tlv(&oid::EC_PUBLIC_KEY), &oid_tlv(&p.curve)]),
            &tlv(0x03, &bitkey),
        ]);
        let tbs = seq(&[
            &p.version,
            &p.serial,
            &p.alg,
            &name_ca(),
            &seq(&[&time(p.not_before), &time(p.not_after)]),
            &p.subject,
            &spki,
            &tlv(0xA3, &tlv(0x30, &p.exts.concat())),
        ]);
        let sig: p256::ecdsa::Signature = k.sign(&tbs);
        let mut bits = vec![0u8];
        bits.extend_from_slice(sig.to_der().as_bytes());
        seq(&[&tbs, &p.alg, &tlv(0x03, &bits)])
    }

    fn parse(p: &Parts) -> Result<Certificate, E> {
        Certificate::from_der(&der(p))
    }

    #[test]
    fn baseline_is_accepted() {
        let c = parse(&org(b"87")).unwrap();
        assert_eq!(c.role(), Some(Role::XmlSign));
        assert_eq!(c.key_usage(), crate::KeyUsage::DigitalSignature);
        let mut ka = org(b"02");
        ka.exts = org_exts(KU_KA);
        assert_eq!(
            parse(&ka).unwrap().key_usage(),
            crate::KeyUsage::KeyAgreement
        );
    }

    #[test]
    fn table_of_profile_errors() {
        type Check = fn(&E) -> bool;
        let mut cases: Vec<(&str, Parts, Check)> = Vec::new();
        let mut add = |name: &'static str, f: &dyn Fn(&mut Parts), check: Check| {
            let mut p = org(b"87");
            f(&mut p);
            cases.push((name, p, check));
        };
        add("version 1", &|p| p.version.clear(), |e| {
            matches!(e, E::Version(1))
        });
        add(
            "ecdsa-with-SHA384",
            &|p| {
                p.alg = seq(&[&oid_tlv(&ObjectIdentifier::new_unwrap(
                    "1.2.840.10045.4.3.3",
                ))])
            },
            |e| matches!(e, E::SignatureAlgorithm { .. }),
        );
        add(
            "P-384 key",
            &|p| p.curve = ObjectIdentifier::new_unwrap("1.3.132.0.34"),
            |e| matches!(e, E::PublicKey(_)),
        );
        add(
            "negative serial",
            &|p| p.serial = tlv(0x02, &[0x80, 1]),
            |e| matches!(e, E::Serial(_)),
        );
        add("zero serial", &|p| p.serial = tlv(0x02, &[0]), |e| {
            matches!(e, E::Serial(_))
        });
        add(
            "validity reversed",
            &|p| std::mem::swap(&mut p.not_before, &mut p.not_after),
            |e| matches!(e, E::Validity(_)),
        );
        add(
            "keyUsage not critical",
            &|p| p.exts[0] = ext(&oid::KEY_USAGE, false, KU_DS),
            |e| matches!(e, E::NotCritical("keyUsage")),
        );
        add(
            "keyUsage DS+KA",
            &|p| p.exts[0] = ext(&oid::KEY_USAGE, true, &[0x03, 0x02, 0x03, 0x88]),
            |e| matches!(e, E::KeyUsage(_)),
        );
        add(
            "keyUsage missing",
            &|p| {
                p.exts.remove(0);
            },
            |e| matches!(e, E::MissingExtension("keyUsage")),
        );
        add(
            "policies not critical",
            &|p| p.exts[2] = ext(&oid::CERT_POLICIES, false, &policies()),
            |e| matches!(e, E::NotCritical("certificatePolicies")),
        );
        add(
            "policies missing",
            &|p| {
                p.exts.remove(2);
            },
            |e| matches!(e, E::MissingExtension("certificatePolicies")),
        );
        add(
            "SKI missing",
            &|p| {
                p.exts.remove(1);
            },
            |e| matches!(e, E::MissingExtension("subjectKeyIdentifier")),
        );
        add(
            "SKI of 20 bytes",
            &|p| p.exts[1] = ext(&oid::SKI, false, &tlv(0x04, &[0x41; 20])),
            |e| {
                matches!(
                    e,
                    E::Extension {
                        name: "subjectKeyIdentifier",
                        ..
                    }
                )
            },
        );
        add(
            "AKI of 4 bytes",
            &|p| p.exts[3] = ext(&oid::AKI, false, &seq(&[&tlv(0x80, &[0x4F; 4])])),
            |e| {
                matches!(
                    e,
                    E::Extension {
                        name: "authorityKeyIdentifier",
                        ..
                    }
                )
            },
        );
        add(
            "duplicate keyUsage",
            &|p| p.exts.push(ext(&oid::KEY_USAGE, true, KU_DS)),
            |e| matches!(e, E::DuplicateExtension { .. }),
        );
        add(
            "extendedKeyUsage",
            &|p| {
                p.exts.push(ext(
                    &ObjectIdentifier::new_unwrap("2.5.29.37"),
                    false,
                    &seq(&[&oid_tlv(&ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3"))]),
                ))
            },
            |e| matches!(e, E::UnexpectedExtension { oid, .. } if oid == "2.5.29.37"),
        );
        add(
            "basicConstraints cA FALSE",
            &|p| p.exts.push(ext(&oid::BASIC_CONSTRAINTS, true, &seq(&[]))),
            |e| {
                matches!(
                    e,
                    E::Extension {
                        name: "basicConstraints",
                        ..
                    }
                )
            },
        );
        add(
            "SAN on an organisation",
            &|p| p.exts.push(ext(&oid::SAN, true, &san(&[0; 8]))),
            |e| matches!(e, E::UnexpectedExtension { oid, .. } if oid == "2.5.29.17"),
        );
        add(
            "OU 1G",
            &|p| p.subject = org_subject(b"1G", Some(uid_ok()), None),
            |e| matches!(e, E::Ou { ou, reason: crate::RoleError::Syntax(_) } if ou == "1G"),
        );
        add(
            "OU 09",
            &|p| p.subject = org_subject(b"09", Some(uid_ok()), None),
            |e| {
                matches!(
                    e,
                    E::Ou {
                        reason: crate::RoleError::Unknown { code: 9, .. },
                        ..
                    }
                )
            },
        );
        add(
            "OU 07 without CA",
            &|p| p.subject = org_subject(b"07", Some(uid_ok()), None),
            |e| matches!(e, E::Kind(_)),
        );
        add(
            "UID missing",
            &|p| p.subject = org_subject(b"87", None, None),
            |e| matches!(e, E::MissingUniqueIdentifier),
        );
        add(
            "UID as OCTET STRING",
            &|p| p.subject = org_subject(b"87", Some(tlv(0x04, &[0x90; 8])), None),
            |e| matches!(e, E::UniqueIdentifier(_)),
        );
        add(
            "UID of 7 bytes",
            &|p| p.subject = org_subject(b"87", Some(tlv(0x03, &[0, 1, 2, 3, 4, 5, 6, 7])), None),
            |e| matches!(e, E::UniqueIdentifier(m) if m.contains("7 bytes")),
        );
        add(
            "UID with unused bits",
            &|p| {
                p.subject = org_subject(b"87", Some(tlv(0x03, &[1, 1, 2, 3, 4, 5, 6, 7, 8])), None)
            },
            |e| matches!(e, E::UniqueIdentifier(m) if m.contains("unused")),
        );
        add(
            "CN as BMPString",
            &|p| p.subject = org_subject(b"87", Some(uid_ok()), Some(tlv(0x1E, &[0, 0x41]))),
            |e| matches!(e, E::AttributeString { attr: "CN", .. }),
        );
        add(
            "two CNs",
            &|p| {
                let cn = atv(&oid::CN, &tlv(0x0C, b"ACEE"));
                let rest = org_subject(b"87", Some(uid_ok()), None);
                p.subject = tlv(0x30, &[cn.clone(), cn, rest[2..].to_vec()].concat());
            },
            |e| matches!(e, E::DuplicateAttribute("CN")),
        );
        add(
            "O attribute",
            &|p| {
                let o = atv(
                    &ObjectIdentifier::new_unwrap("2.5.4.10"),
                    &tlv(0x0C, b"DCC"),
                );
                let rest = org_subject(b"87", Some(uid_ok()), None);
                p.subject = tlv(0x30, &[o, rest[2..].to_vec()].concat());
            },
            |e| matches!(e, E::SubjectAttribute { oid } if oid == "2.5.4.10"),
        );
        add(
            "multi-valued RDN",
            &|p| {
                let a = seq(&[&oid_tlv(&oid::OU), &tlv(0x0C, b"87")]);
                let b = seq(&[&oid_tlv(&oid::UNIQUE_ID), &uid_ok()]);
                p.subject = tlv(0x30, &tlv(0x31, &[a, b].concat()));
            },
            |e| matches!(e, E::MultiValuedRdn),
        );
        // Devices.
        let device = |p: &mut Parts, san_ext: Option<Vec<u8>>| {
            p.subject = vec![0x30, 0x00];
            p.exts.truncate(3);
            p.exts.extend(san_ext);
        };
        add(
            "device without SAN",
            &|p| device(p, None),
            |e| matches!(e, E::MissingExtension(m) if m.starts_with("subjectAltName")),
        );
        add(
            "device SAN not critical",
            &|p| device(p, Some(ext(&oid::SAN, false, &san(&[0; 8])))),
            |e| matches!(e, E::NotCritical("subjectAltName")),
        );
        add(
            "device hwSerialNum of 6 bytes",
            &|p| device(p, Some(ext(&oid::SAN, true, &san(&[0; 6])))),
            |e| matches!(e, E::Extension { name: "subjectAltName", detail } if detail.contains("6 bytes")),
        );
        add(
            "device SAN dNSName",
            &|p| {
                device(
                    p,
                    Some(ext(&oid::SAN, true, &seq(&[&tlv(0x82, b"x.example")]))),
                )
            },
            |e| {
                matches!(
                    e,
                    E::Extension {
                        name: "subjectAltName",
                        ..
                    }
                )
            },
        );
        // CAs.
        let ca = |p: &mut Parts, ou: &str, ku: &[u8], bc: bool| {
            p.subject = subject_der(&Subject::Ca {
                ou: Some(ou),
                cn: "X",
            });
            p.exts = vec![
                ext(&oid::KEY_USAGE, true, ku),
                ski(),
                ext(&oid::CERT_POLICIES, true, &policies()),
            ];
            if bc {
                p.exts.push(ext(
                    &oid::BASIC_CONSTRAINTS,
                    true,
                    &seq(&[&[0x01, 0x01, 0xFF]]),
                ));
            }
        };
        add(
            "keyCertSign without basicConstraints",
            &|p| ca(p, "07", KU_CA, false),
            |e| matches!(e, E::Kind(_)),
        );
        add(
            "CA with digitalSignature",
            &|p| ca(p, "07", KU_DS, true),
            |e| matches!(e, E::Kind(_)),
        );
        add(
            "CA with a supplier OU",
            &|p| ca(p, "02", KU_CA, true),
            |e| matches!(e, E::Kind(_)),
        );

        for (name, parts, check) in cases {
            match parse(&parts) {
                Ok(c) => panic!("{name}: accepted {c:?}"),
                Err(e) => {
                    assert!(check(&e), "{name}: unexpected {e:?}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn ca_and_device_baselines() {
        let mut p = org(b"87");
        p.subject = subject_der(&Subject::Ca {
            ou: Some("00"),
            cn: "R",
        });
        p.exts = vec![
            ext(&oid::KEY_USAGE, true, KU_CA),
            ext(&oid::BASIC_CONSTRAINTS, true, &seq(&[&[0x01, 0x01, 0xFF]])),
            ext(&oid::CERT_POLICIES, true, &policies()),
            ski(),
        ];
        let c = parse(&p).unwrap();
        assert_eq!(c.kind(), crate::CertKind::Authority);
        assert_eq!(c.path_len(), None);
        assert!(c.is_ca());

        let mut d = org(b"87");
        d.subject = vec![0x30, 0x00];
        d.exts.truncate(3);
        d.exts
            .push(ext(&oid::SAN, true, &san(&[0, 0xDB, 1, 2, 3, 4, 5, 6])));
        let c = parse(&d).unwrap();
        assert_eq!(c.kind(), crate::CertKind::Device);
        assert_eq!(c.eui(), Some(Eui64([0, 0xDB, 1, 2, 3, 4, 5, 6])));
    }
}
