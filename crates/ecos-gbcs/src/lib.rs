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
//! - [`cs02a`]: the CS02a (0x0008) read of trust anchor cells and its answer.
//! - [`message`]: decode any of them in one call ([`Message`]).
//! - [`error`]: typed errors with offsets.
//!
//! Signing and key agreement go through [`ecos_smki::Signer`] and
//! [`ecos_smki::KeyAgreement`], so an HSM can stand behind them.
//!
//! ```
//! use ecos_gbcs::{CertificateDer, Cs02bCommand, Message, SupplierByTransCos, SupplierFloors, mac};
//! use ecos_smki::{Eui64, KeyAgreement, Signer, SoftwareKeyAgreement, SoftwareSigner};
//! # fn key() -> Vec<u8> {
//! #     use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
//! #     let rng = aws_lc_rs::rand::SystemRandom::new();
//! #     EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap().as_ref().to_vec()
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (cos, acb, device) = (
//!     SoftwareSigner::from_bytes(&key())?,
//!     SoftwareKeyAgreement::from_bytes(&key())?,
//!     SoftwareKeyAgreement::from_bytes(&key())?,
//! );
//! # let cert = || CertificateDer::new(vec![0x30, 0x00]).unwrap();
//! let cmd = Cs02bCommand::supplier_by_trans_cos(SupplierByTransCos {
//!     counter: 6001,
//!     originator: "90B3D51F30000004".parse()?,
//!     recipient: "00DB1234567890A0".parse()?,
//!     supplier_ds: cert(),
//!     supplier_ka: cert(),
//!     supplier_pp_ka: Some(cert()),
//!     certification_path: vec![cert()],
//!     apply_time_based_cpv_checks: true,
//!     supplier_floors: Some(SupplierFloors { floor: 0, prepayment_top_up_floor: Some(0) }),
//!     execution: None,
//! })?;
//! let bytes = cmd.sign_and_mac(&cos, &acb, device.public_key())?;
//! cmd.check_signed(&bytes, cos.public_key())?;
//!
//! // The device side: decode, verify the signature and the MAC.
//! let msg = Message::decode(&bytes)?;
//! msg.frame.verify_signature(cos.public_key())?;
//! mac::verify(&msg.frame, &device, acb.public_key())?;
//! assert_eq!(msg.command(), Some(cmd));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alert;
mod asn1;
pub mod cs02a;
pub mod cs02b;
pub mod error;
pub mod frame;
pub mod mac;
pub mod message;
pub mod response;

pub use alert::FutureDatedAlert;
pub use asn1::LengthStyle;
pub use cs02a::{CellDetails, READ_CELLS_CODE, ReadCells, ReadCellsResponse};
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
