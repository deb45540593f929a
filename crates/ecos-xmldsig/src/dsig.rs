//! XML-DSig pinned to the DUIS profile (`duis-6.23.md` §6): enveloped
//! signature, last child of the root; SignedInfo canonicalised with exclusive
//! C14N 1.0; ECDSA P-256/SHA-256 with a raw 64-byte r‖s value; one Reference
//! `URI=""` with only the enveloped-signature transform, so the reference is
//! canonicalised with inclusive C14N 1.0; SHA-256 digest; KeyInfo exactly one
//! `X509IssuerSerial`.
//!
//! Anything else is rejected with its own [`DsigError`] variant. The content a
//! caller must process is [`Verified::signed_xml`]: the canonical bytes that
//! were digested, so what is processed is by construction what was signed.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ecos_smki::{KeyError, P256PublicKey, Signer};
use roxmltree::{Document, Node};

use crate::c14n::{self, Options};
use crate::parse::{self, Limits, ParseError, Position, element_path, node_position};

/// The XML-DSig namespace.
pub const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Exclusive C14N 1.0 without comments: the only SignedInfo canonicalisation accepted.
pub const ALG_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// ECDSA with SHA-256 (RFC 4051): the only signature method accepted.
pub const ALG_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
/// The enveloped-signature transform: the only transform accepted.
pub const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// SHA-256: the only digest method accepted.
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// The order of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// Which `Algorithm` attribute of SignedInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlgorithmSlot {
    /// `ds:CanonicalizationMethod`.
    Canonicalization,
    /// `ds:SignatureMethod`.
    Signature,
    /// `ds:DigestMethod`.
    Digest,
}

impl std::fmt::Display for AlgorithmSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlgorithmSlot::Canonicalization => "CanonicalizationMethod",
            AlgorithmSlot::Signature => "SignatureMethod",
            AlgorithmSlot::Digest => "DigestMethod",
        })
    }
}

/// Why a signature was not accepted, or could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsigError {
    /// The document was refused by the hardened parser.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// There is no `ds:Signature` element.
    #[error("the document has no ds:Signature")]
    MissingSignature,
    /// More than one `ds:Signature` element, anywhere in the document.
    #[error(
        "the document has {count} ds:Signature elements (at {paths:?}); exactly one is accepted"
    )]
    MultipleSignatures {
        /// How many.
        count: usize,
        /// Where they are.
        paths: Vec<String>,
    },
    /// The `ds:Signature` is not a child of the root element.
    #[error("ds:Signature at {path} ({at}) is not a child of the root element")]
    SignatureNotInRoot {
        /// Where it is.
        path: String,
        /// Where it starts.
        at: Position,
    },
    /// Something other than whitespace follows the `ds:Signature` in the root.
    #[error("ds:Signature is not the last child of the root: {found} follows it at {at}")]
    SignatureNotLast {
        /// What follows.
        found: String,
        /// Where.
        at: Position,
    },
    /// An element, attribute, text, comment or PI inside the signature that the profile does not have.
    #[error("{found} at {path} ({at}) is not in the DUIS signature profile")]
    UnexpectedInSignature {
        /// What was found.
        found: String,
        /// Path of the element containing it (or of it).
        path: String,
        /// Where.
        at: Position,
    },
    /// A required part of the signature is missing.
    #[error("{missing} is missing in {path}")]
    MissingInSignature {
        /// What.
        missing: &'static str,
        /// Path of the parent element.
        path: String,
    },
    /// An `Algorithm` other than the profile's.
    #[error("{slot} algorithm {found:?} is not in the DUIS profile (expected {expected:?})")]
    AlgorithmNotInProfile {
        /// Which algorithm.
        slot: AlgorithmSlot,
        /// The URI found.
        found: String,
        /// The URI required.
        expected: &'static str,
    },
    /// `ds:CanonicalizationMethod` carries an `InclusiveNamespaces` prefix list (or any child).
    #[error(
        "ds:CanonicalizationMethod has child content ({found}); the profile has no InclusiveNamespaces"
    )]
    InclusiveNamespaces {
        /// What was found.
        found: String,
    },
    /// Not exactly one `ds:Reference`.
    #[error("SignedInfo has {count} ds:Reference elements; the profile has exactly one")]
    ReferenceCount {
        /// How many.
        count: usize,
    },
    /// A Reference `URI` other than `""` (an `Id` or XPointer reference), or none.
    #[error("Reference URI {found:?} is not in the DUIS profile (only URI=\"\")")]
    ReferenceUriNotInProfile {
        /// The URI found (`None`: the attribute is absent).
        found: Option<String>,
    },
    /// Transforms other than exactly one enveloped-signature transform.
    #[error(
        "Reference transforms {found:?} are not in the DUIS profile (exactly one enveloped-signature)"
    )]
    TransformsNotInProfile {
        /// The transform algorithms found, in order.
        found: Vec<String>,
    },
    /// A base64 value that does not decode.
    #[error("{element} is not valid base64")]
    Base64 {
        /// Which element.
        element: &'static str,
    },
    /// A DigestValue that is not 32 bytes.
    #[error("DigestValue is {len} bytes; SHA-256 is 32")]
    DigestValueLength {
        /// Decoded length.
        len: usize,
    },
    /// A SignatureValue that is not 64 bytes of raw r‖s (a DER-encoded value is one case).
    #[error("SignatureValue is {len} bytes{}; the profile requires raw r||s of exactly 64", if *.looks_like_der { " (a DER-encoded ECDSA-Sig-Value)" } else { "" })]
    SignatureValueLength {
        /// Decoded length.
        len: usize,
        /// The value parses as a DER `SEQUENCE { INTEGER, INTEGER }`.
        looks_like_der: bool,
    },
    /// r or s is 0 or not below the group order.
    #[error("SignatureValue r or s is out of range (must be 1 <= r, s < n)")]
    SignatureValueOutOfRange,
    /// KeyInfo other than exactly one `X509Data/X509IssuerSerial`.
    #[error("KeyInfo holds {found}; the DUIS profile has exactly one X509Data/X509IssuerSerial")]
    KeyInfoNotInProfile {
        /// What it holds.
        found: String,
    },
    /// An `X509SerialNumber` that is not a positive decimal integer without leading zeros.
    #[error("X509SerialNumber {found:?} is not a positive decimal integer")]
    SerialNumber {
        /// The text found.
        found: String,
    },
    /// An empty `X509IssuerName`.
    #[error("X509IssuerName is empty")]
    IssuerName,
    /// The digest of the canonical document does not match DigestValue.
    #[error("digest mismatch: the signed content was changed after signing")]
    DigestMismatch,
    /// The resolver knows no certificate for the KeyInfo.
    #[error("no certificate known for issuer {issuer:?}, serial {serial}")]
    UnknownSigner {
        /// X509IssuerName as found.
        issuer: String,
        /// X509SerialNumber as found.
        serial: String,
    },
    /// The ECDSA signature over the canonical SignedInfo does not verify.
    #[error("the signature over SignedInfo does not verify with the signer's key")]
    BadSignature,
    /// Signing failed (the signer, or a document that cannot be signed).
    #[error("signing failed: {0}")]
    Sign(String),
    /// The document to sign already has a `ds:Signature`.
    #[error("the document to sign already has a ds:Signature at {path}")]
    AlreadySigned {
        /// Where.
        path: String,
    },
}

