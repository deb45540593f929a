//! A strict single-pass tokenizer for the DUIS subset of XML, building a flat
//! element table over the input: the fast path of [`verify_then`](crate::verify_then).
//!
//! The subset: printable ASCII plus TAB and LF (no CR, no other control
//! byte, nothing above `~`), an optional XML declaration of the form
//! `<?xml version="1.0"[ encoding="UTF-8"][ standalone="yes|no"]?>`,
//! elements, attributes, namespace declarations, text with the five
//! predefined entities and character references, and whitespace around the
//! root element. Anything else (comments, PIs, CDATA, DOCTYPE, `&`, TAB or
//! LF in an attribute value, `xml:` attributes, a declaration of the `xml`
//! or `xmlns` prefixes or URIs, `xmlns:p=""`, two attributes with one local
//! name, any cap of [`Limits`] approached) makes [`Document::parse`] answer
//! `None`: "not in the subset", and the caller takes the hardened roxmltree
//! parse ([`parse`](crate::parse)), which gives the exact result or error.
//!
//! Whatever this module accepts, roxmltree accepts too and reads the same
//! (element names, namespaces, attribute values, text): the differential
//! tests (`tests/fast_path.rs`) and the `fast_vs_slow` fuzz target hold it
//! to that.

use crate::parse::Limits;

const NONE: u32 = u32::MAX;
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// A byte range of the input (or, for decoded text, of the decoded buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        // The input is at most u32::MAX bytes (checked in `parse`).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    fn get(self, s: &str) -> &str {
        s.get(self.start as usize..self.end as usize).unwrap_or("")
    }
}

/// The index of a node in a [`Document`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(u32);

impl NodeId {
    /// The node's number: nodes are numbered from 0 in document order.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Element {
        qname: Span,
        /// Length of the prefix (0: none).
        prefix_len: u32,
        /// The namespace URI (a slice of the input), if any.
        ns: Option<Span>,
        /// Index range into `Document::attrs`.
        attrs: (u32, u32),
        /// Index range into `Document::decls`.
        decls: (u32, u32),
    },
    Text {
        span: Span,
        /// `span` is into `Document::decoded` (the text held references).
        decoded: bool,
        /// As written, the text is its own canonical form: no reference,
        /// no `>` (and, in the subset, no `<`, `&` or CR).
        verbatim: bool,
    },
}

#[derive(Debug, Clone)]
struct NodeData {
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    kind: Kind,
}

#[derive(Debug, Clone)]
struct AttrData {
    qname: Span,
    prefix_len: u32,
    ns: Option<Span>,
    value: Span,
}

/// A namespace declaration: prefix (empty: the default) and URI.
#[derive(Debug, Clone, Copy)]
struct Decl {
    prefix: Span,
    uri: Span,
}

/// A document in the DUIS subset, as a flat table of nodes in document
/// order. Element names, attribute values and text without references are
/// slices of the input; text with references is decoded into one buffer.
#[derive(Debug)]
pub struct Document<'i> {
    input: &'i str,
    nodes: Vec<NodeData>,
    attrs: Vec<AttrData>,
    decls: Vec<Decl>,
    decoded: String,
    root: u32,
    /// The depth of the deepest element (the root is 1).
    depth: usize,
    /// The most attributes on one element.
    most_attributes: usize,
}

/// A node (element or text) of a [`Document`].
#[derive(Clone, Copy)]
pub struct Node<'a, 'i> {
    doc: &'a Document<'i>,
    id: u32,
}

impl std::fmt::Debug for Node<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_element() {
            write!(f, "Element({}, {})", self.id, self.qname())
        } else {
            write!(f, "Text({}, {:?})", self.id, self.text().unwrap_or(""))
        }
    }
}

impl PartialEq for Node<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.doc, other.doc) && self.id == other.id
    }
}

/// An attribute of an element (namespace declarations are not attributes).
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'i> {
    /// The qualified name as written.
    pub qname: &'i str,
    /// The local name.
    pub local: &'i str,
    /// The namespace URI (prefixed attributes only).
    pub namespace: Option<&'i str>,
    /// The value (no references, no TAB or LF: as written).
    pub value: &'i str,
}

/// The children of a node, in document order.
#[derive(Debug, Clone)]
pub struct Children<'a, 'i> {
    doc: &'a Document<'i>,
    next: u32,
}

