//! GB Smart Metering Key Infrastructure (SMKI) for ecos.
//!
//! - [`Eui64`]: organisation and device identifiers.
//! - [`Role`]: role codes read from a certificate's OU.
//! - [`Certificate`]: a parsed, profile-checked SMKI certificate; [`CertCache`]
//!   parses each distinct certificate once.
//! - [`Mpids`]: MPIDs from the CN of an XML Sign certificate, under [`MpidRules`].
//! - [`validate_path`]: certification path validation against a [`TrustStore`].
//! - [`testpki`]: a deterministic test PKI with the SMKI profile.
//! - [`keys`]: the [`Signer`] and [`KeyAgreement`] traits, P-256 public keys,
//!   and the software implementation on aws-lc-rs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod cert;
mod eui;
pub mod keys;
mod mpid;
mod path;
mod role;
pub mod testpki;

pub use cache::{Bounded, CacheStats, CertCache};
pub use cert::{CertError, CertKind, Certificate, KeyUsage};
pub use eui::{Eui64, EuiError};
pub use keys::{
    KeyAgreement, KeyError, P256PublicKey, Signer, SoftwareKeyAgreement, SoftwareSigner,
};
pub use mpid::{Fuel, MpidError, MpidRules, Mpids, ReferenceLists};
pub use path::{
    PathError, PathPolicy, RevocationError, Revocations, RevokedEntry, TrustStore, ValidatedPath,
    validate_path,
};
pub use role::{Role, RoleError};
pub use testpki::{TestPki, TestPkiError, TestPkiSpec};
