//! The hardened XML entry point: every inbound document goes through [`parse`].
//!
//! It refuses any DOCTYPE (so no entity of any kind can be declared, and no
//! external resource is ever fetched), caps the size, the element depth, the
//! node count, the attributes per element and the length of any one text or
//! attribute value, rejects encodings other than UTF-8 and prefix
//! undeclarations (`xmlns:p=""`, not namespace-well-formed in XML 1.0), and
//! reports every rejection as a typed [`ParseError`] with a line/column
//! position and, where there is one, the element path.

use std::borrow::Cow;
use std::fmt;

use roxmltree::{Document, Node, ParsingOptions};

/// Caps applied by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Maximum document size in bytes (default 1 MiB).
    pub max_bytes: usize,
    /// Maximum element nesting depth; the root element is depth 1 (default 32).
    pub max_depth: usize,
    /// Maximum number of nodes of any kind (default 20,000).
    pub max_nodes: u32,
    /// Maximum attributes on one element, namespace declarations excluded (default 32).
    pub max_attributes: usize,
    /// Maximum length in bytes of one text node or attribute value (default 256 KiB).
    pub max_text_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 32,
            max_nodes: 20_000,
            max_attributes: 32,
            max_text_len: 256 << 10,
        }
    }
}

impl Limits {
    /// These limits with a different size cap.
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }
    /// These limits with a different depth cap.
    pub fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }
    /// These limits with a different node cap.
    pub fn with_max_nodes(mut self, n: u32) -> Self {
        self.max_nodes = n;
        self
    }
    /// These limits with a different per-element attribute cap.
    pub fn with_max_attributes(mut self, n: usize) -> Self {
        self.max_attributes = n;
        self
    }
    /// These limits with a different text length cap.
    pub fn with_max_text_len(mut self, n: usize) -> Self {
        self.max_text_len = n;
        self
    }
}

/// A 1-based line and column in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column (in characters), from 1.
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<roxmltree::TextPos> for Position {
    fn from(p: roxmltree::TextPos) -> Self {
        Position {
            line: p.row,
            column: p.col,
        }
    }
}

/// Why [`parse`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The document is larger than [`Limits::max_bytes`].
    #[error("document is {size} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not UTF-8.
    #[error("document is not UTF-8 (invalid byte sequence at byte {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The XML declaration names an encoding other than UTF-8.
    #[error("XML declaration names encoding {declared:?}; only UTF-8 is accepted")]
    Encoding {
        /// The declared encoding.
        declared: String,
    },
    /// A document type declaration is present; none is accepted.
    #[error("DOCTYPE is disallowed (at {at})")]
    Doctype {
        /// Where it starts.
        at: Position,
    },
    /// More nodes than [`Limits::max_nodes`].
    #[error("document has more than {max} nodes")]
    TooManyNodes {
        /// The limit.
        max: u32,
    },
    /// Elements nested deeper than [`Limits::max_depth`].
    #[error("element {path} at {at} is nested {depth} deep; the limit is {max}")]
    TooDeep {
        /// Element path.
        path: String,
        /// Where it starts.
        at: Position,
        /// Its depth.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// An element with more attributes than [`Limits::max_attributes`].
    #[error("element {path} at {at} has {count} attributes; the limit is {max}")]
    TooManyAttributes {
        /// Element path.
        path: String,
        /// Where it starts.
        at: Position,
        /// Attribute count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A text node or attribute value longer than [`Limits::max_text_len`].
    #[error("{what} in {path} at {at} is {len} bytes; the limit is {max}")]
    TextTooLong {
        /// "text" or "attribute NAME".
        what: String,
        /// Path of the containing element.
        path: String,
        /// Where it starts.
        at: Position,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `xmlns:p=""`: a prefix undeclaration, not allowed by Namespaces in XML 1.0.
    #[error("prefix undeclaration xmlns:{prefix}=\"\" in {path} at {at} is not allowed")]
    PrefixUndeclaration {
        /// The prefix.
        prefix: String,
        /// Element path.
        path: String,
        /// Where the element starts.
        at: Position,
    },
    /// A literal carriage return in text given to [`parse`] or
    /// [`parse_prepared`]: normalise line ends with [`prepare`] first.
    #[error("literal carriage return at {at}: normalise line ends first (ecos_xmldsig::prepare)")]
    CarriageReturn {
        /// Where.
        at: Position,
    },
    /// A processing instruction whose target is `xml` in any case (reserved;
    /// the parser takes a misplaced or malformed XML declaration for one).
    #[error("processing instruction target {target:?} at {at} is reserved")]
    ReservedPiTarget {
        /// The target.
        target: String,
        /// Where.
        at: Position,
    },
    /// Not well-formed or not namespace-well-formed XML.
    #[error("malformed XML at {at}: {message}")]
    Malformed {
        /// Where.
        at: Position,
        /// What the parser said.
        message: String,
    },
}

/// Parse `bytes` as a namespace-aware XML document under `limits`.
///
/// The returned tree borrows from `bytes`. A leading UTF-8 byte order mark is
/// skipped. Input holding a literal carriage return is refused with
/// [`ParseError::CarriageReturn`]: pass it through [`prepare`] first, which
/// does the end-of-line handling of XML 1.0 §2.11 (roxmltree leaves some
/// literal CRs unnormalised: after a reference at the end of a text chunk, and
/// in comments and PIs). [`verify`](crate::verify) and [`sign`](crate::sign)
/// do this themselves.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Document<'a>, ParseError> {
    let text = check_bytes(bytes, limits)?;
    parse_prepared(text, limits)
}

/// The checks on raw bytes: size, UTF-8, BOM, declared encoding.
fn check_bytes<'a>(bytes: &'a [u8], limits: &Limits) -> Result<&'a str, ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    check_declared_encoding(text)?;
    Ok(text)
}

