//! Malformed input gives typed errors with the right offset, never a panic.

mod common;

use ecos_gbcs::{
    Cs02bResponse, DecodeError, Frame, FutureDatedAlert, Message, SignatureField,
    UpdateSecurityCredentials,
};

const DIR: &str = "6.23_CS02bSupplierByTransCoS";
const IMMEDIATE: &str = "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX";
const RESPONSE: &str = "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX";

fn err(bytes: &[u8]) -> DecodeError {
    match Message::decode(bytes) {
        Ok(m) => panic!("decoded: {:?}", m.frame.header),
        Err(e) => e,
    }
}

#[test]
fn every_truncation_is_a_typed_error() {
    let Some(fx) = common::fixtures() else { return };
    for (name, bytes) in common::vectors(&fx) {
        let content_end = Frame::decode(&bytes).unwrap().content_range().end;
        for len in 0..bytes.len() {
            match Message::decode(&bytes[..len]) {
                Err(e) => {
                    assert!(
                        e.offset() <= len,
                        "{name}[..{len}]: offset {} in {e}",
                        e.offset()
                    );
                    assert!(!e.to_string().is_empty());
                }
                // Cut right after the content: the unsigned (pre-command) form.
                Ok(m) => {
                    assert_eq!(len, content_end, "{name}[..{len}] decoded");
                    assert_eq!(m.frame.signature, SignatureField::Absent);
                }
            }
        }
    }
}

