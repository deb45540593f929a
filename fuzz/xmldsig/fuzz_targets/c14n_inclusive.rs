//! Canonical XML 1.0: never panics; canonical output re-parses and is a fixed
//! point; the whole document minus any element and any element subtree
//! canonicalise too.
#![no_main]

use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{Limits, parse_prepared, prepare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(text) = prepare(data, &limits) else { return };
    let Ok(doc) = parse_prepared(&text, &limits) else { return };
    for opts in [Options::INCLUSIVE, Options::INCLUSIVE.with_comments()] {
        let out = c14n::document_to_vec(&doc, opts, None);
        let again = parse_prepared(
            std::str::from_utf8(&out).expect("canonical form is UTF-8"),
            &Limits::default().with_max_bytes(usize::MAX),
        )
        .expect("canonical form parses");
        assert_eq!(c14n::document_to_vec(&again, opts, None), out, "fixed point");
    }
    let _ = c14n::document_to_vec(&doc, Options::INCLUSIVE.stripping_whitespace(), None);
    for n in doc.descendants().filter(|n| n.is_element()).take(8) {
        let _ = c14n::document_to_vec(&doc, Options::INCLUSIVE, Some(n.id()));
        let _ = c14n::subtree_to_vec(n, Options::INCLUSIVE);
    }
});
