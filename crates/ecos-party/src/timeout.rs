//! Commands the device never answered. A request whose command left for the
//! device (`dispatched`) and got no response within
//! `device_timeouts.response_secs` (immediate requests and cancellations),
//! or no outcome alert within `device_timeouts.future_dated_secs` of its
//! execution date-time (future-dated ones), is failed and its requester is
//! sent a DSP-signed DUIS error response: E21 (no response from the device)
//! or E30 (future-dated time-out) by default (`duis-6.23.md` §4). The state
//! change, the queued response and the audit entry are one commit, so a
//! request is answered once: a device answer arriving afterwards finds it
//! answered already, and a second sweep does not see it.

use ecos_store::{RequestKind, RequestState, StoredRequest};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::runtime::{Party, PartyError};
use crate::state;

/// A request the sweep failed for want of a device answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimedOut {
    /// The request.
    pub request_id: String,
    /// Its requester, who was sent the error response.
    pub originator: String,
    /// The device that did not answer.
    pub device: String,
    /// Immediate, future-dated or cancellation.
    pub kind: String,
    /// The DUIS response code sent.
    pub response_code: String,
    /// Since when an answer was due.
    pub due_since: Timestamp,
}

/// Requests handled per store read.
const PAGE: u32 = 100;

impl Party {
    /// Fail every request whose device answer is overdue at `now` and tell
    /// its requester (see the module documentation). Returns what was
    /// failed; a request answered meanwhile by its device is left alone.
    pub async fn expire_unanswered(&self, now: Timestamp) -> Result<Vec<TimedOut>, PartyError> {
        let t = &self.config().device_timeouts;
        let before = |secs: u64| -> Timestamp {
            if secs == 0 {
                return Timestamp::MIN;
            }
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            now.checked_sub(SignedDuration::from_secs(secs))
                .unwrap_or(Timestamp::MIN)
        };
        let (sent_before, executed_before) = (before(t.response_secs), before(t.future_dated_secs));
        let mut done = Vec::new();
        if sent_before == Timestamp::MIN && executed_before == Timestamp::MIN {
            return Ok(done);
        }
        loop {
            let page = self
                .store()
                .unanswered_requests(sent_before, executed_before, PAGE)
                .await
                .map_err(|e| PartyError::Store(e.to_string()))?;
            for req in &page {
                if let Some(t) = self.time_out(req, now, "device_timeout").await? {
                    done.push(t);
                }
            }
            // Every request read leaves `dispatched` (failed here, or
            // answered by its device meanwhile), so the next page is new.
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(done)
    }

    /// Fail `req` (from `dispatched` or `accepted`) for want of a device
    /// answer and send its requester the error response, audited as
    /// `action`. `false` when it was answered meanwhile.
    pub(crate) async fn fail_overdue(
        &self,
        req: &StoredRequest,
        now: Timestamp,
        action: &str,
    ) -> Result<bool, PartyError> {
        Ok(self.time_out(req, now, action).await?.is_some())
    }

    async fn time_out(
        &self,
        req: &StoredRequest,
        now: Timestamp,
        action: &str,
    ) -> Result<Option<TimedOut>, PartyError> {
        let t = &self.config().device_timeouts;
        let (code, due_since) = match req.kind {
            RequestKind::FutureDated => (
                &t.future_dated_code,
                req.execution_time.unwrap_or(req.updated_at),
            ),
            _ => (&t.no_response_code, req.updated_at),
        };
        let xml = req.request_xml.as_deref().unwrap_or_default();
        let header = match ecos_duis::read_request_header(
            xml.as_bytes(),
            &ecos_duis::Limits::default(),
        ) {
            Ok(h) => h,
            // Cannot be answered (the stored request does not read):
            // failed and audited, so that it does not stop every sweep.
            Err(e) => {
                state::set_request_state(self.store(), &req.request_id, RequestState::Failed, now)
                    .await?;
                state::audit(
                        self.store(),
                        now,
                        "ecos-party",
                        action,
                        &req.request_id,
                        &serde_json::json!({
                            "device": req.device.to_string(),
                            "message": format!("no device answer in time; the stored request does not read ({e}), so no response was sent"),
                        })
                        .to_string(),
                    )
                    .await?;
                return Ok(None);
            }
        };
        let rc = ecos_duis::ResponseCode::new(code)
            .map_err(|e| PartyError::Write(format!("device_timeouts: {code}: {e}")))?;
        let unsigned = ecos_duis::error_response(&header, &rc, now)
            .map_err(|e| PartyError::Write(e.to_string()))?;
        let signed = self.sign_response(&unsigned)?;
        let out = TimedOut {
            request_id: req.request_id.clone(),
            originator: req.originator.to_string(),
            device: req.device.to_string(),
            kind: req.kind.as_str().to_string(),
            response_code: code.clone(),
            due_since,
        };
        let detail = serde_json::json!({
            "timed_out": &out,
            "waited_secs": now.duration_since(due_since).as_secs(),
        })
        .to_string();
        let answered = state::commit_device_answer(
            self.store(),
            req,
            Some(RequestState::Failed),
            "device_timeout",
            &signed,
            action,
            &detail,
        )
        .await?;
        if !answered {
            return Ok(None);
        }
        tracing::warn!(
            request = %req.request_id,
            device = %req.device,
            code = %code,
            action,
            "no answer from the device in time: request failed, requester told"
        );
        metrics::counter!(
            "ecos_device_timeouts_total",
            "kind" => req.kind.as_str(),
            "action" => action.to_string()
        )
        .increment(1);
        Ok(Some(out))
    }
}
