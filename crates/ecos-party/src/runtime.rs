//! The party at run time: a posted 6.23 in, a decision stored and audited
//! before any answer leaves, the command out to the device, and the device's
//! answer back to the requester.

use std::sync::Arc;

use ecos_duis::{CosRequest, Execution, RequestHeader, ResponseCode};
use ecos_smki::{Eui64, MpidRules};
use ecos_store::Store;
use ecos_xmldsig::VerifyOptions;
use jiff::Timestamp;

use crate::api::{BoxFuture, ServiceRequestHandler, SyncAnswer};
use crate::check::{Accepted, CheckState, Checker, Refused};
use crate::command::{
    BuiltCommand, MacSecrets, SignatureChecks, build_supplier_by_trans_cos_cached,
};
use crate::config::PartyConfig;
use crate::device::{DeviceReport, verify_device_message};
use crate::keys::PartyKeys;
use crate::reason::Reason;
use crate::smki::SmkiRegistry;
use crate::state::{self, RequestKind, RequestRecord, RequestState};

/// Prometheus counter of pipeline decisions, labelled by decision
/// (`accepted`/`refused`), the check that decided, and the reason code (for
/// acceptances: which CoS key signed).
pub const DECISIONS_TOTAL: &str = "ecos_pipeline_decisions_total";

/// Carries commands to devices: the simulator, a WAN adapter or a test.
pub trait DeviceTransport: Send + Sync + 'static {
    /// Send a complete command (MAC header, signed APDU, MAC) to `device`.
    /// Responses come back through [`Party::on_device_message`].
    fn send<'a>(&'a self, device: Eui64, message: Vec<u8>) -> BoxFuture<'a, Result<(), String>>;
}

/// What happened to a posted document.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Accepted; the command was built (and sent for command variants 1 and 3).
    Accepted {
        /// The RequestID.
        request_id: String,
        /// The command.
        command: BuiltCommand,
        /// The transport's error, if sending failed.
        send_error: Option<String>,
    },
    /// Refused.
    Refused(Refused),
}

/// Internal failures of the party (the store, signing): never the requester's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartyError {
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// Building the command failed.
    #[error(transparent)]
    Command(#[from] crate::command::CommandError),
    /// Writing a DUIS document failed.
    #[error("writing DUIS: {0}")]
    Write(String),
    /// The device message was not taken.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceMessageError),
    /// A request with this RequestID is stored already (a concurrent duplicate).
    #[error("request {0} is stored already")]
    DuplicateRequest(String),
    /// The request was answered already (a repeated device message).
    #[error("request {0} was answered already")]
    AlreadyAnswered(String),
    /// No request matches the device message.
    #[error("device {device}: no request sent with counter {counter}")]
    Unmatched {
        /// The device.
        device: Eui64,
        /// The counter.
        counter: u64,
    },
}

/// The ECoS party.
#[derive(Debug)]
pub struct Party {
    config: PartyConfig,
    mpid_rules: MpidRules,
    verify: VerifyOptions,
    smki: SmkiRegistry,
    store: Store,
    keys: PartyKeys,
    mac_secrets: MacSecrets,
    signature_checks: SignatureChecks,
    transport: Option<Arc<dyn DeviceTransport>>,
}

impl std::fmt::Debug for dyn DeviceTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceTransport")
    }
}

struct StoreState<'a>(&'a Store);

