//! The migration against a simulated fleet behind a seeded WAN with loss, offline devices
//! and first-time refusals (30/17/5). The WAN runs in real time with millisecond
//! latencies; the runner is driven by a virtual clock (5-minute steps, 40 ms of real time
//! apart) so that days of throttles pass in seconds. (tokio's paused clock cannot be
//! used: it jumps while SQLite works on its own thread and times the pool out.) every device ends
//! migrated or excluded with a reason, nothing is sent while a change of supplier is
//! pending, the throttles hold (checked from the transition log), a 6.23 after migration
//! is accepted only when ECoS-signed, and killing the runner at random points and
//! restarting it ends the same way with no counter reused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ecos_migration::config::Throttle;
use ecos_migration::{MigrationConfig, Migrator};
use ecos_party::api::BoxFuture;
use ecos_party::{CosKey, DeviceTransport, PartyKeys};
use ecos_sim::device::DeviceContext;
use ecos_sim::{
    CellId, DeviceKind, Fleet, HeadEnd, KeySource, Latency, SimClock, SimWan, SupplierCredentials,
    Templates, WanConfig,
};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Eui64, PathPolicy};
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, MigrationState as S, NewRequest, RequestKind,
    RequestState, RequestUpdate, Store, StoreLocation,
};
use jiff::Timestamp;

const BASE: u64 = 0x00DB_0000_0000_1000;
const SUPPLIER_A: u64 = 0x90B3_D51F_3001_0000;
const SUPPLIER_B: u64 = 0x90B3_D51F_3003_0000;

struct WanTransport(SimWan);

impl DeviceTransport for WanTransport {
    fn send<'a>(&'a self, device: Eui64, message: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        let r =
            ecos_sim::DeviceTransport::send(&self.0, device, message).map_err(|e| e.to_string());
        Box::pin(async move { r })
    }
}

struct World {
    pki: Arc<TestPki>,
    store: Store,
    _dir: tempfile::TempDir,
    fleet: Arc<Fleet>,
    transport: Arc<WanTransport>,
    clock: SimClock,
    keys: PartyKeys,
    n: u64,
    /// The runner's virtual time, seconds since the epoch.
    now: Arc<AtomicI64>,
}

impl World {
    fn now(&self) -> Timestamp {
        vnow(&self.now)
    }
}

fn vnow(v: &AtomicI64) -> Timestamp {
    Timestamp::from_second(v.load(Ordering::SeqCst)).expect("virtual time")
}

/// Virtual time per step, and real time between steps.
const STEP_S: i64 = 300;
const REAL_PAUSE: Duration = Duration::from_millis(40);

fn dev(i: u64) -> Eui64 {
    Eui64::from_u64(BASE + i)
}

fn config() -> MigrationConfig {
    let mut c = MigrationConfig {
        throttle: Throttle {
            per_day: 12,
            per_hub_per_day: 1,
            per_region_per_day: 8,
            per_region: [("south".to_string(), 5)].into_iter().collect(),
            max_in_flight: 6,
            batch_size: 4,
        },
        response_timeout_s: 600,
        ..MigrationConfig::default()
    };
    for p in [
        &mut c.retry.wan,
        &mut c.retry.busy,
        &mut c.retry.certificate,
        &mut c.retry.other,
    ] {
        p.base_delay_s = 1800;
        p.max_delay_s = 4 * 3600;
    }
    c
}