/// Check size, UTF-8 and the declared encoding, skip a BOM, and normalise
/// line ends (CR LF and lone CR become LF, XML 1.0 §2.11); borrowed unless a
/// literal CR was present. Feed the result to [`parse_prepared`].
pub fn prepare<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Cow<'a, str>, ParseError> {
    let text = check_bytes(bytes, limits)?;
    if memchr::memchr(b'\r', text.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Ok(Cow::Owned(out))
}

/// Parse text from [`prepare`] (or any text without a literal CR) under `limits`.
pub fn parse_prepared<'a>(text: &'a str, limits: &Limits) -> Result<Document<'a>, ParseError> {
    parse_prepared_noting(text, limits).map(|(doc, _)| doc)
}

/// What the hardening walk of [`parse_prepared`] saw on its way, so that
/// the verifier need not walk the tree again for it.
#[derive(Debug, Default)]
pub(crate) struct Noted {
    /// A comment anywhere in the document.
    pub has_comment: bool,
    /// Every `ds:Signature` element, in document order.
    pub signatures: Vec<roxmltree::NodeId>,
}

/// [`parse_prepared`], also returning what the hardening walk noted.
pub(crate) fn parse_prepared_noting<'a>(
    text: &'a str,
    limits: &Limits,
) -> Result<(Document<'a>, Noted), ParseError> {
    if text.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: text.len(),
            max: limits.max_bytes,
        });
    }
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if let Some(i) = memchr::memchr(b'\r', text.as_bytes()) {
        return Err(ParseError::CarriageReturn {
            at: position_of(text, i),
        });
    }
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => ParseError::Doctype {
            at: doctype_position(text),
        },
        roxmltree::Error::NodesLimitReached => ParseError::TooManyNodes {
            max: limits.max_nodes,
        },
        other => ParseError::Malformed {
            at: other.pos().into(),
            message: other.to_string(),
        },
    })?;
    let noted = check_tree(&doc, limits)?;
    Ok((doc, noted))
}

/// Position of the first `<!DOCTYPE` (the parser reports 1:1).
fn doctype_position(text: &str) -> Position {
    let offset = text.find("<!DOCTYPE").unwrap_or(0);
    position_of(text, offset)
}

/// Line and column of a byte offset.
pub(crate) fn position_of(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// Reject an XML declaration naming an encoding other than UTF-8.
fn check_declared_encoding(text: &str) -> Result<(), ParseError> {
    let Some(rest) = text.strip_prefix("<?xml") else {
        return Ok(());
    };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Ok(());
    }
    let Some(end) = rest.find("?>") else {
        return Ok(()); // the parser reports the malformed declaration
    };
    let decl = &rest[..end];
    let Some(i) = decl.find("encoding") else {
        return Ok(());
    };
    let after = decl[i + "encoding".len()..].trim_start();
    let Some(after) = after.strip_prefix('=') else {
        return Ok(());
    };
    let after = after.trim_start();
    let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(());
    };
    let value = &after[1..];
    let value = value.split(quote).next().unwrap_or(value);
    if value.eq_ignore_ascii_case("UTF-8") || value.eq_ignore_ascii_case("UTF8") {
        Ok(())
    } else {
        Err(ParseError::Encoding {
            declared: value.to_string(),
        })
    }
}

