//! The SMKI certificate parser must never panic, and what it accepts must
//! re-parse to the same certificate; the key-only read
//! (`Certificate::public_key_of`) must never panic and must read the same
//! key from whatever the full parse accepts.
#![no_main]

use ecos_smki::Certificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Certificate::public_key_of(data);
    if let Ok(c) = Certificate::from_pem_or_der(data) {
        assert_eq!(key.as_ref().ok(), Some(c.public_key()), "key-only read agrees");
        let again = Certificate::from_der(c.der()).expect("accepted DER re-parses");
        assert_eq!(again, c);
        assert!(!c.serial().is_empty() && c.serial().len() <= 20);
        assert!(c.not_before() <= c.not_after());
        let _ = (c.subject_rfc2253(), c.issuer_rfc2253(), c.serial_decimal());
        let _ = c.verify_signature(c.public_key());
    }
});
