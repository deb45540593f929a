//! The supply-chain rule: after ECoS go-live, a device added to the inventory with the
//! transitional credential is an exception: refused (reported) or, if configured,
//! accepted and queued for migration at once (reported).

use ecos_store::{CosCredential, Device, MigrationState, NewAuditEntry, Store};
use jiff::Timestamp;

use crate::MigrationError;
use crate::config::{OnTransitional, SupplyChain};

/// What happened to a device offered to the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Added (before go-live, or not transitional, or already known).
    Added,
    /// Added and queued for migration as a candidate.
    AddedAndQueued,
}

/// Add `device` to the inventory under the rule, at `now`.
///
/// A device already in the inventory is updated without the rule (it was added before).
/// Errors: [`MigrationError::TransitionalAfterGoLive`] when refused (and audited as
/// `migration.supply_chain_refused`).
pub async fn admit(
    store: &Store,
    rule: &SupplyChain,
    device: &Device,
    now: Timestamp,
) -> Result<Admission, MigrationError> {
    let after_go_live = rule.go_live.is_some_and(|g| now >= g);
    let transitional = device.cos_credential == Some(CosCredential::Transitional);
    let known = store.device(device.eui).await?.is_some();
    if !after_go_live || !transitional || known {
        store.upsert_device(device).await?;
        return Ok(Admission::Added);
    }
    let go_live = rule.go_live.map(|g| g.to_string()).unwrap_or_default();
    match rule.on_transitional_after_go_live {
        OnTransitional::Refuse => {
            store
                .append_audit(&NewAuditEntry {
                    actor: "ecos-migration",
                    action: "migration.supply_chain_refused",
                    subject: &device.eui.to_string(),
                    detail: &format!("transitional credential after go-live {go_live}"),
                })
                .await?;
            Err(MigrationError::TransitionalAfterGoLive {
                device: device.eui,
                go_live,
            })
        }
        OnTransitional::AcceptAndQueue => {
            store.upsert_device(device).await?;
            store
                .migration_track(
                    device.eui,
                    MigrationState::Candidate,
                    Some("added transitional after go-live"),
                    device.comms_hub,
                    device.csp_region.as_deref(),
                    now,
                    "supply-chain exception: queued at once",
                )
                .await?;
            store
                .append_audit(&NewAuditEntry {
                    actor: "ecos-migration",
                    action: "migration.supply_chain_queued",
                    subject: &device.eui.to_string(),
                    detail: &format!("transitional credential after go-live {go_live}"),
                })
                .await?;
            Ok(Admission::AddedAndQueued)
        }
    }
}
