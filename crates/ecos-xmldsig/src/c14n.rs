//! Canonical XML 1.0 (W3C REC-xml-c14n-20010315) and Exclusive XML
//! Canonicalization 1.0 (REC-xml-exc-c14n-20020718, without an
//! `InclusiveNamespaces` prefix list), over a [`roxmltree`] tree.
//!
//! Two node sets are supported, the ones XML-DSig needs:
//! - a whole document, optionally minus one element's subtree (the
//!   enveloped-signature transform over `URI=""`): [`canonicalize_document`];
//! - one element's subtree (a document subset whose apex is that element, as
//!   for `ds:SignedInfo`): [`canonicalize_subtree`].
//!
//! What the rules come to, in the order the code applies them:
//! - the XML declaration and whitespace outside the root element go; PIs (and
//!   comments when kept) outside it are joined to it by `#xA`;
//! - empty elements become start/end tag pairs; CDATA becomes escaped text;
//! - text escapes `&`, `<`, `>` and CR (`&#xD;`); attribute values escape
//!   `&`, `<`, `"`, TAB, LF and CR (`&#x9;`, `&#xA;`, `&#xD;`). Literal TAB
//!   and LF in attribute values were already turned into spaces by the parser;
//! - namespace declarations come first, sorted by prefix (the default first),
//!   then attributes sorted by (namespace URI, local name), unqualified first;
//! - inclusive mode renders every in-scope namespace that the nearest output
//!   ancestor does not already render with the same value; exclusive mode
//!   renders only the namespaces the element visibly uses (its own prefix and
//!   its attributes' prefixes) and that are not already in force in the
//!   *output* ancestors; `xmlns=""` is rendered where the default namespace
//!   must be switched off again;
//! - inclusive mode copies `xml:*` attributes of omitted ancestors onto the
//!   apex of a subtree.

use roxmltree::{Document, Node, NodeId};

use crate::parse::{attribute_qname, element_qname};

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Which canonicalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Canonical XML 1.0 (`http://www.w3.org/TR/2001/REC-xml-c14n-20010315`).
    Inclusive,
    /// Exclusive XML Canonicalization 1.0 (`http://www.w3.org/2001/10/xml-exc-c14n#`).
    Exclusive,
}

/// How to canonicalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    /// Inclusive or exclusive.
    pub mode: Mode,
    /// Keep comments (the `#WithComments` variants).
    pub with_comments: bool,
    /// Drop whitespace-only text nodes in element content (an element that has
    /// element children). Not part of any W3C algorithm: this is what the DCC
    /// Boxed signer's parser does before it digests, and is used only for the
    /// opt-in whitespace-compatibility retry and to produce compact output.
    pub strip_whitespace: bool,
}

impl Options {
    /// Canonical XML 1.0 without comments.
    pub const INCLUSIVE: Options = Options {
        mode: Mode::Inclusive,
        with_comments: false,
        strip_whitespace: false,
    };
    /// Exclusive C14N 1.0 without comments.
    pub const EXCLUSIVE: Options = Options {
        mode: Mode::Exclusive,
        with_comments: false,
        strip_whitespace: false,
    };

    /// The same, keeping comments.
    pub const fn with_comments(mut self) -> Self {
        self.with_comments = true;
        self
    }

    /// The same, dropping whitespace-only text in element content.
    pub const fn stripping_whitespace(mut self) -> Self {
        self.strip_whitespace = true;
        self
    }
}

/// Canonicalise the whole document, leaving out the subtree of `exclude`
/// (when given), appending to `out`.
pub fn canonicalize_document(
    doc: &Document<'_>,
    opts: Options,
    exclude: Option<NodeId>,
    out: &mut Vec<u8>,
) {
    let root = doc.root_element();
    let mut before = true;
    for child in doc.root().children() {
        if child == root {
            canonicalize_element_tree(root, opts, exclude, false, out);
            before = false;
            continue;
        }
        if Some(child.id()) == exclude {
            continue;
        }
        let start = out.len();
        if !before {
            out.push(b'\n');
        }
        let wrote = write_leaf(child, opts, out);
        if wrote {
            if before {
                out.push(b'\n');
            }
        } else {
            out.truncate(start);
        }
    }
}

/// Canonicalise the subtree of element `apex` as a document subset (its
/// ancestors are not in the node set), appending to `out`.
pub fn canonicalize_subtree(apex: Node<'_, '_>, opts: Options, out: &mut Vec<u8>) {
    canonicalize_element_tree(apex, opts, None, true, out);
}