/// Verification settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Parser limits.
    pub limits: Limits,
    /// After a W3C-strict digest mismatch, retry once on the tree with
    /// whitespace-only text in element content dropped, as the DCC Boxed
    /// signer digests (`xml_whitespace_compat`, off by default).
    pub whitespace_compat: bool,
}

impl VerifyOptions {
    /// With these limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// With the whitespace-compatibility retry on or off.
    pub fn with_whitespace_compat(mut self, on: bool) -> Self {
        self.whitespace_compat = on;
        self
    }
}

/// Which form of the document matched the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedForm {
    /// W3C-strict: the document as it is.
    Strict,
    /// Whitespace-only text in element content dropped (compatibility retry).
    WhitespaceStripped,
}

/// A verified document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `X509IssuerName` as written (an RFC 2253 string).
    pub issuer: String,
    /// `X509SerialNumber`, decimal.
    pub serial: String,
    /// The signed content: the inclusive C14N 1.0 bytes of the document
    /// without its signature, exactly what was digested. Parse these (with
    /// [`parse`](crate::parse)) and process nothing else.
    pub signed_xml: Vec<u8>,
    /// Which form matched.
    pub form: MatchedForm,
}

/// The pieces of a profiled `ds:Signature`.
struct Parts<'a, 'i> {
    signature: Node<'a, 'i>,
    signed_info: Node<'a, 'i>,
    digest: [u8; 32],
    signature_value: [u8; 64],
    issuer: String,
    serial: String,
}

/// Verify `doc` (bytes as received) under the DUIS profile, W3C-strictly.
///
/// `resolve(issuer, serial)` maps the KeyInfo (RFC 2253 issuer string as
/// written, decimal serial) to the signer's public key, or `None`.
pub fn verify<F>(doc: &[u8], limits: &Limits, resolve: F) -> Result<Verified, DsigError>
where
    F: FnOnce(&str, &str) -> Option<P256PublicKey>,
{
    verify_with(
        doc,
        &VerifyOptions {
            limits: limits.clone(),
            whitespace_compat: false,
        },
        resolve,
    )
}

/// [`verify`] with [`VerifyOptions`].
pub fn verify_with<F>(doc: &[u8], opts: &VerifyOptions, resolve: F) -> Result<Verified, DsigError>
where
    F: FnOnce(&str, &str) -> Option<P256PublicKey>,
{
    verify_then(doc, opts, resolve, |_| ()).map(|(v, ())| v)
}

