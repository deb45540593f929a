//! A fleet built from a generated test PKI, driven by a head end that signs
//! with the PKI's CoS keys and MACs with its ACB key.

use std::sync::Arc;

use ecos_gbcs::{Body, ExecutionDateTime, Message, StatusCode};
use ecos_sim::device::DeviceContext;
use ecos_sim::{
    CellId, DeviceKind, Fault, Fleet, FleetError, HeadEnd, KeySource, Rejection, SeededKeys,
    SupplierCredentials, Templates,
};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Eui64, PathPolicy};
use jiff::Timestamp;

const SUPPLIER_A: u64 = 0x90B3_D51F_3001_0000;
const SUPPLIER_B: u64 = 0x90B3_D51F_3003_0000;

struct World {
    pki: Arc<TestPki>,
    fleet: Fleet,
    tcos: HeadEnd,
    ecos: HeadEnd,
    now: Timestamp,
}

fn world(keys: Option<KeySource>, n: u64) -> World {
    let pki = Arc::new(TestPki::generate(&TestPkiSpec::demo()).unwrap());
    let keys = keys.unwrap_or(KeySource::Seeded(SeededKeys { seed: 42 }));
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let fleet = Fleet::new(ctx, keys.clone());
    let templates = Templates::from_test_pki(&pki, Eui64::from_u64(SUPPLIER_A)).unwrap();
    fleet.generate(
        &templates,
        Eui64::from_u64(0x00DB_0000_0000_0000),
        n,
        DeviceKind::Esme,
        0,
    );
    let acb = Arc::new(pki.acb_ka().key_agreement().unwrap());
    let tcos = HeadEnd {
        cos: Arc::new(pki.tcos().signer().unwrap()),
        cos_eui: pki.tcos().cert.eui().unwrap(),
        acb: acb.clone(),
        keys: keys.clone(),
    };
    let ecos = HeadEnd {
        cos: Arc::new(pki.ecos().signer().unwrap()),
        cos_eui: pki.ecos().cert.eui().unwrap(),
        acb,
        keys,
    };
    World {
        pki,
        fleet,
        tcos,
        ecos,
        now: "2026-06-01T00:00:00Z".parse().unwrap(),
    }
}

fn supplier_b(pki: &TestPki) -> SupplierCredentials {
    let o = pki.organisation(Eui64::from_u64(SUPPLIER_B)).unwrap();
    SupplierCredentials {
        ds: o.ds.cert.clone(),
        ka: o.ka.cert.clone(),
        pp_ka: Some(o.pp_ka.cert.clone()),
        path: vec![pki.issuing_ca().cert.clone()],
    }
}

fn dev(i: u64) -> Eui64 {
    Eui64::from_u64(0x00DB_0000_0000_0000 + i)
}

#[test]
fn every_device_accepts_a_6_23_and_answers_verifiably() {
    let w = world(None, 20);
    assert_eq!(w.fleet.len(), 20);
    let creds = supplier_b(&w.pki);
    for i in 0..20 {
        let cmd = w
            .tcos
            .supplier_by_trans_cos(dev(i), 1000 + i, &creds, None)
            .unwrap();
        let h = w.fleet.handle(dev(i), &cmd, w.now, None).unwrap();
        let m = Message::decode(&h.response).unwrap();
        m.frame
            .verify_signature(&w.fleet.keys().ds_public(dev(i)).unwrap())
            .unwrap();
        let Body::Response(r) = m.body else {
            panic!("not a response")
        };
        let out = r.execution_outcome.unwrap();
        assert!(out.all_succeeded(), "{out:?}");
        assert_eq!(out.replacement_outcomes.len(), 3);
        let sui = w
            .fleet
            .with_device(dev(i), |d| d.cell(CellId::SupplierDs).unwrap().sui)
            .unwrap();
        assert_eq!(sui, Eui64::from_u64(SUPPLIER_B));
    }
}