impl<'a, 'i> Iterator for Children<'a, 'i> {
    type Item = Node<'a, 'i>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NONE {
            return None;
        }
        let n = Node {
            doc: self.doc,
            id: self.next,
        };
        self.next = self.doc.nodes[self.next as usize].next_sibling;
        Some(n)
    }
}

impl<'a, 'i> Node<'a, 'i> {
    fn data(&self) -> &'a NodeData {
        &self.doc.nodes[self.id as usize]
    }
    /// Its index.
    pub fn id(&self) -> NodeId {
        NodeId(self.id)
    }
    /// The document.
    pub fn document(&self) -> &'a Document<'i> {
        self.doc
    }
    /// An element (otherwise text)?
    pub fn is_element(&self) -> bool {
        matches!(self.data().kind, Kind::Element { .. })
    }
    /// Text?
    pub fn is_text(&self) -> bool {
        !self.is_element()
    }
    /// The qualified name as written ("" for text).
    pub fn qname(&self) -> &'i str {
        match self.data().kind {
            Kind::Element { qname, .. } => qname.get(self.doc.input),
            Kind::Text { .. } => "",
        }
    }
    /// The prefix as written ("" for none or for text).
    pub fn prefix(&self) -> &'i str {
        match self.data().kind {
            Kind::Element {
                qname, prefix_len, ..
            } => Span::new(qname.start as usize, (qname.start + prefix_len) as usize)
                .get(self.doc.input),
            Kind::Text { .. } => "",
        }
    }
    /// The local name ("" for text).
    pub fn local_name(&self) -> &'i str {
        match self.data().kind {
            Kind::Element {
                qname, prefix_len, ..
            } => local_span(qname, prefix_len).get(self.doc.input),
            Kind::Text { .. } => "",
        }
    }
    /// Is this the element `{ns}local`? What comparing [`Node::namespace`]
    /// with `Some(ns)` and [`Node::local_name`] with `local` gives, cheaper.
    pub fn is_named(&self, ns: &str, local: &str) -> bool {
        let Kind::Element {
            qname,
            prefix_len,
            ns: Some(uri),
            ..
        } = self.data().kind
        else {
            return false;
        };
        let b = self.doc.input.as_bytes();
        let name = local_span(qname, prefix_len);
        b.get(name.start as usize..name.end as usize) == Some(local.as_bytes())
            && b.get(uri.start as usize..uri.end as usize) == Some(ns.as_bytes())
    }
    /// The namespace URI of an element, if any: `Some("")` in the scope of
    /// `xmlns=""`, as roxmltree gives it.
    pub fn namespace(&self) -> Option<&'i str> {
        match self.data().kind {
            Kind::Element { ns, .. } => ns.map(|s| s.get(self.doc.input)),
            Kind::Text { .. } => None,
        }
    }
    /// The attributes of an element, in document order.
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = Attribute<'i>> + 'a {
        let (a, b) = match self.data().kind {
            Kind::Element { attrs, .. } => attrs,
            Kind::Text { .. } => (0, 0),
        };
        let doc = self.doc;
        doc.attrs[a as usize..b as usize].iter().map(move |a| {
            let qname = a.qname.get(doc.input);
            Attribute {
                qname,
                local: local_of(qname, a.prefix_len),
                namespace: a.ns.map(|s| s.get(doc.input)),
                value: a.value.get(doc.input),
            }
        })
    }
    /// The value of the unprefixed attribute `local`.
    pub fn attribute(&self, local: &str) -> Option<&'i str> {
        self.attributes()
            .find(|a| a.namespace.is_none() && a.local == local)
            .map(|a| a.value)
    }
    /// The namespace declarations on this element, as (prefix, URI) with
    /// prefix "" for the default namespace.
    pub(crate) fn declarations(&self) -> impl ExactSizeIterator<Item = (&'i str, &'i str)> + 'a {
        let (a, b) = match self.data().kind {
            Kind::Element { decls, .. } => decls,
            Kind::Text { .. } => (0, 0),
        };
        let doc = self.doc;
        doc.decls[a as usize..b as usize]
            .iter()
            .map(move |d| (d.prefix.get(doc.input), d.uri.get(doc.input)))
    }
    /// The content of a text node (references decoded); `None` for an element.
    pub fn text(&self) -> Option<&'a str> {
        match self.data().kind {
            Kind::Text { span, decoded, .. } => Some(if decoded {
                span.get(&self.doc.decoded)
            } else {
                span.get(self.doc.input)
            }),
            Kind::Element { .. } => None,
        }
    }
    /// The text as written held no reference (it is a slice of the input).
    pub(crate) fn text_is_raw(&self) -> bool {
        matches!(self.data().kind, Kind::Text { decoded: false, .. })
    }
    /// Text that C14N writes as it is (nothing to escape).
    pub(crate) fn text_is_verbatim(&self) -> bool {
        matches!(self.data().kind, Kind::Text { verbatim: true, .. })
    }
    /// The parent element (`None` for the root element).
    pub fn parent(&self) -> Option<Node<'a, 'i>> {
        let p = self.data().parent;
        (p != NONE).then_some(Node {
            doc: self.doc,
            id: p,
        })
    }
    /// The next sibling.
    pub fn next_sibling(&self) -> Option<Node<'a, 'i>> {
        let s = self.data().next_sibling;
        (s != NONE).then_some(Node {
            doc: self.doc,
            id: s,
        })
    }
    /// The children, in document order.
    pub fn children(&self) -> Children<'a, 'i> {
        Children {
            doc: self.doc,
            next: self.data().first_child,
        }
    }
    /// The element children.
    pub fn element_children(&self) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
        self.children().filter(Node::is_element)
    }
}

