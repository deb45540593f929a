//! Shared test helpers: fixture location, a generated 6.23.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `$ECOS_FIXTURES` or `../../../shared/fixtures` from the crate; `None` (with a
/// printed note) when absent.
pub fn fixtures() -> Option<PathBuf> {
    let p = match std::env::var_os("ECOS_FIXTURES") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    if p.join("duis").is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: DUIS fixtures not found at {} (set ECOS_FIXTURES)",
            p.display()
        );
        None
    }
}

/// Read a fixture file, or `None` when the fixtures are absent.
pub fn fixture(rel: &str) -> Option<Vec<u8>> {
    let p = fixtures()?.join(rel);
    Some(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// The IMMEDIATE 6.23 template as a string.
pub fn immediate_template() -> Option<String> {
    fixture("duis-signed/template_6.23_IMMEDIATE.xml")
        .map(|b| String::from_utf8(b).expect("template is UTF-8"))
}

/// An unsigned 6.23 from the test PKI's second organisation for the meter
/// 00-DB-12-34-56-78-90-A0 (RequestID counter 7), with this execution and
/// ImportMPxN, the organisation's DS and KA certificates as replacements.
pub fn org_b_request(
    pki: &ecos_smki::TestPki,
    execution: ecos_duis::Execution,
    mpxn: &str,
) -> ecos_duis::CosRequest {
    let org = &pki.organisations()[1];
    ecos_duis::CosRequest {
        schema_version: "5.4".to_string(),
        header: ecos_duis::RequestHeader {
            request_id: ecos_duis::RequestId::new(
                org.spec.eui,
                "00-DB-12-34-56-78-90-A0".parse().unwrap(),
                7,
            ),
            first_in_sequence: None,
            preceding_request_id: None,
            command_variant: ecos_duis::CommandVariant::new(1).unwrap(),
            service_reference: "6.23".to_string(),
            service_reference_variant: "6.23".to_string(),
        },
        body: ecos_duis::UpdateSecurityCredentialsCoS {
            execution,
            supplier_floor_seq_number: 0,
            supplier_prepayment_top_up_floor_seq_number: None,
            replacement_certificates: ecos_duis::SupplierReplacementCertificates {
                digital_signing: org.ds.cert.clone(),
                key_agreement: Some(org.ka.cert.clone()),
                key_agreement_top_up: None,
            },
            certification_path: vec![pki.issuing_ca().cert.clone()],
            apply_time_based_cpv_checks: true,
            import_mpxn: mpxn.to_string(),
        },
    }
}

/// `r` written and signed with the XML Sign key of the test PKI's second
/// organisation; the signed document and that key's certificate.
pub fn signed_by_org_b(
    pki: &ecos_smki::TestPki,
    r: &ecos_duis::CosRequest,
) -> (Vec<u8>, ecos_smki::Certificate) {
    let org = &pki.organisations()[1];
    let unsigned = ecos_duis::cos_request(r).unwrap();
    let cert = &org.xml_sign.cert;
    let signed = ecos_xmldsig::sign(
        &unsigned,
        &org.xml_sign.signer().unwrap(),
        &cert.issuer_rfc2253(),
        &cert.serial_decimal(),
    )
    .unwrap();
    (signed, cert.clone())
}