#[test]
fn migration_to_ecos_then_only_ecos_signs() {
    let w = world(None, 2);
    let creds = supplier_b(&w.pki);
    let ecos_cert = w.pki.ecos().cert.clone();
    let path = vec![w.pki.issuing_ca().cert.clone()];
    let cmd = w
        .tcos
        .trans_cos_by_trans_cos(dev(0), 500, &ecos_cert, &path, None)
        .unwrap();
    let h = w.fleet.handle(dev(0), &cmd, w.now, None).unwrap();
    let out = h.outcome.unwrap();
    assert!(out.all_succeeded());
    assert_eq!(
        out.replacement_outcomes[0].replacing_ski,
        ecos_cert.ski().unwrap()
    );
    assert!(out.seq_number_changes.is_empty());
    // TCoS can no longer sign for it; ECoS can, above the old counter.
    let old = w
        .tcos
        .supplier_by_trans_cos(dev(0), 501, &creds, None)
        .unwrap();
    assert!(matches!(
        w.fleet.handle(dev(0), &old, w.now, None),
        Err(FleetError::Rejected(_, Rejection::BadSignature))
    ));
    let low = w
        .ecos
        .supplier_by_trans_cos(dev(0), 400, &creds, None)
        .unwrap();
    assert!(matches!(
        w.fleet.handle(dev(0), &low, w.now, None),
        Err(FleetError::Rejected(
            _,
            Rejection::Replay { stored: 500, .. }
        ))
    ));
    let ok = w
        .ecos
        .supplier_by_trans_cos(dev(0), 502, &creds, None)
        .unwrap();
    assert!(
        w.fleet
            .handle(dev(0), &ok, w.now, None)
            .unwrap()
            .outcome
            .unwrap()
            .all_succeeded()
    );
    // The untouched device still answers only the TCoS.
    let e = w
        .ecos
        .supplier_by_trans_cos(dev(1), 1, &creds, None)
        .unwrap();
    assert!(w.fleet.handle(dev(1), &e, w.now, None).is_err());
}

#[test]
fn injected_refusal_keeps_the_old_anchor() {
    let w = world(None, 1);
    let ecos_cert = w.pki.ecos().cert.clone();
    let path = vec![w.pki.issuing_ca().cert.clone()];
    let tcos_ski = w.pki.tcos().cert.ski().unwrap().to_vec();
    for (i, s) in [30u32, 17, 5].into_iter().enumerate() {
        let cmd = w
            .tcos
            .trans_cos_by_trans_cos(dev(0), 10 + i as u64, &ecos_cert, &path, None)
            .unwrap();
        let h = w
            .fleet
            .handle(dev(0), &cmd, w.now, Some(Fault(StatusCode(s))))
            .unwrap();
        let o = &h.outcome.unwrap().replacement_outcomes[0];
        assert_eq!(o.status, StatusCode(s));
        assert_eq!(o.replacing_ski, tcos_ski);
        assert_eq!(o.existing_ski, tcos_ski);
    }
}

#[test]
fn future_dated_commands_fall_due_in_the_fleet() {
    let w = world(None, 5);
    let creds = supplier_b(&w.pki);
    let at = jiff::civil::datetime(2026, 7, 1, 0, 0, 0, 0);
    for i in 0..5 {
        let cmd = w
            .tcos
            .supplier_by_trans_cos(dev(i), 100, &creds, Some(ExecutionDateTime::At(at)))
            .unwrap();
        assert!(w.fleet.handle(dev(i), &cmd, w.now, None).unwrap().held);
    }
    // Device 3 cancels.
    let cancel = w
        .tcos
        .supplier_by_trans_cos(dev(3), 101, &creds, Some(ExecutionDateTime::Cancel))
        .unwrap();
    assert!(
        w.fleet
            .handle(dev(3), &cancel, w.now, None)
            .unwrap()
            .cancelled
    );
    let due: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
    assert_eq!(w.fleet.next_due(), Some(due));
    assert!(w.fleet.tick(w.now, |_, _| None).is_empty());
    let alerts = w
        .fleet
        .tick(due, |e, _| (e == dev(4)).then_some(Fault(StatusCode(30))));
    assert_eq!(alerts.len(), 4);
    for (eui, a) in alerts {
        let a = a.unwrap();
        let m = Message::decode(&a).unwrap();
        m.frame
            .verify_signature(&w.fleet.keys().ds_public(eui).unwrap())
            .unwrap();
        let Body::Alert(al) = m.body else {
            panic!("not an alert")
        };
        assert_eq!(al.actioned(), eui != dev(4), "{eui}");
        assert_eq!(m.frame.header.counter, 1);
    }
    assert_eq!(w.fleet.next_due(), None);
}

