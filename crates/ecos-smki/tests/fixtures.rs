//! Acceptance over the shared fixture certificates (`zaz1/`, `keystore/`).
//!
//! Reads `$ECOS_FIXTURES` or `../../../shared/fixtures`; skips with a message
//! when absent.

use std::path::{Path, PathBuf};

use ecos_smki::{
    CertError, CertKind, Certificate, Eui64, KeyAgreement, KeyUsage, P256PublicKey, Role,
    RoleError, Signer, SoftwareKeyAgreement, SoftwareSigner,
};

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if dir.join("zaz1").is_dir() && dir.join("keystore").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: fixtures not found at {} (set ECOS_FIXTURES)",
            dir.display()
        );
        None
    }
}

fn pem_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".pem") && !n.ends_with(".key.pem")
        })
        .collect();
    v.sort();
    v
}

const LEGACY_137: &str = "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem";
const BARE_PUBLIC_KEY: &str = "fffffffffffffffe-ka.pem";
const MISLABELLED: &str = "90b3d51f30000007-ka";

/// The public key of a private key file: sign-capable for DS, agree for KA.
fn key_public(path: &Path, usage: KeyUsage) -> P256PublicKey {
    let bytes = std::fs::read(path).unwrap();
    match usage {
        KeyUsage::KeyAgreement => SoftwareKeyAgreement::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .public_key()
            .clone(),
        _ => SoftwareSigner::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .public_key()
            .clone(),
    }
}

/// Expected (EUI, role) from a zaz1 file name.
fn zaz1_expectation(name: &str) -> (Eui64, Role) {
    let eui = |s: &str| s.parse::<Eui64>().unwrap();
    if let Some(rest) = name.strip_prefix("xml-sign-") {
        return (eui(&rest[..16]), Role::XmlSign);
    }
    if let Some(rest) = name.strip_prefix("dsp-xml-sign-") {
        return (eui(&rest[..16]), Role::DspXmlSign);
    }
    let party = name
        .trim_start_matches("Z1b-")
        .trim_start_matches("Z1-")
        .split('-')
        .next()
        .unwrap();
    let dsp = name.contains("dSPXmlSign");
    match party {
        "transitionalCoS" => (eui("90B3D51F30000004"), Role::TransitionalCos),
        "supplier" => (eui("90B3D51F30010000"), Role::Supplier),
        "supplier2" => (eui("90B3D51F30030000"), Role::Supplier),
        "accessControlBroker" if dsp => (eui("90B3D51F30000002"), Role::DspXmlSign),
        "accessControlBroker" => (eui("90B3D51F30000002"), Role::AccessControlBroker),
        "networkOperator" => (eui("90B3D51F30020000"), Role::NetworkOperator),
        "recovery" => (eui("90B3D51F30000001"), Role::Recovery),
        "wanProvider" => (eui("90B3D51F30000007"), Role::WanProvider),
        other => panic!("unexpected zaz1 file {name} ({other})"),
    }
}