/// The signed content of a verified document, as a reader may take it.
///
/// `bytes` are always there: exactly what was digested. `tree` is the tree
/// the verifier parsed, offered only when reading it with the `signature`
/// subtree left out shows the same content as parsing `bytes` would: the
/// document has no comment (C14N without comments drops them, which can join
/// two text nodes) and the digest matched the strict form. A reader that
/// takes the tree saves a second parse; one that cannot must parse `bytes`.
#[derive(Debug, Clone, Copy)]
pub struct SignedContent<'a, 'i> {
    /// The canonical bytes that were digested.
    pub bytes: &'a [u8],
    /// The parsed document and the `ds:Signature` element to leave out.
    pub tree: Option<SignedTree<'a, 'i>>,
}

/// The verifier's parsed document and its `ds:Signature` element: the
/// roxmltree tree of the general path, or the flat table of the fast path
/// (a document in the DUIS subset, see [`flat`](crate::flat)).
#[derive(Debug, Clone, Copy)]
pub enum SignedTree<'a, 'i> {
    /// The hardened roxmltree parse.
    Roxml(&'a Document<'i>, roxmltree::NodeId),
    /// The fast path's flat table.
    Flat(&'a crate::flat::Document<'i>, crate::flat::NodeId),
}

/// [`verify_with`], then hand the signed content to `read` (only once the
/// signature has verified) without parsing it again: the reader gets the
/// verifier's tree when that is faithful to the signed bytes (see
/// [`SignedContent`]). Returns the verification and what `read` returned.
///
/// A document in the DUIS subset of XML takes the fast path first (a flat
/// table instead of the roxmltree tree, see [`flat`](crate::flat)); on any
/// doubt (outside the subset, a profile deviation, a digest mismatch, an
/// unknown signer) the general path runs and gives the precise error or
/// result. Once the fast path has done everything the general path would
/// (profile, digest, the signer's key resolved, SignedInfo whose exclusive
/// C14N is the profile's template), the one ECDSA verify decides: its
/// result, or [`DsigError::BadSignature`] exactly as the general path
/// gives it, so a bad signature costs one verify, not two. What the fast
/// path returns the general path returns identically; `resolve` is called
/// once either way.
pub fn verify_then<F, R, T>(
    doc: &[u8],
    opts: &VerifyOptions,
    resolve: F,
    read: R,
) -> Result<(Verified, T), DsigError>
where
    F: FnOnce(&str, &str) -> Option<P256PublicKey>,
    R: FnOnce(SignedContent<'_, '_>) -> T,
{
    let Some(fast) = crate::fast::prepare(doc, &opts.limits) else {
        return verify_then_general(doc, opts, resolve, read);
    };
    match resolve(&fast.issuer, &fast.serial) {
        Some(key) => fast_decide(fast, &key, read),
        // The general path names the unknown signer (it has been asked once).
        None => verify_then_general(doc, opts, |_, _| None, read),
    }
}

/// The fast path's decision once the signer's key is resolved: the one
/// ECDSA verify over the template SignedInfo, then the result, or the
/// general path's error for a signature that does not verify.
fn fast_decide<R, T>(
    fast: crate::fast::Fast<'_>,
    key: &P256PublicKey,
    read: R,
) -> Result<(Verified, T), DsigError>
where
    R: FnOnce(SignedContent<'_, '_>) -> T,
{
    ecdsa_verify(key, fast.signed_info.as_bytes(), &fast.signature_value)?;
    let read = read(SignedContent {
        bytes: &fast.signed_xml,
        tree: Some(SignedTree::Flat(&fast.doc, fast.signature)),
    });
    Ok((
        Verified {
            issuer: fast.issuer,
            serial: fast.serial,
            signed_xml: fast.signed_xml,
            form: MatchedForm::Strict,
        },
        read,
    ))
}

/// The ECDSA verify of SignedInfo, on either path, with the error the
/// general path gives (a test build counts the calls, see the tests).
fn ecdsa_verify(key: &P256PublicKey, signed_info: &[u8], value: &[u8]) -> Result<(), DsigError> {
    #[cfg(test)]
    tests::ECDSA_VERIFIES.with(|n| n.set(n.get() + 1));
    key.verify(signed_info, value).map_err(|e| match e {
        KeyError::SignatureLength(len) => DsigError::SignatureValueLength {
            len,
            looks_like_der: false,
        },
        _ => DsigError::BadSignature,
    })
}

/// The fast path alone: `None` where [`verify_then`] would take the general
/// path (outside the subset, any doubt, an unknown signer), otherwise what
/// it returns (its result, or [`DsigError::BadSignature`]). For the
/// differential tests and the fuzz target.
#[doc(hidden)]
pub fn verify_then_fast<F, R, T>(
    doc: &[u8],
    opts: &VerifyOptions,
    resolve: F,
    read: R,
) -> Option<Result<(Verified, T), DsigError>>
where
    F: FnOnce(&str, &str) -> Option<P256PublicKey>,
    R: FnOnce(SignedContent<'_, '_>) -> T,
{
    let fast = crate::fast::prepare(doc, &opts.limits)?;
    let key = resolve(&fast.issuer, &fast.serial)?;
    Some(fast_decide(fast, &key, read))
}