fn local_of(qname: &str, prefix_len: u32) -> &str {
    if prefix_len == 0 {
        qname
    } else {
        qname.get(prefix_len as usize + 1..).unwrap_or("")
    }
}

/// The local part of a qualified name's span.
fn local_span(qname: Span, prefix_len: u32) -> Span {
    if prefix_len == 0 {
        qname
    } else {
        Span {
            start: qname.start.saturating_add(prefix_len).saturating_add(1),
            end: qname.end,
        }
    }
}

impl<'i> Document<'i> {
    /// Tokenize `bytes` if they are in the DUIS subset and within `limits`
    /// (with a margin); `None` otherwise.
    pub fn parse(bytes: &'i [u8], limits: &Limits) -> Option<Document<'i>> {
        if bytes.len() > limits.max_bytes || bytes.len() >= NONE as usize {
            return None;
        }
        // Printable ASCII, TAB and LF only: no CR (no line-end handling),
        // no control character, no BOM, no multi-byte character.
        if !subset_bytes(bytes) {
            return None;
        }
        let input = std::str::from_utf8(bytes).ok()?;
        Tokenizer {
            b: bytes,
            limits,
            doc: Document {
                input,
                nodes: Vec::with_capacity(64),
                attrs: Vec::with_capacity(16),
                decls: Vec::with_capacity(8),
                decoded: String::new(),
                root: NONE,
                depth: 0,
                most_attributes: 0,
            },
            open: Vec::with_capacity(16),
            scope: Vec::with_capacity(8),
            count: 0,
        }
        .run()
    }

    /// The input text.
    pub fn input_text(&self) -> &'i str {
        self.input
    }

    /// The root element.
    pub fn root_element(&self) -> Node<'_, 'i> {
        Node {
            doc: self,
            id: self.root,
        }
    }

    /// The node `id`.
    pub fn get_node(&self, id: NodeId) -> Option<Node<'_, 'i>> {
        ((id.0 as usize) < self.nodes.len()).then_some(Node {
            doc: self,
            id: id.0,
        })
    }

    /// Every node (elements and text), in document order.
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_, 'i>> {
        (0..self.nodes.len() as u32).map(move |id| Node { doc: self, id })
    }

    /// The number of nodes (elements and text).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Canonical XML 1.0 without comments of the whole document less the
    /// subtree of `exclude`: what [`c14n::document_to_vec`](crate::c14n::document_to_vec)
    /// with `Options::INCLUSIVE` gives over the roxmltree tree of the same input.
    pub fn canonicalize_without(&self, exclude: Option<NodeId>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.input.len());
        crate::fast::inclusive_c14n(self, exclude, &mut out);
        out
    }

    /// The number of attributes, namespace declarations excluded.
    pub fn attribute_count(&self) -> usize {
        self.attrs.len()
    }

    /// The depth of the deepest element, the root element being 1.
    pub fn max_depth(&self) -> usize {
        self.depth
    }

    /// The most attributes on one element (namespace declarations excluded).
    pub fn max_attributes(&self) -> usize {
        self.most_attributes
    }
}

