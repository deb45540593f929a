//! The pipeline's durable state, over `ecos-store`: RequestID counters, the
//! GBCS originator counter, requests and their lifecycle, the audit log and
//! the outbound queue. Every function maps store errors to `PartyError::Store`.

use ecos_duis::RequestHeader;
use ecos_smki::Eui64;
use ecos_store::{NewAuditEntry, NewRequest, RequestUpdate, Store, StoredRequest};
pub use ecos_store::{RequestKind, RequestState};
use jiff::Timestamp;

use crate::runtime::PartyError;

/// The GBCS counter source shared by every CoS command (TCoS and ECoS, 6.23
/// and migration): one strictly increasing sequence, named by this
/// reserved EUI so that it never depends on which CoS key signs.
pub const COS_COUNTER: Eui64 = Eui64([0xEC, 0x05, 0, 0, 0, 0, 0, 0]);

/// A request as the pipeline stores it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// RequestID.
    pub request_id: String,
    /// Originator.
    pub originator: Eui64,
    /// Target device.
    pub device: Eui64,
    /// Kind.
    pub kind: RequestKind,
    /// Execution instant (future-dated).
    pub execution: Option<Timestamp>,
    /// State.
    pub state: RequestState,
    /// Refusal reason (JSON).
    pub reason: Option<String>,
    /// The request as received.
    pub request_xml: Vec<u8>,
    /// The command built.
    pub command: Option<Vec<u8>>,
    /// The command's GBCS counter.
    pub gbcs_counter: Option<u64>,
}

fn st(e: impl std::fmt::Display) -> PartyError {
    PartyError::Store(e.to_string())
}

/// The last RequestID counter accepted from `originator`.
pub async fn last_request_counter(store: &Store, originator: Eui64) -> Result<Option<u64>, String> {
    store
        .last_request_counter(originator)
        .await
        .map_err(|e| e.to_string())
}

/// Reserve the next GBCS originator counter (never below `floor`).
pub async fn reserve_counter(store: &Store, floor: u64) -> Result<u64, PartyError> {
    let start = store.reserve_gbcs_counter(COS_COUNTER).await.map_err(st)?;
    if start < floor {
        return Err(PartyError::Store(format!(
            "GBCS counter {} is below the configured floor {floor}: open the store with \
             StoreConfig::gbcs_counter_floor at least the party's counter_floor",
            start
        )));
    }
    Ok(start)
}

/// Record a refusal whole (see [`Store::commit_refusal`]): the refused
/// request under its RequestID when `header` is given (a RequestID seen
/// before keeps its first record), and the `refused` audit entry on
/// `subject`.
pub async fn commit_refusal(
    store: &Store,
    header: Option<&RequestHeader>,
    body: &[u8],
    reason_json: &str,
    subject: &str,
    audit_detail: &str,
) -> Result<(), PartyError> {
    let request = header.map(|h| NewRequest {
        request_id: h.request_id.to_string(),
        originator: h.request_id.originator,
        device: h.request_id.target,
        kind: RequestKind::Immediate,
        execution_time: None,
        request_xml: Some(String::from_utf8_lossy(body).into_owned()),
    });
    store
        .commit_refusal(&ecos_store::Refusal {
            request: request.as_ref(),
            reason: reason_json,
            audit: NewAuditEntry {
                actor: "ecos-party",
                action: "refused",
                subject,
                detail: audit_detail,
            },
        })
        .await
        .map_err(st)?;
    Ok(())
}

/// Move a request to `to` from any state that may precede it.
pub async fn set_request_state(
    store: &Store,
    request_id: &str,
    to: RequestState,
    _at: Timestamp,
) -> Result<(), PartyError> {
    use RequestState::*;
    let from: &[RequestState] = match to {
        Dispatched => &[Accepted],
        Completed | Failed => &[Dispatched, Accepted],
        Cancelled | Superseded => &[Received, Accepted, Dispatched],
        _ => &[Received, Accepted, Dispatched],
    };
    store
        .transition_request(request_id, from, RequestUpdate::to(to))
        .await
        .map_err(st)?;
    Ok(())
}

