//! Registration data at scale: import rate and supplier-at-instant lookups per second, each
//! reported as an absolute rate and as a ratio against a baseline measured in the same run.
//!
//! ```sh
//! nice cargo bench -p ecos-store --bench regdata            # 1,000,000 rows
//! ECOS_BENCH_ROWS=200000 nice cargo bench -p ecos-store --bench regdata
//! ```
//!
//! The registration file is generated (`generate::registration_file`, seed 7) into the
//! temporary directory and deleted at the end. PostgreSQL is measured when
//! `ECOS_TEST_POSTGRES_URL` is set (each store in its own schema, dropped afterwards).
//!
//! Baselines: imports against checking the same file without a store ([`check_file`]: CSV
//! split, field parsing, check digits, duplicate and overlap checks, the plan), the in-memory
//! part of every import, and against building a `HashMap` of the same file (split on commas,
//! dates parsed, periods per MPxN: an import into memory with no checks); lookups
//! (supplier at an instant, the question the checks ask) against a bare `SELECT 1` on the
//! same kind of connection (the synchronous SQLite connection for SQLite, the sqlx pool for
//! PostgreSQL) and against a `HashMap` of the same data, on one thread and on two.
//!
//! Each figure is the median of `ECOS_BENCH_RUNS` runs (default 3).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ecos_store::generate::registration_file;
use ecos_store::{
    FileKind, ImportMode, ImportOptions, Mpxn, Store, StoreConfig, StoreLocation, check_file,
};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Run `f` `runs` times and return the median duration.
fn time_runs(runs: u64, mut f: impl FnMut() -> Duration) -> Duration {
    median((0..runs.max(1)).map(|_| f()).collect())
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

struct Report {
    lines: Vec<String>,
}

impl Report {
    fn row(&mut self, what: &str, n: u64, d: Duration, baselines: &[(&str, f64)]) -> f64 {
        let r = rate(n, d);
        let ratio = if baselines.is_empty() {
            "baseline".to_string()
        } else {
            baselines
                .iter()
                .map(|(name, b)| format!("{:>6.2} × {name}", r / b))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = format!(
            "{what:<44} {:>12.0} /s  ({n} in {:>8.3} s)  {ratio}",
            r,
            d.as_secs_f64()
        );
        println!("{line}");
        self.lines.push(line);
        r
    }
}

/// Deletes the generated file and the SQLite directories on the way out.
struct Scratch {
    file: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn config() -> StoreConfig {
    StoreConfig {
        max_connections: 4,
        ..StoreConfig::default()
    }
}

fn lookup_date(i: usize) -> Date {
    Date::constant(2016, 1, 1)
        .checked_add(jiff::Span::new().days((i * 37 % 3650) as i64))
        .unwrap_or(Date::constant(2020, 1, 1))
}

/// Noon UTC on the lookup date: the instant asked about.
fn lookup_instant(i: usize) -> Timestamp {
    lookup_date(i)
        .at(12, 0, 0, 0)
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn key(keys: &[Mpxn], i: usize) -> &Mpxn {
    &keys[(i * 104_729 + 7) % keys.len()]
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

async fn import(store: &Store, file: &Path, id: &str, n: u64) -> Duration {
    let t = Instant::now();
    let s = store
        .import_registration_file(
            file,
            &ImportOptions::new(id, ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .expect("import");
    let d = t.elapsed();
    assert_eq!(s.rows, n);
    d
}

/// `n` single lookups from `tasks` concurrent tasks; returns the wall time.
async fn lookups(store: &Store, keys: &[Mpxn], n: usize, tasks: usize) -> (Duration, usize) {
    let t = Instant::now();
    let per = n / tasks;
    let mut hs = Vec::new();
    for k in 0..tasks {
        let s = store.clone();
        let qs: Vec<(Mpxn, Timestamp)> = (0..per)
            .map(|i| (key(keys, k * per + i).clone(), lookup_instant(k * per + i)))
            .collect();
        hs.push(tokio::spawn(async move {
            let mut found = 0usize;
            for (m, at) in &qs {
                found += usize::from(
                    s.registered_supplier_at(m, *at)
                        .await
                        .expect("lookup")
                        .is_some(),
                );
            }
            found
        }));
    }
    let mut found = 0;
    for h in hs {
        found += h.await.expect("task");
    }
    (t.elapsed(), found)
}

async fn pings(store: &Store, n: usize, tasks: usize) -> Duration {
    let t = Instant::now();
    let per = n / tasks;
    let mut hs = Vec::new();
    for _ in 0..tasks {
        let s = store.clone();
        hs.push(tokio::spawn(async move {
            for _ in 0..per {
                s.ping().await.expect("ping");
            }
        }));
    }
    for h in hs {
        h.await.expect("task");
    }
    t.elapsed()
}

async fn batched(store: &Store, keys: &[Mpxn], n: usize) -> Duration {
    let qs: Vec<(Mpxn, Date)> = (0..n)
        .map(|i| (key(keys, i).clone(), lookup_date(i)))
        .collect();
    let t = Instant::now();
    let got = store.registered_suppliers_on(&qs).await.expect("batch");
    let d = t.elapsed();
    assert_eq!(got.len(), n);
    black_box(got);
    d
}

/// The baseline import: the file's periods per MPxN in a `HashMap` (split on commas, dates
/// parsed, supplier kept), with no checks.
type Periods<'a> = HashMap<&'a [u8], Vec<(Date, Option<Date>, &'a [u8])>>;

fn hashmap_of(data: &[u8]) -> Periods<'_> {
    let mut m: Periods<'_> = HashMap::new();
    for line in data.split(|&c| c == b'\n').skip(1) {
        if line.is_empty() {
            continue;
        }
        let mut f = line.split(|&c| c == b',');
        let (Some(mpxn), Some(mpid), Some(from), Some(to)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            panic!("bad generated line");
        };
        let date =
            |b: &[u8]| -> Date { std::str::from_utf8(b).expect("utf8").parse().expect("date") };
        let to = (!to.is_empty()).then(|| date(to));
        m.entry(mpxn).or_default().push((date(from), to, mpid));
    }
    m
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run quickly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let rows = env_u64("ECOS_BENCH_ROWS", if benching { 1_000_000 } else { 2_000 });
    let runs = env_u64("ECOS_BENCH_RUNS", if benching { 3 } else { 1 });
    let nlook = env_u64("ECOS_BENCH_LOOKUPS", if benching { 200_000 } else { 2_000 }) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let tmp = std::env::temp_dir().join(format!("ecos-regdata-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut scratch = Scratch {
        file: tmp.join("regdata.csv"),
        dirs: vec![tmp.clone()],
    };
    let (data, keys) = registration_file(rows, 7).expect("generate");
    std::fs::write(&scratch.file, &data).expect("write file");
    let n = data.iter().filter(|&&c| c == b'\n').count() as u64 - 1;
    println!(
        "registration file: {} rows over {} MPANs, {:.1} MB ({}); median of {runs} runs",
        n,
        keys.len(),
        data.len() as f64 / 1e6,
        scratch.file.display()
    );
    let mut rep = Report { lines: Vec::new() };

    // ------------------------------------------------------------------ import
    println!("\n-- import (refresh into an empty store)");
    let check = time_runs(runs, || {
        let t = Instant::now();
        let c = check_file(
            FileKind::Registration,
            &std::fs::read(&scratch.file).expect("read"),
            &ImportOptions::new("check", ImportMode::Refresh),
        )
        .expect("check");
        assert_eq!(c.rows, n);
        t.elapsed()
    });
    let base = rep.row("check the file, no store (baseline)", n, check, &[]);
    let hm_build = time_runs(runs, || {
        let t = Instant::now();
        let data = std::fs::read(&scratch.file).expect("read");
        let m = hashmap_of(&data);
        assert_eq!(m.values().map(Vec::len).sum::<usize>() as u64, n);
        let d = t.elapsed();
        drop(m);
        d
    });
    let hm_base = rep.row("HashMap of the file (baseline)", n, hm_build, &[]);
    let baseline = &[("check", base), ("HashMap", hm_base)][..];

    let mut k = 0u64;
    let sqlite = time_runs(runs, || {
        k += 1;
        let dir = tmp.join(format!("import-{k}"));
        let d = rt.block_on(async {
            let s = Store::open(&StoreLocation::sqlite_in_dir(&dir), config())
                .await
                .expect("open");
            let d = import(&s, &scratch.file, "bench", n).await;
            s.close().await;
            d
        });
        let _ = std::fs::remove_dir_all(&dir);
        d
    });
    rep.row("SQLite import", n, sqlite, baseline);

    let pg_url = std::env::var("ECOS_TEST_POSTGRES_URL").ok();
    if let Some(url) = &pg_url {
        let pg = time_runs(runs, || {
            k += 1;
            let schema = format!("bench_{}_{k}", std::process::id());
            rt.block_on(async {
                let s = Store::open(
                    &StoreLocation::Postgres {
                        url: url.clone(),
                        schema: Some(schema.clone()),
                    },
                    config(),
                )
                .await
                .expect("open");
                let d = import(&s, &scratch.file, "bench", n).await;
                s.close().await;
                drop_schema(url, &schema).await;
                d
            })
        });
        rep.row("PostgreSQL import", n, pg, baseline);
    } else {
        println!("PostgreSQL skipped: ECOS_TEST_POSTGRES_URL is not set");
    }

    // ------------------------------------------------------------------ lookups
    println!("\n-- supplier-at-instant lookups against a store of {n} rows");
    let tz = TimeZone::get(&config().as_of_time_zone).expect("time zone");
    let mem = hashmap_of(&data);
    let qs: Vec<(Mpxn, Timestamp)> = (0..nlook)
        .map(|i| (key(&keys, i).clone(), lookup_instant(i)))
        .collect();
    let hm = time_runs(runs, || {
        let t = Instant::now();
        let mut found = 0usize;
        for (m, at) in &qs {
            let d = at.to_zoned_datetime(tz.clone()).date();
            if let Some(h) = mem.get(m.as_str().as_bytes()) {
                found += usize::from(
                    h.iter()
                        .any(|(f, t, _)| *f <= d && t.is_none_or(|t| d <= t)),
                );
            }
        }
        black_box(found);
        t.elapsed()
    });
    let hm_rate = rep.row("HashMap of the file, one thread", nlook as u64, hm, &[]);
    drop(mem);

    let dir = tmp.join("lookup");
    scratch.dirs.push(dir.clone());
    let store = rt.block_on(async {
        let s = Store::open(&StoreLocation::sqlite_in_dir(&dir), config())
            .await
            .expect("open");
        import(&s, &scratch.file, "bench", n).await;
        s
    });
    // The same kind of connection the store's read path uses: rusqlite, cached statement.
    let db = dir.join("ecos.db");
    let select1 = |threads: usize| {
        time_runs(runs, || {
            let per = nlook / threads;
            let t = Instant::now();
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(|| {
                        let conn = rusqlite::Connection::open(&db).expect("open direct");
                        let mut st = conn.prepare_cached("SELECT 1").expect("prepare");
                        for _ in 0..per {
                            let v: i64 = st.query_row([], |r| r.get(0)).expect("select 1");
                            black_box(v);
                        }
                    });
                }
            });
            t.elapsed()
        })
    };
    let s1 = rep.row(
        "SQLite bare SELECT 1, one thread",
        nlook as u64,
        select1(1),
        &[],
    );
    let s2 = rep.row(
        "SQLite bare SELECT 1, two threads",
        nlook as u64,
        select1(2),
        &[],
    );
    let mut found_total = 0;
    let single = time_runs(runs, || {
        let (d, found) = rt.block_on(lookups(&store, &keys, nlook, 1));
        found_total = found;
        d
    });
    let single_rate = rep.row(
        "SQLite supplier at instant, one thread",
        nlook as u64,
        single,
        &[("SELECT 1", s1), ("HashMap", hm_rate)],
    );
    let two = time_runs(runs, || rt.block_on(lookups(&store, &keys, nlook, 2)).0);
    rep.row(
        "SQLite supplier at instant, two threads",
        nlook as u64,
        two,
        &[("SELECT 1 ×2", s2), ("HashMap", hm_rate)],
    );
    let bat = time_runs(runs, || rt.block_on(batched(&store, &keys, nlook)));
    rep.row(
        "SQLite registered_suppliers_on (one call)",
        nlook as u64,
        bat,
        &[("SELECT 1", s1)],
    );
    let sqlx1 = time_runs(runs, || rt.block_on(pings(&store, nlook / 4, 1)));
    rep.row(
        "SQLite SELECT 1 through the sqlx pool",
        (nlook / 4) as u64,
        sqlx1,
        &[("SELECT 1", s1)],
    );
    println!(
        "({found_total} of {nlook} questions had a supplier; HashMap is {:.1} × the SQLite lookup)",
        hm_rate / single_rate
    );
    rt.block_on(store.close());

    if let Some(url) = &pg_url {
        let schema = format!("bench_{}_lookup", std::process::id());
        let store = rt.block_on(async {
            let s = Store::open(
                &StoreLocation::Postgres {
                    url: url.clone(),
                    schema: Some(schema.clone()),
                },
                config(),
            )
            .await
            .expect("open");
            import(&s, &scratch.file, "bench", n).await;
            s
        });
        let np = (nlook / 4).max(1);
        let p1 = time_runs(runs, || rt.block_on(pings(&store, np, 4)));
        let p1r = rep.row("PostgreSQL SELECT 1, four tasks", np as u64, p1, &[]);
        let l4 = time_runs(runs, || rt.block_on(lookups(&store, &keys, np, 4)).0);
        rep.row(
            "PostgreSQL supplier at instant, four tasks",
            np as u64,
            l4,
            &[("SELECT 1", p1r)],
        );
        let bat = time_runs(runs, || rt.block_on(batched(&store, &keys, nlook)));
        rep.row(
            "PostgreSQL registered_suppliers_on (one call)",
            nlook as u64,
            bat,
            &[("SELECT 1", p1r)],
        );
        rt.block_on(async {
            store.close().await;
            drop_schema(url, &schema).await;
        });
    }
    drop(scratch);
    println!("\nsummary:");
    for l in &rep.lines {
        println!("  {l}");
    }
}
