//! The fast path of [`verify_then`](crate::verify_then): the signature
//! located, profile-checked, digested and its SignedInfo canonicalised over
//! a [`flat::Document`] instead of a roxmltree tree.
//!
//! [`prepare`] never decides against a document: it answers `None` on any
//! doubt (outside the subset, not exactly one `ds:Signature` as the last
//! child of the root, any deviation from the profile, a SignedInfo not in
//! the compact `ds:`-prefixed form, a digest mismatch), and `verify_then`
//! then runs the roxmltree path, which gives the precise error or result.
//! What it prepares, the roxmltree path would take to the ECDSA verify with
//! the same signer and the same SignedInfo octets, so the verify alone
//! decides there: what the fast path then returns (the result, or
//! `BadSignature`) the roxmltree path returns identically (held by
//! `tests/fast_path.rs` and the `fast_vs_slow` fuzz target).

use crate::dsig::{
    ALG_ECDSA_SHA256, ALG_ENVELOPED, ALG_EXC_C14N, ALG_SHA256, DS_NS, b64, scalar_in_range, sha256,
    signed_info_c14n,
};
use crate::flat::{self, Node};
use crate::parse::Limits;

/// A document whose signature is ready to verify on the fast path.
#[derive(Debug)]
pub(crate) struct Fast<'i> {
    /// The flat table.
    pub doc: flat::Document<'i>,
    /// The `ds:Signature` element.
    pub signature: flat::NodeId,
    /// The inclusive C14N of the document minus the signature (digest checked).
    pub signed_xml: Vec<u8>,
    /// The exclusive C14N of SignedInfo.
    pub signed_info: String,
    /// Raw r‖s.
    pub signature_value: [u8; 64],
    /// `X509IssuerName`, trimmed.
    pub issuer: String,
    /// `X509SerialNumber`, trimmed.
    pub serial: String,
}

fn is_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn is_ds(n: Node<'_, '_>, local: &str) -> bool {
    n.is_named(DS_NS, local)
}

/// The element children of a profiled container when they are exactly the
/// ds elements `names` (whitespace text between them, attributes only
/// unprefixed ones in `allowed`); `None` otherwise.
fn exactly<'a, 'i, const N: usize>(
    n: Node<'a, 'i>,
    allowed: &[&str],
    names: [&str; N],
) -> Option<[Node<'a, 'i>; N]> {
    if n.attributes()
        .any(|a| a.namespace.is_some() || !allowed.contains(&a.local))
    {
        return None;
    }
    let mut out = [n; N];
    let mut k = 0;
    for c in n.children() {
        if c.is_element() {
            if k == N || !is_ds(c, names[k]) {
                return None;
            }
            out[k] = c;
            k += 1;
        } else if !is_ws(c.text()?) {
            return None;
        }
    }
    (k == N).then_some(out)
}

/// An `Algorithm`-only element with no element content and this algorithm.
fn algorithm(n: Node<'_, '_>, expected: &str) -> Option<()> {
    exactly(n, &["Algorithm"], [])?;
    (n.attribute("Algorithm") == Some(expected)).then_some(())
}

/// The text of a leaf element: no attributes, text children only.
fn leaf_text<'a>(n: Node<'a, '_>) -> Option<&'a str> {
    if n.attributes().len() != 0 {
        return None;
    }
    let mut text = "";
    for c in n.children() {
        if c.is_element() || !text.is_empty() {
            return None;
        }
        text = c.text()?;
    }
    Some(text)
}

/// The base64 `text` when it decodes to exactly `N` bytes (what
/// [`b64`] then `try_into` gives), without the intermediate vector.
fn b64_array<const N: usize>(text: &str, element: &'static str) -> Option<[u8; N]> {
    use base64::Engine as _;
    if text
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return b64(text, element).ok()?.try_into().ok();
    }
    // Room for N and a little more: a longer value fails to decode here
    // as it fails the length check after `b64`.
    let mut buf = [0u8; 72];
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(text, buf.get_mut(..N + 3)?)
        .ok()?;
    buf.get(..len)?.try_into().ok()
}

