//! Acceptance against the RTDS reference vectors: the model, loaded with the
//! reference ESME's cells, accepts the reference commands, answers in the
//! reference layout byte for byte (up to its own signature) and refuses
//! altered copies.

use std::path::{Path, PathBuf};

use ecos_gbcs::{Body, Message, StatusCode};
use ecos_sim::reference::{ReferenceDevice, reference_esme};
use ecos_sim::{CellId, Rejection};
use ecos_smki::{Eui64, SoftwareKeyAgreement, SoftwareSigner};
use jiff::Timestamp;

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if dir.join("rtds").is_dir() && dir.join("keystore").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: fixtures not found at {} (set ECOS_FIXTURES)",
            dir.display()
        );
        None
    }
}

const D623: &str = "6.23_CS02bSupplierByTransCoS";
const D106: &str = "NA_CS02bTransCoSByTransCoS";
const D6151: &str = "6.15.1_CS02bSupplierBySupplier";

fn vector(fx: &Path, dir: &str, name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fx.join("rtds").join(dir).join(name)).unwrap();
    hex::decode(text.trim()).unwrap()
}

fn v623(fx: &Path, what: &str) -> Vec<u8> {
    vector(
        fx,
        D623,
        &format!("CS02bSupplierByTransCoS_6.23_{what}_GBCS.HEX"),
    )
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    t("2025-10-01T00:00:00Z")
}

/// The device's response decodes, verifies with its DS key and equals the
/// reference response up to the signature.
fn assert_like_reference(r: &ReferenceDevice, ours: &[u8], reference: &[u8]) {
    let m = Message::decode(ours).expect("response decodes");
    m.frame
        .verify_signature(r.ds.public_key())
        .expect("response signature verifies");
    let want = Message::decode(reference).unwrap();
    assert_eq!(
        hex::encode_upper(m.frame.up_to_signature()),
        hex::encode_upper(want.frame.up_to_signature()),
    );
}

fn ski(r: &ReferenceDevice, c: CellId) -> String {
    hex::encode_upper(&r.device.cell(c).unwrap().ski)
}

fn esme(fx: &Path) -> ReferenceDevice {
    reference_esme(fx, 7).unwrap()
}

fn run(r: &mut ReferenceDevice, cmd: &[u8]) -> Result<ecos_sim::Handled, Rejection> {
    r.device
        .handle(cmd, r.ds.as_ref(), r.ka.as_ref(), &r.context, now(), None)
}

#[test]
fn immediate_6_23_is_accepted_and_replaces_supplier_cells() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    assert_eq!(ski(&r, CellId::SupplierDs), "44899792D196F4B8");
    let h = run(&mut r, &v623(&fx, "IMMEDIATE_SUCCESS_COMMAND")).unwrap();
    assert_like_reference(&r, &h.response, &v623(&fx, "IMMEDIATE_SUCCESS_RESPONSE"));
    assert!(h.outcome.unwrap().all_succeeded());
    assert_eq!(ski(&r, CellId::SupplierDs), "4A8103ADAC183A89");
    assert_eq!(ski(&r, CellId::SupplierKa), "483972547DCD7835");
    assert_eq!(ski(&r, CellId::SupplierPpKa), "43049452FE1FCE0A");
    assert_eq!(
        r.device.cell(CellId::SupplierDs).unwrap().sui,
        "90B3D51F30030000".parse::<Eui64>().unwrap()
    );
    assert_eq!(r.device.counter(5), 6001);
    assert_eq!(r.device.counter(2), 0);
    assert_eq!(r.device.supplier_pp_floor(), 0);
}