impl CheckState for StoreState<'_> {
    async fn context(
        &self,
        originator: Eui64,
        request_id: &str,
        device: Eui64,
        mpxn: Option<&ecos_store::Mpxn>,
    ) -> Result<ecos_store::CheckContext, String> {
        self.0
            .check_context(originator, request_id, device, mpxn)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Party {
    /// A party over `store`, holding `smki` certificates and signing with `keys`.
    pub fn new(
        config: PartyConfig,
        mpid_rules: MpidRules,
        smki: SmkiRegistry,
        store: Store,
        keys: PartyKeys,
    ) -> Self {
        Party {
            signature_checks: SignatureChecks::new(config.command_signature_check_every),
            config,
            mpid_rules,
            verify: VerifyOptions::default(),
            smki,
            store,
            keys,
            mac_secrets: MacSecrets::default(),
            transport: None,
        }
    }

    /// Send commands through `transport`.
    pub fn with_transport(mut self, transport: Arc<dyn DeviceTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// With these signature-verification options.
    pub fn with_verify_options(mut self, verify: VerifyOptions) -> Self {
        self.verify = verify;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The policy.
    pub fn config(&self) -> &PartyConfig {
        &self.config
    }

    /// Hits and misses of the certification-path cache.
    pub fn smki_path_cache_stats(&self) -> ecos_smki::CacheStats {
        self.smki.path_cache_stats()
    }

    /// Hits and misses of the devices' MAC secret cache.
    pub fn mac_secret_stats(&self) -> ecos_smki::CacheStats {
        self.mac_secrets.stats()
    }

    /// Commands signed, and of them the ones whose signature the self-check
    /// verified (`command_signature_check_every`).
    pub fn signature_check_stats(&self) -> (u64, u64) {
        self.signature_checks.stats()
    }

    /// Run every check without storing or sending anything (`ecos check`).
    pub async fn check(&self, body: &[u8], at: Timestamp) -> Result<Accepted, Refused> {
        let st = StoreState(&self.store);
        Checker {
            config: &self.config,
            mpid_rules: &self.mpid_rules,
            smki: &self.smki,
            store: &self.store,
            state: &st,
            verify: &self.verify,
        }
        .decide(body, at)
        .await
    }

    /// Process a posted document: decide, store the decision and audit it,
    /// then build, sign and send the command. Returns the synchronous answer.
    pub async fn process(
        &self,
        body: &[u8],
        at: Timestamp,
    ) -> Result<(SyncAnswer, Outcome), PartyError> {
        let refused = match self.check(body, at).await {
            Ok(acc) => match self.accept(body, acc, at).await? {
                Ok(done) => return Ok(done),
                Err(r) => r,
            },
            Err(r) => r,
        };
        self.refuse(body, refused, at).await
    }

    async fn refuse(
        &self,
        body: &[u8],
        refused: Refused,
        at: Timestamp,
    ) -> Result<(SyncAnswer, Outcome), PartyError> {
        let code = self.config.response_codes.for_reason(&refused.reason);
        let reason_json = serde_json::to_string(&refused.reason).unwrap_or_default();
        let subject = refused
            .header
            .as_ref()
            .map(|h| h.request_id.to_string())
            .unwrap_or_else(|| "(unreadable request)".into());
        // Only a request that passed the signature and signer checks is
        // recorded under its RequestID: an unauthenticated document must not
        // be able to occupy (and so burn) a supplier's RequestID. Every
        // refusal is in the audit log either way.
        // A replay or reuse is not recorded either: its RequestID belongs to
        // the earlier (or concurrent) request.
        let authenticated = !matches!(
            refused.reason.check(),
            crate::reason::Check::ReadAndSignature
                | crate::reason::Check::Signer
                | crate::reason::Check::Replay
        );
        state::commit_refusal(
            &self.store,
            refused.header.as_ref().filter(|_| authenticated),
            body,
            &reason_json,
            &subject,
            &serde_json::json!({
                "reason": refused.reason.code(),
                "check": refused.reason.check(),
                "response_code": code,
                "evidence": refused.reason,
                "message": refused.reason.to_string(),
            })
            .to_string(),
        )
        .await?;
        tracing::info!(request = %subject, reason = refused.reason.code(), %code, "6.23 refused: {}", refused.reason);
        metrics::counter!(
            DECISIONS_TOTAL,
            "decision" => "refused",
            "check" => format!("{:?}", refused.reason.check()).to_lowercase(),
            "reason" => refused.reason.code()
        )
        .increment(1);
        let answer = match &refused.header {
            Some(h) => {
                let rc = ResponseCode::new(&code).map_err(|e| PartyError::Write(e.to_string()))?;
                let xml = ecos_duis::error_acknowledgement(h, &rc, at)
                    .map_err(|e| PartyError::Write(e.to_string()))?;
                SyncAnswer {
                    http_status: 200,
                    body: xml,
                }
            }
            None => SyncAnswer {
                http_status: 400,
                body: format!("{}\n", refused.reason).into_bytes(),
            },
        };
        Ok((answer, Outcome::Refused(refused)))
    }

    /// The accepted path. `Ok(Err(_))` when a race (a counter taken by a
    /// concurrent request) turns the acceptance into a refusal.
    async fn accept(
        &self,
        body: &[u8],
        acc: Accepted,
        at: Timestamp,
    ) -> Result<Result<(SyncAnswer, Outcome), Refused>, PartyError> {
        let rid = acc.request.header.request_id;
        // The checks found no request with this RequestID; one stored since
        // by a concurrent request makes the commit below a `Duplicate`. The
        // GBCS counter is reserved on its own, from a durably reserved block
        // (a counter left unused by a crash or a lost race is skipped, never
        // reissued); everything else that makes the decision is committed
        // in one transaction below.
        let counter = state::reserve_counter(&self.store, self.config.counter_floor).await?;
        let command = build_supplier_by_trans_cos_cached(
            &acc,
            &self.keys,
            &self.mac_secrets,
            &self.signature_checks,
            counter,
        )?;
        let mut record = RequestRecord {
            request_id: rid.to_string(),
            originator: rid.originator,
            device: rid.target,
            kind: kind_of(&acc.request),
            execution: match acc.request.body.execution {
                Execution::FutureDated(t) => Some(t),
                _ => None,
            },
            state: RequestState::Accepted,
            reason: None,
            request_xml: body.to_vec(),
            command: Some(command.bytes.clone()),
            gbcs_counter: Some(counter),
        };
        let detail = serde_json::to_string(&AcceptedDetail {
            as_of: Shown(&acc.as_of),
            cancels: acc.cancels.as_deref(),
            command_sha256: &hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                &command.bytes,
            )),
            cos: acc.cos,
            device: Shown(&rid.target),
            gbcs_counter: counter,
            kind: record.kind.as_str(),
            mpid: &acc.mpid,
            mpxn: acc.mpxn.as_str(),
            switch_date: acc.switch_date.as_deref(),
        })
        .map_err(|e| PartyError::Write(e.to_string()))?;
        // A cancellation of a request still held (`hold`): claimed first, so
        // that the dispatch sweep cannot send it from now on.
        let held_claim = match acc.cancels.as_deref() {
            Some(pending) => {
                self.claim_held_for_cancellation(pending, &record.request_id)
                    .await?
            }
            None => false,
        };
        // Sent as soon as it commits (variants 1 and 3, not held, not the
        // cancellation of a held request): stored as dispatched in the same
        // write (claimed for sending, as the hold's sweep claims), so there
        // is no second write after the send, and a crash between the commit
        // and the send leaves a request the time-out sweep answers rather
        // than one left accepted with nothing to send it. `send_now` is the
        // transport it is sent with: decided here once, for the state
        // stored and for the send below.
        let cv = acc.request.header.command_variant.get();
        let held_fd = match acc.request.body.execution {
            Execution::FutureDated(t) if self.config.fd_dispatch_lead_secs.is_some() => Some(t),
            _ => None,
        };
        let send_now = self
            .transport
            .as_ref()
            .filter(|_| matches!(cv, 1 | 3) && !held_claim && held_fd.is_none());
        if send_now.is_some() {
            record.state = RequestState::Dispatched;
        }
        let committed = state::commit_acceptance(
            &self.store,
            &record,
            rid.counter,
            acc.cancels.as_deref(),
            &detail,
        )
        .await;
        if held_claim && !matches!(committed, Ok(ecos_store::AcceptanceCommit::Committed)) {
            if let Some(pending) = acc.cancels.as_deref() {
                self.release_held_claim(pending).await?;
            }
        }
        match committed? {
            ecos_store::AcceptanceCommit::Committed => {}
            ecos_store::AcceptanceCommit::Duplicate => {
                // A concurrent request with the same RequestID got there first.
                let earlier = self
                    .store
                    .request_state(&record.request_id)
                    .await
                    .map_err(|e| PartyError::Store(e.to_string()))?;
                return Ok(Err(Refused {
                    header: Some(acc.request.header.clone()),
                    reason: Reason::RequestIdReused {
                        request_id: record.request_id,
                        earlier_state: earlier
                            .map_or_else(|| "being processed".into(), |s| s.to_string()),
                    },
                }));
            }
            _ => {
                let last = state::last_request_counter(&self.store, rid.originator)
                    .await
                    .map_err(PartyError::Store)?
                    .unwrap_or(rid.counter);
                return Ok(Err(Refused {
                    header: Some(acc.request.header.clone()),
                    reason: Reason::Replay {
                        counter: rid.counter,
                        last_accepted: last,
                    },
                }));
            }
        }

        // From here the acceptance is durable: the requester must get its
        // answer even when a bookkeeping write below fails (a retry would be
        // refused as a reused RequestID). Such a failure leaves the request
        // as committed (`dispatched` when sent at once, else `accepted`; a
        // device answer completes either, and the time-out sweep answers a
        // dispatched one the device never does); it is logged and counted.
        let mut send_error = None;
        if held_claim {
            // The cancelled request never reached the device: nothing to send,
            // and the cancellation is answered at once.
            if let Err(e) = self
                .complete_held_cancellation(
                    &acc.request.header,
                    acc.cancels.as_deref().unwrap_or_default(),
                    rid.target,
                    at,
                )
                .await
            {
                bookkeeping_failed(&record.request_id, "completed", &e);
            }
        } else if let (true, Some(execution)) = (matches!(cv, 1 | 3), held_fd) {
            // Held until the lead before its execution; when that is already
            // here, claimed and sent now, as the dispatch sweep does.
            if self.holds(execution, at) {
                tracing::info!(request = %record.request_id, %execution, "future-dated 6.23 held for dispatch");
            } else {
                match self
                    .send_claimed(&record.request_id, rid.target, command.bytes.clone())
                    .await
                {
                    Ok(crate::hold::ClaimedSend::NotSent(e)) => send_error = Some(e),
                    Ok(_) => {}
                    Err(e) => bookkeeping_failed(&record.request_id, "dispatched", &e),
                }
            }
        } else if let Some(t) = send_now {
            // Stored as dispatched already.
            if let Err(e) = t.send(rid.target, command.bytes.clone()).await {
                if let Err(err) = state::set_request_state(
                    &self.store,
                    &record.request_id,
                    RequestState::Failed,
                    at,
                )
                .await
                {
                    bookkeeping_failed(&record.request_id, "failed", &err);
                }
                send_error = Some(e);
            }
        } else if matches!(cv, 1 | 3) {
            // Neither held nor the cancellation of a held request: not sent
            // at once only for want of a transport.
            send_error = Some("no device transport configured".into());
        }
        let xml = match cv {
            2 | 3 => local_command_response(&acc.request.header, &command.bytes, at)?,
            _ => ecos_duis::acknowledgement(&acc.request.header, at)
                .map_err(|e| PartyError::Write(e.to_string()))?,
        };
        tracing::info!(request = %record.request_id, counter, cos = ?acc.cos, "6.23 accepted");
        metrics::counter!(
            DECISIONS_TOTAL,
            "decision" => "accepted",
            "check" => "none",
            "reason" => match acc.cos {
                crate::check::CosChoice::Transitional => "signed_tcos",
                crate::check::CosChoice::Enduring => "signed_ecos",
            }
        )
        .increment(1);
        Ok(Ok((
            SyncAnswer {
                http_status: 200,
                body: xml,
            },
            Outcome::Accepted {
                request_id: record.request_id,
                command,
                send_error,
            },
        )))
    }

    /// A device response or 0x00CB alert: verified with the device's
    /// certificate, matched to its request, answered to the requester as a
    /// DSP-signed DUIS response on the outbound queue.
    pub async fn on_device_message(
        &self,
        bytes: &[u8],
        at: Timestamp,
    ) -> Result<DeviceReport, PartyError> {
        // Decoded once; the originator names the certificate to verify with.
        let msg =
            ecos_gbcs::Message::decode(bytes).map_err(crate::device::DeviceMessageError::from)?;
        let ds = self
            .store
            .device(msg.frame.header.originator)
            .await
            .map_err(|e| PartyError::Store(e.to_string()))?
            .and_then(|d| d.ds_cert);
        let report = verify_device_message(&msg, ds.as_deref())?;
        let req = state::request_by_counter(&self.store, report.device, report.command_counter)
            .await?
            .ok_or(PartyError::Unmatched {
                device: report.device,
                counter: report.command_counter,
            })?;
        // A party-originated cancellation (re-validation) has no requester
        // to answer: its `commandAccepted` completes it.
        if let Some(done) = self.cancellation_answered(&req, &report, at).await? {
            return Ok(done);
        }
        let header = ecos_duis::read_request_header(
            req.request_xml.as_deref().unwrap_or_default().as_bytes(),
            &ecos_duis::Limits::default(),
        )
        .map_err(|e| PartyError::Write(format!("stored request {}: {e}", req.request_id)))?;
        let unsigned = match report.kind {
            crate::device::DeviceMessageKind::Response => {
                ecos_duis::device_response(&header, bytes, at)
            }
            crate::device::DeviceMessageKind::Alert => ecos_duis::future_dated_response(
                &header,
                &ecos_duis::FutureDatedOutcome {
                    success: report.success,
                    gbcs_payload: bytes.to_vec(),
                    instruction_number: 1,
                    total_command_instructions: 1,
                },
                at,
            ),
        }
        .map_err(|e| PartyError::Write(e.to_string()))?;
        let signed = self.sign_response(&unsigned)?;
        // `commandAccepted` (future-dated or cancellation): the request stays
        // dispatched until the 0x00CB alert reports the outcome. Otherwise the
        // new state, the answer and its audit entry are committed together,
        // once: a repeated device message finds the request moved already.
        // A cancellation never gets an outcome: its `commandAccepted` completes it.
        let transition = if report.accepted_only {
            (req.kind == ecos_store::RequestKind::Cancellation).then_some(RequestState::Completed)
        } else if report.success {
            Some(RequestState::Completed)
        } else {
            Some(RequestState::Failed)
        };
        let answered = state::commit_device_answer(
            &self.store,
            &req,
            transition,
            "device_response",
            &signed,
            "device_report",
            &serde_json::to_string(&report).unwrap_or_default(),
        )
        .await?;
        if !answered {
            return Err(PartyError::AlreadyAnswered(req.request_id));
        }
        let _ = self.store.record_device_contact(report.device, at).await;
        // A change of supplier done: the inventory and the losing supplier.
        if report.success && !report.accepted_only {
            self.after_change_of_supplier(&req, &report, at).await?;
        }
        Ok(report)
    }

    /// Sign a DUIS response with the DSP XML-sign key.
    pub fn sign_response(&self, unsigned: &[u8]) -> Result<Vec<u8>, PartyError> {
        let cert = &self.keys.dsp_certificate;
        ecos_xmldsig::sign(
            unsigned,
            self.keys.dsp.as_ref(),
            &cert.issuer_rfc2253(),
            &cert.serial_decimal(),
        )
        .map_err(|e| PartyError::Write(e.to_string()))
    }
}

/// The `accepted` audit entry's detail. Its keys are in byte order, the
/// order `serde_json` writes a map's keys in (the detail was first written
/// as a `serde_json::Value`): the JSON text is the same, without building a
/// map of values for every acceptance.
#[derive(serde::Serialize)]
struct AcceptedDetail<'a> {
    as_of: Shown<'a, Timestamp>,
    cancels: Option<&'a str>,
    command_sha256: &'a str,
    cos: crate::check::CosChoice,
    device: Shown<'a, ecos_smki::Eui64>,
    gbcs_counter: u64,
    kind: &'a str,
    mpid: &'a str,
    mpxn: &'a str,
    switch_date: Option<&'a str>,
}