/// An open element: its node, the scope length to restore, its last child.
struct Open {
    node: u32,
    scope_mark: usize,
    last_child: u32,
    qname: Span,
}

struct Tokenizer<'i, 'l> {
    b: &'i [u8],
    limits: &'l Limits,
    doc: Document<'i>,
    open: Vec<Open>,
    /// In-scope namespace bindings: (prefix, URI), innermost last.
    scope: Vec<(&'i [u8], Span)>,
    /// Nodes and attributes so far (for the node cap, with a margin).
    count: usize,
}

/// Printable ASCII, TAB and LF only; branch-free over 64-byte blocks so
/// that the compiler vectorises it.
fn subset_bytes(bytes: &[u8]) -> bool {
    // Shifted by 0x60 and read as i8, 0x20..=0x7E is -128..=-34 and every
    // other byte is above: one signed compare (SSE2 has no unsigned one).
    let bad = |b: u8| ((b.wrapping_add(0x60) as i8) >= -33) & (b != b'\t') & (b != b'\n');
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        if block.iter().fold(false, |acc, &b| acc | bad(b)) {
            return false;
        }
    }
    !blocks
        .remainder()
        .iter()
        .fold(false, |acc, &b| acc | bad(b))
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}

/// [`NAME_CLASS`] bit: may start a name (ASCII letter or `_`).
const NAME_START: u8 = 1;
/// [`NAME_CLASS`] bit: may continue a name (ASCII letter, digit, `_`, `-`, `.`).
const NAME_CHAR: u8 = 2;

/// The name classes of every byte: one load per byte of a name.
static NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' {
            t[b] = NAME_START | NAME_CHAR;
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            t[b] = NAME_CHAR;
        }
        b += 1;
    }
    t
};

fn is_name_start(b: u8) -> bool {
    NAME_CLASS[usize::from(b)] & NAME_START != 0
}

/// The end of the run of name characters from `j`.
fn name_chars_end(b: &[u8], mut j: usize) -> usize {
    while let Some(&c) = b.get(j) {
        if NAME_CLASS[usize::from(c)] & NAME_CHAR == 0 {
            break;
        }
        j += 1;
    }
    j
}