#[test]
fn future_dated_6_23_is_held_then_alerted() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let h = run(&mut r, &v623(&fx, "FUTURE_DATED_SUCCESS_COMMAND")).unwrap();
    assert!(h.held);
    assert_like_reference(&r, &h.response, &v623(&fx, "FUTURE_DATED_SUCCESS_RESPONSE"));
    assert_eq!(
        ski(&r, CellId::SupplierDs),
        "44899792D196F4B8",
        "not yet executed"
    );
    let early = r
        .device
        .tick(r.ds.as_ref(), &r.context, t("2030-01-01T23:59:59Z"), None)
        .unwrap();
    assert!(early.is_none());
    let alert = r
        .device
        .tick(r.ds.as_ref(), &r.context, t("2030-01-02T00:00:00Z"), None)
        .unwrap()
        .expect("alert at the execution time");
    assert_like_reference(&r, &alert, &v623(&fx, "8F66_FUTURE_DATED_SUCCESS_ALERT"));
    assert_eq!(ski(&r, CellId::SupplierDs), "4A8103ADAC183A89");
    assert!(r.device.pending().is_none());
    assert_eq!(r.device.next_alert_counter(), 2002);
}

#[test]
fn cancellation_removes_the_pending_command() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    run(&mut r, &v623(&fx, "FUTURE_DATED_SUCCESS_COMMAND")).unwrap();
    let h = run(&mut r, &v623(&fx, "CANCELLATION_SUCCESS_COMMAND")).unwrap();
    assert!(h.cancelled);
    assert_like_reference(&r, &h.response, &v623(&fx, "CANCELLATION_SUCCESS_RESPONSE"));
    assert!(r.device.pending().is_none());
    let none = r
        .device
        .tick(r.ds.as_ref(), &r.context, t("2031-01-01T00:00:00Z"), None)
        .unwrap();
    assert!(none.is_none());
    assert_eq!(ski(&r, CellId::SupplierDs), "44899792D196F4B8");
}

#[test]
fn trans_cos_by_trans_cos_swaps_the_cos_anchor() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cmd = vector(
        &fx,
        D106,
        "CS02bTransCoSByTransCoS_NA_SUCCESS_COMMAND_GBCS.HEX",
    );
    let h = run(&mut r, &cmd).unwrap();
    assert_like_reference(
        &r,
        &h.response,
        &vector(
            &fx,
            D106,
            "CS02bTransCoSByTransCoS_NA_SUCCESS_RESPONSE_GBCS.HEX",
        ),
    );
    assert_eq!(ski(&r, CellId::TransCosDs), "4F3F10855696FEF2");
    assert_eq!(
        r.device.counter(5),
        6000,
        "the role-5 counter survives the swap"
    );
    // The old TCoS key no longer authorises anything on this device.
    let e = run(&mut r, &v623(&fx, "IMMEDIATE_SUCCESS_COMMAND")).unwrap_err();
    assert_eq!(e, Rejection::BadSignature);
}

#[test]
fn replayed_counter_is_refused() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cmd = v623(&fx, "IMMEDIATE_SUCCESS_COMMAND");
    run(&mut r, &cmd).unwrap();
    let e = run(&mut r, &cmd).unwrap_err();
    assert_eq!(
        e,
        Rejection::Replay {
            counter: 6001,
            stored: 6001,
            role: 5
        }
    );
    // A lower counter after a higher one, too.
    let mut r = esme(&fx);
    run(&mut r, &v623(&fx, "FUTURE_DATED_SUCCESS_COMMAND")).unwrap();
    assert!(matches!(
        run(&mut r, &cmd),
        Err(Rejection::Replay {
            counter: 6001,
            stored: 6002,
            ..
        })
    ));
}

#[test]
fn bad_mac_is_refused() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let mut cmd = v623(&fx, "IMMEDIATE_SUCCESS_COMMAND");
    let n = cmd.len();
    cmd[n - 1] ^= 0x01;
    assert_eq!(run(&mut r, &cmd).unwrap_err(), Rejection::BadMac);
    // A content byte changed under an intact MAC fails the MAC first.
    let mut cmd = v623(&fx, "IMMEDIATE_SUCCESS_COMMAND");
    cmd[100] ^= 0x01;
    assert!(run(&mut r, &cmd).is_err());
    assert_eq!(r.device.counter(5), 0, "nothing stored");
}

