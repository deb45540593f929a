//! End to end over a generated PKI and data set on SQLite: every outcome of
//! the 6.23 pipeline, from signed request bytes to the stored decision, the
//! audit log and the signed, MACed command.

use std::sync::Arc;

use ecos_duis::Execution;
use ecos_gbcs::{Body, ExecutionDateTime, Message};
use ecos_party::demo::{self, RequestSpec};
use ecos_party::{Outcome, Party, PartyConfig, Reason};
use ecos_smki::{Eui64, TestPki};
use ecos_store::RequestState;
use jiff::Timestamp;

mod common;
use common::{Recorder, at, pki};

struct World {
    pki: Arc<TestPki>,
    party: Party,
    sent: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

async fn world(config: PartyConfig) -> World {
    let pki = pki();
    let (store, dir) = common::demo_store(config.counter_floor).await;
    let sent = Arc::new(Recorder::default());
    let party = demo::party(&pki, store, config)
        .unwrap()
        .with_transport(sent.clone());
    World {
        pki,
        party,
        sent,
        _dir: dir,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Submit and expect a refusal; returns the reason and the answer.
async fn refused(w: &World, body: &[u8], at: Timestamp) -> (Reason, String) {
    let (answer, outcome) = w.party.process(body, at).await.unwrap();
    match outcome {
        Outcome::Refused(r) => (r.reason, text(&answer.body)),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn accepted(w: &World, body: &[u8], at: Timestamp) -> (Vec<u8>, String, String) {
    let (answer, outcome) = w.party.process(body, at).await.unwrap();
    match outcome {
        Outcome::Accepted {
            command,
            request_id,
            send_error,
        } => {
            assert_eq!(send_error, None);
            (command.bytes, text(&answer.body), request_id)
        }
        Outcome::Refused(r) => panic!("refused: {} ({:?})", r.reason, r.reason),
        other => panic!("{other:?}"),
    }
}

fn b_to(device: Eui64, counter: u64, mpxn: &str) -> RequestSpec {
    RequestSpec::new(demo::SUPPLIER_B, device, counter, mpxn)
}

#[tokio::test]
async fn immediate_on_transitional_device_is_signed_with_tcos_and_sent() {
    let w = world(PartyConfig::default()).await;
    let body = b_to(demo::ESME_TCOS, 1, demo::MPAN_1)
        .signed(&w.pki)
        .unwrap();
    let (cmd, answer, rid) = accepted(&w, &body, at()).await;
    assert!(
        answer.contains("<sr:ResponseCode>I99</sr:ResponseCode>"),
        "{answer}"
    );

    let msg = Message::decode(&cmd).unwrap();
    assert_eq!(msg.frame.header.recipient, demo::ESME_TCOS);
    assert_eq!(msg.frame.header.message_code, 0x0107);
    assert!(msg.frame.mac.is_some(), "the command carries the ACB MAC");
    msg.frame
        .verify_signature(w.pki.tcos().cert.public_key())
        .expect("signed with the transitional key");
    assert!(
        msg.frame
            .verify_signature(w.pki.ecos().cert.public_key())
            .is_err(),
        "not verifiable with the enduring key"
    );
    let Body::Command(c) = &msg.body else {
        panic!()
    };
    assert_eq!(c.replacements.len(), 3);
    assert_eq!(c.execution, None);

    // sent to the device, stored as dispatched, audited
    assert_eq!(w.sent.0.lock().unwrap().len(), 1);
    let stored = w.party.store().request(&rid).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Dispatched);
    assert_eq!(stored.command.as_deref(), Some(&cmd[..]));
    let audit = w.party.store().verify_audit_chain().await.unwrap();
    assert!(audit.first_broken.is_none());
    assert!(audit.entries >= 1);
}

#[tokio::test]
async fn enduring_device_is_signed_with_the_ecos_key_only() {
    let w = world(PartyConfig::default()).await;
    let body = b_to(demo::ESME_ECOS, 1, demo::MPAN_2)
        .signed(&w.pki)
        .unwrap();
    let (cmd, _, _) = accepted(&w, &body, at()).await;
    let msg = Message::decode(&cmd).unwrap();
    msg.frame
        .verify_signature(w.pki.ecos().cert.public_key())
        .expect("signed with the enduring key");
    assert!(
        msg.frame
            .verify_signature(w.pki.tcos().cert.public_key())
            .is_err()
    );
}

#[tokio::test]
async fn gas_meter_uses_the_gas_mpid() {
    let w = world(PartyConfig::default()).await;
    let body = b_to(demo::GSME_TCOS, 1, demo::MPRN_1)
        .signed(&w.pki)
        .unwrap();
    accepted(&w, &body, at()).await;
}

#[tokio::test]
async fn future_dated_then_cancelled() {
    let w = world(PartyConfig::default()).await;
    let when: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
    let mut fd = b_to(demo::ESME_TCOS, 10, demo::MPAN_1);
    fd.execution = Execution::FutureDated(when);
    let (cmd, _, fd_id) = accepted(&w, &fd.signed(&w.pki).unwrap(), at()).await;
    let Body::Command(c) = Message::decode(&cmd).unwrap().body else {
        panic!()
    };
    assert!(matches!(c.execution, Some(ExecutionDateTime::At(_))));

    // a second request while the FD is pending is refused
    let (r, _) = refused(
        &w,
        &b_to(demo::ESME_TCOS, 11, demo::MPAN_1)
            .signed(&w.pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::PendingFutureDated { ref pending, .. } if *pending == fd_id),
        "{r:?}"
    );

    let mut cancel = b_to(demo::ESME_TCOS, 12, demo::MPAN_1);
    cancel.execution = Execution::Cancellation;
    let (cmd, _, _) = accepted(&w, &cancel.signed(&w.pki).unwrap(), at()).await;
    let Body::Command(c) = Message::decode(&cmd).unwrap().body else {
        panic!()
    };
    assert_eq!(c.execution, Some(ExecutionDateTime::Cancel));
    assert!(
        c.control.other_seq_number_changes.is_none(),
        "a cancellation carries no [6]"
    );
    let pending = w.party.store().request(&fd_id).await.unwrap().unwrap();
    assert_eq!(pending.state, RequestState::Cancelled);

    // nothing left to cancel
    cancel.counter = 13;
    let (r, _) = refused(&w, &cancel.signed(&w.pki).unwrap(), at()).await;
    assert!(matches!(r, Reason::NothingToCancel { .. }), "{r:?}");
}

#[tokio::test]
async fn future_dated_is_checked_at_its_execution_date() {
    let w = world(PartyConfig::default()).await;
    // Received before the switch, executing after it: B is the registered supplier then.
    let before: Timestamp = "2025-12-20T10:00:00Z".parse().unwrap();
    let mut fd = b_to(demo::ESME_TCOS, 1, demo::MPAN_1);
    fd.execution = Execution::FutureDated("2026-01-02T00:00:00Z".parse().unwrap());
    accepted(&w, &fd.signed(&w.pki).unwrap(), before).await;
    // The same request immediate on that day fails, with the switch date as evidence.
    let (r, _) = refused(
        &w,
        &b_to(demo::ESME_ECOS, 2, demo::MPAN_2)
            .signed(&w.pki)
            .unwrap(),
        before,
    )
    .await;
    match r {
        Reason::MpidNotRegisteredSupplier {
            mpid,
            registered,
            requester_effective_from,
            as_of,
            ..
        } => {
            assert_eq!(mpid, "BDEE");
            assert_eq!(as_of, "2025-12-20");
            assert_eq!(
                registered.as_deref(),
                Some("ACEE from 2020-01-01 to 2025-12-31")
            );
            assert_eq!(requester_effective_from.as_deref(), Some(demo::SWITCH_DATE));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn counters_never_repeat_across_restarts() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let config = PartyConfig::default();
    let mut last = 0u64;
    let mut seen = std::collections::HashSet::new();
    for round in 0..8u64 {
        let store = common::open_store(dir.path(), config.counter_floor).await;
        if round == 0 {
            demo::load(&store, &pki).await.unwrap();
        }
        let party = demo::party(&pki, store.clone(), config.clone())
            .unwrap()
            .with_transport(Arc::new(Recorder::default()));
        for i in 0..3u64 {
            let counter = round * 10 + i + 1;
            let body = b_to(demo::ESME_TCOS, counter, demo::MPAN_1)
                .signed(&pki)
                .unwrap();
            let (_, outcome) = party.process(&body, at()).await.unwrap();
            let Outcome::Accepted { command, .. } = outcome else {
                panic!("{outcome:?}")
            };
            assert!(
                command.counter > last,
                "counter went from {last} to {}",
                command.counter
            );
            assert!(command.counter >= config.counter_floor);
            assert!(seen.insert(command.counter));
            last = command.counter;
        }
        store.close().await;
    }
}

#[tokio::test]
async fn tampering_with_the_audit_log_is_detected() {
    let w = world(PartyConfig::default()).await;
    let body = b_to(demo::ESME_TCOS, 1, demo::MPAN_1)
        .signed(&w.pki)
        .unwrap();
    accepted(&w, &body, at()).await;
    refused(&w, &body, at()).await; // replay
    let ok = w.party.store().verify_audit_chain().await.unwrap();
    assert!(ok.first_broken.is_none());
    assert_eq!(ok.entries, 2);
    // an operator with database access edits the first entry
    let db = w._dir.path().join("ecos.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET detail = '{}' WHERE seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bad = w.party.store().verify_audit_chain().await.unwrap();
    assert!(bad.first_broken.is_some(), "tampering not detected");
}

/// One test per failure reason: the reason, its evidence and the response code.
#[tokio::test]
async fn every_refusal_names_its_reason_evidence_and_code() {
    let w = world(PartyConfig::default()).await;
    let pki = w.pki.clone();
    let mut n = 100u64;
    let mut next = || {
        n += 1;
        n
    };
    let code_in = |answer: &str, code: &str| {
        assert!(
            answer.contains(&format!("<sr:ResponseCode>{code}</sr:ResponseCode>")),
            "expected {code} in {answer}"
        )
    };

    // 1. signature: ImportMPxN tampered after signing
    let signed = text(
        &b_to(demo::ESME_TCOS, next(), demo::MPAN_1)
            .signed(&pki)
            .unwrap(),
    );
    let tampered = signed.replace(demo::MPAN_1, demo::MPAN_2);
    let (r, a) = refused(&w, tampered.as_bytes(), at()).await;
    assert!(
        matches!(r, Reason::BadSignature { ref detail } if detail.contains("digest")),
        "{r:?}"
    );
    code_in(&a, "E1");

    // 1. not a DUIS document at all: no header to echo, HTTP 400 with the reason
    let (answer, outcome) = w.party.process(b"<not-duis/>", at()).await.unwrap();
    assert!(matches!(outcome, Outcome::Refused(_)));
    assert_eq!(answer.http_status, 400);

    // 2. signer unknown: signed by an organisation whose XML Sign certificate is not held
    let spec = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, next(), demo::MPAN_1);
    let org_b = pki.organisation(demo::SUPPLIER_B).unwrap();
    let body = ecos_xmldsig::sign(
        &spec.write(&pki).unwrap(),
        &org_b.ds.signer().unwrap(),
        &org_b.ds.cert.issuer_rfc2253(),
        &org_b.ds.cert.serial_decimal(),
    )
    .unwrap();
    let (r, a) = refused(&w, &body, at()).await;
    assert!(
        matches!(r, Reason::SignerUnknown { ref serial, .. } if *serial == org_b.ds.cert.serial_decimal()),
        "{r:?}"
    );
    code_in(&a, "E1");

    // 2. signer EUI is not the originator: A signs a request from B
    let (r, a) = refused(&w, &spec.sign_as(&pki, demo::SUPPLIER_A).unwrap(), at()).await;
    assert!(
        matches!(r, Reason::SignerEuiMismatch { ref certificate, ref originator }
            if *certificate == demo::SUPPLIER_A.to_string() && *originator == demo::SUPPLIER_B.to_string()),
        "{r:?}"
    );
    code_in(&a, "E1");

    // 2. signer certificate expired at receipt
    let late: Timestamp = "2040-01-01T00:00:00Z".parse().unwrap();
    let (r, _) = refused(
        &w,
        &b_to(demo::ESME_TCOS, next(), demo::MPAN_1)
            .signed(&pki)
            .unwrap(),
        late,
    )
    .await;
    assert!(
        matches!(r, Reason::SignerPath { ref detail } if detail.contains("expired") || detail.contains("valid")),
        "{r:?}"
    );

    // 3. not a service user
    let (r, a) = refused(
        &w,
        &RequestSpec::new(
            demo::ORG_UNREGISTERED,
            demo::ESME_TCOS,
            next(),
            demo::MPAN_1,
        )
        .signed(&pki)
        .unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::UnknownServiceUser { .. }), "{r:?}");
    code_in(&a, "E1");

    // 3. not a supplier
    let (r, a) = refused(
        &w,
        &RequestSpec::new(
            demo::ORG_NOT_SUPPLIER,
            demo::ESME_TCOS,
            next(),
            demo::MPAN_1,
        )
        .signed(&pki)
        .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::NotASupplier { ref roles, .. } if roles == &["OU".to_string()]),
        "{r:?}"
    );
    code_in(&a, "E2");

    // 3. command variant
    let mut cv4 = b_to(demo::ESME_TCOS, next(), demo::MPAN_1);
    cv4.command_variant = 4;
    let (r, a) = refused(&w, &cv4.signed(&pki).unwrap(), at()).await;
    assert!(
        matches!(r, Reason::CommandVariant { found: 4, .. }),
        "{r:?}"
    );
    code_in(&a, "E12");

    // 5. device unknown, not a meter, status
    let ghost = Eui64::from_u64(0x00DB_1234_5678_90FF);
    let (r, a) = refused(
        &w,
        &b_to(ghost, next(), demo::MPAN_1).signed(&pki).unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::DeviceUnknown { .. }), "{r:?}");
    code_in(&a, "E19");
    let (r, a) = refused(
        &w,
        &b_to(demo::COMMS_HUB, next(), demo::MPAN_1)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::DeviceType { ref found, .. } if found == "chf"),
        "{r:?}"
    );
    code_in(&a, "E11");
    let (r, a) = refused(
        &w,
        &b_to(demo::ESME_SUSPENDED, next(), demo::MPAN_3)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::DeviceStatus { ref found, .. } if found == "suspended"),
        "{r:?}"
    );
    code_in(&a, "E5");

    // 6. MPxN: not the device's, not valid, not registered
    let (r, a) = refused(
        &w,
        &b_to(demo::ESME_TCOS, next(), demo::MPAN_2)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::MpxnMismatch { ref requested, ref inventory, .. }
            if requested == demo::MPAN_2 && inventory.as_deref() == Some(demo::MPAN_1)),
        "{r:?}"
    );
    code_in(&a, "E062305");
    let (r, _) = refused(
        &w,
        &b_to(demo::ESME_TCOS, next(), "13123X5678907")
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::MpxnInvalid { .. }), "{r:?}");
    let (r, _) = refused(
        &w,
        &b_to(demo::ESME_UNREGISTERED, next(), demo::MPAN_UNREGISTERED)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::MpxnNotRegistered { .. }), "{r:?}");

    // 7. MPID: no CN, no MPID for the fuel, not the registered supplier
    let (r, a) = refused(
        &w,
        &RequestSpec::new(demo::ORG_NO_CN, demo::ESME_TCOS, next(), demo::MPAN_1)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::CnInvalid { cn: None, .. }), "{r:?}");
    code_in(&a, "E4");
    let (r, a) = refused(
        &w,
        &RequestSpec::new(demo::SUPPLIER_C, demo::GSME_TCOS, next(), demo::MPRN_1)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::MpidMissingForFuel { ref fuel, ref cn } if fuel == "gas" && cn == "CFEE"),
        "{r:?}"
    );
    code_in(&a, "E4");
    let (r, a) = refused(
        &w,
        &RequestSpec::new(demo::SUPPLIER_A, demo::ESME_TCOS, next(), demo::MPAN_1)
            .signed(&pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        matches!(r, Reason::MpidNotRegisteredSupplier { ref mpid, ref registered, .. }
            if mpid == "ACEE" && registered.as_deref() == Some("BDEE from 2026-01-01")),
        "{r:?}"
    );
    code_in(&a, "E4");

    // 8. replacement certificates issued to another organisation
    let mut foreign = b_to(demo::ESME_TCOS, next(), demo::MPAN_1);
    foreign.certificates_of = Some(demo::SUPPLIER_A);
    let (r, a) = refused(&w, &foreign.signed(&pki).unwrap(), at()).await;
    assert!(
        matches!(r, Reason::ReplacementCertificate { ref slot, ref detail }
            if slot == "DigitalSigning" && detail.contains("not to the requesting organisation")),
        "{r:?}"
    );
    code_in(&a, "E062302");

    // timing: a future-dated time in the past
    let mut past = b_to(demo::ESME_TCOS, next(), demo::MPAN_1);
    past.execution = Execution::FutureDated("2026-05-01T00:00:00Z".parse().unwrap());
    let (r, _) = refused(&w, &past.signed(&pki).unwrap(), at()).await;
    assert!(matches!(r, Reason::ExecutionTime { .. }), "{r:?}");

    // 4. replay: the same RequestID again after an acceptance
    let ok = b_to(demo::ESME_TCOS, next(), demo::MPAN_1)
        .signed(&pki)
        .unwrap();
    accepted(&w, &ok, at()).await;
    let (r, a) = refused(&w, &ok, at()).await;
    assert!(matches!(r, Reason::RequestIdReused { .. }), "{r:?}");
    code_in(&a, "E062301");
    // 4. replay: a new RequestID with a counter below the last accepted one
    let (r, a) = refused(
        &w,
        &b_to(demo::ESME_TCOS, 1, demo::MPAN_1).signed(&pki).unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::Replay { counter: 1, .. }), "{r:?}");
    code_in(&a, "E062301");

    // nothing refused was sent
    assert_eq!(w.sent.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn transitional_signing_switched_off_refuses_unmigrated_devices() {
    let w = world(PartyConfig {
        tcos_signing_enabled: false,
        ..PartyConfig::default()
    })
    .await;
    let (r, a) = refused(
        &w,
        &b_to(demo::ESME_TCOS, 1, demo::MPAN_1)
            .signed(&w.pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(matches!(r, Reason::CosCredential { .. }), "{r:?}");
    assert!(a.contains("E062306"));
    // the migrated device still works
    accepted(
        &w,
        &b_to(demo::ESME_ECOS, 2, demo::MPAN_2)
            .signed(&w.pki)
            .unwrap(),
        at(),
    )
    .await;
}

#[tokio::test]
async fn response_codes_are_configuration() {
    let mut config = PartyConfig::default();
    config
        .response_codes
        .0
        .insert("mpxn_mismatch".into(), "E062306".into());
    let w = world(config).await;
    let (_, a) = refused(
        &w,
        &b_to(demo::ESME_TCOS, 1, demo::MPAN_2)
            .signed(&w.pki)
            .unwrap(),
        at(),
    )
    .await;
    assert!(
        a.contains("<sr:ResponseCode>E062306</sr:ResponseCode>"),
        "{a}"
    );
}

#[tokio::test]
async fn command_variant_2_returns_the_command_for_local_delivery() {
    let w = world(PartyConfig::default()).await;
    let mut s = b_to(demo::ESME_TCOS, 1, demo::MPAN_1);
    s.command_variant = 2;
    let (cmd, answer, _) = accepted(&w, &s.signed(&w.pki).unwrap(), at()).await;
    assert!(
        answer.contains("<sr:LocalCommand><sr:GBCSPayload>"),
        "{answer}"
    );
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&cmd);
    assert!(answer.contains(&b64));
    assert!(
        w.sent.0.lock().unwrap().is_empty(),
        "variant 2 is not sent over the WAN"
    );
}

/// A store that fails (a database restart, a lost connection) is transient:
/// the request is answered 503 (retry later), not 500, and nothing is stored.
#[tokio::test]
async fn a_failing_store_answers_503_retry_later_not_an_internal_error() {
    use ecos_party::ServiceRequestHandler;
    let w = world(PartyConfig::default()).await;
    let body = b_to(demo::ESME_TCOS, 1, demo::MPAN_1)
        .signed(&w.pki)
        .unwrap();
    w.party.store().close().await;
    let answer = w.party.submit(&body, at()).await;
    assert_eq!(answer.http_status, 503, "{}", text(&answer.body));
    assert!(
        text(&answer.body).contains("retry later"),
        "{}",
        text(&answer.body)
    );
    assert!(
        w.sent.0.lock().unwrap().is_empty(),
        "nothing was sent to the device"
    );
}

/// An immediate request whose command is sent at once is stored as
/// `dispatched` by its acceptance's own write (claimed for sending): there is
/// no second write after the send. A trigger refusing any later move to
/// `dispatched` changes nothing: I99, the command left, the request is
/// `dispatched`.
#[tokio::test]
async fn an_immediate_command_is_claimed_in_its_acceptance_write() {
    let w = world(PartyConfig::default()).await;
    inject_fault(w._dir.path(), "dispatched").await;
    let body = b_to(demo::ESME_TCOS, 1, demo::MPAN_1)
        .signed(&w.pki)
        .unwrap();
    let answer = ecos_party::ServiceRequestHandler::submit(&w.party, &body, at()).await;
    assert_i99(&answer);
    assert_eq!(w.sent.0.lock().unwrap().len(), 1, "the command left");
    assert_dispatched(&w.party, &body).await;
}

/// A store write that fails after the acceptance is committed (here the
/// device transport fails, and a trigger refuses the move to `failed`) must
/// not turn the answer into a 503: the acceptance is durable, so a retry
/// would be refused as a reused RequestID. The requester gets its I99; the
/// request stays `dispatched`, which the time-out sweep answers.
#[tokio::test]
async fn a_write_failing_after_the_commit_still_answers_i99() {
    let pki = pki();
    let (store, _dir) = common::demo_store(PartyConfig::default().counter_floor).await;
    let party = demo::party(&pki, store, PartyConfig::default())
        .unwrap()
        .with_transport(Arc::new(Unreachable));
    inject_fault(_dir.path(), "failed").await;
    let body = b_to(demo::ESME_TCOS, 1, demo::MPAN_1).signed(&pki).unwrap();
    let (answer, outcome) = party.process(&body, at()).await.unwrap();
    assert_i99(&answer);
    match outcome {
        Outcome::Accepted { send_error, .. } => {
            assert_eq!(send_error.as_deref(), Some("the WAN is down"))
        }
        other => panic!("expected an acceptance, got {other:?}"),
    }
    assert_dispatched(&party, &body).await;
}

/// A 200 answer carrying I99.
fn assert_i99(answer: &ecos_party::api::SyncAnswer) {
    assert_eq!(answer.http_status, 200, "{}", text(&answer.body));
    assert!(
        text(&answer.body).contains("<sr:ResponseCode>I99</sr:ResponseCode>"),
        "{}",
        text(&answer.body)
    );
}

/// The request of `body` is stored as dispatched.
async fn assert_dispatched(party: &Party, body: &[u8]) {
    let stored = party
        .store()
        .request(&request_id(body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, RequestState::Dispatched);
}

/// A device transport that never delivers.
struct Unreachable;

impl ecos_party::DeviceTransport for Unreachable {
    fn send<'a>(
        &'a self,
        _device: ecos_smki::Eui64,
        _message: Vec<u8>,
    ) -> ecos_party::api::BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("the WAN is down".to_string()) })
    }
}

