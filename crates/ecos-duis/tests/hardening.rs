//! Hostile inputs: DOCTYPE/XXE, entity expansion, size, depth, fan-out,
//! attributes and values; and a property test over mutated templates.

mod common;

use ecos_duis::{DuisError, Limits, read_request, read_request_header};
use proptest::prelude::*;

const SR: &str = "http://www.dccinterface.co.uk/ServiceUserGateway";

fn header() -> &'static str {
    "<sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1</sr:RequestID>\
     <sr:CommandVariant>8</sr:CommandVariant><sr:ServiceReference>8.2</sr:ServiceReference>\
     <sr:ServiceReferenceVariant>8.2</sr:ServiceReferenceVariant></sr:Header>"
}

/// A small self-contained 8.2 request with `body` inside `sr:ReadInventory`.
fn request_with(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><sr:Request xmlns:sr=\"{SR}\" schemaVersion=\"5.4\">{}<sr:Body><sr:ReadInventory>{body}</sr:ReadInventory></sr:Body></sr:Request>",
        header()
    )
}

#[test]
fn baseline_document_is_read() {
    let doc = request_with("<sr:DeviceID>00-DB-12-34-56-78-90-A2</sr:DeviceID>");
    let r = read_request(doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(r.header().service_reference, "8.2");
}

#[test]
fn every_doctype_is_refused() {
    let body = request_with("");
    let root_at = body.find("<sr:Request").unwrap();
    let (decl, rest) = body.split_at(root_at);
    let doctypes = [
        // XXE (file and network)
        r#"<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>"#,
        r#"<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "http://127.0.0.1:1/x"> ]>"#,
        // billion laughs
        r#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>"#,
        // parameter entities and an external DTD
        r#"<!DOCTYPE foo [ <!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p; ]>"#,
        r#"<!DOCTYPE sr:Request SYSTEM "duis.dtd">"#,
        // an empty DOCTYPE, which roxmltree alone would accept
        "<!DOCTYPE sr:Request>",
        "<!DOCTYPE sr:Request []>",
    ];
    for dt in doctypes {
        for prefix in ["", "<!-- c -->", "<?pi x?>\n"] {
            let doc = format!("{decl}{prefix}{dt}{rest}");
            assert_eq!(
                read_request(doc.as_bytes(), &Limits::default()),
                Err(DuisError::DoctypeRefused),
                "{dt}"
            );
            assert_eq!(
                read_request_header(doc.as_bytes(), &Limits::default()),
                Err(DuisError::DoctypeRefused)
            );
        }
    }
    // with the entity used in the body too
    let doc = format!(
        "{decl}<!DOCTYPE foo [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>{}",
        rest.replace("<sr:ReadInventory>", "<sr:ReadInventory>&xxe;")
    );
    assert_eq!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::DoctypeRefused)
    );
}

#[test]
fn undeclared_entities_are_malformed() {
    let doc = request_with("&lol9;");
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::Xml { .. })
    ));
}

#[test]
fn size_cap() {
    let limits = Limits::default();
    let pad = "a".repeat(limits.max_bytes);
    let doc = request_with(&format!("<!--{pad}-->"));
    assert_eq!(
        read_request(doc.as_bytes(), &limits),
        Err(DuisError::TooLarge {
            size: doc.len(),
            limit: limits.max_bytes
        })
    );
    let small = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let doc = request_with("");
    assert!(matches!(
        read_request(doc.as_bytes(), &small),
        Err(DuisError::TooLarge { limit: 100, .. })
    ));
}

#[test]
fn depth_cap_names_the_element() {
    let depth = 40;
    let body = format!("{}{}", "<sr:X>".repeat(depth), "</sr:X>".repeat(depth));
    let doc = request_with(&body);
    let e = read_request(doc.as_bytes(), &Limits::default()).unwrap_err();
    let DuisError::TooDeep { path, depth, limit } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((*depth, *limit), (33, 32));
    assert!(
        path.starts_with("/Request/Body/ReadInventory/X/X/"),
        "{path}"
    );
    assert!(e.to_string().contains("depth 33"));
}

