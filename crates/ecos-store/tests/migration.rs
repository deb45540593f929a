//! Migration state on both backends: tracking, compare-and-set transitions with their
//! log, the credential switch on success, the inbox, throttle counts and status counts.

mod common;

use ecos_smki::Eui64;
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, MigrationState as S, NewRequest, RequestKind,
    Store,
};
use jiff::Timestamp;

fn t(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

fn dev(i: u64) -> Eui64 {
    Eui64::from_u64(0x00DB_0000_0000_0000 + i)
}

async fn seed(s: &Store, n: u64) {
    for i in 0..n {
        let mut d = Device::new(dev(i), DeviceType::Esme, DeviceStatus::Commissioned);
        d.cos_credential = Some(if i == n - 1 {
            CosCredential::Enduring
        } else {
            CosCredential::Transitional
        });
        d.comms_hub = Some(Eui64::from_u64(0x00DB_FFFF_0000_0000 + i / 2));
        d.csp_region = Some(if i % 2 == 0 { "north" } else { "south" }.into());
        d.firmware_version = Some("4.2.0".into());
        s.upsert_device(&d).await.unwrap();
    }
}

async fn lifecycle_with_log_and_credential_switch(s: Store) {
    seed(&s, 3).await;
    let now = t("2026-06-01T10:00:00Z");
    let hub = Eui64::from_u64(0x00DB_FFFF_0000_0000);
    assert!(
        s.migration_track(
            dev(0),
            S::Candidate,
            None,
            Some(hub),
            Some("north"),
            now,
            "eligible"
        )
        .await
        .unwrap()
    );
    assert!(
        !s.migration_track(dev(0), S::NotEligible, None, None, None, now, "again")
            .await
            .unwrap(),
        "tracked once"
    );
    let r = s.migration_record(dev(0)).await.unwrap().unwrap();
    assert_eq!((r.state, r.attempts, r.version), (S::Candidate, 0, 1));

    // Selected, then sent with a counter.
    let mut c = r.to(S::Selected, "batch 7");
    c.batch = Some(7);
    let r2 = s.migration_transition(&r, &c, now).await.unwrap().unwrap();
    assert_eq!((r2.state, r2.batch, r2.version), (S::Selected, Some(7), 2));
    // A stale record loses the compare-and-set and writes nothing.
    assert!(
        s.migration_transition(&r, &r.to(S::Excluded, "stale"), now)
            .await
            .unwrap()
            .is_none()
    );
    let mut c = r2.to(S::Sent, "counter");
    c.attempts = 1;
    c.gbcs_counter = Some(u64::MAX - 3);
    c.sent_at = Some(now);
    let r3 = s.migration_transition(&r2, &c, now).await.unwrap().unwrap();
    assert_eq!(r3.gbcs_counter, Some(u64::MAX - 3));
    assert_eq!(
        s.migration_sent_before(t("2026-06-01T10:00:00Z"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.migration_sent_before(t("2026-06-01T09:59:59Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A response arrives in the inbox and is consumed with the success.
    let id = s.migration_inbox_push(dev(0), b"resp", now).await.unwrap();
    assert_eq!(s.migration_inbox_fetch(10).await.unwrap()[0].bytes, b"resp");
    let mut c = r3.to(S::Migrated, "ski 4F3F");
    c.consume_inbox = Some(id);
    let r4 = s.migration_transition(&r3, &c, now).await.unwrap().unwrap();
    assert_eq!(r4.state, S::Migrated);
    assert!(r4.state.is_terminal());
    assert!(s.migration_inbox_fetch(10).await.unwrap().is_empty());
    assert_eq!(
        s.device(dev(0)).await.unwrap().unwrap().cos_credential,
        Some(CosCredential::Enduring),
        "inventory switched with the state"
    );

    let log = s.migration_transitions(dev(0)).await.unwrap();
    let steps: Vec<(Option<S>, S)> = log.iter().map(|x| (x.from, x.to)).collect();
    assert_eq!(
        steps,
        vec![
            (None, S::Candidate),
            (Some(S::Candidate), S::Selected),
            (Some(S::Selected), S::Sent),
            (Some(S::Sent), S::Migrated)
        ]
    );
    assert_eq!(log[2].gbcs_counter, Some(u64::MAX - 3));
    assert_eq!(log[2].csp_region.as_deref(), Some("north"));
    assert_eq!(log[2].comms_hub, Some(hub));
    assert_eq!(
        s.migration_transitions_since(0, 100).await.unwrap().len(),
        4
    );

    let sent = s
        .migration_sent_since(t("2026-06-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(sent.total, 1);
    assert_eq!(sent.by_region.get("north"), Some(&1));
    assert_eq!(sent.by_hub.get(&hub.to_compact()), Some(&1));
    assert_eq!(
        s.migration_sent_since(t("2026-06-02T00:00:00Z"))
            .await
            .unwrap()
            .total,
        0
    );
}

async fn retries_pauses_counts_and_views(s: Store) {
    seed(&s, 4).await;
    let now = t("2026-06-01T10:00:00Z");
    s.migration_track(dev(1), S::Candidate, None, None, Some("south"), now, "")
        .await
        .unwrap();
    s.migration_track(
        dev(2),
        S::Paused,
        Some("cos-pending"),
        None,
        Some("north"),
        now,
        "",
    )
    .await
    .unwrap();
    let r = s.migration_record(dev(1)).await.unwrap().unwrap();
    let mut c = r.to(S::RetryWaiting, "busy");
    c.attempts = 1;
    c.next_at = Some(t("2026-06-01T11:00:00Z"));
    c.reason = Some("resources-busy".into());
    c.failure_class = Some("busy".into());
    s.migration_transition(&r, &c, now).await.unwrap().unwrap();
    assert!(
        s.migration_due(S::RetryWaiting, t("2026-06-01T10:59:00Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = s
        .migration_due(S::RetryWaiting, t("2026-06-01T11:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].failure_class.as_deref(), Some("busy"));

    let counts = s.migration_counts().await.unwrap();
    assert_eq!(counts.by_state.get("retry-waiting"), Some(&1));
    assert_eq!(counts.by_state.get("paused"), Some(&1));
    assert_eq!(counts.by_region["south"].get("retry-waiting"), Some(&1));
    assert_eq!(counts.reasons.get("resources-busy"), Some(&1));
    assert_eq!(counts.reasons.get("cos-pending"), Some(&1));
    assert_eq!(
        s.migration_records_in(S::Paused, None, 10).await.unwrap()[0].eui,
        dev(2)
    );

    // The view: transitional devices plus tracked ones, in EUI order, paged.
    let v = s
        .migration_view_page(None, 2, "2026-06-01".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        v.iter().map(|x| x.eui).collect::<Vec<_>>(),
        vec![dev(0), dev(1)]
    );
    assert!(v[0].record.is_none());
    assert_eq!(v[1].record.as_ref().map(|r| r.state), Some(S::RetryWaiting));
    let v2 = s
        .migration_view_page(Some(dev(1)), 10, "2026-06-01".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(v2.len(), 1, "dev 3 is enduring and untracked: {v2:?}");
    assert_eq!(v2[0].eui, dev(2));

    // A pending change of supplier is seen.
    assert_eq!(
        s.cos_request_pending_for_device(dev(0)).await.unwrap(),
        None
    );
    s.insert_request(&NewRequest {
        request_id: "R1".into(),
        originator: Eui64::from_u64(0x90B3_D51F_3003_0000),
        device: dev(0),
        kind: RequestKind::Immediate,
        execution_time: None,
        request_xml: None,
    })
    .await
    .unwrap();
    assert_eq!(
        s.cos_request_pending_for_device(dev(0))
            .await
            .unwrap()
            .as_deref(),
        Some("R1")
    );
}

async fn switch_coming_is_flagged(s: Store) {
    let mut d = Device::new(dev(0), DeviceType::Esme, DeviceStatus::Commissioned);
    d.cos_credential = Some(CosCredential::Transitional);
    d.mpxn = Some(common::m("1312345678907"));
    s.upsert_device(&d).await.unwrap();
    common::import_reg(
        &s,
        "r1",
        ecos_store::ImportMode::Refresh,
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         1312345678907,ACEE,2020-01-01,2026-06-30\n1312345678907,BDEE,2026-07-01,\n",
    )
    .await
    .unwrap();
    let v = s
        .migration_view_page(None, 10, common::d("2026-06-01"))
        .await
        .unwrap();
    assert!(v[0].switch_coming);
    let v = s
        .migration_view_page(None, 10, common::d("2026-07-01"))
        .await
        .unwrap();
    assert!(!v[0].switch_coming);
}

/// The indexed selection queries: discovery pages from a cursor (untracked, not eligible
/// and paused transitional devices only), views by state, switches coming, counts by state.
async fn indexed_selection_queries(s: Store) {
    seed(&s, 6).await; // 0..=4 transitional, 5 enduring
    let now = t("2026-06-01T10:00:00Z");
    let from = common::d("2026-06-01");
    assert_eq!(s.migration_cursor().await.unwrap(), (None, 0));
    s.migration_set_cursor(Some(dev(1)), 3).await.unwrap();
    assert_eq!(s.migration_cursor().await.unwrap(), (Some(dev(1)), 3));
    s.migration_set_cursor(None, 4).await.unwrap();
    assert_eq!(s.migration_cursor().await.unwrap(), (None, 4));
    s.migration_track(dev(1), S::Candidate, None, None, None, now, "c")
        .await
        .unwrap();
    s.migration_track(dev(2), S::NotEligible, Some("x"), None, None, now, "n")
        .await
        .unwrap();
    s.migration_track(dev(3), S::Excluded, Some("y"), None, None, now, "e")
        .await
        .unwrap();
    let eui = |v: Vec<ecos_store::migration::MigrationView>| {
        v.iter().map(|v| v.eui.to_u64() & 0xFF).collect::<Vec<_>>()
    };
    let page = s.migration_discover_page(None, 10, from).await.unwrap();
    assert_eq!(page[1].record.as_ref().unwrap().state, S::NotEligible);
    assert_eq!(eui(page), vec![0, 2, 4]);
    assert_eq!(
        eui(s
            .migration_discover_page(Some(dev(0)), 1, from)
            .await
            .unwrap()),
        vec![2]
    );
    let c = s
        .migration_views_in(S::Candidate, None, 10, from)
        .await
        .unwrap();
    assert_eq!(c[0].record.as_ref().unwrap().state, S::Candidate);
    assert_eq!(eui(c), vec![1]);
    assert_eq!(
        s.migration_count_in(&[S::Candidate, S::Excluded, S::Sent])
            .await
            .unwrap(),
        2
    );
    // dev(4)'s MPAN has a registration starting after the as-of date.
    let mut d = s.device(dev(4)).await.unwrap().unwrap();
    d.mpxn = Some(common::m("1312345678907"));
    s.upsert_device(&d).await.unwrap();
    common::import_reg(
        &s,
        "r1",
        ecos_store::ImportMode::Refresh,
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         1312345678907,ACEE,2020-01-01,2026-06-30\n1312345678907,BDEE,2026-07-01,\n",
    )
    .await
    .unwrap();
    let sw = s.migration_switch_views(10, from).await.unwrap();
    assert!(sw[0].switch_coming);
    assert_eq!(eui(sw), vec![4]);
    assert!(
        s.migration_switch_views(10, common::d("2026-07-01"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// One transaction for a batch: tracks and moves in order (a move may follow the track
/// of the same device), a lost race yields `None` without failing the others, and the
/// maintained counters (by state and region, by reason, sent per day and hub) agree with
/// a GROUP BY over the table after every batch.
async fn batches_apply_in_one_transaction_and_keep_the_counters(s: Store) {
    use ecos_store::MigrationOp;
    use ecos_store::migration::MigrationRecord;
    seed(&s, 6).await;
    let now = t("2026-06-01T10:00:00Z");
    let hub = |i: u64| Some(Eui64::from_u64(0x00DB_FFFF_0000_0000 + i / 2));
    let region = |i: u64| Some(if i % 2 == 0 { "north" } else { "south" }.to_string());
    let mut ops = Vec::new();
    let mut firsts = Vec::new();
    for i in 0..4 {
        let r = MigrationRecord::first(dev(i), S::Candidate, None, hub(i), region(i), now);
        ops.push(MigrationOp::Track(r.clone(), "eligible".into()));
        firsts.push(r);
    }
    for r in &firsts[..3] {
        let mut c = r.to(S::Sent, "sent");
        c.attempts = 1;
        c.gbcs_counter = Some(100 + r.eui.to_u64() % 16);
        c.sent_at = Some(now);
        ops.push(MigrationOp::Move {
            current: r.clone(),
            change: c,
        });
    }
    // A move from a stale version loses, alone.
    let mut stale = firsts[3].clone();
    stale.version = 7;
    ops.push(MigrationOp::Move {
        current: stale,
        change: firsts[3].to(S::Excluded, "stale"),
    });
    ops.push(MigrationOp::Track(
        MigrationRecord::first(
            dev(4),
            S::NotEligible,
            Some("status x".into()),
            None,
            None,
            now,
        ),
        "rules".into(),
    ));
    let out = s.migration_apply(&ops, now).await.unwrap();
    assert_eq!(out.len(), ops.len());
    assert!(out[..7].iter().all(Option::is_some));
    assert!(out[7].is_none(), "the stale move lost");
    let sent = out[4].clone().unwrap();
    assert_eq!((sent.state, sent.version, sent.attempts), (S::Sent, 2, 1));
    assert_eq!(s.migration_record(dev(0)).await.unwrap().unwrap(), sent);
    assert_eq!(
        s.migration_record(dev(3)).await.unwrap().unwrap().state,
        S::Candidate
    );
    assert_eq!(s.migration_transitions(dev(0)).await.unwrap().len(), 2);
    // Tracking again changes nothing.
    let again = s.migration_apply(&[ops[0].clone()], now).await.unwrap();
    assert_eq!(again, vec![None]);
    let check = |label: &'static str| {
        let s = s.clone();
        async move {
            let kept = s.migration_counts().await.unwrap();
            let scan = s.migration_counts_by_scan().await.unwrap();
            assert_eq!(kept, scan, "{label}");
            kept
        }
    };
    let c = check("after the first batch").await;
    assert_eq!(c.state(S::Sent), 3);
    assert_eq!(c.state(S::Candidate), 1);
    assert_eq!(c.reasons.get("status x"), Some(&1));
    assert_eq!(
        s.migration_count_in(&[S::Sent, S::Candidate, S::Migrated])
            .await
            .unwrap(),
        4
    );
    let day = s
        .migration_sent_on(
            t("2026-06-01T23:59:00Z"),
            &[hub(0).unwrap(), hub(0).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(day.total, 3);
    assert_eq!(day.by_region.get("north"), Some(&2));
    assert_eq!(day.by_hub.len(), 1, "only the hubs asked for");
    assert_eq!(day.by_hub.get(&hub(0).unwrap().to_compact()), Some(&2));
    assert_eq!(day, {
        let mut all = s
            .migration_sent_since(t("2026-06-01T00:00:00Z"))
            .await
            .unwrap();
        all.by_hub.retain(|h, _| *h == hub(0).unwrap().to_compact());
        all
    });
    assert_eq!(
        s.migration_sent_on(t("2026-06-02T00:00:00Z"), &[])
            .await
            .unwrap()
            .total,
        0
    );
    // Second batch: one migrated (the inventory switches), one excluded with a reason,
    // and the not-eligible one's reason changes.
    let r0 = s.migration_record(dev(0)).await.unwrap().unwrap();
    let r1 = s.migration_record(dev(1)).await.unwrap().unwrap();
    let r4 = s.migration_record(dev(4)).await.unwrap().unwrap();
    let mut gone = r1.to(S::Excluded, "x");
    gone.reason = Some("wan: 5 failures".into());
    let mut other = r4.to(S::NotEligible, "rules");
    other.reason = Some("status y".into());
    let later = t("2026-06-02T01:00:00Z");
    let out = s
        .migration_apply(
            &[
                MigrationOp::Move {
                    current: r0.clone(),
                    change: r0.to(S::Migrated, "ok"),
                },
                MigrationOp::Move {
                    current: r1,
                    change: gone,
                },
                MigrationOp::Move {
                    current: r4,
                    change: other,
                },
                MigrationOp::Contact {
                    device: dev(0),
                    at: later,
                },
            ],
            later,
        )
        .await
        .unwrap();
    assert!(out[..3].iter().all(Option::is_some));
    let d0 = s.device(dev(0)).await.unwrap().unwrap();
    assert_eq!(d0.cos_credential, Some(CosCredential::Enduring));
    assert_eq!(d0.last_contact, Some(later));
    let c = check("after the second batch").await;
    assert_eq!(c.state(S::Migrated), 1);
    assert_eq!(c.reasons.get("status x"), None, "a reason at zero leaves");
    assert_eq!(c.reasons.get("status y"), Some(&1));
    assert_eq!(c.reasons.get("wan: 5 failures"), Some(&1));
}

suite!(
    lifecycle_with_log_and_credential_switch,
    retries_pauses_counts_and_views,
    switch_coming_is_flagged,
    indexed_selection_queries,
    batches_apply_in_one_transaction_and_keep_the_counters
);
