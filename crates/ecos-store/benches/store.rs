//! Registration data: import rate and supplier-at-instant lookups per second, per backend.
//!
//! `ECOS_BENCH_ROWS` sets the size of the generated registration file (default 1,000,000;
//! use e.g. 50000 for a quick run). PostgreSQL runs when `ECOS_TEST_POSTGRES_URL` is set.
//! Baselines in the same run: building a `HashMap` from the same file (import) and a bare
//! `SELECT 1` round trip plus an in-memory `HashMap` lookup (lookups).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ecos_store::generate::registration_file;
use ecos_store::{ImportMode, ImportOptions, Mpxn, Store, StoreConfig, StoreLocation};
use jiff::civil::Date;

/// Concurrent lookup tasks (= pool connections).
const CONCURRENCY: usize = 4;

fn rows() -> u64 {
    std::env::var("ECOS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn config() -> StoreConfig {
    StoreConfig {
        max_connections: CONCURRENCY as u32,
        ..StoreConfig::default()
    }
}

struct Backend {
    name: &'static str,
    location: Box<dyn Fn(u64) -> StoreLocation>,
}

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend {
        name: "sqlite",
        location: Box::new(|i| {
            let dir =
                std::env::temp_dir().join(format!("ecos-store-bench-{}-{i}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            StoreLocation::sqlite_in_dir(dir)
        }),
    }];
    match std::env::var("ECOS_TEST_POSTGRES_URL") {
        Ok(url) => v.push(Backend {
            name: "postgres",
            location: Box::new(move |i| StoreLocation::Postgres {
                url: url.clone(),
                schema: Some(format!("bench_{}_{i}", std::process::id())),
            }),
        }),
        Err(_) => eprintln!("PostgreSQL benches skipped: ECOS_TEST_POSTGRES_URL is not set"),
    }
    v
}

fn cleanup(loc: &StoreLocation) {
    if let StoreLocation::Sqlite(p) = loc
        && let Some(dir) = p.parent()
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut c)
        .await;
    }
}

async fn dispose(loc: &StoreLocation) {
    match loc {
        StoreLocation::Postgres {
            url,
            schema: Some(s),
        } => drop_schema(url, s).await,
        other => cleanup(other),
    }
}

fn bench_import(c: &mut Criterion) {
    let (file, _) = registration_file(rows(), 7).expect("generate");
    // The generator finishes the last MPxN's history, so the file may hold a row or two more.
    let n = file.iter().filter(|&&c| c == b'\n').count() as u64 - 1;
    let rt = runtime();
    let mut g = c.benchmark_group("regdata_import");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(n));

    g.bench_function(BenchmarkId::new("baseline_hashmap_build", n), |b| {
        b.iter(|| {
            let mut m: HashMap<&[u8], Vec<&[u8]>> = HashMap::new();
            for line in file.split(|&c| c == b'\n').skip(1) {
                if let Some(p) = line.iter().position(|&c| c == b',') {
                    m.entry(&line[..p]).or_default().push(&line[p + 1..]);
                }
            }
            black_box(m.len())
        })
    });

    let mut counter = 0u64;
    for be in backends() {
        g.bench_function(BenchmarkId::new(be.name, n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    counter += 1;
                    let loc = (be.location)(counter);
                    total += rt.block_on(async {
                        let s = Store::open(&loc, config()).await.expect("open");
                        let t = Instant::now();
                        let sum = s
                            .import_registration(
                                &file,
                                &ImportOptions::new("bench", ImportMode::Refresh),
                                &mut |_| {},
                            )
                            .await
                            .expect("import");
                        let dt = t.elapsed();
                        assert_eq!(sum.rows, n);
                        s.close().await;
                        dispose(&loc).await;
                        dt
                    });
                }
                total
            })
        });
    }
    g.finish();
}

fn lookup_dates(i: usize) -> Date {
    Date::constant(2016, 1, 1)
        .checked_add(jiff::Span::new().days((i * 37 % 3650) as i64))
        .unwrap_or(Date::constant(2020, 1, 1))
}

async fn lookups(s: &Store, keys: &[Mpxn], batch: usize) -> usize {
    let per = batch / CONCURRENCY;
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for t in 0..CONCURRENCY {
        let s = s.clone();
        let keys: Vec<Mpxn> = (0..per)
            .map(|i| keys[(t * 7919 + i * 104_729) % keys.len()].clone())
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut found = 0usize;
            for (i, k) in keys.iter().enumerate() {
                found += usize::from(
                    s.registered_supplier_on(k, lookup_dates(i))
                        .await
                        .expect("lookup")
                        .is_some(),
                );
            }
            found
        }));
    }
    let mut found = 0;
    for t in tasks {
        found += t.await.expect("task");
    }
    found
}

async fn pings(s: &Store, batch: usize) {
    let per = batch / CONCURRENCY;
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                s.ping().await.expect("ping");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

fn bench_lookup(c: &mut Criterion) {
    let n = rows();
    let (file, keys) = registration_file(n, 7).expect("generate");
    let rt = runtime();
    const BATCH: usize = 20_000;
    let mut g = c.benchmark_group("regdata_lookup");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(BATCH as u64));

    // In-memory baseline: MPxN -> periods, newest-start-at-or-before search.
    let mut mem: HashMap<String, Vec<(Date, Option<Date>, String)>> = HashMap::new();
    for line in std::str::from_utf8(&file).expect("utf8").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let from: Date = f[2].parse().expect("date");
        let to = (!f[3].is_empty()).then(|| f[3].parse::<Date>().expect("date"));
        mem.entry(f[0].to_string())
            .or_default()
            .push((from, to, f[1].to_string()));
    }
    g.bench_function("baseline_hashmap", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for i in 0..BATCH {
                let k = &keys[(i * 104_729) % keys.len()];
                let d = lookup_dates(i);
                if let Some(h) = mem.get(k.as_str()) {
                    found += usize::from(
                        h.iter()
                            .any(|(f, t, _)| *f <= d && t.is_none_or(|t| d <= t)),
                    );
                }
            }
            black_box(found)
        })
    });

    for be in backends() {
        let loc = (be.location)(1_000_000);
        let store = rt.block_on(async {
            let s = Store::open(&loc, config()).await.expect("open");
            s.import_registration(
                &file,
                &ImportOptions::new("bench", ImportMode::Refresh),
                &mut |_| {},
            )
            .await
            .expect("import");
            s
        });
        g.bench_function(BenchmarkId::new("baseline_select_1", be.name), |b| {
            b.iter(|| rt.block_on(pings(&store, BATCH)))
        });
        g.bench_function(BenchmarkId::new("supplier_on", be.name), |b| {
            b.iter(|| black_box(rt.block_on(lookups(&store, &keys, BATCH))))
        });
        g.bench_function(BenchmarkId::new("supplier_on_batched", be.name), |b| {
            b.iter(|| {
                let qs: Vec<(Mpxn, Date)> = (0..BATCH)
                    .map(|i| (keys[(i * 104_729) % keys.len()].clone(), lookup_dates(i)))
                    .collect();
                black_box(
                    rt.block_on(store.registered_suppliers_on(&qs))
                        .expect("batch")
                        .len(),
                )
            })
        });
        rt.block_on(async {
            store.close().await;
            dispose(&loc).await;
        });
    }
    g.finish();
}

criterion_group!(benches, bench_import, bench_lookup);
criterion_main!(benches);