async fn world(n: u64, wan: WanConfig) -> World {
    let pki = Arc::new(TestPki::generate(&TestPkiSpec::demo()).expect("pki"));
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(dir.path()),
        ecos_store::StoreConfig::default(),
    )
    .await
    .expect("store");
    let start: Timestamp = "2026-06-01T00:00:00Z".parse().expect("t");
    let clock = SimClock::starting_at(start);
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let fleet = Arc::new(Fleet::new(ctx, KeySource::TestPki(pki.clone())));
    let t = Templates::from_test_pki(&pki, Eui64::from_u64(SUPPLIER_A)).expect("templates");
    fleet.generate(&t, dev(0), n, DeviceKind::Esme, 0);
    for i in 0..n {
        let creds = pki.mint_device(dev(i)).expect("mint");
        let mut d = Device::new(dev(i), DeviceType::Esme, DeviceStatus::Commissioned);
        d.cos_credential = Some(CosCredential::Transitional);
        d.ka_cert = Some(creds.ka.cert.der().to_vec());
        d.ds_cert = Some(creds.ds.cert.der().to_vec());
        d.comms_hub = Some(Eui64::from_u64(0x00DB_FFFF_0000_0000 + i / 2));
        d.csp_region = Some(if i % 3 == 0 { "south" } else { "north" }.into());
        d.firmware_version = Some("4.2.0".into());
        d.last_contact = Some("2026-05-31T00:00:00Z".parse().expect("t"));
        store.upsert_device(&d).await.expect("device");
    }
    let (wan, mut rx) = SimWan::start(fleet.clone(), wan, clock).expect("wan");
    // The DSP adapter: every device message is kept in the store until processed.
    let pump_store = store.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            pump_store
                .migration_inbox_push(m.device, &m.bytes, m.at)
                .await
                .expect("inbox");
        }
    });
    let keys = PartyKeys {
        tcos: CosKey {
            signer: Arc::new(pki.tcos().signer().expect("key")),
            certificate: pki.tcos().cert.clone(),
        },
        ecos: CosKey {
            signer: Arc::new(pki.ecos().signer().expect("key")),
            certificate: pki.ecos().cert.clone(),
        },
        acb: Arc::new(pki.acb_ka().key_agreement().expect("key")),
        dsp: Arc::new(pki.dsp_xml_sign().signer().expect("key")),
        dsp_certificate: pki.dsp_xml_sign().cert.clone(),
    };
    World {
        pki,
        store,
        _dir: dir,
        fleet,
        transport: Arc::new(WanTransport(wan)),
        clock,
        keys,
        n,
        now: Arc::new(AtomicI64::new(start.as_second())),
    }
}

fn faulty_wan() -> WanConfig {
    WanConfig {
        seed: 7,
        latency: Latency::Uniform {
            min_ms: 1.0,
            max_ms: 10.0,
        },
        loss: 0.08,
        offline_share: 0.1,
        offline_start_within_s: 0,
        offline_duration_s: 1,
        refuse_share: 0.35,
        refuse_times: 1,
        ..WanConfig::default()
    }
}

fn migrator(w: &World) -> Migrator {
    Migrator::new(
        w.store.clone(),
        w.keys.clone(),
        vec![w.pki.issuing_ca().cert.clone()],
        config(),
        w.transport.clone(),
    )
    .expect("migrator")
}

async fn all_terminal(w: &World) -> bool {
    let c = w.store.migration_counts().await.expect("counts");
    let terminal: u64 = ["migrated", "excluded", "failed-permanent"]
        .iter()
        .map(|s| c.by_state.get(*s).copied().unwrap_or(0))
        .sum();
    terminal == w.n
}