/// Tokenize, locate and profile-check the signature, canonicalise and
/// check the digest; `None` on any doubt.
pub(crate) fn prepare<'i>(bytes: &'i [u8], limits: &Limits) -> Option<Fast<'i>> {
    let doc = flat::Document::parse(bytes, limits)?;
    let root = doc.root_element();
    let mut found = None;
    for n in doc.nodes() {
        if is_ds(n, "Signature") {
            if found.is_some() {
                return None;
            }
            found = Some(n);
        }
    }
    let sig = found?;
    if sig.parent() != Some(root) {
        return None;
    }
    let mut after = sig.next_sibling();
    while let Some(a) = after {
        if !is_ws(a.text()?) {
            return None;
        }
        after = a.next_sibling();
    }

    let [signed_info, sig_value, key_info] =
        exactly(sig, &[], ["SignedInfo", "SignatureValue", "KeyInfo"])?;
    let [c14n_method, sig_method, reference] = exactly(
        signed_info,
        &[],
        ["CanonicalizationMethod", "SignatureMethod", "Reference"],
    )?;
    algorithm(c14n_method, ALG_EXC_C14N)?;
    algorithm(sig_method, ALG_ECDSA_SHA256)?;
    if reference.attribute("URI") != Some("") {
        return None;
    }
    let [transforms, digest_method, digest_value] = exactly(
        reference,
        &["URI"],
        ["Transforms", "DigestMethod", "DigestValue"],
    )?;
    let [transform] = exactly(transforms, &[], ["Transform"])?;
    algorithm(transform, ALG_ENVELOPED)?;
    algorithm(digest_method, ALG_SHA256)?;
    let dv_text = leaf_text(digest_value)?;
    let digest: [u8; 32] = b64_array(dv_text, "DigestValue")?;
    let signature_value: [u8; 64] = b64_array(leaf_text(sig_value)?, "SignatureValue")?;
    if !scalar_in_range(&signature_value[..32]) || !scalar_in_range(&signature_value[32..]) {
        return None;
    }

    let [x509data] = exactly(key_info, &[], ["X509Data"])?;
    let [issuer_serial] = exactly(x509data, &[], ["X509IssuerSerial"])?;
    let [issuer, serial] = exactly(issuer_serial, &[], ["X509IssuerName", "X509SerialNumber"])?;
    let issuer = leaf_text(issuer)?.trim();
    let serial = leaf_text(serial)?.trim();
    if issuer.is_empty()
        || serial.is_empty()
        || !serial.bytes().all(|b| b.is_ascii_digit())
        || serial.starts_with('0')
        || serial.len() > 49
    {
        return None;
    }

    // SignedInfo in the compact form whose exclusive C14N is the profile's
    // template: every element `ds:`-prefixed, no text but the DigestValue,
    // which is base64 as written (nothing to escape, no reference).
    let compact = signed_info_subtree(signed_info).all(|n| {
        if n.is_element() {
            n.prefix() == "ds"
        } else {
            n.parent() == Some(digest_value)
                && n.text_is_raw()
                && n.text().is_some_and(|t| {
                    t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                })
        }
    });
    if !compact {
        return None;
    }
    let signed_info = signed_info_c14n(dv_text);

    let mut signed_xml = Vec::with_capacity(bytes.len());
    inclusive_c14n(&doc, Some(sig.id()), &mut signed_xml);
    if sha256(&signed_xml) != digest {
        return None;
    }
    let (issuer, serial) = (issuer.to_string(), serial.to_string());
    let signature = sig.id();
    Some(Fast {
        doc,
        signature,
        signed_xml,
        signed_info,
        signature_value,
        issuer,
        serial,
    })
}

/// An attribute value (or namespace URI) of the subset, escaped as C14N
/// does: the subset has no `&`, `<`, TAB, LF or CR in a value, so only a
/// `"` (in a value written between `'`) can need escaping.
fn attr_value(v: &str, out: &mut Vec<u8>) {
    if memchr::memchr(b'"', v.as_bytes()).is_none() {
        out.extend_from_slice(v.as_bytes());
    } else {
        crate::c14n::escape_attr(v, out);
    }
}

/// `apex` and its descendants, in document order.
fn signed_info_subtree<'a, 'i>(apex: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    let mut stack = vec![apex];
    std::iter::from_fn(move || {
        let n = stack.pop()?;
        let mark = stack.len();
        stack.extend(n.children());
        stack[mark..].reverse();
        Some(n)
    })
}

