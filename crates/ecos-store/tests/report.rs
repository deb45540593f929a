//! Reports on both backends: failure analysis by reason and service user with examples,
//! traffic per bucket, device round trips, migration progress and the retry backlog, and
//! MPxNs supplied by an MPID.

mod common;

use std::time::Duration;

use ecos_smki::Eui64;
use ecos_store::report::{UNKNOWN_USER, UNREADABLE_DETAIL};
use ecos_store::{
    Device, DeviceStatus, DeviceType, MigrationState as S, NewAuditEntry, NewRequest, RequestKind,
    RequestState, RequestUpdate, ServiceUser, Store, Window,
};
use jiff::{SignedDuration, Timestamp};

const B: &str = "90-B3-D5-1F-30-03-00-00";
const A: &str = "90-B3-D5-1F-30-01-00-00";
const METER: &str = "00-DB-12-34-56-78-90-A0";

fn rid(org: &str, n: u64) -> String {
    format!("{org}:{METER}:{n}")
}

async fn refuse(s: &Store, request_id: &str, reason: &str, check: &str, code: &str) {
    let detail = serde_json::json!({
        "reason": reason,
        "check": check,
        "response_code": code,
        "message": format!("{reason} in words"),
        "evidence": { "reason": reason, "n": request_id.len() },
    })
    .to_string();
    s.append_audit(&NewAuditEntry {
        actor: "ecos-party",
        action: "refused",
        subject: request_id,
        detail: &detail,
    })
    .await
    .unwrap();
}

async fn accept(s: &Store, request_id: &str) {
    s.append_audit(&NewAuditEntry {
        actor: "ecos-party",
        action: "accepted",
        subject: request_id,
        detail: "{\"device\":\"00DB1234567890A0\"}",
    })
    .await
    .unwrap();
}

fn around(t0: Timestamp) -> Window {
    Window::new(
        t0 - SignedDuration::from_secs(1),
        Timestamp::now() + SignedDuration::from_secs(1),
    )
    .unwrap()
}

