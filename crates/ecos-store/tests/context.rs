//! `Store::request_context` on both backends: every field equals what the
//! single-purpose reads say, before and after the state changes.

mod common;

use ecos_smki::Eui64;
use ecos_store::{
    Acceptance, AcceptanceCommit, ImportMode, ImportOptions, MigrationState, NewAuditEntry,
    NewRequest, PendingRequest, RequestContext, RequestKind, RequestState, RequestUpdate, Store,
};

const SUPPLIER: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x03, 0x00, 0x00]);
const DEVICE: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);
const RID: &str = "90-B3-D5-1F-30-03-00-00:00-DB-12-34-56-78-90-A0:7";

/// The context assembled from the single-purpose reads.
async fn from_single_reads(s: &Store, request_id: &str) -> RequestContext {
    RequestContext {
        request_state: s.request(request_id).await.unwrap().map(|r| r.state),
        last_request_counter: s.last_request_counter(SUPPLIER).await.unwrap(),
        pending_future_dated: s
            .pending_future_dated_for_device(DEVICE)
            .await
            .unwrap()
            .map(|r| PendingRequest {
                request_id: r.request_id,
                originator: r.originator,
            }),
        migration_state: s.migration_record(DEVICE).await.unwrap().map(|r| r.state),
    }
}

async fn agrees(s: &Store) -> RequestContext {
    let ctx = s.request_context(SUPPLIER, RID, DEVICE).await.unwrap();
    assert_eq!(ctx, from_single_reads(s, RID).await);
    assert_eq!(
        s.request_state(RID).await.unwrap(),
        ctx.request_state,
        "request_state"
    );
    ctx
}

async fn context_equals_single_reads(s: Store) {
    assert_eq!(agrees(&s).await, RequestContext::default(), "empty store");

    assert!(
        s.check_and_advance_request_counter(SUPPLIER, (1 << 63) + 9)
            .await
            .unwrap()
    );
    let fd = s
        .insert_request(&NewRequest {
            request_id: "fd-1".into(),
            originator: SUPPLIER,
            device: DEVICE,
            kind: RequestKind::FutureDated,
            execution_time: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            request_xml: None,
        })
        .await
        .unwrap();
    assert!(
        s.migration_track(
            DEVICE,
            MigrationState::Selected,
            None,
            None,
            None,
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "{}",
        )
        .await
        .unwrap()
    );
    let ctx = agrees(&s).await;
    assert_eq!(ctx.last_request_counter, Some((1 << 63) + 9));
    assert_eq!(
        ctx.pending_future_dated.map(|p| p.request_id),
        Some(fd.request_id.clone())
    );
    assert_eq!(ctx.migration_state, Some(MigrationState::Selected));
    assert_eq!(ctx.request_state, None);

    s.insert_request(&NewRequest {
        request_id: RID.into(),
        originator: SUPPLIER,
        device: DEVICE,
        kind: RequestKind::Immediate,
        execution_time: None,
        request_xml: None,
    })
    .await
    .unwrap();
    s.transition_request(
        &fd.request_id,
        &[RequestState::Received],
        RequestUpdate::to(RequestState::Cancelled),
    )
    .await
    .unwrap();
    let ctx = agrees(&s).await;
    assert_eq!(ctx.request_state, Some(RequestState::Received));
    assert_eq!(
        ctx.pending_future_dated, None,
        "a cancelled request is not pending"
    );
}

fn new_request(id: &str) -> NewRequest {
    NewRequest {
        request_id: id.into(),
        originator: SUPPLIER,
        device: DEVICE,
        kind: RequestKind::Immediate,
        execution_time: None,
        request_xml: Some("<sr:Request/>".into()),
    }
}

fn acceptance<'a>(r: &'a NewRequest, counter: u64, gbcs: u64) -> Acceptance<'a> {
    Acceptance {
        request: r,
        state: RequestState::Accepted,
        request_counter: counter,
        command: b"\xDF\x09",
        gbcs_counter: gbcs,
        cancels: None,
        audit: NewAuditEntry {
            actor: "test",
            action: "accepted",
            subject: &r.request_id,
            detail: "{}",
        },
    }
}

