//! GBCS CS02b "Update Security Credentials", byte for byte
//! (`gbcs-cs02b.md`).
//!
//! - [`frame`]: the ACB MAC header, the General-Signing grouping header,
//!   length fields, the signed range and the signature ([`Frame`],
//!   [`GeneralSigning`]).
//! - [`mac`]: the ACB MAC: ECDH, the SHA-256 KDF and the 12-byte GMAC.
//! - [`error`]: typed errors with offsets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[allow(dead_code)] // the content codecs use the rest
mod asn1;
pub mod error;
pub mod frame;
pub mod mac;

pub use asn1::LengthStyle;
pub use error::{DecodeError, EncodeError, GbcsError};
pub use frame::{
    Cra, DlmsDateTime, Frame, GeneralSigning, GroupingHeader, MacHeader, SignatureField,
};
