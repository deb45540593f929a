//! Future-dated 6.23s held for dispatch (`party.fd_dispatch_lead_secs`,
//! `ecos-domain.md` §4: "dispatch the GBCS command … either at receipt or
//! `fd_dispatch_lead` before execution (configurable)" and "re-validate
//! checks A and B at dispatch").
//!
//! With a lead set, an accepted future-dated request's command (signed and
//! stored at receipt) stays in the store, state `accepted`, until `lead`
//! before its execution date-time. [`Party::dispatch_held_future_dated`]
//! (run by `ecos serve` every 30 s) then, for each request due:
//!
//! 1. runs checks 6 and 7 again as of the data held now
//!    ([`Party::recheck_pending`]); a request that fails them is cancelled in
//!    the store only (its command never left) and its requester sent an
//!    `ECoSAlert`, as re-validation does;
//! 2. claims the request (`accepted` → `dispatched`, compare-and-set) and
//!    only then hands the command to the device transport, so a cancellation
//!    that arrives meanwhile finds it dispatched and cancels it on the device;
//!    a send that fails puts it back to `accepted` for the next sweep;
//! 3. a request whose execution date-time passed before it could be sent
//!    (the service was down) is failed and its requester sent the
//!    future-dated time-out error (`device_timeouts.future_dated_code`).
//!
//! A cancellation 6.23 for a request still held claims it (`accepted` →
//! `cancelled`) before its own acceptance is committed, sends no command to
//! the device, and is completed at once with a DSP-signed I0 response
//! ([`ecos_duis::dsp_response`]). Command variant 2 requests are never sent
//! by the party (local delivery) and are left alone; variant 3 requests are
//! handed to the requester at receipt and sent to the device when due.

use ecos_smki::Eui64;
use ecos_store::{NewAuditEntry, RequestState, RequestUpdate, StoreError, StoredRequest};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::revalidate::CancelledPending;
use crate::runtime::{Party, PartyError};
use crate::state;

/// Held requests read per store page.
const PAGE: u32 = 100;

/// What a dispatch sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeldDispatch {
    /// Requests due and looked at.
    pub due: u64,
    /// Sent to their device (RequestIDs).
    pub sent: Vec<String>,
    /// Cancelled because checks 6 or 7 fail now (in the store only).
    pub cancelled: Vec<CancelledPending>,
    /// Failed: their execution date-time passed before they could be sent.
    pub missed: Vec<String>,
    /// Still held: the send failed (tried again by the next sweep), each with why.
    pub not_sent: Vec<(String, String)>,
    /// Still held: could not be re-checked (the stored request no longer
    /// reads or its signer is no longer held), each with why.
    pub unchecked: Vec<(String, String)>,
}

/// What [`Party::send_claimed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimedSend {
    /// Claimed and handed to the transport.
    Sent,
    /// No longer `accepted` (cancelled meanwhile): nothing sent.
    Gone,
    /// The transport refused it; back to `accepted`.
    NotSent(String),
}

impl Party {
    /// Whether a future-dated request executing at `execution`, accepted at
    /// `at`, waits in the store instead of being sent at receipt (a lead is
    /// configured and it is not yet due).
    pub fn holds(&self, execution: Timestamp, at: Timestamp) -> bool {
        self.config()
            .fd_dispatch_lead_secs
            .is_some_and(|lead| dispatch_instant(execution, lead) > at)
    }