/// The direct forms of the acceptance writes give what the pool forms give:
/// counters strictly rising whichever form reserves them, an acceptance
/// written whole or not at all, and an audit chain that verifies.
async fn direct_writes_equal_pool_writes(s: Store) {
    const PARTY: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x00, 0x00, 0x04]);
    let mut last = 0;
    for i in 0..6 {
        let c = if i % 2 == 0 {
            s.reserve_gbcs_counter(PARTY).await.unwrap()
        } else {
            s.reserve_gbcs_counters(PARTY, 1).await.unwrap().start
        };
        assert!(c > last, "{c} after {last}");
        last = c;
    }

    let r1 = new_request("r1");
    assert_eq!(
        s.commit_acceptance_fast(&acceptance(&r1, 5, last))
            .await
            .unwrap(),
        AcceptanceCommit::Committed
    );
    let stored = s.request("r1").await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Accepted);
    assert_eq!(stored.gbcs_counter, Some(last));
    assert_eq!(stored.command.as_deref(), Some(&b"\xDF\x09"[..]));
    assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), Some(5));
    // The same RequestID with a higher counter: nothing written (the
    // counter advance is rolled back).
    assert_eq!(
        s.commit_acceptance_fast(&acceptance(&r1, 6, last))
            .await
            .unwrap(),
        AcceptanceCommit::Duplicate
    );
    assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), Some(5));
    // A stale counter: nothing written.
    let r2 = new_request("r2");
    assert_eq!(
        s.commit_acceptance_fast(&acceptance(&r2, 5, last))
            .await
            .unwrap(),
        AcceptanceCommit::StaleCounter
    );
    assert!(s.request("r2").await.unwrap().is_none());
    // Pool and direct commits interleave on one audit chain.
    let r3 = new_request("r3");
    assert_eq!(
        s.commit_acceptance(&acceptance(&r3, 7, last))
            .await
            .unwrap(),
        AcceptanceCommit::Committed
    );
    assert_eq!(
        s.commit_acceptance_fast(&acceptance(&r2, 8, last))
            .await
            .unwrap(),
        AcceptanceCommit::Committed
    );
    let v = s.verify_audit_chain().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (3, None));
}

/// `check_context` holds what the single reads say: the service user, the
/// device, the MPxN's registration history and the request context, before
/// and after the data is loaded, with and without an MPxN.
async fn check_context_equals_single_reads(s: Store) {
    let mpxn = common::m("1312345678907");
    async fn check(s: &Store, mpxn: &ecos_store::Mpxn) -> ecos_store::CheckContext {
        let ctx = s
            .check_context(SUPPLIER, RID, DEVICE, Some(mpxn))
            .await
            .unwrap();
        assert_eq!(ctx.service_user, s.service_user(SUPPLIER).await.unwrap());
        assert_eq!(ctx.device, s.device(DEVICE).await.unwrap());
        assert_eq!(
            ctx.registrations,
            s.registration_history(mpxn).await.unwrap()
        );
        assert_eq!(ctx.request, from_single_reads(s, RID).await);
        let without = s.check_context(SUPPLIER, RID, DEVICE, None).await.unwrap();
        assert!(without.registrations.is_empty());
        assert_eq!(without.device, ctx.device);
        ctx
    }
    let empty = check(&s, &mpxn).await;
    assert!(empty.service_user.is_none() && empty.device.is_none());
    assert!(empty.registrations.is_empty());

    s.import_service_users(
        b"org_eui,name,roles,mpids,response_endpoint\n\
          90-B3-D5-1F-30-03-00-00,Gaining,IS GS,ACEE ACG,https://gaining.example/duis\n",
        &ImportOptions::new("su", ImportMode::Refresh),
        &mut |_| {},
    )
    .await
    .unwrap();
    let (ka, ds) = common::device_certs_b64();
    s.import_inventory(
        format!("device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,comms_hub_eui,csp_region,firmware_version,last_contact\n\
          00-DB-12-34-56-78-90-A0,ESME,commissioned,1312345678907,transitional,{ka},{ds},,north,1.2.0,2024-05-01T10:00:00Z\n").as_bytes(),
        &ImportOptions::new("inv", ImportMode::Refresh),
        &mut |_| {},
    )
    .await
    .unwrap();
    common::import_reg(
        &s,
        "reg",
        ImportMode::Refresh,
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         1312345678907,ACEE,2023-01-01,2024-03-14\n\
         1312345678907,BCEE,2024-03-15,\n",
    )
    .await
    .unwrap();
    assert!(
        s.check_and_advance_request_counter(SUPPLIER, 12)
            .await
            .unwrap()
    );
    let full = check(&s, &mpxn).await;
    assert_eq!(
        full.service_user.map(|u| u.roles),
        Some(vec!["IS".into(), "GS".into()])
    );
    assert_eq!(full.device.and_then(|d| d.mpxn), Some(mpxn.clone()));
    assert_eq!(full.registrations.len(), 2);
    assert_eq!(full.request.last_request_counter, Some(12));
}

suite!(
    context_equals_single_reads,
    direct_writes_equal_pool_writes,
    check_context_equals_single_reads
);

/// With the write lock held elsewhere, the direct forms wait through the
/// pool instead of failing or blocking their thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_falls_back_to_the_pool() {
    let (s, dir) = common::sqlite_store().await;
    let holder = rusqlite::Connection::open(dir.path().join("ecos.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = new_request("busy");
    let task = {
        let s = s.clone();
        tokio::spawn(async move {
            let c = s
                .reserve_gbcs_counter(Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0, 0, 4]))
                .await
                .unwrap();
            let done = s
                .commit_acceptance_fast(&acceptance(&r, 1, c))
                .await
                .unwrap();
            (c, done)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "waits for the lock");
    holder.execute_batch("COMMIT").unwrap();
    let (_, done) = task.await.unwrap();
    assert_eq!(done, AcceptanceCommit::Committed);
    assert_eq!(
        s.request_state("busy").await.unwrap(),
        Some(RequestState::Accepted)
    );
}
