//! `ecos migrate run`, the built binary in its own process, killed with SIGKILL at
//! random points several times and restarted, over a simulated fleet that outlives it:
//! the meters sit behind a head end over HTTP in this test process (the
//! `--device-endpoint` protocol), so what each device executed and refused is known
//! whatever happens to the runner. Faults are planned per device: every seventh meter
//! is dead (the head end answers 503, a WAN failure, until the retry strategy excludes
//! it), some lose the answer to their first command (settled by a CS02a read of the CoS
//! cell), some are unreachable once. The same fleet is first migrated by one
//! uninterrupted run. Then:
//!
//! - both runs end in the same final state: every device migrated (the meter holds the
//!   ECoS anchor, the inventory says enduring) or excluded with a reason (the meter
//!   still holds the TCoS anchor);
//! - no command reached a meter twice (no GBCS counter arrived twice, counters rise
//!   per meter), and no meter executed a 0x0106 more than once;
//! - the transition log never reuses a counter, and `ecos audit verify` passes.
//!
//! `ECOS_FAULTS_SEED` replays the kill points, `ECOS_FAULTS_KILLS` sets their number.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use ecos_sim::device::DeviceContext;
use ecos_sim::{CellId, DeviceKind, Fleet, KeySource, Templates};
use ecos_smki::{Eui64, PathPolicy, TestPki};
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, MigrationState as S, Store, StoreConfig,
    StoreLocation,
};

mod common;
use common::{Rng, audit_verify, ecos, kills_wanted, seed};

const BASE: u64 = 0x00DB_0000_0000_7000;
const DEVICES: u64 = 40;
/// The runner's virtual clock starts here; contacts are recent to it.
const START: &str = "2026-06-01T00:00:00Z";

fn dev(i: u64) -> Eui64 {
    Eui64::from_u64(BASE + i)
}

/// What the head end does with a device's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Healthy,
    /// 503 to everything: a WAN failure per attempt, until excluded.
    Dead,
    /// The first command is executed but its answer is lost.
    LoseFirstAnswer,
    /// The first command does not reach the device (503).
    UnreachableOnce,
}

fn plan(i: u64) -> Plan {
    match (i % 7, i % 5) {
        (0, _) => Plan::Dead,
        (_, 1) => Plan::LoseFirstAnswer,
        (_, 2) => Plan::UnreachableOnce,
        _ => Plan::Healthy,
    }
}

/// One command as the head end saw it.
#[derive(Debug, Clone)]
struct Seen {
    counter: u64,
    /// 0x0106 (true) or the CS02a read.
    update: bool,
    /// Executed by the device (its answer built), refused by it, or not delivered.
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Executed { all_succeeded: bool },
    Refused(String),
    NotDelivered,
}

struct HeadEnd {
    fleet: Arc<Fleet>,
    seen: Mutex<BTreeMap<Eui64, Vec<Seen>>>,
}

