//! Reading every 6.23 template and signed sample, and a table of malformed inputs.

mod common;

use ecos_duis::{
    DuisError, DuisRequest, Execution, Limits, RequestIdError, ValueError, read_request,
    read_request_header,
};

const COS_FILES: &[(&str, u64, &str)] = &[
    // (file, counter, kind)
    (
        "duis/CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
        1006,
        "immediate",
    ),
    (
        "duis/CS02bSupplierByTransCoS_6.23_FUTURE_DATED_SUCCESS_REQUEST_DUIS.XML",
        1007,
        "fd",
    ),
    (
        "duis/CS02bSupplierByTransCoS_6.23_CANCELLATION_SUCCESS_REQUEST_DUIS.XML",
        1008,
        "cancel",
    ),
    ("duis-signed/template_6.23_IMMEDIATE.xml", 1006, "immediate"),
    ("duis-signed/template_6.23_FUTURE_DATED.xml", 1007, "fd"),
    ("duis-signed/template_6.23_CANCELLATION.xml", 1008, "cancel"),
    ("duis-signed/6.23_IMMEDIATE.signed.xml", 1006, "immediate"),
    ("duis-signed/6.23_FUTURE_DATED.signed.xml", 1007, "fd"),
    ("duis-signed/6.23_CANCELLATION.signed.xml", 1008, "cancel"),
    ("duis-signed/6.23_IMMEDIATE.resigned.xml", 1006, "immediate"),
    (
        "duis-signed/6.23_IMMEDIATE.signed.counter-replaced.xml",
        1795911071663,
        "immediate",
    ),
    (
        "duis-signed/6.23_IMMEDIATE.signed.by-supplier2-OU02-chained.xml",
        1006,
        "immediate",
    ),
    (
        "duis-signed/6.23_IMMEDIATE.validated-unsigned.xml",
        1006,
        "immediate",
    ),
    (
        "duis-signed/interop_6.23_IMMEDIATE.compact.python-signed.xml",
        1006,
        "immediate",
    ),
    (
        "duis-signed/interop_6.23_IMMEDIATE.pretty.w3c-signed.xml",
        1006,
        "immediate",
    ),
    (
        "duis-signed/neg_6.23_IMMEDIATE.DER-signaturevalue.xml",
        1006,
        "immediate",
    ),
    (
        "duis-signed/neg_6.23_IMMEDIATE.tampered-mpxn.xml",
        1006,
        "immediate",
    ),
    (
        "duis-signed/neg_strict_6.23_IMMEDIATE.inclusive-c14n-signedinfo.xml",
        1006,
        "immediate",
    ),
];

/// The certificate's subjectKeyIdentifier, as parsed by ecos-smki.
fn has_ski(c: &ecos_smki::Certificate, ski_hex: &str) -> bool {
    c.ski() == Some(&hex::decode(ski_hex).unwrap()[..])
}

