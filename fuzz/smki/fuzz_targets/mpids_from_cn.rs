//! MPID reading must never panic; accepted MPIDs round-trip through their CN.
#![no_main]

use ecos_smki::{MpidRules, Mpids};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(cn) = std::str::from_utf8(rest) else {
        return;
    };
    let rules = MpidRules {
        strict_whitespace: flags & 1 == 0,
        allow_lowercase: flags & 2 != 0,
        require: flags & 4 == 0,
        ..MpidRules::default()
    };
    if let Ok(m) = Mpids::from_cn(Some(cn), &rules)
        && !m.is_empty()
    {
        let again = Mpids::from_cn(Some(&m.to_cn()), &MpidRules::default()).expect("round trip");
        assert_eq!(again, m);
    }
});
