//! End to end over the demo PKI and data on SQLite, with simulated meters
//! behind the device transport: what follows a 6.23 beyond its own answer.
//!
//! - re-validation of pending future-dated requests after a registration
//!   import (cancelled on the device, ECoSAlert to the requester);
//! - the losing supplier's `DeviceChangeOfSupplier` DCC alert;
//! - the new supplier credentials recorded on the device;
//! - no 6.23 while the device's migration command is in flight.

use std::sync::{Arc, Mutex};

use ecos_duis::Execution;
use ecos_party::api::BoxFuture;
use ecos_party::demo::{self, RequestSpec};
use ecos_party::{
    DeviceCancellation, DeviceTransport, OnMigrationInFlight, Outcome, Party, PartyConfig, Reason,
};
use ecos_sim::{CosCredential, DeviceContext, DeviceKind, Fleet, KeySource, Templates};
use ecos_smki::{Eui64, PathPolicy, TestPki};
use ecos_store::{ImportMode, ImportOptions, MigrationState, OutboundMessage, RequestState};
use jiff::Timestamp;

mod common;
use common::{at, pki};

/// The simulated fleet as the device transport: each command runs through
/// its device at the transport's clock; responses are kept for the test to
/// hand back to the party.
struct SimTransport {
    fleet: Arc<Fleet>,
    now: Mutex<Timestamp>,
    responses: Mutex<Vec<(Eui64, Vec<u8>)>>,
    sent: Mutex<Vec<(Eui64, Vec<u8>)>>,
}

impl DeviceTransport for SimTransport {
    fn send<'a>(&'a self, device: Eui64, message: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        let now = *self.now.lock().unwrap();
        self.sent.lock().unwrap().push((device, message.clone()));
        let r = self.fleet.handle(device, &message, now, None);
        Box::pin(async move {
            let h = r.map_err(|e| e.to_string())?;
            self.responses.lock().unwrap().push((device, h.response));
            Ok(())
        })
    }
}

struct World {
    pki: Arc<TestPki>,
    party: Party,
    link: Arc<SimTransport>,
    fleet: Arc<Fleet>,
    _dir: tempfile::TempDir,
}

async fn world_with(config: PartyConfig, transport: bool) -> World {
    let pki = pki();
    let (store, dir) = common::demo_store(config.counter_floor).await;
    let context = DeviceContext::new(pki.trust_store(), PathPolicy::default());
    let fleet = Arc::new(Fleet::new(
        Arc::new(context),
        KeySource::TestPki(pki.clone()),
    ));
    let templates = Templates::from_test_pki(&pki, demo::SUPPLIER_A).unwrap();
    for (eui, kind, cos) in [
        (
            demo::ESME_TCOS,
            DeviceKind::Esme,
            CosCredential::Transitional,
        ),
        (demo::ESME_ECOS, DeviceKind::Esme, CosCredential::Enduring),
        (
            demo::GSME_TCOS,
            DeviceKind::Gsme,
            CosCredential::Transitional,
        ),
    ] {
        fleet.insert(templates.make(eui, kind, cos));
    }
    let link = Arc::new(SimTransport {
        fleet: fleet.clone(),
        now: Mutex::new(at()),
        responses: Mutex::new(Vec::new()),
        sent: Mutex::new(Vec::new()),
    });
    let mut party = demo::party(&pki, store, config).unwrap();
    if transport {
        party = party.with_transport(link.clone());
    }
    World {
        pki,
        party,
        link,
        fleet,
        _dir: dir,
    }
}

async fn world(config: PartyConfig) -> World {
    world_with(config, true).await
}

impl World {
    /// Hand every device response collected so far back to the party.
    async fn deliver_responses(&self, at: Timestamp) -> Vec<ecos_party::device::DeviceReport> {
        let rs: Vec<_> = std::mem::take(&mut *self.link.responses.lock().unwrap());
        let mut out = Vec::new();
        for (_, bytes) in rs {
            out.push(self.party.on_device_message(&bytes, at).await.unwrap());
        }
        out
    }

    async fn outbound(&self) -> Vec<OutboundMessage> {
        self.party
            .store()
            .fetch_outbound_since(0, 1000, false)
            .await
            .unwrap()
    }

    fn pending_on_device(&self, eui: Eui64) -> bool {
        self.fleet
            .with_device(eui, |d| d.pending().is_some())
            .unwrap()
    }

    /// B's registration of MPAN_1 ends on 2026-06-15; C takes over on the 16th.
    async fn end_b_registration_of_mpan_1(&self) {
        self.import_regdata(
            "update-1",
            &format!(
                "mpxn,supplier_mpid,effective_from,effective_to\n\
                 {m},BDEE,{d},2026-06-15\n\
                 {m},CFEE,2026-06-16,\n",
                m = demo::MPAN_1,
                d = demo::SWITCH_DATE
            ),
        )
        .await;
    }

    async fn import_regdata(&self, id: &str, csv: &str) {
        self.party
            .store()
            .import_registration(
                csv.as_bytes(),
                &ImportOptions::new(id, ImportMode::Update),
                &mut |_| {},
            )
            .await
            .unwrap();
    }
}

