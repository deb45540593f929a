//! The checks, in their fixed order (`reason::Check::ORDER`). Each returns
//! the first failure as a [`Reason`] with its evidence; nothing here writes.

use std::sync::Arc;

use ecos_duis::{CosRequest, DuisRequest, Execution, RequestHeader};
use ecos_smki::{Certificate, Eui64, KeyUsage, MpidRules, Mpids, Role};
use ecos_store::{
    CheckContext, CosCredential, Device, DeviceType, Fuel, MigrationState, Mpxn, Store,
};
use ecos_xmldsig::{DsigError, VerifyOptions};
use jiff::{Timestamp, ToSpan};

use crate::config::PartyConfig;
use crate::reason::Reason;
use crate::smki::SmkiRegistry;

/// Which CoS credential signs the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CosChoice {
    /// The transitional key (the device is not migrated yet).
    Transitional,
    /// The enduring key.
    Enduring,
}

/// A request that passed every check, with what the checks established.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The request as read from the signed bytes.
    pub request: CosRequest,
    /// The signer's XML Sign certificate.
    pub signer: Arc<Certificate>,
    /// The MPIDs in its CN.
    pub mpids: Mpids,
    /// The target device as the inventory holds it.
    pub device: Device,
    /// The MPxN (= ImportMPxN = the device's).
    pub mpxn: Mpxn,
    /// The requester's MPID for the device's fuel.
    pub mpid: String,
    /// The instant the registration data was checked at.
    pub as_of: Timestamp,
    /// The registered supplier's period start (the switch date).
    pub switch_date: Option<String>,
    /// The credential that signs.
    pub cos: CosChoice,
    /// For a cancellation, the pending request it cancels.
    pub cancels: Option<String>,
    /// The replacement certificates, parsed (DS, KA, KA top-up).
    pub replacements: Vec<Certificate>,
    /// The certification path certificates, parsed.
    pub path: Vec<Certificate>,
}

/// A refused request: the header when it could be read, and the reason.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The header, for the error acknowledgement.
    pub header: Option<RequestHeader>,
    /// Why.
    pub reason: Reason,
}

/// A pending future-dated request, as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFd {
    /// Its RequestID.
    pub request_id: String,
    /// Its originator.
    pub originator: Eui64,
}

/// What the checks read from the store.
pub trait CheckState {
    /// What the store says for a request with `request_id` from
    /// `originator` to `device` naming `mpxn`: the requester's service-user
    /// record, the device, the MPxN's registration history, an earlier
    /// request with that RequestID, the last RequestID counter accepted
    /// from the originator, the device's pending future-dated 6.23 and its
    /// migration state, read in one go.
    fn context(
        &self,
        originator: Eui64,
        request_id: &str,
        device: Eui64,
        mpxn: Option<&Mpxn>,
    ) -> impl std::future::Future<Output = Result<CheckContext, String>> + Send;
}

/// Everything the checks consult.
#[derive(Debug)]
pub struct Checker<'a, S> {
    /// Policy.
    pub config: &'a PartyConfig,
    /// MPID rules for the CN.
    pub mpid_rules: &'a MpidRules,
    /// Certificates held.
    pub smki: &'a SmkiRegistry,
    /// Registration data and inventory.
    pub store: &'a Store,
    /// Counters and pending requests.
    pub state: &'a S,
    /// Signature verification options (limits, compatibility).
    pub verify: &'a VerifyOptions,
}

fn internal(e: impl std::fmt::Display) -> Reason {
    Reason::Malformed {
        detail: format!("internal error while checking: {e}"),
    }
}

