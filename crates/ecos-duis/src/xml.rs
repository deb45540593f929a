//! Hardened XML parsing: size, DOCTYPE, node, depth, attribute and value caps,
//! and a sequence cursor that turns schema violations into typed errors with paths.

use ecos_xmldsig::flat;
use roxmltree::{Document, Node, NodeId, NodeType, ParsingOptions};

use crate::error::{DuisError, clip};

/// `sr` namespace.
pub const NS_SR: &str = "http://www.dccinterface.co.uk/ServiceUserGateway";
/// `ra` namespace (MMC).
pub const NS_RA: &str = "http://www.dccinterface.co.uk/ResponseAndAlert";
/// `ds` namespace.
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// `xsi` namespace.
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Caps applied before and while reading a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum document size in bytes (default 1 MiB).
    pub max_bytes: usize,
    /// Maximum element depth, the root being 1 (default 32).
    pub max_depth: usize,
    /// Maximum number of nodes of every kind (default 10 000).
    pub max_nodes: u32,
    /// Maximum number of attributes on one element (default 16).
    pub max_attributes: usize,
    /// Maximum length in bytes of one attribute value or text node (default 64 KiB).
    pub max_value_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 32,
            max_nodes: 10_000,
            max_attributes: 16,
            max_value_len: 64 << 10,
        }
    }
}

/// Parse `bytes` with every cap of `limits` enforced and any DOCTYPE refused.
pub fn parse<'i>(bytes: &'i [u8], limits: &Limits) -> Result<Document<'i>, DuisError> {
    if bytes.len() > limits.max_bytes {
        return Err(DuisError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DuisError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    // roxmltree accepts an empty `<!DOCTYPE x>` even with allow_dtd = false;
    // the DUIS profile refuses every DOCTYPE.
    if has_doctype(text) {
        return Err(DuisError::DoctypeRefused);
    }
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => DuisError::DoctypeRefused,
        roxmltree::Error::NodesLimitReached => DuisError::TooManyNodes {
            limit: limits.max_nodes,
        },
        other => DuisError::Xml {
            message: other.to_string(),
        },
    })?;
    check_shape(&doc, limits)?;
    Ok(doc)
}

/// A DOCTYPE can only occur in the prolog, before the first element start tag.
fn has_doctype(text: &str) -> bool {
    let mut rest = text;
    loop {
        let Some(i) = rest.find('<') else {
            return false;
        };
        rest = &rest[i..];
        if rest.starts_with("<!DOCTYPE") {
            return true;
        } else if let Some(r) = rest.strip_prefix("<!--") {
            match r.find("-->") {
                Some(j) => rest = &r[j + 3..],
                None => return false,
            }
        } else if let Some(r) = rest.strip_prefix("<?") {
            match r.find("?>") {
                Some(j) => rest = &r[j + 2..],
                None => return false,
            }
        } else {
            // first element (or garbage the parser will reject)
            return false;
        }
    }
}

/// The number of nodes in `doc` (the root included), as
/// `doc.descendants().count()` gives it, without walking the tree: the
/// parser appends nodes in document order, so the last node in document
/// order (the last child of the last child ... of the root) has the
/// highest index.
pub(crate) fn node_count(doc: &Document<'_>) -> usize {
    let mut last = doc.root();
    while let Some(c) = last.last_child() {
        last = c;
    }
    last.id().get_usize() + 1
}

/// Depth, attribute and value caps over the whole tree, iteratively.
pub(crate) fn check_shape(doc: &Document<'_>, limits: &Limits) -> Result<(), DuisError> {
    check_shape_excluding(doc, None, limits)
}