/// Canonical XML 1.0 (without comments) of the whole document less the
/// subtree of `exclude`: byte for byte what
/// `c14n::document_to_vec(tree, Options::INCLUSIVE, Some(exclude))` gives
/// over the roxmltree tree of the same input. In the subset there is
/// nothing outside the root element but the declaration and whitespace
/// (both dropped), attribute values hold no reference, TAB or LF, and a
/// namespace declaration is rendered where it changes the binding in force
/// at the parent (the whole document is in the node set, so the output
/// ancestors are the ancestors).
pub(crate) fn inclusive_c14n(
    doc: &flat::Document<'_>,
    exclude: Option<flat::NodeId>,
    out: &mut Vec<u8>,
) {
    let root = doc.root_element();
    // In-scope bindings (prefix "" = default), innermost last, and the
    // scope length to restore at each open element's end tag.
    let mut scope: Vec<(&str, &str)> = Vec::with_capacity(8);
    let mut marks: Vec<usize> = Vec::with_capacity(16);
    let mut decls: Vec<(&str, &str)> = Vec::new();
    let mut attrs: Vec<flat::Attribute<'_>> = Vec::new();
    let close = |n: Node<'_, '_>, out: &mut Vec<u8>| {
        out.extend_from_slice(b"</");
        out.extend_from_slice(n.qname().as_bytes());
        out.push(b'>');
    };
    let mut cur = Some(root);
    while let Some(n) = cur {
        let mut descend = false;
        if Some(n.id()) != exclude {
            if let Some(t) = n.text() {
                if n.text_is_verbatim() {
                    out.extend_from_slice(t.as_bytes());
                } else {
                    crate::c14n::escape_text(t, out);
                }
            } else {
                out.push(b'<');
                out.extend_from_slice(n.qname().as_bytes());
                marks.push(scope.len());
                if n.declarations().len() != 0 {
                    decls.clear();
                    for (p, u) in n.declarations() {
                        let parent = scope
                            .iter()
                            .rev()
                            .find(|(q, _)| *q == p)
                            .map(|(_, v)| *v)
                            .or(p.is_empty().then_some(""));
                        if parent != Some(u) {
                            decls.push((p, u));
                        }
                    }
                    decls.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    scope.extend(n.declarations());
                    for (p, u) in &decls {
                        if p.is_empty() {
                            out.extend_from_slice(b" xmlns=\"");
                        } else {
                            out.extend_from_slice(b" xmlns:");
                            out.extend_from_slice(p.as_bytes());
                            out.extend_from_slice(b"=\"");
                        }
                        attr_value(u, out);
                        out.push(b'"');
                    }
                }
                let mut write = |a: &flat::Attribute<'_>| {
                    out.push(b' ');
                    out.extend_from_slice(a.qname.as_bytes());
                    out.extend_from_slice(b"=\"");
                    attr_value(a.value, out);
                    out.push(b'"');
                };
                let these = n.attributes();
                match these.len() {
                    0 => {}
                    1 => these.for_each(|a| write(&a)),
                    _ => {
                        attrs.clear();
                        attrs.extend(these);
                        attrs.sort_unstable_by(|a, b| {
                            (a.namespace.unwrap_or(""), a.local)
                                .cmp(&(b.namespace.unwrap_or(""), b.local))
                        });
                        attrs.iter().for_each(write);
                    }
                }
                out.push(b'>');
                match n.children().next() {
                    Some(c) => {
                        cur = Some(c);
                        descend = true;
                    }
                    None => {
                        close(n, out);
                        if let Some(m) = marks.pop() {
                            scope.truncate(m);
                        }
                    }
                }
            }
        }
        if descend {
            continue;
        }
        // Next in document order: the next sibling, closing the elements
        // left on the way up.
        let mut m = n;
        cur = loop {
            if m == root {
                break None;
            }
            if let Some(s) = m.next_sibling() {
                break Some(s);
            }
            let Some(p) = m.parent() else {
                break None;
            };
            close(p, out);
            if let Some(k) = marks.pop() {
                scope.truncate(k);
            }
            m = p;
        };
    }
}
