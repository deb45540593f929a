//! `read_signed` over the verifier's tree (the `ds:Signature` left out) reads
//! exactly what `read_request` reads from the canonical bytes that were
//! digested: the same request, or the same error, for documents around the
//! edges of the equivalence (text beside the signature, a missing body,
//! CDATA, character references, PIs, the value-length and node caps).

mod common;

use ecos_duis::{Limits, read_request, read_signed};
use ecos_smki::{TestPki, TestPkiSpec};
use ecos_xmldsig::c14n::{self, Options};

fn signed_request() -> String {
    signed_request_and_key().0
}

fn signed_request_and_key() -> (String, ecos_smki::P256PublicKey) {
    let pki = TestPki::generate(&TestPkiSpec::demo()).expect("test PKI");
    let r = common::org_b_request(&pki, ecos_duis::Execution::Immediate, "1312345678333");
    let (signed, cert) = common::signed_by_org_b(&pki, &r);
    (
        String::from_utf8(signed).unwrap(),
        cert.public_key().clone(),
    )
}

/// Both ways agree on `doc` (skipped when the verifier's parser or the
/// profile would refuse it before any reading).
fn same(doc: &str) -> Result<(), String> {
    let limits = ecos_xmldsig::Limits::default();
    let tree = ecos_xmldsig::parse(doc.as_bytes(), &limits).expect("the mutant parses");
    let sig = tree
        .root_element()
        .children()
        .rfind(|n| n.tag_name().name() == "Signature")
        .expect("a signature in the root");
    let bytes = c14n::document_to_vec(&tree, Options::INCLUSIVE, Some(sig.id()));
    let by_bytes = read_request(&bytes, &Limits::default()).map_err(|e| e.to_string());
    let by_tree = read_signed(
        &bytes,
        Some(ecos_xmldsig::SignedTree::Roxml(&tree, sig.id())),
        &Limits::default(),
    )
    .map_err(|e| e.to_string());
    assert_eq!(
        by_tree,
        by_bytes,
        "document: {}",
        &doc[..doc.len().min(400)]
    );
    by_tree.map(|_| ())
}

#[test]
fn the_tree_reads_as_the_canonical_bytes() {
    let doc = signed_request();
    assert!(same(&doc).is_ok(), "the signed request reads");
    let body_start = doc.find("<sr:Body>").unwrap();
    let body_end = doc.find("</sr:Body>").unwrap() + "</sr:Body>".len();
    let no_body = format!("{}{}", &doc[..body_start], &doc[body_end..]);
    let ws = " ".repeat(40_000);
    let many = "<sr:X/>".repeat(12_000);
    let long = "v".repeat(70_000);
    let cases: Vec<(&str, String, bool)> = vec![
        ("no body: Body missing, not a Signature", no_body, false),
        (
            "junk before the signature",
            doc.replace("<ds:Signature", "junk<ds:Signature"),
            false,
        ),
        (
            "whitespace around the signature",
            doc.replace("<ds:Signature", "\n  <ds:Signature")
                .replace("</ds:Signature>", "</ds:Signature>\n"),
            true,
        ),
        (
            "long whitespace either side: joined, over the value cap",
            doc.replace("<ds:Signature", &format!("{ws}<ds:Signature"))
                .replace("</ds:Signature>", &format!("</ds:Signature>{ws}")),
            false,
        ),
        (
            "CDATA value",
            doc.replace(">1312345678333<", "><![CDATA[13123]]>45678333<"),
            true,
        ),
        (
            "character reference",
            doc.replace(">1312345678333<", ">&#49;312345678333<"),
            true,
        ),
        (
            "PI in the header",
            doc.replace("<sr:CommandVariant>", "<?pi x?><sr:CommandVariant>"),
            false,
        ),
        (
            "text in the body",
            doc.replace("<sr:Body>", "<sr:Body>x"),
            false,
        ),
        (
            "attribute on the root",
            doc.replacen("schemaVersion=", "foo=\"1\" schemaVersion=", 1),
            false,
        ),
        (
            "two unexpected attributes on the root, out of canonical order",
            doc.replacen("schemaVersion=", "x=\"m\" i=\".\" schemaVersion=", 1),
            false,
        ),
        (
            "a namespaced, then a plain unexpected attribute on the body",
            doc.replace("<sr:Body>", "<sr:Body xmlns:z=\"urn:z\" z:a=\"1\" b=\"2\">"),
            false,
        ),
        (
            "two attribute values over the value cap, out of canonical order",
            doc.replace(
                "<sr:Header>",
                &format!("<sr:Header y=\"{long}\" b=\"{long}\">"),
            ),
            false,
        ),
        (
            "more nodes than the DUIS cap: parsed instead",
            doc.replace("<sr:Body>", &format!("<sr:Body>{many}")),
            false,
        ),
        (
            "a second body element",
            doc.replace(
                "</sr:UpdateSecurityCredentialsCoS>",
                "</sr:UpdateSecurityCredentialsCoS><sr:ReadInventory/>",
            ),
            false,
        ),
    ];
    for (name, mutant, reads) in cases {
        assert_eq!(same(&mutant).is_ok(), reads, "{name}");
    }
}

#[test]
fn a_comment_makes_the_verifier_offer_the_bytes_only() {
    let (doc, key) = signed_request_and_key();
    let split = doc.replace(">1312345678333<", ">131234<!-- split -->5678333<");
    let read = |d: &str| {
        ecos_xmldsig::verify_then(
            d.as_bytes(),
            &ecos_xmldsig::VerifyOptions::default(),
            |_, _| Some(key.clone()),
            |c| {
                let offered = c.tree.is_some();
                (
                    offered,
                    read_signed(c.bytes, c.tree, &Limits::default()).unwrap(),
                )
            },
        )
        .expect("verifies: comments are not signed content")
        .1
    };
    let (offered, plain) = read(&doc);
    assert!(offered, "no comment: the tree is offered");
    let (offered, with_comment) = read(&split);
    assert!(!offered, "a comment: only the canonical bytes are offered");
    assert_eq!(plain, with_comment, "the comment does not split the value");
}

/// Fuzz finding (xmldsig `fast_vs_slow`, session 7; regression file
/// `fuzz/xmldsig/regressions/fast_vs_slow/unexpected_attribute_named_in_document_order.xml`):
/// with two unexpected attributes on an element, the reader named the first
/// in document order, so over the verifier's tree it named another
/// attribute than over the canonical bytes (attributes sorted), and the
/// general path's error differed from the fast path's. The first in
/// canonical order is named now, whichever way the document is given.
#[test]
fn unexpected_attribute_named_in_canonical_order() {
    let doc = signed_request();
    for (mutant, named) in [
        (
            doc.replacen("schemaVersion=", "x=\"m\" i=\".\" schemaVersion=", 1),
            "i",
        ),
        (
            doc.replace("<sr:Body>", "<sr:Body xmlns:z=\"urn:z\" z:a=\"1\" b=\"2\">"),
            "b",
        ),
        (
            doc.replace("<sr:Body>", "<sr:Body b=\"2\" xmlns:z=\"urn:z\" z:a=\"1\">"),
            "b",
        ),
    ] {
        let err = same(&mutant).expect_err("an unexpected attribute");
        assert!(
            err.ends_with(&format!("unexpected attribute {named}")),
            "{err}"
        );
        let as_written = read_request(mutant.as_bytes(), &Limits::default())
            .expect_err("an unexpected attribute")
            .to_string();
        assert_eq!(as_written, err, "the document as written names the same");
    }
}