async fn post(
    State(h): State<Arc<HeadEnd>>,
    UrlPath(eui): UrlPath<String>,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let Ok(device) = eui.parse::<Eui64>() else {
        return (StatusCode::NOT_FOUND, Vec::new());
    };
    let i = device.to_u64().wrapping_sub(BASE);
    let Ok(msg) = ecos_gbcs::Message::decode(&body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let counter = msg.frame.header.counter;
    let update = !matches!(msg.body, ecos_gbcs::Body::ReadCells(_));
    let mut seen = h.seen.lock().expect("lock");
    let before = seen.get(&device).map(Vec::len).unwrap_or(0);
    let deliver = match plan(i) {
        Plan::Dead => false,
        Plan::UnreachableOnce => before > 0,
        _ => true,
    };
    if !deliver {
        seen.entry(device).or_default().push(Seen {
            counter,
            update,
            outcome: Outcome::NotDelivered,
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Vec::new());
    }
    let r = h.fleet.handle(device, &body, jiff::Timestamp::now(), None);
    let (outcome, answer) = match r {
        Ok(handled) => (
            Outcome::Executed {
                all_succeeded: handled.outcome.as_ref().is_some_and(|o| o.all_succeeded()),
            },
            handled.response,
        ),
        Err(e) => (Outcome::Refused(e.to_string()), Vec::new()),
    };
    seen.entry(device).or_default().push(Seen {
        counter,
        update,
        outcome,
    });
    if answer.is_empty() || (plan(i) == Plan::LoseFirstAnswer && before == 0) {
        // Refused (no answer on the WAN) or the answer lost on the way back.
        return (StatusCode::ACCEPTED, Vec::new());
    }
    (StatusCode::OK, answer)
}

/// A fleet of `DEVICES` ESMEs on TCoS behind a head end on loopback; its URL.
async fn head_end(pki: &Arc<TestPki>) -> (Arc<HeadEnd>, String) {
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let fleet = Arc::new(Fleet::new(ctx, KeySource::TestPki(pki.clone())));
    let t = Templates::from_test_pki(pki, ecos_party::demo::SUPPLIER_A).expect("templates");
    fleet.generate(&t, dev(0), DEVICES, DeviceKind::Esme, 0);
    let h = Arc::new(HeadEnd {
        fleet,
        seen: Mutex::new(BTreeMap::new()),
    });
    let app = axum::Router::new()
        .route("/devices/{eui}", axum::routing::post(post))
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (h, url)
}

/// The PKI under `data/pki` and the fleet's inventory in the store.
async fn world(data: &Path, pki: &TestPki) {
    pki.write_to(data.join("pki")).expect("write PKI");
    let store = Store::open(&StoreLocation::sqlite_in_dir(data), StoreConfig::default())
        .await
        .expect("store");
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let creds = pki.mint_device(dev(i)).expect("mint");
        let mut d = Device::new(dev(i), DeviceType::Esme, DeviceStatus::Commissioned);
        d.cos_credential = Some(CosCredential::Transitional);
        d.ka_cert = Some(creds.ka.cert.der().to_vec());
        d.ds_cert = Some(creds.ds.cert.der().to_vec());
        d.comms_hub = Some(Eui64::from_u64(0x00DB_FFFF_0000_7000 + i / 2));
        d.csp_region = Some(if i % 3 == 0 { "south" } else { "north" }.into());
        d.firmware_version = Some("4.2.0".into());
        d.last_contact = Some("2026-05-31T00:00:00Z".parse().expect("t"));
        devices.push(d);
    }
    store.upsert_devices_bulk(&devices).await.expect("devices");
    store.close().await;
    std::fs::write(
        data.join("migration.toml"),
        r#"
response_timeout_s = 600
[eligibility]
max_days_since_contact = 3650
[throttle]
per_day = 1000
per_hub_per_day = 100
max_in_flight = 6
batch_size = 4
[retry]
max_attempts = 12
[retry.wan]
base_delay_s = 600
factor = 1.0
max_delay_s = 600
max_failures = 6
"#,
    )
    .expect("config");
}

fn run_cmd(data: &Path, url: &str) -> std::process::Command {
    let mut c = ecos();
    c.args(["migrate", "run", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(data.join("migration.toml"))
        .args([
            "--device-endpoint",
            url,
            "--step-s",
            "300",
            "--interval-ms",
            "10",
            "--at",
            START,
            "--max-steps",
            "2000",
        ]);
    c
}

/// Run to the end; its output.
async fn run_to_end(data: &Path, url: &str) -> String {
    let mut c = run_cmd(data, url);
    let out = tokio::task::spawn_blocking(move || c.output().expect("ecos migrate run"))
        .await
        .expect("join");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("migration finished"),
        "ecos migrate run: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The final state by device, after checking it against the devices and the log.
async fn prove(data: &Path, h: &HeadEnd, pki: &TestPki) -> BTreeMap<Eui64, S> {
    let store = Store::open(&StoreLocation::sqlite_in_dir(data), StoreConfig::default())
        .await
        .expect("store");
    let ecos_ski = pki.ecos().cert.ski().expect("ski").to_vec();
    let seen = h.seen.lock().expect("lock").clone();
    let mut violations = Vec::new();
    let mut states = BTreeMap::new();
    let mut counters_seen = HashSet::new();
    for i in 0..DEVICES {
        let e = dev(i);
        let r = store.migration_record(e).await.expect("record");
        let inv = store.device(e).await.expect("device").expect("known");
        let cell = h
            .fleet
            .with_device(e, |d| d.cell(CellId::TransCosDs).map(|a| a.ski.clone()))
            .flatten()
            .expect("cell");
        let Some(r) = r else {
            violations.push(format!("{e}: not tracked"));
            continue;
        };
        match r.state {
            S::Migrated => {
                if cell != ecos_ski || inv.cos_credential != Some(CosCredential::Enduring) {
                    violations.push(format!("{e}: migrated but the meter or inventory disagree"));
                }
            }
            S::Excluded | S::FailedPermanent => {
                if r.reason.as_deref().is_none_or(str::is_empty) {
                    violations.push(format!("{e}: left without a reason"));
                }
                if cell == ecos_ski || inv.cos_credential != Some(CosCredential::Transitional) {
                    violations.push(format!("{e}: left although the meter holds ECoS"));
                }
            }
            other => violations.push(format!("{e}: ended {other}")),
        }
        states.insert(e, r.state);
        let mine = seen.get(&e).cloned().unwrap_or_default();
        let mut last = 0;
        let mut executed_updates = 0;
        for s in &mine {
            if !counters_seen.insert(s.counter) {
                violations.push(format!(
                    "{e}: counter {} reached the head end twice",
                    s.counter
                ));
            }
            if s.counter <= last {
                violations.push(format!("{e}: counter {} after {last}", s.counter));
            }
            last = s.counter;
            if s.update
                && s.outcome
                    == (Outcome::Executed {
                        all_succeeded: true,
                    })
            {
                executed_updates += 1;
            }
        }
        if executed_updates > 1 {
            violations.push(format!("{e}: executed the 0x0106 {executed_updates} times"));
        }
        if r.state == S::Migrated && executed_updates != 1 {
            violations.push(format!("{e}: migrated with {executed_updates} executions"));
        }
    }
    let log = store
        .migration_transitions_since(0, u32::MAX)
        .await
        .expect("log");
    let mut counters = HashSet::new();
    for t in log.iter().filter(|t| t.to == S::Sent) {
        let c = t.gbcs_counter.expect("counter on sent");
        if !counters.insert(c) {
            violations.push(format!("{}: counter {c} recorded sent twice", t.eui));
        }
    }
    let chain = store.verify_audit_chain().await.expect("verify");
    if let Some(b) = chain.first_broken {
        violations.push(format!("audit chain broken: {b}"));
    }
    store.close().await;
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_run_killed_and_restarted_ends_as_an_uninterrupted_run() {
    let pki = Arc::new(ecos_party::demo::pki(1).expect("demo PKI"));

    // The reference: one uninterrupted run.
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("reference");
    world(&reference, &pki).await;
    let (h_ref, url_ref) = head_end(&pki).await;
    let t = Instant::now();
    let out = run_to_end(&reference, &url_ref).await;
    let ref_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
    eprintln!(
        "migrate kill: uninterrupted run {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        out.lines().last().unwrap_or_default()
    );
    let want = prove(&reference, &h_ref, &pki).await;
    let ref_commands: usize = h_ref
        .seen
        .lock()
        .expect("lock")
        .values()
        .map(Vec::len)
        .sum();
    eprintln!(
        "migrate kill: {ref_commands} commands reached the head end in the uninterrupted run"
    );
    audit_verify(&reference, None);
    for (i, e) in (0..DEVICES).map(|i| (i, dev(i))) {
        let expected = if plan(i) == Plan::Dead {
            S::Excluded
        } else {
            S::Migrated
        };
        assert_eq!(want[&e], expected, "{e} ({:?})", plan(i));
    }

    // The same fleet, the runner killed at random points and restarted.
    let data = dir.path().join("killed");
    world(&data, &pki).await;
    let (h, url) = head_end(&pki).await;
    let kills = kills_wanted(8);
    let seed = seed();
    eprintln!("migrate kill: seed {seed} (ECOS_FAULTS_SEED to replay), {kills} kills");
    let mut rng = Rng(seed);
    // Kill points scale with the uninterrupted run, so that a fast machine
    // does not finish the whole migration inside the first few kills: each
    // run lives between a fifteenth and a fifth of the reference run (a
    // restart also pays the process start, so three runs cover well under
    // the whole migration).
    let (lo, hi) = ((ref_ms / 15).max(30), (ref_ms / 5).max(60));
    eprintln!("migrate kill: each run killed after {lo}..{hi} ms");
    let t0 = Instant::now();
    let mut done = 0;
    let mut finished_early = false;
    while done < kills && t0.elapsed() < Duration::from_secs(90) {
        let mut child = run_cmd(&data, &url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ecos migrate run");
        if done == 0 {
            // The first kill comes after a command has left (bounded), so
            // that at least one kill lands mid-flight even where a loaded
            // machine makes the process slow to start; the rest are random.
            let by = Instant::now() + Duration::from_secs(60);
            while Instant::now() < by
                && h.seen.lock().expect("lock").is_empty()
                && child.try_wait().expect("try_wait").is_none()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.between(0, hi))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.between(lo, hi))).await;
        }
        if child.try_wait().expect("try_wait").is_some() {
            // It finished before the kill point.
            finished_early = true;
            break;
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        done += 1;
    }
    let commands: usize = h.seen.lock().expect("lock").values().map(Vec::len).sum();
    eprintln!(
        "migrate kill: {done} kills, {commands} commands reached the head end before the last run"
    );
    let t = Instant::now();
    let out = run_to_end(&data, &url).await;
    eprintln!(
        "migrate kill: last run {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        out.lines().last().unwrap_or_default()
    );
    let got = prove(&data, &h, &pki).await;
    audit_verify(&data, None);
    assert_eq!(
        got, want,
        "the killed runs end elsewhere than the uninterrupted one"
    );
    assert!(
        done >= 3,
        "only {done} kills before the run finished (early: {finished_early})"
    );
    assert!(commands > 0, "no kill came after a command left");
}