async fn accept(w: &World, spec: &RequestSpec, at: Timestamp) -> String {
    accept_sent(w, spec, at, true).await
}

async fn accept_sent(w: &World, spec: &RequestSpec, at: Timestamp, sent: bool) -> String {
    let (_, outcome) = w
        .party
        .process(&spec.signed(&w.pki).unwrap(), at)
        .await
        .unwrap();
    match outcome {
        Outcome::Accepted {
            request_id,
            send_error,
            ..
        } => {
            assert_eq!(send_error.is_none(), sent, "{send_error:?}");
            request_id
        }
        other => panic!("expected acceptance, got {other:?}"),
    }
}

async fn refuse(w: &World, spec: &RequestSpec, at: Timestamp) -> (Reason, String) {
    let (answer, outcome) = w
        .party
        .process(&spec.signed(&w.pki).unwrap(), at)
        .await
        .unwrap();
    match outcome {
        Outcome::Refused(r) => (r.reason, String::from_utf8_lossy(&answer.body).into_owned()),
        other => panic!("expected refusal, got {other:?}"),
    }
}

fn fd(originator: Eui64, device: Eui64, counter: u64, mpxn: &str, when: &str) -> RequestSpec {
    let mut s = RequestSpec::new(originator, device, counter, mpxn);
    s.execution = Execution::FutureDated(when.parse().unwrap());
    s
}

/// The DSP signature on a queued document verifies with the DSP certificate.
fn assert_dsp_signed(pki: &TestPki, body: &[u8]) -> String {
    let cert = pki.dsp_xml_sign().cert.clone();
    ecos_xmldsig::verify_with(
        body,
        &ecos_xmldsig::VerifyOptions::default(),
        |_, serial| (serial == cert.serial_decimal()).then(|| cert.public_key().clone()),
    )
    .expect("DSP-signed");
    String::from_utf8_lossy(body).into_owned()
}

fn has(xml: &str, element: &str, value: &str) -> bool {
    xml.contains(&format!("<sr:{element}>{value}</sr:{element}>"))
}

/// Item 1: a registration import that ends the requester's registration
/// before the execution date cancels its pending future-dated request on the
/// device and tells it why; an unaffected pending request stays.
#[tokio::test]
async fn registration_change_cancels_an_invalidated_future_dated_request() {
    let w = world(PartyConfig::default()).await;
    let doomed = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::ESME_TCOS,
            1,
            demo::MPAN_1,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    let kept = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::ESME_ECOS,
            2,
            demo::MPAN_2,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    let reports = w.deliver_responses(at()).await;
    assert!(reports.iter().all(|r| r.accepted_only), "{reports:?}");
    assert!(w.pending_on_device(demo::ESME_TCOS));
    assert!(w.pending_on_device(demo::ESME_ECOS));

    // Nothing changed yet: re-validation leaves both alone.
    let r = w.party.revalidate_pending_future_dated(at()).await.unwrap();
    assert_eq!((r.checked, r.still_valid, r.cancelled.len()), (2, 2, 0));

    // B's registration of MPAN_1 now ends on 2026-06-15; C takes over.
    w.end_b_registration_of_mpan_1().await;
    let later: Timestamp = "2026-06-02T09:00:00Z".parse().unwrap();
    *w.link.now.lock().unwrap() = later;
    let r = w
        .party
        .revalidate_pending_future_dated(later)
        .await
        .unwrap();
    assert_eq!((r.checked, r.still_valid), (2, 1), "{r:?}");
    assert!(r.unchecked.is_empty(), "{r:?}");
    let [c] = &r.cancelled[..] else {
        panic!("{r:?}")
    };
    assert_eq!(c.request_id, doomed);
    match &c.reason {
        Reason::MpidNotRegisteredSupplier {
            mpid,
            as_of,
            registered,
            ..
        } => {
            assert_eq!(mpid, "BDEE");
            assert_eq!(as_of, "2026-07-01");
            assert_eq!(registered.as_deref(), Some("CFEE from 2026-06-16"));
        }
        other => panic!("{other:?}"),
    }

    // On the device: the cancellation was sent, signed with the key the
    // device trusts, and the held command is gone.
    let DeviceCancellation::Sent {
        request_id: cancel_id,
        counter,
    } = &c.on_device
    else {
        panic!("{:?}", c.on_device)
    };
    assert!(
        !w.pending_on_device(demo::ESME_TCOS),
        "held command cancelled"
    );
    assert!(
        w.pending_on_device(demo::ESME_ECOS),
        "the other one is kept"
    );
    let (dev, cmd) = w.link.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(dev, demo::ESME_TCOS);
    let msg = ecos_gbcs::Message::decode(&cmd).unwrap();
    assert_eq!(msg.frame.header.counter, *counter);
    msg.frame
        .verify_signature(w.pki.tcos().cert.public_key())
        .unwrap();
    let ecos_gbcs::Body::Command(body) = &msg.body else {
        panic!()
    };
    assert_eq!(body.execution, Some(ecos_gbcs::ExecutionDateTime::Cancel));

    // The device's commandAccepted completes the party's own cancellation.
    let reports = w.deliver_responses(later).await;
    assert_eq!(reports.len(), 1);
    let store = w.party.store();
    assert_eq!(
        store.request(cancel_id).await.unwrap().unwrap().state,
        RequestState::Completed
    );
    let pending = store.request(&doomed).await.unwrap().unwrap();
    assert_eq!(pending.state, RequestState::Cancelled);
    assert!(
        pending
            .decision_reason
            .as_deref()
            .unwrap()
            .contains("mpid_not_registered_supplier")
    );
    assert_eq!(
        store.request(&kept).await.unwrap().unwrap().state,
        RequestState::Dispatched
    );

    // The requester is told: a DSP-signed ECoSAlert naming the request and device.
    let out = w.outbound().await;
    let alerts: Vec<_> = out.iter().filter(|m| m.kind == "dcc_alert").collect();
    let [alert] = &alerts[..] else {
        panic!("{out:?}")
    };
    assert_eq!(alert.recipient, demo::SUPPLIER_B.to_string());
    let xml = assert_dsp_signed(&w.pki, &alert.body);
    assert!(has(&xml, "DCCAlertCode", "N63"), "{xml}");
    assert!(has(&xml, "ECoSAlertCode", "FDCANCELLED"), "{xml}");
    assert!(has(&xml, "RequestID", &doomed), "{xml}");
    assert!(has(&xml, "DeviceID", &demo::ESME_TCOS.to_string()), "{xml}");
    assert!(xml.contains("CFEE from 2026-06-16"), "{xml}");

    // Audited, chain intact; a second run finds nothing more to do.
    let entries = store.audit_entries(1, 1000).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.action == "fd_revalidation_cancelled" && e.subject == doomed)
    );
    assert!(
        store
            .verify_audit_chain()
            .await
            .unwrap()
            .first_broken
            .is_none()
    );
    let again = w
        .party
        .revalidate_pending_future_dated(later)
        .await
        .unwrap();
    assert_eq!((again.checked, again.cancelled.len()), (1, 0));

    // B can no longer ask for that date; C can.
    let (r, _) = refuse(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::ESME_TCOS,
            3,
            demo::MPAN_1,
            "2026-07-01T00:00:00Z",
        ),
        later,
    )
    .await;
    assert!(
        matches!(r, Reason::MpidNotRegisteredSupplier { .. }),
        "{r:?}"
    );
}