#[test]
fn very_deep_nesting_does_not_overflow_the_stack() {
    let depth = 100_000; // 700 KB, under the size cap
    let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    let doc = format!("<sr:Request xmlns:sr=\"{SR}\" schemaVersion=\"5.4\">{body}</sr:Request>");
    // default node cap first
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::TooManyNodes { limit: 10_000 })
    ));
    // with the node cap lifted, the depth cap still answers without recursion
    let lifted = Limits {
        max_nodes: u32::MAX,
        max_bytes: 8 << 20,
        ..Limits::default()
    };
    assert!(matches!(
        read_request(doc.as_bytes(), &lifted),
        Err(DuisError::TooDeep { depth: 33, .. })
    ));
}

#[test]
fn node_cap_limits_fan_out() {
    let body = "<sr:X/>".repeat(20_000);
    let doc = request_with(&body);
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::TooManyNodes { .. })
    ));
}

#[test]
fn attribute_caps() {
    let huge = "x".repeat(100_000);
    let doc = request_with(&format!("<sr:DeviceID a=\"{huge}\">1</sr:DeviceID>"));
    let e = read_request(doc.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&e, DuisError::ValueTooLong { path, what, len: 100_000, .. }
            if path == "/Request/Body/ReadInventory/DeviceID" && what == "attribute a"),
        "{e:?}"
    );
    let many: String = (0..100).map(|i| format!(" a{i}=\"v\"")).collect();
    let doc = request_with(&format!("<sr:DeviceID{many}>1</sr:DeviceID>"));
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::TooManyAttributes {
            count: 100,
            limit: 16,
            ..
        })
    ));
    // attribute on the root that the schema does not know
    let doc = request_with("").replace("schemaVersion=", "foo=\"1\" schemaVersion=");
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::UnexpectedAttribute { .. })
    ));
}

#[test]
fn text_cap() {
    let doc = request_with(&format!(
        "<sr:DeviceID>{}</sr:DeviceID>",
        "A".repeat(70_000)
    ));
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::ValueTooLong { len: 70_000, .. })
    ));
    // character references count after expansion, and are capped as well
    let doc = request_with(&format!(
        "<sr:DeviceID>{}</sr:DeviceID>",
        "&#65;".repeat(70_000)
    ));
    assert!(matches!(
        read_request(doc.as_bytes(), &Limits::default()),
        Err(DuisError::ValueTooLong { .. })
    ));
}

#[test]
fn encoding_and_garbage() {
    let mut bad = request_with("").into_bytes();
    bad.insert(60, 0xFF);
    assert!(matches!(
        read_request(&bad, &Limits::default()),
        Err(DuisError::NotUtf8 { offset: 60 })
    ));
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(request_with("").encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    assert!(matches!(
        read_request(&utf16, &Limits::default()),
        Err(DuisError::NotUtf8 { .. })
    ));
    for junk in [
        &b""[..],
        b"<",
        b"<sr:Request",
        b"\0\0\0",
        b"<a></b>",
        b"<?xml version=\"1.0\"?>",
    ] {
        let e = read_request(junk, &Limits::default()).unwrap_err();
        assert!(matches!(e, DuisError::Xml { .. }), "{junk:?}: {e:?}");
    }
    // a UTF-8 BOM is fine
    let with_bom = format!("\u{FEFF}{}", request_with(""));
    assert!(read_request(with_bom.as_bytes(), &Limits::default()).is_ok());
}

fn error_path(e: &DuisError) -> Option<&str> {
    match e {
        DuisError::TooDeep { path, .. }
        | DuisError::TooManyAttributes { path, .. }
        | DuisError::ValueTooLong { path, .. }
        | DuisError::MissingElement { path, .. }
        | DuisError::DuplicateElement { path, .. }
        | DuisError::MisplacedElement { path, .. }
        | DuisError::UnexpectedElement { path, .. }
        | DuisError::UnexpectedContent { path, .. }
        | DuisError::UnexpectedAttribute { path, .. }
        | DuisError::MissingAttribute { path, .. }
        | DuisError::InvalidValue { path, .. }
        | DuisError::RequestId { path, .. }
        | DuisError::ServiceMismatch { path, .. } => Some(path),
        _ => None,
    }
}

/// The RTDS 6.23 template, or (without fixtures) a generated 6.23 request
/// written one element per line so that line mutations stay meaningful.
fn template() -> String {
    static T: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        if let Some(t) = common::immediate_template() {
            return t;
        }
        let pki = ecos_smki::TestPki::generate(&ecos_smki::TestPkiSpec::demo()).unwrap();
        let org = &pki.organisations()[1];
        let mut r = common::org_b_request(&pki, ecos_duis::Execution::Immediate, "1312345678333");
        r.header.request_id = "90-B3-D5-1F-30-03-00-00:00-DB-12-34-56-78-90-A0:1006"
            .parse()
            .unwrap();
        r.body.supplier_prepayment_top_up_floor_seq_number = Some(0);
        r.body.replacement_certificates.key_agreement_top_up = Some(org.pp_ka.cert.clone());
        let compact = String::from_utf8(ecos_duis::cos_request(&r).unwrap()).unwrap();
        compact.replace("><", ">\n<")
    })
    .clone()
}