impl<S: CheckState + Sync> Checker<'_, S> {
    /// Run every check on `body` received at `at`.
    pub async fn decide(&self, body: &[u8], at: Timestamp) -> Result<Accepted, Refused> {
        // Before the request is read, a refusal carries the header read
        // leniently from the bytes as received (only so that an error
        // acknowledgement can echo the RequestID); it is read only then.
        let refuse = |reason: Reason| Refused {
            header: ecos_duis::read_request_header(body, &ecos_duis::Limits::default()).ok(),
            reason,
        };

        // 1. Signature under the pinned profile; the signer resolved by
        // issuer+serial. Only the signed content is read, from the tree the
        // verifier parsed when it is faithful to the signed bytes.
        let mut signer: Option<Arc<Certificate>> = None;
        let verified = ecos_xmldsig::verify_then(
            body,
            self.verify,
            |issuer, serial| {
                let cert = self.smki.lookup(issuer, serial)?;
                let key = cert.public_key().clone();
                signer = Some(cert);
                Some(key)
            },
            |content| {
                ecos_duis::read_signed(content.bytes, content.tree, &ecos_duis::Limits::default())
            },
        );
        let read = match verified {
            Ok((_, read)) => read,
            Err(DsigError::UnknownSigner { issuer, serial, .. }) => {
                return Err(refuse(Reason::SignerUnknown { issuer, serial }));
            }
            Err(DsigError::Parse(e)) => {
                return Err(refuse(Reason::Malformed {
                    detail: e.to_string(),
                }));
            }
            Err(e) => {
                return Err(refuse(Reason::BadSignature {
                    detail: e.to_string(),
                }));
            }
        };
        let signer = signer.ok_or_else(|| refuse(internal("signer not resolved")))?;
        // Only the signed content is processed from here on.
        let request = match read {
            Ok(DuisRequest::UpdateSecurityCredentialsCoS(r)) => *r,
            Ok(other) => {
                return Err(Refused {
                    header: Some(other.header().clone()),
                    reason: Reason::WrongServiceReference {
                        found: other.header().service_reference.clone(),
                    },
                });
            }
            Err(e) => {
                return Err(refuse(Reason::Malformed {
                    detail: e.to_string(),
                }));
            }
        };
        // The header is copied into a refusal only.
        let refuse = |reason: Reason| Refused {
            header: Some(request.header.clone()),
            reason,
        };
        let rid = &request.header.request_id;

        // 2. The signer.
        check_signer(&signer, rid.originator, self.smki, at).map_err(&refuse)?;

        // What the store holds for the checks below, read once (the MPxN is
        // parsed here, and refused at check 6 if it does not parse).
        let body = &request.body;
        let parsed_mpxn = self.store.parse_mpxn(&body.import_mpxn);
        let request_id = rid.to_string();
        let CheckContext {
            service_user,
            device,
            registrations: history,
            request: ctx,
        } = self
            .state
            .context(
                rid.originator,
                &request_id,
                rid.target,
                parsed_mpxn.as_ref().ok(),
            )
            .await
            .map_err(|e| refuse(internal(e)))?;

        // 3. The requester.
        check_requester(rid.originator, service_user.as_ref()).map_err(&refuse)?;
        let cv = request.header.command_variant.get();
        if !self.config.allowed_command_variants.contains(&cv) {
            return Err(refuse(Reason::CommandVariant {
                found: cv,
                allowed: self.config.allowed_command_variants.clone(),
            }));
        }

        // 4. Replay: a RequestID is used once, and its counter rises.
        if let Some(earlier_state) = ctx.request_state {
            return Err(refuse(Reason::RequestIdReused {
                request_id,
                earlier_state: earlier_state.to_string(),
            }));
        }
        if self.config.require_increasing_request_counter
            && let Some(last) = ctx.last_request_counter
            && rid.counter <= last
        {
            return Err(refuse(Reason::Replay {
                counter: rid.counter,
                last_accepted: last,
            }));
        }

        // 5. The device.
        let device = device.ok_or_else(|| {
            refuse(Reason::DeviceUnknown {
                device: rid.target.to_string(),
            })
        })?;
        let fuel = check_device(&device, self.config).map_err(&refuse)?;

        // 6. MPxN.
        let mpxn = parsed_mpxn.map_err(|e| {
            refuse(Reason::MpxnInvalid {
                requested: body.import_mpxn.clone(),
                detail: e.to_string(),
            })
        })?;
        check_mpxn_is_devices(&body.import_mpxn, &mpxn, &device).map_err(&refuse)?;
        if history.is_empty() {
            return Err(refuse(Reason::MpxnNotRegistered {
                mpxn: mpxn.as_str().to_string(),
            }));
        }

        // 7. MPID: the CN's MPID for the fuel is the registered supplier at the switch date.
        let as_of = match body.execution {
            Execution::FutureDated(t) => t,
            Execution::Immediate | Execution::Cancellation => at,
        };
        let (mpids, mpid, switch) = check_mpid(
            &signer,
            self.mpid_rules,
            fuel,
            &mpxn,
            &history,
            self.store.as_of_date(as_of),
            self.config.switch_date_grace_days,
        )
        .map_err(&refuse)?;
        let switch_date = Some(switch.effective_from.to_string());

        // 8. The replacement certificates and their path.
        let (replacements, path) =
            check_replacements(&request, self.smki, self.config, at).map_err(&refuse)?;

        // Timing: future-dated lead and horizon, cancellations, pending requests.
        let pending = ctx.pending_future_dated.map(|p| PendingFd {
            request_id: p.request_id,
            originator: p.originator,
        });
        let mut cancels = None;
        match body.execution {
            Execution::FutureDated(t) => {
                let min = at
                    .checked_add(jiff::SignedDuration::from_secs(
                        i64::try_from(self.config.fd_min_lead_secs).unwrap_or(i64::MAX),
                    ))
                    .unwrap_or(at);
                if t <= min {
                    return Err(refuse(Reason::ExecutionTime {
                        detail: format!(
                            "{t} is not after the time of receipt {at} plus the minimum lead of {} s",
                            self.config.fd_min_lead_secs
                        ),
                    }));
                }
                if let Some(days) = self.config.fd_max_horizon_days {
                    let max = at
                        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
                        .unwrap_or(at);
                    if t > max {
                        return Err(refuse(Reason::ExecutionTime {
                            detail: format!("{t} is more than {days} days ahead"),
                        }));
                    }
                }
            }
            Execution::Cancellation => {
                let Some(p) = pending.as_ref().filter(|p| {
                    !self.config.cancel_requires_same_originator || p.originator == rid.originator
                }) else {
                    return Err(refuse(Reason::NothingToCancel {
                        device: rid.target.to_string(),
                    }));
                };
                cancels = Some(p.request_id.clone());
            }
            Execution::Immediate => {}
        }
        if !matches!(body.execution, Execution::Cancellation)
            && let Some(p) = &pending
            && self.config.on_pending_fd == crate::config::OnPendingFd::Reject
        {
            return Err(refuse(Reason::PendingFutureDated {
                device: rid.target.to_string(),
                pending: p.request_id.clone(),
            }));
        }

        // The credential on the device.
        let cos = check_credential(&device, self.config).map_err(&refuse)?;
        // Not while its TCoS→ECoS migration command is in flight (only a
        // device still on the transitional credential can be migrating).
        if cos == CosChoice::Transitional
            && self.config.on_migration_in_flight == crate::config::OnMigrationInFlight::Reject
        {
            check_migration(&device, ctx.migration_state).map_err(&refuse)?;
        }

        Ok(Accepted {
            request,
            signer,
            mpids,
            device,
            mpxn,
            mpid,
            as_of,
            switch_date,
            cos,
            cancels,
            replacements,
            path,
        })
    }
}