/// Item 1: a pending request whose command never left the party (no device
/// transport) is cancelled in the store only; the MPxN moving to another
/// device fails check 6; with the alert switched off nothing is queued.
#[tokio::test]
async fn revalidation_without_transport_and_on_an_mpxn_change() {
    let mut config = PartyConfig::default();
    config.dcc_alerts.fd_revalidation = false;
    let w = world_with(config, false).await;
    let id = accept_sent(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::GSME_TCOS,
            1,
            demo::MPRN_1,
            "2026-08-01T00:00:00Z",
        ),
        at(),
        false,
    )
    .await;
    assert_eq!(
        w.party.store().request(&id).await.unwrap().unwrap().state,
        RequestState::Accepted,
        "never sent"
    );
    // The inventory now puts another MPRN on the meter.
    w.party
        .store()
        .import_inventory(
            format!("device_eui,mpxn\n{},3000000015\n", demo::GSME_TCOS).as_bytes(),
            &ImportOptions::new("inv-update", ImportMode::Update),
            &mut |_| {},
        )
        .await
        .unwrap();
    let r = w.party.revalidate_pending_future_dated(at()).await.unwrap();
    let [c] = &r.cancelled[..] else {
        panic!("{r:?}")
    };
    assert!(
        matches!(c.reason, Reason::MpxnMismatch { .. }),
        "{:?}",
        c.reason
    );
    assert_eq!(c.on_device, DeviceCancellation::NotNeeded);
    assert_eq!(c.alert, None);
    assert!(w.outbound().await.is_empty());
    assert!(w.link.sent.lock().unwrap().is_empty());
    assert_eq!(
        w.party.store().request(&id).await.unwrap().unwrap().state,
        RequestState::Cancelled
    );
}