/// A value serialised as its `Display` form (a JSON string).
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// A state write after a committed acceptance failed: the answer still
/// leaves (the acceptance is durable); the request keeps its earlier state.
fn bookkeeping_failed(request_id: &str, to: &str, e: &PartyError) {
    tracing::warn!(request = %request_id, to, error = %e, "6.23 accepted, but recording its new state failed; it stays accepted");
    metrics::counter!("ecos_bookkeeping_failures_total", "to" => to.to_owned()).increment(1);
}

fn kind_of(r: &CosRequest) -> RequestKind {
    match r.body.execution {
        Execution::Immediate => RequestKind::Immediate,
        Execution::FutureDated(_) => RequestKind::FutureDated,
        Execution::Cancellation => RequestKind::Cancellation,
    }
}

/// The answer to command variants 2 and 3: the command for local delivery,
/// `ResponseMessage/LocalCommand/GBCSPayload` (DUIS XSD `sr:LocalCommand`).
/// Written as the I0 device response and re-shaped: the payload element is
/// wrapped in `sr:LocalCommand`.
fn local_command_response(
    header: &RequestHeader,
    command: &[u8],
    at: Timestamp,
) -> Result<Vec<u8>, PartyError> {
    let xml = ecos_duis::device_response(header, command, at)
        .map_err(|e| PartyError::Write(e.to_string()))?;
    let text = String::from_utf8(xml).map_err(|e| PartyError::Write(e.to_string()))?;
    let (open, close) = ("<sr:GBCSPayload>", "</sr:GBCSPayload>");
    match (text.find(open), text.find(close)) {
        (Some(a), Some(b)) if a < b => {
            let end = b + close.len();
            Ok(format!(
                "{}<sr:LocalCommand>{}</sr:LocalCommand>{}",
                &text[..a],
                &text[a..end],
                &text[end..]
            )
            .into_bytes())
        }
        _ => Err(PartyError::Write(
            "device response without GBCSPayload".into(),
        )),
    }
}

