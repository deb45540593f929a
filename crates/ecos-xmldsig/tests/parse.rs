//! The hardened parse entry point: every refusal is typed and positioned.

use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{Limits, ParseError, Position, parse};
use proptest::prelude::*;

fn err(xml: &str, limits: &Limits) -> ParseError {
    parse(xml.as_bytes(), limits).expect_err(xml)
}

#[test]
fn every_doctype_is_refused() {
    for xml in [
        "<!DOCTYPE r><r/>",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE r []><r/>",
        "<!DOCTYPE r [<!ENTITY e \"x\">]><r>&e;</r>",
        "<!DOCTYPE r SYSTEM \"http://example.invalid/r.dtd\"><r/>",
        "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]><r>&b;</r>",
        "<!-- x -->\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><r>&xxe;</r>",
    ] {
        match err(xml, &Limits::default()) {
            ParseError::Doctype { at } => assert!(at.line >= 1),
            other => panic!("{xml}: {other:?}"),
        }
    }
    match err(
        "<?xml version=\"1.0\"?>\n\n<!DOCTYPE r><r/>",
        &Limits::default(),
    ) {
        ParseError::Doctype { at } => assert_eq!(at, Position { line: 3, column: 1 }),
        other => panic!("{other:?}"),
    }
    // Undeclared entities are not resolved either.
    assert!(matches!(
        err("<r>&xxe;</r>", &Limits::default()),
        ParseError::Malformed { .. }
    ));
}

