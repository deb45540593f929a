//! Exclusive C14N 1.0: never panics; canonical output re-parses and is a
//! fixed point, for the document and for every element subtree.
#![no_main]

use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{Limits, parse_prepared, prepare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(text) = prepare(data, &limits) else { return };
    let Ok(doc) = parse_prepared(&text, &limits) else { return };
    let big = Limits::default().with_max_bytes(usize::MAX);
    for opts in [Options::EXCLUSIVE, Options::EXCLUSIVE.with_comments()] {
        let out = c14n::document_to_vec(&doc, opts, None);
        let again = parse_prepared(std::str::from_utf8(&out).expect("UTF-8"), &big)
            .expect("canonical form parses");
        assert_eq!(c14n::document_to_vec(&again, opts, None), out, "fixed point");
    }
    for n in doc.descendants().filter(|n| n.is_element()).take(8) {
        let out = c14n::subtree_to_vec(n, Options::EXCLUSIVE);
        let again = parse_prepared(std::str::from_utf8(&out).expect("UTF-8"), &big)
            .expect("canonical subtree parses");
        assert_eq!(
            c14n::subtree_to_vec(again.root_element(), Options::EXCLUSIVE),
            out,
            "subtree fixed point"
        );
    }
});