    /// Send every held future-dated request due at `now` (see the module
    /// documentation). With no lead configured every held request is due:
    /// requests held while a lead was set, and still held when it was
    /// switched off, go with the next sweep instead of never. Safe to run at
    /// any time and from several processes: each request is claimed before
    /// it is sent.
    pub async fn dispatch_held_future_dated(
        &self,
        now: Timestamp,
    ) -> Result<HeldDispatch, PartyError> {
        let mut out = HeldDispatch::default();
        let due_by = match self.config().fd_dispatch_lead_secs {
            Some(lead) => now
                .checked_add(SignedDuration::from_secs(
                    i64::try_from(lead).unwrap_or(i64::MAX),
                ))
                .unwrap_or(Timestamp::MAX),
            None => Timestamp::MAX,
        };
        let mut after: Option<(Timestamp, String)> = None;
        loop {
            let page = self
                .store()
                .held_future_dated_due(
                    due_by,
                    after.as_ref().map(|(t, id)| (*t, id.as_str())),
                    PAGE,
                )
                .await
                .map_err(|e| PartyError::Store(e.to_string()))?;
            let Some(last) = page.last() else { break };
            after = Some((
                last.execution_time.unwrap_or(Timestamp::MIN),
                last.request_id.clone(),
            ));
            for req in &page {
                self.dispatch_due(req, now, &mut out).await?;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        if out.due > 0 {
            tracing::info!(
                due = out.due,
                sent = out.sent.len(),
                cancelled = out.cancelled.len(),
                missed = out.missed.len(),
                not_sent = out.not_sent.len(),
                "held future-dated 6.23s dispatched"
            );
        }
        Ok(out)
    }

    async fn dispatch_due(
        &self,
        req: &StoredRequest,
        now: Timestamp,
        out: &mut HeldDispatch,
    ) -> Result<(), PartyError> {
        let id = req.request_id.clone();
        let execution = req.execution_time.unwrap_or(now);
        let header = req
            .request_xml
            .as_deref()
            .map(|x| ecos_duis::read_request_header(x.as_bytes(), &ecos_duis::Limits::default()));
        // Local delivery only: the party never sends these.
        if let Some(Ok(h)) = &header
            && h.command_variant.get() == 2
        {
            return Ok(());
        }
        out.due += 1;
        if execution <= now {
            if self.fail_overdue(req, now, "fd_dispatch_missed").await? {
                out.missed.push(id);
            }
            return Ok(());
        }
        match header {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                out.unchecked
                    .push((id, format!("the stored request does not read: {e}")));
                return Ok(());
            }
            None => {
                out.unchecked
                    .push((id, "the request XML is not stored".into()));
                return Ok(());
            }
        }
        match self.recheck_pending(req, now).await? {
            Err(why) => out.unchecked.push((id, why)),
            Ok(Some(reason)) => {
                if let Some(c) = self.cancel_pending(req, reason, now).await? {
                    out.cancelled.push(c);
                }
            }
            Ok(None) => {
                let Some(command) = req.command.clone() else {
                    out.unchecked.push((id, "no command is stored".into()));
                    return Ok(());
                };
                match self.send_claimed(&id, req.device, command).await? {
                    ClaimedSend::Sent => {
                        state::audit(
                            self.store(),
                            now,
                            "ecos-party",
                            "fd_dispatched",
                            &id,
                            &serde_json::json!({
                                "device": req.device.to_string(),
                                "execution": execution.to_string(),
                                "lead_secs": self.config().fd_dispatch_lead_secs,
                                "gbcs_counter": req.gbcs_counter,
                            })
                            .to_string(),
                        )
                        .await?;
                        out.sent.push(id);
                    }
                    ClaimedSend::Gone => {}
                    ClaimedSend::NotSent(e) => {
                        tracing::warn!(request = %id, "held future-dated 6.23 not sent: {e}");
                        out.not_sent.push((id, e));
                    }
                }
            }
        }
        Ok(())
    }

    /// Claim an accepted request (`accepted` → `dispatched`) and hand its
    /// command to the device transport; put it back to `accepted` when the
    /// transport refuses it.
    pub(crate) async fn send_claimed(
        &self,
        request_id: &str,
        device: Eui64,
        command: Vec<u8>,
    ) -> Result<ClaimedSend, PartyError> {
        let st = |e: StoreError| PartyError::Store(e.to_string());
        let Some(t) = self.transport() else {
            return Ok(ClaimedSend::NotSent(
                "no device transport configured".into(),
            ));
        };
        match self
            .store()
            .transition_request(
                request_id,
                &[RequestState::Accepted],
                RequestUpdate::to(RequestState::Dispatched),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::RequestState { .. }) => return Ok(ClaimedSend::Gone),
            Err(e) => return Err(st(e)),
        }
        match t.send(device, command).await {
            Ok(()) => Ok(ClaimedSend::Sent),
            Err(e) => {
                match self
                    .store()
                    .transition_request(
                        request_id,
                        &[RequestState::Dispatched],
                        RequestUpdate::to(RequestState::Accepted),
                    )
                    .await
                {
                    // Cancelled (on the device) or answered meanwhile.
                    Ok(_) | Err(StoreError::RequestState { .. }) => {}
                    Err(err) => return Err(st(err)),
                }
                Ok(ClaimedSend::NotSent(e))
            }
        }
    }

