//! The pipeline's durable state on both backends: replay protection, GBCS counters,
//! requests, the audit chain and the outbound queue, including concurrent use.

mod common;

use ecos_smki::Eui64;
use ecos_store::{
    NewAuditEntry, NewRequest, RequestKind, RequestState, RequestUpdate, Store, StoreError,
};

const SUPPLIER: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x03, 0x00, 0x00]);
const OTHER: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x01, 0x00, 0x00]);
const ECOS: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x00, 0x00, 0x04]);
const DEVICE: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);

async fn request_counters(s: Store) {
    assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), None);
    assert!(
        s.check_and_advance_request_counter(SUPPLIER, 10)
            .await
            .unwrap()
    );
    assert!(
        !s.check_and_advance_request_counter(SUPPLIER, 10)
            .await
            .unwrap(),
        "replay"
    );
    assert!(
        !s.check_and_advance_request_counter(SUPPLIER, 9)
            .await
            .unwrap(),
        "older"
    );
    assert!(
        s.check_and_advance_request_counter(SUPPLIER, 11)
            .await
            .unwrap()
    );
    assert!(
        s.check_and_advance_request_counter(OTHER, 1).await.unwrap(),
        "per originator"
    );
    // The full u64 range orders correctly (values above 2^63).
    assert!(
        s.check_and_advance_request_counter(SUPPLIER, (1 << 63) + 5)
            .await
            .unwrap()
    );
    assert!(
        !s.check_and_advance_request_counter(SUPPLIER, 1 << 62)
            .await
            .unwrap()
    );
    assert!(
        s.check_and_advance_request_counter(SUPPLIER, u64::MAX)
            .await
            .unwrap()
    );
    assert!(
        !s.check_and_advance_request_counter(SUPPLIER, u64::MAX)
            .await
            .unwrap()
    );
    assert_eq!(
        s.last_request_counter(SUPPLIER).await.unwrap(),
        Some(u64::MAX)
    );

    // Concurrent submissions of the same counter: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.check_and_advance_request_counter(OTHER, 1000)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += u32::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn gbcs_counters(s: Store) {
    let a = s.reserve_gbcs_counters(ECOS, 1).await.unwrap();
    assert_eq!(a, 1..2);
    let b = s.reserve_gbcs_counters(ECOS, 10).await.unwrap();
    assert_eq!(b, 2..12);
    assert_eq!(s.next_gbcs_counter(ECOS).await.unwrap(), Some(12));
    assert!(matches!(
        s.reserve_gbcs_counters(ECOS, 0).await,
        Err(StoreError::Invalid(_))
    ));

    // Concurrent reservations never overlap and never repeat.
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.reserve_gbcs_counters(ECOS, 1 + i % 3).await.unwrap()
        }));
    }
    let mut ranges = vec![a, b];
    for t in tasks {
        ranges.push(t.await.unwrap());
    }
    ranges.sort_by_key(|r| r.start);
    for w in ranges.windows(2) {
        assert_eq!(w[0].end, w[1].start, "contiguous, disjoint: {ranges:?}");
    }
}

/// Single counters come from a durably reserved block, in order; a batch
/// reservation for the same party skips the rest of the block; concurrent
/// takers on clones never share a counter.
async fn gbcs_counter_blocks(s: Store) {
    let block = s.config().gbcs_counter_block;
    assert!(block > 1, "the default reserves in blocks");
    let first = s.reserve_gbcs_counter(ECOS).await.unwrap();
    assert_eq!(
        s.next_gbcs_counter(ECOS).await.unwrap(),
        Some(first + block)
    );
    let mut last = first;
    for _ in 1..10 {
        let c = s.reserve_gbcs_counter(ECOS).await.unwrap();
        assert_eq!(c, last + 1, "handed out one by one from the block");
        last = c;
    }
    assert_eq!(
        s.next_gbcs_counter(ECOS).await.unwrap(),
        Some(first + block),
        "no durable write within the block"
    );
    let batch = s.reserve_gbcs_counters(ECOS, 3).await.unwrap();
    assert_eq!(batch.start, first + block, "above the whole block");
    let after = s.reserve_gbcs_counter(ECOS).await.unwrap();
    assert_eq!(after, batch.end, "the rest of the old block is skipped");

    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 9 {
                s.reserve_gbcs_counters(ECOS, 2)
                    .await
                    .unwrap()
                    .collect::<Vec<_>>()
            } else {
                vec![s.reserve_gbcs_counter(ECOS).await.unwrap()]
            }
        }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        for c in t.await.unwrap() {
            assert!(c > after, "{c} not above {after}");
            assert!(seen.insert(c), "{c} handed out twice");
        }
    }
}