#[test]
fn zaz1_certificates_parse_and_match_names_and_keys() {
    let Some(fx) = fixtures() else { return };
    let dir = fx.join("zaz1");
    let mut checked = 0;
    for path in pem_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".pem");
        if name == "Z1-issuing-ca.pem" {
            let ca = Certificate::load(&path).unwrap();
            assert_eq!(ca.kind(), CertKind::Authority);
            assert_eq!(ca.role(), Some(Role::IssuingAuthority));
            assert_eq!(ca.key_usage(), KeyUsage::CertSign);
            assert_eq!(ca.subject_rfc2253(), "CN=Z1,OU=07");
            assert_eq!(ca.issuer_rfc2253(), "CN=ZA,OU=00");
            assert_eq!(
                ca.ski(),
                Some(&hex::decode("4F5688D7EC933BE2").unwrap()[..])
            );
            assert_eq!(
                ca.aki(),
                Some(&hex::decode("48CF1B32697C4669").unwrap()[..])
            );
            assert_eq!(
                hex::encode_upper(ca.serial()),
                "71872BDBC82789BC1401CE01BA06ADA3"
            );
            assert_eq!(ca.path_len(), Some(0));
            assert_eq!(ca.not_after().to_string(), "2040-10-28T23:59:59Z");
            assert_eq!(ca.eui(), None);
            checked += 1;
            continue;
        }
        if name == LEGACY_137 {
            let err = Certificate::load(&path).unwrap_err();
            assert!(
                matches!(&err, CertError::Ou { ou, reason: RoleError::Syntax(_) } if ou == "137"),
                "{err:?}"
            );
            assert!(err.to_string().contains("OU \"137\""), "{err}");
            checked += 1;
            continue;
        }
        let cert = Certificate::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (eui, role) = zaz1_expectation(stem);
        assert_eq!(cert.kind(), CertKind::Organisation, "{name}");
        assert_eq!(cert.eui(), Some(eui), "{name}");
        assert_eq!(cert.role(), Some(role), "{name}");
        assert_eq!(cert.key_usage(), KeyUsage::DigitalSignature, "{name}");
        assert_eq!(cert.issuer_rfc2253(), "CN=Z1,OU=07", "{name}");
        assert_eq!(
            cert.policies(),
            &["1.2.826.0.1.8641679.1.2.1.4".to_string()],
            "{name}"
        );
        assert_eq!(cert.serial().len(), 16, "{name}");
        assert_eq!(
            cert.ski().map(|s| s[0] >> 4),
            Some(4),
            "{name}: SKI first nibble"
        );
        match stem {
            "Z1-supplier-ds" | "Z1b-supplier-ds" => {
                assert_eq!(cert.common_name(), Some("GITTESTSUPPLIER"))
            }
            "Z1-supplier2-ds" => assert_eq!(cert.common_name(), Some("GITTESTSUPPLIER2")),
            _ => assert_eq!(cert.common_name(), None, "{name}"),
        }
        // Private keys: X.key (DER PKCS#8) and, where present, X.key.pem.
        for key in [
            dir.join(format!("{stem}.key")),
            dir.join(format!("{stem}.key.pem")),
        ] {
            if key.exists() {
                assert_eq!(
                    &key_public(&key, cert.key_usage()),
                    cert.public_key(),
                    "{} does not match {name}",
                    key.display()
                );
            }
        }
        assert!(
            dir.join(format!("{stem}.key")).exists(),
            "{name} has no key"
        );
        checked += 1;
    }
    assert_eq!(checked, 20, "zaz1 certificate count");
}

#[test]
fn zaz1_org_certificate_details() {
    let Some(fx) = fixtures() else { return };
    let c = Certificate::load(fx.join("zaz1/Z1-supplier-ds.pem")).unwrap();
    assert_eq!(
        c.subject_rfc2253(),
        "2.5.4.45=#03090090b3d51f30010000,OU=02,CN=GITTESTSUPPLIER"
    );
    assert_eq!(c.aki(), Some(&hex::decode("4F5688D7EC933BE2").unwrap()[..]));
    assert_eq!(c.ski(), Some(&hex::decode("44899792D196F4B8").unwrap()[..]));
    assert_eq!(
        u128::from_str_radix(&hex::encode(c.serial()), 16)
            .unwrap()
            .to_string(),
        c.serial_decimal()
    );
    assert_eq!(c.not_after().to_string(), "2025-10-29T23:59:59Z");
    assert_eq!(c.issuer_der()[0], 0x30);
    assert_eq!(c.subject_der().len(), 2 + 59);
    assert_eq!(Certificate::from_der(c.der()).unwrap(), c, "DER round trip");
    assert_eq!(c.sha256().len(), 32);
    // The certificate is signed by Z1.
    let z1 = Certificate::load(fx.join("zaz1/Z1-issuing-ca.pem")).unwrap();
    c.verify_signature(z1.public_key()).unwrap();
    assert!(c.verify_signature(c.public_key()).is_err());
}

