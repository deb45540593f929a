//! After the device has answered: what follows a completed change of supplier
//! and a cancellation the device accepted.
//!
//! - **Inventory**: the replacement certificates the device reports installed
//!   (per cell: status 0 and the new SKI equal to the certificate's) are recorded
//!   on the device with their owner (the new SUI) in `device_supplier_credentials`.
//! - **Losing supplier** (`dcc_alerts.losing_supplier`): the supplier registered
//!   the day before the gaining supplier's registration starts is the losing
//!   supplier; every service user trading under its MPID (other than the
//!   requester) is sent a DSP-signed DCC alert `ChangeOfSupplier/
//!   DeviceChangeOfSupplier` {DeviceID, DeviceType, MPxNs} (`duis-6.23.md` §5).
//!   None is sent for a first registration (no earlier supplier) or when the
//!   supplier did not change; an MPID no service user trades under is audited.
//! - **Cancellations** get no outcome from the device: its `commandAccepted`
//!   completes them. A party-originated cancellation (re-validation) has no
//!   requester to answer, so it is audited only.

use ecos_duis::{ChangeOfSupplier, DccAlert, DccAlertBody, DccAlertCode, MeterMpxns, ResponseCode};
use ecos_store::{DeviceSupplierCredentials, DeviceType, RequestKind, RequestState, StoredRequest};
use jiff::Timestamp;

use crate::device::DeviceReport;
use crate::runtime::{Party, PartyError};
use crate::state;

fn st(e: ecos_store::StoreError) -> PartyError {
    PartyError::Store(e.to_string())
}

impl Party {
    /// A device's answer to a party-originated cancellation (no request
    /// XML, no requester to answer): its `commandAccepted` completes it and
    /// is audited. `None` for every other request.
    pub(crate) async fn cancellation_answered(
        &self,
        req: &StoredRequest,
        report: &DeviceReport,
        at: Timestamp,
    ) -> Result<Option<DeviceReport>, PartyError> {
        if req.kind != RequestKind::Cancellation || req.request_xml.is_some() {
            return Ok(None);
        }
        if report.accepted_only
            && matches!(req.state, RequestState::Dispatched | RequestState::Accepted)
        {
            state::set_request_state(self.store(), &req.request_id, RequestState::Completed, at)
                .await?;
        }
        state::audit(
            self.store(),
            at,
            "ecos-party",
            "cancellation_answered",
            &req.request_id,
            &serde_json::to_string(report).unwrap_or_default(),
        )
        .await?;
        Ok(Some(report.clone()))
    }

    /// A change of supplier the device reports done: record the new supplier
    /// credentials on the device and tell the losing supplier.
    pub(crate) async fn after_change_of_supplier(
        &self,
        req: &StoredRequest,
        report: &DeviceReport,
        at: Timestamp,
    ) -> Result<(), PartyError> {
        let Some(xml) = req.request_xml.as_deref() else {
            return Ok(());
        };
        let request = match ecos_duis::read_request(xml.as_bytes(), &ecos_duis::Limits::default()) {
            Ok(ecos_duis::DuisRequest::UpdateSecurityCredentialsCoS(r)) => *r,
            _ => {
                tracing::warn!(request = %req.request_id, "stored request does not read; supplier credentials not recorded");
                return Ok(());
            }
        };
        self.record_supplier_credentials(req, &request, report, at)
            .await?;
        if self.config().dcc_alerts.losing_supplier {
            self.tell_losing_supplier(req, at).await?;
        }
        Ok(())
    }

