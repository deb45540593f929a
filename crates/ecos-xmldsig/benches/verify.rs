//! Read + verify of one 6.23 request, against a bare aws-lc-rs ECDSA P-256
//! verify of the same SignedInfo in the same run (the physical floor).
//!
//! Uses the signed 6.23 fixture when the shared fixtures are present, and a
//! request signed here with a generated key otherwise.

use std::hint::black_box;
use std::path::Path;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecos_smki::{P256PublicKey, Signer};
use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{DS_NS, Limits, parse, verify};

fn sample() -> (Vec<u8>, P256PublicKey) {
    let fx = std::env::var_os("ECOS_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    let doc = fx.join("duis-signed/6.23_IMMEDIATE.signed.xml");
    let cert = fx.join("zaz1/xml-sign-90B3D51F30010000-ds.pem");
    if let (Ok(doc), Ok(cert)) = (std::fs::read(&doc), ecos_smki::Certificate::load(&cert)) {
        eprintln!(
            "bench input: 6.23_IMMEDIATE.signed.xml ({} bytes)",
            doc.len()
        );
        return (doc, cert.public_key().clone());
    }
    eprintln!("fixtures absent: benchmarking a request signed with a generated key");
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .expect("keygen");
    let signer = ecos_smki::SoftwareSigner::from_bytes(pkcs8.as_ref()).expect("key");
    let body = format!(
        "<sr:Request xmlns:sr=\"http://www.dccinterface.co.uk/ServiceUserGateway\" schemaVersion=\"5.4\"><sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006</sr:RequestID><sr:CommandVariant>1</sr:CommandVariant><sr:ServiceReference>6.23</sr:ServiceReference><sr:ServiceReferenceVariant>6.23</sr:ServiceReferenceVariant></sr:Header><sr:Body><sr:UpdateSecurityCredentialsCoS><sr:SupplierFloorSeqNumber>0</sr:SupplierFloorSeqNumber><sr:SupplierReplacementCertificates><sr:DigitalSigningCertificate>{0}</sr:DigitalSigningCertificate><sr:KeyAgreementCertificate>{0}</sr:KeyAgreementCertificate></sr:SupplierReplacementCertificates><sr:CertificationPathCertificates><sr:Certificate>{0}</sr:Certificate></sr:CertificationPathCertificates><sr:ApplyTimeBasedCPVChecks>true</sr:ApplyTimeBasedCPVChecks><sr:ImportMPxN>1312345678333</sr:ImportMPxN></sr:UpdateSecurityCredentialsCoS></sr:Body></sr:Request>",
        "A".repeat(580)
    );
    let doc = ecos_xmldsig::sign(body.as_bytes(), &signer, "CN=Z1,OU=07", "1").expect("sign");
    (doc, signer.public_key().clone())
}

fn bench(c: &mut Criterion) {
    let (doc, key) = sample();
    // The SignedInfo octets and signature value, for the bare baseline.
    let tree = parse(&doc, &Limits::default()).expect("parse");
    let si = tree
        .descendants()
        .find(|n| n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == "SignedInfo")
        .expect("SignedInfo");
    let si_bytes = c14n::subtree_to_vec(si, Options::EXCLUSIVE);
    let sv_text: String = tree
        .descendants()
        .find(|n| n.tag_name().name() == "SignatureValue")
        .and_then(|n| n.text())
        .expect("SignatureValue")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let sv = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sv_text)
        .expect("base64");
    let sig_id = tree
        .descendants()
        .find(|n| n.tag_name().name() == "Signature")
        .expect("Signature")
        .id();
    verify(&doc, &Limits::default(), |_, _| Some(key.clone())).expect("sample verifies");

    let mut g = c.benchmark_group("xmldsig");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_ecdsa_p256_verify (baseline)", |b| {
        let pk = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.as_bytes().to_vec());
        b.iter(|| {
            pk.verify(black_box(&si_bytes), black_box(&sv))
                .expect("verifies")
        })
    });
    g.bench_function("parse+verify 6.23 request", |b| {
        b.iter(|| {
            verify(black_box(&doc), &Limits::default(), |_, _| {
                Some(key.clone())
            })
            .expect("verifies")
        })
    });
    g.bench_function("parse only", |b| {
        b.iter(|| {
            parse(black_box(&doc), &Limits::default())
                .expect("parses")
                .root()
                .id()
        })
    });
    g.bench_function("inclusive c14n minus signature", |b| {
        b.iter(|| c14n::document_to_vec(black_box(&tree), Options::INCLUSIVE, Some(sig_id)).len())
    });
    g.bench_function("exclusive c14n of SignedInfo", |b| {
        b.iter(|| c14n::subtree_to_vec(black_box(si), Options::EXCLUSIVE).len())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