impl<'i> Tokenizer<'i, '_> {
    fn run(mut self) -> Option<Document<'i>> {
        let b = self.b;
        let mut i = self.declaration()?;
        // Prolog: whitespace, then the root element's start tag.
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'<') {
            return None;
        }
        loop {
            // At a '<'.
            match *b.get(i + 1)? {
                b'/' => i = self.end_tag(i + 2)?,
                b'!' | b'?' => return None,
                _ => {
                    if self.open.is_empty() && self.doc.root != NONE {
                        return None; // a second root element
                    }
                    i = self.start_tag(i + 1)?;
                }
            }
            if self.open.is_empty() {
                // The root element closed: only whitespace may follow.
                return b[i..].iter().all(|&c| is_ws(c)).then_some(self.doc);
            }
            // Markup often follows markup directly: no search then.
            if b.get(i) != Some(&b'<') {
                let lt = i + memchr::memchr(b'<', b.get(i..)?)?;
                self.text(i, lt)?;
                i = lt;
            }
        }
    }

    /// The optional XML declaration, in the few forms the subset accepts;
    /// the offset after it.
    fn declaration(&self) -> Option<usize> {
        let b = self.b;
        if !b.starts_with(b"<?xml") {
            return Some(0);
        }
        let mut rest = b.strip_prefix(b"<?xml version=\"1.0\"")?;
        for (name, values) in [
            (&b" encoding="[..], &[&b"\"UTF-8\""[..], b"\"utf-8\""][..]),
            (b" standalone=", &[b"\"yes\"", b"\"no\""]),
        ] {
            if let Some(r) = rest.strip_prefix(name) {
                rest = values.iter().find_map(|v| r.strip_prefix(*v))?;
            }
        }
        let trimmed = rest.iter().position(|&c| !is_ws(c))?;
        let rest = rest[trimmed..].strip_prefix(b"?>")?;
        Some(b.len() - rest.len())
    }

    /// A qualified name at `i`: its end and the prefix length (0: none).
    fn qname(&self, i: usize) -> Option<(usize, u32)> {
        let b = self.b;
        if !is_name_start(*b.get(i)?) {
            return None;
        }
        let mut j = name_chars_end(b, i + 1);
        if b.get(j) != Some(&b':') {
            return Some((j, 0));
        }
        let prefix_len = (j - i) as u32;
        j += 1;
        if !is_name_start(*b.get(j)?) {
            return None;
        }
        j = name_chars_end(b, j + 1);
        if b.get(j) == Some(&b':') {
            return None;
        }
        Some((j, prefix_len))
    }

    fn lookup(&self, prefix: &[u8]) -> Option<Span> {
        // Prefixes are a few bytes: compared inline, not by memcmp.
        self.scope
            .iter()
            .rev()
            .find(|(p, _)| p.len() == prefix.len() && p.iter().zip(prefix).all(|(a, b)| a == b))
            .map(|(_, u)| *u)
    }

    fn push_node(&mut self, kind: Kind) -> Option<u32> {
        self.count += 1;
        if self.count + 2 > self.limits.max_nodes as usize {
            return None;
        }
        let id = self.doc.nodes.len() as u32;
        let parent = self.open.last().map_or(NONE, |o| o.node);
        self.doc.nodes.push(NodeData {
            parent,
            first_child: NONE,
            next_sibling: NONE,
            kind,
        });
        if let Some(o) = self.open.last_mut() {
            if o.last_child == NONE {
                self.doc.nodes[o.node as usize].first_child = id;
            } else {
                self.doc.nodes[o.last_child as usize].next_sibling = id;
            }
            o.last_child = id;
        }
        Some(id)
    }

    /// A start tag whose name begins at `i`; the offset after it.
    fn start_tag(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let (qend, prefix_len) = self.qname(i)?;
        let qname = Span::new(i, qend);
        let attrs_start = self.doc.attrs.len();
        let decls_start = self.doc.decls.len();
        let scope_mark = self.scope.len();
        let mut j = qend;
        let empty;
        loop {
            let ws_start = j;
            while j < b.len() && is_ws(b[j]) {
                j += 1;
            }
            match *b.get(j)? {
                b'>' => {
                    empty = false;
                    j += 1;
                    break;
                }
                b'/' => {
                    if b.get(j + 1) != Some(&b'>') {
                        return None;
                    }
                    empty = true;
                    j += 2;
                    break;
                }
                _ if j == ws_start => return None, // no space before an attribute
                _ => {}
            }
            let (aend, aprefix) = self.qname(j)?;
            let aq = Span::new(j, aend);
            j = aend;
            while j < b.len() && is_ws(b[j]) {
                j += 1;
            }
            if b.get(j) != Some(&b'=') {
                return None;
            }
            j += 1;
            while j < b.len() && is_ws(b[j]) {
                j += 1;
            }
            let quote = *b.get(j)?;
            if quote != b'"' && quote != b'\'' {
                return None;
            }
            let vstart = j + 1;
            let vend = vstart + memchr::memchr(quote, &b[vstart..])?;
            let value = &b[vstart..vend];
            if value
                .iter()
                .any(|&c| matches!(c, b'<' | b'&' | b'\t' | b'\n'))
                || value.len() > self.limits.max_text_len
            {
                return None;
            }
            j = vend + 1;
            let aqb = &b[aq.start as usize..aq.end as usize];
            let vspan = Span::new(vstart, vend);
            if aprefix == 0 && aqb == b"xmlns" {
                self.declare(b"", vspan, decls_start)?;
                self.doc.decls.push(Decl {
                    prefix: Span::new(aend, aend),
                    uri: vspan,
                });
            } else if aprefix == 5 && aqb.starts_with(b"xmlns:") {
                let p = &aqb[6..];
                if p == b"xml" || p == b"xmlns" || value.is_empty() {
                    return None;
                }
                self.declare(p, vspan, decls_start)?;
                self.doc.decls.push(Decl {
                    prefix: Span::new(aq.start as usize + 6, aend),
                    uri: vspan,
                });
            } else {
                self.doc.attrs.push(AttrData {
                    qname: aq,
                    prefix_len: aprefix,
                    ns: None, // resolved below, once every declaration is in
                    value: vspan,
                });
            }
        }
        // Namespaces: this element's declarations into scope.
        for d in &self.doc.decls[decls_start..] {
            self.scope
                .push((&b[d.prefix.start as usize..d.prefix.end as usize], d.uri));
        }
        let prefix = &b[i..i + prefix_len as usize];
        if prefix == b"xml" || prefix == b"xmlns" || (prefix_len == 0 && &b[i..qend] == b"xmlns") {
            return None;
        }
        let ns = match self.lookup(prefix) {
            // Under xmlns="" the namespace is "" (not none), as roxmltree
            // has it; a prefix is never bound to "".
            Some(u) => Some(u),
            None if prefix_len == 0 => None,
            None => return None, // undeclared prefix
        };
        let attrs_end = self.doc.attrs.len();
        if attrs_end - attrs_start > self.limits.max_attributes {
            return None;
        }
        for k in attrs_start..attrs_end {
            let a = &self.doc.attrs[k];
            if a.prefix_len > 0 {
                let p = &b[a.qname.start as usize..(a.qname.start + a.prefix_len) as usize];
                if p == b"xml" {
                    return None;
                }
                let u = self.lookup(p)?;
                self.doc.attrs[k].ns = Some(u);
            }
            // Two attributes with one local name: roxmltree may refuse
            // them (same expanded name); not in the subset either way.
            let local = |a: &AttrData| {
                &b[(a.qname.start + a.prefix_len + u32::from(a.prefix_len > 0)) as usize
                    ..a.qname.end as usize]
            };
            let mine = local(&self.doc.attrs[k]);
            if self.doc.attrs[attrs_start..k]
                .iter()
                .any(|o| local(o) == mine)
            {
                return None;
            }
        }
        self.count += attrs_end - attrs_start;
        let depth = self.open.len() + 1;
        if depth > self.limits.max_depth {
            return None;
        }
        self.doc.depth = self.doc.depth.max(depth);
        self.doc.most_attributes = self.doc.most_attributes.max(attrs_end - attrs_start);
        let node = self.push_node(Kind::Element {
            qname,
            prefix_len,
            ns,
            attrs: (attrs_start as u32, attrs_end as u32),
            decls: (decls_start as u32, self.doc.decls.len() as u32),
        })?;
        if self.doc.root == NONE {
            self.doc.root = node;
        }
        if empty {
            self.scope.truncate(scope_mark);
        } else {
            self.open.push(Open {
                node,
                scope_mark,
                last_child: NONE,
                qname,
            });
        }
        Some(j)
    }

    /// Check a declaration of `prefix` against the others on this element
    /// and the reserved URIs.
    fn declare(&self, prefix: &[u8], uri: Span, decls_start: usize) -> Option<()> {
        let u = uri.get(self.doc.input);
        if u == XML_NS || u == XMLNS_NS {
            return None;
        }
        let dup = self.doc.decls[decls_start..]
            .iter()
            .any(|d| &self.b[d.prefix.start as usize..d.prefix.end as usize] == prefix);
        (!dup).then_some(())
    }

    /// An end tag whose name begins at `i`; the offset after it.
    fn end_tag(&mut self, i: usize) -> Option<usize> {
        let b = self.b;
        let open = self.open.pop()?;
        let name = &b[open.qname.start as usize..open.qname.end as usize];
        let mut j = i.checked_add(name.len())?;
        if b.get(i..j)? != name {
            return None;
        }
        while j < b.len() && is_ws(b[j]) {
            j += 1;
        }
        if b.get(j) != Some(&b'>') {
            return None;
        }
        self.scope.truncate(open.scope_mark);
        Some(j + 1)
    }

    /// Text from `i` to `end` (the next `<`), inside the root element.
    fn text(&mut self, i: usize, end: usize) -> Option<()> {
        let raw = &self.b[i..end];
        if raw.len() > self.limits.max_text_len {
            return None;
        }
        // One search: most text holds none of these bytes.
        let plain = memchr::memchr3(b']', b'&', b'>', raw).is_none();
        if !plain && memchr::memmem::find(raw, b"]]>").is_some() {
            return None;
        }
        let kind = if plain || memchr::memchr(b'&', raw).is_none() {
            Kind::Text {
                span: Span::new(i, end),
                decoded: false,
                verbatim: plain,
            }
        } else {
            let start = self.doc.decoded.len();
            decode(raw, &mut self.doc.decoded)?;
            Kind::Text {
                span: Span::new(start, self.doc.decoded.len()),
                decoded: true,
                verbatim: false,
            }
        };
        self.push_node(kind)?;
        Some(())
    }
}