    /// For a cancellation 6.23 of `pending`: when it is held (its command
    /// never left: `accepted`, command variant 1), claim it (`accepted` →
    /// `cancelled`, the claim recorded in its decision reason) and return
    /// `true`; the cancellation then needs no device command. `false` when
    /// no lead is configured or the command may be on the device.
    pub(crate) async fn claim_held_for_cancellation(
        &self,
        pending: &str,
        cancellation: &str,
    ) -> Result<bool, PartyError> {
        let st = |e: StoreError| PartyError::Store(e.to_string());
        if self.config().fd_dispatch_lead_secs.is_none() {
            return Ok(false);
        }
        let Some(p) = self.store().request(pending).await.map_err(st)? else {
            return Ok(false);
        };
        let cv = p.request_xml.as_deref().and_then(|x| {
            ecos_duis::read_request_header(x.as_bytes(), &ecos_duis::Limits::default())
                .ok()
                .map(|h| h.command_variant.get())
        });
        if p.state != RequestState::Accepted || cv != Some(1) {
            return Ok(false);
        }
        let reason = serde_json::json!({
            "cancelled_by": cancellation,
            "held": true,
            "message": "cancelled by its requester while held: the command never left",
        })
        .to_string();
        match self
            .store()
            .transition_request(
                pending,
                &[RequestState::Accepted],
                RequestUpdate::to(RequestState::Cancelled).with_reason(reason),
            )
            .await
        {
            Ok(_) => Ok(true),
            // Dispatched meanwhile: cancel it on the device.
            Err(StoreError::RequestState { .. }) => Ok(false),
            Err(e) => Err(st(e)),
        }
    }

    /// Undo [`Party::claim_held_for_cancellation`] when the cancellation
    /// itself was not accepted after all (a concurrent request took its
    /// RequestID or counter).
    pub(crate) async fn release_held_claim(&self, pending: &str) -> Result<(), PartyError> {
        match self
            .store()
            .transition_request(
                pending,
                &[RequestState::Cancelled],
                RequestUpdate::to(RequestState::Accepted),
            )
            .await
        {
            Ok(_) | Err(StoreError::RequestState { .. }) => Ok(()),
            Err(e) => Err(PartyError::Store(e.to_string())),
        }
    }

    /// Complete an accepted cancellation of a held request without the
    /// device: its requester is sent a DSP-signed I0 response, committed with
    /// the state change (`accepted` → `completed`) and the audit entry.
    pub(crate) async fn complete_held_cancellation(
        &self,
        header: &ecos_duis::RequestHeader,
        cancelled: &str,
        device: Eui64,
        at: Timestamp,
    ) -> Result<(), PartyError> {
        let unsigned =
            ecos_duis::dsp_response(header, at).map_err(|e| PartyError::Write(e.to_string()))?;
        let signed = self.sign_response(&unsigned)?;
        let request_id = header.request_id.to_string();
        let detail = serde_json::json!({
            "cancels": cancelled,
            "device": device.to_string(),
            "message": "the cancelled request was held: no command reached the device",
        })
        .to_string();
        self.store()
            .commit_device_answer(&ecos_store::DeviceAnswer {
                request_id: &request_id,
                transition: Some((&[RequestState::Accepted], RequestState::Completed)),
                recipient: &header.request_id.originator.to_string(),
                kind: "dsp_response",
                body: &signed,
                audit: NewAuditEntry {
                    actor: "ecos-party",
                    action: "fd_cancelled_locally",
                    subject: &request_id,
                    detail: &detail,
                },
            })
            .await
            .map_err(|e| PartyError::Store(e.to_string()))?;
        Ok(())
    }
}

/// When a request executing at `execution` is sent, `lead_secs` before it.
fn dispatch_instant(execution: Timestamp, lead_secs: u64) -> Timestamp {
    let lead = SignedDuration::from_secs(i64::try_from(lead_secs).unwrap_or(i64::MAX));
    execution.checked_sub(lead).unwrap_or(Timestamp::MIN)
}
