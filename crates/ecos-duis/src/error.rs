//! Typed errors of the reader and the writers.

use crate::ids::RequestIdError;

/// Why a DUIS document was rejected by the reader.
///
/// Every variant that concerns a place in the document carries its element
/// path, e.g. `/Request/Body/UpdateSecurityCredentialsCoS/ImportMPxN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DuisError {
    /// The document is larger than the configured cap.
    #[error("document is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The configured cap.
        limit: usize,
    },
    /// The bytes are not UTF-8.
    #[error("document is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The document contains a DOCTYPE (and hence possibly entity declarations).
    #[error("DOCTYPE is disallowed (no DTDs and no entities are accepted)")]
    DoctypeRefused,
    /// The document has more nodes than the configured limit.
    #[error("document has more than {limit} nodes")]
    TooManyNodes {
        /// The configured limit.
        limit: u32,
    },
    /// The XML is not well-formed (or uses an undeclared prefix, an unknown entity, ...).
    #[error("malformed XML: {message}")]
    Xml {
        /// The parser's message, with line and column.
        message: String,
    },
    /// Elements nested deeper than the configured cap.
    #[error("{path}: element depth {depth} exceeds the limit of {limit}")]
    TooDeep {
        /// Path of the first element that is too deep.
        path: String,
        /// Its depth (the root is depth 1).
        depth: usize,
        /// The configured cap.
        limit: usize,
    },
    /// An element with more attributes than the configured cap.
    #[error("{path}: {count} attributes exceed the limit of {limit}")]
    TooManyAttributes {
        /// Path of the element.
        path: String,
        /// Its attribute count.
        count: usize,
        /// The configured cap.
        limit: usize,
    },
    /// An attribute value or text node longer than the configured cap.
    #[error("{path}: {what} of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLong {
        /// Path of the element.
        path: String,
        /// `text` or `attribute NAME`.
        what: String,
        /// Its length.
        len: usize,
        /// The configured cap.
        limit: usize,
    },
    /// The root element is not the expected one.
    #[error("root element is {found}, expected {expected}")]
    WrongRoot {
        /// Expanded name found (`{namespace}local`).
        found: String,
        /// Expected name.
        expected: &'static str,
    },
    /// A required child element is missing.
    #[error("{path}: missing element {name}")]
    MissingElement {
        /// Path of the parent.
        path: String,
        /// The missing element's local name.
        name: &'static str,
    },
    /// An element that may occur only once (or at most N times) occurs again.
    #[error("{path}: duplicate element (at most {max} allowed)")]
    DuplicateElement {
        /// Path of the superfluous occurrence.
        path: String,
        /// How many occurrences are allowed.
        max: usize,
    },
    /// A known element in the wrong position of its parent's sequence.
    #[error("{path}: element out of order, expected {expected}")]
    MisplacedElement {
        /// Path of the misplaced element.
        path: String,
        /// What the schema wants at that position.
        expected: String,
    },
    /// An element the schema does not allow here (unknown name or foreign namespace).
    #[error("{path}: unexpected element {found}, expected {expected}")]
    UnexpectedElement {
        /// Path of the parent followed by the found element.
        path: String,
        /// Expanded name found (`{namespace}local`).
        found: String,
        /// What the schema wants at that position.
        expected: String,
    },
    /// Non-whitespace text in element-only content, or child elements in a simple value.
    #[error("{path}: unexpected {what}")]
    UnexpectedContent {
        /// Path of the element.
        path: String,
        /// `text "..."`, `child element X`, `comment`, `processing instruction`.
        what: String,
    },
    /// An attribute the schema does not allow.
    #[error("{path}: unexpected attribute {name}")]
    UnexpectedAttribute {
        /// Path of the element.
        path: String,
        /// Expanded attribute name.
        name: String,
    },
    /// A required attribute is missing.
    #[error("{path}: missing attribute {name}")]
    MissingAttribute {
        /// Path of the element.
        path: String,
        /// The attribute's name.
        name: &'static str,
    },
    /// A simple value that does not satisfy its schema type or the project rule.
    #[error("{path}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// Path of the element (or `path/@attribute`).
        path: String,
        /// The offending value (truncated to 80 characters).
        value: String,
        /// Why it is invalid.
        reason: ValueError,
    },
    /// A RequestID that does not satisfy `sr:RequestIDType`.
    #[error("{path}: {source}")]
    RequestId {
        /// Path of the element.
        path: String,
        /// The specific fault.
        source: RequestIdError,
    },
    /// The header's ServiceReference does not match its variant or the body element.
    #[error("{path}: {detail}")]
    ServiceMismatch {
        /// Path of the offending element.
        path: String,
        /// What does not match.
        detail: String,
    },
}

/// Why a simple value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not `true`, `false`, `1` or `0`.
    #[error("not an xs:boolean (true, false, 1 or 0)")]
    Boolean,
    /// Not a non-negative decimal integer.
    #[error("not a non-negative integer")]
    Integer,
    /// An integer above the type's maximum.
    #[error("exceeds the maximum {max}")]
    TooLarge {
        /// The maximum allowed.
        max: u64,
    },
    /// Not in the schema enumeration.
    #[error("not one of the values allowed by the schema ({allowed})")]
    NotInEnumeration {
        /// A short description of the allowed values.
        allowed: &'static str,
    },
    /// Length outside the allowed range (in characters).
    #[error("length {len} outside {min}..={max}")]
    Length {
        /// The value's length in characters.
        len: usize,
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
    },
    /// Not an `xs:dateTime`.
    #[error("not an xs:dateTime: {0}")]
    DateTime(String),
    /// An `xs:dateTime` without the `Z` time zone required by the project.
    #[error("date-time must be in UTC with the `Z` designator")]
    NotUtc,
    /// Not an `xs:decimal`.
    #[error("not an xs:decimal")]
    Decimal,
    /// Not valid base64.
    #[error("not valid base64: {0}")]
    Base64(String),
    /// Decodes, but is not an SMKI X.509 certificate (`ecos_smki::Certificate::from_der`).
    #[error("not an SMKI X.509 certificate: {0}")]
    Certificate(String),
}

/// Why a writer refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A value the schema would reject.
    #[error("{field}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The field of the writer's input.
        field: &'static str,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: ValueError,
    },
    /// A combination the schema or the DUIS rules do not allow.
    #[error("{0}")]
    Inconsistent(String),
    /// The underlying writer failed.
    #[error("XML writer failed: {0}")]
    Io(String),
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError::Io(e.to_string())
    }
}

/// Shorten a value for an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}