/// The qualified name of an element as written in the source.
pub(crate) fn element_qname<'i>(node: Node<'_, 'i>) -> &'i str {
    let input = node.document().input_text();
    let start = node.range().start + 1;
    // The parser's local name is a slice of the input that ends where the
    // qualified name ends: take the qname from there when it checks out.
    let local = node.tag_name().name();
    let end = (local.as_ptr() as usize)
        .wrapping_sub(input.as_ptr() as usize)
        .wrapping_add(local.len());
    if let Some(q) = input.get(start..end) {
        let b = q.as_bytes();
        let prefixed = b.len() > local.len() && b[b.len() - local.len() - 1] == b':';
        let ends = input
            .as_bytes()
            .get(end)
            .is_some_and(|&c| c.is_ascii_whitespace() || c == b'/' || c == b'>');
        if q.ends_with(local) && (b.len() == local.len() || prefixed) && ends {
            return q;
        }
    }
    let rest = input.get(start..).unwrap_or("");
    // Bytes, not chars: every delimiter is ASCII, and no byte of a
    // multi-byte UTF-8 sequence is.
    let end = rest
        .bytes()
        .position(|b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The qualified name of an attribute as written in the source.
pub(crate) fn attribute_qname<'i>(attr: &roxmltree::Attribute<'_, 'i>, input: &'i str) -> &'i str {
    input.get(attr.range_qname()).unwrap_or_else(|| attr.name())
}

/// `/p:a/p:b/...`: the path of an element, with prefixes as written.
pub fn element_path(node: Node<'_, '_>) -> String {
    let mut names: Vec<&str> = node
        .ancestors()
        .filter(|n| n.is_element())
        .map(element_qname)
        .collect();
    names.reverse();
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(n);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// Where a node starts.
pub fn node_position(node: Node<'_, '_>) -> Position {
    node.document().text_pos_at(node.range().start).into()
}

fn check_pi(node: Node<'_, '_>) -> Result<(), ParseError> {
    if let Some(pi) = node.pi() {
        if pi.target.eq_ignore_ascii_case("xml") {
            return Err(ParseError::ReservedPiTarget {
                target: pi.target.to_string(),
                at: node_position(node),
            });
        }
    }
    Ok(())
}

fn check_tree(doc: &Document<'_>, limits: &Limits) -> Result<Noted, ParseError> {
    let input = doc.input_text();
    let mut noted = Noted::default();
    for n in doc.root().children() {
        check_pi(n)?;
        noted.has_comment |= n.is_comment();
    }
    // Iterative walk with depth: (node, depth of node).
    let mut stack: Vec<(Node<'_, '_>, usize)> = vec![(doc.root_element(), 1)];
    while let Some((node, depth)) = stack.pop() {
        if depth > limits.max_depth {
            return Err(ParseError::TooDeep {
                path: element_path(node),
                at: node_position(node),
                depth,
                max: limits.max_depth,
            });
        }
        let tag = node.tag_name();
        if tag.name() == "Signature" && tag.namespace() == Some(crate::DS_NS) {
            noted.signatures.push(node.id());
        }
        let attrs = node.attributes();
        if attrs.len() > limits.max_attributes {
            return Err(ParseError::TooManyAttributes {
                path: element_path(node),
                at: node_position(node),
                count: attrs.len(),
                max: limits.max_attributes,
            });
        }
        for a in attrs {
            if a.value().len() > limits.max_text_len {
                return Err(ParseError::TextTooLong {
                    what: format!("attribute {}", attribute_qname(&a, input)),
                    path: element_path(node),
                    at: doc.text_pos_at(a.range().start).into(),
                    len: a.value().len(),
                    max: limits.max_text_len,
                });
            }
        }
        // Own declarations come first in namespaces(); an inherited binding
        // never has an empty URI with a prefix, so checking all is enough.
        for ns in node.namespaces() {
            if let Some(prefix) = ns.name() {
                if ns.uri().is_empty() {
                    return Err(ParseError::PrefixUndeclaration {
                        prefix: prefix.to_string(),
                        path: element_path(node),
                        at: node_position(node),
                    });
                }
            }
        }
        for child in node.children() {
            if child.is_element() {
                stack.push((child, depth + 1));
            } else if child.is_pi() {
                check_pi(child)?;
            } else if child.is_comment() {
                noted.has_comment = true;
            } else if let Some(t) = child.text().filter(|_| child.is_text()) {
                if t.len() > limits.max_text_len {
                    return Err(ParseError::TextTooLong {
                        what: "text".to_string(),
                        path: element_path(node),
                        at: node_position(child),
                        len: t.len(),
                        max: limits.max_text_len,
                    });
                }
            }
        }
    }
    // The walk pops a stack; node ids are in document order.
    noted.signatures.sort_unstable_by_key(|id| id.get());
    Ok(noted)
}
