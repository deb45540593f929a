//! The TCoS → ECoS credential migration (`ecos-domain.md` §6, `gbcs-cs02b.md` §4.3).
//!
//! - [`config`]: eligibility rules, throttles, the retry strategy and the supply-chain
//!   rule, as configuration.
//! - [`select`]: the Device Candidate Selection Engine (rules, ordering, throttled batches).
//! - [`command`]: CS02b 0x0106 signed with the TCoS key, MACed for the device; reading
//!   the device's answer.
//! - [`retry`]: the Migration Retry Strategy (classes, backoff, limits).
//! - [`runner`]: [`Migrator`], resumable steps over the store's per-device state
//!   (`ecos_store::migration`).
//! - [`plan`]: what would be selected and when the population would finish.
//! - [`supply`]: the supply-chain rule after go-live.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod config;
pub mod plan;
pub mod retry;
pub mod runner;
pub mod select;
pub mod supply;

pub use config::MigrationConfig;
pub use runner::{Migrator, StepReport};

use ecos_smki::Eui64;

/// Why a migration operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] ecos_store::StoreError),
    /// A setting is wrong.
    #[error("migration config: {0}")]
    Config(String),
    /// The 0x0106 command for a device could not be built.
    #[error("0x0106 command for {device}: {detail}")]
    Command {
        /// The device.
        device: Eui64,
        /// Why.
        detail: String,
    },
    /// A device message did not verify or decode.
    #[error("device message: {0}")]
    DeviceMessage(String),
    /// The supply-chain rule refused a device.
    #[error("device {device} refused: transitional CoS credential after ECoS go-live {go_live}")]
    TransitionalAfterGoLive {
        /// The device.
        device: Eui64,
        /// The go-live instant.
        go_live: String,
    },
}