#[test]
fn test_pki_keys_agree_with_the_minted_device_certificates() {
    let pki = Arc::new(TestPki::generate(&TestPkiSpec::demo()).unwrap());
    let w = world(Some(KeySource::TestPki(pki.clone())), 2);
    let creds = supplier_b(&w.pki);
    let minted = pki.mint_device(dev(1)).unwrap();
    assert_eq!(
        &w.fleet.keys().ka_public(dev(1)).unwrap(),
        minted.ka.cert.public_key()
    );
    let cmd = w
        .tcos
        .supplier_by_trans_cos(dev(1), 7, &creds, None)
        .unwrap();
    let h = w.fleet.handle(dev(1), &cmd, w.now, None).unwrap();
    Message::decode(&h.response)
        .unwrap()
        .frame
        .verify_signature(minted.ds.cert.public_key())
        .unwrap();
}

#[test]
fn inventory_csv_builds_the_fleet() {
    let pki = TestPki::generate(&TestPkiSpec::demo()).unwrap();
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let fleet = Fleet::new(ctx, KeySource::Seeded(SeededKeys { seed: 1 }));
    let t = Templates::from_test_pki(&pki, Eui64::from_u64(SUPPLIER_A)).unwrap();
    let csv = "device_eui,device_type,status,cos_credential\n\
        00-DB-12-34-56-78-90-A0,esme,commissioned,transitional\n\
        \n\
        00DB1234567890A1,gsme,commissioned,enduring\n\
        00-DB-12-34-56-78-90-A2,chf,commissioned,\n";
    assert_eq!(fleet.load_inventory(csv, &t).unwrap(), 2);
    let a1: Eui64 = "00DB1234567890A1".parse().unwrap();
    let (kind, ski) = fleet
        .with_device(a1, |d| {
            (d.kind(), d.cell(CellId::TransCosDs).unwrap().ski.clone())
        })
        .unwrap();
    assert_eq!(kind, DeviceKind::Gsme);
    assert_eq!(ski, pki.ecos().cert.ski().unwrap());
    let bad = "device_eui,device_type\nnot-an-eui,esme\n";
    let e = fleet.load_inventory(bad, &t).unwrap_err().to_string();
    assert!(e.contains("line 2"), "{e}");
    assert!(fleet.load_inventory("device_type\nesme\n", &t).is_err());
    assert!(
        fleet
            .load_inventory("device_eui,device_type\n00DB1234567890A3,toaster\n", &t)
            .is_err()
    );
}

#[test]
fn unknown_ca_and_wrong_role_get_per_cell_statuses() {
    let w = world(None, 1);
    // A second, unrelated PKI: its supplier certificates chain nowhere here.
    let mut spec = TestPkiSpec::demo();
    spec.seed = 99;
    let other = TestPki::generate(&spec).unwrap();
    let mut creds = supplier_b(&w.pki);
    creds.ka = other
        .organisation(Eui64::from_u64(SUPPLIER_B))
        .unwrap()
        .ka
        .cert
        .clone();
    // The DS slot gets a KA certificate: wrong key usage for the cell.
    creds.pp_ka = Some(creds.ds.clone());
    let cmd = w
        .tcos
        .supplier_by_trans_cos(dev(0), 1, &creds, None)
        .unwrap();
    let out = w
        .fleet
        .handle(dev(0), &cmd, w.now, None)
        .unwrap()
        .outcome
        .unwrap();
    let st: Vec<u32> = out
        .replacement_outcomes
        .iter()
        .map(|o| o.status.0)
        .collect();
    assert_eq!(st, [0, 10, 5]);
}