/// Items 2 and 3: a completed immediate change of supplier records B's
/// certificates on the device and tells A, the losing supplier.
#[tokio::test]
async fn completed_switch_records_credentials_and_alerts_the_losing_supplier() {
    let w = world(PartyConfig::default()).await;
    let id = accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1),
        at(),
    )
    .await;
    assert!(
        w.party
            .store()
            .device_supplier_credentials(demo::ESME_TCOS)
            .await
            .unwrap()
            .is_none()
    );
    let reports = w.deliver_responses(at()).await;
    assert!(
        reports[0].success && !reports[0].accepted_only,
        "{reports:?}"
    );

    let store = w.party.store();
    assert_eq!(
        store.request(&id).await.unwrap().unwrap().state,
        RequestState::Completed
    );
    let creds = store
        .device_supplier_credentials(demo::ESME_TCOS)
        .await
        .unwrap()
        .expect("recorded");
    let b = w.pki.organisation(demo::SUPPLIER_B).unwrap();
    assert_eq!(creds.supplier, demo::SUPPLIER_B);
    assert_eq!(creds.ds_cert.as_deref(), Some(b.ds.cert.der()));
    assert_eq!(creds.ka_cert.as_deref(), Some(b.ka.cert.der()));
    assert_eq!(creds.ka_top_up_cert.as_deref(), Some(b.pp_ka.cert.der()));
    assert_eq!(creds.request_id, id);

    let out = w.outbound().await;
    let to_b: Vec<_> = out
        .iter()
        .filter(|m| m.recipient == demo::SUPPLIER_B.to_string())
        .collect();
    assert_eq!(to_b.len(), 1, "{out:?}");
    assert_eq!(to_b[0].kind, "device_response");
    let to_a: Vec<_> = out
        .iter()
        .filter(|m| m.recipient == demo::SUPPLIER_A.to_string())
        .collect();
    let [alert] = &to_a[..] else {
        panic!("{out:?}")
    };
    assert_eq!(alert.kind, "dcc_alert");
    assert_eq!(
        alert.request_id, None,
        "the gaining supplier's RequestID is not disclosed"
    );
    let xml = assert_dsp_signed(&w.pki, &alert.body);
    assert!(has(&xml, "DCCAlertCode", "N65"), "{xml}");
    assert!(xml.contains("<sr:DeviceChangeOfSupplier>"), "{xml}");
    assert!(has(&xml, "DeviceID", &demo::ESME_TCOS.to_string()), "{xml}");
    assert!(has(&xml, "DeviceType", "ESME"), "{xml}");
    assert!(has(&xml, "ImportMPxN", demo::MPAN_1), "{xml}");
    let audit = store.audit_entries(1, 1000).await.unwrap();
    for action in ["inventory_supplier_credentials", "losing_supplier_alerted"] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "{action} not audited"
        );
    }
    assert!(
        store
            .verify_audit_chain()
            .await
            .unwrap()
            .first_broken
            .is_none()
    );
}

/// Items 2 and 3 for a future-dated switch: nothing at `commandAccepted`,
/// everything when the 0x00CB alert reports success; gas meter, gas MPIDs.
#[tokio::test]
async fn future_dated_switch_follows_up_on_the_device_alert() {
    let w = world(PartyConfig::default()).await;
    let when: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
    let id = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::GSME_TCOS,
            1,
            demo::MPRN_1,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    w.deliver_responses(at()).await;
    let out = w.outbound().await;
    assert!(
        out.iter().all(|m| m.kind == "device_response"),
        "only the commandAccepted answer until the outcome: {out:?}"
    );
    let store = w.party.store();
    assert!(
        store
            .device_supplier_credentials(demo::GSME_TCOS)
            .await
            .unwrap()
            .is_none()
    );

    let alerts = w.fleet.tick(when, |_, _| None);
    let [(dev, Ok(alert))] = &alerts[..] else {
        panic!("{alerts:?}")
    };
    assert_eq!(*dev, demo::GSME_TCOS);
    let report = w.party.on_device_message(alert, when).await.unwrap();
    assert!(report.success);
    assert_eq!(
        store.request(&id).await.unwrap().unwrap().state,
        RequestState::Completed
    );
    let creds = store
        .device_supplier_credentials(demo::GSME_TCOS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.supplier, demo::SUPPLIER_B);
    let out = w.outbound().await;
    let to_a: Vec<_> = out
        .iter()
        .filter(|m| m.recipient == demo::SUPPLIER_A.to_string())
        .collect();
    let [a] = &to_a[..] else { panic!("{out:?}") };
    let xml = assert_dsp_signed(&w.pki, &a.body);
    assert!(
        has(&xml, "DeviceType", "GSME") && has(&xml, "ImportMPxN", demo::MPRN_1),
        "{xml}"
    );
}

/// Item 2 configuration and edge cases: switched off, nothing to the losing
/// supplier; a losing MPID no service user trades under is audited.
#[tokio::test]
async fn losing_supplier_alert_is_configurable_and_needs_a_service_user() {
    let mut config = PartyConfig::default();
    config.dcc_alerts.losing_supplier = false;
    let w = world(config).await;
    accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1),
        at(),
    )
    .await;
    w.deliver_responses(at()).await;
    let out = w.outbound().await;
    assert!(
        out.iter()
            .all(|m| m.recipient == demo::SUPPLIER_B.to_string()),
        "{out:?}"
    );
    assert!(
        w.party
            .store()
            .device_supplier_credentials(demo::ESME_TCOS)
            .await
            .unwrap()
            .is_some(),
        "the inventory is updated regardless"
    );

    // On: A's MPID is not traded by any service user any more.
    let w = world(PartyConfig::default()).await;
    w.party
        .store()
        .import_service_users(
            format!(
                "org_eui,name,roles,mpids,response_endpoint\n{},Supplier A,IS GS,AXEE AXG,http://127.0.0.1:9/a\n",
                demo::SUPPLIER_A
            )
            .as_bytes(),
            &ImportOptions::new("users-2", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .unwrap();
    accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1),
        at(),
    )
    .await;
    w.deliver_responses(at()).await;
    assert!(w.outbound().await.iter().all(|m| m.kind != "dcc_alert"));
    let audit = w.party.store().audit_entries(1, 1000).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "losing_supplier_unknown" && e.detail.contains("ACEE")),
        "{audit:?}"
    );
}

