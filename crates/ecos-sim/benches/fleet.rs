//! Drive a fleet through one 6.23 (mode 7) command per device.
//!
//! `ECOS_SIM_FLEET_N` devices (default 2000; 1000000 by hand) are generated
//! from a test PKI, then every device receives one signed, MAC-wrapped
//! command and answers with a signed response. Printed once: fleet creation
//! time, resident memory per device, and the drive's time and rate.
//! Criterion then measures, per command, the head end alone (CoS signature
//! and ACB MAC: the baseline) and head end + device.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ecos_sim::device::DeviceContext;
use ecos_sim::{DeviceKind, Fleet, HeadEnd, KeySource, SeededKeys, SupplierCredentials, Templates};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Eui64, PathPolicy};

const BASE: u64 = 0x00DB_0000_0000_0000;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

struct Setup {
    fleet: Arc<Fleet>,
    head: HeadEnd,
    creds: SupplierCredentials,
    now: jiff::Timestamp,
}

fn setup(n: u64) -> Setup {
    let pki = TestPki::generate(&TestPkiSpec::demo()).expect("test PKI");
    let keys = KeySource::Seeded(SeededKeys { seed: 7 });
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let templates =
        Templates::from_test_pki(&pki, Eui64::from_u64(0x90B3_D51F_3001_0000)).expect("templates");
    let fleet = Arc::new(Fleet::new(ctx, keys.clone()));
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    fleet.generate(&templates, Eui64::from_u64(BASE), n, DeviceKind::Esme, 0);
    let made = t0.elapsed();
    let rss1 = rss_bytes();
    eprintln!(
        "fleet: {n} devices created in {made:.2?}; RSS +{} MiB = {} B/device (struct estimate {} B/device)",
        (rss1.saturating_sub(rss0)) >> 20,
        rss1.saturating_sub(rss0) / n.max(1),
        Fleet::approx_bytes_per_device()
    );
    let o = pki
        .organisation(Eui64::from_u64(0x90B3_D51F_3003_0000))
        .expect("supplier B");
    let creds = SupplierCredentials {
        ds: o.ds.cert.clone(),
        ka: o.ka.cert.clone(),
        pp_ka: Some(o.pp_ka.cert.clone()),
        path: vec![pki.issuing_ca().cert.clone()],
    };
    let head = HeadEnd {
        cos: Arc::new(pki.tcos().signer().expect("tcos")),
        cos_eui: pki.tcos().cert.eui().expect("tcos eui"),
        acb: Arc::new(pki.acb_ka().key_agreement().expect("acb")),
        keys,
    };
    Setup {
        fleet,
        head,
        creds,
        now: "2026-06-01T00:00:00Z".parse().expect("time"),
    }
}

fn drive_all(s: &Setup, n: u64) {
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1) as u64;
    let next = AtomicU64::new(0);
    let ok = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let eui = Eui64::from_u64(BASE + i);
                    let cmd = s
                        .head
                        .supplier_by_trans_cos(eui, 1 + i, &s.creds, None)
                        .expect("command");
                    let h = s.fleet.handle(eui, &cmd, s.now, None).expect("accepted");
                    if h.outcome.is_some_and(|o| o.all_succeeded()) {
                        let k = ok.fetch_add(1, Ordering::Relaxed) + 1;
                        if k % 100_000 == 0 {
                            eprintln!(
                                "drive: {k} done after {:.2?}; RSS {} MiB",
                                t0.elapsed(),
                                rss_bytes() >> 20
                            );
                        }
                    }
                }
            });
        }
    });
    let el = t0.elapsed();
    eprintln!(
        "drive: {n} devices × one 6.23 in {el:.2?} on {threads} threads ({:.0} commands/s, {} succeeded); RSS now {} MiB",
        n as f64 / el.as_secs_f64(),
        ok.load(Ordering::Relaxed),
        rss_bytes() >> 20
    );
    assert_eq!(ok.load(Ordering::Relaxed), n);
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("ECOS_SIM_FLEET_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let s = setup(n);
    drive_all(&s, n);

    let mut g = c.benchmark_group("fleet_command");
    g.sample_size(20);
    let ctr = AtomicU64::new(10 * n + 10);
    g.bench_function("head_end_only (baseline)", |b| {
        b.iter(|| {
            let i = ctr.fetch_add(1, Ordering::Relaxed);
            s.head
                .supplier_by_trans_cos(Eui64::from_u64(BASE + i % n), i, &s.creds, None)
                .expect("command")
        })
    });
    g.bench_function("head_end_plus_device", |b| {
        b.iter(|| {
            let i = ctr.fetch_add(1, Ordering::Relaxed);
            let eui = Eui64::from_u64(BASE + i % n);
            let cmd = s
                .head
                .supplier_by_trans_cos(eui, i, &s.creds, None)
                .expect("command");
            s.fleet.handle(eui, &cmd, s.now, None).expect("accepted")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