/// Check 3: the requester is a known service user in an import or gas supplier role.
pub fn check_requester(
    originator: Eui64,
    user: Option<&ecos_store::ServiceUser>,
) -> Result<(), Reason> {
    let user = user.ok_or_else(|| Reason::UnknownServiceUser {
        originator: originator.to_string(),
    })?;
    if !user
        .roles
        .iter()
        .any(|r| r.eq_ignore_ascii_case("IS") || r.eq_ignore_ascii_case("GS"))
    {
        return Err(Reason::NotASupplier {
            originator: originator.to_string(),
            roles: user.roles.clone(),
        });
    }
    Ok(())
}

/// Check 5 (after the device was found): an ESME or GSME whose status
/// allows a change of supplier. Returns the device's fuel.
pub fn check_device(device: &Device, config: &PartyConfig) -> Result<Fuel, Reason> {
    let fuel = match device.device_type {
        DeviceType::Esme => Fuel::Electricity,
        DeviceType::Gsme => Fuel::Gas,
        other => {
            return Err(Reason::DeviceType {
                device: device.eui.to_string(),
                found: other.to_string(),
            });
        }
    };
    // Statuses compare with '-' and '_' as one.
    let same = |a: &str, b: &str| {
        a.len() == b.len()
            && a.bytes()
                .zip(b.bytes())
                .all(|(x, y)| x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_')))
    };
    let status = device.status.as_str();
    if !config.cos_allowed_statuses.iter().any(|s| same(s, status)) {
        return Err(Reason::DeviceStatus {
            device: device.eui.to_string(),
            found: device.status.to_string(),
        });
    }
    Ok(fuel)
}

/// Check 6: ImportMPxN (`requested` as written, `mpxn` parsed) is the MPxN
/// the inventory holds for the device.
pub fn check_mpxn_is_devices(requested: &str, mpxn: &Mpxn, device: &Device) -> Result<(), Reason> {
    if device.mpxn.as_ref() != Some(mpxn) {
        return Err(Reason::MpxnMismatch {
            requested: requested.to_string(),
            inventory: device.mpxn.as_ref().map(|m| m.as_str().to_string()),
            device: device.eui.to_string(),
        });
    }
    Ok(())
}

/// Check 7: the signer's CN holds an MPID for `fuel`, and that MPID is the
/// registered supplier of `mpxn` on `as_of_date` (± the grace days). Returns
/// the MPIDs, the MPID used and its registration (whose start is the switch date).
pub fn check_mpid<'h>(
    signer: &Certificate,
    rules: &MpidRules,
    fuel: Fuel,
    mpxn: &Mpxn,
    history: &'h [ecos_store::Registration],
    as_of_date: jiff::civil::Date,
    grace_days: u32,
) -> Result<(Mpids, String, &'h ecos_store::Registration), Reason> {
    let mpids = Mpids::from_certificate(signer, rules).map_err(|e| Reason::CnInvalid {
        cn: signer.common_name().map(str::to_string),
        detail: e.to_string(),
    })?;
    let smki_fuel = match fuel {
        Fuel::Electricity => ecos_smki::Fuel::Electricity,
        Fuel::Gas => ecos_smki::Fuel::Gas,
    };
    let mpid = mpids
        .for_fuel(smki_fuel)
        .map(str::to_string)
        .ok_or_else(|| Reason::MpidMissingForFuel {
            fuel: fuel.as_str().to_string(),
            cn: signer.common_name().unwrap_or_default().to_string(),
        })?;
    let grace = i64::from(grace_days);
    let window_ok = |r: &ecos_store::Registration| {
        (-grace..=grace).any(|d| {
            as_of_date
                .checked_add(d.days())
                .is_ok_and(|day| r.contains(day))
        })
    };
    match history.iter().find(|r| r.mpid == mpid && window_ok(r)) {
        Some(switch) => Ok((mpids, mpid, switch)),
        None => {
            let registered = history.iter().find(|r| r.contains(as_of_date));
            let later = history
                .iter()
                .find(|r| r.mpid == mpid && r.effective_from > as_of_date)
                .map(|r| r.effective_from.to_string());
            Err(Reason::MpidNotRegisteredSupplier {
                mpid,
                mpxn: mpxn.as_str().to_string(),
                as_of: as_of_date.to_string(),
                registered: registered.map(describe_registration),
                requester_effective_from: later,
            })
        }
    }
}

