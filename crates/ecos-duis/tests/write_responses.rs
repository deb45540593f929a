//! Writers: shape against the DCC Boxed samples, ResponseID rule, compactness,
//! and XSD validation of every kind with xmllint (skipped when absent).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ecos_duis::*;
use ecos_smki::Eui64;
use jiff::Timestamp;

fn eui(s: &str) -> Eui64 {
    s.parse().unwrap()
}

fn header(rid: &str, sr: &str, srv: &str) -> RequestHeader {
    RequestHeader {
        request_id: rid.parse().unwrap(),
        first_in_sequence: None,
        preceding_request_id: None,
        command_variant: CommandVariant::new(1).unwrap(),
        service_reference: sr.to_string(),
        service_reference_variant: srv.to_string(),
    }
}

fn cos_header() -> RequestHeader {
    header(
        "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006",
        "6.23",
        "6.23",
    )
}

fn at() -> Timestamp {
    "2026-11-29T01:02:03.456Z".parse().unwrap()
}

fn outcome() -> ExecutionOutcome {
    ExecutionOutcome {
        authorising_remote_party_originator_counter: Some(6001),
        credentials_replacement_mode: Some(CredentialsReplacementMode::SupplierByTransCoS),
        seq_number_change: Some(RemotePartySeqNumberChange {
            role: Some(RemotePartyRole::Supplier),
            floor_seq_number: Some(0),
            prepayment_top_up_floor_seq_number: Some(0),
        }),
        replacement_outcomes: [
            (CertificateType::DigitalSigning, "4A8103ADAC183A89"),
            (CertificateType::KeyAgreement, "483972547DCD7835"),
            (CertificateType::KeyAgreementTopUp, "43049452FE1FCE0A"),
        ]
        .into_iter()
        .map(|(t, ski)| ReplacementOutcome {
            gbcs_status: Some(0),
            certificate_type: Some(t),
            role: Some(RemotePartyRole::Supplier),
            existing_id: Some(eui("90B3D51F30010000")),
            new_id: Some(eui("90B3D51F30030000")),
            existing_hash: Some(vec![0x11; 8]),
            new_hash: Some(hex::decode(ski).unwrap()),
        })
        .collect(),
    }
}

fn mmc_header() -> MmcHeader {
    MmcHeader {
        business_originator: eui("00DB1234567890A0"),
        business_target: eui("90B3D51F30000004"),
        originator_counter: 0x0100_0000_0000_1771,
        message_code: Some(0x00CB),
        timestamp: Some(at()),
    }
}

