//! Shared test helpers: fixture location.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `$ECOS_FIXTURES` or `../../../shared/fixtures` from the crate; `None` (with a
/// printed note) when absent.
pub fn fixtures() -> Option<PathBuf> {
    let p = match std::env::var_os("ECOS_FIXTURES") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    if p.join("duis").is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: DUIS fixtures not found at {} (set ECOS_FIXTURES)",
            p.display()
        );
        None
    }
}

/// Read a fixture file, or `None` when the fixtures are absent.
pub fn fixture(rel: &str) -> Option<Vec<u8>> {
    let p = fixtures()?.join(rel);
    Some(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// The IMMEDIATE 6.23 template as a string.
pub fn immediate_template() -> Option<String> {
    fixture("duis-signed/template_6.23_IMMEDIATE.xml")
        .map(|b| String::from_utf8(b).expect("template is UTF-8"))
}
