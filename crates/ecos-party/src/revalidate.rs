//! Re-validation of pending future-dated 6.23s (`ecos-domain.md` §4: "re-validate
//! checks A and B", going beyond the DCC as issue 6 asks).
//!
//! When registration data (or the inventory) changes, a future-dated change of
//! supplier accepted earlier may no longer be allowed: the requester is no longer
//! the registered supplier at the execution date, or the MPxN is no longer the
//! device's. [`Party::revalidate_pending_future_dated`] re-runs check 6 (MPxN) and
//! check 7 (MPID at the execution date) for every pending future-dated request and,
//! for each that now fails:
//!
//! 1. builds the cancellation (CS02b with `99991231235959Z`, no `[6]`, the same
//!    replacement certificates), signed with the CoS key the device holds now, and
//!    stores it as a party-originated request (RequestID `<CoS EUI>:<device>:<GBCS
//!    counter>`, no request XML) so the device's `commandAccepted` is matched;
//! 2. moves the pending request to `cancelled` with the failing reason;
//! 3. audits it (`fd_revalidation_cancelled`, with the reason as evidence);
//! 4. queues a DSP-signed DCC alert `ECoSAlert` for the requester (when
//!    `dcc_alerts.fd_revalidation` is on) naming the request, the device and why;
//! 5. sends the cancellation to the device when the pending command may be on it
//!    (it was dispatched, or handed to the requester for local delivery); a request
//!    whose command never left is cancelled in the store only.
//!
//! Everything is recorded before anything is sent, as on the request path. A
//! cancellation that could not be sent (no transport, a WAN error) stays
//! `accepted`; [`Party::resend_unsent_cancellations`] sends it later, while the
//! cancelled request's execution date-time is still ahead (after it, the
//! device has acted on the command or dropped it, and the cancellation is
//! failed and audited for an operator).

use ecos_duis::{
    CosRequest, DccAlert, DccAlertBody, DccAlertCode, DuisRequest, EcosAlert, Execution, RequestId,
    ResponseCode,
};
use ecos_smki::{Certificate, Eui64};
use ecos_store::{RequestKind, RequestState, RequestUpdate, StoredRequest};
use jiff::Timestamp;

use crate::check::{check_credential, check_mpid, check_mpxn_is_devices};
use crate::reason::Reason;
use crate::runtime::{Party, PartyError};
use crate::state;

/// The counter source of the AlertIDs of the DCC alerts the party raises (a
/// reserved EUI in the store's counter table, like [`state::COS_COUNTER`]).
pub const ALERT_COUNTER: Eui64 = Eui64([0xEC, 0x05, 0, 0, 0, 0, 0, 0xA1]);

/// What happened to the device side of a cancelled pending request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "on_device")]
pub enum DeviceCancellation {
    /// The command never left the party: cancelled in the store only.
    NotNeeded,
    /// The cancellation was handed to the device transport.
    Sent {
        /// Its RequestID (party-originated).
        request_id: String,
        /// Its GBCS counter.
        counter: u64,
    },
    /// The cancellation was built and stored but could not be sent; it
    /// stays `accepted` and [`Party::resend_unsent_cancellations`] sends it
    /// later.
    NotSent {
        /// Its RequestID (party-originated).
        request_id: String,
        /// Why.
        detail: String,
    },
    /// No cancellation could be built for the device (its credential or
    /// keys); an operator must act.
    Impossible {
        /// Why.
        detail: String,
    },
}

/// One pending request that re-validation cancelled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CancelledPending {
    /// The cancelled request.
    pub request_id: String,
    /// Its requester.
    pub originator: Eui64,
    /// Its device.
    pub device: Eui64,
    /// Its execution instant.
    pub execution: Option<Timestamp>,
    /// The check it fails now.
    pub reason: Reason,
    /// The device side.
    pub on_device: DeviceCancellation,
    /// The outbound-queue id of the ECoSAlert to the requester, if one was queued.
    pub alert: Option<u64>,
}

/// What a re-validation run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Revalidation {
    /// Pending future-dated requests looked at.
    pub checked: u64,
    /// Still valid.
    pub still_valid: u64,
    /// Not re-checkable (the stored request no longer reads or its signer is
    /// no longer held); left pending, each with why.
    pub unchecked: Vec<(String, String)>,
    /// Cancelled, each with the reason.
    pub cancelled: Vec<CancelledPending>,
}