/// One sample of every kind written, by name.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let h = cos_header();
    let fd = FutureDatedOutcome {
        success: true,
        gbcs_payload: vec![0xDF, 0x09, 0x02, 0x00],
        instruction_number: 1,
        total_command_instructions: 1,
    };
    let alert_id: RequestId = "90-B3-D5-1F-30-00-00-02:90-B3-D5-1F-30-01-00-00:77"
        .parse()
        .unwrap();
    let ecos = DccAlert {
        request_id: None,
        response_id: Some(alert_id),
        response_code: ResponseCode::I0,
        alert_code: DccAlertCode::new("N63").unwrap(),
        body: DccAlertBody::EcosAlert(EcosAlert {
            alert_id,
            request_id: Some(h.request_id),
            ecos_alert_code: "ECOS-01".to_string(),
            device_id: eui("00DB1234567890A0"),
            additional_information: Some("MPxN <mismatch> & more".to_string()),
        }),
    };
    let cos_req = DccAlert {
        body: DccAlertBody::ChangeOfSupplier(ChangeOfSupplier::Request {
            service_request_id: h.request_id,
            ecos_error_code: Some("E01".to_string()),
        }),
        alert_code: DccAlertCode::new("N64").unwrap(),
        ..ecos.clone()
    };
    let cos_dev = DccAlert {
        body: DccAlertBody::ChangeOfSupplier(ChangeOfSupplier::Device {
            device_id: eui("00DB1234567890A0"),
            device_type: DeviceType::Esme,
            mpxns: MeterMpxns {
                import_mpxn: "1312345678333".to_string(),
                secondary_import_mpan: None,
                export_mpan: Some("1312345678340".to_string()),
            },
        }),
        alert_code: DccAlertCode::new("N65").unwrap(),
        ..ecos.clone()
    };
    let pki = ecos_smki::TestPki::generate(&ecos_smki::TestPkiSpec::demo()).unwrap();
    let org = &pki.organisations()[1];
    let request = CosRequest {
        schema_version: "5.4".to_string(),
        header: h.clone(),
        body: UpdateSecurityCredentialsCoS {
            execution: Execution::FutureDated("2030-01-02T00:00:00Z".parse().unwrap()),
            supplier_floor_seq_number: 9223372036854775807,
            supplier_prepayment_top_up_floor_seq_number: Some(1),
            replacement_certificates: SupplierReplacementCertificates {
                digital_signing: org.ds.cert.clone(),
                key_agreement: Some(org.ka.cert.clone()),
                key_agreement_top_up: Some(org.pp_ka.cert.clone()),
            },
            certification_path: vec![pki.issuing_ca().cert.clone(), pki.root().cert.clone()],
            apply_time_based_cpv_checks: false,
            import_mpxn: "1312345678333".to_string(),
        },
    };
    vec![
        ("cos_request", cos_request(&request).unwrap()),
        ("ack_I99", acknowledgement(&h, at()).unwrap()),
        (
            "error_E062305",
            error_acknowledgement(&h, &ResponseCode::new("E062305").unwrap(), at()).unwrap(),
        ),
        (
            "error_E12",
            error_acknowledgement(&h, &ResponseCode::new("E12").unwrap(), at()).unwrap(),
        ),
        (
            "error_response_E21",
            error_response(&h, &ResponseCode::new("E21").unwrap(), at()).unwrap(),
        ),
        ("dsp_response_I0", dsp_response(&h, at()).unwrap()),
        (
            "device_response_I0",
            device_response(&h, &[0xDF, 0x09, 0x02, 0x01, 0x02], at()).unwrap(),
        ),
        (
            "future_dated_alert",
            future_dated_response(&h, &fd, at()).unwrap(),
        ),
        ("dcc_alert_ecos", dcc_alert(&ecos, at()).unwrap()),
        ("dcc_alert_cos_request", dcc_alert(&cos_req, at()).unwrap()),
        ("dcc_alert_cos_device", dcc_alert(&cos_dev, at()).unwrap()),
        (
            "mmc_6_23_outcome",
            mmc_cos_response(&mmc_header(), Some(true), Some(&outcome())).unwrap(),
        ),
        (
            "mmc_6_23_fd_accepted",
            mmc_cos_response(&mmc_header(), None, None).unwrap(),
        ),
        (
            "mmc_6_23_fd_alert",
            mmc_cos_alert(
                &MmcHeader {
                    timestamp: None,
                    message_code: None,
                    ..mmc_header()
                },
                &MmcCosAlert {
                    alert_code: 0x8F66,
                    description: "Future dated command executed successfully".to_string(),
                    timestamp: at(),
                    outcome: outcome(),
                },
            )
            .unwrap(),
        ),
    ]
}

/// Structural view: (expanded name, attributes without xmlns, trimmed text), depth-first.
fn shape(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let mut out = Vec::new();
    for n in doc.root_element().descendants() {
        if n.is_element() {
            if n.tag_name().name() == "Signature" {
                continue;
            }
            if n.ancestors().any(|a| a.tag_name().name() == "Signature") {
                continue;
            }
            let attrs: Vec<String> = n
                .attributes()
                .filter(|a| a.name() != "schemaVersion")
                .map(|a| format!("{}={}", a.name(), a.value()))
                .collect();
            let text = n
                .children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect::<String>();
            out.push(format!("{:?} {:?} {}", n.tag_name(), attrs, text.trim()));
        }
    }
    out
}