/// Check the end state and the log; returns the states by device.
async fn check_outcome(w: &World, cos_done_at: Option<(Eui64, Timestamp)>) -> BTreeMap<Eui64, S> {
    let cfg = config();
    let ecos_ski = w.pki.ecos().cert.ski().expect("ski").to_vec();
    let mut states = BTreeMap::new();
    for i in 0..w.n {
        let r = w.store.migration_record(dev(i)).await.unwrap().unwrap();
        let inv = w.store.device(dev(i)).await.unwrap().unwrap();
        let cell = w
            .fleet
            .with_device(dev(i), |d| {
                d.cell(CellId::TransCosDs).map(|a| a.ski.clone())
            })
            .flatten()
            .unwrap();
        match r.state {
            S::Migrated => {
                assert_eq!(inv.cos_credential, Some(CosCredential::Enduring));
                assert_eq!(cell, ecos_ski, "device {} holds the ECoS anchor", dev(i));
            }
            S::Excluded | S::FailedPermanent => {
                assert!(r.reason.as_deref().is_some_and(|s| !s.is_empty()));
                assert_ne!(
                    cell,
                    ecos_ski,
                    "device {} left the migration although it holds the ECoS anchor",
                    dev(i)
                );
                assert_eq!(inv.cos_credential, Some(CosCredential::Transitional));
            }
            other => panic!("device {} ended {other}", dev(i)),
        }
        states.insert(dev(i), r.state);
    }
    // The log: throttles per UTC day, in flight, counters, pauses.
    let log = w
        .store
        .migration_transitions_since(0, 1_000_000)
        .await
        .unwrap();
    let mut per_day: HashMap<i64, u64> = HashMap::new();
    let mut per_hub: HashMap<(i64, String), u64> = HashMap::new();
    let mut per_region: HashMap<(i64, String), u64> = HashMap::new();
    let mut flying: HashSet<Eui64> = HashSet::new();
    let mut max_flying = 0usize;
    let mut counters: HashMap<Eui64, u64> = HashMap::new();
    let mut all_counters = HashSet::new();
    for t in &log {
        if t.to.is_in_flight() {
            flying.insert(t.eui);
        } else {
            flying.remove(&t.eui);
        }
        max_flying = max_flying.max(flying.len());
        if t.to == S::Sent {
            let day = t.at.as_second().div_euclid(86_400);
            *per_day.entry(day).or_default() += 1;
            let hub = t.comms_hub.unwrap().to_compact();
            *per_hub.entry((day, hub)).or_default() += 1;
            *per_region
                .entry((day, t.csp_region.clone().unwrap()))
                .or_default() += 1;
            let c = t.gbcs_counter.expect("counter on sent");
            assert!(all_counters.insert(c), "counter {c} used twice");
            if let Some(prev) = counters.insert(t.eui, c) {
                assert!(c > prev, "counters increase per device");
            }
            if let Some((d, done)) = cos_done_at {
                if d == t.eui {
                    assert!(
                        t.at >= done,
                        "sent at {} while a CoS request was pending",
                        t.at
                    );
                }
            }
        }
    }
    assert!(
        per_day.values().all(|n| *n <= cfg.throttle.per_day),
        "{per_day:?}"
    );
    assert!(
        per_hub.values().all(|n| *n <= cfg.throttle.per_hub_per_day),
        "{per_hub:?}"
    );
    for ((_, r), n) in &per_region {
        assert!(*n <= cfg.throttle.region_cap(Some(r)), "{r}: {n}");
    }
    assert!(
        max_flying as u64 <= cfg.throttle.max_in_flight,
        "{max_flying}"
    );
    assert!(per_hub.values().any(|n| *n == 1));
    states
}