/// Item 4: no 6.23 while the device's 0x0106 is selected or sent; other
/// migration states and migrated devices are not held up; `proceed` turns
/// the rule off.
#[tokio::test]
async fn a_request_does_not_race_the_devices_migration() {
    let w = world(PartyConfig::default()).await;
    let store = w.party.store();
    for (state, counter) in [(MigrationState::Selected, 1), (MigrationState::Sent, 2)] {
        if store
            .migration_record(demo::ESME_TCOS)
            .await
            .unwrap()
            .is_none()
        {
            store
                .migration_track(demo::ESME_TCOS, state, None, None, None, at(), "test")
                .await
                .unwrap();
        } else {
            let cur = store
                .migration_record(demo::ESME_TCOS)
                .await
                .unwrap()
                .unwrap();
            store
                .migration_transition(&cur, &cur.to(state, "test"), at())
                .await
                .unwrap()
                .unwrap();
        }
        let (r, answer) = refuse(
            &w,
            &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, counter, demo::MPAN_1),
            at(),
        )
        .await;
        assert_eq!(
            r,
            Reason::MigrationInFlight {
                device: demo::ESME_TCOS.to_string(),
                state: state.to_string()
            }
        );
        assert!(
            answer.contains("<sr:ResponseCode>E062306</sr:ResponseCode>"),
            "{answer}"
        );
    }
    assert!(w.link.sent.lock().unwrap().is_empty(), "nothing sent");

    // Back to waiting for a retry: the request goes through.
    let cur = store
        .migration_record(demo::ESME_TCOS)
        .await
        .unwrap()
        .unwrap();
    store
        .migration_transition(&cur, &cur.to(MigrationState::RetryWaiting, "test"), at())
        .await
        .unwrap()
        .unwrap();
    accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 3, demo::MPAN_1),
        at(),
    )
    .await;

    // Policy `proceed`.
    let w = world(PartyConfig {
        on_migration_in_flight: OnMigrationInFlight::Proceed,
        ..PartyConfig::default()
    })
    .await;
    w.party
        .store()
        .migration_track(
            demo::ESME_TCOS,
            MigrationState::Sent,
            None,
            None,
            None,
            at(),
            "test",
        )
        .await
        .unwrap();
    accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1),
        at(),
    )
    .await;
}

/// A device that never answers: after `device_timeouts.response_secs` the
/// immediate request is failed and its requester gets a DSP-signed E21; a
/// future-dated one whose outcome alert never comes gets E30 once
/// `future_dated_secs` have passed after its execution date-time. Each is
/// answered once: a second sweep finds nothing, and the device's late
/// answer is refused as already answered.
#[tokio::test]
async fn unanswered_commands_time_out_with_e21_and_e30() {
    let w = world(PartyConfig::default()).await;
    let t = PartyConfig::default().device_timeouts;
    let imm = accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1),
        at(),
    )
    .await;
    let late = std::mem::take(&mut *w.link.responses.lock().unwrap());
    assert_eq!(late.len(), 1, "the device's response, held back");
    let when: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
    let fd_id = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::GSME_TCOS,
            2,
            demo::MPRN_1,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    w.deliver_responses(at()).await; // commandAccepted only: stays dispatched
    let store = w.party.store();
    for id in [&imm, &fd_id] {
        assert_eq!(
            store.request(id).await.unwrap().unwrap().state,
            RequestState::Dispatched
        );
    }
    let secs = |s: u64| jiff::SignedDuration::from_secs(i64::try_from(s).unwrap());

    // Not yet due: neither moves.
    let none = w
        .party
        .expire_unanswered(when.checked_add(secs(t.future_dated_secs - 60)).unwrap())
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // The future-dated outcome is overdue; the immediate response is not
    // (it left moments ago by the wall clock).
    let fd_due = when.checked_add(secs(t.future_dated_secs + 1)).unwrap();
    let timed = w.party.expire_unanswered(fd_due).await.unwrap();
    assert_eq!(timed.len(), 1, "{timed:?}");
    assert_eq!(
        (
            timed[0].request_id.as_str(),
            timed[0].response_code.as_str()
        ),
        (fd_id.as_str(), "E30")
    );
    assert_eq!(timed[0].due_since, when);

    // Later by the wall clock: the immediate request times out too.
    let now = Timestamp::now()
        .checked_add(secs(t.response_secs + 1))
        .unwrap();
    let timed = w.party.expire_unanswered(now).await.unwrap();
    assert_eq!(timed.len(), 1, "{timed:?}");
    assert_eq!(
        (
            timed[0].request_id.as_str(),
            timed[0].response_code.as_str()
        ),
        (imm.as_str(), "E21")
    );
    assert!(w.party.expire_unanswered(now).await.unwrap().is_empty());

    for (id, code) in [(&imm, "E21"), (&fd_id, "E30")] {
        assert_eq!(
            store.request(id).await.unwrap().unwrap().state,
            RequestState::Failed
        );
        let out = w.outbound().await;
        let msg = out
            .iter()
            .find(|m| m.kind == "device_timeout" && m.request_id.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no timeout response for {id}: {out:?}"));
        assert_eq!(msg.recipient, demo::SUPPLIER_B.to_string());
        let xml = assert_dsp_signed(&w.pki, &msg.body);
        assert!(has(&xml, "ResponseCode", code), "{xml}");
        assert!(xml.contains("<sr:ResponseID>"), "{xml}");
    }

    // The device's answer, arriving after all: not answered twice.
    let (_, bytes) = &late[0];
    let e = w.party.on_device_message(bytes, now).await.unwrap_err();
    assert!(
        matches!(e, ecos_party::PartyError::AlreadyAnswered(ref id) if *id == imm),
        "{e}"
    );
    let audit = store.verify_audit_chain().await.unwrap();
    assert!(audit.first_broken.is_none());
}