/// [`check_shape`] over the tree less the subtree of `exclude`, as if that
/// subtree had never been there: the text nodes on either side of it count
/// as the one text node they would be joined into.
pub(crate) fn check_shape_excluding(
    doc: &Document<'_>,
    exclude: Option<NodeId>,
    limits: &Limits,
) -> Result<(), DuisError> {
    let mut stack: Vec<(Node<'_, '_>, usize)> = vec![(doc.root_element(), 1)];
    while let Some((node, depth)) = stack.pop() {
        if Some(node.id()) == exclude {
            continue;
        }
        match node.node_type() {
            NodeType::Element => {
                if depth > limits.max_depth {
                    return Err(DuisError::TooDeep {
                        path: path_of(node),
                        depth,
                        limit: limits.max_depth,
                    });
                }
                let attrs = node.attributes();
                if attrs.len() > limits.max_attributes {
                    return Err(DuisError::TooManyAttributes {
                        path: path_of(node),
                        count: attrs.len(),
                        limit: limits.max_attributes,
                    });
                }
                // the first too long in canonical order, not document
                // order (see `XNode::first_attribute`)
                if let Some(a) = attrs
                    .filter(|a| a.value().len() > limits.max_value_len)
                    .min_by_key(|a| XAttr::from(a).canonical_key())
                {
                    return Err(DuisError::ValueTooLong {
                        path: path_of(node),
                        what: format!("attribute {}", a.name()),
                        len: a.value().len(),
                        limit: limits.max_value_len,
                    });
                }
                for c in node.children() {
                    stack.push((c, depth + 1));
                }
            }
            NodeType::Text | NodeType::Comment | NodeType::PI => {
                let mut len = node.text().map_or(0, str::len);
                // text, excluded subtree, text: one text node once the
                // subtree is gone, counted at the first of the two
                if let Some(x) = exclude.filter(|_| node.is_text()) {
                    let excluded = |n: &Node<'_, '_>| n.id() == x;
                    if node
                        .prev_sibling()
                        .filter(excluded)
                        .and_then(|p| p.prev_sibling())
                        .is_some_and(|p| p.is_text())
                    {
                        continue;
                    }
                    if let Some(after) = node
                        .next_sibling()
                        .filter(excluded)
                        .and_then(|n| n.next_sibling())
                        .filter(|n| n.is_text())
                    {
                        len += after.text().map_or(0, str::len);
                    }
                }
                if len > limits.max_value_len {
                    let what = match node.node_type() {
                        NodeType::Text => "text",
                        NodeType::Comment => "comment",
                        _ => "processing instruction",
                    };
                    return Err(DuisError::ValueTooLong {
                        path: node.parent().map_or_else(String::new, path_of),
                        what: what.to_string(),
                        len,
                        limit: limits.max_value_len,
                    });
                }
            }
            NodeType::Root => {}
        }
    }
    Ok(())
}

/// `/Request/Body/...` from local names.
pub fn path_of(node: Node<'_, '_>) -> String {
    let mut names: Vec<&str> = node
        .ancestors()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    names.reverse();
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(n);
    }
    s
}

/// `{namespace}local` or `local`.
pub fn expanded(node: Node<'_, '_>) -> String {
    let t = node.tag_name();
    match t.namespace() {
        Some(ns) => format!("{{{ns}}}{}", t.name()),
        None => t.name().to_string(),
    }
}

/// A node of the document being read: from a hardened roxmltree parse, or
/// from the flat table of the verifier's fast path
/// ([`ecos_xmldsig::flat`]), so that one schema-order reader serves both.
#[derive(Debug, Clone, Copy)]
pub enum XNode<'a, 'i> {
    /// A roxmltree node.
    Roxml(Node<'a, 'i>),
    /// A node of the flat table.
    Flat(flat::Node<'a, 'i>),
}

/// A child of an element, as the reader classifies it.
#[derive(Debug, Clone, Copy)]
pub enum Child<'a, 'i> {
    /// An element.
    Element(XNode<'a, 'i>),
    /// Text (references decoded).
    Text(&'a str),
    /// A comment.
    Comment,
    /// A processing instruction.
    Pi,
}

/// The classified children of an [`XNode`], whichever the tree.
enum Children<'a, 'i> {
    Roxml(roxmltree::Children<'a, 'i>),
    Flat(flat::Children<'a, 'i>),
}

impl<'a, 'i: 'a> Iterator for Children<'a, 'i> {
    type Item = Child<'a, 'i>;

    fn next(&mut self) -> Option<Child<'a, 'i>> {
        match self {
            Children::Roxml(it) => loop {
                let c = it.next()?;
                return Some(match c.node_type() {
                    NodeType::Element => Child::Element(XNode::Roxml(c)),
                    NodeType::Text => Child::Text(c.text().unwrap_or("")),
                    NodeType::Comment => Child::Comment,
                    NodeType::PI => Child::Pi,
                    NodeType::Root => continue,
                });
            },
            Children::Flat(it) => it.next().map(|c| match c.text() {
                Some(t) => Child::Text(t),
                None => Child::Element(XNode::Flat(c)),
            }),
        }
    }
}

/// An attribute as the reader sees it: namespace, local name, value.
#[derive(Debug, Clone, Copy)]
pub struct XAttr<'a> {
    /// The namespace URI (prefixed attributes only).
    pub namespace: Option<&'a str>,
    /// The local name.
    pub name: &'a str,
    /// The value.
    pub value: &'a str,
}