async fn failures_by_reason_and_user_with_examples(s: Store) {
    s.upsert_service_users(&[ServiceUser {
        org_eui: B.parse().unwrap(),
        name: "Gaining Energy".into(),
        roles: vec!["IS".into()],
        mpids: vec!["BDEE".into()],
        response_endpoint: "https://b.example/duis".into(),
    }])
    .await
    .unwrap();
    let t0 = Timestamp::now();
    for n in 1..=3 {
        accept(&s, &rid(B, n)).await;
    }
    refuse(&s, &rid(B, 4), "mpid_not_registered", "mpid", "E062305").await;
    refuse(&s, &rid(B, 5), "device_status", "device", "E5").await;
    refuse(&s, &rid(B, 6), "mpid_not_registered", "mpid", "E062305").await;
    refuse(&s, &rid(A, 7), "mpid_not_registered", "mpid", "E062305").await;
    refuse(&s, &rid(B, 8), "mpid_not_registered", "mpid", "E062305").await;
    refuse(
        &s,
        "(unreadable request)",
        "malformed",
        "read_and_signature",
        "E1",
    )
    .await;
    // Not the pipeline's JSON (e.g. written by hand): counted, reason unreadable.
    s.append_audit(&NewAuditEntry {
        actor: "ecos-party",
        action: "refused",
        subject: &rid(A, 9),
        detail: "not json",
    })
    .await
    .unwrap();
    // Other entries are not decisions.
    for (actor, action) in [("ecos-party", "device_report"), ("operator", "refused")] {
        s.append_audit(&NewAuditEntry {
            actor,
            action,
            subject: &rid(B, 1),
            detail: "{}",
        })
        .await
        .unwrap();
    }
    let w = around(t0);
    let r = s.failure_report(w, 2).await.unwrap();
    assert_eq!((r.accepted, r.refused), (3, 7));
    let reasons: Vec<(&str, u64, u64)> = r
        .by_reason
        .iter()
        .map(|g| (g.reason.as_str(), g.count, g.service_users))
        .collect();
    assert_eq!(
        reasons,
        [
            ("mpid_not_registered", 4, 2),
            (UNREADABLE_DETAIL, 1, 1),
            ("device_status", 1, 1),
            ("malformed", 1, 1),
        ]
    );
    let mpid = &r.by_reason[0];
    assert_eq!(mpid.check.as_deref(), Some("mpid"));
    assert_eq!(mpid.response_code.as_deref(), Some("E062305"));
    assert!(mpid.first <= mpid.last);
    let ids: Vec<&str> = mpid
        .examples
        .iter()
        .map(|e| e.request_id.as_str())
        .collect();
    assert_eq!(ids, [rid(A, 7), rid(B, 8)], "the latest two, newest last");
    let ex = &mpid.examples[1];
    assert_eq!(ex.service_user, B);
    assert_eq!(ex.message, "mpid_not_registered in words");
    assert_eq!(ex.evidence["reason"], "mpid_not_registered");
    assert!(ex.at >= w.since && ex.at < w.until);

    let users: Vec<(&str, Option<&str>, u64, u64)> = r
        .by_service_user
        .iter()
        .map(|u| {
            (
                u.service_user.as_str(),
                u.name.as_deref(),
                u.accepted,
                u.refused,
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            (B, Some("Gaining Energy"), 3, 4),
            (A, None, 0, 2),
            (UNKNOWN_USER, None, 0, 1),
        ]
    );
    assert_eq!(r.by_service_user[0].reasons["mpid_not_registered"], 3);
    assert_eq!(r.by_service_user[0].reasons["device_status"], 1);
    assert_eq!(r.by_service_user[0].examples.len(), 2);

    // A window before any of it is empty.
    let before = Window::new(
        t0 - SignedDuration::from_hours(2),
        t0 - SignedDuration::from_hours(1),
    )
    .unwrap();
    let empty = s.failure_report(before, 2).await.unwrap();
    assert_eq!((empty.accepted, empty.refused), (0, 0));
    assert!(empty.by_reason.is_empty() && empty.by_service_user.is_empty());

    // Traffic: one bucket for everything, totals agree.
    let t = s.traffic_series(w, 3600).await.unwrap();
    assert_eq!(t.buckets.len(), 1);
    assert_eq!((t.buckets[0].accepted, t.buckets[0].refused), (3, 7));
    assert_eq!(t.buckets[0].refused_by_reason["mpid_not_registered"], 4);
    assert!(s.traffic_series(w, 0).await.is_err());
}

async fn traffic_lands_in_its_buckets(s: Store) {
    let t0 = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
    accept(&s, &rid(B, 1)).await;
    refuse(&s, &rid(B, 2), "replay", "replay", "E3").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t1 = Timestamp::now();
    accept(&s, &rid(B, 3)).await;
    accept(&s, &rid(B, 4)).await;
    let w = Window::new(t0, Timestamp::now() + SignedDuration::from_millis(1)).unwrap();
    let t = s.traffic_series(w, 1).await.unwrap();
    let index = |at: Timestamp| (at.duration_since(t0).as_secs()) as usize;
    let mut expect = vec![(0u64, 0u64); t.buckets.len()];
    expect[index(t0)].0 += 1;
    expect[index(t0)].1 += 1;
    expect[index(t1).min(t.buckets.len() - 1)].0 += 2;
    let got: Vec<(u64, u64)> = t.buckets.iter().map(|b| (b.accepted, b.refused)).collect();
    assert_eq!(got, expect);
    assert!(t.buckets.len() >= 2);
    assert_eq!(t.buckets[0].start, t0);
    assert_eq!(t.buckets[1].start, t0 + SignedDuration::from_secs(1));
}

async fn round_trips_of_answered_requests(s: Store) {
    let t0 = Timestamp::now();
    let dev: Eui64 = METER.parse().unwrap();
    for (n, end) in [
        (1, Some(RequestState::Completed)),
        (2, Some(RequestState::Failed)),
        (3, None),
    ] {
        let id = rid(B, n);
        s.insert_request(&NewRequest {
            request_id: id.clone(),
            originator: B.parse().unwrap(),
            device: dev,
            kind: RequestKind::Immediate,
            execution_time: None,
            request_xml: None,
        })
        .await
        .unwrap();
        s.transition_request(
            &id,
            &[RequestState::Received],
            RequestUpdate::to(RequestState::Dispatched),
        )
        .await
        .unwrap();
        if let Some(end) = end {
            tokio::time::sleep(Duration::from_millis(30)).await;
            s.transition_request(&id, &[RequestState::Dispatched], RequestUpdate::to(end))
                .await
                .unwrap();
        }
    }
    let l = s.device_round_trips(around(t0), 60).await.unwrap();
    let o = l.overall.expect("two answered");
    assert_eq!(o.count, 2, "the unanswered request is not a round trip");
    assert!(o.p50_ms >= 25.0 && o.max_ms >= o.p95_ms, "{o:?}");
    assert_eq!(l.buckets.len(), 1);
    assert!(!l.truncated);
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn migration_progress_and_backlog(s: Store) {
    assert_eq!(s.migration_extent().await.unwrap(), None);
    let day = t("2026-06-01T00:00:00Z");
    for i in 0..4u64 {
        let eui = Eui64::from_u64(0x00DB_0000_0000_0000 + i);
        let mut d = Device::new(eui, DeviceType::Esme, DeviceStatus::Commissioned);
        d.csp_region = Some("north".into());
        s.upsert_device(&d).await.unwrap();
        let at = day + SignedDuration::from_hours(i as i64);
        assert!(
            s.migration_track(eui, S::Candidate, None, None, Some("north"), at, "eligible")
                .await
                .unwrap()
        );
        let r = s.migration_record(eui).await.unwrap().unwrap();
        let r = s
            .migration_transition(&r, &r.to(S::Sent, "sent"), at)
            .await
            .unwrap()
            .unwrap();
        let mut c = r.to(if i < 2 { S::Migrated } else { S::RetryWaiting }, "answer");
        if i >= 2 {
            c.failure_class = Some("no-response".into());
            c.next_at = Some(day + SignedDuration::from_hours(10 * (i as i64 - 1)));
        }
        s.migration_transition(&r, &c, at + SignedDuration::from_mins(30))
            .await
            .unwrap()
            .unwrap();
    }
    let (lo, hi) = s.migration_extent().await.unwrap().unwrap();
    assert_eq!(
        (lo, hi),
        (day, day + SignedDuration::from_mins(3 * 60 + 30))
    );
    // From 01:00 on, in hours: device 0 migrated before the window.
    let w = Window::new(
        day + SignedDuration::from_hours(1),
        day + SignedDuration::from_hours(5),
    )
    .unwrap();
    let p = s.migration_progress(w, 3600).await.unwrap();
    assert_eq!(p.migrated_before, 1);
    let totals: Vec<u64> = p.buckets.iter().map(|b| b.migrated_total).collect();
    assert_eq!(totals, [2, 2, 2, 2]);
    let entered: Vec<(u64, u64, u64)> = p
        .buckets
        .iter()
        .map(|b| {
            let g = |st: S| b.entered.get(st.as_str()).copied().unwrap_or(0);
            (g(S::Sent), g(S::Migrated), g(S::RetryWaiting))
        })
        .collect();
    assert_eq!(entered, [(1, 1, 0), (1, 0, 1), (1, 0, 1), (0, 0, 0)]);
    // Backlog at 15:00: device 2 due (10:00), device 3 not (20:00).
    let b = s
        .migration_retry_backlog(day + SignedDuration::from_hours(15))
        .await
        .unwrap();
    assert_eq!((b.waiting, b.due), (2, 1));
    assert_eq!(b.by_class["no-response"], 2);
    assert_eq!(b.next_at, Some(day + SignedDuration::from_hours(10)));
}

async fn mpxns_supplied_and_service_users(s: Store) {
    common::import_reg(
        &s,
        "r1",
        ecos_store::ImportMode::Refresh,
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         1312345678907,ACEE,2023-01-01,2024-03-14\n\
         1312345678907,BDEE,2024-03-15,\n\
         1200000000009,BDEE,2020-01-01,2021-01-01\n\
         3938424403,BDG,2024-07-01,\n",
    )
    .await
    .unwrap();
    let mpids = ["BDEE".to_string(), "BDG".to_string()]
        .into_iter()
        .collect();
    let got: Vec<String> = s
        .mpxns_supplied_by(&mpids, common::d("2024-01-01"), 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.as_str().to_string())
        .collect();
    assert_eq!(
        got,
        ["1312345678907", "3938424403"],
        "ended periods left out"
    );
    let one = s
        .mpxns_supplied_by(&mpids, common::d("2024-01-01"), 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let acee = ["ACEE".to_string()].into_iter().collect();
    assert!(
        s.mpxns_supplied_by(&acee, common::d("2024-06-01"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.service_users().await.unwrap().is_empty());
    let user = |e: &str, name: &str| ServiceUser {
        org_eui: e.parse().unwrap(),
        name: name.into(),
        roles: vec!["IS".into(), "GS".into()],
        mpids: vec!["BDEE".into(), "BDG".into()],
        response_endpoint: "https://x.example".into(),
    };
    s.upsert_service_users(&[user(B, "B"), user(A, "A")])
        .await
        .unwrap();
    let all = s.service_users().await.unwrap();
    assert_eq!(all, [user(A, "A"), user(B, "B")]);
}

suite!(
    failures_by_reason_and_user_with_examples,
    traffic_lands_in_its_buckets,
    round_trips_of_answered_requests,
    migration_progress_and_backlog,
    mpxns_supplied_and_service_users
);