/// A re-validation cancellation that could not be sent (here the party
/// running the re-validation has no device transport) stays `accepted`;
/// the resend sweep sends it while the cancelled request's execution is
/// still ahead (the device drops its pending command and its
/// `commandAccepted` completes the cancellation), and fails it, audited,
/// once that execution has passed.
#[tokio::test]
async fn unsent_revalidation_cancellations_are_sent_later() {
    let w = world(PartyConfig::default()).await;
    let esme = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::ESME_TCOS,
            1,
            demo::MPAN_1,
            "2026-08-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    let gsme = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::GSME_TCOS,
            2,
            demo::MPRN_1,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    w.deliver_responses(at()).await;
    assert!(w.pending_on_device(demo::ESME_TCOS) && w.pending_on_device(demo::GSME_TCOS));

    // The inventory moves both meters to other MPxNs; a party without a
    // transport re-validates.
    w.party
        .store()
        .import_inventory(
            format!(
                "device_eui,mpxn\n{},2000000000015\n{},3000000015\n",
                demo::ESME_TCOS,
                demo::GSME_TCOS
            )
            .as_bytes(),
            &ImportOptions::new("inv-move", ImportMode::Update),
            &mut |_| {},
        )
        .await
        .unwrap();
    let offline = demo::party(&w.pki, w.party.store().clone(), PartyConfig::default()).unwrap();
    let r = offline.revalidate_pending_future_dated(at()).await.unwrap();
    assert_eq!(r.cancelled.len(), 2, "{r:?}");
    let mut cancel_ids = std::collections::HashMap::new();
    for c in &r.cancelled {
        let DeviceCancellation::NotSent { request_id, .. } = &c.on_device else {
            panic!("{c:?}")
        };
        assert_eq!(
            w.party
                .store()
                .request(request_id)
                .await
                .unwrap()
                .unwrap()
                .state,
            RequestState::Accepted,
            "kept for a later send"
        );
        cancel_ids.insert(c.request_id.clone(), request_id.clone());
    }
    let sent_before = w.link.sent.lock().unwrap().len();

    // Between the two executions: the ESME's is sent, the GSME's is too late.
    let mid: Timestamp = "2026-07-15T00:00:00Z".parse().unwrap();
    let sent = w.party.resend_unsent_cancellations(mid).await.unwrap();
    assert_eq!(sent, vec![cancel_ids[&esme].clone()]);
    assert_eq!(w.link.sent.lock().unwrap().len(), sent_before + 1);
    let store = w.party.store();
    assert_eq!(
        store
            .request(&cancel_ids[&gsme])
            .await
            .unwrap()
            .unwrap()
            .state,
        RequestState::Failed
    );
    w.deliver_responses(mid).await;
    assert_eq!(
        store
            .request(&cancel_ids[&esme])
            .await
            .unwrap()
            .unwrap()
            .state,
        RequestState::Completed,
        "the device's commandAccepted completes it"
    );
    assert!(
        !w.pending_on_device(demo::ESME_TCOS),
        "dropped on the device"
    );
    assert!(
        w.party
            .resend_unsent_cancellations(mid)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to send"
    );
    let audit = store.verify_audit_chain().await.unwrap();
    assert!(audit.first_broken.is_none());
}

/// A stored request that no longer reads cannot be answered: the sweep
/// fails it and audits why, and the next sweep does not stop on it.
#[tokio::test]
async fn an_unreadable_overdue_request_is_failed_without_blocking_the_sweep() {
    let w = world(PartyConfig::default()).await;
    let id = accept(
        &w,
        &RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1),
        at(),
    )
    .await;
    w.link.responses.lock().unwrap().clear();
    let db = w._dir.path().join("ecos.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE requests SET request_xml = '<broken' WHERE request_id = ?")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let later = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(7200))
        .unwrap();
    let timed = w.party.expire_unanswered(later).await.unwrap();
    assert!(timed.is_empty(), "no response could be sent: {timed:?}");
    let store = w.party.store();
    assert_eq!(
        store.request(&id).await.unwrap().unwrap().state,
        RequestState::Failed
    );
    assert!(
        w.outbound()
            .await
            .iter()
            .all(|m| m.kind != "device_timeout")
    );
    assert!(w.party.expire_unanswered(later).await.unwrap().is_empty());
    assert!(
        store
            .verify_audit_chain()
            .await
            .unwrap()
            .first_broken
            .is_none()
    );
}

