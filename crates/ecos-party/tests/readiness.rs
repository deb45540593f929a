//! The readiness report over the demo data set (plus three registrations the
//! demo lacks: an MPAN of the no-CN supplier with a meter, an MPAN of
//! supplier C with no meter, an MPRN of supplier C's gas code), with known
//! answers: one assertion per scenario.

use std::sync::{Arc, OnceLock};

use ecos_party::demo::{self, *};
use ecos_party::readiness::{self, Context, Report, Row, Scenario, Verdict};
use ecos_party::{PartyConfig, SmkiRegistry};
use ecos_smki::{Certificate, Eui64, MpidRules, TestPki};
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, ImportMode, ImportOptions, Mpxn, Store,
    StoreConfig, StoreLocation,
};
use jiff::Timestamp;

/// "Today": two weeks before the demo switch date (2026-01-01, A → B).
const TODAY: &str = "2025-12-15T12:00:00Z";

fn pki() -> Arc<TestPki> {
    static PKI: OnceLock<Arc<TestPki>> = OnceLock::new();
    PKI.get_or_init(|| Arc::new(demo::pki(7).unwrap())).clone()
}

fn mpan_no_cn() -> Mpxn {
    Mpxn::mpan_with_check_digit("200000000100").unwrap()
}
fn mpan_no_meter() -> Mpxn {
    Mpxn::mpan_with_check_digit("200000000200").unwrap()
}
fn mpan_other_user() -> Mpxn {
    Mpxn::mpan_with_check_digit("200000000300").unwrap()
}
fn mprn_c() -> Mpxn {
    Mpxn::mprn_with_check_digits("7654321").unwrap()
}
const ESME_NO_CN: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xB0]);
const GSME_C: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xB1]);

struct World {
    pki: Arc<TestPki>,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(dir.path()),
        StoreConfig::default(),
    )
    .await
    .unwrap();
    demo::load(&store, &pki).await.unwrap();
    // What the demo lacks for three scenarios.
    let extra = format!(
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         {},EEEE,2020-01-01,\n{},CFEE,2020-01-01,\n{},CFG,2020-01-01,\n{},FFEE,2020-01-01,\n",
        mpan_no_cn().as_str(),
        mpan_no_meter().as_str(),
        mprn_c().as_str(),
        mpan_other_user().as_str()
    );
    store
        .import_registration(
            extra.as_bytes(),
            &ImportOptions::new("readiness-extra", ImportMode::Update),
            &mut |_| {},
        )
        .await
        .unwrap();
    let ka = pki.device(ESME_TCOS).unwrap().ka.cert.der().to_vec();
    for (eui, ty, mpxn) in [
        (ESME_NO_CN, DeviceType::Esme, mpan_no_cn()),
        (GSME_C, DeviceType::Gsme, mprn_c()),
    ] {
        let mut d = Device::new(eui, ty, DeviceStatus::Commissioned);
        d.mpxn = Some(mpxn);
        d.cos_credential = Some(CosCredential::Transitional);
        d.ka_cert = Some(ka.clone());
        store.upsert_device(&d).await.unwrap();
    }
    let mut c = store.service_user(SUPPLIER_C).await.unwrap().unwrap();
    c.mpids = vec!["CFEE".into(), "CFG".into()];
    c.roles = vec!["IS".into(), "GS".into()];
    store.upsert_service_users(&[c]).await.unwrap();
    World {
        pki,
        store,
        _dir: dir,
    }
}

/// Every MPxN the world knows: the candidates (what `SELECT DISTINCT mpxn
/// FROM registration` would give, plus one with no registration).
fn candidates() -> Vec<Mpxn> {
    [MPAN_1, MPAN_2, MPAN_3, MPAN_UNREGISTERED, MPRN_1]
        .iter()
        .map(|m| Mpxn::parse_unchecked(m).unwrap())
        .chain([mpan_no_cn(), mpan_no_meter(), mprn_c(), mpan_other_user()])
        .collect()
}

fn xml_sign(pki: &TestPki, org: Eui64) -> Certificate {
    pki.organisation(org).unwrap().xml_sign.cert.clone()
}

async fn run(
    w: &World,
    smki: &SmkiRegistry,
    config: &PartyConfig,
    org: Eui64,
    cert: Certificate,
    at: &str,
) -> Report {
    let rules = MpidRules::default();
    let ctx = Context {
        store: &w.store,
        smki,
        config,
        mpid_rules: &rules,
    };
    readiness::report(&ctx, org, &[cert], at.parse().unwrap(), &candidates())
        .await
        .unwrap()
}

