//! The generated test PKI round-trips: every certificate parses, chains,
//! carries what the index says; keys match; same seed, same bytes; openssl
//! accepts the chains.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use ecos_smki::testpki::{Credential, Index};
use ecos_smki::{
    CertKind, Certificate, Eui64, KeyAgreement, KeyUsage, MpidRules, Mpids, PathError, PathPolicy,
    Role, Signer, TestPki, TestPkiSpec, TrustStore, validate_path,
};

fn demo() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(&TestPkiSpec::demo()).unwrap())
}

fn t(pki: &TestPki, days: i64) -> jiff::Timestamp {
    pki.spec()
        .not_before
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap()
}

fn org_credentials(pki: &TestPki) -> Vec<(&Credential, Role, KeyUsage)> {
    let mut v = Vec::new();
    for o in pki.organisations() {
        v.push((&o.xml_sign, Role::XmlSign, KeyUsage::DigitalSignature));
        v.push((&o.ds, Role::Supplier, KeyUsage::DigitalSignature));
        v.push((&o.ka, Role::Supplier, KeyUsage::KeyAgreement));
        v.push((&o.pp_ka, Role::Supplier, KeyUsage::KeyAgreement));
    }
    v.push((
        pki.tcos(),
        Role::TransitionalCos,
        KeyUsage::DigitalSignature,
    ));
    v.push((
        pki.ecos(),
        Role::TransitionalCos,
        KeyUsage::DigitalSignature,
    ));
    v.push((
        pki.acb_ka(),
        Role::AccessControlBroker,
        KeyUsage::KeyAgreement,
    ));
    v.push((
        pki.dsp_xml_sign(),
        Role::DspXmlSign,
        KeyUsage::DigitalSignature,
    ));
    v
}

fn key_public(c: &Credential) -> ecos_smki::P256PublicKey {
    match c.cert.key_usage() {
        KeyUsage::KeyAgreement => c.key_agreement().unwrap().public_key().clone(),
        _ => c.signer().unwrap().public_key().clone(),
    }
}

#[test]
fn cas_have_the_profile() {
    let pki = demo();
    let root = &pki.root().cert;
    assert_eq!(root.kind(), CertKind::Authority);
    assert_eq!(root.role(), Some(Role::Root));
    assert!(root.is_self_issued());
    root.verify_signature(root.public_key()).unwrap();
    let ca = &pki.issuing_ca().cert;
    assert_eq!(ca.role(), Some(Role::IssuingAuthority));
    assert_eq!(ca.subject_rfc2253(), "CN=Z1T,OU=07");
    assert_eq!(ca.path_len(), Some(0));
    assert_eq!(ca.aki(), root.ski());
    let dca = &pki.device_ca().cert;
    assert_eq!(dca.kind(), CertKind::Authority);
    assert_eq!(dca.role(), None);
    assert_eq!(dca.subject_rfc2253(), "CN=DT");
    for c in [root, ca, dca] {
        assert_eq!(c.key_usage(), KeyUsage::CertSign);
        assert_eq!(c.ski().unwrap().len(), 8);
        assert_eq!(c.ski().unwrap()[0] >> 4, 4);
    }
}

