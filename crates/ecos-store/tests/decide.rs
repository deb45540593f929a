//! Decisions written whole, on both backends: an acceptance (RequestID
//! counter, request with its command, cancellation, audit entry) and a device
//! answer (state, outbound row, audit entry) are each all-or-nothing.

mod common;

use ecos_smki::Eui64;
use ecos_store::{
    Acceptance, AcceptanceCommit, DeviceAnswer, Moved, NewAuditEntry, NewRequest, Refusal,
    RequestKind, RequestState, Store,
};

const SUPPLIER: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x03, 0x00, 0x00]);
const DEVICE: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);

fn request(counter: u64) -> NewRequest {
    NewRequest {
        request_id: format!("{SUPPLIER}:{DEVICE}:{counter}"),
        originator: SUPPLIER,
        device: DEVICE,
        kind: RequestKind::Immediate,
        execution_time: None,
        request_xml: Some("<x/>".into()),
    }
}

fn audit(subject: &str) -> NewAuditEntry<'_> {
    NewAuditEntry {
        actor: "test",
        action: "accepted",
        subject,
        detail: "{}",
    }
}

async fn accepted_entries(s: &Store) -> usize {
    s.audit_entries(0, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "accepted")
        .count()
}

async fn acceptance_is_all_or_nothing(s: Store) {
    let r10 = request(10);
    let commit = |r: &NewRequest, counter: u64, gbcs: u64, cancels: Option<String>| {
        let s = s.clone();
        let r = r.clone();
        async move {
            s.commit_acceptance(&Acceptance {
                request: &r,
                state: RequestState::Accepted,
                request_counter: counter,
                command: b"\xDF\x09cmd",
                gbcs_counter: gbcs,
                cancels: cancels.as_deref(),
                audit: audit(&r.request_id),
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(
        commit(&r10, 10, 500, None).await,
        AcceptanceCommit::Committed
    );
    let stored = s.request(&r10.request_id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Accepted);
    assert_eq!(stored.gbcs_counter, Some(500));
    assert_eq!(stored.command.as_deref(), Some(&b"\xDF\x09cmd"[..]));
    assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), Some(10));
    assert_eq!(accepted_entries(&s).await, 1);

    // A counter not above the last: nothing written, the request included.
    let r9 = request(9);
    assert_eq!(
        commit(&r9, 9, 501, None).await,
        AcceptanceCommit::StaleCounter
    );
    assert!(s.request(&r9.request_id).await.unwrap().is_none());
    assert_eq!(accepted_entries(&s).await, 1);

    // A RequestID stored already (with a higher counter given): nothing
    // written, the counter is not advanced.
    assert_eq!(
        commit(&r10, 12, 502, None).await,
        AcceptanceCommit::Duplicate
    );
    assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), Some(10));
    assert_eq!(accepted_entries(&s).await, 1);

    // A cancellation moves the cancelled request in the same transaction.
    let r11 = request(11);
    assert_eq!(
        commit(&r11, 11, 503, Some(r10.request_id.clone())).await,
        AcceptanceCommit::Committed
    );
    assert_eq!(
        s.request(&r10.request_id).await.unwrap().unwrap().state,
        RequestState::Cancelled
    );
    assert_eq!(accepted_entries(&s).await, 2);
    assert!(s.verify_audit_chain().await.unwrap().first_broken.is_none());
}

async fn device_answer_is_written_once(s: Store) {
    let r = request(20);
    s.commit_acceptance(&Acceptance {
        request: &r,
        state: RequestState::Accepted,
        request_counter: 20,
        command: b"cmd",
        gbcs_counter: 900,
        cancels: None,
        audit: audit(&r.request_id),
    })
    .await
    .unwrap();
    let from = [RequestState::Dispatched, RequestState::Accepted];
    let answer = DeviceAnswer {
        request_id: &r.request_id,
        transition: Some((&from, RequestState::Completed)),
        recipient: "90B3D51F30030000",
        kind: "device_response",
        body: b"<response/>",
        audit: NewAuditEntry {
            actor: "test",
            action: "device_report",
            subject: &r.request_id,
            detail: "{}",
        },
    };
    assert!(s.commit_device_answer(&answer).await.unwrap());
    assert_eq!(
        s.request(&r.request_id).await.unwrap().unwrap().state,
        RequestState::Completed
    );
    // The same device message again: nothing written.
    assert!(!s.commit_device_answer(&answer).await.unwrap());
    let rows = s.fetch_outbound_since(0, 100, false).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].request_id.as_deref(), Some(r.request_id.as_str()));
    let reports = s
        .audit_entries(0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "device_report")
        .count();
    assert_eq!(reports, 1);
    // An intermediate answer (no transition) is queued as it comes.
    let intermediate = DeviceAnswer {
        transition: None,
        ..answer.clone()
    };
    assert!(s.commit_device_answer(&intermediate).await.unwrap());
    assert_eq!(
        s.fetch_outbound_since(0, 100, false).await.unwrap().len(),
        2
    );
    assert!(s.verify_audit_chain().await.unwrap().first_broken.is_none());
}

