//! Self-contained (no fixtures): 6.23 requests built from a generated test
//! PKI are written and read back identically, for random field values.

use std::sync::OnceLock;

use ecos_duis::*;
use ecos_smki::{Certificate, Eui64, TestPki, TestPkiSpec};
use jiff::Timestamp;
use proptest::prelude::*;

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(&TestPkiSpec::demo()).expect("test PKI"))
}

fn certs() -> (Certificate, Certificate, Certificate, Vec<Certificate>) {
    let org = &pki().organisations()[1];
    (
        org.ds.cert.clone(),
        org.ka.cert.clone(),
        org.pp_ka.cert.clone(),
        vec![pki().issuing_ca().cert.clone(), pki().root().cert.clone()],
    )
}

fn request(
    header: RequestHeader,
    execution: Execution,
    floors: (u64, Option<u64>),
    ka: (bool, bool),
    path_len: usize,
    cpv: bool,
    mpxn: String,
) -> CosRequest {
    let (ds, k, pp, path) = certs();
    let path = path.into_iter().cycle().take(path_len).collect();
    CosRequest {
        schema_version: "5.4".to_string(),
        header,
        body: UpdateSecurityCredentialsCoS {
            execution,
            supplier_floor_seq_number: floors.0,
            supplier_prepayment_top_up_floor_seq_number: floors.1,
            replacement_certificates: SupplierReplacementCertificates {
                digital_signing: ds,
                key_agreement: ka.0.then_some(k),
                key_agreement_top_up: ka.1.then_some(pp),
            },
            certification_path: path,
            apply_time_based_cpv_checks: cpv,
            import_mpxn: mpxn,
        },
    }
}

fn header(counter: u64, cv: u8) -> RequestHeader {
    RequestHeader {
        request_id: RequestId::new(
            "90-B3-D5-1F-30-03-00-00".parse().unwrap(),
            "00-DB-12-34-56-78-90-A0".parse().unwrap(),
            counter,
        ),
        first_in_sequence: None,
        preceding_request_id: None,
        command_variant: CommandVariant::new(cv).unwrap(),
        service_reference: "6.23".to_string(),
        service_reference_variant: "6.23".to_string(),
    }
}

#[test]
fn generated_request_round_trips() {
    let fd: Timestamp = "2030-01-02T00:00:00Z".parse().unwrap();
    for execution in [
        Execution::Immediate,
        Execution::FutureDated(fd),
        Execution::Cancellation,
    ] {
        let r = request(
            header(1006, 1),
            execution,
            (7, Some(8)),
            (true, true),
            2,
            false,
            "1312345678333".to_string(),
        );
        let bytes = cos_request(&r).unwrap();
        let back = read_request(&bytes, &Limits::default()).unwrap();
        assert_eq!(back, DuisRequest::UpdateSecurityCredentialsCoS(Box::new(r)));
    }
}

#[test]
fn generated_request_rejects_a_non_smki_certificate() {
    let r = request(
        header(1, 1),
        Execution::Immediate,
        (0, None),
        (false, false),
        1,
        true,
        "1".into(),
    );
    let text = String::from_utf8(cos_request(&r).unwrap()).unwrap();
    // replace the DS certificate with base64 of a DER SEQUENCE that is no certificate
    let open = "<sr:DigitalSigningCertificate>";
    let a = text.find(open).unwrap() + open.len();
    let b = a + text[a..].find('<').unwrap();
    let doc = format!("{}MAMCAQE={}", &text[..a], &text[b..]);
    let e = read_request(doc.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, DuisError::InvalidValue { path, reason: ValueError::Certificate(_), .. }
            if path == "/Request/Body/UpdateSecurityCredentialsCoS/SupplierReplacementCertificates/DigitalSigningCertificate"),
        "{e:?}"
    );
}