/// A 6.23 to a migrated device: the ECoS-signed one is accepted, a TCoS-signed one not;
/// to a device still on TCoS, the reverse.
async fn check_6_23(w: &World, states: &BTreeMap<Eui64, S>) {
    let o = w.pki.organisation(Eui64::from_u64(SUPPLIER_B)).unwrap();
    let creds = SupplierCredentials {
        ds: o.ds.cert.clone(),
        ka: o.ka.cert.clone(),
        pp_ka: None,
        path: vec![w.pki.issuing_ca().cert.clone()],
    };
    let head = |k: &CosKey| HeadEnd {
        cos: k.signer.clone(),
        cos_eui: k.eui().unwrap(),
        acb: w.keys.acb.clone(),
        keys: w.fleet.keys().clone(),
    };
    let (ecos, tcos) = (head(&w.keys.ecos), head(&w.keys.tcos));
    let migrated = states
        .iter()
        .find(|(_, s)| **s == S::Migrated)
        .map(|(e, _)| *e)
        .unwrap();
    // The party chooses by the inventory's credential; the counter comes from the shared source.
    let inv = w.store.device(migrated).await.unwrap().unwrap();
    assert_eq!(inv.cos_credential, Some(CosCredential::Enduring));
    let ctr = w
        .store
        .reserve_gbcs_counters(ecos_party::state::COS_COUNTER, 2)
        .await
        .unwrap();
    let now = w.clock.now();
    let bad = tcos
        .supplier_by_trans_cos(migrated, ctr.start, &creds, None)
        .unwrap();
    assert!(
        w.fleet.handle(migrated, &bad, now, None).is_err(),
        "TCoS refused after migration"
    );
    let good = ecos
        .supplier_by_trans_cos(migrated, ctr.start + 1, &creds, None)
        .unwrap();
    let h = w.fleet.handle(migrated, &good, now, None).unwrap();
    assert!(
        h.outcome.unwrap().all_succeeded(),
        "ECoS-signed 6.23 accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_with_failures_ends_migrated_or_excluded_within_throttles() {
    let w = world(24, faulty_wan()).await;
    // A change of supplier pending for device 0 (first in order) until day 2.
    w.store
        .insert_request(&NewRequest {
            request_id: "P1".into(),
            originator: Eui64::from_u64(SUPPLIER_B),
            device: dev(0),
            kind: RequestKind::Immediate,
            execution_time: None,
            request_xml: None,
        })
        .await
        .unwrap();
    let m = migrator(&w);
    let mut released = None;
    let mut saw_pause = false;
    for _ in 0..(40 * 24 * 12) {
        m.step(w.now()).await.unwrap();
        let r1 = w.store.migration_record(dev(0)).await.unwrap();
        saw_pause |= r1.as_ref().is_some_and(|r| r.state == S::Paused);
        if released.is_none() && w.now() >= "2026-06-02T00:00:00Z".parse().unwrap() {
            w.store
                .transition_request(
                    "P1",
                    &[RequestState::Received],
                    RequestUpdate::to(RequestState::Completed),
                )
                .await
                .unwrap();
            released = Some(w.now());
        }
        if released.is_some() && all_terminal(&w).await {
            break;
        }
        tokio::time::sleep(REAL_PAUSE).await;
        w.now.fetch_add(STEP_S, Ordering::SeqCst);
    }
    assert!(
        saw_pause,
        "device 0 was paused while its CoS request was pending"
    );
    let states = check_outcome(&w, released.map(|t| (dev(0), t))).await;
    let migrated = states.values().filter(|s| **s == S::Migrated).count();
    assert!(migrated >= 20, "{states:?}");
    assert_eq!(states[&dev(0)], S::Migrated);
    let st = w.transport.0.stats();
    assert!(
        st.refusals > 0 && st.lost_down + st.lost_up + st.offline > 0,
        "{st:?}"
    );
    let c = w.store.migration_counts().await.unwrap();
    eprintln!("final: {:?}; wan {st:?}", c.by_state);
    check_6_23(&w, &states).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_runner_ends_the_same_way() {
    let w = world(18, faulty_wan()).await;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    for _ in 0..400 {
        let m = migrator(&w);
        let now = w.now.clone();
        let task = tokio::spawn(async move {
            loop {
                m.step(vnow(&now)).await.unwrap();
                tokio::time::sleep(REAL_PAUSE).await;
                now.fetch_add(STEP_S, Ordering::SeqCst);
            }
        });
        // Run for a pseudo-random while (up to ~40 steps), then kill it mid-flight.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let ms = 1 + seed % 1600;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        task.abort();
        let _ = task.await;
        kills += 1;
        if all_terminal(&w).await {
            break;
        }
    }
    assert!(kills >= 3, "killed {kills} times");
    let states = check_outcome(&w, None).await;
    assert!(
        states.values().filter(|s| **s == S::Migrated).count() >= 14,
        "{states:?}"
    );
}

/// Responses to 0x0106 dropped after the device executed it (half of them): the device
/// holds the ECoS certificate but nobody hears of it. The runner reads the {5, DS} cell
/// (CS02a) after the time-out and marks such devices migrated instead of retrying them
/// into exclusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_success_answers_are_settled_by_reading_the_cos_cell() {
    let w = world(
        16,
        WanConfig {
            seed: 11,
            latency: Latency::Uniform {
                min_ms: 1.0,
                max_ms: 5.0,
            },
            response_loss: 0.5,
            ..WanConfig::default()
        },
    )
    .await;
    let m = migrator(&w);
    let mut reads = 0;
    for _ in 0..(20 * 24 * 12) {
        reads += m.step(w.now()).await.unwrap().reads;
        if all_terminal(&w).await {
            break;
        }
        tokio::time::sleep(REAL_PAUSE).await;
        w.now.fetch_add(STEP_S, Ordering::SeqCst);
    }
    let states = check_outcome(&w, None).await;
    assert!(
        states.values().all(|s| *s == S::Migrated),
        "every device took the certificate, so every one ends migrated: {states:?}"
    );
    let st = w.transport.0.stats();
    assert!(st.lost_responses > 0, "{st:?}");
    let mut by_read = 0;
    for i in 0..w.n {
        let t = w.store.migration_transitions(dev(i)).await.unwrap();
        let last = t.last().unwrap();
        if last.detail.contains("CS02a read") {
            assert_eq!(last.from, Some(S::Verifying));
            assert_eq!(
                last.attempt, 1,
                "migrated on the first attempt, never resent"
            );
            by_read += 1;
        }
    }
    assert_eq!(
        by_read, st.lost_responses,
        "each lost answer settled by one read"
    );
    assert!(reads >= by_read);
}

/// A step reads what the batch needs, not the inventory: with 1,008 transitional devices
/// and a batch of 4, the first step classifies one discovery page (256 devices) and
/// selects 4; the second reads the tracked candidate pool and discovers nothing more. The
/// discovery cursor is kept in the store, so a new runner resumes from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_costs_the_batch_not_the_population() {
    let w = world(8, WanConfig::default()).await;
    for i in 8..1008 {
        let mut d = Device::new(dev(i), DeviceType::Esme, DeviceStatus::Commissioned);
        d.cos_credential = Some(CosCredential::Transitional);
        d.comms_hub = Some(Eui64::from_u64(0x00DC_FFFF_0000_0000 + i));
        d.csp_region = Some("north".into());
        d.last_contact = Some("2026-05-31T00:00:00Z".parse().unwrap());
        w.store.upsert_device(&d).await.unwrap();
    }
    let tracked = |c: ecos_store::migration::MigrationCounts| c.by_state.values().sum::<u64>();
    let r = migrator(&w).step(w.now()).await.unwrap();
    assert_eq!(r.selected, 4);
    assert_eq!(tracked(w.store.migration_counts().await.unwrap()), 256);
    assert_eq!(
        w.store.migration_cursor().await.unwrap(),
        (Some(dev(255)), 0)
    );
    let selected: Vec<u64> = w
        .store
        .migration_records_in(S::Sent, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.eui.to_u64() - BASE)
        .collect();
    assert_eq!(selected, vec![0, 2, 4, 6], "EUI order, one per comms hub");
    w.now.fetch_add(STEP_S, Ordering::SeqCst);
    // A new runner (as after a restart): the pool serves it, the cursor stays.
    let r = migrator(&w).step(w.now()).await.unwrap();
    assert_eq!(r.selected, 2, "max_in_flight 6 leaves room for 2");
    assert_eq!(tracked(w.store.migration_counts().await.unwrap()), 256);
    assert_eq!(
        w.store.migration_cursor().await.unwrap(),
        (Some(dev(255)), 0)
    );
}