impl ServiceRequestHandler for Party {
    fn submit<'a>(&'a self, body: &'a [u8], received_at: Timestamp) -> BoxFuture<'a, SyncAnswer> {
        Box::pin(async move {
            match self.process(body, received_at).await {
                Ok((answer, _)) => answer,
                // The store failing (a database restart, a lost connection)
                // is transient: nothing was acknowledged, so the client is
                // told to retry (503; the service adds Retry-After) rather
                // than shown an internal error.
                Err(PartyError::Store(e)) => {
                    tracing::warn!("6.23 not processed, the store failed: {e}");
                    SyncAnswer {
                        http_status: 503,
                        body: format!("store unavailable, retry later: {e}\n").into_bytes(),
                    }
                }
                Err(e) => {
                    tracing::error!("6.23 processing failed: {e}");
                    SyncAnswer {
                        http_status: 500,
                        body: format!("internal error: {e}\n").into_bytes(),
                    }
                }
            }
        })
    }
}

/// What the party's own modules (re-validation, follow-up) read.
impl Party {
    pub(crate) fn keys(&self) -> &PartyKeys {
        &self.keys
    }
    pub(crate) fn mac_secrets(&self) -> &MacSecrets {
        &self.mac_secrets
    }
    pub(crate) fn signature_checks(&self) -> &SignatureChecks {
        &self.signature_checks
    }
    pub(crate) fn transport(&self) -> Option<&Arc<dyn DeviceTransport>> {
        self.transport.as_ref()
    }
    pub(crate) fn smki(&self) -> &SmkiRegistry {
        &self.smki
    }
    pub(crate) fn mpid_rules(&self) -> &MpidRules {
        &self.mpid_rules
    }
    pub(crate) fn verify_options(&self) -> &VerifyOptions {
        &self.verify
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CosChoice;

    /// The `accepted` detail is the JSON text the `serde_json::Value` form
    /// gave (same keys, values and order), with and without the optional fields.
    #[test]
    fn accepted_detail_is_the_value_forms_text() {
        let at: Timestamp = "2026-06-01T12:00:00.5Z".parse().unwrap();
        let device = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);
        for (cancels, switch_date, cos) in [
            (None, None, CosChoice::Transitional),
            (
                Some("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:7"),
                Some("2026-05-31"),
                CosChoice::Enduring,
            ),
        ] {
            let ours = serde_json::to_string(&AcceptedDetail {
                as_of: Shown(&at),
                cancels,
                command_sha256: "00ff",
                cos,
                device: Shown(&device),
                gbcs_counter: u64::MAX - 3,
                kind: "future_dated",
                mpid: "ABCD \"q\"",
                mpxn: "1200023305963",
                switch_date,
            })
            .unwrap();
            let value_form = serde_json::json!({
                "device": device.to_string(),
                "mpxn": "1200023305963",
                "mpid": "ABCD \"q\"".to_string(),
                "as_of": at.to_string(),
                "switch_date": switch_date.map(str::to_string),
                "cos": cos,
                "gbcs_counter": u64::MAX - 3,
                "kind": "future_dated",
                "cancels": cancels.map(str::to_string),
                "command_sha256": "00ff",
            })
            .to_string();
            assert_eq!(ours, value_form);
        }
    }
}
