//! Fuzz the GBCS decoders: any input decodes or gives a typed error, never a
//! panic; whatever decodes as a command re-encodes to the same bytes up to
//! the signature (commands are strict DER).
#![no_main]

use ecos_gbcs::{Body, Frame, Message, UpdateSecurityCredentials};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The content decoders on raw bytes too.
    let _ = UpdateSecurityCredentials::decode(data, 0);
    let _ = ecos_gbcs::Cs02bResponse::decode(data, 0);
    let _ = ecos_gbcs::FutureDatedAlert::decode(data, 0);
    let Ok(frame) = Frame::decode(data) else { return };
    let _ = frame.signed_bytes();
    let Ok(msg) = Message::decode(data) else { return };
    if let Body::Command(_) = &msg.body {
        let cmd = msg.command().expect("a command body");
        let apdu = cmd.encode().expect("a decoded command re-encodes");
        let f = &msg.frame;
        let again = apdu.encode_unsigned();
        let original = &data[f.apdu_range().start..f.content_range().end];
        assert_eq!(again, original, "command re-encoding differs");
    }
});
