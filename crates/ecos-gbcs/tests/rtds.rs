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