/// The general path alone (the hardened roxmltree parse): the oracle of
/// the fast path, for the differential tests and the fuzz target.
#[doc(hidden)]
pub fn verify_then_general<F, R, T>(
    doc: &[u8],
    opts: &VerifyOptions,
    resolve: F,
    read: R,
) -> Result<(Verified, T), DsigError>
where
    F: FnOnce(&str, &str) -> Option<P256PublicKey>,
    R: FnOnce(SignedContent<'_, '_>) -> T,
{
    let text = parse::prepare(doc, &opts.limits)?;
    let (tree, noted) = parse::parse_prepared_noting(&text, &opts.limits)?;
    let parts = signature_parts(&tree, &noted.signatures)?;

    let mut form = MatchedForm::Strict;
    let mut signed_xml =
        c14n::document_to_vec(&tree, Options::INCLUSIVE, Some(parts.signature.id()));
    let mut si_opts = Options::EXCLUSIVE;
    if sha256(&signed_xml) != parts.digest {
        if !opts.whitespace_compat {
            return Err(DsigError::DigestMismatch);
        }
        signed_xml.clear();
        c14n::canonicalize_document(
            &tree,
            Options::INCLUSIVE.stripping_whitespace(),
            Some(parts.signature.id()),
            &mut signed_xml,
        );
        if sha256(&signed_xml) != parts.digest {
            return Err(DsigError::DigestMismatch);
        }
        form = MatchedForm::WhitespaceStripped;
        si_opts = si_opts.stripping_whitespace();
    }

    let key = resolve(&parts.issuer, &parts.serial).ok_or_else(|| DsigError::UnknownSigner {
        issuer: parts.issuer.clone(),
        serial: parts.serial.clone(),
    })?;
    let signed_info = c14n::subtree_to_vec(parts.signed_info, si_opts);
    ecdsa_verify(&key, &signed_info, &parts.signature_value)?;
    let faithful = form == MatchedForm::Strict && !noted.has_comment;
    let read = read(SignedContent {
        bytes: &signed_xml,
        tree: faithful.then_some(SignedTree::Roxml(&tree, parts.signature.id())),
    });
    Ok((
        Verified {
            issuer: parts.issuer,
            serial: parts.serial,
            signed_xml,
            form,
        },
        read,
    ))
}

