//! The 6.23 pipeline in process, stage by stage, against the crypto bound
//! measured in the same run (one ECDSA verify + one sign + one ECDH with
//! aws-lc-rs): the figures to read are the ratios.
//!
//! Stages: XML signature verification alone; every check (verify, read,
//! signer path from the cache, store look-ups on SQLite); command build +
//! sign + self-check + MAC; and the whole `Party::process` with its durable
//! writes (RequestID counter, GBCS counter, request row, audit entry).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ecos_party::demo::{self, RequestSpec};
use ecos_party::{Party, PartyConfig};
use ecos_store::{Store, StoreConfig, StoreLocation};
use jiff::Timestamp;

fn at() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = demo::pki(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = PartyConfig::default();
    let store = rt.block_on(async {
        let s = Store::open(
            &StoreLocation::sqlite_in_dir(dir.path()),
            StoreConfig {
                gbcs_counter_floor: config.counter_floor,
                ..StoreConfig::default()
            },
        )
        .await
        .unwrap();
        demo::load(&s, &pki).await.unwrap();
        s
    });
    let party: Party = demo::party(&pki, store, config).unwrap();
    let body = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1)
        .signed(&pki)
        .unwrap();

    // Baseline: the crypto bound of one request.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let msg = vec![0x5Au8; 1800];
    let sig = key.sign(&rng, &msg).unwrap();
    let public = key.public_key().as_ref().to_vec();
    let ka = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
    let peer = agreement::PrivateKey::generate(&agreement::ECDH_P256)
        .unwrap()
        .compute_public_key()
        .unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.measurement_time(Duration::from_secs(4)).sample_size(30);
    g.bench_function("baseline_crypto_bound_verify_sign_ecdh", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
                .verify(&msg, sig.as_ref())
                .unwrap();
            black_box(key.sign(&rng, &msg).unwrap());
            agreement::agree(
                &ka,
                agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer.as_ref()),
                (),
                |z| Ok(black_box(z.len())),
            )
            .unwrap();
        })
    });

    let xml_sign = pki
        .organisation(demo::SUPPLIER_B)
        .unwrap()
        .xml_sign
        .cert
        .public_key()
        .clone();
    g.bench_function("stage_xml_signature_verify", |b| {
        b.iter(|| {
            black_box(
                ecos_xmldsig::verify(&body, &ecos_xmldsig::Limits::default(), |_, _| {
                    Some(xml_sign.clone())
                })
                .unwrap(),
            )
        })
    });

    g.bench_function("stage_all_checks_sqlite", |b| {
        b.iter(|| black_box(rt.block_on(party.check(&body, at())).unwrap()))
    });

    let accepted = rt.block_on(party.check(&body, at())).unwrap();
    let keys = demo::keys(&pki).unwrap();
    let mut counter = 1u64 << 56;
    g.bench_function("stage_build_sign_selfcheck_mac", |b| {
        b.iter(|| {
            counter += 1;
            black_box(
                ecos_party::command::build_supplier_by_trans_cos(&accepted, &keys, counter)
                    .unwrap(),
            )
        })
    });

    // The whole process with durable writes: fresh RequestIDs, signed
    // outside the timed section (signing is the supplier's cost).
    let mut next = 10u64;
    g.bench_function("whole_process_durable_sqlite", |b| {
        b.iter_custom(|iters| {
            let bodies: Vec<Vec<u8>> = (0..iters)
                .map(|_| {
                    next += 1;
                    RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, next, demo::MPAN_1)
                        .signed(&pki)
                        .unwrap()
                })
                .collect();
            let start = Instant::now();
            for b in &bodies {
                black_box(rt.block_on(party.process(b, at())).unwrap());
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
