//! XML signatures for DUIS: the hardened XML entry point, Canonical XML 1.0
//! and Exclusive C14N 1.0, and XML-DSig signing and strict verification
//! pinned to the DUIS profile (`duis-6.23.md` §6).
//!
//! - [`parse`]: every inbound document goes through it ([`Limits`], [`ParseError`]).
//! - [`c14n`]: the two canonicalisers over a [`roxmltree`] tree.
//! - [`verify`] / [`verify_with`]: strict verification; the caller resolves
//!   the signer's key from (issuer, serial) and gets back the signed content.
//!   [`verify_then`] hands the signed content to a reader without a second
//!   parse ([`SignedContent`]); a document in the DUIS subset of XML is
//!   read by a strict single-pass tokenizer into a flat table ([`flat`])
//!   first, with the roxmltree path as the fallback for anything else.
//! - [`sign`]: enveloped signature, last child of the root, compact output.
//! - [`dn_eq`]: compare `X509IssuerName` with a certificate's issuer as names.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod c14n;
mod dn;
mod dsig;
mod fast;
pub mod flat;
mod parse;

pub use dn::dn_eq;
pub use dsig::{
    ALG_ECDSA_SHA256, ALG_ENVELOPED, ALG_EXC_C14N, ALG_SHA256, AlgorithmSlot, DS_NS, DsigError,
    MatchedForm, SignedContent, SignedTree, Verified, VerifyOptions, sign, sign_with, signer_of,
    verify, verify_then, verify_then_fast, verify_then_general, verify_with,
};
pub use parse::{
    Limits, ParseError, Position, element_path, node_position, parse, parse_prepared, prepare,
};
pub use roxmltree;
