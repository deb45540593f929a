//! GBCS CS02b "Update Security Credentials", byte for byte
//! (`gbcs-cs02b.md`).
//!
//! - [`frame`]: the ACB MAC header, the General-Signing grouping header,
//!   length fields, the signed range and the signature ([`Frame`],
//!   [`GeneralSigning`]).
//! - [`cs02b`]: the command content, strict DER, and the builders for mode 7
//!   (supplierByTransCoS, 0x0107) and mode 6 (transCoSByTransCoS, 0x0106):
//!   [`Cs02bCommand`] → [`Cs02bCommand::sign_and_mac`].
//! - [`mac`]: the ACB MAC: ECDH, the SHA-256 KDF and the 12-byte GMAC.
//! - [`response`]: device responses, per-cell outcomes.
//! - [`alert`]: the 0x00CB future-dated outcome alert.
//! - [`message`]: decode any of them in one call ([`Message`]).
//! - [`error`]: typed errors with offsets.
//!
//! Signing and key agreement go through [`ecos_smki::Signer`] and
//! [`ecos_smki::KeyAgreement`], so an HSM can stand behind them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alert;
mod asn1;
pub mod cs02b;
pub mod error;
pub mod frame;
pub mod mac;
pub mod message;
pub mod response;

pub use alert::FutureDatedAlert;
pub use asn1::LengthStyle;
pub use cs02b::{
    AuthorisingRemotePartyControl, CertificateDer, Cs02bCommand, ExecutionDateTime,
    ReplacementMode, SupplierByTransCos, SupplierFloors, TransCosByTransCos, TrustAnchorCell,
    UpdateSecurityCredentials,
};
pub use error::{DecodeError, EncodeError, GbcsError};
pub use frame::{
    Cra, DlmsDateTime, Frame, GeneralSigning, GroupingHeader, MacHeader, SignatureField,
};
pub use message::{Body, Message};
pub use response::{Cs02bResponse, ExecutionOutcome, ReplacementOutcome, StatusCode};