#[test]
fn wrong_lengths() {
    let Some(fx) = common::fixtures() else { return };
    let v = common::vector(&fx, DIR, IMMEDIATE);
    // MAC header length 82 07 53 → 82 07 54: one byte missing.
    let mut b = v.clone();
    b[9] += 1;
    assert!(matches!(
        err(&b),
        DecodeError::Truncated {
            offset: 10,
            needed: 1876,
            available: 1875,
            ..
        }
    ));
    // → 82 07 52: one byte left over.
    let mut b = v.clone();
    b[9] -= 1;
    assert!(matches!(
        err(&b),
        DecodeError::TrailingBytes {
            offset: 1884,
            count: 1,
            ..
        }
    ));
    // Content length 82 06 DD → 82 06 DC: the last content byte becomes a bad signature length.
    let mut b = v.clone();
    b[50] -= 1;
    let e = err(&b);
    assert!(
        matches!(
            e,
            DecodeError::BadValue {
                what: "signature length",
                offset: 1807,
                ..
            }
        ),
        "{e}"
    );
    // Content length larger than the APDU.
    let mut b = v.clone();
    b[49] = 0x07;
    assert!(matches!(
        err(&b),
        DecodeError::Truncated {
            what: "content",
            offset: 51,
            ..
        }
    ));
    // Non-minimal content length in a command: 82 06 DD → 83 00 06 DD.
    let mut b = v[15..1873].to_vec(); // the unwrapped APDU
    b.splice(33..36, [0x83, 0x00, 0x06, 0xDD]);
    let e = err(&b);
    assert!(
        matches!(
            e,
            DecodeError::BadLength {
                what: "content length",
                offset: 33,
                ..
            }
        ),
        "{e}"
    );
    // Indefinite length inside the content.
    let mut b = v.clone();
    b[52] = 0x80;
    let e = err(&b);
    assert!(
        matches!(e, DecodeError::BadLength { offset: 52, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("indefinite"), "{e}");
    // The inner ARPC length off by one.
    let mut b = v.clone();
    b[56] += 1; // 30 24 → 30 25
    let e = err(&b);
    assert!(e.offset() >= 55, "{e}");
}

#[test]
fn bad_tags_and_values() {
    let Some(fx) = common::fixtures() else { return };
    let v = common::vector(&fx, DIR, IMMEDIATE);
    let cases: Vec<(usize, u8, &str, usize)> = vec![
        (0, 0xDE, "message tag", 0),
        (1, 0x01, "MAC header transaction-id", 1),
        (15, 0xDE, "general-signing tag", 15),
        (16, 0x08, "transaction-id length", 16),
        (17, 0x04, "CRA flag", 17),
        (26, 0x07, "originator-system-title length", 26),
        (45, 0x03, "other-information length", 45),
        (51, 0x31, "UpdateSecurityCredentialsCommand", 51),
        (57, 0x03, "credentialsReplacementMode", 57),
        (69, 0x84, "[3] authorisingRemotePartySeqNumber", 69),
        (1808, 0x41, "signature length", 1808),
    ];
    for (at, byte, what, offset) in cases {
        let mut b = v.clone();
        b[at] = byte;
        let e = err(&b);
        assert_eq!(e.offset(), offset, "byte {at}: {e}");
        assert!(e.to_string().contains(what), "byte {at}: {e}");
    }
    // Mode 6 content under message code 0x0107.
    let mut b = v.clone();
    b[59] = 6;
    let e = err(&b);
    assert!(
        e.to_string().contains("does not match message code 0x0107"),
        "{e}"
    );
    // An unknown message code.
    let mut b = v.clone();
    b[47] = 0x99;
    assert!(err(&b).to_string().contains("0x0199"));
    // A date-time in a command.
    let mut apdu = v[15..1873].to_vec();
    apdu.splice(29..30, [12u8; 13]);
    let e = err(&apdu);
    assert!(
        matches!(
            e,
            DecodeError::BadValue {
                what: "date-time length",
                offset: 29,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn trailing_bytes() {
    let Some(fx) = common::fixtures() else { return };
    let v = common::vector(&fx, DIR, RESPONSE);
    let mut b = v.clone();
    b.push(0);
    assert!(matches!(
        err(&b),
        DecodeError::TrailingBytes {
            offset: 318,
            count: 1,
            ..
        }
    ));
    let mut b = common::vector(&fx, DIR, IMMEDIATE);
    b.push(0);
    assert!(matches!(
        err(&b),
        DecodeError::TrailingBytes { count: 1, .. }
    ));
    // Content with a byte after the outer SEQUENCE.
    let content = &v[47..47 + 206];
    let mut c = content.to_vec();
    c.push(0);
    assert!(matches!(
        Cs02bResponse::decode(&c, 47),
        Err(DecodeError::TrailingBytes { offset: 253, .. })
    ));
}

#[test]
fn strict_der_in_commands_lenient_lengths_in_device_content() {
    let Some(fx) = common::fixtures() else { return };
    let v = common::vector(&fx, DIR, IMMEDIATE);
    let content = &v[51..1808];
    UpdateSecurityCredentials::decode(content, 51).unwrap();
    // ARPC 30 24 → 30 81 24 (non-minimal) in a command: refused.
    let mut c = content.to_vec();
    c.splice(4..6, [0x30, 0x81, 0x24]);
    c[3] += 1; // outer length 06 D9 → 06 DA
    let e = UpdateSecurityCredentials::decode(&c, 51).unwrap_err();
    assert!(
        matches!(e, DecodeError::BadLength { offset: 56, .. }),
        "{e}"
    );
    // A non-minimal INTEGER: 02 01 07 → 02 02 00 07.
    let mut c = content.to_vec();
    c.splice(6..9, [0x02, 0x02, 0x00, 0x07]);
    c[3] += 1;
    c[5] += 1;
    let e = UpdateSecurityCredentials::decode(&c, 51).unwrap_err();
    assert!(e.to_string().contains("non-minimal INTEGER"), "{e}");
    // An untrimmed named BIT STRING: 03 02 07 80 → 03 03 07 80 00.
    let mut c = content.to_vec();
    c.splice(14..18, [0x03, 0x03, 0x07, 0x80, 0x00]);
    c[3] += 1;
    c[5] += 1;
    c[10] += 1;
    let e = UpdateSecurityCredentials::decode(&c, 51).unwrap_err();
    assert!(e.to_string().contains("trailing zero bits"), "{e}");

    // Device content: 30 82 00 CA accepted; a further 30 83 00 00 CA accepted too.
    let r = common::vector(&fx, DIR, RESPONSE);
    let content = &r[47..253];
    let a = Cs02bResponse::decode(content, 0).unwrap();
    let mut c = content.to_vec();
    c.splice(0..4, [0x30, 0x83, 0x00, 0x00, 0xCA]);
    assert_eq!(Cs02bResponse::decode(&c, 0).unwrap(), a);
    // But still no indefinite lengths.
    let mut c = content.to_vec();
    c.splice(0..4, [0x30, 0x80]);
    assert!(Cs02bResponse::decode(&c, 0).is_err());
    // A bad status tag in an outcome.
    let mut c = content.to_vec();
    let pos = c.windows(3).position(|w| w == [0x0A, 0x01, 0x00]).unwrap();
    c[pos] = 0x02;
    let e = Cs02bResponse::decode(&c, 0).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::UnexpectedTag {
                what: "statusCode",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn alert_errors() {
    let Some(fx) = common::fixtures() else { return };
    let v = common::vector(
        &fx,
        DIR,
        "CS02bSupplierByTransCoS_6.23_8F66_FUTURE_DATED_SUCCESS_ALERT_GBCS.HEX",
    );
    let content = &v[35..261];
    FutureDatedAlert::decode(content, 35).unwrap();
    // February 30th.
    let mut c = content.to_vec();
    let pos = c.windows(8).position(|w| w == b"20300102").unwrap();
    c[pos + 4..pos + 8].copy_from_slice(b"0230");
    let e = FutureDatedAlert::decode(&c, 35).unwrap_err();
    assert!(e.to_string().contains("invalid date-time"), "{e}");
    // Not digits.
    let mut c = content.to_vec();
    c[pos + 3] = b'x';
    let e = FutureDatedAlert::decode(&c, 35).unwrap_err();
    assert!(e.to_string().contains("YYYYMMDDHHMMSSZ"), "{e}");
    assert_eq!(e.offset(), 35 + pos - 2);
}

#[test]
fn empty_and_tiny_inputs() {
    for b in [
        &[][..],
        &[0xDD],
        &[0xDF],
        &[0xDF, 0x09],
        &[0x30, 0x00],
        &[0xDD, 0, 0, 0, 0, 0, 0, 0x05],
    ] {
        let e = Message::decode(b).unwrap_err();
        assert!(e.offset() <= b.len(), "{b:02X?}: {e}");
    }
}