impl<'a> From<&roxmltree::Attribute<'a, '_>> for XAttr<'a> {
    fn from(a: &roxmltree::Attribute<'a, '_>) -> Self {
        XAttr {
            namespace: a.namespace(),
            name: a.name(),
            value: a.value(),
        }
    }
}

impl<'a> From<ecos_xmldsig::flat::Attribute<'a>> for XAttr<'a> {
    fn from(a: ecos_xmldsig::flat::Attribute<'a>) -> Self {
        XAttr {
            namespace: a.namespace,
            name: a.local,
            value: a.value,
        }
    }
}

impl<'a> XAttr<'a> {
    /// Its place in canonical (C14N) order: namespace URI first (none
    /// before any), then local name, both compared by code point.
    pub fn canonical_key(&self) -> (Option<&'a str>, &'a str) {
        (self.namespace, self.name)
    }

    /// `{ns}local` or `local`.
    pub fn expanded(&self) -> String {
        match self.namespace {
            Some(ns) => format!("{{{ns}}}{}", self.name),
            None => self.name.to_string(),
        }
    }
}

impl<'a, 'i: 'a> XNode<'a, 'i> {
    /// The local name ("" for a non-element).
    pub fn local_name(&self) -> &'a str {
        match self {
            XNode::Roxml(n) => n.tag_name().name(),
            XNode::Flat(n) => n.local_name(),
        }
    }

    /// The namespace URI, if any.
    pub fn namespace(&self) -> Option<&'a str> {
        match self {
            XNode::Roxml(n) => n.tag_name().namespace(),
            XNode::Flat(n) => n.namespace(),
        }
    }

    /// Is this the element `{ns}name`?
    pub fn is(&self, ns: &str, name: &str) -> bool {
        match self {
            XNode::Roxml(n) => n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name,
            XNode::Flat(n) => n.is_named(ns, name),
        }
    }

    /// `{namespace}local` or `local`.
    pub fn expanded(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{{{ns}}}{}", self.local_name()),
            None => self.local_name().to_string(),
        }
    }

    /// The same node?
    pub fn same(&self, other: &XNode<'_, '_>) -> bool {
        match (self, other) {
            (XNode::Roxml(a), XNode::Roxml(b)) => a.id() == b.id(),
            (XNode::Flat(a), XNode::Flat(b)) => a.id() == b.id(),
            _ => false,
        }
    }

    /// The parent element (`None` for the root element).
    pub fn parent_element(&self) -> Option<XNode<'a, 'i>> {
        match self {
            XNode::Roxml(n) => n.parent().filter(|p| p.is_element()).map(XNode::Roxml),
            XNode::Flat(n) => n.parent().map(XNode::Flat),
        }
    }

    /// The attributes, in document order.
    pub fn attributes(&self) -> Vec<XAttr<'a>> {
        match self {
            XNode::Roxml(n) => n.attributes().map(|a| XAttr::from(&a)).collect(),
            XNode::Flat(n) => n.attributes().map(XAttr::from).collect(),
        }
    }

    /// The attribute first in canonical order ([`XAttr::canonical_key`]),
    /// as `{ns}local` or `local`. Canonical rather than document order, so
    /// that an error names the same attribute whether the reader is given a
    /// signed document's tree or its canonical bytes.
    pub fn first_attribute(&self) -> Option<String> {
        let none = match self {
            XNode::Roxml(n) => n.attributes().len() == 0,
            XNode::Flat(n) => n.attributes().len() == 0,
        };
        if none {
            return None;
        }
        // For the callers, an error on its way.
        self.attributes()
            .into_iter()
            .min_by_key(XAttr::canonical_key)
            .map(|a| a.expanded())
    }

    /// The children, classified.
    pub fn children(&self) -> impl Iterator<Item = Child<'a, 'i>> + use<'a, 'i> {
        match self {
            XNode::Roxml(n) => Children::Roxml(n.children()),
            XNode::Flat(n) => Children::Flat(n.children()),
        }
    }

    /// How many earlier element siblings share this element's local name,
    /// `skip` not counted.
    fn earlier_namesakes(&self, skip: Option<XNode<'a, 'i>>) -> usize {
        let name = self.local_name();
        let counts = |p: &XNode<'_, '_>| !skip.is_some_and(|s| s.same(p)) && p.local_name() == name;
        match self {
            XNode::Roxml(n) => n
                .prev_siblings()
                .skip(1)
                .filter(|p| p.is_element())
                .map(XNode::Roxml)
                .filter(counts)
                .count(),
            XNode::Flat(n) => match n.parent() {
                Some(p) => p
                    .element_children()
                    .take_while(|c| c != n)
                    .map(XNode::Flat)
                    .filter(counts)
                    .count(),
                None => 0,
            },
        }
    }
}