#[test]
fn the_unmutated_template_reads() {
    assert!(read_request(template().as_bytes(), &Limits::default()).is_ok());
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    DeleteLine(usize),
}

fn apply(t: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut b = t.as_bytes().to_vec();
    for m in muts {
        let n = b.len().max(1);
        match *m {
            Mutation::Flip(i, x) => {
                if let Some(c) = b.get_mut(i % n) {
                    *c ^= x.max(1);
                }
            }
            Mutation::Insert(i, x) => b.insert((i % n).min(b.len()), x),
            Mutation::Delete(i, len) => {
                let s = (i % n).min(b.len());
                let e = (s + len % 64).min(b.len());
                b.drain(s..e);
            }
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) | Mutation::DeleteLine(i) => {
                let text = String::from_utf8_lossy(&b).into_owned();
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                if lines.is_empty() {
                    continue;
                }
                let k = i % lines.len();
                match *m {
                    Mutation::DuplicateLine(_) => {
                        let l = lines[k].clone();
                        lines.insert(k, l);
                    }
                    Mutation::SwapLines(_, j) => {
                        let j = j % lines.len();
                        lines.swap(k, j);
                    }
                    _ => {
                        lines.remove(k);
                    }
                }
                b = lines.join("\n").into_bytes();
            }
        }
    }
    b
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (
            any::<usize>(),
            prop::sample::select(b"<>&;/:=\"' -0123456789Zz".to_vec())
        )
            .prop_map(|(i, x)| Mutation::Insert(i, x)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, l)| Mutation::Delete(i, l)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::SwapLines(i, j)),
        any::<usize>().prop_map(Mutation::DeleteLine),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Mutated 6.23 templates: never a panic; every rejection is typed, and
    /// every located one names a path under /Request.
    #[test]
    fn mutated_templates_give_typed_errors(muts in prop::collection::vec(mutation(), 1..4)) {
        let t = template();
        let doc = apply(&t, &muts);
        match read_request(&doc, &Limits::default()) {
            Ok(r) => prop_assert!(!r.header().service_reference.is_empty()),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                if let Some(p) = error_path(&e) {
                    prop_assert!(p.starts_with("/Request"), "{e:?}");
                }
            }
        }
        let _ = read_request_header(&doc, &Limits::default());
    }

    /// Arbitrary bytes: never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_request(&bytes, &Limits::default());
    }
}

#[test]
fn cdata_and_character_references_in_values_are_plain_text() {
    let doc = request_with("").replace(
        "<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1</sr:RequestID>",
        "<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:<![CDATA[12]]>&#51;</sr:RequestID>",
    );
    let r = read_request(doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(r.header().request_id.counter, 123);
}
