//! Fuzz the hardened DUIS reader: any bytes must give Ok or a typed error,
//! and a located error must name a path under /Request.
#![no_main]

use ecos_duis::{DuisError, Limits, read_request, read_request_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