/// B's future-dated 6.23 for the gas meter, executing 2026-07-01, received at `at()`.
async fn accept_gas_fd(w: &World) -> String {
    accept(
        w,
        &fd(
            demo::SUPPLIER_B,
            demo::GSME_TCOS,
            1,
            demo::MPRN_1,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await
}

fn held(lead_secs: u64) -> PartyConfig {
    PartyConfig {
        fd_dispatch_lead_secs: Some(lead_secs),
        ..PartyConfig::default()
    }
}

fn sent_count(w: &World) -> usize {
    w.link.sent.lock().unwrap().len()
}

async fn state_of(w: &World, id: &str) -> RequestState {
    w.party.store().request(id).await.unwrap().unwrap().state
}

async fn audited(w: &World, action: &str, subject: &str) -> bool {
    w.party
        .store()
        .audit_entries(1, 1000)
        .await
        .unwrap()
        .iter()
        .any(|e| e.action == action && e.subject == subject)
}

/// `fd_dispatch_lead_secs`: a future-dated request is held in the store at
/// receipt, re-checked and sent by the sweep once its lead before execution
/// is reached, and completes on the device's outcome alert as usual.
#[tokio::test]
async fn held_future_dated_request_is_sent_at_its_lead() {
    let w = world(held(86_400)).await;
    let when: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
    let id = accept_gas_fd(&w).await;
    assert_eq!(sent_count(&w), 0, "held: nothing sent at receipt");
    assert_eq!(state_of(&w, &id).await, RequestState::Accepted);
    assert!(!w.pending_on_device(demo::GSME_TCOS));

    // A second before the lead: not due.
    let lead_at: Timestamp = "2026-06-30T00:00:00Z".parse().unwrap();
    let early = lead_at
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap();
    let d = w.party.dispatch_held_future_dated(early).await.unwrap();
    assert_eq!((d.due, d.sent.len()), (0, 0), "{d:?}");

    // At the lead: re-checked and sent, claimed as dispatched, audited.
    *w.link.now.lock().unwrap() = lead_at;
    let d = w.party.dispatch_held_future_dated(lead_at).await.unwrap();
    assert_eq!(d.sent, vec![id.clone()], "{d:?}");
    assert_eq!(sent_count(&w), 1);
    assert_eq!(state_of(&w, &id).await, RequestState::Dispatched);
    assert!(w.pending_on_device(demo::GSME_TCOS));
    assert!(audited(&w, "fd_dispatched", &id).await);
    let again = w.party.dispatch_held_future_dated(lead_at).await.unwrap();
    assert_eq!(again, ecos_party::HeldDispatch::default(), "sent once");

    // The device takes it and reports the outcome at execution.
    let reports = w.deliver_responses(lead_at).await;
    assert!(reports.iter().all(|r| r.accepted_only), "{reports:?}");
    let alerts = w.fleet.tick(when, |_, _| None);
    let [(_, Ok(alert))] = &alerts[..] else {
        panic!("{alerts:?}")
    };
    assert!(
        w.party
            .on_device_message(alert, when)
            .await
            .unwrap()
            .success
    );
    assert_eq!(state_of(&w, &id).await, RequestState::Completed);
}

/// A request held while a lead was set is not stranded when the lead is
/// switched off (a restart with `fd_dispatch_lead_secs` unset): the next
/// sweep sends it, long before its execution.
#[tokio::test]
async fn held_requests_go_with_the_next_sweep_once_the_lead_is_switched_off() {
    let w = world(held(86_400)).await;
    let id = accept_gas_fd(&w).await;
    assert_eq!(sent_count(&w), 0, "held at receipt");
    let d = w.party.dispatch_held_future_dated(at()).await.unwrap();
    assert_eq!(
        (d.due, d.sent.len()),
        (0, 0),
        "not due with the lead: {d:?}"
    );

    let unheld = demo::party(&w.pki, w.party.store().clone(), PartyConfig::default())
        .unwrap()
        .with_transport(w.link.clone());
    let d = unheld.dispatch_held_future_dated(at()).await.unwrap();
    assert_eq!(d.sent, vec![id.clone()], "{d:?}");
    assert_eq!(sent_count(&w), 1);
    assert_eq!(state_of(&w, &id).await, RequestState::Dispatched);
    assert!(w.pending_on_device(demo::GSME_TCOS));
    let again = unheld.dispatch_held_future_dated(at()).await.unwrap();
    assert_eq!(again, ecos_party::HeldDispatch::default(), "sent once");
}

/// A held request whose lead is already here at receipt goes at once; one
/// that cannot be sent stays held and goes with a later sweep.
#[tokio::test]
async fn held_request_due_at_receipt_goes_at_once_and_a_failed_send_is_retried() {
    let w = world(held(40 * 86_400)).await;
    let id = accept_gas_fd(&w).await;
    assert_eq!(sent_count(&w), 1);
    assert_eq!(state_of(&w, &id).await, RequestState::Dispatched);

    let w = world_with(held(86_400), false).await;
    let id = accept_gas_fd(&w).await;
    let lead_at: Timestamp = "2026-06-30T06:00:00Z".parse().unwrap();
    let d = w.party.dispatch_held_future_dated(lead_at).await.unwrap();
    assert_eq!(d.not_sent.len(), 1, "{d:?}");
    assert!(d.not_sent[0].1.contains("no device transport"), "{d:?}");
    assert_eq!(
        state_of(&w, &id).await,
        RequestState::Accepted,
        "still held"
    );
}

/// Re-validation at dispatch: a held request whose requester is no longer
/// the registered supplier at the execution date is cancelled in the store
/// only (its command never left) and its requester gets the ECoSAlert.
#[tokio::test]
async fn held_request_failing_its_recheck_at_dispatch_is_cancelled_without_the_device() {
    let w = world(held(86_400)).await;
    let id = accept(
        &w,
        &fd(
            demo::SUPPLIER_B,
            demo::ESME_TCOS,
            1,
            demo::MPAN_1,
            "2026-07-01T00:00:00Z",
        ),
        at(),
    )
    .await;
    w.end_b_registration_of_mpan_1().await;
    let lead_at: Timestamp = "2026-06-30T00:00:00Z".parse().unwrap();
    let d = w.party.dispatch_held_future_dated(lead_at).await.unwrap();
    let [c] = &d.cancelled[..] else {
        panic!("{d:?}")
    };
    assert_eq!(c.request_id, id);
    assert!(
        matches!(c.reason, Reason::MpidNotRegisteredSupplier { .. }),
        "{c:?}"
    );
    assert_eq!(c.on_device, DeviceCancellation::NotNeeded);
    assert!(d.sent.is_empty());
    assert_eq!(sent_count(&w), 0, "nothing reached the device");
    assert_eq!(state_of(&w, &id).await, RequestState::Cancelled);
    let out = w.outbound().await;
    assert!(
        out.iter()
            .any(|m| m.kind == "dcc_alert" && m.recipient == demo::SUPPLIER_B.to_string()),
        "{out:?}"
    );
}

/// A cancellation of a held request: no command for the device, the held
/// request is cancelled, and the cancellation is answered at once with a
/// DSP-signed I0; the sweep then has nothing to send.
#[tokio::test]
async fn cancelling_a_held_request_needs_no_device_command() {
    let w = world(held(86_400)).await;
    let id = accept_gas_fd(&w).await;
    let mut cancel = RequestSpec::new(demo::SUPPLIER_B, demo::GSME_TCOS, 2, demo::MPRN_1);
    cancel.execution = Execution::Cancellation;
    let (answer, outcome) = w
        .party
        .process(&cancel.signed(&w.pki).unwrap(), at())
        .await
        .unwrap();
    let Outcome::Accepted {
        request_id: cancel_id,
        send_error,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(send_error.is_none());
    assert!(String::from_utf8_lossy(&answer.body).contains("I99"));
    assert_eq!(sent_count(&w), 0, "nothing for the device");
    assert_eq!(state_of(&w, &id).await, RequestState::Cancelled);
    assert_eq!(state_of(&w, &cancel_id).await, RequestState::Completed);
    let pending = w.party.store().request(&id).await.unwrap().unwrap();
    assert!(
        pending
            .decision_reason
            .as_deref()
            .is_some_and(|r| r.contains(&cancel_id)),
        "{pending:?}"
    );
    let out = w.outbound().await;
    let [resp] = &out[..] else { panic!("{out:?}") };
    assert_eq!(
        (resp.kind.as_str(), resp.recipient.as_str()),
        ("dsp_response", demo::SUPPLIER_B.to_string().as_str())
    );
    let xml = assert_dsp_signed(&w.pki, &resp.body);
    assert!(has(&xml, "ResponseCode", "I0"), "{xml}");
    assert!(has(&xml, "RequestID", &cancel_id), "{xml}");
    assert!(audited(&w, "fd_cancelled_locally", &cancel_id).await);
    let lead_at: Timestamp = "2026-06-30T00:00:00Z".parse().unwrap();
    let d = w.party.dispatch_held_future_dated(lead_at).await.unwrap();
    assert_eq!(d, ecos_party::HeldDispatch::default());
    assert!(
        w.party
            .store()
            .verify_audit_chain()
            .await
            .unwrap()
            .first_broken
            .is_none()
    );
}

/// A held request the service could not send before its execution (it was
/// down) is failed, and its requester sent the future-dated time-out error.
#[tokio::test]
async fn held_request_missing_its_execution_is_failed_with_e30() {
    let w = world(held(86_400)).await;
    let id = accept_gas_fd(&w).await;
    let late: Timestamp = "2026-07-01T00:00:01Z".parse().unwrap();
    let d = w.party.dispatch_held_future_dated(late).await.unwrap();
    assert_eq!(d.missed, vec![id.clone()], "{d:?}");
    assert_eq!(sent_count(&w), 0);
    assert_eq!(state_of(&w, &id).await, RequestState::Failed);
    let out = w.outbound().await;
    let [resp] = &out[..] else { panic!("{out:?}") };
    let xml = assert_dsp_signed(&w.pki, &resp.body);
    assert!(has(&xml, "ResponseCode", "E30"), "{xml}");
    assert!(audited(&w, "fd_dispatch_missed", &id).await);
}
