//! Path validation over the fixture certificates, anchored at Z1 (partial chain).

use std::path::{Path, PathBuf};

use ecos_smki::{Certificate, PathError, PathPolicy, TrustStore, validate_path};

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if dir.join("zaz1/Z1-issuing-ca.pem").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: fixtures not found at {} (set ECOS_FIXTURES)",
            dir.display()
        );
        None
    }
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn z1_store(fx: &Path) -> TrustStore {
    let z1 = Certificate::load(fx.join("zaz1/Z1-issuing-ca.pem")).unwrap();
    TrustStore::with_anchors([z1])
}

/// The Z1-issued organisation certificates of both fixture directories.
fn z1_issued(fx: &Path) -> Vec<(String, Certificate)> {
    let mut out = Vec::new();
    for sub in ["zaz1", "keystore"] {
        let mut entries: Vec<_> = std::fs::read_dir(fx.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let chained = (sub == "zaz1" && name.starts_with("Z1") && name != "Z1-issuing-ca.pem")
                || (sub == "keystore"
                    && name.starts_with("90b3")
                    && !name.starts_with("90b3d51f30010008"));
            if chained && name.ends_with(".pem") {
                out.push((name, Certificate::load(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn z1_issued_fixtures_validate_at_pinned_instant() {
    let Some(fx) = fixtures() else { return };
    let store = z1_store(&fx);
    let certs = z1_issued(&fx);
    assert_eq!(certs.len(), 14 + 14, "Z1-issued fixture count");
    for (name, cert) in &certs {
        let path = validate_path(
            cert,
            &[],
            &store,
            at("2025-10-01T00:00:00Z"),
            &PathPolicy::test_organisation(),
            true,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(path.certificates().len(), 2, "{name}");
        assert_eq!(path.anchor().subject_rfc2253(), "CN=Z1,OU=07");
        assert_eq!(
            path.policies(),
            &["1.2.826.0.1.8641679.1.2.1.4".to_string()]
        );
    }
}

#[test]
fn z1_issued_fixtures_are_expired_today() {
    let Some(fx) = fixtures() else { return };
    let store = z1_store(&fx);
    let now = jiff::Timestamp::now();
    let mut expired = 0;
    for (name, cert) in z1_issued(&fx) {
        let r = validate_path(
            &cert,
            &[],
            &store,
            now,
            &PathPolicy::test_organisation(),
            true,
        );
        if cert.not_after() < now {
            assert!(
                matches!(&r, Err(PathError::Expired { not_after, .. }) if *not_after == cert.not_after()),
                "{name}: {r:?}"
            );
            expired += 1;
        } else {
            // Only the 2025 re-issue of the DSP XML-sign certificate (to 2035).
            assert_eq!(name, "Z1-accessControlBroker-dSPXmlSign.pem");
            r.unwrap();
        }
        // Without time checks the path validates regardless.
        validate_path(
            &cert,
            &[],
            &store,
            now,
            &PathPolicy::test_organisation(),
            false,
        )
        .unwrap_or_else(|e| panic!("{name} without time checks: {e}"));
    }
    if now > at("2026-01-10T00:00:00Z") {
        assert_eq!(expired, 27);
    }
}

#[test]
fn self_signed_2018_certificates_fail_with_the_reason() {
    let Some(fx) = fixtures() else { return };
    let store = z1_store(&fx);
    for f in [
        "zaz1/xml-sign-90B3D51F30010000-ds.pem",
        "zaz1/xml-sign-90B3D51F30020000-ds.pem",
        "zaz1/xml-sign-00DB123456780004-ds.pem",
        "zaz1/dsp-xml-sign-90B3D51F30000002-ds.pem",
        "keystore/90b3d51f30010008-ds.pem",
        "keystore/90b3d51f30010008-ka.pem",
    ] {
        let cert = Certificate::load(fx.join(f)).unwrap();
        let err = validate_path(
            &cert,
            &[],
            &store,
            at("2025-10-01T00:00:00Z"),
            &PathPolicy::test_organisation(),
            true,
        )
        .unwrap_err();
        assert!(
            matches!(&err, PathError::SelfSigned { issuer, .. } if issuer == "CN=Z1,OU=07"),
            "{f}: {err:?}"
        );
        assert!(err.to_string().contains("self-signed"), "{err}");
    }
}

#[test]
fn device_certificates_lack_their_ca() {
    let Some(fx) = fixtures() else { return };
    let store = z1_store(&fx);
    let cert = Certificate::load(fx.join("keystore/00db123456789001-ds.pem")).unwrap();
    let err = validate_path(
        &cert,
        &[],
        &store,
        at("2025-10-01T00:00:00Z"),
        &PathPolicy::test_device(),
        true,
    )
    .unwrap_err();
    assert!(
        matches!(&err, PathError::IssuerNotFound { issuer, .. } if issuer == "CN=E357"),
        "{err:?}"
    );
}

#[test]
fn wrong_policy_and_revocation_and_empty_store() {
    let Some(fx) = fixtures() else { return };
    let mut store = z1_store(&fx);
    let cert = Certificate::load(fx.join("zaz1/Z1b-supplier-ds.pem")).unwrap();
    let t = at("2025-10-01T00:00:00Z");
    assert!(matches!(
        validate_path(&cert, &[], &store, t, &PathPolicy::test_device(), true),
        Err(PathError::PolicyNotAllowed { .. })
    ));
    store.revocations_mut().add_certificate(&cert);
    assert!(matches!(
        validate_path(
            &cert,
            &[],
            &store,
            t,
            &PathPolicy::test_organisation(),
            true
        ),
        Err(PathError::Revoked { .. })
    ));
    assert!(matches!(
        validate_path(
            &cert,
            &[],
            &TrustStore::new(),
            t,
            &PathPolicy::default(),
            true
        ),
        Err(PathError::NoTrustAnchor)
    ));
    // Before the Z1b certificates' notBefore (2016-01-10).
    assert!(matches!(
        validate_path(
            &cert,
            &[],
            &z1_store(&fx),
            at("2016-01-01T00:00:00Z"),
            &PathPolicy::test_organisation(),
            true
        ),
        Err(PathError::NotYetValid { .. })
    ));
}