/// Re-MAC an APDU with the ACB key, as the ACB would for whatever it gets.
fn remac(fx: &Path, apdu: &[u8]) -> Vec<u8> {
    let acb = SoftwareKeyAgreement::from_file(fx.join("keystore/90b3d51f30000002-ka.key")).unwrap();
    let dev = ecos_smki::Certificate::load(fx.join("keystore/00db1234567890a0-ka.pem")).unwrap();
    ecos_gbcs::mac::wrap(apdu, &acb, dev.public_key()).unwrap()
}

#[test]
fn bad_signature_is_refused() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cmd = v623(&fx, "IMMEDIATE_SUCCESS_COMMAND");
    let m = Message::decode(&cmd).unwrap();
    let mut apdu = m.frame.apdu().to_vec();
    let n = apdu.len();
    apdu[n - 5] ^= 0x40; // inside s
    let altered = remac(&fx, &apdu);
    assert_eq!(run(&mut r, &altered).unwrap_err(), Rejection::BadSignature);
    // Re-MACed but unaltered: accepted (the re-MAC itself is sound).
    let h = run(&mut r, &remac(&fx, m.frame.apdu())).unwrap();
    assert!(h.outcome.unwrap().all_succeeded());
}

#[test]
fn a_command_signed_by_another_key_is_refused() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cmd = v623(&fx, "IMMEDIATE_SUCCESS_COMMAND");
    let m = Message::decode(&cmd).unwrap();
    // Signed by the supplier instead of the TCoS: the signature over the
    // same bytes does not verify with the role-5 cell.
    let sup = SoftwareSigner::from_file(fx.join("keystore/90b3d51f30010000-ds.key")).unwrap();
    let mut apdu = vec![0xDF];
    apdu.extend_from_slice(m.frame.signed_bytes());
    apdu.push(0x40);
    apdu.extend_from_slice(&ecos_smki::Signer::sign(&sup, m.frame.signed_bytes()).unwrap());
    assert_eq!(
        run(&mut r, &remac(&fx, &apdu)).unwrap_err(),
        Rejection::BadSignature
    );
}

#[test]
fn certificate_from_an_unknown_ca_gets_status_10_as_in_6_15_1_error() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cmd = vector(
        &fx,
        D6151,
        "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_ERROR_COMMAND_GBCS.HEX",
    );
    let h = run(&mut r, &cmd).unwrap();
    assert_like_reference(
        &r,
        &h.response,
        &vector(
            &fx,
            D6151,
            "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_ERROR_RESPONSE_GBCS.HEX",
        ),
    );
    let out = h.outcome.unwrap();
    assert!(
        out.replacement_outcomes
            .iter()
            .any(|o| o.status == StatusCode::NO_TRUST_ANCHOR)
    );
}

#[test]
fn supplier_by_supplier_vectors_match() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cmd = vector(
        &fx,
        D6151,
        "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX",
    );
    let h = run(&mut r, &cmd).unwrap();
    assert_like_reference(
        &r,
        &h.response,
        &vector(
            &fx,
            D6151,
            "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX",
        ),
    );
}

#[test]
fn responses_decode_as_responses() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let h = run(&mut r, &v623(&fx, "IMMEDIATE_SUCCESS_COMMAND")).unwrap();
    let m = Message::decode(&h.response).unwrap();
    assert!(matches!(m.body, Body::Response(_)));
    assert_eq!(
        m.frame.header.recipient,
        "90B3D51F30000004".parse::<Eui64>().unwrap()
    );
}

#[test]
fn cancellation_without_a_pending_command_follows_the_context() {
    let Some(fx) = fixtures() else { return };
    let mut r = esme(&fx);
    let cancel = v623(&fx, "CANCELLATION_SUCCESS_COMMAND");
    let h = run(&mut r, &cancel).unwrap();
    assert!(!h.cancelled, "accepted, nothing removed (the default)");
    let mut r = esme(&fx);
    r.context.accept_cancel_without_pending = false;
    assert_eq!(
        run(&mut r, &cancel).unwrap_err(),
        Rejection::NothingToCancel
    );
}