/// Across restarts and across stores on one file (nodes), block counters
/// never repeat and a restarted store starts above everything reserved; an
/// expired block is dropped.
#[tokio::test]
async fn gbcs_counter_blocks_across_restarts_and_nodes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let loc = ecos_store::StoreLocation::sqlite_in_dir(dir.path());
    let cfg = ecos_store::StoreConfig::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut high = 0;
    for _ in 0..5 {
        let a = Store::open(&loc, cfg.clone()).await.unwrap();
        let b = Store::open(&loc, cfg.clone()).await.unwrap();
        let first = a.reserve_gbcs_counter(ECOS).await.unwrap();
        assert!(
            first > high,
            "a restarted store starts above {high}: {first}"
        );
        for i in 0..30 {
            let node = if i % 3 == 0 { &b } else { &a };
            let c = node.reserve_gbcs_counter(ECOS).await.unwrap();
            assert!(seen.insert(c), "{c} repeated");
            high = high.max(c);
        }
        a.close().await;
        b.close().await;
    }
    let expiring = ecos_store::StoreConfig {
        gbcs_counter_block_ttl: std::time::Duration::ZERO,
        ..cfg
    };
    let s = Store::open(&loc, expiring).await.unwrap();
    let c1 = s.reserve_gbcs_counter(ECOS).await.unwrap();
    let c2 = s.reserve_gbcs_counter(ECOS).await.unwrap();
    assert_eq!(
        c2,
        c1 + s.config().gbcs_counter_block,
        "expired: a new block"
    );
}

#[tokio::test]
async fn gbcs_counter_floor_and_restart_on_sqlite() {
    // The floor lifts a party's counters; a store reopened on the same file continues above.
    let dir = tempfile::tempdir().unwrap();
    let loc = ecos_store::StoreLocation::sqlite_in_dir(dir.path());
    let floor =
        ecos_store::pipeline::time_based_counter_floor("2024-01-01T00:00:00Z".parse().unwrap());
    let cfg = ecos_store::StoreConfig {
        gbcs_counter_floor: floor,
        ..Default::default()
    };
    let s1 = Store::open(&loc, cfg.clone()).await.unwrap();
    let r1 = s1.reserve_gbcs_counters(ECOS, 5).await.unwrap();
    assert_eq!(r1.start, floor + 1);
    s1.close().await;
    let s2 = Store::open(&loc, ecos_store::StoreConfig::default())
        .await
        .unwrap();
    let r2 = s2.reserve_gbcs_counters(ECOS, 1).await.unwrap();
    assert_eq!(
        r2.start, r1.end,
        "a lower floor after restart does not go back"
    );
    s2.close().await;
    let higher = ecos_store::StoreConfig {
        gbcs_counter_floor: floor + 1_000,
        ..Default::default()
    };
    let s3 = Store::open(&loc, higher).await.unwrap();
    assert_eq!(
        s3.reserve_gbcs_counters(ECOS, 1).await.unwrap().start,
        floor + 1_001
    );
    // Exhaustion is an error, not a wrap.
    let top = ecos_store::StoreConfig {
        gbcs_counter_floor: u64::MAX - 3,
        ..Default::default()
    };
    let s4 = Store::open(&loc, top).await.unwrap();
    assert_eq!(
        s4.reserve_gbcs_counters(OTHER, 2).await.unwrap(),
        u64::MAX - 2..u64::MAX
    );
    assert!(matches!(
        s4.reserve_gbcs_counters(OTHER, 1).await,
        Err(StoreError::CounterExhausted { .. })
    ));
}

fn req(id: &str, kind: RequestKind, exec: Option<&str>) -> NewRequest {
    NewRequest {
        request_id: id.to_string(),
        originator: SUPPLIER,
        device: DEVICE,
        kind,
        execution_time: exec.map(|t| t.parse().unwrap()),
        request_xml: Some("<sr:Request/>".into()),
    }
}

