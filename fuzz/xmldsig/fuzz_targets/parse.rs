//! The hardened parse entry point: any bytes give a tree or a typed error.
#![no_main]

use ecos_xmldsig::{Limits, parse, parse_prepared, prepare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = parse(data, &limits);
    if let Ok(text) = prepare(data, &limits) {
        if let Ok(doc) = parse_prepared(&text, &limits) {
            // Every element has a path and a position.
            for n in doc.descendants().filter(|n| n.is_element()) {
                let _ = ecos_xmldsig::element_path(n);
                let _ = ecos_xmldsig::node_position(n);
            }
        }
    }
});
