//! Decisions written whole, on both backends: an acceptance (RequestID
//! counter, request with its command, cancellation, audit entry) and a device
//! answer (state, outbound row, audit entry) are each all-or-nothing.

mod common;

use ecos_smki::Eui64;
use ecos_store::{
    Acceptance, AcceptanceCommit, DeviceAnswer, NewAuditEntry, NewRequest, RequestKind,
    RequestState, Store,
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

suite!(acceptance_is_all_or_nothing, device_answer_is_written_once);
