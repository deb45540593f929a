//! Whole-process timer for `scripts/bench-peers`: the rate at which ecos
//! reads and verifies one signed DUIS 6.23 document, and the rate of a bare
//! aws-lc-rs ECDSA P-256 verify of the same document's SignedInfo (the
//! physical floor), measured in alternating slices in one process so that
//! both see the same machine load.
//!
//! "Read + verify" is what the pipeline does on receipt
//! (`ecos-party/src/check.rs`, step 1): the signature verified under the
//! pinned profile with the signer resolved by issuer and serial, then the
//! 6.23 read from the signed content only (from the verifier's tree when it
//! is faithful to the signed bytes; certificates parsed once per distinct
//! text). The header is read leniently only for a refusal, so not here.
//!
//! usage: `peer_rate SIGNED.xml CERT.pem SECONDS`; prints
//! `bare per_second=..` and `ecos per_second=..` lines in the format of the
//! peer timers in `../shared/tools/`.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use ecos_duis::{DuisRequest, Limits, read_signed};
use ecos_smki::{Certificate, P256PublicKey};
use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{DS_NS, VerifyOptions, verify_then};

/// One pass of the receipt path: header, signature, 6.23 from the signed bytes.
fn read_and_verify(
    doc: &[u8],
    opts: &VerifyOptions,
    cert: &Certificate,
    serial: &str,
) -> Result<DuisRequest, String> {
    let limits = Limits::default();
    let (_, read) = verify_then(
        doc,
        opts,
        |_issuer, s| (s == serial).then(|| cert.public_key().clone()),
        |content| read_signed(content.bytes, content.tree, &limits),
    )
    .map_err(|e| format!("verify: {e}"))?;
    read.map_err(|e| format!("read: {e}"))
}

/// The exclusive-C14N SignedInfo octets and the raw r‖s signature value.
fn signed_info_and_value(doc: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let tree = ecos_xmldsig::parse(doc, &ecos_xmldsig::Limits::default())
        .map_err(|e| format!("parse: {e}"))?;
    let si = tree
        .descendants()
        .find(|n| n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == "SignedInfo")
        .ok_or("no ds:SignedInfo")?;
    let sv: String = tree
        .descendants()
        .find(|n| {
            n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == "SignatureValue"
        })
        .and_then(|n| n.text())
        .ok_or("no ds:SignatureValue")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let sv = base64::engine::general_purpose::STANDARD
        .decode(sv)
        .map_err(|e| format!("SignatureValue: {e}"))?;
    Ok((c14n::subtree_to_vec(si, Options::EXCLUSIVE), sv))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [doc_path, cert_path, secs] = args.as_slice() else {
        return Err("usage: peer_rate SIGNED.xml CERT.pem SECONDS".into());
    };
    let secs: f64 = secs
        .parse()
        .map_err(|_| format!("SECONDS must be a number, got {secs:?}"))?;
    let doc = std::fs::read(doc_path).map_err(|e| format!("{doc_path}: {e}"))?;
    let cert = Certificate::load(cert_path).map_err(|e| format!("{cert_path}: {e}"))?;
    let serial = cert.serial_decimal();
    let opts = VerifyOptions::default();

    // Both paths must succeed before anything is timed.
    match read_and_verify(&doc, &opts, &cert, &serial)? {
        DuisRequest::UpdateSecurityCredentialsCoS(_) => {}
        other => {
            return Err(format!(
                "{doc_path} is service reference {}, not 6.23",
                other.header().service_reference
            ));
        }
    }
    let (si, sv) = signed_info_and_value(&doc)?;
    let key: &P256PublicKey = cert.public_key();
    let pk = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.as_bytes().to_vec());
    pk.verify(&si, &sv)
        .map_err(|_| "bare verify of SignedInfo failed".to_string())?;

    let mut bare = || {
        pk.verify(black_box(&si), black_box(&sv))
            .expect("verified above");
    };
    let mut ecos = || {
        black_box(read_and_verify(black_box(&doc), &opts, &cert, &serial).expect("verified above"));
    };

    // Warm up both, then alternate slices so that both see the same load.
    let slice = |f: &mut dyn FnMut(), d: Duration| -> (u64, Duration) {
        let (mut n, start) = (0u64, Instant::now());
        while start.elapsed() < d {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        (n, start.elapsed())
    };
    slice(&mut bare, Duration::from_millis(500));
    slice(&mut ecos, Duration::from_millis(500));
    let slices = 20u32;
    let each = Duration::from_secs_f64(secs.max(0.1) / f64::from(2 * slices));
    let (mut nb, mut tb, mut ne, mut te) = (0u64, Duration::ZERO, 0u64, Duration::ZERO);
    for _ in 0..slices {
        let (n, t) = slice(&mut bare, each);
        nb += n;
        tb += t;
        let (n, t) = slice(&mut ecos, each);
        ne += n;
        te += t;
    }
    println!(
        "bare verifications={nb} seconds={:.2} per_second={:.1}",
        tb.as_secs_f64(),
        nb as f64 / tb.as_secs_f64()
    );
    println!(
        "ecos verifications={ne} seconds={:.2} per_second={:.1}",
        te.as_secs_f64(),
        ne as f64 / te.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_rate: {e}");
            ExitCode::FAILURE
        }
    }
}