async fn request_lifecycle(s: Store) {
    let r = s
        .insert_request(&req(
            "90-B3-D5-1F-30-03-00-00:00-DB-12-34-56-78-90-A0:1",
            RequestKind::Immediate,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Received);
    assert_eq!(r.request_xml.as_deref(), Some("<sr:Request/>"));
    let e = s
        .insert_request(&req(&r.request_id, RequestKind::Immediate, None))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::DuplicateRequest(_)), "{e}");

    let mut up = RequestUpdate::to(RequestState::Accepted);
    up.command = Some(vec![0xDF, 0x09, 0x01]);
    up.gbcs_counter = Some(u64::MAX - 1);
    let a = s
        .transition_request(&r.request_id, &[RequestState::Received], up)
        .await
        .unwrap();
    assert_eq!(
        (a.state, a.command.as_deref(), a.gbcs_counter),
        (
            RequestState::Accepted,
            Some(&[0xDF, 0x09, 0x01][..]),
            Some(u64::MAX - 1)
        )
    );
    // A stale transition is refused and changes nothing.
    let e = s
        .transition_request(
            &r.request_id,
            &[RequestState::Received],
            RequestUpdate::to(RequestState::Rejected).with_reason("E4"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::RequestState { ref actual, .. } if actual == "accepted"),
        "{e}"
    );
    let d = s
        .transition_request(
            &r.request_id,
            &[RequestState::Received, RequestState::Accepted],
            RequestUpdate::to(RequestState::Dispatched),
        )
        .await
        .unwrap();
    assert_eq!(d.command, a.command, "unset fields kept");
    let c = s
        .transition_request(
            &r.request_id,
            &[RequestState::Dispatched],
            RequestUpdate::to(RequestState::Completed).with_reason("I0"),
        )
        .await
        .unwrap();
    assert_eq!(c.decision_reason.as_deref(), Some("I0"));
    assert!(matches!(
        s.transition_request(
            "nope",
            &[RequestState::Received],
            RequestUpdate::to(RequestState::Accepted)
        )
        .await,
        Err(StoreError::RequestNotFound(_))
    ));

    // Future-dated: pending until it completes or is cancelled.
    assert_eq!(
        s.pending_future_dated_for_device(DEVICE).await.unwrap(),
        None,
        "immediate ones do not count"
    );
    let fd = s
        .insert_request(&req(
            "fd-1",
            RequestKind::FutureDated,
            Some("2030-01-01T00:00:00Z"),
        ))
        .await
        .unwrap();
    assert_eq!(
        s.pending_future_dated_for_device(DEVICE)
            .await
            .unwrap()
            .map(|r| r.request_id),
        Some("fd-1".into())
    );
    s.transition_request(
        &fd.request_id,
        &[RequestState::Received],
        RequestUpdate::to(RequestState::Accepted),
    )
    .await
    .unwrap();
    let fd2 = s
        .insert_request(&req(
            "fd-2",
            RequestKind::FutureDated,
            Some("2029-06-01T00:00:00Z"),
        ))
        .await
        .unwrap();
    s.transition_request(
        &fd2.request_id,
        &[RequestState::Received],
        RequestUpdate::to(RequestState::Accepted),
    )
    .await
    .unwrap();
    assert_eq!(
        s.pending_future_dated_for_device(DEVICE)
            .await
            .unwrap()
            .map(|r| r.request_id),
        Some("fd-2".into()),
        "earliest first"
    );
    let due = s
        .future_dated_due("2029-12-31T00:00:00Z".parse().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["fd-2"]
    );
    let due = s
        .future_dated_due("2030-01-01T00:00:00Z".parse().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    s.transition_request(
        "fd-2",
        &[RequestState::Accepted],
        RequestUpdate::to(RequestState::Cancelled),
    )
    .await
    .unwrap();
    s.transition_request(
        "fd-1",
        &[RequestState::Accepted],
        RequestUpdate::to(RequestState::Dispatched),
    )
    .await
    .unwrap();
    assert_eq!(
        s.pending_future_dated_for_device(DEVICE)
            .await
            .unwrap()
            .map(|r| r.request_id),
        Some("fd-1".into()),
        "dispatched is still pending"
    );
    s.transition_request(
        "fd-1",
        &[RequestState::Dispatched],
        RequestUpdate::to(RequestState::Failed).with_reason("8F67"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.pending_future_dated_for_device(DEVICE).await.unwrap(),
        None
    );
    let got = s.request("fd-1").await.unwrap().unwrap();
    assert_eq!(
        got.execution_time,
        Some("2030-01-01T00:00:00Z".parse().unwrap())
    );
    assert!(got.updated_at >= got.created_at);
}

async fn audit_chain(s: Store) {
    let v = s.verify_audit_chain().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (0, None));
    let first = s
        .append_audit(&NewAuditEntry {
            actor: "90B3D51F30030000",
            action: "request.received",
            subject: "r1",
            detail: "{}",
        })
        .await
        .unwrap();
    assert_eq!((first.seq, first.prev_hash), (1, [0u8; 32]));
    assert_eq!(first.hash, first.compute_hash());
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let detail = format!("{{\"n\":{i}}}");
            s.append_audit(&NewAuditEntry {
                actor: "ecos",
                action: "request.accepted",
                subject: "r",
                detail: &detail,
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = s.verify_audit_chain().await.unwrap();
    assert_eq!((v.entries, v.first_broken.clone()), (25, None), "{v:?}");
    let all = s.audit_entries(1, 100).await.unwrap();
    assert_eq!(all.len(), 25);
    assert_eq!(v.head, all[24].hash);
    for w in all.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    assert_eq!(all[0], first);
}

async fn outbound_queue(s: Store) {
    assert!(
        s.fetch_outbound_since(0, 10, true)
            .await
            .unwrap()
            .is_empty()
    );
    let a = s
        .enqueue_outbound("90B3D51F30030000", Some("r1"), "response", b"<a/>")
        .await
        .unwrap();
    let b = s
        .enqueue_outbound("90B3D51F30030000", None, "alert", b"<b/>")
        .await
        .unwrap();
    let c = s
        .enqueue_outbound("90B3D51F30010000", Some("r2"), "response", b"<c/>")
        .await
        .unwrap();
    assert!(a < b && b < c);
    let all = s.fetch_outbound_since(0, 10, true).await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b, c]);
    assert_eq!(
        (
            all[0].body.as_slice(),
            all[0].request_id.as_deref(),
            all[1].kind.as_str()
        ),
        (&b"<a/>"[..], Some("r1"), "alert")
    );
    let t: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    assert!(s.mark_outbound_delivered(b, t).await.unwrap());
    assert!(!s.mark_outbound_delivered(b, t).await.unwrap(), "once");
    assert!(!s.mark_outbound_delivered(9999, t).await.unwrap());
    let pending = s.fetch_outbound_since(0, 10, true).await.unwrap();
    assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, c]);
    let since = s.fetch_outbound_since(a, 10, false).await.unwrap();
    assert_eq!(
        since
            .iter()
            .map(|m| (m.id, m.delivered_at))
            .collect::<Vec<_>>(),
        vec![(b, Some(t)), (c, None)]
    );
    assert_eq!(s.fetch_outbound_since(0, 1, false).await.unwrap().len(), 1);
}