#[test]
fn reads_every_6_23_fixture() {
    let Some(_) = common::fixtures() else { return };
    let sentinel = ecos_duis::cancellation_sentinel();
    for (file, counter, kind) in COS_FILES {
        let bytes = common::fixture(file).unwrap();
        let req =
            read_request(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let DuisRequest::UpdateSecurityCredentialsCoS(r) = &req else {
            panic!("{file}: not 6.23: {req:?}")
        };
        assert_eq!(r.schema_version, "5.4", "{file}");
        let h = &r.header;
        assert_eq!(h.request_id.counter, *counter, "{file}");
        assert_eq!(
            h.request_id.target.to_compact(),
            "00DB1234567890A0",
            "{file}"
        );
        let originator = if file.contains("supplier2") {
            "90B3D51F30030000"
        } else {
            "90B3D51F30010000"
        };
        assert_eq!(h.request_id.originator.to_compact(), originator, "{file}");
        assert_eq!(h.command_variant.get(), 1);
        assert!(h.command_variant.allowed_for_6_23());
        assert_eq!(
            (
                h.service_reference.as_str(),
                h.service_reference_variant.as_str()
            ),
            ("6.23", "6.23")
        );
        assert_eq!(h.first_in_sequence, None);
        assert_eq!(h.preceding_request_id, None);
        let b = &r.body;
        match (*kind, b.execution) {
            ("immediate", Execution::Immediate) | ("cancel", Execution::Cancellation) => {}
            ("fd", Execution::FutureDated(t)) => {
                assert_eq!(t.to_string(), "2030-01-02T00:00:00Z");
                assert_ne!(t, sentinel);
            }
            other => panic!("{file}: execution {other:?}"),
        }
        assert_eq!(b.supplier_floor_seq_number, 0);
        assert_eq!(b.supplier_prepayment_top_up_floor_seq_number, Some(0));
        let rc = &b.replacement_certificates;
        assert!(has_ski(&rc.digital_signing, "4A8103ADAC183A89"), "{file}");
        assert!(has_ski(
            rc.key_agreement.as_ref().unwrap(),
            "483972547DCD7835"
        ));
        assert!(has_ski(
            rc.key_agreement_top_up.as_ref().unwrap(),
            "43049452FE1FCE0A"
        ));
        for c in [
            &rc.digital_signing,
            rc.key_agreement.as_ref().unwrap(),
            rc.key_agreement_top_up.as_ref().unwrap(),
        ] {
            assert_eq!(
                c.eui().map(|e| e.to_compact()).as_deref(),
                Some("90B3D51F30030000")
            );
            assert_eq!(c.role(), Some(ecos_smki::Role::Supplier));
        }
        assert_eq!(b.certification_path.len(), 1);
        assert!(b.certification_path[0].is_ca());
        // Z1's SKI
        assert!(
            has_ski(&b.certification_path[0], "4F5688D7EC933BE2"),
            "{file}"
        );
        assert!(b.apply_time_based_cpv_checks);
        let mpxn = if file.contains("tampered") {
            "1312345678334"
        } else {
            "1312345678333"
        };
        assert_eq!(b.import_mpxn, mpxn, "{file}");
    }
}

#[test]
fn reads_other_service_requests_far_enough_to_answer() {
    let Some(_) = common::fixtures() else { return };
    for (file, sr, srv, cv, body) in [
        (
            "duis/8.2_READ_INVENTORY_REQUEST_DUIS.XML",
            "8.2",
            "8.2",
            8,
            "ReadInventory",
        ),
        (
            "duis/CS02bSupplierBySupplier_6.15.1_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
            "6.15",
            "6.15.1",
            4,
            "UpdateSecurityCredentialsKRP",
        ),
        (
            "duis/CS02gLoadControllerBySupplier_6.15.1_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
            "6.15",
            "6.15.1",
            4,
            "UpdateSecurityCredentialsKRP",
        ),
    ] {
        let bytes = common::fixture(file).unwrap();
        let req =
            read_request(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let DuisRequest::Other {
            header,
            body_element,
            schema_version,
        } = &req
        else {
            panic!("{file}: {req:?}")
        };
        assert_eq!(schema_version, "5.4");
        assert_eq!(header.service_reference, sr);
        assert_eq!(header.service_reference_variant, srv);
        assert_eq!(header.command_variant.get(), cv);
        assert_eq!(body_element, body);
        assert_eq!(
            req.header(),
            &read_request_header(&bytes, &Limits::default()).unwrap()
        );
    }
}

#[test]
fn responses_are_not_requests() {
    let Some(_) = common::fixtures() else { return };
    let bytes = common::fixture("duis-signed/dsp_response_11.2_E65_unsigned.xml").unwrap();
    let e = read_request(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(e, DuisError::WrongRoot { .. }), "{e}");
}

#[test]
fn xxe_fixture_is_refused() {
    let Some(_) = common::fixtures() else { return };
    let bytes = common::fixture("duis/duis-xxe.xml").unwrap();
    assert_eq!(
        read_request(&bytes, &Limits::default()),
        Err(DuisError::DoctypeRefused)
    );
    assert_eq!(
        ecos_duis::xml::parse(&bytes, &Limits::default()).err(),
        Some(DuisError::DoctypeRefused)
    );
}

const COS: &str = "/Request/Body/UpdateSecurityCredentialsCoS";

fn path_is(e: &DuisError, want: &str) -> bool {
    let p = match e {
        DuisError::MissingElement { path, .. }
        | DuisError::DuplicateElement { path, .. }
        | DuisError::MisplacedElement { path, .. }
        | DuisError::UnexpectedElement { path, .. }
        | DuisError::UnexpectedContent { path, .. }
        | DuisError::UnexpectedAttribute { path, .. }
        | DuisError::MissingAttribute { path, .. }
        | DuisError::InvalidValue { path, .. }
        | DuisError::RequestId { path, .. }
        | DuisError::ServiceMismatch { path, .. } => path,
        _ => return false,
    };
    p == want
}

/// Replace exactly one occurrence (the test fails if the anchor is missing).
fn edit(t: &str, from: &str, to: &str) -> String {
    assert!(
        t.contains(from),
        "anchor {from:?} missing from the template"
    );
    t.replacen(from, to, 1)
}

#[test]
fn malformed_inputs_each_get_their_specific_error() {
    let Some(t) = common::immediate_template() else {
        return;
    };
    let ds_open = "<sr:DigitalSigningCertificate>";
    let floor = "<sr:SupplierFloorSeqNumber>0</sr:SupplierFloorSeqNumber>";
    let topup =
        "<sr:SupplierPrepaymentTopUpFloorSeqNumber>0</sr:SupplierPrepaymentTopUpFloorSeqNumber>";
    let cpv = "<sr:ApplyTimeBasedCPVChecks>true</sr:ApplyTimeBasedCPVChecks>";
    let mpxn = "<sr:ImportMPxN>1312345678333</sr:ImportMPxN>";
    let rid = "<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006</sr:RequestID>";
    let cv = "<sr:CommandVariant>1</sr:CommandVariant>";
    let path_cert_open = "<sr:CertificationPathCertificates>\n        <sr:Certificate>";
    let z1 = {
        let a = t.find(path_cert_open).unwrap() + path_cert_open.len();
        let b = a + t[a..].find("</sr:Certificate>").unwrap();
        t[a..b].to_string()
    };
    let four_certs = format!(
        "<sr:CertificationPathCertificates><sr:Certificate>{z1}</sr:Certificate><sr:Certificate>{z1}</sr:Certificate><sr:Certificate>{z1}</sr:Certificate><sr:Certificate>{z1}</sr:Certificate></sr:CertificationPathCertificates>"
    );
    let path_block = {
        let a = t.find("<sr:CertificationPathCertificates>").unwrap();
        let end = "</sr:CertificationPathCertificates>";
        let b = t.find(end).unwrap() + end.len();
        t[a..b].to_string()
    };
    type Check = fn(&DuisError) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        (
            "FD without Z",
            edit(
                &t,
                floor,
                &format!("<sr:ExecutionDateTime>2030-01-02T00:00:00</sr:ExecutionDateTime>{floor}"),
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::NotUtc,
                        ..
                    }
                ) && path_is(e, &format!("{COS}/ExecutionDateTime"))
            },
        ),
        (
            "FD with offset",
            edit(
                &t,
                floor,
                &format!(
                    "<sr:ExecutionDateTime>2030-01-02T00:00:00+01:00</sr:ExecutionDateTime>{floor}"
                ),
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::NotUtc,
                        ..
                    }
                )
            },
        ),
        (
            "FD not a date",
            edit(
                &t,
                floor,
                &format!("<sr:ExecutionDateTime>tomorrow</sr:ExecutionDateTime>{floor}"),
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::DateTime(_),
                        ..
                    }
                )
            },
        ),
        (
            "ExecutionDateTime after the floor (misplaced)",
            edit(
                &t,
                floor,
                &format!(
                    "{floor}<sr:ExecutionDateTime>2030-01-02T00:00:00Z</sr:ExecutionDateTime>"
                ),
            ),
            |e| {
                matches!(e, DuisError::MisplacedElement { .. })
                    && path_is(e, &format!("{COS}/ExecutionDateTime"))
            },
        ),
        (
            "floor 2^63",
            edit(
                &t,
                floor,
                "<sr:SupplierFloorSeqNumber>9223372036854775808</sr:SupplierFloorSeqNumber>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::TooLarge {
                            max: 9223372036854775807
                        },
                        ..
                    }
                ) && path_is(e, &format!("{COS}/SupplierFloorSeqNumber"))
            },
        ),
        (
            "floor negative",
            edit(
                &t,
                floor,
                "<sr:SupplierFloorSeqNumber>-1</sr:SupplierFloorSeqNumber>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Integer,
                        ..
                    }
                )
            },
        ),
        (
            "top-up floor 2^64",
            edit(
                &t,
                topup,
                "<sr:SupplierPrepaymentTopUpFloorSeqNumber>18446744073709551616</sr:SupplierPrepaymentTopUpFloorSeqNumber>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::TooLarge { .. },
                        ..
                    }
                ) && path_is(e, &format!("{COS}/SupplierPrepaymentTopUpFloorSeqNumber"))
            },
        ),
        ("floor missing", edit(&t, floor, ""), |e| {
            matches!(
                e,
                DuisError::MissingElement {
                    name: "SupplierFloorSeqNumber",
                    ..
                }
            ) && path_is(e, COS)
        }),
        (
            "floor duplicated",
            edit(&t, floor, &format!("{floor}{floor}")),
            |e| {
                matches!(e, DuisError::DuplicateElement { max: 1, .. })
                    && path_is(e, &format!("{COS}/SupplierFloorSeqNumber[2]"))
            },
        ),
        (
            "top-up before floor",
            edit(&edit(&t, topup, ""), floor, &format!("{topup}{floor}")),
            |e| matches!(e, DuisError::MisplacedElement { .. }),
        ),
        (
            "DS certificate not base64",
            edit(&t, ds_open, &format!("{ds_open}!!")),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Base64(_),
                        ..
                    }
                ) && path_is(
                    e,
                    &format!("{COS}/SupplierReplacementCertificates/DigitalSigningCertificate"),
                )
            },
        ),
        (
            "DS certificate not DER",
            edit(&t, ds_open, &format!("{ds_open}AAAA")),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Base64(_) | ValueError::Certificate(_),
                        ..
                    }
                )
            },
        ),
        (
            "DS certificate is valid base64 of garbage",
            {
                let a = t.find(ds_open).unwrap() + ds_open.len();
                let b = a + t[a..].find('<').unwrap();
                format!("{}MIIBAgMEBQ=={}", &t[..a], &t[b..])
            },
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Certificate(_),
                        ..
                    }
                )
            },
        ),
        (
            "KA before DS",
            {
                let ka_s = t.find("<sr:KeyAgreementCertificate>").unwrap();
                let ka_e = t.find("</sr:KeyAgreementCertificate>").unwrap()
                    + "</sr:KeyAgreementCertificate>".len();
                let ka = t[ka_s..ka_e].to_string();
                let without = format!("{}{}", &t[..ka_s], &t[ka_e..]);
                edit(&without, ds_open, &format!("{ka}{ds_open}"))
            },
            |e| matches!(e, DuisError::MisplacedElement { expected, .. } if expected == "DigitalSigningCertificate"),
        ),
        (
            "four path certificates",
            edit(&t, &path_block, &four_certs),
            |e| {
                matches!(e, DuisError::DuplicateElement { max: 3, .. })
                    && path_is(
                        e,
                        &format!("{COS}/CertificationPathCertificates/Certificate[4]"),
                    )
            },
        ),
        (
            "no path certificate",
            edit(
                &t,
                &path_block,
                "<sr:CertificationPathCertificates></sr:CertificationPathCertificates>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::MissingElement {
                        name: "Certificate",
                        ..
                    }
                )
            },
        ),
        (
            "CPV yes",
            edit(
                &t,
                cpv,
                "<sr:ApplyTimeBasedCPVChecks>yes</sr:ApplyTimeBasedCPVChecks>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Boolean,
                        ..
                    }
                ) && path_is(e, &format!("{COS}/ApplyTimeBasedCPVChecks"))
            },
        ),
        (
            "ImportMPxN empty",
            edit(&t, mpxn, "<sr:ImportMPxN></sr:ImportMPxN>"),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Length {
                            len: 0,
                            min: 1,
                            max: 13
                        },
                        ..
                    }
                ) && path_is(e, &format!("{COS}/ImportMPxN"))
            },
        ),
        (
            "ImportMPxN 14 characters",
            edit(&t, mpxn, "<sr:ImportMPxN>13123456783334</sr:ImportMPxN>"),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Length { len: 14, .. },
                        ..
                    }
                )
            },
        ),
        (
            "ImportMPxN with surrounding whitespace (xs:string preserves it)",
            edit(&t, mpxn, "<sr:ImportMPxN> 1312345678333</sr:ImportMPxN>"),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Length { len: 14, .. },
                        ..
                    }
                )
            },
        ),
        ("ImportMPxN missing", edit(&t, mpxn, ""), |e| {
            matches!(
                e,
                DuisError::MissingElement {
                    name: "ImportMPxN",
                    ..
                }
            ) && path_is(e, COS)
        }),
        (
            "ImportMPxN twice",
            edit(&t, mpxn, &format!("{mpxn}{mpxn}")),
            |e| {
                matches!(e, DuisError::DuplicateElement { .. })
                    && path_is(e, &format!("{COS}/ImportMPxN[2]"))
            },
        ),
        (
            "unknown element in body",
            edit(&t, mpxn, &format!("{mpxn}<sr:Extra>1</sr:Extra>")),
            |e| {
                matches!(e, DuisError::UnexpectedElement { .. })
                    && path_is(e, &format!("{COS}/Extra"))
            },
        ),
        (
            "foreign-namespace element in body",
            edit(
                &t,
                mpxn,
                &format!("<x:ImportMPxN xmlns:x=\"urn:x\">1</x:ImportMPxN>{mpxn}"),
            ),
            |e| matches!(e, DuisError::UnexpectedElement { found, .. } if found == "{urn:x}ImportMPxN"),
        ),
        (
            "text between elements",
            edit(&t, mpxn, &format!("junk{mpxn}")),
            |e| matches!(e, DuisError::UnexpectedContent { .. }) && path_is(e, COS),
        ),
        (
            "comment splitting a value",
            edit(
                &t,
                mpxn,
                "<sr:ImportMPxN>131234<!-- x -->5678333</sr:ImportMPxN>",
            ),
            |e| {
                matches!(e, DuisError::UnexpectedContent { what, .. } if what == "comment")
                    && path_is(e, &format!("{COS}/ImportMPxN"))
            },
        ),
        (
            "processing instruction in body",
            edit(&t, mpxn, &format!("<?pi x?>{mpxn}")),
            |e| matches!(e, DuisError::UnexpectedContent { what, .. } if what == "processing instruction"),
        ),
        (
            "attribute on a value",
            edit(
                &t,
                mpxn,
                "<sr:ImportMPxN a=\"1\">1312345678333</sr:ImportMPxN>",
            ),
            |e| {
                matches!(e, DuisError::UnexpectedAttribute { .. })
                    && path_is(e, &format!("{COS}/ImportMPxN"))
            },
        ),
        (
            "child element in a value",
            edit(&t, mpxn, "<sr:ImportMPxN><sr:X/></sr:ImportMPxN>"),
            |e| matches!(e, DuisError::UnexpectedContent { .. }),
        ),
        (
            "RequestID counter with leading zero",
            edit(
                &t,
                rid,
                "<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:01006</sr:RequestID>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::RequestId {
                        source: RequestIdError::CounterSyntax(_),
                        ..
                    }
                ) && path_is(e, "/Request/Header/RequestID")
            },
        ),
        (
            "RequestID EUI without dashes",
            edit(
                &t,
                rid,
                "<sr:RequestID>90B3D51F30010000:00-DB-12-34-56-78-90-A0:1006</sr:RequestID>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::RequestId {
                        source: RequestIdError::Eui {
                            which: "originator",
                            ..
                        },
                        ..
                    }
                )
            },
        ),
        (
            "RequestID counter above 2^64-1",
            edit(
                &t,
                rid,
                "<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551616</sr:RequestID>",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::RequestId {
                        source: RequestIdError::CounterRange(_),
                        ..
                    }
                )
            },
        ),
        (
            "CommandVariant 0",
            edit(&t, cv, "<sr:CommandVariant>0</sr:CommandVariant>"),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::NotInEnumeration { .. },
                        ..
                    }
                ) && path_is(e, "/Request/Header/CommandVariant")
            },
        ),
        (
            "CommandVariant 10",
            edit(&t, cv, "<sr:CommandVariant>10</sr:CommandVariant>"),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::TooLarge { max: 9 },
                        ..
                    }
                )
            },
        ),
        ("CommandVariant missing", edit(&t, cv, ""), |e| {
            matches!(
                e,
                DuisError::MissingElement {
                    name: "CommandVariant",
                    ..
                }
            ) && path_is(e, "/Request/Header")
        }),
        (
            "FirstInSequence after CommandVariant",
            edit(
                &t,
                cv,
                &format!("{cv}<sr:FirstInSequence>true</sr:FirstInSequence>"),
            ),
            |e| {
                matches!(e, DuisError::MisplacedElement { .. })
                    && path_is(e, "/Request/Header/FirstInSequence")
            },
        ),
        (
            "ServiceReference 6.23.1",
            edit(
                &t,
                "<sr:ServiceReference>6.23<",
                "<sr:ServiceReference>6.23.1<",
            ),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::NotInEnumeration { .. },
                        ..
                    }
                ) && path_is(e, "/Request/Header/ServiceReference")
            },
        ),
        (
            "ServiceReference 6.15 with a 6.23 body",
            edit(
                &edit(
                    &t,
                    "<sr:ServiceReference>6.23<",
                    "<sr:ServiceReference>6.15<",
                ),
                "<sr:ServiceReferenceVariant>6.23<",
                "<sr:ServiceReferenceVariant>6.15.1<",
            ),
            |e| matches!(e, DuisError::ServiceMismatch { .. }) && path_is(e, COS),
        ),
        (
            "variant of another reference",
            edit(
                &t,
                "<sr:ServiceReferenceVariant>6.23<",
                "<sr:ServiceReferenceVariant>6.15.1<",
            ),
            |e| {
                matches!(e, DuisError::ServiceMismatch { .. })
                    && path_is(e, "/Request/Header/ServiceReferenceVariant")
            },
        ),
        (
            "schemaVersion missing",
            edit(&t, " schemaVersion=\"5.4\"", ""),
            |e| {
                matches!(
                    e,
                    DuisError::MissingAttribute {
                        name: "schemaVersion",
                        ..
                    }
                ) && path_is(e, "/Request")
            },
        ),
        (
            "schemaVersion not decimal",
            edit(&t, "schemaVersion=\"5.4\"", "schemaVersion=\"v5\""),
            |e| {
                matches!(
                    e,
                    DuisError::InvalidValue {
                        reason: ValueError::Decimal,
                        ..
                    }
                ) && path_is(e, "/Request/@schemaVersion")
            },
        ),
        (
            "unknown root attribute",
            edit(
                &t,
                "schemaVersion=\"5.4\"",
                "schemaVersion=\"5.4\" Id=\"x\"",
            ),
            |e| matches!(e, DuisError::UnexpectedAttribute { .. }),
        ),
        (
            "second Signature",
            edit(&t, "</sr:Request>", "<ds:Signature/></sr:Request>"),
            |e| {
                matches!(e, DuisError::DuplicateElement { .. })
                    && path_is(e, "/Request/Signature[2]")
            },
        ),
        (
            "element after Signature",
            edit(&t, "</sr:Request>", "<sr:Body/></sr:Request>"),
            |e| matches!(e, DuisError::UnexpectedElement { .. }),
        ),
        (
            "two body elements",
            edit(
                &t,
                "</sr:UpdateSecurityCredentialsCoS>",
                "</sr:UpdateSecurityCredentialsCoS><sr:ReadInventory/>",
            ),
            |e| {
                matches!(e, DuisError::DuplicateElement { .. })
                    && path_is(e, "/Request/Body/ReadInventory")
            },
        ),
        (
            "wrong root namespace",
            t.replace(
                "xmlns:sr=\"http://www.dccinterface.co.uk/ServiceUserGateway\"",
                "xmlns:sr=\"urn:other\"",
            ),
            |e| matches!(e, DuisError::WrongRoot { .. }),
        ),
        (
            "undeclared prefix",
            edit(&t, mpxn, "<zz:ImportMPxN>1</zz:ImportMPxN>"),
            |e| matches!(e, DuisError::Xml { .. }),
        ),
        ("unknown entity", edit(&t, "1312345678333", "&foo;"), |e| {
            matches!(e, DuisError::Xml { .. })
        }),
        (
            "empty DOCTYPE",
            edit(&t, "<sr:Request ", "<!DOCTYPE sr:Request><sr:Request "),
            |e| matches!(e, DuisError::DoctypeRefused),
        ),
    ];
    for (name, doc, check) in &cases {
        let e = read_request(doc.as_bytes(), &Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(check(&e), "{name}: wrong error: {e:?}");
        // every message says where
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn lexical_variants_the_schema_allows_are_accepted() {
    let Some(t) = common::immediate_template() else {
        return;
    };
    let cpv = "<sr:ApplyTimeBasedCPVChecks>true</sr:ApplyTimeBasedCPVChecks>";
    for (lex, want) in [
        ("true", true),
        ("false", false),
        ("1", true),
        ("0", false),
        (" false ", false),
    ] {
        let doc = t.replace(
            cpv,
            &format!("<sr:ApplyTimeBasedCPVChecks>{lex}</sr:ApplyTimeBasedCPVChecks>"),
        );
        let DuisRequest::UpdateSecurityCredentialsCoS(r) =
            read_request(doc.as_bytes(), &Limits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.body.apply_time_based_cpv_checks, want, "{lex}");
    }
    // floors up to 2^63-1, leading zeros and '+' as xs:nonNegativeInteger allows
    let floor = "<sr:SupplierFloorSeqNumber>0</sr:SupplierFloorSeqNumber>";
    for (lex, want) in [("9223372036854775807", i64::MAX as u64), ("+0042", 42)] {
        let doc = t.replace(
            floor,
            &format!("<sr:SupplierFloorSeqNumber>{lex}</sr:SupplierFloorSeqNumber>"),
        );
        let DuisRequest::UpdateSecurityCredentialsCoS(r) =
            read_request(doc.as_bytes(), &Limits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.body.supplier_floor_seq_number, want);
    }
    // optional elements absent; the sentinel without fractional digits; three path certs
    let topup =
        "<sr:SupplierPrepaymentTopUpFloorSeqNumber>0</sr:SupplierPrepaymentTopUpFloorSeqNumber>";
    let doc = t.replace(topup, "").replace(
        floor,
        &format!("<sr:ExecutionDateTime>3000-12-31T00:00:00Z</sr:ExecutionDateTime>{floor}"),
    );
    let ka_s = doc.find("<sr:KeyAgreementCertificate>").unwrap();
    let ka_e = doc.find("</sr:KeyAgreementTopUpCertificate>").unwrap()
        + "</sr:KeyAgreementTopUpCertificate>".len();
    let doc = format!("{}{}", &doc[..ka_s], &doc[ka_e..]);
    let open = "<sr:CertificationPathCertificates>";
    let a = doc.find(open).unwrap() + open.len();
    let b = doc.find("</sr:CertificationPathCertificates>").unwrap();
    let cert = doc[a..b].trim().to_string();
    let doc = format!("{}{cert}{cert}{cert}{}", &doc[..a], &doc[b..]);
    let DuisRequest::UpdateSecurityCredentialsCoS(r) =
        read_request(doc.as_bytes(), &Limits::default()).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.body.execution, Execution::Cancellation);
    assert_eq!(r.body.supplier_prepayment_top_up_floor_seq_number, None);
    assert_eq!(r.body.replacement_certificates.key_agreement, None);
    assert_eq!(r.body.replacement_certificates.key_agreement_top_up, None);
    assert_eq!(r.body.certification_path.len(), 3);
    // a second instant close to the sentinel is future-dated, not a cancellation
    let doc = t.replace(
        floor,
        &format!("<sr:ExecutionDateTime>3000-12-31T00:00:00.001Z</sr:ExecutionDateTime>{floor}"),
    );
    let DuisRequest::UpdateSecurityCredentialsCoS(r) =
        read_request(doc.as_bytes(), &Limits::default()).unwrap()
    else {
        panic!()
    };
    assert!(matches!(r.body.execution, Execution::FutureDated(_)));
}
