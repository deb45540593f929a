//! The WAN under tokio's paused (virtual) clock: latency, loss, offline
//! windows, refusals, future-dated alerts, and replay from the seed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ecos_gbcs::{Body, ExecutionDateTime, Message};
use ecos_sim::device::DeviceContext;
use ecos_sim::wan::WanStatsSnapshot;
use ecos_sim::{
    DeviceKind, DeviceTransport, Fleet, HeadEnd, KeySource, Latency, SeededKeys, SimClock, SimWan,
    SupplierCredentials, Templates, WanConfig,
};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Eui64, PathPolicy};

const BASE: u64 = 0x00DB_0000_0000_0000;

struct Setup {
    pki: TestPki,
    fleet: Arc<Fleet>,
    head: HeadEnd,
}

fn setup(n: u64) -> Setup {
    let pki = TestPki::generate(&TestPkiSpec::demo()).unwrap();
    let keys = KeySource::Seeded(SeededKeys { seed: 3 });
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let fleet = Arc::new(Fleet::new(ctx, keys.clone()));
    let t = Templates::from_test_pki(&pki, Eui64::from_u64(0x90B3_D51F_3001_0000)).unwrap();
    fleet.generate(&t, Eui64::from_u64(BASE), n, DeviceKind::Esme, 0);
    let head = HeadEnd {
        cos: Arc::new(pki.tcos().signer().unwrap()),
        cos_eui: pki.tcos().cert.eui().unwrap(),
        acb: Arc::new(pki.acb_ka().key_agreement().unwrap()),
        keys,
    };
    Setup { pki, fleet, head }
}

/// Outcome per device: the statuses of its answers, in arrival order, and
/// the arrival offsets in ms.
type Outcomes = BTreeMap<Eui64, Vec<(u64, String)>>;

async fn migrate_all(cfg: WanConfig, n: u64, rounds: u64) -> (Outcomes, WanStatsSnapshot) {
    let s = setup(n);
    let start: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let clock = SimClock::starting_at(start);
    let (wan, mut rx) = SimWan::start(s.fleet.clone(), cfg, clock).unwrap();
    let ecos = s.pki.ecos().cert.clone();
    let path = vec![s.pki.issuing_ca().cert.clone()];
    let mut out = Outcomes::new();
    for round in 0..rounds {
        for i in 0..n {
            let eui = Eui64::from_u64(BASE + i);
            let cmd = s
                .head
                .trans_cos_by_trans_cos(eui, 100 * (round + 1) + i, &ecos, &path, None)
                .unwrap();
            wan.send(eui, cmd).unwrap();
        }
        // Collect until the WAN is quiet for a (virtual) minute.
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            let msg = Message::decode(&m.bytes).unwrap();
            msg.frame
                .verify_signature(&s.fleet.keys().ds_public(m.device).unwrap())
                .unwrap();
            let Body::Response(r) = msg.body else {
                panic!("not a response")
            };
            let st = r.execution_outcome.unwrap().replacement_outcomes[0]
                .status
                .0;
            let ms = m.at.duration_since(start).as_millis() as u64;
            out.entry(m.device).or_default().push((ms, st.to_string()));
        }
        // Old TCoS commands are refused after a successful migration, so a
        // retry only goes to devices without a success.
    }
    (out, wan.stats())
}

#[tokio::test(start_paused = true)]
async fn perfect_wan_delivers_everything_with_latency() {
    let cfg = WanConfig {
        latency: Latency::Fixed { ms: 1500.0 },
        ..WanConfig::default()
    };
    let (out, st) = migrate_all(cfg, 10, 1).await;
    assert_eq!(out.len(), 10);
    for v in out.values() {
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1, "0");
        assert_eq!(v[0].0, 3000, "1.5 s down + 1.5 s up");
    }
    assert_eq!(st.sent, 10);
    assert_eq!(st.responses, 10);
}

#[tokio::test(start_paused = true)]
async fn lossy_wan_with_refusals_replays_from_the_seed() {
    let cfg = WanConfig {
        seed: 11,
        latency: Latency::LogNormal {
            median_ms: 2000.0,
            sigma: 0.6,
        },
        loss: 0.1,
        offline_share: 0.1,
        offline_start_within_s: 0,
        offline_duration_s: 3600,
        refuse_share: 0.3,
        refuse_times: 1,
        ..WanConfig::default()
    };
    let (a, sa) = migrate_all(cfg.clone(), 60, 2).await;
    let (b, sb) = migrate_all(cfg, 60, 2).await;
    assert_eq!(a, b, "same seed, same run");
    assert_eq!(sa, sb);
    // Every command is accounted for.
    assert_eq!(sa.sent, 120);
    assert_eq!(
        sa.sent,
        sa.lost_down + sa.offline + sa.rejected + sa.errors + sa.lost_up + sa.responses
    );
    assert!(sa.lost_down + sa.lost_up > 0, "{sa:?}");
    assert!(sa.offline > 0, "{sa:?}");
    assert!(sa.refusals > 0, "{sa:?}");
    // Refusing devices refuse the first time with 30, 17 or 5, then succeed
    // (their second attempt is above the first counter); migrated devices
    // reject the second round (old key), silently.
    let statuses: Vec<&str> = a.values().flatten().map(|(_, s)| s.as_str()).collect();
    assert!(statuses.iter().any(|s| ["30", "17", "5"].contains(s)));
    assert!(statuses.contains(&"0"));
    assert!(sa.rejected > 0);
}

#[tokio::test(start_paused = true)]
async fn future_dated_alert_arrives_at_its_time() {
    let s = setup(3);
    let start: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let cfg = WanConfig {
        latency: Latency::Fixed { ms: 500.0 },
        ..WanConfig::default()
    };
    let (wan, mut rx) = SimWan::start(s.fleet.clone(), cfg, SimClock::starting_at(start)).unwrap();
    let o = s
        .pki
        .organisation(Eui64::from_u64(0x90B3_D51F_3003_0000))
        .unwrap();
    let creds = SupplierCredentials {
        ds: o.ds.cert.clone(),
        ka: o.ka.cert.clone(),
        pp_ka: None,
        path: vec![s.pki.issuing_ca().cert.clone()],
    };
    let at = jiff::civil::datetime(2026, 6, 2, 0, 0, 0, 0);
    let eui = Eui64::from_u64(BASE + 1);
    let cmd = s
        .head
        .supplier_by_trans_cos(eui, 9, &creds, Some(ExecutionDateTime::At(at)))
        .unwrap();
    wan.send(eui, cmd).unwrap();
    let r = rx.recv().await.unwrap();
    assert!(matches!(
        Message::decode(&r.bytes).unwrap().body,
        Body::Response(_)
    ));
    let a = rx.recv().await.unwrap();
    let m = Message::decode(&a.bytes).unwrap();
    let Body::Alert(al) = m.body else {
        panic!("not an alert")
    };
    assert!(al.actioned());
    assert_eq!(
        a.at,
        "2026-06-02T00:00:00.5Z".parse::<jiff::Timestamp>().unwrap()
    );
    assert_eq!(wan.stats().alerts, 1);
}

#[test]
fn config_is_checked_and_reads_from_json() {
    let c: WanConfig = serde_json::from_str(
        r#"{"seed":5,"loss":0.2,"latency":{"kind":"uniform","min_ms":10,"max_ms":20}}"#,
    )
    .unwrap();
    assert!(c.validate().is_ok());
    let bad = WanConfig {
        loss: 1.5,
        ..WanConfig::default()
    };
    assert!(bad.validate().is_err());
    assert!(serde_json::from_str::<WanConfig>(r#"{"lost":0.1}"#).is_err());
}
