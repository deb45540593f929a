//! Typed errors: every decode error says what was being read and at which
//! byte offset of the whole message.

use ecos_smki::KeyError;

/// Why bytes are not a well-formed GBCS message (or CS02b content).
///
/// `offset` is zero-based into the input given to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the field does.
    #[error("{what} at offset {offset}: truncated, needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left in the enclosing element.
        available: usize,
    },
    /// A tag other than the one the structure requires.
    #[error("{what} at offset {offset}: expected tag 0x{expected:02X}, found 0x{found:02X}")]
    UnexpectedTag {
        /// The field being read.
        what: &'static str,
        /// Where the tag is.
        offset: usize,
        /// The required tag.
        expected: u8,
        /// The tag present.
        found: u8,
    },
    /// A length field that is malformed, indefinite, too large or (where
    /// strict DER applies) not minimal.
    #[error("{what} at offset {offset}: bad length: {detail}")]
    BadLength {
        /// The field being read.
        what: &'static str,
        /// Where the length field starts.
        offset: usize,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// Bytes left over after a complete element.
    #[error("{what} at offset {offset}: {count} trailing bytes")]
    TrailingBytes {
        /// The element that should have ended.
        what: &'static str,
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// A well-formed element with a value the structure does not allow.
    #[error("{what} at offset {offset}: {detail}")]
    BadValue {
        /// The field being read.
        what: &'static str,
        /// Where the element starts.
        offset: usize,
        /// What is wrong with it.
        detail: String,
    },
}

impl DecodeError {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::UnexpectedTag { offset, .. }
            | DecodeError::BadLength { offset, .. }
            | DecodeError::TrailingBytes { offset, .. }
            | DecodeError::BadValue { offset, .. } => *offset,
        }
    }
}

/// Why a command, response or alert could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A certificate that is not a single DER SEQUENCE.
    #[error("{what}: not a single DER SEQUENCE: {source}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// The decode failure.
        source: DecodeError,
    },
    /// A value outside what the encoding can carry.
    #[error("{what}: {detail}")]
    OutOfRange {
        /// The field.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A combination the reference forbids.
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// Failures of signing, MAC computation and verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GbcsError {
    /// The message does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The command could not be built.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A key operation (signing, agreement) failed.
    #[error("key operation: {0}")]
    Key(#[source] KeyError),
    /// The ECDSA signature does not verify over the signed range.
    #[error("signature does not verify over bytes {start}..{end}: {source}")]
    BadSignature {
        /// First signed byte.
        start: usize,
        /// One past the last signed byte.
        end: usize,
        /// The verifier's reason.
        source: KeyError,
    },
    /// The message carries no signature to verify.
    #[error("message has no signature (signature length {0})")]
    Unsigned(&'static str),
    /// The message has no MAC layer.
    #[error("message has no ACB MAC layer")]
    NoMac,
    /// The recomputed MAC differs from the one in the message.
    #[error("ACB MAC does not verify")]
    BadMac,
    /// The cryptographic library failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}
