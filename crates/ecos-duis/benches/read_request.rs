//! Reading a 6.23 request, against a bare roxmltree parse of the same bytes;
//! and the whole read + verify path of the pipeline (signature verified,
//! then the signed content read into the typed request, certificates
//! parsed) against a bare aws-lc-rs ECDSA P-256 verify measured in the same
//! run: the target is read + verify at >= 80% of the bare rate.
//!
//! Uses the signed IMMEDIATE fixture (skips with a message when absent).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use ecos_duis::{Limits, read_request, read_signed};

fn fixtures() -> PathBuf {
    std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
}

fn fixture() -> Option<Vec<u8>> {
    std::fs::read(fixtures().join("duis-signed/6.23_IMMEDIATE.signed.xml")).ok()
}

/// Read + verify against the bare ECDSA verify of the same SignedInfo.
fn read_and_verify(c: &mut Criterion, bytes: &[u8]) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use ecos_xmldsig::c14n::{self, Options};
    let Ok(cert) =
        ecos_smki::Certificate::load(fixtures().join("zaz1/xml-sign-90B3D51F30010000-ds.pem"))
    else {
        eprintln!("SKIP read+verify: signer certificate absent");
        return;
    };
    let key = cert.public_key().clone();
    let xl = ecos_xmldsig::Limits::default();
    let tree = ecos_xmldsig::parse(bytes, &xl).expect("parse");
    let si = tree
        .descendants()
        .find(|n| n.tag_name().name() == "SignedInfo")
        .expect("SignedInfo");
    let si_bytes = c14n::subtree_to_vec(si, Options::EXCLUSIVE);
    let sv: String = tree
        .descendants()
        .find(|n| n.tag_name().name() == "SignatureValue")
        .and_then(|n| n.text())
        .expect("SignatureValue")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let sv = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sv).expect("b64");
    let opts = ecos_xmldsig::VerifyOptions::default();
    let limits = Limits::default();
    let mut g = c.benchmark_group("read_verify_6_23");
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("baseline_bare_ecdsa_p256_verify", |b| {
        let pk = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.as_bytes().to_vec());
        b.iter(|| {
            pk.verify(black_box(&si_bytes), black_box(&sv))
                .expect("verifies")
        })
    });
    g.bench_function("verify_then_read_shared_tree", |b| {
        b.iter(|| {
            let (_, read) = ecos_xmldsig::verify_then(
                black_box(bytes),
                &opts,
                |_, _| Some(key.clone()),
                |content| read_signed(content.bytes, content.tree, &limits),
            )
            .expect("verifies");
            black_box(read.expect("reads"))
        })
    });
    g.bench_function("verify_then_parse_signed_bytes_again", |b| {
        b.iter(|| {
            let v = ecos_xmldsig::verify_with(black_box(bytes), &opts, |_, _| Some(key.clone()))
                .expect("verifies");
            black_box(read_request(&v.signed_xml, &limits).expect("reads"))
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let Some(bytes) = fixture() else {
        eprintln!("SKIP: fixtures absent (set ECOS_FIXTURES)");
        return;
    };
    read_and_verify(c, &bytes);
    let limits = Limits::default();
    let mut g = c.benchmark_group("read_6_23");
    g.bench_function("baseline_roxmltree_parse", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(&bytes)).expect("fixture is UTF-8");
            let doc = roxmltree::Document::parse(text).expect("fixture parses");
            black_box(doc.root_element().children().count())
        })
    });
    g.bench_function("hardened_parse", |b| {
        b.iter(|| {
            let doc = ecos_duis::xml::parse(black_box(&bytes), &limits).expect("fixture parses");
            black_box(doc.root_element().children().count())
        })
    });
    g.bench_function("read_request", |b| {
        b.iter(|| black_box(read_request(black_box(&bytes), &limits).expect("fixture reads")))
    });
    // the share of read_request spent in ecos-smki parsing the 4 certificates
    let Ok(ecos_duis::DuisRequest::UpdateSecurityCredentialsCoS(r)) = read_request(&bytes, &limits)
    else {
        panic!("fixture is a 6.23 request");
    };
    let rc = &r.body.replacement_certificates;
    let ders: Vec<Vec<u8>> = [
        Some(&rc.digital_signing),
        rc.key_agreement.as_ref(),
        rc.key_agreement_top_up.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(r.body.certification_path.iter())
    .map(|c| c.der().to_vec())
    .collect();
    g.bench_function("certificates_only", |b| {
        b.iter(|| {
            for d in &ders {
                black_box(
                    ecos_smki::Certificate::from_der(black_box(d)).expect("fixture certificate"),
                );
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
