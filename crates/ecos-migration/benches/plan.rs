//! Planning over a generated inventory (SQLite), against a same-run baseline: the bare
//! paged scan of the same devices the planner reads (`migration_view_page` alone).
//! `ECOS_BENCH_DEVICES` sets the inventory size (default 20 000).

use criterion::{Criterion, criterion_group, criterion_main};
use ecos_migration::MigrationConfig;
use ecos_store::{ImportMode, ImportOptions, Store, StoreLocation};
use jiff::Timestamp;

fn inventory(n: u64) -> String {
    let mut s = String::from(
        "device_eui,device_type,status,cos_credential,comms_hub_eui,csp_region,firmware_version,last_contact\n",
    );
    for i in 0..n {
        let status = if i % 50 == 0 {
            "suspended"
        } else {
            "commissioned"
        };
        let region = ["north", "central", "south"][(i % 3) as usize];
        s.push_str(&format!(
            "{:016X},esme,{status},transitional,{:016X},{region},4.2.0,2026-05-30T00:00:00Z\n",
            0x00DB_0000_0000_0000u64 + i,
            0x00DC_0000_0000_0000u64 + i / 2,
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("ECOS_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store = rt.block_on(async {
        let s = Store::open(
            &StoreLocation::sqlite_in_dir(dir.path()),
            ecos_store::StoreConfig::default(),
        )
        .await
        .expect("store");
        s.import_inventory(
            inventory(n).as_bytes(),
            &ImportOptions::new("bench", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .expect("import");
        s
    });
    let now: Timestamp = "2026-06-01T00:00:00Z".parse().expect("t");
    let cfg = MigrationConfig::default();
    let mut g = c.benchmark_group(format!("plan_{n}_devices"));
    g.sample_size(10);
    g.bench_function("baseline_paged_scan", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut after = None;
                let mut seen = 0u64;
                loop {
                    let page = store
                        .migration_view_page(
                            after,
                            ecos_migration::runner::PAGE,
                            store.as_of_date(now),
                        )
                        .await
                        .expect("page");
                    let Some(last) = page.last() else { break };
                    after = Some(last.eui);
                    seen += page.len() as u64;
                }
                assert_eq!(seen, n);
            })
        })
    });
    g.bench_function("plan", |b| {
        b.iter(|| {
            rt.block_on(async {
                let p = ecos_migration::plan::plan(&store, &cfg, now, 0.1)
                    .await
                    .expect("plan");
                assert_eq!(p.scanned, n);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
