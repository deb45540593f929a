//! Import-file checking never panics, whatever the bytes; a file that checks as
//! registration data has rows ≥ keys, and MPxN parsing agrees with the check-digit functions.
#![no_main]

use ecos_store::{
    CheckDigitPolicies, CheckDigitPolicy, FileKind, ImportMode, ImportOptions, Mpxn, check_file,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mode = if sel & 1 == 0 { ImportMode::Refresh } else { ImportMode::Update };
    let policy = match (sel >> 1) % 3 {
        0 => CheckDigitPolicy::Off,
        1 => CheckDigitPolicy::Warn,
        _ => CheckDigitPolicy::Reject,
    };
    let mut opts = ImportOptions::new("fuzz", mode);
    opts.check_digits = CheckDigitPolicies::both(policy);
    for kind in [FileKind::Registration, FileKind::Inventory, FileKind::ServiceUsers] {
        if let Ok(c) = check_file(kind, rest, &opts) {
            assert!(c.rows >= c.keys);
            if policy == CheckDigitPolicy::Reject {
                assert_eq!(c.check_digit_warnings, 0);
            }
        }
    }
    let _ = FileKind::detect(rest);
    if let Ok(s) = std::str::from_utf8(rest)
        && let Ok(m) = Mpxn::parse_unchecked(s)
    {
        let strict = Mpxn::parse(s, CheckDigitPolicies::both(CheckDigitPolicy::Reject));
        assert_eq!(strict.is_ok(), m.check_digit_valid());
    }
});