#[test]
fn writer_refuses_what_the_reader_would_reject() {
    let mut r = request(
        header(1, 1),
        Execution::Immediate,
        (0, None),
        (false, false),
        1,
        true,
        "1".into(),
    );
    r.body.import_mpxn = "12345678901234".into();
    assert!(cos_request(&r).is_err());
    r.body.import_mpxn = "1".into();
    r.body.supplier_floor_seq_number = u64::MAX;
    assert!(cos_request(&r).is_err());
    r.body.supplier_floor_seq_number = 0;
    r.body.certification_path.clear();
    assert!(cos_request(&r).is_err());
    let mut r = request(
        header(1, 1),
        Execution::Immediate,
        (0, None),
        (false, false),
        1,
        true,
        "1".into(),
    );
    r.header.service_reference_variant = "6.15.1".into();
    assert!(cos_request(&r).is_err());
}

fn execution() -> impl Strategy<Value = Execution> {
    prop_oneof![
        Just(Execution::Immediate),
        Just(Execution::Cancellation),
        // millisecond precision: the writer writes milliseconds
        (946_684_800_000i64..32_503_680_000_000i64)
            .prop_map(|ms| { Execution::FutureDated(Timestamp::from_millisecond(ms).unwrap()) }),
    ]
}

fn eui() -> impl Strategy<Value = Eui64> {
    any::<u64>().prop_map(Eui64::from_u64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_request_round_trips(
        ids in (eui(), eui(), any::<u64>()),
        cv in 1u8..=9,
        first in proptest::option::of(any::<bool>()),
        preceding in proptest::option::of((eui(), eui(), any::<u64>())),
        execution in execution(),
        floor in 0u64..=MAX_FLOOR_SEQ_NUMBER,
        topup in proptest::option::of(0u64..=MAX_FLOOR_SEQ_NUMBER),
        ka in (any::<bool>(), any::<bool>()),
        path_len in 1usize..=3,
        cpv in any::<bool>(),
        mpxn in "[0-9A-Za-z <>&\"'\r\n\té€]{1,13}",
    ) {
        prop_assume!(execution != Execution::FutureDated(cancellation_sentinel()));
        let mut h = header(ids.2, cv);
        h.request_id = RequestId::new(ids.0, ids.1, ids.2);
        h.first_in_sequence = first;
        h.preceding_request_id = preceding.map(|(a, b, c)| RequestId::new(a, b, c));
        let r = request(h, execution, (floor, topup), ka, path_len, cpv, mpxn);
        let bytes = cos_request(&r).unwrap();
        let back = read_request(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(back, DuisRequest::UpdateSecurityCredentialsCoS(Box::new(r)));
    }
}

/// The pipeline: a supplier writes and signs (ecos-xmldsig), the ECoS party
/// verifies (ecos-xmldsig) and reads the verified content (this crate), both
/// from bytes and from the tree the verifier's hardened parser built.
#[test]
fn sign_verify_then_read() {
    let org = &pki().organisations()[1];
    let r = request(
        header(42, 1),
        Execution::FutureDated("2031-06-01T12:00:00.250Z".parse().unwrap()),
        (3, None),
        (true, false),
        1,
        true,
        "2000000000".to_string(),
    );
    let unsigned = cos_request(&r).unwrap();
    let signer = org.xml_sign.signer().unwrap();
    let cert = &org.xml_sign.cert;
    let signed = ecos_xmldsig::sign(
        &unsigned,
        &signer,
        &cert.issuer_rfc2253(),
        &cert.serial_decimal(),
    )
    .unwrap();
    let limits = ecos_xmldsig::Limits::default();
    let verified = ecos_xmldsig::verify(&signed, &limits, |issuer, serial| {
        (issuer == cert.issuer_rfc2253() && serial == cert.serial_decimal())
            .then(|| cert.public_key().clone())
    })
    .unwrap();
    let want = DuisRequest::UpdateSecurityCredentialsCoS(Box::new(r));
    // the signed document as received (Signature ignored)
    assert_eq!(read_request(&signed, &Limits::default()).unwrap(), want);
    // the verified content (C14N bytes, no declaration, expanded empty elements)
    assert_eq!(
        read_request(&verified.signed_xml, &Limits::default()).unwrap(),
        want
    );
    // the verifier's tree, without a second parse
    let doc = ecos_xmldsig::parse(&verified.signed_xml, &limits).unwrap();
    assert_eq!(read_parsed(&doc, &Limits::default()).unwrap(), want);
}
