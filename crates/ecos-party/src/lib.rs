//! The ECoS party: the 6.23 pipeline.
//!
//! - [`reason`]: the checks in order and the named reasons a request fails.
//! - [`config`]: every interpretation of the reference as a setting.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod reason;

pub use api::{ServiceRequestHandler, SyncAnswer};
pub use config::{OnPendingFd, PartyConfig};
pub use reason::{Check, Reason, ResponseCodes};
