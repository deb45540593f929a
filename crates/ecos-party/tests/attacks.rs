//! The hostile-input corpus (issue 11), run against the real 6.23 pipeline:
//! a generated demo PKI, SQLite in a tempdir, the demo data and a recording
//! transport. Every case is generated from a valid signed request and must be
//! refused with its *specific* reason, answered with a DUIS error
//! acknowledgement (HTTP 200) or an HTTP 400 (never a panic, never a 500),
//! leave nothing sent and nothing stored as accepted, and leave the party
//! able to accept a valid request afterwards.
//!
//! Profile decisions asserted here (`duis-6.23.md` §6, §6.2):
//! - the digest is inclusive C14N 1.0 *without comments*, so a comment is
//!   never signed content: one inserted after signing leaves the digest
//!   intact, and the pipeline processes only the canonical (comment-free)
//!   bytes, so it cannot change what is read (asserted as accepted, with the
//!   stored decision for the signed values);
//! - processing instructions are kept by C14N, so one inserted after signing
//!   breaks the digest.

use std::sync::Arc;

use base64::Engine as _;
use ecos_party::demo::{self, RequestSpec};
use ecos_party::{Outcome, Party, PartyConfig, Reason, SmkiRegistry};
use ecos_smki::{Eui64, MpidRules, TestPki};
use ecos_store::RequestState;
use jiff::Timestamp;

mod common;
use common::{Recorder, at, pki};

struct World {
    pki: Arc<TestPki>,
    party: Party,
    sent: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

/// Which SMKI registry the party holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registry {
    /// `demo::registry`: every organisation's XML Sign certificate.
    Demo,
    /// The demo registry plus supplier B's OU 02 DS certificate (as the SMKI
    /// repository would hold it), so that a DS-signed request resolves.
    WithSupplierDs,
    /// The demo registry whose trust store revokes supplier A's XML Sign
    /// certificate (B stays usable for the request that follows).
    RevokedSigner,
}

fn registry(pki: &TestPki, which: Registry) -> SmkiRegistry {
    match which {
        Registry::Demo => demo::registry(pki),
        Registry::WithSupplierDs => {
            let mut r = demo::registry(pki);
            r.add(org(pki, demo::SUPPLIER_B).ds.cert.clone());
            r
        }
        Registry::RevokedSigner => {
            let mut trust = pki.trust_store();
            trust
                .revocations_mut()
                .add_certificate(&org(pki, demo::SUPPLIER_A).xml_sign.cert);
            let mut r = SmkiRegistry::new(trust, ecos_smki::PathPolicy::default());
            for o in pki.organisations() {
                r.add(o.xml_sign.cert.clone());
            }
            r
        }
    }
}

async fn world_with(which: Registry) -> World {
    let pki = pki();
    let config = PartyConfig::default();
    let (store, dir) = common::demo_store(config.counter_floor).await;
    let sent = Arc::new(Recorder::default());
    let party = Party::new(
        config,
        MpidRules::default(),
        registry(&pki, which),
        store,
        demo::keys(&pki).unwrap(),
    )
    .with_transport(sent.clone());
    World {
        pki,
        party,
        sent,
        _dir: dir,
    }
}

async fn world() -> World {
    world_with(Registry::Demo).await
}

fn org(pki: &TestPki, eui: Eui64) -> &ecos_smki::testpki::OrgCredentials {
    pki.organisation(eui).expect("organisation in the demo PKI")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------
// Documents

/// Supplier B's immediate request for the transitional ESME.
fn spec(counter: u64) -> RequestSpec {
    RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, counter, demo::MPAN_1)
}

fn request_id(counter: u64) -> String {
    format!("{}:{}:{counter}", demo::SUPPLIER_B, demo::ESME_TCOS)
}

/// A valid signed request (counter 1 unless said otherwise).
fn signed(pki: &TestPki, counter: u64) -> String {
    text(&spec(counter).signed(pki).unwrap())
}

fn unsigned(pki: &TestPki, counter: u64) -> String {
    text(&spec(counter).write(pki).unwrap())
}

/// Sign any document with `who`'s XML Sign key, naming its certificate.
fn sign_as(doc: &str, pki: &TestPki, who: Eui64) -> String {
    let cred = &org(pki, who).xml_sign;
    let signer = cred.signer().unwrap();
    text(
        &ecos_xmldsig::sign(
            doc.as_bytes(),
            &signer,
            &cred.cert.issuer_rfc2253(),
            &cred.cert.serial_decimal(),
        )
        .unwrap(),
    )
}

fn sign_b(doc: &str, pki: &TestPki) -> String {
    sign_as(doc, pki, demo::SUPPLIER_B)
}

/// Replace exactly one occurrence of `from` (the corpus must not silently
/// stop testing what it says when the writer changes).
fn replace_once(doc: &str, from: &str, to: &str) -> String {
    assert_eq!(
        doc.matches(from).count(),
        1,
        "expected exactly one {from:?} in the document:\n{doc}"
    );
    doc.replacen(from, to, 1)
}

/// The document split around its `ds:Signature`: (before, signature, after).
fn split_signature(doc: &str) -> (String, String, String) {
    let a = doc.find("<ds:Signature").expect("a ds:Signature");
    let end = "</ds:Signature>";
    let b = doc.find(end).expect("a closing ds:Signature") + end.len();
    (
        doc[..a].to_string(),
        doc[a..b].to_string(),
        doc[b..].to_string(),
    )
}

/// The XML declaration and the rest.
fn split_decl(doc: &str) -> (&str, &str) {
    match doc.find("?>") {
        Some(i) if doc.starts_with("<?xml") => (&doc[..i + 2], &doc[i + 2..]),
        _ => ("", doc),
    }
}

fn with_doctype(doc: &str, doctype: &str) -> String {
    let (decl, rest) = split_decl(doc);
    format!("{decl}{doctype}{rest}")
}

/// The `sr:Body` element of a document.
fn body_element(doc: &str) -> String {
    let a = doc.find("<sr:Body").expect("sr:Body");
    let end = "</sr:Body>";
    let b = doc.find(end).expect("closing sr:Body") + end.len();
    doc[a..b].to_string()
}