/// Decode the predefined entities and character references of `raw` into `out`.
fn decode(raw: &[u8], out: &mut String) -> Option<()> {
    let mut rest = raw;
    while let Some(amp) = memchr::memchr(b'&', rest) {
        out.push_str(std::str::from_utf8(&rest[..amp]).ok()?);
        let after = &rest[amp + 1..];
        let semi = after.iter().take(10).position(|&c| c == b';')?;
        let name = &after[..semi];
        let c = match name {
            b"amp" => '&',
            b"lt" => '<',
            b"gt" => '>',
            b"quot" => '"',
            b"apos" => '\'',
            _ => {
                let digits = name.strip_prefix(b"#")?;
                let (digits, radix) = match digits.strip_prefix(b"x") {
                    Some(h) => (h, 16),
                    None => (digits, 10),
                };
                if digits.is_empty()
                    || digits.len() > 7
                    || !digits.iter().all(u8::is_ascii_hexdigit)
                {
                    return None;
                }
                let v = u32::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()?;
                let xml_char = matches!(v, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x1_0000..=0x10_FFFF);
                if !xml_char {
                    return None;
                }
                char::from_u32(v)?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(std::str::from_utf8(rest).ok()?);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-wise byte check against the rule written out byte by byte,
    /// for every byte value at every offset of a block and its remainder.
    #[test]
    fn subset_bytes_equals_the_scalar_rule() {
        let reference = |s: &[u8]| {
            s.iter()
                .all(|&b| (0x20..0x7F).contains(&b) || b == b'\t' || b == b'\n')
        };
        for len in [0usize, 1, 63, 64, 65, 130] {
            for pos in (0..len).step_by(7) {
                for v in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[pos] = v;
                    assert_eq!(
                        subset_bytes(&s),
                        reference(&s),
                        "len {len} pos {pos} byte {v}"
                    );
                }
            }
        }
    }

    /// `is_named` is the comparison of `namespace` and `local_name`; the
    /// depth and attribute maxima are those of the elements.
    #[test]
    fn names_and_shape_as_the_accessors_give_them() {
        let d = Document::parse(
            b"<p:a xmlns:p='urn:p' x='1'><b y='1' p:z='2'><c/></b>t<p:d xmlns=''/><e xmlns=''/></p:a>",
            &Limits::default(),
        )
        .expect("in the subset");
        assert_eq!((d.max_depth(), d.max_attributes()), (3, 2));
        let mut named = 0;
        for n in d.nodes() {
            for (ns, local) in [
                ("urn:p", "a"),
                ("urn:p", "d"),
                ("", "e"),
                ("", "b"),
                ("urn:p", "t"),
            ] {
                let expected =
                    n.is_element() && n.namespace() == Some(ns) && n.local_name() == local;
                assert_eq!(n.is_named(ns, local), expected, "{n:?} {ns} {local}");
                named += usize::from(expected);
            }
        }
        assert_eq!(named, 3);
    }

    #[test]
    fn outside_the_subset_is_none() {
        let limits = Limits::default();
        for doc in [
            "<a><!-- c --></a>",
            "<a><?p?></a>",
            "<a><![CDATA[x]]></a>",
            "<!DOCTYPE a><a/>",
            "<a>\r</a>",
            "<a b='&amp;'/>",
            "<a b='\t'/>",
            "<a xml:lang='en'/>",
            "<a xmlns:p=''/>",
            "<p:a/>",
            "<a b='1' b='2'/>",
            "<a>&bogus;</a>",
            "<a>&#0;</a>",
            "<a>]]></a>",
            "<a/><b/>",
            "<a/>x",
            "<?xml version='1.0'?><a/>",
            "<a></b>",
            "<a>é</a>",
        ] {
            assert!(Document::parse(doc.as_bytes(), &limits).is_none(), "{doc}");
        }
        let d = Document::parse(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<p:a xmlns:p=\"urn:p\" b = \"1\">t&lt;&#x41;<c/></p:a>\n",
            &limits,
        )
        .expect("in the subset");
        let root = d.root_element();
        assert_eq!(
            (root.prefix(), root.local_name(), root.namespace()),
            ("p", "a", Some("urn:p"))
        );
        assert_eq!(root.attribute("b"), Some("1"));
        let kids: Vec<_> = root.children().collect();
        assert_eq!(kids[0].text(), Some("t<A"));
        assert_eq!((kids[1].local_name(), kids[1].namespace()), ("c", None));
    }
}