#[test]
fn size_depth_nodes_attributes_and_text_are_capped() {
    let l = Limits::default();
    assert_eq!(l.max_bytes, 1 << 20);
    let big = format!("<r>{}</r>", "x".repeat(1 << 20));
    assert!(matches!(err(&big, &l), ParseError::TooLarge { max, .. } if max == 1 << 20));

    let deep = format!("{}{}", "<a>".repeat(33), "</a>".repeat(33));
    match err(&deep, &l) {
        ParseError::TooDeep {
            depth: 33,
            max: 32,
            path,
            at,
        } => {
            assert_eq!(path, format!("/{}", vec!["a"; 33].join("/")));
            assert_eq!(
                at,
                Position {
                    line: 1,
                    column: 97
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let ok = format!("{}{}", "<a>".repeat(32), "</a>".repeat(32));
    parse(ok.as_bytes(), &l).unwrap();
    // Far deeper than any stack could take: refused by the caps, no panic.
    let abyss = format!("{}{}", "<a>".repeat(140_000), "</a>".repeat(140_000));
    assert!(matches!(
        err(&abyss, &l.clone().with_max_nodes(1_000_000)),
        ParseError::TooDeep { .. }
    ));

    let many = format!("<r>{}</r>", "<e/>".repeat(100));
    assert!(matches!(
        err(&many, &l.clone().with_max_nodes(50)),
        ParseError::TooManyNodes { max: 50 }
    ));

    let attrs: String = (0..33).map(|i| format!(" a{i}=\"v\"")).collect();
    match err(&format!("<r><s{attrs}/></r>"), &l) {
        ParseError::TooManyAttributes {
            count: 33, path, ..
        } => assert_eq!(path, "/r/s"),
        other => panic!("{other:?}"),
    }

    let small = l.clone().with_max_text_len(10);
    match err("<r><s>01234567890</s></r>", &small) {
        ParseError::TextTooLong {
            what,
            path,
            len: 11,
            ..
        } => {
            assert_eq!((what.as_str(), path.as_str()), ("text", "/r/s"))
        }
        other => panic!("{other:?}"),
    }
    match err("<r><s a=\"01234567890\"/></r>", &small) {
        ParseError::TextTooLong { what, .. } => assert_eq!(what, "attribute a"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn encodings_and_namespaces() {
    assert!(matches!(
        err("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r/>", &Limits::default()),
        ParseError::Encoding { declared } if declared == "ISO-8859-1"
    ));
    parse(
        b"<?xml version=\"1.0\" encoding='utf-8'?><r/>",
        &Limits::default(),
    )
    .unwrap();
    parse("\u{FEFF}<r/>".as_bytes(), &Limits::default()).unwrap();
    assert!(matches!(
        parse(b"<r>\xff</r>", &Limits::default()),
        Err(ParseError::NotUtf8 { offset: 3 })
    ));
    assert!(matches!(
        parse(b"\xff\xfe<\x00r\x00/\x00>\x00", &Limits::default()),
        Err(ParseError::NotUtf8 { offset: 0 })
    ));
    match err(
        "<r xmlns:p=\"urn:p\"><s xmlns:p=\"\"/></r>",
        &Limits::default(),
    ) {
        ParseError::PrefixUndeclaration { prefix, path, .. } => {
            assert_eq!((prefix.as_str(), path.as_str()), ("p", "/r/s"))
        }
        other => panic!("{other:?}"),
    }
    match err("<r>\n  <p:s/>\n</r>", &Limits::default()) {
        ParseError::Malformed { at, message } => {
            assert_eq!(at, Position { line: 2, column: 4 });
            assert!(message.contains('p'), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        err("<r></s>", &Limits::default()),
        ParseError::Malformed { .. }
    ));
    assert!(matches!(
        err("", &Limits::default()),
        ParseError::Malformed { .. }
    ));
    // Errors display what and where.
    let e = err("<r>\n<s></r>", &Limits::default());
    assert!(e.to_string().starts_with("malformed XML at 2:"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes: an error or a tree, never a panic; whatever parses
    /// canonicalises, and canonical output re-parses to itself.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(doc) = parse(&bytes, &Limits::default()) {
            let c = c14n::document_to_vec(&doc, Options::INCLUSIVE, None);
            let again = parse(&c, &Limits::default()).unwrap();
            prop_assert_eq!(c14n::document_to_vec(&again, Options::INCLUSIVE, None), c);
            let _ = c14n::document_to_vec(&doc, Options::EXCLUSIVE.with_comments(), None);
        }
    }

    /// XML-ish token soup reaches deeper into the parser.
    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(prop::sample::select(vec![
        "<a>", "</a>", "<b:c xmlns:b='urn:b'>", "</b:c>", "<d x='1' y=\"&amp;\"/>", "text", "&#9;",
        "&#xD;", "<!--c-->", "<?p q?>", "<![CDATA[<]]>", "&lt;", "<!DOCTYPE", "xmlns=''", " ", "\r\n",
    ]), 0..30)) {
        let s: String = parts.concat();
        if let Ok(doc) = parse(s.as_bytes(), &Limits::default()) {
            let c = c14n::document_to_vec(&doc, Options::INCLUSIVE.with_comments(), None);
            prop_assert!(parse(&c, &Limits::default()).is_ok());
        }
    }
}

#[test]
fn line_ends_are_normalised_by_prepare() {
    use ecos_xmldsig::{parse_prepared, prepare};
    let raw = "<r>a&gt;\r<b/>x\r\ny&#13;<!--c\r\nd--><?p q\rr?></r>";
    match parse(raw.as_bytes(), &Limits::default()) {
        Err(ParseError::CarriageReturn { at }) => assert_eq!(at, Position { line: 1, column: 9 }),
        other => panic!("{other:?}"),
    }
    let text = prepare(raw.as_bytes(), &Limits::default()).unwrap();
    let doc = parse_prepared(&text, &Limits::default()).unwrap();
    // A literal CR after a reference is a line end (roxmltree alone keeps it
    // as CR); `&#13;` stays a CR; comments and PIs are normalised too.
    assert_eq!(
        String::from_utf8(c14n::document_to_vec(
            &doc,
            Options::INCLUSIVE.with_comments(),
            None
        ))
        .unwrap(),
        "<r>a&gt;\n<b></b>x\ny&#xD;<!--c\nd--><?p q\nr?></r>"
    );
    assert!(matches!(
        prepare(b"<r/>", &Limits::default()).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn a_pi_named_xml_is_refused() {
    // Found by the c14n_inclusive fuzz target: roxmltree takes `<?xml&...?>`
    // for a PI with target "xml", whose canonical form would not re-parse.
    for xml in [
        "<?xml&version=\"1.0\"?><r/>",
        "<r><?XmL x?></r>",
        "<r/><?xml?>",
    ] {
        match err(xml, &Limits::default()) {
            ParseError::ReservedPiTarget { target, .. } => {
                assert!(target.eq_ignore_ascii_case("xml"))
            }
            other => panic!("{xml}: {other:?}"),
        }
    }
    parse(b"<?xml-stylesheet x?><r><?xmlfoo?></r>", &Limits::default()).unwrap();
}
