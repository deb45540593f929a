//! Table-driven test over every RTDS vector in `fixtures/rtds/`.

mod common;

use ecos_gbcs::{Cra, Frame, SignatureField, mac};

#[test]
fn every_vector_frames_verifies_and_macs() {
    let Some(fx) = common::fixtures() else { return };
    let acb = common::ka(&fx, common::ACB);
    let vectors = common::vectors(&fx);
    assert_eq!(vectors.len(), 30, "RTDS vector count");
    let (mut sigs, mut macs) = (0, 0);
    for (name, bytes) in &vectors {
        let frame = Frame::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &frame.header;
        let want_cra = if name.contains("_COMMAND_") || name.contains("_PRECOMMAND_") {
            Cra::Command
        } else if name.contains("_RESPONSE_") {
            Cra::Response
        } else {
            Cra::Alert
        };
        assert_eq!(h.cra, want_cra, "{name}");
        assert_eq!(h.date_time.is_some(), h.cra == Cra::Response, "{name}");
        match frame.signature {
            SignatureField::Present(_) => {
                let key = common::cert_key(&fx, h.originator, "ds");
                frame
                    .verify_signature(&key)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                // Not over a wider or narrower range.
                let r = frame.signed_range();
                let SignatureField::Present(rs) = frame.signature else {
                    unreachable!()
                };
                assert!(key.verify(&bytes[r.start - 1..r.end], &rs).is_err());
                assert!(key.verify(frame.content(), &rs).is_err());
                sigs += 1;
            }
            SignatureField::Empty => assert!(name.contains("8.5_"), "{name}"),
            SignatureField::Absent => assert!(name.contains("PRECOMMAND"), "{name}"),
        }
        if frame.mac.is_some() {
            let device_ka = common::cert_key(&fx, h.recipient, "ka");
            mac::verify(&frame, &acb, &device_ka).unwrap_or_else(|e| panic!("{name}: {e}"));
            // A flipped APDU bit breaks it.
            let mut bad = bytes.clone();
            bad[frame.apdu_range().start + 5] ^= 1;
            let bad_frame = Frame::decode(&bad).unwrap();
            assert!(mac::verify(&bad_frame, &acb, &device_ka).is_err(), "{name}");
            macs += 1;
        } else {
            assert!(
                !name.contains("_COMMAND_"),
                "{name}: commands are MAC-wrapped"
            );
        }
    }
    assert_eq!((sigs, macs), (24, 11), "signatures and MACs checked");
}