/// A stored request read back: the request and the certificate that signed it.
struct Reread {
    request: CosRequest,
    signer: std::sync::Arc<Certificate>,
}

impl Party {
    /// Re-check checks 6 and 7 for every pending future-dated 6.23 at `at`
    /// and cancel (on the device and in the store) those that fail now,
    /// telling each requester why. Safe to run at any time and repeatedly:
    /// a request that is still valid is left alone, and one cancelled
    /// concurrently (by its requester) is skipped.
    pub async fn revalidate_pending_future_dated(
        &self,
        at: Timestamp,
    ) -> Result<Revalidation, PartyError> {
        let mut out = Revalidation::default();
        let mut after = String::new();
        loop {
            let page = self
                .store()
                .pending_future_dated(&after, 500)
                .await
                .map_err(|e| PartyError::Store(e.to_string()))?;
            let Some(last) = page.last() else { break };
            after = last.request_id.clone();
            for req in page {
                out.checked += 1;
                match self.recheck_pending(&req, at).await? {
                    Err(why) => out.unchecked.push((req.request_id.clone(), why)),
                    Ok(None) => out.still_valid += 1,
                    Ok(Some(reason)) => {
                        if let Some(c) = self.cancel_pending(&req, reason, at).await? {
                            out.cancelled.push(c);
                        }
                    }
                }
            }
        }
        tracing::info!(
            checked = out.checked,
            cancelled = out.cancelled.len(),
            unchecked = out.unchecked.len(),
            "pending future-dated 6.23s re-validated"
        );
        Ok(out)
    }

