//! The migration's two benchmarks, each against a baseline measured in the same run.
//!
//! ```text
//! cargo run --release -p ecos-migration --example migrate_bench -- plan  [DEVICES] [DIR]
//! cargo run --release -p ecos-migration --example migrate_bench -- fleet [DEVICES] [SAMPLE]
//! ```
//!
//! - `plan` (default 1,000,000 devices, DIR default `/tmp/ecos-migrate-bench-plan`, deleted
//!   afterwards): bulk-loads a transitional inventory into a fresh SQLite store (ESME and
//!   GSME, 2% suspended, three regions, two devices per comms hub, no MPxN), then times
//!   the bare paged scan of the devices the planner reads (`migration_view_page` alone:
//!   the baseline) and `plan::plan`, with the peak resident memory of each phase
//!   (`VmHWM`, reset between phases through `/proc/self/clear_refs`). It also times one
//!   selection step of a runner over the whole inventory (the first step: discovery
//!   from the cursor), which must not grow with the population.
//! - `fleet` (default 10,000 devices): the whole migration of a simulated fleet in the
//!   same process (the runner, the real store on SQLite, the simulated devices answering
//!   through a loopback transport into the store's inbox), devices per second; the
//!   baseline is the simulator's own cost: the same number of devices handling a
//!   prebuilt 0x0106 each (or the first SAMPLE devices of the fleet, to shorten a large
//!   run; the fleet is the full one either way). Then `ecos migrate status`'s counts over the migrated fleet:
//!   the maintained counters against the GROUP BY over the whole table (the baseline).
//!
//! Run it under `/usr/bin/time -v` for the process's overall peak.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ecos_migration::config::Throttle;
use ecos_migration::{MigrationConfig, Migrator};
use ecos_party::api::BoxFuture;
use ecos_party::{CosKey, DeviceTransport, PartyKeys};
use ecos_sim::device::DeviceContext;
use ecos_sim::{DeviceKeys, DeviceKind, Fleet, KeySource, Templates};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Eui64, PathPolicy};
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, MigrationState, Store, StoreLocation,
};
use jiff::Timestamp;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const BASE: u64 = 0x00DB_0000_0000_0000;
const HUB: u64 = 0x00DC_0000_0000_0000;

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().expect("instant")
}

fn keys(pki: &TestPki) -> Res<PartyKeys> {
    Ok(PartyKeys {
        tcos: CosKey {
            signer: Arc::new(pki.tcos().signer()?),
            certificate: pki.tcos().cert.clone(),
        },
        ecos: CosKey {
            signer: Arc::new(pki.ecos().signer()?),
            certificate: pki.ecos().cert.clone(),
        },
        acb: Arc::new(pki.acb_ka().key_agreement()?),
        dsp: Arc::new(pki.dsp_xml_sign().signer()?),
        dsp_certificate: pki.dsp_xml_sign().cert.clone(),
    })
}

fn inventory_device(i: u64) -> Device {
    let ty = if i % 2 == 0 {
        DeviceType::Esme
    } else {
        DeviceType::Gsme
    };
    let status = if i % 50 == 0 {
        DeviceStatus::Suspended
    } else {
        DeviceStatus::Commissioned
    };
    let mut d = Device::new(Eui64::from_u64(BASE + i), ty, status);
    d.cos_credential = Some(CosCredential::Transitional);
    d.comms_hub = Some(Eui64::from_u64(HUB + i / 2));
    d.csp_region = Some(["north", "central", "south"][(i % 3) as usize].into());
    d.firmware_version = Some("4.2.0".into());
    d.last_contact = Some("2026-05-30T00:00:00Z".parse().expect("instant"));
    d
}

/// A transport that sends nothing (the plan bench's selection step only selects).
struct Nowhere;

impl DeviceTransport for Nowhere {
    fn send<'a>(&'a self, _: Eui64, _: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("the plan benchmark sends nothing".to_string()) })
    }
}

