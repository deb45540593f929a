//! Reading a 6.23 request, against a bare roxmltree parse of the same bytes.
//!
//! Uses the signed IMMEDIATE fixture (skips with a message when absent).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use ecos_duis::{Limits, read_request};

fn fixture() -> Option<Vec<u8>> {
    let base = std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    std::fs::read(base.join("duis-signed/6.23_IMMEDIATE.signed.xml")).ok()
}

fn bench(c: &mut Criterion) {
    let Some(bytes) = fixture() else {
        eprintln!("SKIP: fixtures absent (set ECOS_FIXTURES)");
        return;
    };
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
