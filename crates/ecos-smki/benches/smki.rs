//! Costs of the SMKI operations, each next to a baseline measured in the
//! same run:
//! - parse (`Certificate::from_der`) vs x509-parser on the same DER;
//! - `validate_path` (leaf → issuing CA → root) vs one aws-lc-rs ECDSA verify;
//! - `TestPki::mint_device` (2 keys, 2 certificates) vs one p256 ECDSA sign.

use criterion::{Criterion, criterion_group, criterion_main};
use ecos_smki::{Certificate, PathPolicy, TestPki, TestPkiSpec, validate_path};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let mut spec = TestPkiSpec::demo();
    spec.devices.truncate(1);
    let pki = TestPki::generate(&spec).unwrap();
    let leaf = pki.organisations()[0].xml_sign.cert.clone();
    let der = leaf.der().to_vec();
    let store = pki.trust_store();
    let at = spec
        .not_before
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap();
    let policy = PathPolicy::test_organisation();

    let mut g = c.benchmark_group("parse");
    g.bench_function("baseline_x509_parser", |b| {
        use x509_parser::prelude::{FromDer, X509Certificate};
        b.iter(|| {
            X509Certificate::from_der(black_box(&der))
                .unwrap()
                .1
                .tbs_certificate
                .version
        })
    });
    g.bench_function("certificate_from_der", |b| {
        b.iter(|| Certificate::from_der(black_box(&der)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("validate");
    let issuer_key = pki.issuing_ca().cert.public_key().clone();
    g.bench_function("baseline_one_ecdsa_verify", |b| {
        b.iter(|| {
            issuer_key
                .verify(black_box(leaf.tbs_der()), leaf.signature_raw())
                .unwrap()
        })
    });
    g.bench_function("validate_path_3_certs", |b| {
        b.iter(|| validate_path(black_box(&leaf), &[], &store, at, &policy, true).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("mint");
    let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    g.bench_function("baseline_p256_sign", |b| {
        use p256::ecdsa::signature::Signer as _;
        b.iter(|| -> p256::ecdsa::Signature { sk.sign(black_box(&der)) })
    });
    let eui = ecos_smki::Eui64::from_u64(0x00DB_0000_0000_0001);
    g.bench_function("mint_device_ds_and_ka", |b| {
        b.iter(|| pki.mint_device(black_box(eui)).unwrap())
    });
    g.finish();
}

criterion_group!(smki, benches);
criterion_main!(smki);