async fn bench_plan(n: u64, dir: &std::path::Path) -> Res<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(dir),
        ecos_store::StoreConfig::default(),
    )
    .await?;
    let t = Instant::now();
    let chunk = 50_000u64;
    let mut i = 0;
    while i < n {
        let end = (i + chunk).min(n);
        let devs: Vec<Device> = (i..end).map(inventory_device).collect();
        store.upsert_devices_bulk(&devs).await?;
        i = end;
        if i % 1_000_000 == 0 || i == n {
            eprintln!("loaded {i} devices ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    let load_s = t.elapsed().as_secs_f64();
    let cfg = MigrationConfig::default();
    let at = now();

    reset_peak();
    let t = Instant::now();
    let mut after = None;
    let mut seen = 0u64;
    loop {
        let page = store
            .migration_view_page(after, ecos_migration::runner::PAGE, store.as_of_date(at))
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.eui);
        seen += page.len() as u64;
    }
    let scan_s = t.elapsed().as_secs_f64();
    let scan_kib = peak_kib();
    assert_eq!(seen, n);

    reset_peak();
    let t = Instant::now();
    let p = ecos_migration::plan::plan(&store, &cfg, at, 0.1).await?;
    let plan_s = t.elapsed().as_secs_f64();
    let plan_kib = peak_kib();
    assert_eq!(p.scanned, n);

    // One selection step over the whole inventory (nothing tracked yet).
    let pki = TestPki::generate(&TestPkiSpec::demo())?;
    let m = Migrator::new(
        store.clone(),
        keys(&pki)?,
        vec![pki.issuing_ca().cert.clone()],
        cfg.clone(),
        Arc::new(Nowhere),
    )?;
    reset_peak();
    let t = Instant::now();
    let r = m.step(at).await?;
    let step_s = t.elapsed().as_secs_f64();
    let step_kib = peak_kib();
    let size = std::fs::metadata(dir.join("ecos.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
    println!(
        "plan over {n} devices on SQLite (database {} MB)",
        size >> 20
    );
    println!("  load (bulk upsert):          {load_s:>9.1} s");
    println!(
        "  baseline bare paged scan:    {scan_s:>9.1} s  peak RSS {:>7} MiB  ({:.0} devices/s)",
        scan_kib / 1024,
        n as f64 / scan_s
    );
    println!(
        "  plan:                        {plan_s:>9.1} s  peak RSS {:>7} MiB  = {:.2} x the scan; {} candidates, {} days, bound by {}",
        plan_kib / 1024,
        plan_s / scan_s,
        p.candidates,
        p.days,
        p.binding
    );
    println!(
        "  first runner step:           {step_s:>9.3} s  peak RSS {:>7} MiB  = {:.5} x the scan; selected {} (batch {})",
        step_kib / 1024,
        step_s / scan_s,
        r.selected,
        cfg.throttle.batch_size
    );
    Ok(())
}

/// Device → simulator → store inbox, in the same process, at the runner's clock.
struct Loopback {
    fleet: Arc<Fleet>,
    store: Store,
    now: Timestamp,
}

impl DeviceTransport for Loopback {
    fn send<'a>(&'a self, device: Eui64, message: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Ok(h) = self.fleet.handle(device, &message, self.now, None) {
                self.store
                    .migration_inbox_push(device, &h.response, self.now)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}

async fn bench_fleet(n: u64, sample: u64) -> Res<()> {
    let pki = Arc::new(TestPki::generate(&TestPkiSpec::demo())?);
    let euis: Vec<Eui64> = (0..n).map(|i| Eui64::from_u64(BASE + i)).collect();
    let t = Instant::now();
    let creds = pki.mint_devices(&euis)?;
    let mut map = HashMap::with_capacity(creds.len());
    for c in &creds {
        map.insert(
            c.eui,
            DeviceKeys {
                ds: Arc::new(c.ds.signer()?),
                ka: Arc::new(c.ka.key_agreement()?),
            },
        );
    }
    let map = Arc::new(map);
    // The demo PKI's first supplier (as in the simulator's tests).
    let templates = Templates::from_test_pki(&pki, Eui64::from_u64(0x90B3_D51F_3001_0000))?;
    let new_fleet = || {
        let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
        let f = Arc::new(Fleet::new(ctx, KeySource::Fixed(map.clone())));
        f.generate(&templates, euis[0], n, DeviceKind::Esme, 0);
        f
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(dir.path()),
        ecos_store::StoreConfig::default(),
    )
    .await?;
    for part in creds.chunks(20_000) {
        let devs: Vec<Device> = part
            .iter()
            .map(|c| {
                let i = c.eui.to_u64() - BASE;
                let mut d = inventory_device(i);
                d.device_type = DeviceType::Esme;
                d.status = DeviceStatus::Commissioned;
                d.comms_hub = Some(Eui64::from_u64(HUB + i));
                d.ka_cert = Some(c.ka.cert.der().to_vec());
                d.ds_cert = Some(c.ds.cert.der().to_vec());
                d
            })
            .collect();
        store.upsert_devices_bulk(&devs).await?;
    }
    eprintln!(
        "set up {n} devices (minted, simulated, stored) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let party = keys(&pki)?;
    let path = vec![pki.issuing_ca().cert.clone()];
    let at = now();

    // Baseline: the simulator alone, each device handling a prebuilt 0x0106 (built
    // 10,000 at a time outside the timing, so that a large fleet's commands are not all
    // held at once).
    let fleet = new_fleet();
    let mut sim_s = 0.0;
    let sample = sample.clamp(1, n);
    let base = &creds[..sample as usize];
    for (k, part) in base.chunks(10_000).enumerate() {
        let cmds: Vec<Vec<u8>> = part
            .iter()
            .enumerate()
            .map(|(i, c)| {
                ecos_migration::command::build(
                    &party,
                    &path,
                    c.eui,
                    Some(c.ka.cert.der()),
                    1_000_000 + (k * 10_000 + i) as u64,
                    true,
                    false,
                )
            })
            .collect::<Result<_, _>>()?;
        let t = Instant::now();
        for (c, cmd) in part.iter().zip(&cmds) {
            let h = fleet.handle(c.eui, cmd, at, None)?;
            assert!(h.outcome.is_some_and(|o| o.all_succeeded()));
        }
        sim_s += t.elapsed().as_secs_f64();
    }
    drop(fleet);
    drop(creds);
    eprintln!("baseline: simulator alone {sim_s:.1} s");

    // The migration, end to end.
    let fleet = new_fleet();
    let cfg = MigrationConfig {
        throttle: Throttle {
            per_day: u64::MAX / 2,
            per_hub_per_day: 1,
            per_region_per_day: u64::MAX / 2,
            per_region: Default::default(),
            max_in_flight: 10_000,
            batch_size: 2_000,
        },
        ..MigrationConfig::default()
    };
    let m = Migrator::new(
        store.clone(),
        party,
        path,
        cfg,
        Arc::new(Loopback {
            fleet,
            store: store.clone(),
            now: at,
        }),
    )?;
    let t = Instant::now();
    let mut steps = 0u64;
    loop {
        m.step(at).await?;
        steps += 1;
        let done = store
            .migration_count_in(&[MigrationState::Migrated])
            .await?;
        if done == n {
            break;
        }
        if steps % 25 == 0 {
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "step {steps}: {done} migrated in {s:.0} s ({:.0} devices/s)",
                done as f64 / s
            );
        }
        if steps > 10 * n / 2_000 + 100 {
            return Err(format!("not finished after {steps} steps: {done} of {n}").into());
        }
    }
    let mig_s = t.elapsed().as_secs_f64();
    // Status over the migrated fleet: the maintained counters against the GROUP BY over
    // the whole table they replace (each the best of five).
    let mut counts_s = f64::MAX;
    let mut scan_s = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let a = store.migration_counts().await?;
        counts_s = counts_s.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = store.migration_counts_by_scan().await?;
        scan_s = scan_s.min(t.elapsed().as_secs_f64());
        if a != b {
            return Err(format!("maintained counts {a:?} differ from the scan's {b:?}").into());
        }
    }
    store.close().await;
    let sim_rate = sample as f64 / sim_s;
    let mig_rate = n as f64 / mig_s;
    println!("migration of a {n}-device simulated fleet, in one process");
    println!(
        "  baseline: simulator alone ({sample} of the {n} devices) {sim_s:>8.1} s  {sim_rate:>9.0} devices/s"
    );
    println!(
        "  migration end to end ({steps} steps) {mig_s:>8.1} s  {mig_rate:>9.0} devices/s  = {:.2} x the simulator's rate",
        mig_rate / sim_rate
    );
    println!(
        "  status counts over {n} tracked devices: maintained {:.3} ms, GROUP BY scan {:.3} ms (baseline) = {:.4} x the scan",
        counts_s * 1e3,
        scan_s * 1e3,
        counts_s / scan_s
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("");
    let n = |d: u64| -> Res<u64> {
        match args.get(1) {
            None => Ok(d),
            Some(s) => Ok(s.replace('_', "").parse()?),
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match what {
        "plan" => {
            let dir = args
                .get(2)
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| "/tmp/ecos-migrate-bench-plan".into());
            rt.block_on(bench_plan(n(1_000_000)?, &dir))
        }
        "fleet" => {
            let n = n(10_000)?;
            let sample = match args.get(2) {
                None => n,
                Some(s) => s.replace('_', "").parse()?,
            };
            rt.block_on(bench_fleet(n, sample))
        }
        _ => Err(
            "usage: migrate_bench plan [DEVICES] [DIR] | fleet [DEVICES] [BASELINE_SAMPLE]".into(),
        ),
    }
}
