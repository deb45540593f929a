//! Build + sign + MAC a 6.23 (mode 7) command, against a bare ECDSA P-256
//! signature over the same number of bytes measured in the same run.
//!
//! Runs anywhere: fresh keys, certificates of the RTDS sizes (433, 407, 405
//! and 420 bytes; their content does not affect the cost).

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use ecos_gbcs::{CertificateDer, Cs02bCommand, Frame, SupplierByTransCos, SupplierFloors, mac};
use ecos_smki::{Eui64, KeyAgreement, Signer, SoftwareKeyAgreement, SoftwareSigner};

fn pkcs8() -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("key generation")
        .as_ref()
        .to_vec()
}

fn cert(total: usize) -> CertificateDer {
    let body = total - 4;
    let mut der = vec![0x30, 0x82, (body >> 8) as u8, body as u8];
    der.resize(total, 0x5A);
    CertificateDer::new(der).expect("a SEQUENCE")
}

fn params(counter: u64) -> SupplierByTransCos {
    SupplierByTransCos {
        counter,
        originator: Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x00, 0x00, 0x04]),
        recipient: Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]),
        supplier_ds: cert(433),
        supplier_ka: cert(407),
        supplier_pp_ka: Some(cert(405)),
        certification_path: vec![cert(420)],
        apply_time_based_cpv_checks: true,
        supplier_floors: Some(SupplierFloors {
            floor: 0,
            prepayment_top_up_floor: Some(0),
        }),
        execution: None,
    }
}

fn bench(c: &mut Criterion) {
    let signer = SoftwareSigner::from_bytes(&pkcs8()).expect("signer");
    let acb = SoftwareKeyAgreement::from_bytes(&pkcs8()).expect("acb");
    let device = SoftwareKeyAgreement::from_bytes(&pkcs8()).expect("device");
    let device_pub = device.public_key().clone();
    let sample = Cs02bCommand::supplier_by_trans_cos(params(6001))
        .expect("command")
        .sign_and_mac(&signer, &acb, &device_pub)
        .expect("message");
    let signed_len = Frame::decode(&sample).expect("frame").signed_bytes().len();
    let message = vec![0xA5u8; signed_len];

    let mut g = c.benchmark_group("cs02b_mode7");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(40);
    g.bench_function("baseline_ecdsa_sign_same_length", |b| {
        b.iter(|| black_box(signer.sign(black_box(&message)).expect("sign")))
    });
    g.bench_function("build_only", |b| {
        b.iter(|| {
            let cmd = Cs02bCommand::supplier_by_trans_cos(params(black_box(6001))).expect("cmd");
            black_box(cmd.encode().expect("encode"))
        })
    });
    g.bench_function("build_sign_mac", |b| {
        let mut counter = 6001u64;
        b.iter(|| {
            counter += 1;
            let cmd = Cs02bCommand::supplier_by_trans_cos(params(counter)).expect("cmd");
            black_box(
                cmd.sign_and_mac(&signer, &acb, &device_pub)
                    .expect("message"),
            )
        })
    });
    let secret = mac::PairwiseSecret::agree(&acb, &device_pub).expect("ecdh");
    g.bench_function("build_sign_mac_cached_ecdh", |b| {
        let mut counter = 6001u64;
        b.iter(|| {
            counter += 1;
            let cmd = Cs02bCommand::supplier_by_trans_cos(params(counter)).expect("cmd");
            let apdu = cmd.sign(&signer).expect("sign");
            black_box(
                mac::wrap_with_secret(&apdu, &secret, ecos_gbcs::MacHeader::RTDS).expect("mac"),
            )
        })
    });
    g.bench_function("device_decode_verify_mac", |b| {
        b.iter(|| {
            let msg = ecos_gbcs::Message::decode(black_box(&sample)).expect("decode");
            msg.frame
                .verify_signature(signer.public_key())
                .expect("signature");
            mac::verify(&msg.frame, &device, acb.public_key()).expect("mac");
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
