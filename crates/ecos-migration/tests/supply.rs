//! The supply-chain rule and the configuration file.

use ecos_migration::config::{OnTransitional, SupplyChain};
use ecos_migration::supply::{Admission, admit};
use ecos_migration::{MigrationConfig, MigrationError};
use ecos_smki::Eui64;
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, MigrationState, Store, StoreLocation,
};
use jiff::Timestamp;

fn t(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

fn device(i: u64, cos: CosCredential) -> Device {
    let mut d = Device::new(
        Eui64::from_u64(0x00DB_0000_0000_0000 + i),
        DeviceType::Esme,
        DeviceStatus::InstalledNotCommissioned,
    );
    d.cos_credential = Some(cos);
    d.csp_region = Some("north".into());
    d
}

#[tokio::test]
async fn transitional_devices_after_go_live_are_refused_or_queued() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        &StoreLocation::sqlite_in_dir(dir.path()),
        ecos_store::StoreConfig::default(),
    )
    .await
    .unwrap();
    let mut rule = SupplyChain {
        go_live: Some(t("2026-01-01T00:00:00Z")),
        on_transitional_after_go_live: OnTransitional::Refuse,
    };
    // Before go-live: added.
    let before = device(1, CosCredential::Transitional);
    assert_eq!(
        admit(&s, &rule, &before, t("2025-12-31T23:59:59Z"))
            .await
            .unwrap(),
        Admission::Added
    );
    // After go-live: an enduring device is added, a transitional one refused and audited.
    let e = device(2, CosCredential::Enduring);
    assert_eq!(
        admit(&s, &rule, &e, t("2026-02-01T00:00:00Z"))
            .await
            .unwrap(),
        Admission::Added
    );
    let tr = device(3, CosCredential::Transitional);
    let err = admit(&s, &rule, &tr, t("2026-02-01T00:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrationError::TransitionalAfterGoLive { device, .. } if device == tr.eui)
    );
    assert!(s.device(tr.eui).await.unwrap().is_none(), "not added");
    let audit = s.audit_entries(1, 100).await.unwrap();
    assert!(
        audit.iter().any(
            |a| a.action == "migration.supply_chain_refused" && a.subject == tr.eui.to_string()
        )
    );
    // Configured to accept: added and queued at once.
    rule.on_transitional_after_go_live = OnTransitional::AcceptAndQueue;
    assert_eq!(
        admit(&s, &rule, &tr, t("2026-02-01T00:00:00Z"))
            .await
            .unwrap(),
        Admission::AddedAndQueued
    );
    let r = s.migration_record(tr.eui).await.unwrap().unwrap();
    assert_eq!(r.state, MigrationState::Candidate);
    assert!(s.device(tr.eui).await.unwrap().is_some());
    assert!(
        s.audit_entries(1, 100)
            .await
            .unwrap()
            .iter()
            .any(|a| a.action == "migration.supply_chain_queued")
    );
}

#[test]
fn config_reads_from_toml_and_refuses_unknown_fields() {
    let c = MigrationConfig::from_toml(
        r#"
        response_timeout_s = 1200
        [eligibility]
        statuses = ["commissioned"]
        max_days_since_contact = 14
        firmware_allow_list = ["4.2.0", "4.3.1"]
        [throttle]
        per_day = 50000
        per_hub_per_day = 1
        max_in_flight = 2000
        [throttle.per_region]
        south = 10000
        [retry]
        max_attempts = 5
        [retry.certificate]
        max_failures = 2
        on_limit = "failed-permanent"
        [supply_chain]
        go_live = "2023-06-30T00:00:00Z"
        on_transitional_after_go_live = "accept-and-queue"
        "#,
    )
    .unwrap();
    assert_eq!(c.throttle.region_cap(Some("south")), 10_000);
    assert_eq!(c.throttle.region_cap(Some("north")), 40_000);
    assert_eq!(c.eligibility.max_days_since_contact, Some(14));
    assert_eq!(
        c.supply_chain.on_transitional_after_go_live,
        OnTransitional::AcceptAndQueue
    );
    let e = MigrationConfig::from_toml("[throttle]\nper_dya = 3\n").unwrap_err();
    assert!(e.to_string().contains("per_dya"), "{e}");
    let e = MigrationConfig::from_toml("[throttle]\nmax_in_flight = 0\n").unwrap_err();
    assert!(e.to_string().contains("max_in_flight"), "{e}");
}
