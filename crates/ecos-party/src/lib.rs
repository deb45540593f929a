//! The ECoS party: the 6.23 pipeline.
//!
//! - [`check`]: the checks, in their fixed order, over registration data
//!   and inventory; the first failure is one named [`Reason`].
//! - [`reason`]: the reasons, their evidence and the DUIS response codes.
//! - [`config`]: every interpretation of the reference as a setting.
//! - [`smki`]: the certificates held, signer lookup, cached path validation.
//! - [`keys`]: the CoS, ACB and DSP keys behind the `ecos-smki` traits.
//! - [`api`]: the port the HTTP layer calls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod check;
pub mod command;
pub mod config;
pub mod demo;
pub mod device;
pub mod keys;
pub mod readiness;
pub mod reason;
pub mod runtime;
pub mod smki;
pub mod state;

pub use api::{ServiceRequestHandler, SyncAnswer};
pub use check::{Accepted, CheckState, Checker, CosChoice, PendingFd, Refused};
pub use config::{OnPendingFd, PartyConfig};
pub use keys::{CosKey, PartyKeys};
pub use reason::{Check, Reason, ResponseCodes};
pub use runtime::{DeviceTransport, Outcome, Party, PartyError};
pub use smki::SmkiRegistry;