/// Convenience: the canonical bytes of the whole document minus `exclude`.
pub fn document_to_vec(doc: &Document<'_>, opts: Options, exclude: Option<NodeId>) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.input_text().len());
    canonicalize_document(doc, opts, exclude, &mut out);
    out
}

/// Convenience: the canonical bytes of the subtree of `apex`.
pub fn subtree_to_vec(apex: Node<'_, '_>, opts: Options) -> Vec<u8> {
    let mut out = Vec::with_capacity(apex.range().len());
    canonicalize_subtree(apex, opts, &mut out);
    out
}

/// Write a comment, PI or text node; false if it is not part of the output.
fn write_leaf(node: Node<'_, '_>, opts: Options, out: &mut Vec<u8>) -> bool {
    if node.is_comment() {
        if !opts.with_comments {
            return false;
        }
        out.extend_from_slice(b"<!--");
        out.extend_from_slice(node.text().unwrap_or("").as_bytes());
        out.extend_from_slice(b"-->");
        true
    } else if let Some(pi) = node.pi() {
        out.extend_from_slice(b"<?");
        out.extend_from_slice(pi.target.as_bytes());
        if let Some(v) = pi.value.filter(|v| !v.is_empty()) {
            out.push(b' ');
            out.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(b"?>");
        true
    } else if node.is_text() {
        if node.parent().is_some_and(|p| p.is_root()) {
            return false; // whitespace outside the root element
        }
        let t = node.text().unwrap_or("");
        if opts.strip_whitespace
            && is_xml_whitespace(t)
            && node
                .parent()
                .is_some_and(|p| p.children().any(|c| c.is_element()))
        {
            return false;
        }
        escape_text(t, out);
        true
    } else {
        false
    }
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// A namespace binding rendered in the output (prefix "" = default).
#[derive(Clone, Copy)]
struct Rendered<'a> {
    prefix: &'a str,
    uri: &'a str,
}

/// The rendered-namespace context: a stack of bindings with scope marks.
struct NsContext<'a> {
    bindings: Vec<Rendered<'a>>,
}

impl<'a> NsContext<'a> {
    /// The binding in force in the output for `prefix`; the default namespace
    /// is "" when none is in force.
    fn lookup(&self, prefix: &str) -> Option<&'a str> {
        self.bindings
            .iter()
            .rev()
            .find(|b| b.prefix == prefix)
            .map(|b| b.uri)
    }
    fn in_force(&self, prefix: &str, uri: &str) -> bool {
        match self.lookup(prefix) {
            Some(u) => same_str(u, uri),
            // nothing rendered: only an empty default namespace is "in force"
            None => prefix.is_empty() && uri.is_empty(),
        }
    }
}

/// String equality, answering at once for the same slice (a namespace URI
/// inherited from an ancestor is the parser's one copy of it).
fn same_str(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

fn split_qname(q: &str) -> (&str, &str) {
    match q.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", q),
    }
}

struct Attr<'a> {
    ns: &'a str,
    local: &'a str,
    qname: &'a str,
    value: &'a str,
}