/// Dispatched requests the device has not answered: immediate ones by when
/// they last moved, future-dated ones by their execution time; other
/// states and party-originated requests (no XML) are not listed.
async fn unanswered(s: Store) {
    let dispatch = |id: &'static str, kind, exec: Option<&'static str>, xml: bool| {
        let s = s.clone();
        async move {
            let mut r = req(id, kind, exec);
            if !xml {
                r.request_xml = None;
            }
            s.insert_request(&r).await.unwrap();
            s.transition_request(
                id,
                &[RequestState::Received],
                RequestUpdate::to(RequestState::Dispatched),
            )
            .await
            .unwrap();
        }
    };
    dispatch("imm", RequestKind::Immediate, None, true).await;
    dispatch("can", RequestKind::Cancellation, None, true).await;
    dispatch("party-can", RequestKind::Cancellation, None, false).await;
    dispatch(
        "fd-soon",
        RequestKind::FutureDated,
        Some("2030-01-01T00:00:00Z"),
        true,
    )
    .await;
    dispatch(
        "fd-late",
        RequestKind::FutureDated,
        Some("2031-01-01T00:00:00Z"),
        true,
    )
    .await;
    s.insert_request(&req("received", RequestKind::Immediate, None))
        .await
        .unwrap();
    let ids = |v: Vec<ecos_store::StoredRequest>| {
        let mut v: Vec<String> = v.into_iter().map(|r| r.request_id).collect();
        v.sort();
        v
    };
    let past: jiff::Timestamp = "2001-01-01T00:00:00Z".parse().unwrap();
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(60))
        .unwrap();
    let fd_cut: jiff::Timestamp = "2030-06-01T00:00:00Z".parse().unwrap();
    assert!(
        s.unanswered_requests(past, past, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(s.unanswered_requests(past, fd_cut, 10).await.unwrap()),
        ["fd-soon"]
    );
    assert_eq!(
        ids(s.unanswered_requests(later, past, 10).await.unwrap()),
        ["can", "imm"]
    );
    assert_eq!(
        s.unanswered_requests(later, fd_cut, 2).await.unwrap().len(),
        2
    );
    assert_eq!(
        ids(s.unanswered_requests(later, fd_cut, 10).await.unwrap()),
        ["can", "fd-soon", "imm"]
    );

    // Party-originated cancellations built but never sent.
    assert!(s.unsent_party_cancellations(10).await.unwrap().is_empty());
    let mut r = req("party-unsent", RequestKind::Cancellation, None);
    r.request_xml = None;
    s.insert_request(&r).await.unwrap();
    let mut up = RequestUpdate::to(RequestState::Accepted);
    up.command = Some(vec![0xDF, 0x09]);
    s.transition_request("party-unsent", &[RequestState::Received], up)
        .await
        .unwrap();
    assert_eq!(
        ids(s.unsent_party_cancellations(10).await.unwrap()),
        ["party-unsent"]
    );
}