/// The signer named by a signed document's KeyInfo (issuer, serial), after
/// the structural profile checks but without verifying anything: for
/// looking the certificate up before [`verify`].
pub fn signer_of(doc: &[u8], limits: &Limits) -> Result<(String, String), DsigError> {
    let text = parse::prepare(doc, limits)?;
    let (tree, noted) = parse::parse_prepared_noting(&text, limits)?;
    let parts = signature_parts(&tree, &noted.signatures)?;
    Ok((parts.issuer, parts.serial))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn is_ds(node: Node<'_, '_>, local: &str) -> bool {
    node.is_element()
        && node.tag_name().namespace() == Some(DS_NS)
        && node.tag_name().name() == local
}

fn describe(node: Node<'_, '_>) -> String {
    match node.node_type() {
        roxmltree::NodeType::Element => format!("element {}", parse::element_qname(node)),
        roxmltree::NodeType::Text => format!("text {:?}", truncate(node.text().unwrap_or(""))),
        roxmltree::NodeType::Comment => "a comment".to_string(),
        roxmltree::NodeType::PI => "a processing instruction".to_string(),
        roxmltree::NodeType::Root => "the document".to_string(),
    }
}

fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(40).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

fn is_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The element children of a profiled container, rejecting anything else
/// (non-whitespace text, comments, PIs, attributes).
fn element_children<'a, 'i>(
    node: Node<'a, 'i>,
    allowed_attrs: &[&str],
) -> Result<Vec<Node<'a, 'i>>, DsigError> {
    for a in node.attributes() {
        if a.namespace().is_some() || !allowed_attrs.contains(&a.name()) {
            return Err(DsigError::UnexpectedInSignature {
                found: format!("attribute {}", a.name()),
                path: element_path(node),
                at: node.document().text_pos_at(a.range().start).into(),
            });
        }
    }
    let mut out = Vec::new();
    for c in node.children() {
        if c.is_element() {
            out.push(c);
        } else if c.is_text() && is_ws(c.text().unwrap_or("")) {
            continue;
        } else {
            return Err(DsigError::UnexpectedInSignature {
                found: describe(c),
                path: element_path(node),
                at: node_position(c),
            });
        }
    }
    Ok(out)
}

/// Expect `children` to be exactly the ds elements `names`, in order.
fn expect_sequence<'a, 'i>(
    parent: Node<'a, 'i>,
    children: &[Node<'a, 'i>],
    names: &[&'static str],
) -> Result<(), DsigError> {
    for (i, name) in names.iter().enumerate() {
        match children.get(i) {
            Some(c) if is_ds(*c, name) => {}
            Some(c) => {
                return Err(DsigError::UnexpectedInSignature {
                    found: format!("{} (expected ds:{name})", describe(*c)),
                    path: element_path(parent),
                    at: node_position(*c),
                });
            }
            None => {
                return Err(DsigError::MissingInSignature {
                    missing: name,
                    path: element_path(parent),
                });
            }
        }
    }
    if let Some(extra) = children.get(names.len()) {
        return Err(DsigError::UnexpectedInSignature {
            found: describe(*extra),
            path: element_path(parent),
            at: node_position(*extra),
        });
    }
    Ok(())
}

/// Text content of a leaf element (no element children, no comments/PIs).
fn leaf_text<'a>(node: Node<'a, '_>) -> Result<std::borrow::Cow<'a, str>, DsigError> {
    if let Some(a) = node.attributes().next() {
        return Err(DsigError::UnexpectedInSignature {
            found: format!("attribute {}", a.name()),
            path: element_path(node),
            at: node.document().text_pos_at(a.range().start).into(),
        });
    }
    let mut s = std::borrow::Cow::Borrowed("");
    for c in node.children() {
        if c.is_text() {
            let t = c.text().unwrap_or("");
            if s.is_empty() {
                s = std::borrow::Cow::Borrowed(t);
            } else {
                s.to_mut().push_str(t);
            }
        } else {
            return Err(DsigError::UnexpectedInSignature {
                found: describe(c),
                path: element_path(node),
                at: node_position(c),
            });
        }
    }
    Ok(s)
}

/// An `Algorithm`-only element with no content.
fn algorithm<'a>(
    node: Node<'a, '_>,
    slot: AlgorithmSlot,
    expected: &'static str,
) -> Result<(), DsigError> {
    let kids = element_children(node, &["Algorithm"])?;
    let found = node.attribute("Algorithm").unwrap_or("");
    if found != expected {
        return Err(DsigError::AlgorithmNotInProfile {
            slot,
            found: found.to_string(),
            expected,
        });
    }
    if let Some(k) = kids.first() {
        if slot == AlgorithmSlot::Canonicalization {
            return Err(DsigError::InclusiveNamespaces {
                found: describe(*k),
            });
        }
        return Err(DsigError::UnexpectedInSignature {
            found: describe(*k),
            path: element_path(node),
            at: node_position(*k),
        });
    }
    Ok(())
}

/// base64 decode, ignoring XML whitespace (including CR from `&#13;`).
pub(crate) fn b64(text: &str, element: &'static str) -> Result<Vec<u8>, DsigError> {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let decoded = if text.as_bytes().iter().any(is_ws) {
        let compact: Vec<u8> = text.bytes().filter(|b| !is_ws(b)).collect();
        STANDARD.decode(&compact)
    } else {
        STANDARD.decode(text)
    };
    decoded.map_err(|_| DsigError::Base64 { element })
}

/// Does `v` parse as DER `SEQUENCE { INTEGER, INTEGER }` filling all of `v`?
fn looks_like_der_sig(v: &[u8]) -> bool {
    fn int(v: &[u8]) -> Option<&[u8]> {
        let (&tag, rest) = v.split_first()?;
        let (&len, rest) = rest.split_first()?;
        if tag != 0x02 || len >= 0x80 || rest.len() < usize::from(len) || len == 0 {
            return None;
        }
        Some(&rest[usize::from(len)..])
    }
    let Some((&tag, rest)) = v.split_first() else {
        return false;
    };
    let Some((&len, body)) = rest.split_first() else {
        return false;
    };
    if tag != 0x30 || len >= 0x80 || body.len() != usize::from(len) {
        return false;
    }
    int(body).and_then(int).is_some_and(|r| r.is_empty())
}

pub(crate) fn scalar_in_range(x: &[u8]) -> bool {
    x.iter().any(|&b| b != 0) && x < &P256_N[..]
}

