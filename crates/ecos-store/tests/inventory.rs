//! Inventory and service users on both backends, and a generated data set end to end.

mod common;

use base64::Engine;
use ecos_smki::Eui64;
use ecos_store::generate::{SyntheticSpec, write_synthetic};
use ecos_store::{
    CosCredential, Device, DeviceStatus, DeviceType, FileKind, ImportMode, ImportOptions, RowError,
    Store, StoreError,
};

fn eui(s: &str) -> Eui64 {
    s.parse().unwrap()
}

async fn import_inv(
    s: &Store,
    id: &str,
    mode: ImportMode,
    text: &str,
) -> ecos_store::Result<ecos_store::ImportSummary> {
    s.import_inventory(text.as_bytes(), &ImportOptions::new(id, mode), &mut |_| {})
        .await
}

fn line_of(e: StoreError) -> (u64, String) {
    let msg = e.to_string();
    match e {
        StoreError::Row { at, .. } => (at.line, msg),
        other => panic!("expected a row error, got {other}"),
    }
}

const HEADER: &str = "device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,comms_hub_eui,csp_region,firmware_version,last_contact\n";

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// `der` with the last byte of its public key's y changed: the point is
/// then (all but certainly) not on the curve.
fn off_curve(der: &[u8]) -> Vec<u8> {
    let key = ecos_smki::Certificate::public_key_of(der).unwrap();
    let point = key.as_bytes();
    let at = der
        .windows(point.len())
        .position(|w| w == point)
        .expect("the key in the DER");
    let mut out = der.to_vec();
    out[at + point.len() - 1] ^= 1;
    assert!(ecos_smki::Certificate::public_key_of(&out).is_err());
    out
}