#[test]
fn output_is_compact_with_declaration() {
    for (name, bytes) in samples() {
        let s = String::from_utf8(bytes).unwrap();
        assert!(
            s.starts_with(r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?><"#),
            "{name}: {s}"
        );
        let doc = roxmltree::Document::parse(&s).unwrap();
        for n in doc.descendants().filter(|n| n.is_text()) {
            assert!(
                !n.text().unwrap().trim().is_empty(),
                "{name}: whitespace-only text node"
            );
        }
    }
}

#[test]
fn error_ack_has_the_shape_of_the_dcc_boxed_e65() {
    let Some(sample) = common::fixture("duis-signed/dsp_response_11.2_E65_unsigned.xml") else {
        return;
    };
    let h = header(
        "90-B3-D5-1F-30-01-00-00:88-73-84-57-00-2F-96-6C:1658482675800",
        "11.2",
        "11.2",
    );
    let ours = error_acknowledgement(
        &h,
        &ResponseCode::new("E65").unwrap(),
        "2022-07-22T09:37:56.134Z".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        shape(std::str::from_utf8(&ours).unwrap()),
        shape(std::str::from_utf8(&sample).unwrap())
    );
}

#[test]
fn device_response_has_the_shape_and_response_id_of_the_dcc_boxed_i0() {
    let Some(sample) =
        common::fixture("duis-signed/dsp_response_11.2_I0_signed_dspXmlSign-OU137.xml")
    else {
        return;
    };
    let text = std::str::from_utf8(&sample).unwrap();
    let doc = roxmltree::Document::parse(text).unwrap();
    let payload = doc
        .descendants()
        .find(|n| n.tag_name().name() == "GBCSPayload")
        .and_then(|n| n.text())
        .unwrap();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    let h = header(
        "90-B3-D5-1F-30-01-00-00:88-73-84-57-00-2F-96-1E:1660751141087",
        "11.2",
        "11.2",
    );
    let ours = device_response(&h, &raw, "2022-08-17T15:45:42.790Z".parse().unwrap()).unwrap();
    assert_eq!(shape(std::str::from_utf8(&ours).unwrap()), shape(text));
    assert!(
        std::str::from_utf8(&ours)
            .unwrap()
            .contains("<sr:ResponseID>88-73-84-57-00-2F-96-1E:90-B3-D5-1F-30-01-00-00:1660751141087</sr:ResponseID>")
    );
}

#[test]
fn writers_refuse_values_the_schema_would_reject() {
    let h = cos_header();
    assert!(matches!(
        error_acknowledgement(&h, &ResponseCode::I0, at()),
        Err(WriteError::InvalidValue {
            field: "ResponseCode",
            ..
        })
    ));
    assert!(matches!(
        error_response(&h, &ResponseCode::I99, at()),
        Err(WriteError::InvalidValue {
            field: "ResponseCode",
            ..
        })
    ));
    assert!(ResponseCode::new("E9999").is_err());
    let mut bad_sr = h.clone();
    bad_sr.service_reference_variant = "6.15.1".to_string();
    assert!(matches!(
        acknowledgement(&bad_sr, at()),
        Err(WriteError::InvalidValue {
            field: "ServiceReferenceVariant",
            ..
        })
    ));
    let alert = |body| DccAlert {
        request_id: None,
        response_id: None,
        response_code: ResponseCode::I0,
        alert_code: DccAlertCode::new("N63").unwrap(),
        body,
    };
    let e = dcc_alert(
        &alert(DccAlertBody::ChangeOfSupplier(ChangeOfSupplier::Request {
            service_request_id: h.request_id,
            ecos_error_code: Some("E1".to_string()),
        })),
        at(),
    );
    assert!(
        matches!(
            e,
            Err(WriteError::InvalidValue {
                field: "ECoSErrorCode",
                ..
            })
        ),
        "{e:?}"
    );
    let e = dcc_alert(
        &alert(DccAlertBody::EcosAlert(EcosAlert {
            alert_id: h.request_id,
            request_id: None,
            ecos_alert_code: "bad\u{1}".to_string(),
            device_id: eui("00DB1234567890A0"),
            additional_information: None,
        })),
        at(),
    );
    assert!(matches!(e, Err(WriteError::Inconsistent(_))), "{e:?}");
    let mut x = outcome();
    x.replacement_outcomes.push(ReplacementOutcome::default());
    assert!(matches!(
        mmc_cos_response(&mmc_header(), None, Some(&x)),
        Err(WriteError::Inconsistent(_))
    ));
    let fd = FutureDatedOutcome {
        success: false,
        gbcs_payload: vec![1],
        instruction_number: 2,
        total_command_instructions: 1,
    };
    assert!(future_dated_response(&h, &fd, at()).is_err());
    assert!(device_response(&h, &[], at()).is_err());
}

// --- xmllint ---------------------------------------------------------------

fn xmllint_present() -> bool {
    Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// libxml2 does not resolve the `schemaLocation="MMC Schema V5.4.xsd"`
/// (spaces) import, so the schemas are copied under plain names into a temp dir.
fn schema_dir(fixtures: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let xsd = fixtures.join("xsd");
    let duis = std::fs::read_to_string(xsd.join("DUIS Schema V5.4.xsd")).unwrap();
    let duis = duis.replace(
        r#"schemaLocation="MMC Schema V5.4.xsd""#,
        r#"schemaLocation="mmc.xsd""#,
    );
    assert!(duis.contains(r#"schemaLocation="mmc.xsd""#));
    std::fs::write(dir.path().join("duis.xsd"), duis).unwrap();
    std::fs::copy(xsd.join("MMC Schema V5.4.xsd"), dir.path().join("mmc.xsd")).unwrap();
    std::fs::copy(
        xsd.join("xmldsig-core-schema.xsd"),
        dir.path().join("xmldsig-core-schema.xsd"),
    )
    .unwrap();
    dir
}

fn validate(schema: &Path, file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema)
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A syntactically complete DUIS-profile signature (placeholder values, and a
/// serial short enough for libxml2's xs:integer, which rejects the 38-digit
/// serials of real SMKI certificates).
const PLACEHOLDER_SIGNATURE: &str = concat!(
    r#"<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
    r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI="">"#,
    r#"<ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms>"#,
    r#"<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>ZGVmYXVsdA==</ds:DigestValue>"#,
    r#"</ds:Reference></ds:SignedInfo><ds:SignatureValue>ZGVmYXVsdA==</ds:SignatureValue><ds:KeyInfo><ds:X509Data>"#,
    r#"<ds:X509IssuerSerial><ds:X509IssuerName>CN=Z1,OU=07</ds:X509IssuerName><ds:X509SerialNumber>1234567890</ds:X509SerialNumber>"#,
    r#"</ds:X509IssuerSerial></ds:X509Data></ds:KeyInfo></ds:Signature>"#
);

#[test]
fn every_kind_written_validates_against_the_duis_5_4_schema() {
    let Some(fixtures) = common::fixtures() else {
        return;
    };
    if !xmllint_present() {
        eprintln!("SKIP: xmllint not installed (apt install libxml2-utils)");
        return;
    }
    let schemas = schema_dir(&fixtures);
    let schema = schemas.path().join("duis.xsd");
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut validated = 0;
    let all = samples();
    let kinds = all.len();
    for (name, bytes) in all {
        let s = String::from_utf8(bytes).unwrap();
        let mut docs = vec![(format!("{name}.xml"), s.clone())];
        for root in ["</sr:Response>", "</sr:Request>"] {
            if s.ends_with(root) {
                // the signed form: Signature appended as the last child of the root
                let signed = s.replacen(root, &format!("{PLACEHOLDER_SIGNATURE}{root}"), 1);
                docs.push((format!("{name}.signed.xml"), signed));
            }
        }
        validated += docs.len();
        for (file, text) in docs {
            let p: PathBuf = work.path().join(&file);
            std::fs::write(&p, text).unwrap();
            if let Err(e) = validate(&schema, &p) {
                failures.push(format!("{file}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // every kind unsigned; every sr: document also with a signature as the
    // root's last child (the three MMC ra:GBCSResponse views have none)
    assert_eq!(validated, 2 * kinds - 3);

    // negative control: the validator does reject a schema violation
    let s = String::from_utf8(samples().remove(1).1).unwrap();
    let broken = s.replace(
        "<sr:ResponseCode>I99</sr:ResponseCode>",
        "<sr:ResponseCode>I98</sr:ResponseCode>",
    );
    let p = work.path().join("broken.xml");
    std::fs::write(&p, broken).unwrap();
    assert!(
        validate(&schema, &p).is_err(),
        "xmllint accepted an invalid ResponseCode"
    );
}

#[test]
fn fixture_templates_validate_sanity() {
    let Some(fixtures) = common::fixtures() else {
        return;
    };
    if !xmllint_present() {
        eprintln!("SKIP: xmllint not installed (apt install libxml2-utils)");
        return;
    }
    let schemas = schema_dir(&fixtures);
    let schema = schemas.path().join("duis.xsd");
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures.join("duis"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "XML"))
        .collect();
    for t in ["IMMEDIATE", "FUTURE_DATED", "CANCELLATION"] {
        files.push(fixtures.join(format!("duis-signed/template_6.23_{t}.xml")));
    }
    files.push(fixtures.join("duis-signed/dsp_response_11.2_E65_unsigned.xml"));
    assert!(files.len() >= 9);
    for f in files {
        validate(&schema, &f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}