/// Locate the single ds:Signature (`signatures`: every one in the tree, in
/// document order, as the hardening walk found them) and check it against
/// the profile.
fn signature_parts<'a, 'i>(
    tree: &'a Document<'i>,
    signatures: &[roxmltree::NodeId],
) -> Result<Parts<'a, 'i>, DsigError> {
    let sigs: Vec<Node<'a, 'i>> = signatures
        .iter()
        .filter_map(|id| tree.get_node(*id))
        .collect();
    let signature = match sigs.as_slice() {
        [] => return Err(DsigError::MissingSignature),
        [one] => *one,
        many => {
            return Err(DsigError::MultipleSignatures {
                count: many.len(),
                paths: many.iter().map(|n| element_path(*n)).collect(),
            });
        }
    };
    let root = tree.root_element();
    if signature.parent() != Some(root) {
        return Err(DsigError::SignatureNotInRoot {
            path: element_path(signature),
            at: node_position(signature),
        });
    }
    for after in signature.next_siblings().skip(1) {
        if after.is_text() && is_ws(after.text().unwrap_or("")) {
            continue;
        }
        return Err(DsigError::SignatureNotLast {
            found: describe(after),
            at: node_position(after),
        });
    }

    let kids = element_children(signature, &[])?;
    expect_sequence(
        signature,
        &kids,
        &["SignedInfo", "SignatureValue", "KeyInfo"],
    )?;
    let (signed_info, sig_value, key_info) = (kids[0], kids[1], kids[2]);

    // SignedInfo: CanonicalizationMethod, SignatureMethod, Reference (one).
    let si = element_children(signed_info, &[])?;
    let refs = si.iter().filter(|n| is_ds(**n, "Reference")).count();
    if refs != 1 {
        return Err(DsigError::ReferenceCount { count: refs });
    }
    expect_sequence(
        signed_info,
        &si,
        &["CanonicalizationMethod", "SignatureMethod", "Reference"],
    )?;
    algorithm(si[0], AlgorithmSlot::Canonicalization, ALG_EXC_C14N)?;
    algorithm(si[1], AlgorithmSlot::Signature, ALG_ECDSA_SHA256)?;
    let reference = si[2];
    let uri = reference.attribute("URI");
    if uri != Some("") {
        return Err(DsigError::ReferenceUriNotInProfile {
            found: uri.map(str::to_string),
        });
    }
    let rk = element_children(reference, &["URI"])?;
    // Transforms first: report a transform problem before a sequence problem.
    if let Some(t) = rk.first().filter(|n| is_ds(**n, "Transforms")) {
        let ts = element_children(*t, &[])?;
        let found: Vec<String> = ts
            .iter()
            .map(|n| {
                if is_ds(*n, "Transform") {
                    n.attribute("Algorithm").unwrap_or("").to_string()
                } else {
                    describe(*n)
                }
            })
            .collect();
        if found.len() != 1 || found[0] != ALG_ENVELOPED || !is_ds(ts[0], "Transform") {
            return Err(DsigError::TransformsNotInProfile { found });
        }
        let inner = element_children(ts[0], &["Algorithm"])?;
        if let Some(k) = inner.first() {
            return Err(DsigError::UnexpectedInSignature {
                found: describe(*k),
                path: element_path(ts[0]),
                at: node_position(*k),
            });
        }
    } else {
        return Err(DsigError::TransformsNotInProfile { found: Vec::new() });
    }
    expect_sequence(
        reference,
        &rk,
        &["Transforms", "DigestMethod", "DigestValue"],
    )?;
    algorithm(rk[1], AlgorithmSlot::Digest, ALG_SHA256)?;
    let dv = b64(&leaf_text(rk[2])?, "DigestValue")?;
    let digest: [u8; 32] = dv
        .as_slice()
        .try_into()
        .map_err(|_| DsigError::DigestValueLength { len: dv.len() })?;

    // SignatureValue (an Id attribute is allowed by XML-DSig; not by the profile).
    let sv = b64(&leaf_text(sig_value)?, "SignatureValue")?;
    let signature_value: [u8; 64] =
        sv.as_slice()
            .try_into()
            .map_err(|_| DsigError::SignatureValueLength {
                len: sv.len(),
                looks_like_der: looks_like_der_sig(&sv),
            })?;
    if !scalar_in_range(&signature_value[..32]) || !scalar_in_range(&signature_value[32..]) {
        return Err(DsigError::SignatureValueOutOfRange);
    }

    // KeyInfo / X509Data / X509IssuerSerial / (X509IssuerName, X509SerialNumber).
    let ki = element_children(key_info, &[])?;
    let describe_all = |ns: &[Node<'_, '_>]| {
        ns.iter()
            .map(|n| describe(*n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let x509data = match ki.as_slice() {
        [one] if is_ds(*one, "X509Data") => *one,
        other => {
            return Err(DsigError::KeyInfoNotInProfile {
                found: if other.is_empty() {
                    "nothing".to_string()
                } else {
                    describe_all(other)
                },
            });
        }
    };
    let xd = element_children(x509data, &[])?;
    let issuer_serial = match xd.as_slice() {
        [one] if is_ds(*one, "X509IssuerSerial") => *one,
        other => {
            return Err(DsigError::KeyInfoNotInProfile {
                found: format!(
                    "X509Data with {}",
                    if other.is_empty() {
                        "nothing".to_string()
                    } else {
                        describe_all(other)
                    }
                ),
            });
        }
    };
    let is = element_children(issuer_serial, &[])?;
    expect_sequence(issuer_serial, &is, &["X509IssuerName", "X509SerialNumber"])?;
    let issuer = leaf_text(is[0])?.trim().to_string();
    if issuer.is_empty() {
        return Err(DsigError::IssuerName);
    }
    let serial_text = leaf_text(is[1])?.into_owned();
    let serial = serial_text.trim();
    if serial.is_empty()
        || !serial.bytes().all(|b| b.is_ascii_digit())
        || serial.starts_with('0')
        || serial.len() > 49
    {
        return Err(DsigError::SerialNumber { found: serial_text });
    }
    Ok(Parts {
        signature,
        signed_info,
        digest,
        signature_value,
        issuer,
        serial: serial.to_string(),
    })
}

/// The exclusive-C14N octets of a profiled SignedInfo with this digest: what
/// the signer signs (and what [`exc_c14n`](crate::c14n) of the SignedInfo
/// element written by [`sign`] produces).
pub(crate) fn signed_info_c14n(digest_b64: &str) -> String {
    // Joined, not formatted: one allocation of the exact length.
    [
        "<ds:SignedInfo xmlns:ds=\"",
        DS_NS,
        "\"><ds:CanonicalizationMethod Algorithm=\"",
        ALG_EXC_C14N,
        "\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"",
        ALG_ECDSA_SHA256,
        "\"></ds:SignatureMethod><ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"",
        ALG_ENVELOPED,
        "\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"",
        ALG_SHA256,
        "\"></ds:DigestMethod><ds:DigestValue>",
        digest_b64,
        "</ds:DigestValue></ds:Reference></ds:SignedInfo>",
    ]
    .concat()
}

/// Sign `unsigned` under the DUIS profile.
///
/// The output is `<?xml version="1.0" encoding="UTF-8" standalone="no"?>`
/// followed by the document in compact canonical form (whitespace-only text
/// in element content dropped, as the DCC Boxed signer does; comments
/// dropped; namespace declarations explicit), with the `ds:Signature` as the
/// last child of the root. `issuer_rfc2253` and `serial_decimal` name the
/// signer's certificate in KeyInfo.
pub fn sign(
    unsigned: &[u8],
    signer: &dyn Signer,
    issuer_rfc2253: &str,
    serial_decimal: &str,
) -> Result<Vec<u8>, DsigError> {
    sign_with(
        unsigned,
        &Limits::default(),
        signer,
        issuer_rfc2253,
        serial_decimal,
    )
}

/// [`sign`] with explicit parser limits.
pub fn sign_with(
    unsigned: &[u8],
    limits: &Limits,
    signer: &dyn Signer,
    issuer_rfc2253: &str,
    serial_decimal: &str,
) -> Result<Vec<u8>, DsigError> {
    if serial_decimal.is_empty()
        || !serial_decimal.bytes().all(|b| b.is_ascii_digit())
        || serial_decimal.starts_with('0')
    {
        return Err(DsigError::SerialNumber {
            found: serial_decimal.to_string(),
        });
    }
    if issuer_rfc2253.trim().is_empty() {
        return Err(DsigError::IssuerName);
    }
    let text = parse::prepare(unsigned, limits)?;
    let tree = parse::parse_prepared(&text, limits)?;
    if let Some(s) = tree.descendants().find(|n| is_ds(*n, "Signature")) {
        return Err(DsigError::AlreadySigned {
            path: element_path(s),
        });
    }
    let root = tree.root_element();
    // Compact canonical body: only the root element (no PIs/comments outside it).
    let mut body = Vec::with_capacity(unsigned.len() + 1024);
    c14n::canonicalize_subtree(root, Options::INCLUSIVE.stripping_whitespace(), &mut body);
    let digest_b64 = STANDARD.encode(sha256(&body));
    let si = signed_info_c14n(&digest_b64);
    let sig = signer
        .sign(si.as_bytes())
        .map_err(|e| DsigError::Sign(e.to_string()))?;
    let sig_b64 = STANDARD.encode(sig);

    // The root's closing tag is the last bytes of `body`.
    let close = format!("</{}>", parse::element_qname(root));
    let split = body
        .len()
        .checked_sub(close.len())
        .ok_or_else(|| DsigError::Sign("empty canonical form".into()))?;
    let ds_declared = root.lookup_namespace_uri(Some("ds")) == Some(DS_NS);
    let xmlns = if ds_declared {
        String::new()
    } else {
        format!(" xmlns:ds=\"{DS_NS}\"")
    };
    // SignedInfo as written: inherits xmlns:ds from Signature (or the root),
    // so its exclusive canonical form is exactly `si`.
    let si_written = si.replacen(&format!(" xmlns:ds=\"{DS_NS}\""), "", 1);
    let issuer_escaped = {
        let mut v = Vec::new();
        c14n::escape_text(issuer_rfc2253.trim(), &mut v);
        String::from_utf8(v).map_err(|_| DsigError::IssuerName)?
    };
    let signature = format!(
        "<ds:Signature{xmlns}>{si_written}<ds:SignatureValue>{sig_b64}</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>{issuer_escaped}</ds:X509IssuerName><ds:X509SerialNumber>{serial_decimal}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data></ds:KeyInfo></ds:Signature>"
    );
    let mut out = Vec::with_capacity(body.len() + signature.len() + 64);
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>");
    out.extend_from_slice(&body[..split]);
    out.extend_from_slice(signature.as_bytes());
    out.extend_from_slice(&body[split..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use ecos_smki::SoftwareSigner;

    thread_local! {
        /// ECDSA verifies run by [`ecdsa_verify`] on this thread.
        pub(super) static ECDSA_VERIFIES: Cell<usize> = const { Cell::new(0) };
    }

    /// `f`'s value and the ECDSA verifies it ran.
    fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = ECDSA_VERIFIES.with(Cell::get);
        let out = f();
        (out, ECDSA_VERIFIES.with(Cell::get) - before)
    }

    fn new_signer() -> SoftwareSigner {
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("key generation");
        SoftwareSigner::from_bytes(pkcs8.as_ref()).expect("signer")
    }

    const BODY: &str = "<sr:Request xmlns:sr=\"http://www.dccinterface.co.uk/ServiceUserGateway\" schemaVersion=\"5.4\"><sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006</sr:RequestID></sr:Header><sr:Body><sr:ImportMPxN>1312345678333</sr:ImportMPxN></sr:Body></sr:Request>";

    /// The signed document with one bit of its SignatureValue flipped (of
    /// s, or of r where that would take s out of range).
    fn flipped(doc: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(doc).unwrap();
        let (head, rest) = text.split_once("<ds:SignatureValue>").unwrap();
        let (value, tail) = rest.split_once("</ds:SignatureValue>").unwrap();
        let mut v = STANDARD.decode(value).unwrap();
        let i = if v[63] == 0x50 { 31 } else { 63 };
        v[i] ^= 1;
        format!(
            "{head}<ds:SignatureValue>{}</ds:SignatureValue>{tail}",
            STANDARD.encode(&v)
        )
        .into_bytes()
    }

    fn verify_once(doc: &[u8], opts: &VerifyOptions, key: Option<&P256PublicKey>) -> String {
        let (r, n) = counted(|| verify_then(doc, opts, |_, _| key.cloned(), |_| ()));
        assert_eq!(n, usize::from(key.is_some()), "ECDSA verifies");
        match r {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:?}: {e}"),
        }
    }

    /// A document in the DUIS subset whose signature does not verify (a
    /// flipped bit, or another signer's key) costs one ECDSA verify, is
    /// decided by the fast path, and gets the general path's error.
    #[test]
    fn a_bad_signature_costs_one_ecdsa_verify() {
        let signer = new_signer();
        let other = new_signer();
        let doc = sign(BODY.as_bytes(), &signer, "CN=Z1,OU=07", "1").unwrap();
        let key = signer.public_key();
        for opts in [
            VerifyOptions::default(),
            VerifyOptions::default().with_whitespace_compat(true),
        ] {
            assert_eq!(verify_once(&doc, &opts, Some(key)), "ok");
            let bad = flipped(&doc);
            for (what, d, k) in [
                ("flipped bit", &bad, key),
                ("another signer's key", &doc, other.public_key()),
            ] {
                let resolve = |_: &str, _: &str| Some(k.clone());
                let combined = verify_once(d, &opts, Some(k));
                assert!(combined.starts_with("BadSignature"), "{what}: {combined}");
                let (fast, n) = counted(|| verify_then_fast(d, &opts, resolve, |_| ()));
                assert_eq!(n, 1, "{what}");
                let fast = fast.expect("the fast path decides").unwrap_err();
                let (general, n) = counted(|| verify_then_general(d, &opts, resolve, |_| ()));
                assert_eq!(n, 1, "{what}");
                let general = general.unwrap_err();
                assert_eq!(
                    format!("{fast:?}: {fast}"),
                    format!("{general:?}: {general}")
                );
                assert_eq!(combined, format!("{general:?}: {general}"), "{what}");
            }
        }
    }

    /// Where the fast path is in doubt it still falls back, and the general
    /// path still runs the only verify (or none).
    #[test]
    fn doubts_fall_back_with_at_most_one_ecdsa_verify() {
        let signer = new_signer();
        let key = signer.public_key();
        let doc = sign(BODY.as_bytes(), &signer, "CN=Z1,OU=07", "1").unwrap();
        let opts = VerifyOptions::default();
        let text = String::from_utf8(flipped(&doc)).unwrap();
        // A comment is outside the subset (and invisible to C14N): the
        // general path verifies, once.
        let commented = text.replacen("<sr:Body>", "<sr:Body><!-- c -->", 1);
        assert!(
            verify_then_fast(
                commented.as_bytes(),
                &opts,
                |_, _| Some(key.clone()),
                |_| ()
            )
            .is_none()
        );
        let r = verify_once(commented.as_bytes(), &opts, Some(key));
        assert!(r.starts_with("BadSignature"), "{r}");
        // Unknown signer: no verify at all, the general path names it.
        let r = verify_once(text.as_bytes(), &opts, None);
        assert!(r.starts_with("UnknownSigner"), "{r}");
        // Digest mismatch: decided before any key is used.
        let changed = text.replacen("1312345678333", "1312345678334", 1);
        let (r, n) =
            counted(|| verify_then(changed.as_bytes(), &opts, |_, _| Some(key.clone()), |_| ()));
        assert!(matches!(r, Err(DsigError::DigestMismatch)), "{r:?}");
        assert_eq!(n, 0);
    }
}