/// An element of the document being read; its path (for errors) is worked
/// out only when asked for, see [`El::path`].
#[derive(Debug, Clone)]
pub struct El<'a, 'i> {
    /// The node.
    pub node: XNode<'a, 'i>,
    /// A child of the root left out of the reading (a verified signature):
    /// not among [`El::element_children`], not counted in paths.
    skip: Option<XNode<'a, 'i>>,
}

impl<'a, 'i: 'a> El<'a, 'i> {
    /// Wrap the root element.
    pub fn root(node: XNode<'a, 'i>) -> Self {
        El { node, skip: None }
    }

    /// Wrap the root element, leaving its child `skip` out of its children.
    pub fn root_without(node: XNode<'a, 'i>, skip: Option<XNode<'a, 'i>>) -> Self {
        El { node, skip }
    }

    /// `/Request/Body/...` from local names, with `[n]` on the n-th (n > 1)
    /// element child of the same local name.
    pub fn path(&self) -> String {
        let mut chain: Vec<XNode<'a, 'i>> = vec![self.node];
        while let Some(p) = chain.last().and_then(XNode::parent_element) {
            chain.push(p);
        }
        chain.reverse();
        let mut s = String::new();
        for (i, n) in chain.iter().enumerate() {
            s.push('/');
            s.push_str(n.local_name());
            if i == 0 {
                continue; // the root
            }
            let same = n.earlier_namesakes(self.skip);
            if same > 0 {
                s.push_str(&format!("[{}]", same + 1));
            }
        }
        s
    }

    /// Is this `{ns}name`?
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.node.is(ns, name)
    }

    /// Reject every attribute.
    pub fn no_attributes(&self) -> Result<(), DuisError> {
        match self.node.first_attribute() {
            Some(name) => Err(DuisError::UnexpectedAttribute {
                path: self.path(),
                name,
            }),
            None => Ok(()),
        }
    }

    /// The element children in element-only content: whitespace text is
    /// skipped; other text, comments and PIs are rejected.
    pub fn element_children(&self) -> Result<Vec<El<'a, 'i>>, DuisError> {
        // Room for the longest sequence the reader reads (7) and the
        // signature: one allocation.
        let mut out = Vec::with_capacity(8);
        for c in self.node.children() {
            match c {
                Child::Element(e) => {
                    if !self.skip.is_some_and(|s| s.same(&e)) {
                        out.push(El {
                            node: e,
                            skip: self.skip,
                        });
                    }
                }
                Child::Text(t) => {
                    if !t.chars().all(crate::ids::is_xml_ws) {
                        return Err(DuisError::UnexpectedContent {
                            path: self.path(),
                            what: format!("text {:?}", clip(t.trim())),
                        });
                    }
                }
                Child::Comment => {
                    return Err(DuisError::UnexpectedContent {
                        path: self.path(),
                        what: "comment".to_string(),
                    });
                }
                Child::Pi => {
                    return Err(DuisError::UnexpectedContent {
                        path: self.path(),
                        what: "processing instruction".to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The text of a simple-typed element (no attributes, no children but text).
    pub fn simple_text(&self) -> Result<&'a str, DuisError> {
        self.no_attributes()?;
        let mut text: Option<&'a str> = None;
        for c in self.node.children() {
            match c {
                Child::Text(t) => {
                    if text.is_some() {
                        // adjacent text is merged; two nodes means something sat between
                        return Err(DuisError::UnexpectedContent {
                            path: self.path(),
                            what: "split text".to_string(),
                        });
                    }
                    text = Some(t);
                }
                Child::Element(e) => {
                    return Err(DuisError::UnexpectedContent {
                        path: self.path(),
                        what: format!("child element {}", e.expanded()),
                    });
                }
                Child::Comment => {
                    return Err(DuisError::UnexpectedContent {
                        path: self.path(),
                        what: "comment".to_string(),
                    });
                }
                Child::Pi => {
                    return Err(DuisError::UnexpectedContent {
                        path: self.path(),
                        what: "processing instruction".to_string(),
                    });
                }
            }
        }
        Ok(text.unwrap_or(""))
    }
}

/// Reads an element sequence in schema order.
#[derive(Debug)]
pub struct Seq<'a, 'i> {
    parent: El<'a, 'i>,
    items: Vec<El<'a, 'i>>,
    pos: usize,
    ns: &'static str,
    /// The local names the parent's content model knows, in order.
    known: &'static [&'static str],
    /// (name, max occurrences) already consumed.
    seen: Vec<(&'static str, usize)>,
}

impl<'a, 'i: 'a> Seq<'a, 'i> {
    /// Start reading the element children of `parent`.
    pub fn new(
        parent: &El<'a, 'i>,
        ns: &'static str,
        known: &'static [&'static str],
    ) -> Result<Self, DuisError> {
        Ok(Seq {
            parent: parent.clone(),
            items: parent.element_children()?,
            pos: 0,
            ns,
            known,
            seen: Vec::with_capacity(known.len()),
        })
    }

    /// Every element child of the parent, taken or not.
    pub fn elements(&self) -> &[El<'a, 'i>] {
        &self.items
    }

    fn peek(&self) -> Option<&El<'a, 'i>> {
        self.items.get(self.pos)
    }

    /// Take the next element if it is `name` (0..1).
    pub fn optional(&mut self, name: &'static str) -> Option<El<'a, 'i>> {
        match self.peek() {
            Some(e) if e.is(self.ns, name) => {
                let e = e.clone();
                self.pos += 1;
                self.seen.push((name, 1));
                Some(e)
            }
            _ => None,
        }
    }

    /// Take the next element, which must be `name` (1..1).
    pub fn required(&mut self, name: &'static str) -> Result<El<'a, 'i>, DuisError> {
        match self.optional(name) {
            Some(e) => Ok(e),
            None => Err(self.fault(name)),
        }
    }

    /// Take `min..=max` consecutive `name` elements.
    pub fn repeated(
        &mut self,
        name: &'static str,
        min: usize,
        max: usize,
    ) -> Result<Vec<El<'a, 'i>>, DuisError> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.peek() {
                Some(e) if e.is(self.ns, name) => {
                    out.push(e.clone());
                    self.pos += 1;
                }
                _ => break,
            }
        }
        if out.len() < min {
            return Err(self.fault(name));
        }
        self.seen.push((name, max));
        Ok(out)
    }

    /// Take the next element whatever it is (a choice); `what` names the choice.
    pub fn any(&mut self, what: &'static str) -> Result<El<'a, 'i>, DuisError> {
        match self.peek() {
            Some(e) => {
                let e = e.clone();
                self.pos += 1;
                Ok(e)
            }
            None => Err(DuisError::MissingElement {
                path: self.parent.path(),
                name: what,
            }),
        }
    }

    /// No more elements may follow.
    pub fn finish(self) -> Result<(), DuisError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.fault("end of content")),
        }
    }

    /// Classify what sits where `wanted` was expected.
    fn fault(&self, wanted: &'static str) -> DuisError {
        let Some(e) = self.peek() else {
            return DuisError::MissingElement {
                path: self.parent.path(),
                name: wanted,
            };
        };
        let local = e.node.local_name();
        let in_ns = e.node.namespace() == Some(self.ns);
        if in_ns {
            if let Some((_, max)) = self.seen.iter().find(|(n, _)| *n == local) {
                return DuisError::DuplicateElement {
                    path: e.path(),
                    max: *max,
                };
            }
            let found_at = self.known.iter().position(|n| *n == local);
            let wanted_at = self
                .known
                .iter()
                .position(|n| *n == wanted)
                .unwrap_or(self.known.len());
            match found_at {
                // a later element while `wanted` is still due: `wanted` is
                // misplaced if it follows, missing otherwise
                Some(f) if f > wanted_at => {
                    let follows = self.items[self.pos..].iter().any(|x| x.is(self.ns, wanted));
                    if follows {
                        return DuisError::MisplacedElement {
                            path: e.path(),
                            expected: wanted.to_string(),
                        };
                    }
                    return DuisError::MissingElement {
                        path: self.parent.path(),
                        name: wanted,
                    };
                }
                Some(_) => {
                    return DuisError::MisplacedElement {
                        path: e.path(),
                        expected: wanted.to_string(),
                    };
                }
                None => {}
            }
        }
        DuisError::UnexpectedElement {
            path: e.path(),
            found: e.node.expanded(),
            expected: wanted.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_count_is_the_number_of_descendants() {
        let docs = [
            "<a/>",
            "<?pi x?><!-- c --><a>t<b/>u<![CDATA[v]]>w&amp;x<c><d>e</d></c><!-- f --></a><!-- g -->",
            "<r xmlns='urn:r' a='1'>\n <s>1</s>\n <s>2</s>\n <t><u/><u/></t>\n</r>\n<?end?>",
        ];
        for text in docs {
            let doc = Document::parse(text).expect("well-formed");
            assert_eq!(node_count(&doc), doc.descendants().count(), "{text}");
        }
    }
}
