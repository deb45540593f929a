//! The supplier client: requests read back with `ecos-duis`, signatures
//! checked with `ecos-xmldsig`, each deliberate defect present, and an HTTP
//! round trip.

use std::sync::Arc;

use ecos_duis::{DuisRequest, Execution};
use ecos_sim::supplier::{
    Defect, RequestSpec, SupplierClient, SupplierOrg, expired_xml_sign, signed_request,
};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Certificate, Eui64, P256PublicKey, Role};
use tokio::sync::Mutex;

const A: u64 = 0x90B3_D51F_3001_0000;
const B: u64 = 0x90B3_D51F_3003_0000;
const DEV: u64 = 0x00DB_1234_5678_90A0;

fn spec(execution: Execution) -> RequestSpec {
    RequestSpec {
        device: Eui64::from_u64(DEV),
        counter: 1006,
        mpxn: "1312345678907".into(),
        execution,
        apply_time_based_cpv_checks: true,
        command_variant: 1,
    }
}

/// Read back: the request and the certificate that verified its signature.
fn read(pki: &TestPki, extra: &[Certificate], xml: &[u8]) -> (ecos_duis::CosRequest, Certificate) {
    let DuisRequest::UpdateSecurityCredentialsCoS(req) =
        ecos_duis::read_request(xml, &ecos_duis::Limits::default()).unwrap()
    else {
        panic!("not a 6.23")
    };
    let mut all: Vec<Certificate> = extra.to_vec();
    for o in pki.organisations() {
        all.extend([o.xml_sign.cert.clone(), o.ds.cert.clone()]);
    }
    let found = std::cell::RefCell::new(None);
    ecos_xmldsig::verify(xml, &ecos_xmldsig::Limits::default(), |issuer, serial| {
        let c = all.iter().find(|c| {
            c.serial_decimal() == serial && ecos_xmldsig::dn_eq(&c.issuer_rfc2253(), issuer)
        })?;
        *found.borrow_mut() = Some(c.clone());
        Some::<P256PublicKey>(c.public_key().clone())
    })
    .unwrap();
    let cert = found.into_inner().unwrap();
    (*req, cert)
}

#[test]
fn correct_requests_of_each_kind_read_back_and_verify() {
    let pki = TestPki::generate(&TestPkiSpec::demo()).unwrap();
    let org = SupplierOrg::from_test_pki(&pki, Eui64::from_u64(A)).unwrap();
    let at: jiff::Timestamp = "2030-01-02T00:00:00Z".parse().unwrap();
    for ex in [
        Execution::Immediate,
        Execution::FutureDated(at),
        Execution::Cancellation,
    ] {
        let xml = signed_request(&org, &spec(ex), &Defect::None).unwrap();
        let (req, cert) = read(&pki, &[], &xml);
        assert_eq!(req.body.execution, ex);
        assert_eq!(req.header.request_id.originator, Eui64::from_u64(A));
        assert_eq!(req.header.request_id.counter, 1006);
        assert_eq!(req.body.import_mpxn, "1312345678907");
        assert_eq!(cert.role(), Some(Role::XmlSign));
        assert_eq!(cert.eui(), Some(Eui64::from_u64(A)));
    }
}

#[test]
fn each_defect_is_in_the_request() {
    let pki = TestPki::generate(&TestPkiSpec::demo()).unwrap();
    let org = SupplierOrg::from_test_pki(&pki, Eui64::from_u64(A)).unwrap();
    let other = SupplierOrg::from_test_pki(&pki, Eui64::from_u64(B)).unwrap();
    let s = spec(Execution::Immediate);

    let xml = signed_request(&org, &s, &Defect::WrongMpxn("1300000000009".into())).unwrap();
    assert_eq!(read(&pki, &[], &xml).0.body.import_mpxn, "1300000000009");

    let xml = signed_request(&org, &s, &Defect::WrongMpid(Box::new(other))).unwrap();
    let (req, cert) = read(&pki, &[], &xml);
    assert_eq!(req.header.request_id.originator, Eui64::from_u64(B));
    assert_eq!(cert.eui(), Some(Eui64::from_u64(B)));
    assert_eq!(cert.common_name(), Some("BDEE BDG"));

    let xml = signed_request(&org, &s, &Defect::WrongRole).unwrap();
    let (_, cert) = read(&pki, &[], &xml);
    assert_eq!(cert.role(), Some(Role::Supplier));

    let old = expired_xml_sign(pki.spec(), Eui64::from_u64(A)).unwrap();
    let now: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    assert!(!old.is_valid_at(now));
    assert_eq!(old.public_key(), org.xml_sign_cert.public_key());
    let xml = signed_request(&org, &s, &Defect::ExpiredCertificate(Box::new(old.clone()))).unwrap();
    let (_, cert) = read(&pki, std::slice::from_ref(&old), &xml);
    assert_eq!(cert, old);
    // The expired twin still chains to the live issuing CA.
    let store = pki.trust_store();
    let e =
        ecos_smki::validate_path(&old, &[], &store, now, &Default::default(), true).unwrap_err();
    assert!(matches!(e, ecos_smki::PathError::Expired { .. }), "{e}");
    ecos_smki::validate_path(&old, &[], &store, now, &Default::default(), false).unwrap();
}

/// (content type, body) of a POST the test server saw.
type Posted = (String, Vec<u8>);

#[tokio::test]
async fn submits_over_http_and_returns_the_answer() {
    use axum::routing::post;
    let got: Arc<Mutex<Vec<Posted>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/api/v1/serviceS",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let g = g.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    g.lock().await.push((ct, body.to_vec()));
                    ([("content-type", "application/xml")], "<ack/>")
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let pki = TestPki::generate(&TestPkiSpec::demo()).unwrap();
    let org = SupplierOrg::from_test_pki(&pki, Eui64::from_u64(A)).unwrap();
    let xml = signed_request(&org, &spec(Execution::Immediate), &Defect::None).unwrap();
    let client = SupplierClient::new(&format!("http://{addr}/")).unwrap();
    let ans = client.submit(xml.clone()).await.unwrap();
    assert_eq!(ans.status, 200);
    assert_eq!(ans.body, b"<ack/>");
    assert_eq!(ans.content_type.as_deref(), Some("application/xml"));
    let seen = got.lock().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "application/xml");
    assert_eq!(seen[0].1, xml);
    server.abort();
}