/// The credential check: which CoS key can sign for the device, and that
/// the command can be MACed for it. Every command variant carries the ACB
/// MAC (a command for local delivery too), so the device's KA certificate
/// is always needed.
pub fn check_credential(device: &Device, config: &PartyConfig) -> Result<CosChoice, Reason> {
    let refuse = |detail: String| Reason::CosCredential {
        device: device.eui.to_string(),
        detail,
    };
    let cos = match device.cos_credential {
        Some(CosCredential::Enduring) => CosChoice::Enduring,
        Some(CosCredential::Transitional) if config.tcos_signing_enabled => CosChoice::Transitional,
        Some(CosCredential::Transitional) => {
            return Err(refuse("the device still holds the transitional CoS credential and transitional signing is switched off".into()));
        }
        Some(other) => return Err(refuse(format!("unknown CoS credential {other}"))),
        None => {
            return Err(refuse(
                "the inventory does not say which CoS credential the device holds".into(),
            ));
        }
    };
    if device.ka_cert.is_none() {
        return Err(refuse("the inventory holds no key-agreement certificate for the device, so the command cannot be MACed".into()));
    }
    Ok(cos)
}

/// The migration rule: no 6.23 while the device's migration command is in
/// flight (state `selected` or `sent`); `state` is the device's migration
/// state, `None` without a migration record.
pub fn check_migration(device: &Device, state: Option<MigrationState>) -> Result<(), Reason> {
    match state {
        Some(s) if s.is_in_flight() => Err(Reason::MigrationInFlight {
            device: device.eui.to_string(),
            state: s.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A registration in words: `MPID from D to D` / `MPID from D`.
pub fn describe_registration(r: &ecos_store::Registration) -> String {
    match r.effective_to {
        Some(to) => format!("{} from {} to {}", r.mpid, r.effective_from, to),
        None => format!("{} from {}", r.mpid, r.effective_from),
    }
}

/// Check 2: the signer's certificate.
pub fn check_signer(
    cert: &Certificate,
    originator: Eui64,
    smki: &SmkiRegistry,
    at: Timestamp,
) -> Result<(), Reason> {
    if cert.role() != Some(Role::XmlSign) {
        return Err(Reason::SignerWrongRole {
            found: cert.role().map(|r| r.to_string()),
        });
    }
    if cert.eui() != Some(originator) {
        return Err(Reason::SignerEuiMismatch {
            certificate: cert
                .eui()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "no EUI".into()),
            originator: originator.to_string(),
        });
    }
    if cert.key_usage() != KeyUsage::DigitalSignature {
        return Err(Reason::SignerKeyUsage {
            found: format!("{:?}", cert.key_usage()),
        });
    }
    smki.validate(cert, &[], at, true)
        .map_err(|e| Reason::SignerPath {
            detail: e.to_string(),
        })
}

/// Check 8: the replacement certificates and the certification path.
pub fn check_replacements(
    request: &CosRequest,
    smki: &SmkiRegistry,
    config: &PartyConfig,
    at: Timestamp,
) -> Result<(Vec<Certificate>, Vec<Certificate>), Reason> {
    let body = &request.body;
    let bad = |slot: &str, detail: String| Reason::ReplacementCertificate {
        slot: slot.to_string(),
        detail,
    };
    let path = body.certification_path.clone();
    let certs = &body.replacement_certificates;
    let slots: [(&str, Option<&Certificate>, KeyUsage); 3] = [
        (
            "DigitalSigning",
            Some(&certs.digital_signing),
            KeyUsage::DigitalSignature,
        ),
        (
            "KeyAgreement",
            certs.key_agreement.as_ref(),
            KeyUsage::KeyAgreement,
        ),
        (
            "KeyAgreementTopUp",
            certs.key_agreement_top_up.as_ref(),
            KeyUsage::KeyAgreement,
        ),
    ];
    let cpv_at = match body.execution {
        Execution::FutureDated(t) => t,
        _ => at,
    };
    let mut out = Vec::new();
    let mut eui: Option<Eui64> = None;
    for (slot, der, usage) in slots {
        let Some(cert) = der else { continue };
        if cert.role() != Some(Role::Supplier) {
            return Err(bad(
                slot,
                format!(
                    "role is {}, expected supplier (OU 02)",
                    cert.role()
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "none".into())
                ),
            ));
        }
        if cert.key_usage() != usage {
            return Err(bad(
                slot,
                format!("key usage is {:?}, expected {usage:?}", cert.key_usage()),
            ));
        }
        match (eui, cert.eui()) {
            (_, None) => return Err(bad(slot, "no organisation EUI".into())),
            (Some(e), Some(c)) if e != c => {
                return Err(bad(
                    slot,
                    format!("belongs to {c}, the other replacement certificates to {e}"),
                ));
            }
            (_, Some(c)) => eui = Some(c),
        }
        if config.require_replacement_eui_equals_originator
            && cert.eui() != Some(request.header.request_id.originator)
        {
            return Err(bad(
                slot,
                format!(
                    "issued to {}, not to the requesting organisation {}",
                    cert.eui().map(|e| e.to_string()).unwrap_or_default(),
                    request.header.request_id.originator
                ),
            ));
        }
        smki.validate(cert, &path, cpv_at, body.apply_time_based_cpv_checks)
            .map_err(|e| bad(slot, format!("certification path: {e}")))?;
        out.push(cert.clone());
    }
    if certs.key_agreement.is_none() {
        return Err(bad(
            "KeyAgreement",
            "absent; the supplier's KA cell must be replaced too".into(),
        ));
    }
    Ok((out, path))
}