/// Record that a request's command left for the device. A fast transport
/// may have brought the device's answer back, and moved the request on,
/// before this runs: a request already answered keeps its state.
pub async fn mark_dispatched(
    store: &Store,
    request_id: &str,
    _at: Timestamp,
) -> Result<(), PartyError> {
    match store
        .move_request(
            request_id,
            &[RequestState::Accepted],
            RequestState::Dispatched,
        )
        .await
        .map_err(st)?
    {
        ecos_store::Moved::Moved => Ok(()),
        ecos_store::Moved::Unchanged(RequestState::Completed | RequestState::Failed) => Ok(()),
        ecos_store::Moved::Unchanged(actual) => Err(st(ecos_store::StoreError::RequestState {
            request_id: request_id.to_owned(),
            expected: RequestState::Accepted.to_string(),
            actual: actual.to_string(),
        })),
        _ => Err(PartyError::Store(format!(
            "request {request_id}: not moved to dispatched"
        ))),
    }
}

/// The request whose command to `device` carried `counter`.
pub async fn request_by_counter(
    store: &Store,
    device: Eui64,
    counter: u64,
) -> Result<Option<StoredRequest>, PartyError> {
    store
        .request_by_gbcs_counter(device, counter)
        .await
        .map_err(st)
}

/// Append to the hash-chained audit log.
pub async fn audit(
    store: &Store,
    _at: Timestamp,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), PartyError> {
    store
        .append_audit(&NewAuditEntry {
            actor,
            action,
            subject,
            detail,
        })
        .await
        .map_err(st)?;
    Ok(())
}

/// Commit an accepted request whole (see [`Store::commit_acceptance`]): the
/// RequestID counter advanced, the request stored (in `r.state`: accepted,
/// or dispatched when its command is sent right after) with its command and
/// GBCS counter, the cancelled request moved, and the `accepted` audit entry.
pub async fn commit_acceptance(
    store: &Store,
    r: &RequestRecord,
    request_counter: u64,
    cancels: Option<&str>,
    audit_detail: &str,
) -> Result<ecos_store::AcceptanceCommit, PartyError> {
    let request = NewRequest {
        request_id: r.request_id.clone(),
        originator: r.originator,
        device: r.device,
        kind: r.kind,
        execution_time: r.execution,
        request_xml: Some(String::from_utf8_lossy(&r.request_xml).into_owned()),
    };
    store
        .commit_acceptance(&ecos_store::Acceptance {
            request: &request,
            state: r.state,
            request_counter,
            command: r.command.as_deref().unwrap_or_default(),
            gbcs_counter: r.gbcs_counter.unwrap_or_default(),
            cancels,
            audit: NewAuditEntry {
                actor: "ecos-party",
                action: "accepted",
                subject: &r.request_id,
                detail: audit_detail,
            },
        })
        .await
        .map_err(st)
}

/// Commit a device's answer to `request` whole (see
/// [`Store::commit_device_answer`]): its new state (from dispatched or
/// accepted), the DUIS response queued for the requester (as `kind`), and
/// the audit entry (`action`: `device_report`, `device_timeout`). `false`
/// when it was answered already.
pub async fn commit_device_answer(
    store: &Store,
    request: &StoredRequest,
    to: Option<RequestState>,
    kind: &str,
    body: &[u8],
    action: &str,
    audit_detail: &str,
) -> Result<bool, PartyError> {
    const FROM: [RequestState; 2] = [RequestState::Dispatched, RequestState::Accepted];
    store
        .commit_device_answer(&ecos_store::DeviceAnswer {
            request_id: &request.request_id,
            transition: to.map(|t| (&FROM[..], t)),
            recipient: &request.originator.to_string(),
            kind,
            body,
            audit: NewAuditEntry {
                actor: "ecos-party",
                action,
                subject: &request.request_id,
                detail: audit_detail,
            },
        })
        .await
        .map_err(st)
}
