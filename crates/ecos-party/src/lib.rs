//! The ECoS party: the 6.23 pipeline.
//!
//! - [`check`]: the checks, in their fixed order, over registration data
//!   and inventory; the first failure is one named [`Reason`].
//! - [`reason`]: the reasons, their evidence and the DUIS response codes.
//! - [`config`]: every interpretation of the reference as a setting.
//! - [`smki`]: the certificates held, signer lookup, cached path validation.
//! - [`keys`]: the CoS, ACB and DSP keys behind the `ecos-smki` traits.
//! - [`api`]: the port the HTTP layer calls.
//! - [`revalidate`]: pending future-dated requests re-checked when
//!   registration data changes, cancelled with an ECoSAlert when they fail.
//! - [`hold`]: future-dated requests held until `fd_dispatch_lead_secs`
//!   before execution, re-checked and sent by a sweep.
//! - [`followup`]: after a completed switch, the inventory's supplier
//!   credentials and the losing supplier's DCC alert.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod check;
pub mod command;
pub mod config;
pub mod demo;
pub mod device;
pub mod followup;
pub mod hold;
pub mod keys;
pub mod readiness;
pub mod reason;
pub mod revalidate;
pub mod runtime;
pub mod smki;
pub mod state;
pub mod timeout;

pub use api::{ServiceRequestHandler, SyncAnswer};
pub use check::{Accepted, CheckState, Checker, CosChoice, PendingFd, Refused};
pub use config::{DccAlertConfig, OnMigrationInFlight, OnPendingFd, PartyConfig};
pub use hold::HeldDispatch;
pub use keys::{CosKey, PartyKeys};
pub use reason::{Check, Reason, ResponseCodes};
pub use revalidate::{CancelledPending, DeviceCancellation, Revalidation};
pub use runtime::{DeviceTransport, Outcome, Party, PartyError};
pub use smki::SmkiRegistry;