/// Canonicalise an element and its descendants (iteratively).
fn canonicalize_element_tree<'a, 'i: 'a>(
    top: Node<'a, 'i>,
    opts: Options,
    exclude: Option<NodeId>,
    is_subset_apex: bool,
    out: &mut Vec<u8>,
) {
    let input = top.document().input_text();
    let mut ctx = NsContext {
        bindings: Vec::new(),
    };
    // Work stack: Enter(node, its output parent) or Leave(qname, ctx
    // length to restore).
    enum Step<'a, 'i> {
        Enter(Node<'a, 'i>, Option<Node<'a, 'i>>),
        Leave(&'i str, usize),
    }
    let mut stack: Vec<Step<'a, 'i>> = vec![Step::Enter(top, None)];
    let mut ns_buf: Vec<Rendered<'a>> = Vec::new();
    let mut attrs: Vec<Attr<'a>> = Vec::new();
    while let Some(step) = stack.pop() {
        let (node, parent) = match step {
            Step::Leave(qname, mark) => {
                out.extend_from_slice(b"</");
                out.extend_from_slice(qname.as_bytes());
                out.push(b'>');
                ctx.bindings.truncate(mark);
                continue;
            }
            Step::Enter(node, parent) => (node, parent),
        };
        if Some(node.id()) == exclude {
            continue;
        }
        if !node.is_element() {
            write_leaf(node, opts, out);
            continue;
        }
        let qname = element_qname(node);
        let (prefix, _) = split_qname(qname);

        // Namespace declarations to render.
        ns_buf.clear();
        match opts.mode {
            // Below the top, an element with its parent's in-scope
            // namespaces (it declares nothing of its own) has nothing to
            // render: the parent left every one of them in force.
            Mode::Inclusive if parent.is_some_and(|p| same_namespaces(node, p)) => {}
            Mode::Inclusive => {
                let mut has_default = false;
                for ns in node.namespaces() {
                    let p = ns.name().unwrap_or("");
                    let uri = ns.uri();
                    if p.is_empty() {
                        has_default = true;
                    }
                    if !ctx.in_force(p, uri) {
                        ns_buf.push(Rendered { prefix: p, uri });
                    }
                }
                if !has_default && !ctx.in_force("", "") {
                    ns_buf.push(Rendered {
                        prefix: "",
                        uri: "",
                    });
                }
            }
            Mode::Exclusive => {
                let mut want = |p: &'a str| {
                    if ns_buf.iter().any(|r| r.prefix == p) || p == "xml" {
                        return;
                    }
                    let uri = node
                        .namespaces()
                        .find(|ns| ns.name().unwrap_or("") == p)
                        .map_or("", |ns| ns.uri());
                    if !ctx.in_force(p, uri) {
                        ns_buf.push(Rendered { prefix: p, uri });
                    }
                };
                want(prefix);
                for a in node.attributes() {
                    let (ap, _) = split_qname(attribute_qname(&a, input));
                    if !ap.is_empty() {
                        want(ap);
                    }
                }
            }
        }
        ns_buf.sort_by(|a, b| a.prefix.cmp(b.prefix));

        // Attributes.
        attrs.clear();
        for a in node.attributes() {
            attrs.push(Attr {
                ns: a.namespace().unwrap_or(""),
                local: a.name(),
                qname: attribute_qname(&a, input),
                value: a.value(),
            });
        }
        if is_subset_apex && opts.mode == Mode::Inclusive && node == top {
            // xml:* attributes of omitted ancestors are inherited by the apex.
            for anc in node.ancestors().skip(1).filter(|n| n.is_element()) {
                for a in anc.attributes() {
                    if a.namespace() == Some(XML_NS)
                        && !attrs.iter().any(|x| x.ns == XML_NS && x.local == a.name())
                    {
                        attrs.push(Attr {
                            ns: XML_NS,
                            local: a.name(),
                            qname: attribute_qname(&a, input),
                            value: a.value(),
                        });
                    }
                }
            }
        }
        attrs.sort_by(|a, b| (a.ns, a.local).cmp(&(b.ns, b.local)));

        out.push(b'<');
        out.extend_from_slice(qname.as_bytes());
        for r in &ns_buf {
            if r.prefix.is_empty() {
                out.extend_from_slice(b" xmlns=\"");
            } else {
                out.extend_from_slice(b" xmlns:");
                out.extend_from_slice(r.prefix.as_bytes());
                out.extend_from_slice(b"=\"");
            }
            escape_attr(r.uri, out);
            out.push(b'"');
        }
        for a in &attrs {
            out.push(b' ');
            out.extend_from_slice(a.qname.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_attr(a.value, out);
            out.push(b'"');
        }
        out.push(b'>');

        let mark = ctx.bindings.len();
        ctx.bindings.extend(ns_buf.iter().copied());
        stack.push(Step::Leave(qname, mark));
        // Children in reverse so that they pop in document order.
        let mut child = node.last_child();
        while let Some(c) = child {
            stack.push(Step::Enter(c, Some(node)));
            child = c.prev_sibling();
        }
    }
}

/// Are the in-scope namespaces of `node` those of its parent element
/// `parent`, binding for binding (it declares none of its own)? The parser
/// keeps one record per distinct binding, so the same binding is the same
/// record.
fn same_namespaces(node: Node<'_, '_>, parent: Node<'_, '_>) -> bool {
    let (mine, theirs) = (node.namespaces(), parent.namespaces());
    mine.len() == theirs.len() && mine.zip(theirs).all(|(a, b)| std::ptr::eq(a, b))
}

/// Escape character content.
pub(crate) fn escape_text(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    // Most text (base64 certificates, numbers, identifiers) has nothing to
    // escape: two vectorised scans, then one copy.
    if memchr::memchr3(b'&', b'<', b'>', bytes).is_none() && memchr::memchr(b'\r', bytes).is_none()
    {
        out.extend_from_slice(bytes);
        return;
    }
    escape_with(bytes, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

/// Escape an attribute value.
pub(crate) fn escape_attr(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    if memchr::memchr3(b'&', b'<', b'"', bytes).is_none()
        && memchr::memchr3(b'\t', b'\n', b'\r', bytes).is_none()
    {
        out.extend_from_slice(bytes);
        return;
    }
    escape_with(bytes, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'"' => Some(b"&quot;"),
        b'\t' => Some(b"&#x9;"),
        b'\n' => Some(b"&#xA;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

/// Copy `bytes` to `out`, replacing each byte `rep` maps to its reference.
fn escape_with(bytes: &[u8], out: &mut Vec<u8>, rep: impl Fn(u8) -> Option<&'static [u8]>) {
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(r) = rep(b) {
            out.extend_from_slice(&bytes[last..i]);
            out.extend_from_slice(r);
            last = i + 1;
        }
    }
    out.extend_from_slice(&bytes[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Limits, parse};

    fn c14n(xml: &str, opts: Options) -> String {
        let doc = parse(xml.as_bytes(), &Limits::default()).unwrap();
        String::from_utf8(document_to_vec(&doc, opts, None)).unwrap()
    }

    /// The escapes byte for byte against the rules written out char by char.
    #[test]
    fn escapes_equal_a_char_by_char_reference() {
        fn reference(s: &str, attr: bool) -> String {
            let mut o = String::new();
            for c in s.chars() {
                match (c, attr) {
                    ('&', _) => o.push_str("&amp;"),
                    ('<', _) => o.push_str("&lt;"),
                    ('>', false) => o.push_str("&gt;"),
                    ('"', true) => o.push_str("&quot;"),
                    ('\t', true) => o.push_str("&#x9;"),
                    ('\n', true) => o.push_str("&#xA;"),
                    ('\r', _) => o.push_str("&#xD;"),
                    (c, _) => o.push(c),
                }
            }
            o
        }
        let alphabet = [
            'a', '&', '<', '>', '"', '\'', '\t', '\n', '\r', ' ', 'é', '€', 'Z', '=',
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut cases: Vec<String> = vec![String::new(), "MIIB".repeat(200)];
        for len in 0..300 {
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            cases.push(s);
        }
        for s in &cases {
            let (mut t, mut a) = (b"x".to_vec(), b"x".to_vec());
            escape_text(s, &mut t);
            escape_attr(s, &mut a);
            assert_eq!(t, format!("x{}", reference(s, false)).into_bytes(), "{s:?}");
            assert_eq!(a, format!("x{}", reference(s, true)).into_bytes(), "{s:?}");
        }
    }

    #[test]
    fn w3c_c14n_example_3_2_whitespace_in_content() {
        let input = "<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>";
        assert_eq!(c14n(input, Options::INCLUSIVE), input);
    }

    #[test]
    fn w3c_c14n_example_3_3_start_and_end_tags() {
        let input = r#"<!DOCTYPE doc []><doc/>"#;
        // DOCTYPEs are refused outright by the hardened parser.
        assert!(parse(input.as_bytes(), &Limits::default()).is_err());
        let input = "<doc>\n   <e1   />\n   <e2   ></e2>\n   <e3   name = \"elem3\"   id=\"elem3\"   />\n   <e4   name=\"elem4\"   id=\"elem4\"   ></e4>\n   <e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\"\n      xmlns:b=\"http://www.ietf.org\"\n      xmlns:a=\"http://www.w3.org\"\n      xmlns=\"http://example.org\"/>\n   <e6 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n            <e9 xmlns=\"\" xmlns:a=\"http://www.ietf.org\"/>\n         </e8>\n      </e7>\n   </e6>\n</doc>";
        let expected = "<doc>\n   <e1></e1>\n   <e2></e2>\n   <e3 id=\"elem3\" name=\"elem3\"></e3>\n   <e4 id=\"elem4\" name=\"elem4\"></e4>\n   <e5 xmlns=\"http://example.org\" xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5>\n   <e6 xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\">\n            <e9 xmlns:a=\"http://www.ietf.org\"></e9>\n         </e8>\n      </e7>\n   </e6>\n</doc>";
        assert_eq!(c14n(input, Options::INCLUSIVE), expected);
    }

    #[test]
    fn w3c_c14n_example_3_4_character_modifications() {
        let input = "<doc>\n   <text>First line&#x0d;&#10;Second line</text>\n   <value>&#x32;</value>\n   <compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute>\n   <compute expr='value>\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"'>valid</compute>\n   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n   <normNames attr='   A   &#x20;&#13;&#xa;&#9;   B   '/>\n   <normId id=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n</doc>";
        // Without a DTD there are no ID-typed attributes, so normId is
        // normalised like CDATA (as libxml2 does without the DTD).
        let expected = "<doc>\n   <text>First line&#xD;\nSecond line</text>\n   <value>2</value>\n   <compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute>\n   <compute expr=\"value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;\">valid</compute>\n   <norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm>\n   <normNames attr=\"   A    &#xD;&#xA;&#x9;   B   \"></normNames>\n   <normId id=\" '    &#xD;&#xA;&#x9;   ' \"></normId>\n</doc>";
        assert_eq!(c14n(input, Options::INCLUSIVE), expected);
    }

    #[test]
    fn pis_and_comments_outside_the_root() {
        let input = "<?xml version=\"1.0\"?>\n\n<?xml-stylesheet   href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n\n<doc>Hello, world!<!-- Comment 1 --></doc>\n\n<?pi-without-data     ?>\n\n<!-- Comment 2 -->\n\n<!-- Comment 3 -->";
        assert_eq!(
            c14n(input, Options::INCLUSIVE),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!</doc>\n<?pi-without-data?>"
        );
        assert_eq!(
            c14n(input, Options::INCLUSIVE.with_comments()),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!<!-- Comment 1 --></doc>\n<?pi-without-data?>\n<!-- Comment 2 -->\n<!-- Comment 3 -->"
        );
    }

    #[test]
    fn exclusive_renders_only_visibly_used_namespaces() {
        let input = r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns="urn:d"><a:s><b:t a:x="1"/><u/></a:s></a:r>"#;
        let doc = parse(input.as_bytes(), &Limits::default()).unwrap();
        let s = doc.root_element().first_element_child().unwrap();
        assert_eq!(
            String::from_utf8(subtree_to_vec(s, Options::EXCLUSIVE)).unwrap(),
            r#"<a:s xmlns:a="urn:a"><b:t xmlns:b="urn:b" a:x="1"></b:t><u xmlns="urn:d"></u></a:s>"#
        );
        assert_eq!(
            String::from_utf8(subtree_to_vec(s, Options::INCLUSIVE)).unwrap(),
            r#"<a:s xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b"><b:t a:x="1"></b:t><u></u></a:s>"#
        );
    }

    #[test]
    fn exclusive_default_namespace_switched_off() {
        let input = r#"<r xmlns="urn:d"><s xmlns=""><t/></s></r>"#;
        assert_eq!(
            c14n(input, Options::EXCLUSIVE),
            r#"<r xmlns="urn:d"><s xmlns=""><t></t></s></r>"#
        );
        assert_eq!(
            c14n(input, Options::INCLUSIVE),
            r#"<r xmlns="urn:d"><s xmlns=""><t></t></s></r>"#
        );
    }

    #[test]
    fn inclusive_apex_inherits_xml_attributes() {
        let input = r#"<r xml:lang="en" xml:space="preserve"><s xml:lang="fr"><t/></s></r>"#;
        let doc = parse(input.as_bytes(), &Limits::default()).unwrap();
        let s = doc.root_element().first_element_child().unwrap();
        assert_eq!(
            String::from_utf8(subtree_to_vec(s, Options::INCLUSIVE)).unwrap(),
            r#"<s xml:lang="fr" xml:space="preserve"><t></t></s>"#
        );
        assert_eq!(
            String::from_utf8(subtree_to_vec(s, Options::EXCLUSIVE)).unwrap(),
            r#"<s xml:lang="fr"><t></t></s>"#
        );
    }

    #[test]
    fn excluded_subtree_is_left_out() {
        let input = "<r xmlns:x=\"urn:x\">\n <a/>\n <x:Sig><x:b/></x:Sig>\n</r>";
        let doc = parse(input.as_bytes(), &Limits::default()).unwrap();
        let sig = doc
            .descendants()
            .find(|n| n.tag_name().name() == "Sig")
            .unwrap();
        assert_eq!(
            String::from_utf8(document_to_vec(&doc, Options::INCLUSIVE, Some(sig.id()))).unwrap(),
            "<r xmlns:x=\"urn:x\">\n <a></a>\n \n</r>"
        );
        assert_eq!(
            String::from_utf8(document_to_vec(
                &doc,
                Options::INCLUSIVE.stripping_whitespace(),
                Some(sig.id())
            ))
            .unwrap(),
            "<r xmlns:x=\"urn:x\"><a></a></r>"
        );
    }
}