/// Make the store in `dir` refuse any update of a request's state to `state`.
async fn inject_fault(dir: &std::path::Path, state: &str) {
    let db = dir.join("ecos.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER no_{state} BEFORE UPDATE OF state ON requests \
         WHEN NEW.state = '{state}' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

fn request_id(body: &[u8]) -> String {
    ecos_duis::read_request_header(body, &ecos_duis::Limits::default())
        .unwrap()
        .request_id
        .to_string()
}

/// A CoS key that does not match its certificate is caught by the command
/// self-check on its first command, and then on every sampled one
/// (`command_signature_check_every`); nothing is sent or stored for a
/// command that fails it. With 1, every command is caught.
#[tokio::test]
async fn a_mis_signing_cos_key_is_caught_by_the_self_check() {
    for every in [3u64, 1] {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let config = PartyConfig {
            command_signature_check_every: every,
            ..PartyConfig::default()
        };
        let store = common::open_store(dir.path(), config.counter_floor).await;
        demo::load(&store, &pki).await.unwrap();
        let mut keys = demo::keys(&pki).unwrap();
        // The TCoS certificate with the ECoS key behind it.
        keys.tcos.signer = keys.ecos.signer.clone();
        let sent = Arc::new(Recorder::default());
        let party = Party::new(
            config,
            ecos_smki::MpidRules::default(),
            demo::registry(&pki),
            store.clone(),
            keys,
        )
        .with_transport(sent.clone());
        let mut caught = Vec::new();
        for i in 0..7u64 {
            let body = b_to(demo::ESME_TCOS, i + 1, demo::MPAN_1)
                .signed(&pki)
                .unwrap();
            let rid = ecos_duis::read_request_header(&body, &ecos_duis::Limits::default())
                .unwrap()
                .request_id
                .to_string();
            match party.process(&body, at()).await {
                Err(ecos_party::PartyError::Command(
                    ecos_party::command::CommandError::SelfCheck(_),
                )) => {
                    assert!(store.request(&rid).await.unwrap().is_none(), "stored");
                    caught.push(i);
                }
                Ok((_, Outcome::Accepted { .. })) => {}
                other => panic!("request {i}: {other:?}"),
            }
        }
        let want: Vec<u64> = (0..7).filter(|i| i % every == 0).collect();
        assert_eq!(caught, want, "every {every}");
        assert_eq!(party.signature_check_stats(), (7, want.len() as u64));
        assert_eq!(sent.0.lock().unwrap().len(), 7 - want.len());
    }
}