/// Future-dated requests held for dispatch (still `accepted`), due by an
/// instant, earliest execution first, paged by (execution, id).
async fn held_future_dated(s: Store) {
    let put = |id: &'static str, kind, exec: Option<&'static str>, to: RequestState| {
        let s = s.clone();
        async move {
            s.insert_request(&req(id, kind, exec)).await.unwrap();
            s.transition_request(id, &[RequestState::Received], RequestUpdate::to(to))
                .await
                .unwrap();
        }
    };
    let fd = RequestKind::FutureDated;
    put(
        "b-first",
        fd,
        Some("2030-01-01T00:00:00Z"),
        RequestState::Accepted,
    )
    .await;
    put(
        "a-first",
        fd,
        Some("2030-01-01T00:00:00Z"),
        RequestState::Accepted,
    )
    .await;
    put(
        "second",
        fd,
        Some("2030-02-01T00:00:00Z"),
        RequestState::Accepted,
    )
    .await;
    put(
        "later",
        fd,
        Some("2031-01-01T00:00:00Z"),
        RequestState::Accepted,
    )
    .await;
    put(
        "sent",
        fd,
        Some("2030-01-01T00:00:00Z"),
        RequestState::Dispatched,
    )
    .await;
    put("imm", RequestKind::Immediate, None, RequestState::Accepted).await;
    let ids = |v: Vec<ecos_store::StoredRequest>| -> Vec<String> {
        v.into_iter().map(|r| r.request_id).collect()
    };
    let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    assert!(
        s.held_future_dated_due(t("2029-12-31T23:59:59Z"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = t("2030-06-01T00:00:00Z");
    assert_eq!(
        ids(s.held_future_dated_due(due, None, 10).await.unwrap()),
        ["a-first", "b-first", "second"]
    );
    let first = s.held_future_dated_due(due, None, 1).await.unwrap();
    assert_eq!(ids(first.clone()), ["a-first"]);
    let cursor = (
        first[0].execution_time.unwrap(),
        first[0].request_id.as_str(),
    );
    assert_eq!(
        ids(s
            .held_future_dated_due(due, Some(cursor), 10)
            .await
            .unwrap()),
        ["b-first", "second"]
    );
    assert_eq!(
        ids(s
            .held_future_dated_due(due, Some((t("2030-01-01T00:00:00Z"), "b-first")), 10)
            .await
            .unwrap()),
        ["second"]
    );
}

suite!(
    held_future_dated,
    request_counters,
    gbcs_counters,
    gbcs_counter_blocks,
    request_lifecycle,
    audit_chain,
    outbound_queue,
    unanswered,
);
