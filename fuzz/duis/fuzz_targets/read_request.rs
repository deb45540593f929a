//! Fuzz the hardened DUIS reader: any bytes must give Ok or a typed error,
//! and a located error must name a path under /Request.
//!
//! An input whose first byte is `0x01` takes the second mode instead: the
//! rest is read by the flat tokenizer of the verifier's fast path
//! (`ecos_xmldsig::flat`); where it accepts it and there is a `ds:Signature`,
//! the reader over the flat table (`read_signed` with `SignedTree::Flat`, the
//! first `ds:Signature` left out) and over the roxmltree tree
//! (`SignedTree::Roxml`) must both return exactly what `read_request` returns
//! over the canonical signed content (the document less that signature).
#![no_main]

use ecos_duis::{DuisError, Limits, read_request, read_request_header, read_signed};
use ecos_xmldsig::{DS_NS, SignedTree, flat};
use libfuzzer_sys::fuzz_target;

/// The selector of the flat-table mode.
const FLAT_MODE: u8 = 0x01;

fn bytes_mode(data: &[u8]) {
    let limits = Limits::default();
    match read_request(data, &limits) {
        Ok(r) => {
            // a request that reads fully also reads as a header
            let h = read_request_header(data, &limits).expect("header of a readable request");
            assert_eq!(&h, r.header());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            if let DuisError::MissingElement { path, .. }
            | DuisError::UnexpectedElement { path, .. }
            | DuisError::InvalidValue { path, .. } = &e
            {
                assert!(path.starts_with('/'), "{e:?}");
            }
        }
    }
}

fn flat_mode(data: &[u8]) {
    let limits = Limits::default();
    let xl = ecos_xmldsig::Limits::default();
    let Some(f) = flat::Document::parse(data, &xl) else {
        return;
    };
    let Some(sig) = f
        .nodes()
        .find(|n| n.namespace() == Some(DS_NS) && n.local_name() == "Signature")
    else {
        return;
    };
    let signed = f.canonicalize_without(Some(sig.id()));
    let expected = read_request(&signed, &limits);
    let on_flat = read_signed(&signed, Some(SignedTree::Flat(&f, sig.id())), &limits);
    assert_eq!(on_flat, expected, "flat table");
    // The same document through the roxmltree tree (the flat tokenizer
    // accepts no comments, so the tree less the signature shows `signed`).
    if let Ok(tree) = ecos_xmldsig::parse(data, &xl) {
        if let Some(rs) = tree
            .descendants()
            .find(|n| n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == "Signature")
        {
            let on_tree = read_signed(&signed, Some(SignedTree::Roxml(&tree, rs.id())), &limits);
            assert_eq!(on_tree, expected, "roxmltree tree");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&FLAT_MODE, rest)) => flat_mode(rest),
        _ => bytes_mode(data),
    }
});