/// Keystore file names: `<eui>-<ds|ka|pp-ka>.pem` with `.key` alongside.
#[test]
fn keystore_certificates_parse_and_match_names_and_keys() {
    let Some(fx) = fixtures() else { return };
    let dir = fx.join("keystore");
    let (mut devices, mut orgs) = (0, 0);
    for path in pem_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".pem");
        if name == BARE_PUBLIC_KEY {
            let err = Certificate::load(&path).unwrap_err();
            assert!(matches!(err, CertError::Pem(_)), "{err:?}");
            assert!(err.to_string().contains("PUBLIC KEY"), "{err}");
            continue;
        }
        let cert = Certificate::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let eui: Eui64 = stem[..16].parse().unwrap();
        let usage = if stem.ends_with("-ds") {
            KeyUsage::DigitalSignature
        } else {
            assert!(stem.ends_with("-ka"), "{name}");
            KeyUsage::KeyAgreement
        };
        assert_eq!(cert.key_usage(), usage, "{name}");
        if stem.starts_with("00db") {
            assert_eq!(cert.kind(), CertKind::Device, "{name}");
            assert_eq!(cert.eui(), Some(eui), "{name}");
            assert_eq!(cert.role(), None);
            assert_eq!(cert.subject_rfc2253(), "");
            assert_eq!(cert.issuer_rfc2253(), "CN=E357");
            assert_eq!(
                cert.policies(),
                &["1.2.826.0.1.1800000.1.2.1.4".to_string()]
            );
            assert_eq!(cert.not_after(), jiff::Timestamp::MAX, "no expiry");
            assert_eq!(
                cert.aki(),
                Some(&hex::decode("47D40AF3412904A0").unwrap()[..])
            );
            devices += 1;
            continue;
        }
        assert_eq!(cert.kind(), CertKind::Organisation, "{name}");
        let want_role = match &stem[..16] {
            "90b3d51f30000001" => Role::Recovery,
            "90b3d51f30000002" => Role::AccessControlBroker,
            "90b3d51f30000004" => Role::TransitionalCos,
            "90b3d51f30000007" => Role::WanProvider,
            "90b3d51f30010008" => Role::LoadController,
            "90b3d51f30020000" => Role::NetworkOperator,
            _ => Role::Supplier,
        };
        let key = dir.join(format!("{stem}.key"));
        if stem == MISLABELLED {
            // smki.md §4.4: byte-identical to Supplier 2's KA credential.
            assert_eq!(cert.eui(), Some("90B3D51F30030000".parse().unwrap()));
            assert_eq!(cert.role(), Some(Role::Supplier));
            let s2 = Certificate::load(dir.join("90b3d51f30030000-ka.pem")).unwrap();
            assert_eq!(cert, s2);
            assert_eq!(&key_public(&key, usage), cert.public_key());
            orgs += 1;
            continue;
        }
        assert_eq!(cert.eui(), Some(eui), "{name}");
        assert_eq!(cert.role(), Some(want_role), "{name}");
        assert!(key.exists(), "{name}: no key");
        assert_eq!(
            &key_public(&key, usage),
            cert.public_key(),
            "{name}: key does not match"
        );
        orgs += 1;
    }
    assert_eq!(devices, 400);
    assert_eq!(orgs, 16);
}

/// Keys without certificates are still valid P-256 keys.
#[test]
fn keystore_orphan_keys_load() {
    let Some(fx) = fixtures() else { return };
    for k in ["123456789abcdef0-ka.key", "abababababababab-ka.key"] {
        let bytes = std::fs::read(fx.join("keystore").join(k)).unwrap();
        let ka = SoftwareKeyAgreement::from_bytes(&bytes).unwrap();
        assert_eq!(ka.public_key().as_bytes()[0], 4);
    }
}

/// A second parser (x509-parser) agrees on every fixture certificate we
/// accept, and so does the key-only read (`Certificate::public_key_of`), from
/// the DER and from the PEM file.
#[test]
fn x509_parser_agrees_on_fixtures() {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Some(fx) = fixtures() else { return };
    let mut n = 0;
    for sub in ["zaz1", "keystore"] {
        for path in pem_files(&fx.join(sub)) {
            let Ok(c) = Certificate::load(&path) else {
                continue;
            };
            let (rest, x) = X509Certificate::from_der(c.der()).unwrap();
            assert!(rest.is_empty());
            let name = path.display();
            assert_eq!(
                x.raw_serial()
                    .iter()
                    .copied()
                    .skip_while(|&b| b == 0)
                    .collect::<Vec<_>>(),
                c.serial(),
                "{name}"
            );
            assert_eq!(
                x.public_key().subject_public_key.data.as_ref(),
                c.public_key().as_bytes(),
                "{name}"
            );
            assert_eq!(
                x.validity().not_before.timestamp(),
                c.not_before().as_second(),
                "{name}"
            );
            assert_eq!(x.subject().as_raw(), c.subject_der(), "{name}");
            assert_eq!(x.issuer().as_raw(), c.issuer_der(), "{name}");
            assert_eq!(x.tbs_certificate.as_ref(), c.tbs_der(), "{name}");
            let pem = std::fs::read(&path).unwrap();
            for bytes in [c.der(), &pem[..]] {
                let key = Certificate::public_key_of(bytes).unwrap();
                assert_eq!(key, *c.public_key(), "{name}");
            }
            n += 1;
        }
    }
    assert_eq!(n, 19 + 416);
}
