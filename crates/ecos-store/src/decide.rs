//! Decisions written whole: the rows that together make an acceptance, or a
//! device answer, committed in one transaction, so that a process killed at
//! any point leaves either all of them or none (the kill-and-restart harness,
//! `crates/ecos/tests/faults.rs`, found both half-written).

use jiff::Timestamp;

use crate::error::{Result, StoreError};
use crate::pipeline::{
    NewAuditEntry, NewRequest, RequestState, canonical, chain_hash, hash32, is_unique_violation,
    u64_to_ordered_i64,
};
use crate::store::{Store, on_pool, ts_to_micros};

/// An acceptance to commit: see [`Store::commit_acceptance`].
#[derive(Debug, Clone)]
pub struct Acceptance<'a> {
    /// The request, stored in state `accepted`.
    pub request: &'a NewRequest,
    /// The DUIS RequestID counter, advanced for the originator.
    pub request_counter: u64,
    /// The GBCS command built for it.
    pub command: &'a [u8],
    /// The command's GBCS originator counter (reserved before).
    pub gbcs_counter: u64,
    /// A request this one cancels (moved to `cancelled`).
    pub cancels: Option<&'a str>,
    /// The audit entry recording the decision.
    pub audit: NewAuditEntry<'a>,
}

/// What [`Store::commit_acceptance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptanceCommit {
    /// Everything written.
    Committed,
    /// Nothing written: the RequestID counter is not above the last one
    /// accepted from the originator (a concurrent request got there first).
    StaleCounter,
    /// Nothing written: a request with this RequestID is stored already.
    Duplicate,
}

/// A device's answer to commit: see [`Store::commit_device_answer`].
#[derive(Debug, Clone)]
pub struct DeviceAnswer<'a> {
    /// The request answered.
    pub request_id: &'a str,
    /// Its new state, moved to only from one of `from`; `None` leaves the
    /// state as it is (an intermediate answer).
    pub transition: Option<(&'a [RequestState], RequestState)>,
    /// The recipient of the DUIS response (the requester).
    pub recipient: &'a str,
    /// The outbound message kind.
    pub kind: &'a str,
    /// The DUIS response.
    pub body: &'a [u8],
    /// The audit entry recording the answer.
    pub audit: NewAuditEntry<'a>,
}

/// Append `$e` to the audit chain inside the transaction `$tx`.
macro_rules! append_audit_in {
    ($tx:expr, $e:expr, $at:expr) => {{
        let (seq, prev): (i64, Vec<u8>) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut *$tx)
                .await?;
        let prev = hash32("prev_hash", &prev)?;
        let e = &$e;
        let canon = canonical(seq as u64, $at, [e.actor, e.action, e.subject, e.detail]);
        let hash = chain_hash(&prev, &canon);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(ts_to_micros($at))
        .bind(e.actor)
        .bind(e.action)
        .bind(e.subject)
        .bind(e.detail)
        .bind(prev.to_vec())
        .bind(hash.to_vec())
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(hash.to_vec())
            .execute(&mut *$tx)
            .await?;
    }};
}

fn audit_instant() -> Timestamp {
    let at = Timestamp::now();
    Timestamp::from_microsecond(ts_to_micros(at)).unwrap_or(at)
}

impl Store {
    /// Commit an acceptance in one transaction: advance the originator's
    /// RequestID counter (only if strictly above the last accepted), store
    /// the request in state `accepted` with its command and GBCS counter,
    /// cancel the request it cancels, and append the audit entry. Either
    /// all of it is written or none of it.
    pub async fn commit_acceptance(&self, a: &Acceptance<'_>) -> Result<AcceptanceCommit> {
        let now = ts_to_micros(Timestamp::now());
        let at = audit_instant();
        let r = a.request;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let advanced = sqlx::query(
                "INSERT INTO request_counters (originator, last_counter, updated_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (originator) DO UPDATE SET \
                 last_counter = excluded.last_counter, updated_at = excluded.updated_at \
                 WHERE request_counters.last_counter < excluded.last_counter",
            )
            .bind(r.originator.to_compact())
            .bind(u64_to_ordered_i64(a.request_counter))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if advanced != 1 {
                return Ok(AcceptanceCommit::StaleCounter);
            }
            let inserted = sqlx::query(
                "INSERT INTO requests (request_id, originator, device_eui, kind, execution_time, \
                 state, request_xml, command, gbcs_counter, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&r.request_id)
            .bind(r.originator.to_compact())
            .bind(r.device.to_compact())
            .bind(r.kind.as_str())
            .bind(r.execution_time.map(ts_to_micros))
            .bind(RequestState::Accepted.as_str())
            .bind(&r.request_xml)
            .bind(a.command)
            .bind(u64_to_ordered_i64(a.gbcs_counter))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Ok(AcceptanceCommit::Duplicate),
                Err(e) => return Err(StoreError::from(e)),
            }
            if let Some(cancelled) = a.cancels {
                sqlx::query(
                    "UPDATE requests SET state = $1, updated_at = $2 \
                     WHERE request_id = $3 AND state IN ($4, $5, $6)",
                )
                .bind(RequestState::Cancelled.as_str())
                .bind(now)
                .bind(cancelled)
                .bind(RequestState::Received.as_str())
                .bind(RequestState::Accepted.as_str())
                .bind(RequestState::Dispatched.as_str())
                .execute(&mut *tx)
                .await?;
            }
            append_audit_in!(tx, a.audit, at);
            tx.commit().await?;
        });
        Ok(AcceptanceCommit::Committed)
    }

    /// Commit a device's answer in one transaction: move the request to its
    /// new state (compare and set), queue the DUIS response for the
    /// requester, and append the audit entry. Returns `false`, with nothing
    /// written, when the request is no longer in one of the expected states
    /// (the answer was committed already: a repeated device message is not
    /// answered twice).
    pub async fn commit_device_answer(&self, d: &DeviceAnswer<'_>) -> Result<bool> {
        let now = ts_to_micros(Timestamp::now());
        let at = audit_instant();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            if let Some((from, to)) = d.transition {
                let mut moved = 0;
                for f in from {
                    moved += sqlx::query(
                        "UPDATE requests SET state = $1, updated_at = $2 \
                         WHERE request_id = $3 AND state = $4",
                    )
                    .bind(to.as_str())
                    .bind(now)
                    .bind(d.request_id)
                    .bind(f.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if moved > 0 {
                        break;
                    }
                }
                if moved == 0 {
                    return Ok(false);
                }
            }
            sqlx::query(
                "INSERT INTO outbound (recipient, request_id, kind, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(d.recipient)
            .bind(d.request_id)
            .bind(d.kind)
            .bind(d.body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_audit_in!(tx, d.audit, at);
            tx.commit().await?;
        });
        Ok(true)
    }
}