    /// Re-run checks 6 (MPxN) and 7 (MPID at the execution date) for one
    /// pending request, as of the data in the store now. `Ok(None)`: still
    /// valid; `Ok(Some(reason))`: fails now; `Err(why)`: cannot be re-checked.
    pub async fn recheck_pending(
        &self,
        req: &StoredRequest,
        _at: Timestamp,
    ) -> Result<Result<Option<Reason>, String>, PartyError> {
        let st = |e: ecos_store::StoreError| PartyError::Store(e.to_string());
        let reread = match self.reread(req) {
            Ok(r) => r,
            Err(why) => return Ok(Err(why)),
        };
        let Some(device) = self.store().device(req.device).await.map_err(st)? else {
            return Ok(Ok(Some(Reason::DeviceUnknown {
                device: req.device.to_string(),
            })));
        };
        let Some(fuel) = device.device_type.fuel() else {
            return Ok(Ok(Some(Reason::DeviceType {
                device: device.eui.to_string(),
                found: device.device_type.to_string(),
            })));
        };
        let body = &reread.request.body;
        let mpxn = match self.store().parse_mpxn(&body.import_mpxn) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Ok(Some(Reason::MpxnInvalid {
                    requested: body.import_mpxn.clone(),
                    detail: e.to_string(),
                })));
            }
        };
        if let Err(r) = check_mpxn_is_devices(&body.import_mpxn, &mpxn, &device) {
            return Ok(Ok(Some(r)));
        }
        let history = self.store().registration_history(&mpxn).await.map_err(st)?;
        if history.is_empty() {
            return Ok(Ok(Some(Reason::MpxnNotRegistered {
                mpxn: mpxn.as_str().to_string(),
            })));
        }
        let as_of = match body.execution {
            Execution::FutureDated(t) => t,
            _ => req.execution_time.unwrap_or(req.created_at),
        };
        Ok(Ok(check_mpid(
            &reread.signer,
            self.mpid_rules(),
            fuel,
            &mpxn,
            &history,
            self.store().as_of_date(as_of),
            self.config().switch_date_grace_days,
        )
        .err()))
    }

    /// The stored request's signed content and signer, verified again.
    fn reread(&self, req: &StoredRequest) -> Result<Reread, String> {
        let xml = req
            .request_xml
            .as_deref()
            .ok_or("the request XML is not stored")?;
        let mut signer = None;
        let verified = ecos_xmldsig::verify_with(xml.as_bytes(), self.verify_options(), |i, s| {
            let cert = self.smki().lookup(i, s)?;
            let key = cert.public_key().clone();
            signer = Some(cert);
            Some(key)
        })
        .map_err(|e| format!("the stored request no longer verifies: {e}"))?;
        let signer = signer.ok_or("the stored request's signer is not held")?;
        match ecos_duis::read_request(&verified.signed_xml, &ecos_duis::Limits::default()) {
            Ok(DuisRequest::UpdateSecurityCredentialsCoS(r)) => Ok(Reread {
                request: *r,
                signer,
            }),
            Ok(_) => Err("the stored request is not a 6.23".into()),
            Err(e) => Err(format!("the stored request does not read: {e}")),
        }
    }

    /// Cancel one pending request that fails `reason` now. `None` when it
    /// was no longer pending (cancelled or completed meanwhile).
    pub(crate) async fn cancel_pending(
        &self,
        req: &StoredRequest,
        reason: Reason,
        at: Timestamp,
    ) -> Result<Option<CancelledPending>, PartyError> {
        let st = |e: ecos_store::StoreError| PartyError::Store(e.to_string());
        // Was the command handed out? Dispatched to the device, or returned to
        // the requester for local delivery (command variants 2 and 3).
        let cv = req
            .request_xml
            .as_deref()
            .and_then(|x| {
                ecos_duis::read_request_header(x.as_bytes(), &ecos_duis::Limits::default()).ok()
            })
            .map(|h| h.command_variant.get())
            .unwrap_or(1);
        let handed_out = req.state == RequestState::Dispatched || matches!(cv, 2 | 3);

        // 1. Build and store the cancellation before anything changes.
        let mut prepared: Option<(String, Vec<u8>, u64)> = None;
        let mut on_device = DeviceCancellation::NotNeeded;
        if handed_out {
            match self.prepare_cancellation(req).await? {
                Ok(p) => prepared = Some(p),
                Err(detail) => on_device = DeviceCancellation::Impossible { detail },
            }
        }
        if let Some((cancel_id, _, _)) = &prepared {
            let reason_json = serde_json::json!({
                "revalidation_of": req.request_id,
                "reason": reason.code(),
            })
            .to_string();
            let mut update = RequestUpdate::to(RequestState::Accepted).with_reason(reason_json);
            update.command = prepared.as_ref().map(|p| p.1.clone());
            update.gbcs_counter = prepared.as_ref().map(|p| p.2);
            self.store()
                .transition_request(cancel_id, &[RequestState::Received], update)
                .await
                .map_err(st)?;
        }

        // 2. Claim the pending request (compare-and-set on its state).
        let reason_json = serde_json::json!({
            "revalidation": true,
            "reason": reason.code(),
            "evidence": reason,
            "message": reason.to_string(),
        })
        .to_string();
        // A command that never left is claimed only while it is still
        // `accepted`: a held request sent meanwhile (see `hold`) must be
        // cancelled on the device, so it is looked at again.
        let from: &[RequestState] = if handed_out {
            &[RequestState::Accepted, RequestState::Dispatched]
        } else {
            &[RequestState::Accepted]
        };
        let claimed = self
            .store()
            .transition_request(
                &req.request_id,
                from,
                RequestUpdate::to(RequestState::Cancelled).with_reason(reason_json),
            )
            .await;
        match claimed {
            Ok(_) => {}
            Err(ecos_store::StoreError::RequestState { actual, .. })
                if !handed_out && actual == RequestState::Dispatched.as_str() =>
            {
                let Some(fresh) = self.store().request(&req.request_id).await.map_err(st)? else {
                    return Ok(None);
                };
                return Box::pin(self.cancel_pending(&fresh, reason, at)).await;
            }
            Err(ecos_store::StoreError::RequestState { .. }) => {
                // Cancelled or completed meanwhile: the cancellation is not needed.
                if let Some((cancel_id, _, _)) = &prepared {
                    state::set_request_state(self.store(), cancel_id, RequestState::Superseded, at)
                        .await?;
                }
                return Ok(None);
            }
            Err(e) => return Err(st(e)),
        }

        // 3. Audit.
        state::audit(
            self.store(),
            at,
            "ecos-party",
            "fd_revalidation_cancelled",
            &req.request_id,
            &serde_json::json!({
                "device": req.device.to_string(),
                "execution": req.execution_time.map(|t| t.to_string()),
                "reason": reason.code(),
                "evidence": reason,
                "message": reason.to_string(),
                "cancellation": prepared.as_ref().map(|p| &p.0),
                "on_device": on_device,
            })
            .to_string(),
        )
        .await?;

        // 4. Tell the requester.
        let alert = if self.config().dcc_alerts.fd_revalidation {
            Some(self.queue_revalidation_alert(req, &reason, at).await?)
        } else {
            None
        };

        // 5. Send the cancellation.
        if let Some((cancel_id, bytes, counter)) = prepared {
            on_device = match self.transport() {
                Some(t) => match t.send(req.device, bytes).await {
                    Ok(()) => {
                        state::mark_dispatched(self.store(), &cancel_id, at).await?;
                        DeviceCancellation::Sent {
                            request_id: cancel_id,
                            counter,
                        }
                    }
                    // Left `accepted`: `resend_unsent_cancellations` tries again.
                    Err(e) => DeviceCancellation::NotSent {
                        request_id: cancel_id,
                        detail: e,
                    },
                },
                None => DeviceCancellation::NotSent {
                    request_id: cancel_id,
                    detail: "no device transport configured".into(),
                },
            };
        }
        tracing::info!(request = %req.request_id, reason = reason.code(), "pending future-dated 6.23 cancelled by re-validation: {reason}");
        Ok(Some(CancelledPending {
            request_id: req.request_id.clone(),
            originator: req.originator,
            device: req.device,
            execution: req.execution_time,
            reason,
            on_device,
            alert,
        }))
    }

    /// Send the re-validation cancellations that could not be sent when
    /// they were made (see [`DeviceCancellation::NotSent`]). One whose
    /// cancelled request's execution date-time has passed is failed instead
    /// (too late to cancel; audited as `cancellation_too_late`). Returns the
    /// RequestIDs sent.
    pub async fn resend_unsent_cancellations(
        &self,
        at: Timestamp,
    ) -> Result<Vec<String>, PartyError> {
        let st = |e: ecos_store::StoreError| PartyError::Store(e.to_string());
        let Some(t) = self.transport() else {
            return Ok(Vec::new());
        };
        let mut sent = Vec::new();
        for c in self
            .store()
            .unsent_party_cancellations(100)
            .await
            .map_err(st)?
        {
            let of = c
                .decision_reason
                .as_deref()
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                .and_then(|v| v["revalidation_of"].as_str().map(str::to_owned));
            let execution = match &of {
                Some(id) => self
                    .store()
                    .request(id)
                    .await
                    .map_err(st)?
                    .and_then(|r| r.execution_time),
                None => None,
            };
            if execution.is_some_and(|e| e <= at) {
                state::set_request_state(self.store(), &c.request_id, RequestState::Failed, at)
                    .await?;
                state::audit(
                    self.store(),
                    at,
                    "ecos-party",
                    "cancellation_too_late",
                    &c.request_id,
                    &serde_json::json!({
                        "device": c.device.to_string(),
                        "revalidation_of": of,
                        "execution": execution.map(|e| e.to_string()),
                        "message": "the cancelled request's execution date-time passed before its cancellation could be sent: check the device",
                    })
                    .to_string(),
                )
                .await?;
                tracing::error!(request = %c.request_id, device = %c.device, "re-validation cancellation never reached the device before the execution date-time");
                continue;
            }
            let Some(bytes) = c.command.clone() else {
                continue;
            };
            match t.send(c.device, bytes).await {
                Ok(()) => {
                    state::mark_dispatched(self.store(), &c.request_id, at).await?;
                    state::audit(
                        self.store(),
                        at,
                        "ecos-party",
                        "cancellation_resent",
                        &c.request_id,
                        &serde_json::json!({
                            "device": c.device.to_string(),
                            "revalidation_of": of,
                        })
                        .to_string(),
                    )
                    .await?;
                    sent.push(c.request_id);
                }
                Err(e) => {
                    tracing::warn!(request = %c.request_id, device = %c.device, "re-validation cancellation still not sent: {e}");
                }
            }
        }
        Ok(sent)
    }

    /// Build the cancellation command for a pending request and record it
    /// (state `received`) under a party-originated RequestID. `Ok(Err(_))`
    /// when the device's credential or the stored request rules it out.
    async fn prepare_cancellation(
        &self,
        req: &StoredRequest,
    ) -> Result<Result<(String, Vec<u8>, u64), String>, PartyError> {
        let st = |e: ecos_store::StoreError| PartyError::Store(e.to_string());
        let mut request = match self.reread(req) {
            Ok(r) => r.request,
            Err(why) => return Ok(Err(why)),
        };
        let Some(device) = self.store().device(req.device).await.map_err(st)? else {
            return Ok(Err("the device is no longer in the inventory".into()));
        };
        let cos = match check_credential(&device, self.config()) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r.to_string())),
        };
        request.body.execution = Execution::Cancellation;
        let counter = state::reserve_counter(self.store(), self.config().counter_floor).await?;
        let built = crate::command::build_for_cached(
            &request,
            &device,
            cos,
            self.keys(),
            self.mac_secrets(),
            self.signature_checks(),
            counter,
        )?;
        let party = crate::command::cos_key(self.keys(), cos)
            .eui()
            .ok_or(crate::command::CommandError::NoCosEui)?;
        let cancel_id = RequestId::new(party, req.device, counter).to_string();
        self.store()
            .insert_request(&ecos_store::NewRequest {
                request_id: cancel_id.clone(),
                originator: party,
                device: req.device,
                kind: RequestKind::Cancellation,
                execution_time: None,
                request_xml: None,
            })
            .await
            .map_err(st)?;
        Ok(Ok((cancel_id, built.bytes, counter)))
    }

    /// Queue the DSP-signed `ECoSAlert` telling a requester that its pending
    /// request was cancelled and why. Returns the outbound-queue id.
    async fn queue_revalidation_alert(
        &self,
        req: &StoredRequest,
        reason: &Reason,
        at: Timestamp,
    ) -> Result<u64, PartyError> {
        let cfg = &self.config().dcc_alerts;
        let alert_id = self.next_alert_id(req.originator).await?;
        let request_id = req.request_id.parse::<RequestId>().ok();
        let alert = DccAlert {
            request_id: None,
            response_id: Some(alert_id),
            response_code: ResponseCode::I0,
            alert_code: DccAlertCode::new(&cfg.fd_revalidation_alert_code)
                .map_err(|e| PartyError::Write(e.to_string()))?,
            body: DccAlertBody::EcosAlert(EcosAlert {
                alert_id,
                request_id,
                ecos_alert_code: cfg.fd_revalidation_ecos_alert_code.clone(),
                device_id: req.device,
                additional_information: Some(format!(
                    "the pending future-dated change of supplier was cancelled: it fails the {} check now ({}): {reason}",
                    format!("{:?}", reason.check()).to_lowercase(),
                    reason.code()
                )),
            }),
        };
        self.queue_dcc_alert(&alert, req.originator, Some(&req.request_id), at)
            .await
    }

    /// An AlertID / ResponseID for a DCC alert to `recipient`: the ECoS
    /// party's EUI, the recipient, and a counter from [`ALERT_COUNTER`].
    pub(crate) async fn next_alert_id(&self, recipient: Eui64) -> Result<RequestId, PartyError> {
        let counter = self
            .store()
            .reserve_gbcs_counters(ALERT_COUNTER, 1)
            .await
            .map_err(|e| PartyError::Store(e.to_string()))?
            .start;
        let party = self
            .keys()
            .ecos
            .eui()
            .ok_or(crate::command::CommandError::NoCosEui)?;
        Ok(RequestId::new(party, recipient, counter))
    }

    /// Write, DSP-sign and queue a DCC alert for `recipient`. Returns the
    /// outbound-queue id.
    pub(crate) async fn queue_dcc_alert(
        &self,
        alert: &DccAlert,
        recipient: Eui64,
        request_id: Option<&str>,
        at: Timestamp,
    ) -> Result<u64, PartyError> {
        let unsigned =
            ecos_duis::dcc_alert(alert, at).map_err(|e| PartyError::Write(e.to_string()))?;
        let signed = self.sign_response(&unsigned)?;
        self.store()
            .enqueue_outbound(&recipient.to_string(), request_id, "dcc_alert", &signed)
            .await
            .map_err(|e| PartyError::Store(e.to_string()))
    }
}
