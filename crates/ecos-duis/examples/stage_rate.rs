//! One stage of the 6.23 receipt path (see `peer_rate.rs`), run alone for a
//! given number of iterations: for `perf stat -e task-clock` (CPU time, not
//! wall time, on a loaded machine) and `perf record`, one stage at a time.
//!
//! usage: `stage_rate SIGNED.xml CERT.pem STAGE ITERATIONS`, where STAGE is
//! one of `bare` (aws-lc-rs verify of the SignedInfo), `read-verify` (the
//! whole receipt path), `roxmltree` (the bare parse), `parse` (the hardened
//! parse), `c14n` (inclusive C14N of the document minus its signature),
//! `sha256` (of those bytes), `exc-c14n` (exclusive C14N of SignedInfo),
//! `read` (the 6.23 read from the verifier's tree); on the fast path
//! (`ecos_xmldsig::flat`): `flat` (the tokenizer alone), `flat-c14n`
//! (inclusive C14N over the table), `fast-verify` (the fast path's verify
//! without the read), `flat-read` (the 6.23 read from the flat table);
//! `verify_then` without the read: `verify` (the document as given) and
//! `bad-verify` (the same document with one base64 character of its
//! SignatureValue's r changed: in the profile, digest right, signer
//! known, the signature does not verify).
//! Prints the wall time per iteration; divide perf's task-clock by
//! ITERATIONS for the CPU time.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use ecos_duis::{Limits, read_signed};
use ecos_smki::Certificate;
use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::roxmltree::{Document, Node, ParsingOptions};
use ecos_xmldsig::{DS_NS, VerifyOptions, verify_then};