async fn report_for(w: &World, org: Eui64) -> Report {
    let smki = demo::registry(&w.pki);
    run(
        w,
        &smki,
        &PartyConfig::default(),
        org,
        xml_sign(&w.pki, org),
        TODAY,
    )
    .await
}

fn row<'a>(r: &'a Report, mpxn: &str) -> &'a Row {
    r.rows
        .iter()
        .find(|x| x.mpxn == mpxn)
        .unwrap_or_else(|| panic!("no row for {mpxn} in {:#?}", r.rows))
}

fn mpxns(r: &Report) -> Vec<&str> {
    let mut v: Vec<&str> = r.rows.iter().map(|x| x.mpxn.as_str()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn losing_supplier_passes_today_and_fails_on_the_switch_date() {
    let w = world().await;
    let r = report_for(&w, SUPPLIER_A).await;
    assert_eq!(r.mpids, ["ACEE", "ACG"]);
    assert_eq!(r.examined, candidates().len());
    // A supplies MPAN_1, MPAN_2 and MPRN_1 until the switch; not MPAN_3.
    assert_eq!(mpxns(&r), [MPAN_1, MPAN_2, MPRN_1]);
    for x in &r.rows {
        assert_eq!(x.today, Verdict::Pass, "{x:?}");
        assert_eq!(x.switch_date.as_deref(), Some(SWITCH_DATE));
        // Scenario: MPID not the registered supplier at the switch date.
        assert_eq!(
            x.on_switch_date.as_ref().and_then(Verdict::scenario),
            Some(Scenario::MpidNotRegisteredSupplier),
            "{x:?}"
        );
    }
    assert_eq!(
        row(&r, MPRN_1).device.as_deref(),
        Some(&*GSME_TCOS.to_string())
    );
    assert_eq!(r.summary(), (3, 0, 3));
}

#[tokio::test]
async fn gaining_supplier_before_its_effective_from_and_a_suspended_meter() {
    let w = world().await;
    let r = report_for(&w, SUPPLIER_B).await;
    assert_eq!(mpxns(&r), [MPAN_1, MPAN_2, MPAN_3, MPRN_1]);
    // Scenario: the switch date (today, for an immediate request) is before
    // B's registration's effective-from; on the switch date it passes.
    let x = row(&r, MPAN_1);
    assert_eq!(
        x.today.scenario(),
        Some(Scenario::SwitchDateBeforeEffectiveFrom)
    );
    match &x.today {
        Verdict::Fail { reason, detail, .. } => {
            assert_eq!(reason, "mpid_not_registered_supplier");
            assert!(detail.contains("2026-01-01"), "{detail}");
        }
        Verdict::Pass => unreachable!(),
    }
    assert_eq!(x.on_switch_date, Some(Verdict::Pass));
    assert_eq!(row(&r, MPRN_1).on_switch_date, Some(Verdict::Pass));
    // Scenario: the device's status blocks CoS (today and on the switch date).
    let s = row(&r, MPAN_3);
    assert_eq!(s.device.as_deref(), Some(&*ESME_SUSPENDED.to_string()));
    assert_eq!(s.today.scenario(), Some(Scenario::DeviceStatusBlocksCos));
    assert_eq!(
        s.on_switch_date.as_ref().and_then(Verdict::scenario),
        Some(Scenario::DeviceStatusBlocksCos)
    );
}

#[tokio::test]
async fn no_cn_missing_fuel_and_no_meter_on_the_mpxn() {
    let w = world().await;
    // Scenario: no CN (the MPxN is found through the service-user record's MPID).
    let r = report_for(&w, ORG_NO_CN).await;
    assert_eq!(mpxns(&r), [mpan_no_cn().as_str()]);
    assert_eq!(r.rows[0].today.scenario(), Some(Scenario::NoCn));
    assert_eq!(r.rows[0].on_switch_date, None);

    let r = report_for(&w, SUPPLIER_C).await;
    assert_eq!(mpxns(&r), [mpan_no_meter().as_str(), mprn_c().as_str()]);
    // Scenario: the CN (`CFEE`) has no MPID for the gas meter's fuel.
    let g = row(&r, mprn_c().as_str());
    assert_eq!(g.device.as_deref(), Some(&*GSME_C.to_string()));
    assert_eq!(g.today.scenario(), Some(Scenario::MpidMissingForFuel));
    // Scenario: ImportMPxN cannot be a device's MPxN (no meter on it).
    let n = row(&r, mpan_no_meter().as_str());
    assert_eq!(n.device, None);
    assert_eq!(n.today.scenario(), Some(Scenario::ImportMpxnNotDevices));
}

#[tokio::test]
async fn certificate_role_expiry_and_revocation() {
    let w = world().await;
    let config = PartyConfig::default();
    let smki = demo::registry(&w.pki);
    // Scenario: wrong certificate role (A's digital-signing certificate).
    let ds = w.pki.organisation(SUPPLIER_A).unwrap().ds.cert.clone();
    let r = run(&w, &smki, &config, SUPPLIER_A, ds, TODAY).await;
    assert_eq!(r.rows.len(), 3);
    assert!(
        r.rows
            .iter()
            .all(|x| x.today.scenario() == Some(Scenario::WrongCertificateRole))
    );
    // Scenario: the certificate has expired at the date.
    let cert = xml_sign(&w.pki, SUPPLIER_B);
    let after = (cert.not_after() + jiff::SignedDuration::from_hours(24)).to_string();
    let r = run(&w, &smki, &config, SUPPLIER_B, cert, &after).await;
    assert_eq!(r.rows.len(), 4, "B's open registrations");
    assert!(
        r.rows
            .iter()
            .all(|x| x.today.scenario() == Some(Scenario::CertificateExpired)),
        "{:#?}",
        r.rows
    );
    // Scenario: the certificate is revoked.
    let cert = xml_sign(&w.pki, SUPPLIER_A);
    let mut trust = w.pki.trust_store();
    trust
        .revocations_mut()
        .add(&cert.issuer_rfc2253(), cert.serial());
    let revoked = SmkiRegistry::new(trust, ecos_smki::PathPolicy::default());
    let r = run(&w, &revoked, &config, SUPPLIER_A, cert, TODAY).await;
    assert_eq!(r.rows.len(), 3);
    assert!(
        r.rows
            .iter()
            .all(|x| x.today.scenario() == Some(Scenario::CertificateRevoked))
    );
}

#[tokio::test]
async fn transitional_signing_switched_off() {
    let w = world().await;
    let smki = demo::registry(&w.pki);
    let config = PartyConfig {
        tcos_signing_enabled: false,
        ..PartyConfig::default()
    };
    let cert = xml_sign(&w.pki, SUPPLIER_A);
    let r = run(&w, &smki, &config, SUPPLIER_A, cert, TODAY).await;
    // Scenario: the meter still holds the transitional credential.
    assert_eq!(
        row(&r, MPAN_1).today.scenario(),
        Some(Scenario::CosCredential)
    );
    // The migrated meter passes.
    assert_eq!(row(&r, MPAN_2).today, Verdict::Pass);
}

#[tokio::test]
async fn outputs_and_errors() {
    let w = world().await;
    let r = report_for(&w, SUPPLIER_B).await;
    let csv = r.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], Report::CSV_HEADER);
    assert_eq!(lines.len(), 1 + r.rows.len());
    assert!(
        lines
            .iter()
            .any(|l| l.contains(MPAN_3) && l.contains("device_status_blocks_cos"))
    );
    // Every data line has the header's column count (fields with commas are quoted).
    let cols = Report::CSV_HEADER.split(',').count();
    for l in &lines[1..] {
        let mut n = 1;
        let mut quoted = false;
        for ch in l.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => n += 1,
                _ => {}
            }
        }
        assert_eq!(n, cols, "{l}");
    }
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 4);
    assert!(json.to_string().contains("\"verdict\":\"pass\""));
    let table = r.to_table();
    assert!(
        table.contains("switch_date_before_effective_from"),
        "{table}"
    );
    assert!(table.contains("why:"), "{table}");

    // A non-supplier service user: refused at the requester check.
    let r = report_for(&w, ORG_NOT_SUPPLIER).await;
    assert_eq!(mpxns(&r), [mpan_other_user().as_str()]);
    assert_eq!(r.rows[0].today.scenario(), Some(Scenario::NotASupplier));
    // No certificate: a typed error, not a panic.
    let smki = demo::registry(&w.pki);
    let rules = MpidRules::default();
    let config = PartyConfig::default();
    let ctx = Context {
        store: &w.store,
        smki: &smki,
        config: &config,
        mpid_rules: &rules,
    };
    let at: Timestamp = TODAY.parse().unwrap();
    let err = readiness::report(&ctx, SUPPLIER_A, &[], at, &candidates())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no XML Sign certificate"), "{err}");
}
