//! The fast path of `verify_then` (flat table of the DUIS subset) against
//! the general roxmltree path, its oracle: whatever the fast path returns,
//! the general path returns identically (same `Verified`, same read value;
//! for a signature that does not verify, the same error, variant and
//! message), and `verify_then` always returns the general path's result.
//! Where the
//! flat tokenizer accepts the input, roxmltree reads the same tree and the
//! two inclusive canonical forms are byte-identical.
//!
//! Each input is also tried with its DigestValue and SignatureValue made
//! right (digest of the general path's canonical form, SignedInfo signed by
//! a key fixed for the run), so that mutants get past the digest and the
//! signature to the reader on both paths. Each input (and its re-signed
//! form) is verified a second time with another key fixed for the run, so
//! that everything the fast path takes becomes a bad-signature document
//! whose error it decides and must give exactly as the general path does.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ecos_smki::{P256PublicKey, Signer, SoftwareSigner};
use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::roxmltree;
use ecos_xmldsig::{
    DS_NS, Limits, SignedContent, VerifyOptions, flat, verify_then, verify_then_fast,
    verify_then_general,
};
use libfuzzer_sys::fuzz_target;

fn new_signer() -> SoftwareSigner {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("key");
    SoftwareSigner::from_bytes(pkcs8.as_ref()).expect("signer")
}

/// The run's signing key.
fn signer() -> &'static SoftwareSigner {
    static S: OnceLock<SoftwareSigner> = OnceLock::new();
    S.get_or_init(new_signer)
}

/// A key that signed nothing: every signature is bad under it.
fn other_key() -> &'static P256PublicKey {
    static K: OnceLock<P256PublicKey> = OnceLock::new();
    K.get_or_init(|| new_signer().public_key().clone())
}

fn read(c: SignedContent<'_, '_>) -> Result<ecos_duis::DuisRequest, String> {
    ecos_duis::read_signed(c.bytes, c.tree, &ecos_duis::Limits::default()).map_err(|e| e.to_string())
}

/// An error as compared: variant (with its fields) and message.
fn err(e: ecos_xmldsig::DsigError) -> String {
    format!("{e:?}: {e}")
}

fn same(doc: &[u8], key: &P256PublicKey, opts: &VerifyOptions) {
    let general = verify_then_general(doc, opts, |_, _| Some(key.clone()), read).map_err(err);
    let combined = verify_then(doc, opts, |_, _| Some(key.clone()), read).map_err(err);
    assert_eq!(combined, general);
    if let Some(fast) = verify_then_fast(doc, opts, |_, _| Some(key.clone()), read) {
        assert_eq!(fast.map_err(err), general);
    }
}

fn is_ds(n: &roxmltree::Node<'_, '_>, local: &str) -> bool {
    n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == local
}

fn flat_vs_roxmltree(doc: &[u8]) {
    let limits = Limits::default();
    let Some(f) = flat::Document::parse(doc, &limits) else {
        return;
    };
    let r = ecos_xmldsig::parse(doc, &limits).expect("flat accepts: roxmltree must too");
    let rox: Vec<_> = r.root_element().descendants().collect();
    let fl: Vec<_> = f.nodes().collect();
    assert_eq!(rox.len(), fl.len());
    for (a, b) in rox.iter().zip(&fl) {
        assert_eq!(a.is_element(), b.is_element());
        if a.is_element() {
            assert_eq!(a.tag_name().namespace(), b.namespace());
            assert_eq!(a.tag_name().name(), b.local_name());
            let mut x: Vec<_> = a.attributes().map(|t| (t.namespace(), t.name(), t.value())).collect();
            let mut y: Vec<_> = b.attributes().map(|t| (t.namespace, t.local, t.value)).collect();
            x.sort();
            y.sort();
            assert_eq!(x, y);
        } else {
            assert_eq!(a.text(), b.text());
        }
    }
    assert_eq!(
        f.canonicalize_without(None),
        c14n::document_to_vec(&r, Options::INCLUSIVE, None)
    );
    let fs = f.nodes().find(|n| n.namespace() == Some(DS_NS) && n.local_name() == "Signature");
    let rs = r.descendants().find(|n| is_ds(n, "Signature"));
    if let (Some(fs), Some(rs)) = (fs, rs) {
        assert_eq!(
            f.canonicalize_without(Some(fs.id())),
            c14n::document_to_vec(&r, Options::INCLUSIVE, Some(rs.id()))
        );
    }
}

/// Replace the text of the first `ds:{local}` with `value`.
fn splice(doc: &[u8], local: &str, value: &str) -> Option<Vec<u8>> {
    let tree = ecos_xmldsig::parse(doc, &Limits::default()).ok()?;
    let el = tree.descendants().find(|n| is_ds(n, local))?;
    let text = el.first_child().filter(|c| c.is_text())?;
    let range = text.range();
    // parse() skips a BOM: ranges are into the text after it.
    let offset = if doc.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let mut out = doc.to_vec();
    out.splice(range.start + offset..range.end + offset, value.bytes());
    Some(out)
}

/// The input with a DigestValue of its own canonical form and SignedInfo
/// signed by the run's key.
fn re_sign(doc: &[u8]) -> Option<Vec<u8>> {
    let tree = ecos_xmldsig::parse(doc, &Limits::default()).ok()?;
    let sig = tree.descendants().find(|n| is_ds(n, "Signature"))?;
    let canon = c14n::document_to_vec(&tree, Options::INCLUSIVE, Some(sig.id()));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canon);
    let doc = splice(doc, "DigestValue", &STANDARD.encode(digest.as_ref()))?;
    let tree = ecos_xmldsig::parse(&doc, &Limits::default()).ok()?;
    let si = tree.descendants().find(|n| is_ds(n, "SignedInfo"))?;
    let value = signer().sign(&c14n::subtree_to_vec(si, Options::EXCLUSIVE)).ok()?;
    splice(&doc, "SignatureValue", &STANDARD.encode(value))
}

fuzz_target!(|data: &[u8]| {
    let key = signer().public_key().clone();
    let opts = VerifyOptions::default();
    flat_vs_roxmltree(data);
    same(data, &key, &opts);
    same(data, other_key(), &opts);
    if let Some(fixed) = re_sign(data) {
        flat_vs_roxmltree(&fixed);
        same(&fixed, &key, &opts);
        same(&fixed, &key, &VerifyOptions::default().with_whitespace_compat(true));
        same(&fixed, other_key(), &opts);
    }
});