#[test]
fn every_vector_decodes_typed_and_re_encodes() {
    use ecos_gbcs::{Body, GeneralSigning, LengthStyle, frame::mac_header};
    let Some(fx) = common::fixtures() else { return };
    for (name, bytes) in common::vectors(&fx) {
        let msg = ecos_gbcs::Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = &msg.frame;
        let content = match &msg.body {
            Body::Command(c) => {
                assert_eq!(
                    c.control.seq_number, f.header.counter,
                    "{name}: [3] = counter"
                );
                let cmd = msg.command().unwrap();
                let apdu = cmd.encode().unwrap();
                let mut again = Vec::new();
                if f.mac_header.is_some() {
                    // The MAC header length covers the signature too.
                    let sig_len = f.apdu_range().end - f.content_range().end;
                    again.extend(mac_header(apdu.encode_unsigned().len() + sig_len));
                }
                again.extend(apdu.encode_unsigned());
                assert_eq!(
                    hex::encode_upper(&again),
                    hex::encode_upper(f.up_to_signature()),
                    "{name}: re-encoding up to the signature"
                );
                continue;
            }
            Body::Response(r) => r.encode(LengthStyle::Device),
            Body::Alert(a) => a.encode(LengthStyle::Device).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(
            hex::encode_upper(&content),
            hex::encode_upper(f.content()),
            "{name}: device-style re-encoding"
        );
        let again = GeneralSigning {
            header: f.header.clone(),
            content,
        }
        .encode_unsigned();
        assert_eq!(
            &again[..],
            &bytes[..f.content_range().end],
            "{name}: header"
        );
    }
}

#[test]
fn typed_outcomes_match_the_reference() {
    use ecos_gbcs::{Body, ExecutionDateTime, ReplacementMode, StatusCode, TrustAnchorCell};
    let Some(fx) = common::fixtures() else { return };
    let dir = "6.23_CS02bSupplierByTransCoS";
    let bytes = common::vector(
        &fx,
        dir,
        "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX",
    );
    let msg = ecos_gbcs::Message::decode(&bytes).unwrap();
    assert_eq!(msg.frame.header.counter, 6001);
    let Body::Response(r) = &msg.body else {
        panic!("not a response")
    };
    let o = r.execution_outcome.as_ref().unwrap();
    assert_eq!(
        (o.seq_number, o.mode),
        (6001, ReplacementMode::SUPPLIER_BY_TRANS_COS)
    );
    assert_eq!(o.seq_number_changes.len(), 1);
    assert_eq!(o.seq_number_changes[0].floor, 0);
    let cells: Vec<_> = o.replacement_outcomes.iter().map(|x| x.cell).collect();
    assert_eq!(
        cells,
        [
            TrustAnchorCell::SUPPLIER_DS,
            TrustAnchorCell::SUPPLIER_KA,
            TrustAnchorCell::SUPPLIER_PP_KA
        ]
    );
    assert!(o.all_succeeded() && o.replacement_outcomes.iter().all(|x| x.replaced()));
    assert_eq!(
        o.replacement_outcomes[0].existing_sui.to_compact(),
        "90B3D51F30010000"
    );
    assert_eq!(
        hex::encode_upper(&o.replacement_outcomes[0].existing_ski),
        "44899792D196F4B8"
    );
    assert_eq!(
        o.replacement_outcomes[0].replacing_sui.to_compact(),
        "90B3D51F30030000"
    );
    assert_eq!(
        hex::encode_upper(&o.replacement_outcomes[2].replacing_ski),
        "43049452FE1FCE0A"
    );

    let bytes = common::vector(
        &fx,
        dir,
        "CS02bSupplierByTransCoS_6.23_FUTURE_DATED_SUCCESS_RESPONSE_GBCS.HEX",
    );
    let Body::Response(r) = ecos_gbcs::Message::decode(&bytes).unwrap().body else {
        panic!()
    };
    assert!(r.execution_outcome.is_none());

    let bytes = common::vector(
        &fx,
        dir,
        "CS02bSupplierByTransCoS_6.23_8F66_FUTURE_DATED_SUCCESS_ALERT_GBCS.HEX",
    );
    let msg = ecos_gbcs::Message::decode(&bytes).unwrap();
    assert_eq!(msg.frame.header.counter, 2001);
    let Body::Alert(a) = &msg.body else {
        panic!("not an alert")
    };
    assert!(a.actioned());
    assert_eq!(
        a.execution,
        ExecutionDateTime::At(jiff::civil::datetime(2030, 1, 2, 0, 0, 0, 0))
    );
    assert_eq!(a.outcome.seq_number, 6002);

    let bytes = common::vector(
        &fx,
        "6.15.1_CS02bSupplierBySupplier",
        "CS02bSupplierBySupplier_6.15.1_8F67_FUTURE_DATED_ERROR_ALERT_GBCS.HEX",
    );
    let Body::Alert(a) = ecos_gbcs::Message::decode(&bytes).unwrap().body else {
        panic!()
    };
    assert!(!a.actioned() && !a.outcome.all_succeeded());
    let ka = &a.outcome.replacement_outcomes[1];
    assert_eq!(ka.status, StatusCode::NO_TRUST_ANCHOR);
    assert_eq!(ka.existing_ski, ka.replacing_ski);
    assert!(!ka.replaced());

    let bytes = common::vector(
        &fx,
        "NA_CS02bTransCoSByTransCoS",
        "CS02bTransCoSByTransCoS_NA_SUCCESS_RESPONSE_GBCS.HEX",
    );
    let Body::Response(r) = ecos_gbcs::Message::decode(&bytes).unwrap().body else {
        panic!()
    };
    let o = r.execution_outcome.unwrap();
    assert!(o.seq_number_changes.is_empty());
    let c = &o.replacement_outcomes[0];
    assert_eq!(c.cell, TrustAnchorCell::TRANS_COS_DS);
    assert_eq!(c.existing_sui, c.replacing_sui);
    assert_eq!(hex::encode_upper(&c.replacing_ski), "4F3F10855696FEF2");

    let bytes = common::vector(
        &fx,
        dir,
        "CS02bSupplierByTransCoS_6.23_CANCELLATION_SUCCESS_COMMAND_GBCS.HEX",
    );
    let Body::Command(c) = ecos_gbcs::Message::decode(&bytes).unwrap().body else {
        panic!()
    };
    assert_eq!(c.execution, Some(ExecutionDateTime::Cancel));
    assert!(c.control.other_seq_number_changes.is_none());
}