    async fn record_supplier_credentials(
        &self,
        req: &StoredRequest,
        request: &ecos_duis::CosRequest,
        report: &DeviceReport,
        at: Timestamp,
    ) -> Result<(), PartyError> {
        let certs = &request.body.replacement_certificates;
        let installed = |c: Option<&ecos_smki::Certificate>| -> Option<Vec<u8>> {
            let c = c?;
            let ski = hex::encode_upper(c.ski()?);
            report
                .cells
                .iter()
                .any(|r| r.status == 0 && r.new_ski == ski)
                .then(|| c.der().to_vec())
        };
        let ds = installed(Some(&certs.digital_signing));
        let ka = installed(certs.key_agreement.as_ref());
        let top = installed(certs.key_agreement_top_up.as_ref());
        let Some(supplier) = report
            .cells
            .iter()
            .find(|r| r.status == 0)
            .map(|r| r.new_sui)
        else {
            return Ok(());
        };
        if ds.is_none() && ka.is_none() && top.is_none() {
            tracing::warn!(request = %req.request_id, "the device reports no replacement certificate of the request installed");
            return Ok(());
        }
        let creds = DeviceSupplierCredentials {
            eui: req.device,
            supplier,
            ds_cert: ds,
            ka_cert: ka,
            ka_top_up_cert: top,
            request_id: req.request_id.clone(),
            updated_at: at,
        };
        self.store()
            .set_device_supplier_credentials(&creds)
            .await
            .map_err(st)?;
        let ski = |d: &Option<Vec<u8>>| {
            d.as_deref()
                .and_then(|d| ecos_smki::Certificate::from_der(d).ok())
                .and_then(|c| c.ski().map(hex::encode_upper))
        };
        state::audit(
            self.store(),
            at,
            "ecos-party",
            "inventory_supplier_credentials",
            &req.device.to_string(),
            &serde_json::json!({
                "request": req.request_id,
                "supplier": supplier.to_string(),
                "ds_ski": ski(&creds.ds_cert),
                "ka_ski": ski(&creds.ka_cert),
                "ka_top_up_ski": ski(&creds.ka_top_up_cert),
            })
            .to_string(),
        )
        .await
    }

    async fn tell_losing_supplier(
        &self,
        req: &StoredRequest,
        at: Timestamp,
    ) -> Result<(), PartyError> {
        let Some(device) = self.store().device(req.device).await.map_err(st)? else {
            return Ok(());
        };
        let (Some(mpxn), Some(device_type)) = (
            device.mpxn.clone(),
            match device.device_type {
                DeviceType::Esme => Some(ecos_duis::DeviceType::Esme),
                DeviceType::Gsme => Some(ecos_duis::DeviceType::Gsme),
                _ => None,
            },
        ) else {
            return Ok(());
        };
        let history = self.store().registration_history(&mpxn).await.map_err(st)?;
        let day = self.store().as_of_date(req.execution_time.unwrap_or(at));
        let Some(gaining) = history.iter().find(|r| r.contains(day)) else {
            return Ok(());
        };
        let losing = gaining
            .effective_from
            .yesterday()
            .ok()
            .and_then(|d| history.iter().find(|r| r.contains(d)));
        let Some(losing) = losing.filter(|l| l.mpid != gaining.mpid) else {
            return Ok(());
        };
        let users: Vec<_> = self
            .store()
            .service_users_by_mpid(&losing.mpid)
            .await
            .map_err(st)?
            .into_iter()
            .filter(|u| u.org_eui != req.originator)
            .collect();
        if users.is_empty() {
            state::audit(
                self.store(),
                at,
                "ecos-party",
                "losing_supplier_unknown",
                &req.request_id,
                &serde_json::json!({
                    "device": req.device.to_string(),
                    "mpxn": mpxn.as_str(),
                    "losing_mpid": losing.mpid,
                    "detail": "no service user trades under the losing supplier's MPID",
                })
                .to_string(),
            )
            .await?;
            tracing::warn!(request = %req.request_id, mpid = %losing.mpid, "no service user for the losing supplier's MPID: no DeviceChangeOfSupplier alert");
            return Ok(());
        }
        let code = DccAlertCode::new(&self.config().dcc_alerts.losing_supplier_alert_code)
            .map_err(|e| PartyError::Write(e.to_string()))?;
        for user in users {
            let alert_id = self.next_alert_id(user.org_eui).await?;
            let alert = DccAlert {
                request_id: None,
                response_id: Some(alert_id),
                response_code: ResponseCode::I0,
                alert_code: code.clone(),
                body: DccAlertBody::ChangeOfSupplier(ChangeOfSupplier::Device {
                    device_id: req.device,
                    device_type,
                    mpxns: MeterMpxns {
                        import_mpxn: mpxn.as_str().to_string(),
                        secondary_import_mpan: None,
                        export_mpan: None,
                    },
                }),
            };
            let queued = self.queue_dcc_alert(&alert, user.org_eui, None, at).await?;
            state::audit(
                self.store(),
                at,
                "ecos-party",
                "losing_supplier_alerted",
                &req.request_id,
                &serde_json::json!({
                    "device": req.device.to_string(),
                    "mpxn": mpxn.as_str(),
                    "losing_mpid": losing.mpid,
                    "recipient": user.org_eui.to_string(),
                    "alert_id": alert_id.to_string(),
                    "outbound_id": queued,
                })
                .to_string(),
            )
            .await?;
        }
        Ok(())
    }
}