/// A refusal records the request once (the first record stays) and audits
/// every time; a refusal without a request only audits.
async fn refusal_is_recorded_once_and_audited(s: Store) {
    let r = request(30);
    let refuse = |request: Option<&NewRequest>, reason: &str| {
        let s = s.clone();
        let request = request.cloned();
        let reason = reason.to_owned();
        async move {
            s.commit_refusal(&Refusal {
                request: request.as_ref(),
                reason: &reason,
                audit: NewAuditEntry {
                    actor: "test",
                    action: "refused",
                    subject: "x",
                    detail: "{}",
                },
            })
            .await
            .unwrap()
        }
    };
    assert!(refuse(Some(&r), "{\"first\":1}").await);
    assert!(!refuse(Some(&r), "{\"second\":2}").await);
    assert!(!refuse(None, "{}").await);
    let stored = s.request(&r.request_id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Rejected);
    assert_eq!(stored.decision_reason.as_deref(), Some("{\"first\":1}"));
    assert_eq!(stored.request_xml.as_deref(), Some("<x/>"));
    let refused = s
        .audit_entries(0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "refused")
        .count();
    assert_eq!(refused, 3);
    assert!(s.verify_audit_chain().await.unwrap().first_broken.is_none());
}

/// A request moved by compare and set, or left with its state named.
async fn move_request_is_compare_and_set(s: Store) {
    let r = request(40);
    s.commit_acceptance(&Acceptance {
        request: &r,
        state: RequestState::Accepted,
        request_counter: 40,
        command: b"cmd",
        gbcs_counter: 940,
        cancels: None,
        audit: audit(&r.request_id),
    })
    .await
    .unwrap();
    let id = r.request_id.as_str();
    assert_eq!(
        s.move_request(id, &[RequestState::Accepted], RequestState::Dispatched)
            .await
            .unwrap(),
        Moved::Moved
    );
    assert_eq!(
        s.move_request(id, &[RequestState::Accepted], RequestState::Dispatched)
            .await
            .unwrap(),
        Moved::Unchanged(RequestState::Dispatched)
    );
    assert_eq!(
        s.move_request(
            id,
            &[RequestState::Received, RequestState::Dispatched],
            RequestState::Completed
        )
        .await
        .unwrap(),
        Moved::Moved
    );
    assert_eq!(
        s.request_state(id).await.unwrap(),
        Some(RequestState::Completed)
    );
    assert!(matches!(
        s.move_request("nope", &[RequestState::Accepted], RequestState::Dispatched)
            .await,
        Err(ecos_store::StoreError::RequestNotFound(_))
    ));
}

suite!(
    acceptance_is_all_or_nothing,
    device_answer_is_written_once,
    refusal_is_recorded_once_and_audited,
    move_request_is_compare_and_set
);

/// Group commit through the public API (SQLite): decisions queued while the
/// database is locked are written together once it is free; none is
/// answered before that; a duplicate among them changes only its own
/// outcome; the audit chain holds them in the order they were queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_decisions_commit_together_sqlite() {
    let (s, dir) = common::sqlite_store().await;
    let holder = rusqlite::Connection::open(dir.path().join("ecos.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Counters 1..=8; the fifth reuses the second's RequestID.
    let ids: Vec<NewRequest> = (1..=8u64)
        .map(|c| request(if c == 5 { 2 } else { c }))
        .collect();
    let mut tasks = Vec::new();
    for (i, r) in ids.into_iter().enumerate() {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.commit_acceptance(&Acceptance {
                request: &r,
                state: RequestState::Accepted,
                request_counter: i as u64 + 1,
                command: b"cmd",
                gbcs_counter: 700 + i as u64,
                cancels: None,
                audit: audit(&r.request_id),
            })
            .await
            .unwrap()
        }));
        // Queued in this order.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "nobody is answered before the commit"
    );
    holder.execute_batch("COMMIT").unwrap();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let mut expected = vec![AcceptanceCommit::Committed; 8];
    expected[4] = AcceptanceCommit::Duplicate;
    assert_eq!(outcomes, expected);
    assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), Some(8));
    let subjects: Vec<String> = s
        .audit_entries(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.subject)
        .collect();
    let order: Vec<String> = [1u64, 2, 3, 4, 6, 7, 8]
        .iter()
        .map(|c| request(*c).request_id)
        .collect();
    assert_eq!(subjects, order);
    let v = s.verify_audit_chain().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (7, None));
}