fn signature_value(doc: &str) -> String {
    let a = doc.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let b = doc.find("</ds:SignatureValue>").unwrap();
    doc[a..b].to_string()
}

fn with_signature_value(doc: &str, b64: &str) -> String {
    let old = signature_value(doc);
    replace_once(
        doc,
        &format!("<ds:SignatureValue>{old}</ds:SignatureValue>"),
        &format!("<ds:SignatureValue>{b64}</ds:SignatureValue>"),
    )
}

fn raw_signature(doc: &str) -> Vec<u8> {
    let v = base64::engine::general_purpose::STANDARD
        .decode(signature_value(doc).trim())
        .unwrap();
    assert_eq!(v.len(), 64);
    v
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Raw r‖s as a DER ECDSA-Sig-Value.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    fn int(x: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let mut body = int(&raw[..32]);
    body.extend(int(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The ImportMPxN element as the writer emits it.
fn mpxn_element() -> String {
    format!("<sr:ImportMPxN>{}</sr:ImportMPxN>", demo::MPAN_1)
}

// ---------------------------------------------------------------------------
// The harness

/// What a hostile case must produce.
struct Expect {
    /// `Reason::code()`.
    code: &'static str,
    /// A fragment of the reason's message (its detail), or "".
    fragment: &'static str,
}

const fn expect(code: &'static str, fragment: &'static str) -> Expect {
    Expect { code, fragment }
}

struct Case {
    name: &'static str,
    registry: Registry,
    at: fn() -> Timestamp,
    doc: fn(&TestPki) -> String,
    /// The RequestID the document carries, when readable (for the store check).
    request_id: Option<String>,
    expect: Expect,
}

fn case(name: &'static str, doc: fn(&TestPki) -> String, expect: Expect) -> Case {
    Case {
        name,
        registry: Registry::Demo,
        at,
        doc,
        request_id: Some(request_id(1)),
        expect,
    }
}

impl Case {
    fn registry(mut self, r: Registry) -> Self {
        self.registry = r;
        self
    }
    fn at(mut self, at: fn() -> Timestamp) -> Self {
        self.at = at;
        self
    }
    fn request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }
}

/// Assert that `body` is refused with `expect`, answered as a DUIS error
/// acknowledgement or a 400, with nothing sent or stored as accepted.
async fn assert_refused(
    w: &World,
    name: &str,
    body: &[u8],
    at: Timestamp,
    request_id: Option<&str>,
    expect: &Expect,
) -> Reason {
    let sent_before = w.sent.count();
    let (answer, outcome) = match w.party.process(body, at).await {
        Ok(v) => v,
        Err(e) => panic!("[{name}] internal error (would be HTTP 500): {e}"),
    };
    let reason = match outcome {
        Outcome::Refused(r) => r.reason,
        Outcome::Accepted { request_id, .. } => {
            panic!(
                "[{name}] ACCEPTED as {request_id}; expected {}",
                expect.code
            )
        }
        other => panic!("[{name}] unexpected outcome {other:?}"),
    };
    let message = reason.to_string();
    eprintln!(
        "[{name}] HTTP {} {}: {message}",
        answer.http_status,
        reason.code()
    );
    assert_eq!(
        reason.code(),
        expect.code,
        "[{name}] wrong reason: {message} ({reason:?})"
    );
    assert!(
        message.contains(expect.fragment),
        "[{name}] reason {} does not mention {:?}: {message}",
        expect.code,
        expect.fragment
    );
    let answer_text = text(&answer.body);
    match answer.http_status {
        200 => assert!(
            answer_text.contains("<sr:ResponseCode>E"),
            "[{name}] HTTP 200 but not an error acknowledgement: {answer_text}"
        ),
        400 => assert!(
            !answer_text.is_empty(),
            "[{name}] HTTP 400 without an explanation"
        ),
        s => panic!("[{name}] HTTP {s}: {answer_text}"),
    }
    assert_eq!(w.sent.count(), sent_before, "[{name}] something was sent");
    if let Some(id) = request_id {
        let stored = w.party.store().request(id).await.unwrap();
        if let Some(s) = stored {
            assert_eq!(
                s.state,
                RequestState::Rejected,
                "[{name}] {id} stored as {:?}",
                s.state
            );
        }
    }
    reason
}

/// Submit a valid request and expect it accepted and sent.
async fn assert_accepted(w: &World, name: &str, body: &[u8], at: Timestamp) -> String {
    let sent_before = w.sent.count();
    let (answer, outcome) = match w.party.process(body, at).await {
        Ok(v) => v,
        Err(e) => panic!("[{name}] internal error: {e}"),
    };
    match outcome {
        Outcome::Accepted {
            request_id,
            send_error,
            ..
        } => {
            assert_eq!(send_error, None, "[{name}]");
            assert_eq!(answer.http_status, 200, "[{name}]");
            assert!(
                text(&answer.body).contains("<sr:ResponseCode>I99</sr:ResponseCode>"),
                "[{name}] {}",
                text(&answer.body)
            );
            assert_eq!(w.sent.count(), sent_before + 1, "[{name}] not sent");
            let stored = w.party.store().request(&request_id).await.unwrap().unwrap();
            assert_eq!(stored.state, RequestState::Dispatched, "[{name}]");
            request_id
        }
        Outcome::Refused(r) => panic!("[{name}] refused: {} ({:?})", r.reason, r.reason),
        other => panic!("[{name}] {other:?}"),
    }
}

/// One case in its own world: refused as expected, then a valid request
/// (counter 1000) is still accepted.
async fn run_case(c: Case) {
    let w = world_with(c.registry).await;
    let doc = (c.doc)(&w.pki);
    assert_refused(
        &w,
        c.name,
        doc.as_bytes(),
        (c.at)(),
        c.request_id.as_deref(),
        &c.expect,
    )
    .await;
    let valid = signed(&w.pki, 1000);
    assert_accepted(&w, c.name, valid.as_bytes(), at()).await;
    // The refusal and the acceptance are both in an unbroken audit chain.
    let audit = w.party.store().verify_audit_chain().await.unwrap();
    assert!(
        audit.first_broken.is_none(),
        "[{}] audit chain broken",
        c.name
    );
    assert!(
        audit.entries >= 2,
        "[{}] {} audit entries",
        c.name,
        audit.entries
    );
}

/// Run every case, each in its own task so that a panic in one (a failed
/// assertion or a panic in the pipeline) is reported with its name and the
/// others still run.
async fn run_all(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let total = cases.len();
    for c in cases {
        let name = c.name;
        if let Err(e) = tokio::spawn(run_case(c)).await {
            let msg = if e.is_panic() {
                let p = e.into_panic();
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            } else {
                e.to_string()
            };
            failures.push(format!("{name}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} hostile cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The corpus

const EVIL_DTD: &str = "<!DOCTYPE sr:Request [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>";

fn billion_laughs() -> String {
    let mut d = String::from("<!DOCTYPE sr:Request [<!ENTITY lol \"lol\">");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        d.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    d.push_str("]>");
    d
}

#[tokio::test]
async fn xml_hardening_cases_are_refused_as_malformed() {
    run_all(vec![
        case(
            "xxe_external_entity_doctype",
            |p| {
                let d = with_doctype(&signed(p, 1), EVIL_DTD);
                replace_once(
                    &d,
                    &mpxn_element(),
                    "<sr:ImportMPxN>&xxe;</sr:ImportMPxN>",
                )
            },
            expect("malformed", "DOCTYPE"),
        ),
        case(
            "billion_laughs_internal_entities",
            |p| {
                let d = with_doctype(&signed(p, 1), &billion_laughs());
                replace_once(
                    &d,
                    &mpxn_element(),
                    "<sr:ImportMPxN>&lol9;</sr:ImportMPxN>",
                )
            },
            expect("malformed", "DOCTYPE"),
        ),
        case(
            "parameter_entities",
            |p| {
                with_doctype(
                    &signed(p, 1),
                    "<!DOCTYPE sr:Request [<!ENTITY % ext SYSTEM \"http://127.0.0.1:9/evil.dtd\"> %ext;]>",
                )
            },
            expect("malformed", "DOCTYPE"),
        ),
        case(
            "empty_doctype",
            |p| with_doctype(&signed(p, 1), "<!DOCTYPE sr:Request>"),
            expect("malformed", "DOCTYPE"),
        ),
        case(
            "external_dtd_subset",
            |p| with_doctype(&signed(p, 1), "<!DOCTYPE sr:Request SYSTEM \"local.dtd\">"),
            expect("malformed", "DOCTYPE"),
        ),
        case(
            "deep_nesting_10000_levels",
            |p| {
                let deep = format!("{}{}", "<x>".repeat(10_000), "</x>".repeat(10_000));
                replace_once(&signed(p, 1), "</sr:Body>", &format!("{deep}</sr:Body>"))
            },
            expect("malformed", "nested"),
        ),
        case(
            "huge_attribute_over_size_cap",
            |p| {
                let big = "A".repeat(3 << 20);
                replace_once(&signed(p, 1), "<sr:Body>", &format!("<sr:Body junk=\"{big}\">"))
            },
            expect("malformed", "limit is 1048576"),
        ),
        case(
            "long_attribute_under_size_cap",
            |p| {
                let big = "A".repeat(300 << 10);
                replace_once(&signed(p, 1), "<sr:Body>", &format!("<sr:Body junk=\"{big}\">"))
            },
            expect("malformed", "limit is 262144"),
        ),
        case(
            "many_attributes",
            |p| {
                let attrs: String = (0..200).map(|i| format!(" a{i}=\"{i}\"")).collect();
                replace_once(&signed(p, 1), "<sr:Body>", &format!("<sr:Body{attrs}>"))
            },
            expect("malformed", "200 attributes"),
        ),
        case(
            "many_sibling_nodes",
            |p| {
                let many = "<x/>".repeat(50_000);
                replace_once(&signed(p, 1), "</sr:Body>", &format!("{many}</sr:Body>"))
            },
            expect("malformed", "nodes"),
        ),
        case(
            "utf16_encoding_declared",
            |p| {
                replace_once(&signed(p, 1), "encoding=\"UTF-8\"", "encoding=\"UTF-16\"")
            },
            expect("malformed", "UTF-16"),
        ),
        case(
            "nul_character",
            |p| replace_once(&signed(p, 1), "<sr:Body>", "<sr:Body>\u{0}"),
            expect("malformed", ""),
        ),
        case(
            "bom_and_text_before_root",
            |p| format!("\u{FEFF}junk{}", signed(p, 1)),
            expect("malformed", ""),
        )
        .request_id(None),
        case(
            "non_xml_character_u_ffff",
            |p| replace_once(&signed(p, 1), "<sr:Body>", "<sr:Body>\u{FFFF}"),
            expect("malformed", ""),
        ),
    ])
    .await;
}

#[tokio::test]
async fn comments_and_processing_instructions() {
    run_all(vec![
        case(
            "pi_inserted_into_signed_content_after_signing",
            |p| {
                replace_once(
                    &signed(p, 1),
                    "<sr:Body>",
                    "<sr:Body><?evil steal-the-switch?>",
                )
            },
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "pi_before_root_after_signing",
            |p| {
                let s = signed(p, 1);
                let (decl, rest) = split_decl(&s);
                format!("{decl}<?xml-stylesheet href=\"http://127.0.0.1:9/x.xsl\"?>{rest}")
            },
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "text_changed_after_signing",
            |p| {
                replace_once(
                    &signed(p, 1),
                    &mpxn_element(),
                    &format!("<sr:ImportMPxN>{}</sr:ImportMPxN>", demo::MPAN_2),
                )
            },
            expect("bad_signature", "digest mismatch"),
        ),
    ])
    .await;
}

/// A comment inserted into the signed content after signing is not signed
/// content (C14N without comments): the digest still matches, and the
/// pipeline reads only the canonical bytes, so the comment-truncation trick
/// (`1312<!---->345678907` read as `1312`) cannot change what is checked.
#[tokio::test]
async fn comments_are_not_signed_content_and_cannot_split_values() {
    let w = world().await;
    let doc = replace_once(
        &signed(&w.pki, 1),
        &mpxn_element(),
        &format!(
            "<sr:ImportMPxN>{}<!-- split -->{}</sr:ImportMPxN>",
            &demo::MPAN_1[..4],
            &demo::MPAN_1[4..]
        ),
    );
    let id = assert_accepted(&w, "comment_split_after_signing", doc.as_bytes(), at()).await;
    assert_eq!(id, request_id(1));

    // A comment splitting the RequestID: the counter read is the signed one.
    let doc = signed(&w.pki, 20);
    let doc = replace_once(
        &doc,
        ":20</sr:RequestID>",
        ":2<!-- 99999 -->0</sr:RequestID>",
    );
    let id = assert_accepted(&w, "comment_in_request_id", doc.as_bytes(), at()).await;
    assert_eq!(id, request_id(20));

    // Comments present before signing: the signer drops them (compact
    // canonical output), so the signed document carries none and verifies.
    let unsigned = replace_once(
        &unsigned(&w.pki, 30),
        "<sr:Body>",
        "<sr:Body><!-- a supplier's note -->",
    );
    let doc = sign_b(&unsigned, &w.pki);
    assert!(!doc.contains("<!--"), "the signer keeps no comment: {doc}");
    assert_accepted(&w, "comment_before_signing", doc.as_bytes(), at()).await;
}

/// A processing instruction inside the content before signing is signed
/// (C14N keeps PIs, and the signer does too). The profile says: reject PIs
/// in signed content, or canonicalise them exactly; the pipeline rejects
/// them when it reads the signed bytes (`malformed`, naming the element).
#[tokio::test]
async fn pi_signed_into_the_content_is_malformed() {
    let w = world().await;
    let unsigned = replace_once(&unsigned(&w.pki, 1), "<sr:Body>", "<sr:Body><?ecos note?>");
    let doc = sign_b(&unsigned, &w.pki);
    assert!(doc.contains("<?ecos note?>"), "{doc}");
    assert_refused(
        &w,
        "pi_signed_into_content",
        doc.as_bytes(),
        at(),
        Some(&request_id(1)),
        &expect("malformed", "processing instruction"),
    )
    .await;
    assert_accepted(&w, "after_pi", signed(&w.pki, 1000).as_bytes(), at()).await;
}

#[tokio::test]
async fn signature_wrapping_is_refused() {
    run_all(vec![
        case(
            "signature_not_last_child",
            |p| {
                let (before, sig, after) = split_signature(&signed(p, 1));
                let with_sig = replace_once(&before, "<sr:Header>", &format!("{sig}<sr:Header>"));
                format!("{with_sig}{after}")
            },
            expect("bad_signature", "not the last child"),
        ),
        case(
            "duplicated_signature",
            |p| {
                let (before, sig, after) = split_signature(&signed(p, 1));
                format!("{before}{sig}{sig}{after}")
            },
            expect("bad_signature", "ds:Signature"),
        ),
        case(
            "nested_signature_inside_body",
            |p| {
                let (before, sig, after) = split_signature(&signed(p, 1));
                let before = replace_once(&before, "</sr:Body>", &format!("{sig}</sr:Body>"));
                format!("{before}{after}")
            },
            expect("bad_signature", "ds:Signature"),
        ),
        case(
            "signature_only_inside_body",
            |p| {
                let (before, sig, after) = split_signature(&signed(p, 1));
                let before = replace_once(&before, "</sr:Body>", &format!("{sig}</sr:Body>"));
                let _ = after;
                format!("{before}</sr:Request>")
            },
            expect("bad_signature", "not a child of the root"),
        ),
        case(
            "second_body_added_after_signing",
            |p| {
                let s = signed(p, 1);
                let forged = body_element(&s).replace(demo::MPAN_1, demo::MPAN_2);
                let (before, sig, after) = split_signature(&s);
                format!("{before}{forged}{sig}{after}")
            },
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "second_body_signed",
            |p| {
                let u = unsigned(p, 1);
                let body = body_element(&u);
                let twice = replace_once(&u, "</sr:Body>", &format!("</sr:Body>{body}"));
                sign_b(&twice, p)
            },
            expect("malformed", "Body"),
        ),
        case(
            "signed_request_wrapped_in_another_element",
            |p| {
                let s = signed(p, 1);
                let (decl, rest) = split_decl(&s);
                format!(
                    "{decl}<sr:Envelope xmlns:sr=\"http://www.dccinterface.co.uk/ServiceUserGateway\">{rest}</sr:Envelope>"
                )
            },
            expect("bad_signature", "not a child of the root"),
        ),
        case(
            "forged_request_wrapping_the_signed_one",
            |p| {
                // A forged request for another MPAN whose Signature is the
                // real one, with the real request hidden inside its Body.
                let s = signed(p, 1);
                let (_, rest) = split_decl(&s);
                let (before, sig, _) = split_signature(rest);
                let forged = before.replace(demo::MPAN_1, demo::MPAN_2);
                let forged = replace_once(&forged, "</sr:Body>", &format!("{rest}</sr:Body>"));
                format!("{forged}{sig}</sr:Request>")
            },
            expect("bad_signature", "ds:Signature"),
        ),
        case(
            "original_body_moved_into_object",
            |p| {
                let s = signed(p, 1);
                let body = body_element(&s);
                let forged = body.replace(demo::MPAN_1, demo::MPAN_2);
                let s = replace_once(&s, &body, &forged);
                replace_once(
                    &s,
                    "</ds:Signature>",
                    &format!("<ds:Object>{body}</ds:Object></ds:Signature>"),
                )
            },
            expect("bad_signature", "not in the DUIS signature profile"),
        ),
        case(
            "object_appended_to_signature",
            |p| {
                replace_once(
                    &signed(p, 1),
                    "</ds:Signature>",
                    "<ds:Object Id=\"x\">hello</ds:Object></ds:Signature>",
                )
            },
            expect("bad_signature", "not in the DUIS signature profile"),
        ),
        case(
            "signature_removed",
            |p| {
                let (before, _, after) = split_signature(&signed(p, 1));
                format!("{before}{after}")
            },
            expect("bad_signature", "no ds:Signature"),
        ),
    ])
    .await;
}

const C14N_INCLUSIVE: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_EXCLUSIVE: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

fn algorithm(doc: &str, from: &str, to: &str) -> String {
    replace_once(
        doc,
        &format!("Algorithm=\"{from}\""),
        &format!("Algorithm=\"{to}\""),
    )
}

#[tokio::test]
async fn algorithm_substitution_and_signature_values_are_refused() {
    run_all(vec![
        case(
            "signature_method_rsa_sha256",
            |p| {
                algorithm(
                    &signed(p, 1),
                    ECDSA_SHA256,
                    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                )
            },
            expect("bad_signature", "rsa-sha256"),
        ),
        case(
            "signature_method_hmac_sha256",
            |p| {
                algorithm(
                    &signed(p, 1),
                    ECDSA_SHA256,
                    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
                )
            },
            expect("bad_signature", "hmac-sha256"),
        ),
        case(
            "digest_method_sha1",
            |p| {
                algorithm(
                    &signed(p, 1),
                    SHA256,
                    "http://www.w3.org/2000/09/xmldsig#sha1",
                )
            },
            expect("bad_signature", "xmldsig#sha1"),
        ),
        case(
            "canonicalization_inclusive",
            |p| algorithm(&signed(p, 1), C14N_EXCLUSIVE, C14N_INCLUSIVE),
            expect("bad_signature", "REC-xml-c14n-20010315"),
        ),
        case(
            "extra_transform",
            |p| {
                let t = format!("<ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform>");
                replace_once(
                    &signed(p, 1),
                    &t,
                    &format!("{t}<ds:Transform Algorithm=\"{C14N_INCLUSIVE}\"></ds:Transform>"),
                )
            },
            expect("bad_signature", "transforms"),
        ),
        case(
            "reference_uri_fragment",
            |p| {
                replace_once(
                    &signed(p, 1),
                    "<ds:Reference URI=\"\">",
                    "<ds:Reference URI=\"#body\">",
                )
            },
            expect("bad_signature", "#body"),
        ),
        case(
            "reference_uri_external",
            |p| {
                replace_once(
                    &signed(p, 1),
                    "<ds:Reference URI=\"\">",
                    "<ds:Reference URI=\"http://127.0.0.1:9/doc.xml\">",
                )
            },
            expect("bad_signature", "127.0.0.1"),
        ),
        case(
            "reference_without_uri",
            |p| replace_once(&signed(p, 1), "<ds:Reference URI=\"\">", "<ds:Reference>"),
            expect("bad_signature", "Reference"),
        ),
        case(
            "signature_value_truncated_63",
            |p| {
                let s = signed(p, 1);
                let raw = raw_signature(&s);
                with_signature_value(&s, &b64(&raw[..63]))
            },
            expect("bad_signature", "63 bytes"),
        ),
        case(
            "signature_value_padded_65",
            |p| {
                let s = signed(p, 1);
                let mut raw = raw_signature(&s);
                raw.push(0);
                with_signature_value(&s, &b64(&raw))
            },
            expect("bad_signature", "65 bytes"),
        ),
        case(
            "signature_value_128",
            |p| {
                let s = signed(p, 1);
                let raw = raw_signature(&s);
                with_signature_value(&s, &b64(&[raw.clone(), raw].concat()))
            },
            expect("bad_signature", "128 bytes"),
        ),
        case(
            "signature_value_der",
            |p| {
                let s = signed(p, 1);
                let der = der_signature(&raw_signature(&s));
                with_signature_value(&s, &b64(&der))
            },
            expect("bad_signature", "DER"),
        ),
        case(
            "signature_value_not_base64",
            |p| with_signature_value(&signed(p, 1), "!!not*base64??"),
            expect("bad_signature", "base64"),
        ),
        case(
            "signature_value_empty",
            |p| with_signature_value(&signed(p, 1), ""),
            expect("bad_signature", "SignatureValue"),
        ),
        case(
            "signature_value_zero",
            |p| with_signature_value(&signed(p, 1), &b64(&[0u8; 64])),
            expect("bad_signature", "out of range"),
        ),
        case(
            "signature_value_bit_flipped",
            |p| {
                let s = signed(p, 1);
                let mut raw = raw_signature(&s);
                raw[40] ^= 1;
                with_signature_value(&s, &b64(&raw))
            },
            expect("bad_signature", "does not verify"),
        ),
        case(
            "signature_of_another_request",
            |p| {
                let other = signed(p, 2);
                with_signature_value(&signed(p, 1), &signature_value(&other))
            },
            expect("bad_signature", "does not verify"),
        ),
        case(
            "key_info_with_embedded_certificate",
            |p| {
                let cert = b64(org(p, demo::SUPPLIER_B).xml_sign.cert.der());
                replace_once(
                    &signed(p, 1),
                    "</ds:X509Data>",
                    &format!("<ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data>"),
                )
            },
            expect("bad_signature", "KeyInfo"),
        ),
    ])
    .await;
}

fn not_yet_valid() -> Timestamp {
    org(&pki(), demo::SUPPLIER_B).xml_sign.cert.not_before() - jiff::SignedDuration::from_hours(1)
}

fn expired() -> Timestamp {
    org(&pki(), demo::SUPPLIER_B).xml_sign.cert.not_after() + jiff::SignedDuration::from_hours(1)
}

#[tokio::test]
async fn certificates_that_almost_fit_are_refused() {
    run_all(vec![
        case(
            "signed_with_supplier_ds_key_unknown_to_registry",
            |p| {
                let cred = &org(p, demo::SUPPLIER_B).ds;
                text(
                    &ecos_xmldsig::sign(
                        unsigned(p, 1).as_bytes(),
                        &cred.signer().unwrap(),
                        &cred.cert.issuer_rfc2253(),
                        &cred.cert.serial_decimal(),
                    )
                    .unwrap(),
                )
            },
            expect("signer_unknown", ""),
        ),
        case(
            "signed_with_supplier_ds_key_wrong_role",
            |p| {
                let cred = &org(p, demo::SUPPLIER_B).ds;
                text(
                    &ecos_xmldsig::sign(
                        unsigned(p, 1).as_bytes(),
                        &cred.signer().unwrap(),
                        &cred.cert.issuer_rfc2253(),
                        &cred.cert.serial_decimal(),
                    )
                    .unwrap(),
                )
            },
            expect("signer_wrong_role", "OU 87"),
        )
        .registry(Registry::WithSupplierDs),
        case(
            "signed_with_another_organisations_xml_sign_key",
            |p| sign_as(&unsigned(p, 1), p, demo::SUPPLIER_A),
            expect("signer_eui_mismatch", "90-B3-D5-1F-30-03-00-00"),
        ),
        case(
            "xml_sign_certificate_expired",
            |p| signed(p, 1),
            expect("signer_path", ""),
        )
        .at(expired),
        case(
            "xml_sign_certificate_not_yet_valid",
            |p| signed(p, 1),
            expect("signer_path", ""),
        )
        .at(not_yet_valid),
        case(
            "xml_sign_certificate_revoked",
            |p| {
                let a = RequestSpec::new(demo::SUPPLIER_A, demo::ESME_TCOS, 1, demo::MPAN_1);
                text(&a.signed(p).unwrap())
            },
            expect("signer_path", "revoked"),
        )
        .registry(Registry::RevokedSigner)
        .request_id(Some(format!("{}:{}:1", demo::SUPPLIER_A, demo::ESME_TCOS))),
        case(
            "key_info_unknown_serial",
            |p| {
                let serial = org(p, demo::SUPPLIER_B).xml_sign.cert.serial_decimal();
                replace_once(
                    &signed(p, 1),
                    &format!("<ds:X509SerialNumber>{serial}</ds:X509SerialNumber>"),
                    "<ds:X509SerialNumber>123456789</ds:X509SerialNumber>",
                )
            },
            expect("signer_unknown", "123456789"),
        ),
        case(
            "key_info_unknown_issuer",
            |p| {
                let issuer = org(p, demo::SUPPLIER_B).xml_sign.cert.issuer_rfc2253();
                replace_once(
                    &signed(p, 1),
                    &format!("<ds:X509IssuerName>{issuer}</ds:X509IssuerName>"),
                    "<ds:X509IssuerName>CN=Evil CA,OU=07</ds:X509IssuerName>",
                )
            },
            expect("signer_unknown", "Evil CA"),
        ),
        case(
            "key_info_names_another_organisation",
            // KeyInfo swapped to supplier A's certificate: A's key does not
            // verify B's signature.
            |p| {
                let b = &org(p, demo::SUPPLIER_B).xml_sign.cert;
                let a = &org(p, demo::SUPPLIER_A).xml_sign.cert;
                replace_once(
                    &signed(p, 1),
                    &format!(
                        "<ds:X509SerialNumber>{}</ds:X509SerialNumber>",
                        b.serial_decimal()
                    ),
                    &format!(
                        "<ds:X509SerialNumber>{}</ds:X509SerialNumber>",
                        a.serial_decimal()
                    ),
                )
            },
            expect("bad_signature", "does not verify"),
        ),
        case(
            "key_info_serial_negative",
            |p| {
                let serial = org(p, demo::SUPPLIER_B).xml_sign.cert.serial_decimal();
                replace_once(
                    &signed(p, 1),
                    &format!("<ds:X509SerialNumber>{serial}</ds:X509SerialNumber>"),
                    &format!("<ds:X509SerialNumber>-{serial}</ds:X509SerialNumber>"),
                )
            },
            expect("bad_signature", "positive decimal"),
        ),
    ])
    .await;
}

// ---------------------------------------------------------------------------
// Replays and counters

#[tokio::test]
async fn replays_are_refused() {
    let w = world().await;
    let first = signed(&w.pki, 5);
    assert_accepted(&w, "first", first.as_bytes(), at()).await;

    // The same RequestID (the same bytes) again.
    assert_refused(
        &w,
        "same_request_twice",
        first.as_bytes(),
        at(),
        None,
        &expect(
            "request_id_reused",
            "was used before (that request is dispatched)",
        ),
    )
    .await;
    // Stored as the accepted one, not overwritten by the replay's refusal.
    let stored = w
        .party
        .store()
        .request(&request_id(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, RequestState::Dispatched);

    // A lower counter.
    assert_refused(
        &w,
        "lower_counter",
        signed(&w.pki, 4).as_bytes(),
        at(),
        Some(&request_id(4)),
        &expect("replay", "counter 4 is not above 5"),
    )
    .await;
    assert_eq!(w.sent.count(), 1);
    assert_accepted(&w, "higher_counter", signed(&w.pki, 6).as_bytes(), at()).await;
}

#[tokio::test]
async fn counter_zero_then_one_are_accepted() {
    let w = world().await;
    assert_accepted(&w, "counter_0", signed(&w.pki, 0).as_bytes(), at()).await;
    assert_refused(
        &w,
        "counter_0_again",
        signed(&w.pki, 0).as_bytes(),
        at(),
        None,
        &expect("request_id_reused", "was used before"),
    )
    .await;
    assert_accepted(&w, "counter_1", signed(&w.pki, 1).as_bytes(), at()).await;
}

#[tokio::test]
async fn counter_u64_max_is_accepted_once_then_every_counter_is_refused() {
    let w = world().await;
    assert_accepted(&w, "u64_max", signed(&w.pki, u64::MAX).as_bytes(), at()).await;
    // The same RequestID again is a reuse; every other counter is a replay.
    assert_refused(
        &w,
        "u64_max_again",
        signed(&w.pki, u64::MAX).as_bytes(),
        at(),
        None,
        &expect("request_id_reused", "was used before"),
    )
    .await;
    for c in [u64::MAX - 1, 0, 1, 1 << 63] {
        assert_refused(
            &w,
            "after_u64_max",
            signed(&w.pki, c).as_bytes(),
            at(),
            None,
            &expect("replay", "18446744073709551615, the last one"),
        )
        .await;
    }
    // The counter is per originator: another device does not reset it.
    let other = RequestSpec::new(demo::SUPPLIER_B, demo::GSME_TCOS, u64::MAX, demo::MPRN_1);
    assert_refused(
        &w,
        "u64_max_other_device",
        &other.signed(&w.pki).unwrap(),
        at(),
        None,
        &expect("replay", ""),
    )
    .await;
    assert_eq!(w.sent.count(), 1);
}

/// A signed request whose RequestID counter text is `counter` (the writer
/// takes a u64, so the text is patched before signing).
fn with_counter_text(pki: &TestPki, counter: &str) -> String {
    let u = replace_once(
        &unsigned(pki, 7),
        ":7</sr:RequestID>",
        &format!(":{counter}</sr:RequestID>"),
    );
    sign_b(&u, pki)
}

#[tokio::test]
async fn malformed_counters_are_refused() {
    run_all(vec![
        case(
            "counter_2_pow_64",
            |p| with_counter_text(p, "18446744073709551616"),
            expect("malformed", "18446744073709551616"),
        )
        .request_id(None),
        case(
            "counter_leading_zero",
            |p| with_counter_text(p, "07"),
            expect("malformed", "leading zero"),
        )
        .request_id(None),
        case(
            "counter_negative",
            |p| with_counter_text(p, "-7"),
            expect("malformed", "counter"),
        )
        .request_id(None),
        case(
            "counter_plus_sign",
            |p| with_counter_text(p, "+7"),
            expect("malformed", "counter"),
        )
        .request_id(None),
        case(
            "counter_hex",
            |p| with_counter_text(p, "0x7"),
            expect("malformed", "counter"),
        )
        .request_id(None),
        case(
            "counter_empty",
            |p| with_counter_text(p, ""),
            expect("malformed", "counter"),
        )
        .request_id(None),
        case(
            "counter_huge",
            |p| with_counter_text(p, &"9".repeat(400)),
            expect("malformed", "counter"),
        )
        .request_id(None),
    ])
    .await;
}

// ---------------------------------------------------------------------------
// Known bugs (the lead fixes the pipeline; the tests assert the correct behaviour)

/// An unsigned forgery naming supplier B's next RequestID (anyone can post
/// one: the header is read before the signature is checked).
fn unsigned_forgery(pki: &TestPki, counter: u64) -> String {
    let (before, _, after) = split_signature(&signed(pki, counter));
    format!("{before}{after}")
}

/// Reproduction: POST an unsigned copy of a 6.23 carrying RequestID
/// `B:ESME:1` (refused `bad_signature`, but stored as a `rejected` request
/// under that RequestID), then B's genuine, correctly signed request with
/// RequestID `B:ESME:1`. Today: `Party::process` returns
/// `Err(store: request "…:1" already exists)` (HTTP 500 from `submit`)
/// *after* `advance_request_counter` has moved B's last counter to 1, so the
/// retry is refused as `replay` ("counter 1 is not above 1") although nothing
/// was ever accepted. An unauthenticated poster can thus burn any supplier's
/// RequestIDs. Correct: the genuine request is accepted (a refusal of an
/// unverified document must not reserve its RequestID), and never a 500.
#[tokio::test]
async fn forged_refusal_does_not_take_the_genuine_request_id() {
    use ecos_party::ServiceRequestHandler as _;
    let w = world().await;
    assert_refused(
        &w,
        "unsigned_forgery",
        unsigned_forgery(&w.pki, 1).as_bytes(),
        at(),
        Some(&request_id(1)),
        &expect("bad_signature", "no ds:Signature"),
    )
    .await;
    let genuine = signed(&w.pki, 1);
    let answer = w.party.submit(genuine.as_bytes(), at()).await;
    assert_eq!(
        answer.http_status,
        200,
        "genuine request after a forgery: {}",
        text(&answer.body)
    );
    assert!(
        text(&answer.body).contains("<sr:ResponseCode>I99</sr:ResponseCode>"),
        "genuine request after a forgery is not accepted: {}",
        text(&answer.body)
    );
    assert_eq!(w.sent.count(), 1);
    let stored = w
        .party
        .store()
        .request(&request_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, RequestState::Dispatched);
}

/// Reproduction: B's signed request with RequestID `B:ESME:1` and a wrong
/// ImportMPxN (refused `mpxn_mismatch`, stored as `rejected`), then B's
/// corrected request reusing RequestID `B:ESME:1`. Today: HTTP 500 (`store:
/// request "…:1" already exists`) and the counter is consumed. Correct: a
/// DUIS answer (HTTP 200): accepted, or refused as a reused RequestID with an
/// error acknowledgement; never a 500, and never a counter advanced for a
/// request that was not stored as accepted.
#[tokio::test]
async fn request_id_of_a_refused_request_reused_is_refused_not_a_500() {
    use ecos_party::ServiceRequestHandler as _;
    let w = world().await;
    let mut wrong = spec(1);
    wrong.import_mpxn = demo::MPAN_2.into();
    assert_refused(
        &w,
        "wrong_mpxn",
        &wrong.signed(&w.pki).unwrap(),
        at(),
        Some(&request_id(1)),
        &expect("mpxn_mismatch", demo::MPAN_2),
    )
    .await;
    let corrected = signed(&w.pki, 1);
    let answer = w.party.submit(corrected.as_bytes(), at()).await;
    assert_eq!(
        answer.http_status,
        200,
        "corrected request reusing a refused RequestID: {}",
        text(&answer.body)
    );
    let sent = w.sent.count();
    let stored = w
        .party
        .store()
        .request(&request_id(1))
        .await
        .unwrap()
        .unwrap();
    if sent == 0 {
        assert_eq!(stored.state, RequestState::Rejected);
        // Nothing was accepted with counter 1, so counter 2 must not be
        // refused as a replay of it... and counter 1 must not count as used.
        let last = w
            .party
            .check(signed(&w.pki, 1).as_bytes(), at())
            .await
            .err()
            .map(|r| r.reason);
        assert!(
            !matches!(
                last,
                Some(Reason::Replay {
                    last_accepted: 1,
                    ..
                })
            ),
            "counter 1 recorded as accepted although the request was refused: {last:?}"
        );
    } else {
        assert_eq!(stored.state, RequestState::Dispatched);
    }
}

// ---------------------------------------------------------------------------
// More tampering and races

#[tokio::test]
async fn more_tampering_is_refused() {
    run_all(vec![
        case(
            "whitespace_inserted_between_elements_after_signing",
            // W3C-strict by default (`xml_whitespace_compat` off): a
            // pretty-printed copy of a compact signed request does not verify.
            |p| replace_once(&signed(p, 1), "<sr:Body>", "\n  <sr:Body>"),
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "attribute_changed_after_signing",
            |p| {
                replace_once(
                    &signed(p, 1),
                    "schemaVersion=\"5.4\"",
                    "schemaVersion=\"5.1\"",
                )
            },
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "attribute_added_after_signing",
            |p| replace_once(&signed(p, 1), "<sr:Body>", "<sr:Body xml:lang=\"en\">"),
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "second_header_added_after_signing",
            |p| {
                let s = signed(p, 1);
                let a = s.find("<sr:Header>").unwrap();
                let b = s.find("</sr:Header>").unwrap() + "</sr:Header>".len();
                let header = s[a..b].replace(":1</sr:RequestID>", ":2</sr:RequestID>");
                replace_once(&s, "<sr:Body>", &format!("{header}<sr:Body>"))
            },
            expect("bad_signature", "digest mismatch"),
        ),
        case(
            "signed_info_changed",
            // The digest still matches the content, but SignedInfo (what is
            // signed) no longer does.
            |p| {
                replace_once(
                    &signed(p, 1),
                    "<ds:Reference URI=\"\">",
                    "<ds:Reference URI=\"\" Id=\"r\">",
                )
            },
            expect("bad_signature", ""),
        ),
        case(
            "digest_value_wrong_length",
            |p| {
                let s = signed(p, 1);
                let a = s.find("<ds:DigestValue>").unwrap() + "<ds:DigestValue>".len();
                let b = s.find("</ds:DigestValue>").unwrap();
                format!("{}{}{}", &s[..a], b64(&[7u8; 20]), &s[b..])
            },
            expect("bad_signature", "DigestValue is 20 bytes"),
        ),
        case(
            "signature_value_very_long",
            |p| with_signature_value(&signed(p, 1), &b64(&vec![1u8; 600_000])),
            expect("malformed", "limit is"),
        ),
        case(
            "key_info_serial_huge",
            |p| {
                let serial = org(p, demo::SUPPLIER_B).xml_sign.cert.serial_decimal();
                replace_once(
                    &signed(p, 1),
                    &format!("<ds:X509SerialNumber>{serial}</ds:X509SerialNumber>"),
                    &format!(
                        "<ds:X509SerialNumber>{}</ds:X509SerialNumber>",
                        "9".repeat(5000)
                    ),
                )
            },
            // (The detail calls it "not a positive decimal integer"; it is
            // one, only too long for a certificate serial.)
            expect("bad_signature", "X509SerialNumber"),
        ),
        case(
            "service_reference_variant_unknown_signed",
            |p| {
                let u = unsigned(p, 1).replace(">6.23<", ">6.24<");
                sign_b(&u, p)
            },
            expect(
                "malformed",
                "ServiceReferenceVariant: invalid value \"6.24\"",
            ),
        ),
        case(
            "signature_in_another_namespace",
            // The element is named ds:Signature but ds is bound elsewhere:
            // the document has no XML-DSig signature.
            |p| {
                replace_once(
                    &signed(p, 1),
                    "<ds:Signature>",
                    "<ds:Signature xmlns:ds=\"urn:evil\">",
                )
            },
            expect("bad_signature", "no ds:Signature"),
        ),
    ])
    .await;
}

/// The same valid request posted eight times at once: exactly one is
/// accepted and sent; every other copy is refused as a replay (none is a 500).
///
/// Reproduction (at 6067570): eight `Party::process` calls on one signed
/// request (`B:ESME_TCOS:42`) polled together on one task. Every copy passes
/// the checks (the replay check reads the counter before any copy advances
/// it); the losers of `advance_request_counter` go to `refuse`, whose
/// `insert_refused` races the winner's `insert_request`: one call returns
/// `Err(store: request "…:42" already exists)`, an HTTP 500 from `submit`.
/// Correct: one acceptance, seven `replay` refusals with a DUIS answer.
#[tokio::test]
async fn concurrent_copies_of_one_request_are_refused_not_a_500() {
    let w = world().await;
    let doc = signed(&w.pki, 42);
    let runs = (0..8).map(|_| w.party.process(doc.as_bytes(), at()));
    let results = futures_util::future::join_all(runs).await;
    let mut accepted = 0;
    for r in results {
        match r {
            Ok((_, Outcome::Accepted { .. })) => accepted += 1,
            Ok((answer, Outcome::Refused(r))) => {
                assert!(
                    matches!(r.reason.code(), "replay" | "request_id_reused"),
                    "{}",
                    r.reason
                );
                assert_eq!(answer.http_status, 200);
            }
            Ok((_, other)) => panic!("{other:?}"),
            Err(e) => panic!("a concurrent copy failed internally (HTTP 500): {e}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(w.sent.count(), 1);
    let stored = w
        .party
        .store()
        .request(&request_id(42))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, RequestState::Dispatched);
}

#[path = "attacks/mutants.rs"]
mod mutants;