#[test]
fn organisation_credentials_parse_chain_and_match_keys() {
    let pki = demo();
    let store = pki.trust_store();
    let partial = TrustStore::with_anchors([pki.issuing_ca().cert.clone()]);
    let creds = org_credentials(pki);
    assert_eq!(creds.len(), 3 * 4 + 4);
    for (c, role, usage) in creds {
        let cert = &c.cert;
        assert_eq!(cert.kind(), CertKind::Organisation, "{}", c.label());
        assert_eq!(cert.role(), Some(role), "{}", c.label());
        assert_eq!(cert.key_usage(), usage, "{}", c.label());
        assert_eq!(cert.serial().len(), 16);
        assert_eq!(
            cert.policies(),
            &["1.2.826.0.1.8641679.1.2.1.4".to_string()]
        );
        assert_eq!(cert.issuer_rfc2253(), "CN=Z1T,OU=07");
        assert_eq!(
            Certificate::from_pem(cert.to_pem().as_bytes()).unwrap(),
            *cert
        );
        assert_eq!(&key_public(c), cert.public_key(), "{}", c.label());
        for s in [&store, &partial] {
            let p = validate_path(
                cert,
                &[],
                s,
                t(pki, 1),
                &PathPolicy::test_organisation(),
                true,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", c.label()));
            assert_eq!(p.leaf(), cert);
        }
    }
    // TCoS and ECoS: same role and EUI, different keys.
    assert_eq!(pki.tcos().cert.eui(), pki.ecos().cert.eui());
    assert_ne!(pki.tcos().cert.public_key(), pki.ecos().cert.public_key());
    assert_ne!(pki.tcos().cert.ski(), pki.ecos().cert.ski());
}

#[test]
fn supplier_mpids_and_names() {
    let pki = demo();
    let rules = MpidRules::default();
    let want = [
        ("Supplier A", Some("ACEE"), Some("ACG")),
        ("Supplier B", Some("BDEE"), Some("BDG")),
        ("Supplier C", Some("CFEE"), None),
    ];
    assert_eq!(pki.organisations().len(), want.len());
    for (o, (name, e, g)) in pki.organisations().iter().zip(want) {
        assert_eq!(o.spec.name, name);
        let m = Mpids::from_certificate(&o.xml_sign.cert, &rules).unwrap();
        assert_eq!(m.electricity.as_deref(), e);
        assert_eq!(m.gas.as_deref(), g);
        assert_eq!(o.ds.cert.common_name(), Some(name));
        assert_eq!(o.ka.cert.common_name(), None);
        for c in [&o.xml_sign, &o.ds, &o.ka, &o.pp_ka] {
            assert_eq!(c.cert.eui(), Some(o.spec.eui));
        }
        assert_ne!(o.ka.cert.public_key(), o.pp_ka.cert.public_key());
    }
    let a: Eui64 = "90-B3-D5-1F-30-01-00-00".parse().unwrap();
    assert_eq!(pki.organisation(a).unwrap().spec.name, "Supplier A");
}

#[test]
fn devices_parse_chain_and_agree() {
    let pki = demo();
    let store = pki.trust_store();
    assert_eq!(pki.devices().len(), 4);
    for d in pki.devices() {
        for (c, usage) in [
            (&d.ds, KeyUsage::DigitalSignature),
            (&d.ka, KeyUsage::KeyAgreement),
        ] {
            assert_eq!(c.cert.kind(), CertKind::Device);
            assert_eq!(c.cert.eui(), Some(d.eui));
            assert_eq!(c.cert.key_usage(), usage);
            assert_eq!(c.cert.subject_rfc2253(), "");
            assert_eq!(c.cert.not_after(), jiff::Timestamp::MAX);
            assert_eq!(&key_public(c), c.cert.public_key());
            let p = validate_path(
                &c.cert,
                &[],
                &store,
                t(pki, 1),
                &PathPolicy::test_device(),
                true,
            )
            .unwrap();
            assert_eq!(p.certificates().len(), 3);
            // Organisation policy only: refused.
            assert!(matches!(
                validate_path(
                    &c.cert,
                    &[],
                    &store,
                    t(pki, 1),
                    &PathPolicy::test_organisation(),
                    true
                ),
                Err(PathError::PolicyNotAllowed { .. })
            ));
        }
        // ACB KA with device KA: both sides derive the same secret.
        let acb = pki.acb_ka().key_agreement().unwrap();
        let dev = d.ka.key_agreement().unwrap();
        assert_eq!(
            acb.agree(dev.public_key()).unwrap(),
            dev.agree(acb.public_key()).unwrap()
        );
    }
    // Signing with a device DS key verifies with its certificate.
    let d = &pki.devices()[0];
    let sig = d.ds.signer().unwrap().sign(b"response").unwrap();
    d.ds.cert.public_key().verify(b"response", &sig).unwrap();
}

#[test]
fn same_seed_same_bytes_and_devices_are_independent() {
    let a = demo();
    let b = TestPki::generate(&TestPkiSpec::demo()).unwrap();
    assert_eq!(a.root().cert.der(), b.root().cert.der());
    assert_eq!(a.root().key, b.root().key);
    for (x, y) in org_credentials(a).iter().zip(org_credentials(&b)) {
        assert_eq!(x.0.cert.der(), y.0.cert.der());
        assert_eq!(x.0.key, y.0.key);
    }
    let d0 = &a.devices()[2];
    let minted = a.mint_device(d0.eui).unwrap();
    assert_eq!(minted.ds.cert.der(), d0.ds.cert.der());
    assert_eq!(minted.ka.key, d0.ka.key);

    // Parallel minting equals one-by-one minting, in order.
    let euis: Vec<Eui64> = (0..40u64)
        .map(|i| Eui64::from_u64(0x00DB_0000_0000_0000 | i))
        .collect();
    let many = a.mint_devices(&euis).unwrap();
    assert_eq!(many.len(), 40);
    for (i, d) in many.iter().enumerate() {
        assert_eq!(d.eui, euis[i]);
        assert_eq!(d.ds.cert.eui(), Some(euis[i]));
    }
    assert_eq!(
        many[17].ka.cert.der(),
        a.mint_device(euis[17]).unwrap().ka.cert.der()
    );

    // A different device list does not change the other credentials.
    let mut spec = TestPkiSpec::demo();
    spec.devices.truncate(1);
    let c = TestPki::generate(&spec).unwrap();
    assert_eq!(c.ecos().cert.der(), a.ecos().cert.der());
    assert_eq!(c.devices()[0].ds.cert.der(), a.devices()[0].ds.cert.der());

    let mut other = TestPkiSpec::demo();
    other.seed = 2;
    let o = TestPki::generate(&other).unwrap();
    assert_ne!(o.root().cert.der(), a.root().cert.der());
    assert_ne!(o.ecos().key, a.ecos().key);
}

#[test]
fn path_errors_are_distinct() {
    let pki = demo();
    let store = pki.trust_store();
    let leaf = &pki.organisations()[0].xml_sign.cert;
    let pol = PathPolicy::test_organisation();
    assert!(matches!(
        validate_path(leaf, &[], &store, t(pki, -1), &pol, true),
        Err(PathError::NotYetValid { .. })
    ));
    assert!(matches!(
        validate_path(leaf, &[], &store, t(pki, 365 * 11), &pol, true),
        Err(PathError::Expired { .. })
    ));
    validate_path(leaf, &[], &store, t(pki, 365 * 11), &pol, false).unwrap();

    // The issuing CA revoked: the leaf fails on it.
    let mut revoked = store.clone();
    revoked
        .revocations_mut()
        .add_certificate(&pki.issuing_ca().cert);
    assert!(matches!(
        validate_path(leaf, &[], &revoked, t(pki, 1), &pol, true),
        Err(PathError::Revoked { subject, .. }) if subject == "CN=Z1T,OU=07"
    ));

    // Only the root is trusted and the issuing CA is unknown: it can be
    // supplied as an extra intermediate.
    let root_only = TrustStore::with_anchors([pki.root().cert.clone()]);
    assert!(matches!(
        validate_path(leaf, &[], &root_only, t(pki, 1), &pol, true),
        Err(PathError::IssuerNotFound { .. })
    ));
    let p = validate_path(
        leaf,
        &[pki.issuing_ca().cert.clone()],
        &root_only,
        t(pki, 1),
        &pol,
        true,
    )
    .unwrap();
    assert_eq!(p.anchor(), &pki.root().cert);

    // Another PKI with the same CA names: key identifiers differ; without
    // the key-identifier rule, the signature fails.
    let mut spec = TestPkiSpec::demo();
    spec.seed = 99;
    let foreign = TestPki::generate(&spec).unwrap();
    let fleaf = &foreign.organisations()[0].xml_sign.cert;
    assert!(matches!(
        validate_path(fleaf, &[], &store, t(pki, 1), &pol, true),
        Err(PathError::KeyIdentifierMismatch { .. })
    ));
    let lax = PathPolicy {
        require_key_identifiers: false,
        ..pol.clone()
    };
    assert!(matches!(
        validate_path(fleaf, &[], &store, t(pki, 1), &lax, true),
        Err(PathError::BadSignature { .. })
    ));

    // A policy set that none of the path carries.
    let none = PathPolicy {
        allowed_policies: vec!["1.2.3.4".into()],
        ..pol.clone()
    };
    assert!(matches!(
        validate_path(leaf, &[], &store, t(pki, 1), &none, true),
        Err(PathError::PolicyNotAllowed { .. })
    ));

    // A root as leaf that is its own anchor.
    validate_path(&pki.root().cert, &[], &store, t(pki, 1), &pol, true).unwrap();
}

#[test]
fn spec_rejects_duplicates() {
    let mut spec = TestPkiSpec::demo();
    spec.devices.push(spec.devices[0]);
    assert!(TestPki::generate(&spec).is_err());
    let mut spec = TestPkiSpec::demo();
    let dup = spec.suppliers[0].clone();
    spec.suppliers.push(dup);
    assert!(TestPki::generate(&spec).is_err());
}

#[test]
fn spec_deserialises_with_defaults() {
    let spec: TestPkiSpec =
        serde_json::from_str(r#"{"seed": 7, "devices": ["00-DB-12-34-56-78-90-A0"]}"#).unwrap();
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.devices.len(), 1);
    assert_eq!(spec.suppliers.len(), 3);
}

fn read_index(dir: &Path) -> Index {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn written_directory_round_trips_through_the_index() {
    let pki = demo();
    let dir = tempfile::tempdir().unwrap();
    let written = pki.write_to(dir.path()).unwrap();
    let index = read_index(dir.path());
    assert_eq!(index, written);
    assert_eq!(index.entries.len(), 3 + 3 * 4 + 4 + 4 * 2);
    let store = pki.trust_store();
    for e in &index.entries {
        let cert = Certificate::load(dir.path().join(&e.certificate)).unwrap();
        assert!(e.describes(&cert), "{}", e.certificate);
        let key = std::fs::read(dir.path().join(&e.key)).unwrap();
        assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let public = if cert.key_usage() == KeyUsage::KeyAgreement {
            ecos_smki::SoftwareKeyAgreement::from_bytes(&key)
                .unwrap()
                .public_key()
                .clone()
        } else {
            ecos_smki::SoftwareSigner::from_bytes(&key)
                .unwrap()
                .public_key()
                .clone()
        };
        assert_eq!(&public, cert.public_key(), "{}", e.key);
        let policy = if cert.kind() == CertKind::Device || e.credential == "device-ca" {
            PathPolicy::test_device()
        } else {
            PathPolicy::test_organisation()
        };
        validate_path(&cert, &[], &store, t(pki, 1), &policy, true)
            .unwrap_or_else(|err| panic!("{}: {err}", e.certificate));
        match e.credential.as_str() {
            "xml-sign" => assert_eq!(cert.role(), Some(Role::XmlSign)),
            "supplier-ds" | "supplier-ka" | "supplier-pp-ka" => {
                assert_eq!(cert.role(), Some(Role::Supplier))
            }
            "tcos-ds" | "ecos-ds" => assert_eq!(cert.role(), Some(Role::TransitionalCos)),
            "acb-ka" => assert_eq!(cert.role(), Some(Role::AccessControlBroker)),
            "dsp-xml-sign" => assert_eq!(cert.role(), Some(Role::DspXmlSign)),
            "device-ds" | "device-ka" => assert_eq!(cert.kind(), CertKind::Device),
            "root" | "issuing-ca" | "device-ca" => assert_eq!(cert.kind(), CertKind::Authority),
            other => panic!("unexpected credential {other}"),
        }
        if e.credential == "xml-sign" {
            assert!(e.common_name.is_some());
        }
    }
    // Writing twice gives identical bytes.
    let dir2 = tempfile::tempdir().unwrap();
    TestPki::generate(&TestPkiSpec::demo())
        .unwrap()
        .write_to(dir2.path())
        .unwrap();
    for e in &index.entries {
        for f in [&e.certificate, &e.key] {
            assert_eq!(
                std::fs::read(dir.path().join(f)).unwrap(),
                std::fs::read(dir2.path().join(f)).unwrap(),
                "{f}"
            );
        }
    }
}

#[test]
fn x509_parser_agrees() {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let pki = demo();
    let mut all: Vec<&Certificate> = vec![
        &pki.root().cert,
        &pki.issuing_ca().cert,
        &pki.device_ca().cert,
    ];
    all.extend(org_credentials(pki).into_iter().map(|(c, _, _)| &c.cert));
    all.extend(pki.devices().iter().flat_map(|d| [&d.ds.cert, &d.ka.cert]));
    for c in all {
        let (rest, x) = X509Certificate::from_der(c.der()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(x.raw_serial(), c.serial());
        assert_eq!(
            x.subject().to_string().is_empty(),
            c.subject_rfc2253().is_empty()
        );
        assert_eq!(
            x.validity().not_before.timestamp(),
            c.not_before().as_second()
        );
        let ku = x.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert_eq!(
            x.public_key().subject_public_key.data.as_ref(),
            c.public_key().as_bytes()
        );
    }
}

fn openssl() -> Option<()> {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => Some(()),
        _ => {
            eprintln!("SKIP: openssl not found; chain not checked by openssl");
            None
        }
    }
}

fn openssl_verify(dir: &Path, args: &[&str], leaf: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .args(args)
        .arg(dir.join(leaf))
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn openssl_verifies_the_generated_chains() {
    if openssl().is_none() {
        return;
    }
    let pki = demo();
    let dir = tempfile::tempdir().unwrap();
    let index = pki.write_to(dir.path()).unwrap();
    let attime = t(pki, 1).as_second().to_string();
    let org_policy = "1.2.826.0.1.8641679.1.2.1.4";
    let dev_policy = "1.2.826.0.1.1800000.1.2.1.4";
    for e in &index.entries {
        let (ca, policy) = match e.credential.as_str() {
            "root" | "issuing-ca" | "device-ca" => continue,
            "device-ds" | "device-ka" => ("ca/device-ca.pem", dev_policy),
            _ => ("ca/issuing-ca.pem", org_policy),
        };
        // Full chain to the root, with the policy required.
        let (ok, text) = openssl_verify(
            dir.path(),
            &[
                "-CAfile",
                "ca/root.pem",
                "-untrusted",
                ca,
                "-attime",
                &attime,
                "-policy",
                policy,
                "-explicit_policy",
            ],
            &e.certificate,
        );
        assert!(ok, "{}: {text}", e.certificate);
        // Partial chain anchored at the issuing CA.
        let (ok, text) = openssl_verify(
            dir.path(),
            &["-partial_chain", "-CAfile", ca, "-attime", &attime],
            &e.certificate,
        );
        assert!(ok, "{} (partial chain): {text}", e.certificate);
    }
    // And openssl refuses a leaf against the wrong policy.
    let leaf = &index
        .entries
        .iter()
        .find(|e| e.credential == "xml-sign")
        .unwrap()
        .certificate;
    let (ok, _) = openssl_verify(
        dir.path(),
        &[
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/issuing-ca.pem",
            "-attime",
            &attime,
            "-policy",
            dev_policy,
            "-explicit_policy",
        ],
        leaf,
    );
    assert!(!ok, "openssl accepted the wrong policy");
}