async fn inventory_refresh_and_update(s: Store) {
    // A device's certificates, minted by the test PKI.
    let (ka_der, ds_der) = common::device_certs();
    let (ka, ds) = common::device_certs_b64();
    let text = format!(
        "{HEADER}00-DB-12-34-56-78-90-A0,ESME,commissioned,1312345678907,transitional,{ka},{ds},00-DB-12-34-56-78-90-A1,north,1.2.0,2024-05-01T10:00:00Z\n\
         00DB1234567890A1,chf,commissioned,,,,,,north,3.0,\n\
         00DB1234567890A2,gsme,installed-not-commissioned,3938424403,enduring,,,00DB1234567890A1,north,,\n"
    );
    let sum = import_inv(&s, "inv1", ImportMode::Refresh, &text)
        .await
        .unwrap();
    assert_eq!(
        (sum.rows, sum.written, sum.kind),
        (3, 3, FileKind::Inventory)
    );
    let d = s.device(eui("00DB1234567890A0")).await.unwrap().unwrap();
    assert_eq!(d.device_type, DeviceType::Esme);
    assert_eq!(d.status, DeviceStatus::Commissioned);
    assert_eq!(d.mpxn.as_ref().map(|m| m.as_str()), Some("1312345678907"));
    assert_eq!(d.cos_credential, Some(CosCredential::Transitional));
    assert_eq!(d.ka_cert.as_deref(), Some(ka_der.as_slice()));
    assert_eq!(d.ds_cert.as_deref(), Some(ds_der.as_slice()));
    assert_eq!(d.comms_hub, Some(eui("00DB1234567890A1")));
    assert_eq!(d.csp_region.as_deref(), Some("north"));
    assert_eq!(d.firmware_version.as_deref(), Some("1.2.0"));
    assert_eq!(
        d.last_contact,
        Some("2024-05-01T10:00:00Z".parse().unwrap())
    );
    let by_mpxn = s.devices_for_mpxn(&common::m("3938424403")).await.unwrap();
    assert_eq!(by_mpxn.len(), 1);
    assert_eq!(by_mpxn[0].eui, eui("00DB1234567890A2"));

    // Update: only the given fields change.
    let text = "device_eui,status,cos_credential\n00DB1234567890A0,suspended,enduring\n";
    import_inv(&s, "inv2", ImportMode::Update, text)
        .await
        .unwrap();
    let d2 = s.device(eui("00DB1234567890A0")).await.unwrap().unwrap();
    assert_eq!(d2.status, DeviceStatus::Suspended);
    assert_eq!(d2.cos_credential, Some(CosCredential::Enduring));
    assert_eq!(
        Device {
            status: d.status,
            cos_credential: d.cos_credential,
            ..d2.clone()
        },
        d
    );

    // Refresh: the record is replaced (empty fields become empty).
    let text = format!("{HEADER}00DB1234567890A0,esme,commissioned,1312345678907,,,,,,,\n");
    import_inv(&s, "inv3", ImportMode::Refresh, &text)
        .await
        .unwrap();
    let d3 = s.device(eui("00DB1234567890A0")).await.unwrap().unwrap();
    assert_eq!(d3.ka_cert, None);
    assert_eq!(d3.cos_credential, None);
    assert_eq!(s.counts().await.unwrap().devices, 3);

    // Refused files change nothing.
    let before = s.device(eui("00DB1234567890A2")).await.unwrap();
    let bad = [
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,3938424403,,,,,,,\n"
            ),
            "gas meter point",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,meter,commissioned,,,,,,,,\n"
            ),
            "device type",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,broken,,,,,,,,\n"
            ),
            "device status",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,bm90IGRlcg==,,,,,\n"
            ),
            "DER",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,!!,,,,,\n"
            ),
            "base64",
        ),
        // A SEQUENCE that is no certificate, in either column.
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,MAMCAQU=,{ds},,,,\n"
            ),
            "ka_cert: \"MAMCAQU=\" is not a DER certificate with a P-256 key (DER: malformed TLV layout)",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,{ka},MAMCAQU=,,,,\n"
            ),
            "ds_cert: \"MAMCAQU=\" is not a DER certificate with a P-256 key",
        ),
        // A certificate cut short, and one whose key is not on the curve.
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,{},,,,,\n",
                b64(&ka_der[..ka_der.len() - 1])
            ),
            "malformed TLV layout",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,{},,,,,\n",
                b64(&off_curve(ka_der))
            ),
            "not on the curve",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890Z3,esme,commissioned,,,,,,,,\n"
            ),
            "device_eui",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,esme,commissioned,,,,,,,,yesterday\n"
            ),
            "RFC 3339",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A2,esme,commissioned,,,,,,,,\n"
            ),
            "duplicate of line 2",
        ),
        (
            format!(
                "{HEADER}00DB1234567890A2,gsme,commissioned,,,,,,,,\n00DB1234567890A3,,commissioned,,,,,,,,\n"
            ),
            "required",
        ),
    ];
    for (i, (text, what)) in bad.iter().enumerate() {
        let (line, msg) = line_of(
            import_inv(&s, &format!("bad{i}"), ImportMode::Refresh, text)
                .await
                .unwrap_err(),
        );
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains(what), "{msg} should mention {what}");
    }
    let (line, msg) = line_of(
        import_inv(
            &s,
            "upd-new",
            ImportMode::Update,
            "device_eui,status\n00DB1234567890A2,suspended\n00DB1234567890FF,commissioned\n",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(line, 3);
    assert!(msg.contains("not in the inventory"), "{msg}");
    assert_eq!(s.device(eui("00DB1234567890A2")).await.unwrap(), before);
    assert_eq!(s.counts().await.unwrap().devices, 3);
}

async fn device_api(s: Store) {
    let e = eui("00DB000000000001");
    assert_eq!(s.device(e).await.unwrap(), None);
    assert!(
        !s.record_device_contact(e, jiff::Timestamp::UNIX_EPOCH)
            .await
            .unwrap()
    );
    let mut d = Device::new(e, DeviceType::Gsme, DeviceStatus::Commissioned);
    d.mpxn = Some(common::m("3938424403"));
    s.upsert_device(&d).await.unwrap();
    assert_eq!(s.device(e).await.unwrap().as_ref(), Some(&d));
    let t: jiff::Timestamp = "2025-01-02T03:04:05.123456Z".parse().unwrap();
    assert!(s.record_device_contact(e, t).await.unwrap());
    assert!(
        s.set_device_cos_credential(e, CosCredential::Enduring)
            .await
            .unwrap()
    );
    let got = s.device(e).await.unwrap().unwrap();
    assert_eq!(
        (got.last_contact, got.cos_credential),
        (Some(t), Some(CosCredential::Enduring))
    );
}

async fn service_users_import(s: Store) {
    let text = "org_eui,name,roles,mpids,response_endpoint\n\
                90-B3-D5-1F-30-03-00-00,\"Gaining Energy, Ltd\",IS GS,ACEE ACG,https://gaining.example/duis\n\
                90B3D51F30010000,Losing,IS;GS,BCEE;BCG,https://losing.example/duis\n";
    let sum = s
        .import_service_users(
            text.as_bytes(),
            &ImportOptions::new("su", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(sum.rows, 2);
    let u = s
        .service_user(eui("90B3D51F30030000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.name, "Gaining Energy, Ltd");
    assert_eq!(u.roles, vec!["IS", "GS"]);
    assert_eq!(u.mpids, vec!["ACEE", "ACG"]);
    let u = s
        .service_user(eui("90B3D51F30010000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.mpids, vec!["BCEE", "BCG"]);
    let bad = "org_eui,name,roles,mpids,response_endpoint\n90B3D51F30040000,X,IS,ok,https://x\n";
    let e = s
        .import_service_users(
            bad.as_bytes(),
            &ImportOptions::new("su2", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Row { ref at, ref error } if at.line == 2 && matches!(**error, RowError::Invalid { column: "mpids", .. })),
        "{e}"
    );
    assert_eq!(s.service_user(eui("90B3D51F30040000")).await.unwrap(), None);
}

async fn generated_set_imports_consistently(s: Store) {
    let dir = tempfile::tempdir().unwrap();
    let set = write_synthetic(dir.path(), &SyntheticSpec::new(400, 99)).unwrap();
    for (path, kind) in [
        (&set.registration_file, FileKind::Registration),
        (&set.inventory_file, FileKind::Inventory),
        (&set.service_users_file, FileKind::ServiceUsers),
    ] {
        let data = std::fs::read(path).unwrap();
        assert_eq!(FileKind::detect(&data), Some(kind));
        let mut opts = ImportOptions::new(
            path.file_name().unwrap().to_string_lossy(),
            ImportMode::Refresh,
        );
        opts.check_digits =
            ecos_store::CheckDigitPolicies::both(ecos_store::CheckDigitPolicy::Reject);
        let sum = match kind {
            FileKind::Registration => s.import_registration(&data, &opts, &mut |_| {}).await,
            FileKind::Inventory => s.import_inventory(&data, &opts, &mut |_| {}).await,
            _ => s.import_service_users(&data, &opts, &mut |_| {}).await,
        }
        .unwrap();
        assert_eq!(sum.check_digit_warnings, 0);
    }
    let c = s.counts().await.unwrap();
    assert_eq!(
        (c.registrations, c.mpxns, c.devices, c.service_users),
        (set.registration_rows, set.mpxns, 400, 12)
    );
    // Every meter's MPxN has a registered supplier today, known as a service user.
    let now = jiff::Timestamp::now();
    for idx in [0u64, 37, 99] {
        let esme = s
            .device(Eui64::from_u64(0x00DB_1200_0000_0000 + idx * 4 + 1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(esme.device_type, DeviceType::Esme);
        let mpan = esme.mpxn.unwrap();
        let r = s
            .registered_supplier_at(&mpan, now)
            .await
            .unwrap()
            .expect("registered");
        let gsme = s
            .device(Eui64::from_u64(0x00DB_1200_0000_0000 + idx * 4 + 3))
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.registered_supplier_at(gsme.mpxn.as_ref().unwrap(), now)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(r.mpid.len(), 4);
        assert_eq!(
            gsme.comms_hub,
            Some(Eui64::from_u64(0x00DB_1200_0000_0000 + idx * 4))
        );
    }
}

suite!(
    inventory_refresh_and_update,
    device_api,
    service_users_import,
    generated_set_imports_consistently,
);