/// The first `ds:` element named `local`.
fn ds<'a, 'i>(tree: &'a Document<'i>, local: &str) -> Result<Node<'a, 'i>, String> {
    tree.descendants()
        .find(|n| n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == local)
        .ok_or_else(|| format!("no ds:{local}"))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [doc_path, cert_path, stage, iters] = args.as_slice() else {
        return Err("usage: stage_rate SIGNED.xml CERT.pem STAGE ITERATIONS".into());
    };
    let iters: u64 = iters
        .parse()
        .map_err(|_| format!("ITERATIONS must be a number, got {iters:?}"))?;
    let doc = std::fs::read(doc_path).map_err(|e| format!("{doc_path}: {e}"))?;
    let text = std::str::from_utf8(&doc).map_err(|e| format!("{doc_path}: {e}"))?;
    let cert = Certificate::load(cert_path).map_err(|e| format!("{cert_path}: {e}"))?;
    let serial = cert.serial_decimal();
    let opts = VerifyOptions::default();
    let limits = Limits::default();
    let tree = ecos_xmldsig::parse(&doc, &ecos_xmldsig::Limits::default())
        .map_err(|e| format!("parse: {e}"))?;
    let si = ds(&tree, "SignedInfo")?;
    let sig = ds(&tree, "Signature")?;
    let sv: String = ds(&tree, "SignatureValue")?
        .text()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let sv = base64::engine::general_purpose::STANDARD
        .decode(sv)
        .map_err(|e| format!("SignatureValue: {e}"))?;
    let si_bytes = c14n::subtree_to_vec(si, Options::EXCLUSIVE);
    let canon = c14n::document_to_vec(&tree, Options::INCLUSIVE, Some(sig.id()));
    let pk = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        cert.public_key().as_bytes().to_vec(),
    );

    let flat = ecos_xmldsig::flat::Document::parse(&doc, &ecos_xmldsig::Limits::default())
        .ok_or("not in the DUIS subset of the fast path")?;
    let flat_sig = flat
        .nodes()
        .find(|n| n.namespace() == Some(DS_NS) && n.local_name() == "Signature")
        .ok_or("no ds:Signature in the flat table")?
        .id();
    // The same document with a SignatureValue that does not verify: one
    // base64 character of r changed (the value stays 64 bytes, in range).
    let bad = {
        let at = text
            .find("<ds:SignatureValue>")
            .ok_or("no <ds:SignatureValue>")?
            + "<ds:SignatureValue>".len()
            + 20;
        let mut bad = doc.clone();
        let c = bad.get_mut(at).ok_or("SignatureValue too short")?;
        *c = if *c == b'A' { b'B' } else { b'A' };
        bad
    };
    let verify_only = |d: &[u8]| {
        verify_then(
            d,
            &opts,
            |_, s| (s == serial).then(|| cert.public_key().clone()),
            |_| (),
        )
    };
    verify_only(&doc).map_err(|e| format!("verify: {e}"))?;
    match verify_only(&bad) {
        Err(ecos_xmldsig::DsigError::BadSignature) => {}
        Err(e) => return Err(format!("bad-verify: expected BadSignature, got {e}")),
        Ok(_) => return Err("bad-verify: the changed document verifies".into()),
    }
    let read_verify = || {
        verify_then(
            &doc,
            &opts,
            |_, s| (s == serial).then(|| cert.public_key().clone()),
            |c| read_signed(c.bytes, c.tree, &limits),
        )
        .map_err(|e| e.to_string())
        .and_then(|(_, r)| r.map_err(|e| e.to_string()))
    };
    read_verify()?;
    pk.verify(&si_bytes, &sv)
        .map_err(|_| "bare verify of SignedInfo failed".to_string())?;

    let mut f: Box<dyn FnMut()> = match stage.as_str() {
        "bare" => Box::new(|| {
            black_box(pk.verify(black_box(&si_bytes), black_box(&sv)).is_ok());
        }),
        "verify" => Box::new(|| {
            black_box(verify_only(black_box(&doc)).is_ok());
        }),
        "bad-verify" => Box::new(|| {
            black_box(verify_only(black_box(&bad)).is_err());
        }),
        "read-verify" => Box::new(|| {
            black_box(read_verify().is_ok());
        }),
        "roxmltree" => Box::new(|| {
            let o = ParsingOptions {
                allow_dtd: false,
                nodes_limit: 20_000,
                ..ParsingOptions::default()
            };
            black_box(Document::parse_with_options(black_box(text), o).is_ok());
        }),
        "parse" => Box::new(|| {
            black_box(
                ecos_xmldsig::parse(black_box(&doc), &ecos_xmldsig::Limits::default()).is_ok(),
            );
        }),
        "c14n" => Box::new(|| {
            black_box(c14n::document_to_vec(
                black_box(&tree),
                Options::INCLUSIVE,
                Some(sig.id()),
            ));
        }),
        "sha256" => Box::new(|| {
            black_box(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                black_box(&canon),
            ));
        }),
        "exc-c14n" => Box::new(|| {
            black_box(c14n::subtree_to_vec(black_box(si), Options::EXCLUSIVE));
        }),
        "read" => Box::new(|| {
            black_box(
                read_signed(
                    black_box(&canon),
                    Some(ecos_xmldsig::SignedTree::Roxml(&tree, sig.id())),
                    &limits,
                )
                .is_ok(),
            );
        }),
        "flat" => Box::new(|| {
            black_box(
                ecos_xmldsig::flat::Document::parse(
                    black_box(&doc),
                    &ecos_xmldsig::Limits::default(),
                )
                .is_some(),
            );
        }),
        "flat-c14n" => Box::new(|| {
            black_box(flat.canonicalize_without(Some(flat_sig)));
        }),
        "fast-verify" => Box::new(|| {
            black_box(
                ecos_xmldsig::verify_then_fast(
                    black_box(&doc),
                    &opts,
                    |_, s| (s == serial).then(|| cert.public_key().clone()),
                    |_| (),
                )
                .is_some(),
            );
        }),
        "flat-read" => Box::new(|| {
            black_box(
                read_signed(
                    black_box(&canon),
                    Some(ecos_xmldsig::SignedTree::Flat(&flat, flat_sig)),
                    &limits,
                )
                .is_ok(),
            );
        }),
        other => return Err(format!("unknown stage {other:?}")),
    };
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let per = start.elapsed().as_secs_f64() / iters.max(1) as f64;
    println!(
        "{stage} iterations={iters} us_per_iteration={:.3}",
        per * 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stage_rate: {e}");
            ExitCode::FAILURE
        }
    }
}
