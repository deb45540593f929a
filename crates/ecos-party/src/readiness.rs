//! The MPID readiness report: for every MPxN an organisation supplies or is
//! about to supply, and every meter on it, would a 6.23 from that
//! organisation pass **today** and **on the switch date**, and if not, which
//! generic scenario explains it.
//!
//! The verdicts come from the pipeline's own rules: [`check_signer`] for the
//! certificate, [`Mpids::from_certificate`] / [`Mpids::for_fuel`] for the CN,
//! the store's registration history and inventory for the rest. The device,
//! MPxN, MPID and credential checks follow [`crate::check::Checker::decide`]
//! step for step (same order, same settings: `cos_allowed_statuses`,
//! `switch_date_grace_days`, `tcos_signing_enabled`); they are inline there,
//! so they are restated here on the same inputs. What a report cannot judge
//! without a request (replacement certificates, replay, timing) is not judged.
//!
//! Which MPxNs: the store has no "MPxNs supplied by MPID X" query, so the
//! caller passes candidate MPxNs ([`report`]'s `candidates`, e.g. from
//! `SELECT DISTINCT mpxn FROM registration WHERE supplier_mpid IN (..)`), and
//! the report keeps those whose registration history has a current or future
//! period for one of the organisation's MPIDs (one `registration_history`
//! and one `devices_for_mpxn` round trip per candidate).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ecos_smki::{Certificate, Eui64, MpidRules, Mpids, PathError};
use ecos_store::{Device, Mpxn, Registration, Store};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use crate::check::check_signer;
use crate::config::PartyConfig;
use crate::reason::Reason;
use crate::smki::SmkiRegistry;

/// Failures while building a report (not verdicts: those are in the rows).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadinessError {
    /// No certificate to judge the organisation's requests by.
    #[error("no XML Sign certificate given for organisation {org}")]
    NoCertificate {
        /// The organisation.
        org: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] ecos_store::StoreError),
    /// The store's as-of time zone or a date could not be turned into an instant.
    #[error("switch date {date} in time zone {tz}: {detail}")]
    Date {
        /// The date.
        date: String,
        /// The time zone.
        tz: String,
        /// What failed.
        detail: String,
    },
}

/// The generic scenario behind a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scenario {
    /// The certificate is not an XML Sign (OU 87) certificate.
    WrongCertificateRole,
    /// The certificate belongs to another organisation (EUI), or has the wrong key usage.
    CertificateNotTheOrganisations,
    /// The certificate has expired at the date.
    CertificateExpired,
    /// The certificate is not yet valid at the date.
    CertificateNotYetValid,
    /// The certificate (or a CA above it) is revoked.
    CertificateRevoked,
    /// The certificate's path does not validate for another reason.
    CertificatePath,
    /// The organisation is no known service user, or not an import/gas supplier.
    NotASupplier,
    /// The device is not an ESME or GSME.
    DeviceType,
    /// The device's status blocks a change of supplier.
    DeviceStatusBlocksCos,
    /// ImportMPxN cannot be a device's MPxN: the inventory has no meter on
    /// this MPxN (or holds another MPxN for the device).
    ImportMpxnNotDevices,
    /// The certificate has no CN, so it carries no MPID.
    NoCn,
    /// The CN is not a valid MPID list.
    CnInvalid,
    /// The CN has no MPID for the device's fuel.
    MpidMissingForFuel,
    /// The MPID is not the registered supplier at the date.
    MpidNotRegisteredSupplier,
    /// The date is before the start of the organisation's own registration.
    SwitchDateBeforeEffectiveFrom,
    /// The device's CoS credential cannot sign (TCoS off, unknown, no KA certificate).
    CosCredential,
    /// Anything else the pipeline refuses for.
    Other,
}

impl Scenario {
    /// The stable name (as in JSON and CSV).
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::WrongCertificateRole => "wrong_certificate_role",
            Scenario::CertificateNotTheOrganisations => "certificate_not_the_organisations",
            Scenario::CertificateExpired => "certificate_expired",
            Scenario::CertificateNotYetValid => "certificate_not_yet_valid",
            Scenario::CertificateRevoked => "certificate_revoked",
            Scenario::CertificatePath => "certificate_path",
            Scenario::NotASupplier => "not_a_supplier",
            Scenario::DeviceType => "device_type",
            Scenario::DeviceStatusBlocksCos => "device_status_blocks_cos",
            Scenario::ImportMpxnNotDevices => "import_mpxn_not_devices",
            Scenario::NoCn => "no_cn",
            Scenario::CnInvalid => "cn_invalid",
            Scenario::MpidMissingForFuel => "mpid_missing_for_fuel",
            Scenario::MpidNotRegisteredSupplier => "mpid_not_registered_supplier",
            Scenario::SwitchDateBeforeEffectiveFrom => "switch_date_before_effective_from",
            Scenario::CosCredential => "cos_credential",
            Scenario::Other => "other",
        }
    }
}

/// Whether a 6.23 would pass at one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every check the report can judge passes.
    Pass,
    /// The first check that fails, as the pipeline would name it.
    Fail {
        /// The generic scenario.
        scenario: Scenario,
        /// The pipeline's reason code (`Reason::code`).
        reason: String,
        /// The pipeline's message.
        detail: String,
    },
}

impl Verdict {
    /// Whether it passes.
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    /// The scenario, when it fails.
    pub fn scenario(&self) -> Option<Scenario> {
        match self {
            Verdict::Pass => None,
            Verdict::Fail { scenario, .. } => Some(*scenario),
        }
    }

    fn fail(scenario: Scenario, reason: &Reason) -> Self {
        Verdict::Fail {
            scenario,
            reason: reason.code().to_string(),
            detail: reason.to_string(),
        }
    }
}

/// One line of the report: a certificate × MPxN × meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The MPxN.
    pub mpxn: String,
    /// `electricity` or `gas` (from the MPxN's form).
    pub fuel: String,
    /// The meter (`None`: the inventory has no meter on this MPxN).
    pub device: Option<String>,
    /// Its type.
    pub device_type: Option<String>,
    /// Its status.
    pub device_status: Option<String>,
    /// The certificate judged: serial (upper-case hex).
    pub certificate_serial: String,
    /// The certificate's CN.
    pub certificate_cn: Option<String>,
    /// The registered supplier today (`MPID from [to]`).
    pub registered_today: Option<String>,
    /// The next registration change after today (the switch date), if any.
    pub switch_date: Option<String>,
    /// The registered supplier from the switch date.
    pub registered_at_switch: Option<String>,
    /// Would a 6.23 pass today.
    pub today: Verdict,
    /// Would it pass on the switch date (`None`: no switch coming).
    pub on_switch_date: Option<Verdict>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The organisation.
    pub org: String,
    /// Its service-user name, if it is one.
    pub name: Option<String>,
    /// The instant "today" is.
    pub at: String,
    /// Today's as-of date (store time zone).
    pub as_of: String,
    /// The MPIDs looked for: the certificates' CN MPIDs and the service-user record's.
    pub mpids: Vec<String>,
    /// Candidate MPxNs examined.
    pub examined: usize,
    /// One row per certificate × supplied MPxN × meter.
    pub rows: Vec<Row>,
}

/// What the report consults.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Registration data, inventory, service users.
    pub store: &'a Store,
    /// Trust anchors, revocations, path policy.
    pub smki: &'a SmkiRegistry,
    /// The pipeline's policy.
    pub config: &'a PartyConfig,
    /// MPID rules for the CN.
    pub mpid_rules: &'a MpidRules,
}

/// The MPIDs of the organisation: every certificate's CN MPIDs (when the CN
/// parses) and the service-user record's.
fn org_mpids(
    certs: &[Certificate],
    rules: &MpidRules,
    user: Option<&ecos_store::ServiceUser>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in certs {
        if let Ok(m) = Mpids::from_certificate(c, rules) {
            for f in [ecos_smki::Fuel::Electricity, ecos_smki::Fuel::Gas] {
                if let Some(id) = m.for_fuel(f) {
                    out.insert(id.to_string());
                }
            }
        }
    }
    if let Some(u) = user {
        out.extend(u.mpids.iter().map(|m| m.trim().to_ascii_uppercase()));
    }
    out
}

/// Build the report for organisation `org` judged with `certs` (its XML Sign
/// certificate(s)) at `at`, over the candidate MPxNs.
pub async fn report(
    ctx: &Context<'_>,
    org: Eui64,
    certs: &[Certificate],
    at: Timestamp,
    candidates: &[Mpxn],
) -> Result<Report, ReadinessError> {
    if certs.is_empty() {
        return Err(ReadinessError::NoCertificate {
            org: org.to_string(),
        });
    }
    let store = ctx.store;
    let user = store.service_user(org).await?;
    let mpids = org_mpids(certs, ctx.mpid_rules, user.as_ref());
    let today = store.as_of_date(at);
    let tz_name = store.config().as_of_time_zone.clone();
    let requester = requester_verdict(org, user.as_ref());

    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for mpxn in candidates {
        if !seen.insert(mpxn.as_str().to_string()) {
            continue;
        }
        let history = store.registration_history(mpxn).await?;
        let supplies = history
            .iter()
            .any(|r| mpids.contains(&r.mpid) && r.effective_to.is_none_or(|to| to >= today));
        if !supplies {
            continue;
        }
        let switch = history.iter().find(|r| r.effective_from > today);
        let switch_at = match switch {
            Some(r) => Some(start_of_day(r.effective_from, &tz_name)?),
            None => None,
        };
        let devices: Vec<Device> = store
            .devices_for_mpxn(mpxn)
            .await?
            .into_iter()
            .filter(|d| d.device_type.fuel().is_some())
            .collect();
        let targets: Vec<Option<&Device>> = if devices.is_empty() {
            vec![None]
        } else {
            devices.iter().map(Some).collect()
        };
        for cert in certs {
            for device in &targets {
                let judge = |when: Timestamp| Judge {
                    ctx,
                    org,
                    cert,
                    requester: requester.as_ref(),
                    device: *device,
                    mpxn,
                    history: &history,
                    at: when,
                };
                let today_v = judge(at).verdict();
                let switch_v = switch_at.map(|t| judge(t).verdict());
                rows.push(Row {
                    mpxn: mpxn.as_str().to_string(),
                    fuel: mpxn.fuel().as_str().to_string(),
                    device: device.map(|d| d.eui.to_string()),
                    device_type: device.map(|d| d.device_type.to_string()),
                    device_status: device.map(|d| d.status.to_string()),
                    certificate_serial: hex::encode_upper(cert.serial()),
                    certificate_cn: cert.common_name().map(str::to_string),
                    registered_today: history
                        .iter()
                        .find(|r| r.contains(today))
                        .map(crate::check::describe_registration),
                    switch_date: switch.map(|r| r.effective_from.to_string()),
                    registered_at_switch: switch.map(crate::check::describe_registration),
                    today: today_v,
                    on_switch_date: switch_v,
                });
            }
        }
    }
    Ok(Report {
        org: org.to_string(),
        name: user.map(|u| u.name),
        at: at.to_string(),
        as_of: today.to_string(),
        mpids: mpids.into_iter().collect(),
        examined: seen.len(),
        rows,
    })
}

fn start_of_day(date: Date, tz: &str) -> Result<Timestamp, ReadinessError> {
    let err = |detail: String| ReadinessError::Date {
        date: date.to_string(),
        tz: tz.to_string(),
        detail,
    };
    let zone = jiff::tz::TimeZone::get(tz).map_err(|e| err(e.to_string()))?;
    zone.to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .map_err(|e| err(e.to_string()))
}

/// Check 3 as the pipeline runs it: a known service user with IS or GS.
fn requester_verdict(org: Eui64, user: Option<&ecos_store::ServiceUser>) -> Option<Reason> {
    crate::check::check_requester(org, user).err()
}

struct Judge<'a> {
    ctx: &'a Context<'a>,
    org: Eui64,
    cert: &'a Certificate,
    requester: Option<&'a Reason>,
    device: Option<&'a Device>,
    mpxn: &'a Mpxn,
    history: &'a [Registration],
    at: Timestamp,
}

impl Judge<'_> {
    /// The first failing check, in the pipeline's order.
    fn verdict(&self) -> Verdict {
        match self.first_failure() {
            None => Verdict::Pass,
            Some((s, r)) => Verdict::fail(s, &r),
        }
    }

    fn first_failure(&self) -> Option<(Scenario, Reason)> {
        let ctx = self.ctx;
        // 2. The signer.
        if let Err(reason) = check_signer(self.cert, self.org, ctx.smki, self.at) {
            let scenario = match &reason {
                Reason::SignerWrongRole { .. } => Scenario::WrongCertificateRole,
                Reason::SignerEuiMismatch { .. } | Reason::SignerKeyUsage { .. } => {
                    Scenario::CertificateNotTheOrganisations
                }
                Reason::SignerPath { .. } => {
                    match ctx.smki.validate(self.cert, &[], self.at, true) {
                        Err(PathError::Expired { .. }) => Scenario::CertificateExpired,
                        Err(PathError::NotYetValid { .. }) => Scenario::CertificateNotYetValid,
                        Err(PathError::Revoked { .. }) => Scenario::CertificateRevoked,
                        _ => Scenario::CertificatePath,
                    }
                }
                _ => Scenario::Other,
            };
            return Some((scenario, reason));
        }
        // 3. The requester.
        if let Some(r) = self.requester {
            return Some((Scenario::NotASupplier, r.clone()));
        }
        // 5. The device.
        let Some(device) = self.device else {
            return Some((
                Scenario::ImportMpxnNotDevices,
                Reason::MpxnMismatch {
                    requested: self.mpxn.as_str().to_string(),
                    inventory: None,
                    device: "(no meter on this MPxN in the inventory)".into(),
                },
            ));
        };
        let fuel = match crate::check::check_device(device, ctx.config) {
            Ok(f) => f,
            Err(r @ Reason::DeviceType { .. }) => return Some((Scenario::DeviceType, r)),
            Err(r) => return Some((Scenario::DeviceStatusBlocksCos, r)),
        };
        // 6. MPxN: ImportMPxN (this MPxN) is the device's.
        if let Err(r) = crate::check::check_mpxn_is_devices(self.mpxn.as_str(), self.mpxn, device) {
            return Some((Scenario::ImportMpxnNotDevices, r));
        }
        if self.history.is_empty() {
            return Some((
                Scenario::Other,
                Reason::MpxnNotRegistered {
                    mpxn: self.mpxn.as_str().to_string(),
                },
            ));
        }
        // 7. MPID.
        if let Err(r) = crate::check::check_mpid(
            self.cert,
            ctx.mpid_rules,
            fuel,
            self.mpxn,
            self.history,
            ctx.store.as_of_date(self.at),
            ctx.config.switch_date_grace_days,
        ) {
            let scenario = match &r {
                Reason::CnInvalid { cn, .. }
                    if cn.as_deref().is_none_or(|c| c.trim().is_empty()) =>
                {
                    Scenario::NoCn
                }
                Reason::CnInvalid { .. } => Scenario::CnInvalid,
                Reason::MpidMissingForFuel { .. } => Scenario::MpidMissingForFuel,
                Reason::MpidNotRegisteredSupplier {
                    requester_effective_from: Some(_),
                    ..
                } => Scenario::SwitchDateBeforeEffectiveFrom,
                _ => Scenario::MpidNotRegisteredSupplier,
            };
            return Some((scenario, r));
        }
        // The credential on the device.
        if let Err(r) = crate::check::check_credential(device, ctx.config) {
            return Some((Scenario::CosCredential, r));
        }
        None
    }
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn verdict_cells(v: Option<&Verdict>) -> [String; 3] {
    match v {
        None => [String::new(), String::new(), String::new()],
        Some(Verdict::Pass) => ["pass".into(), String::new(), String::new()],
        Some(Verdict::Fail {
            scenario, detail, ..
        }) => ["fail".into(), scenario.as_str().into(), detail.clone()],
    }
}

impl Report {
    /// The CSV header.
    pub const CSV_HEADER: &'static str = "org,mpxn,fuel,device,device_type,device_status,certificate_serial,certificate_cn,registered_today,switch_date,registered_at_switch,today,today_scenario,today_detail,on_switch_date,switch_scenario,switch_detail";

    /// The report as CSV (header line, one line per row).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(Self::CSV_HEADER);
        out.push('\n');
        for r in &self.rows {
            let t = verdict_cells(Some(&r.today));
            let s = verdict_cells(r.on_switch_date.as_ref());
            let cells: [&str; 17] = [
                &self.org,
                &r.mpxn,
                &r.fuel,
                r.device.as_deref().unwrap_or(""),
                r.device_type.as_deref().unwrap_or(""),
                r.device_status.as_deref().unwrap_or(""),
                &r.certificate_serial,
                r.certificate_cn.as_deref().unwrap_or(""),
                r.registered_today.as_deref().unwrap_or(""),
                r.switch_date.as_deref().unwrap_or(""),
                r.registered_at_switch.as_deref().unwrap_or(""),
                &t[0],
                &t[1],
                &t[2],
                &s[0],
                &s[1],
                &s[2],
            ];
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(&mut out, c);
            }
            out.push('\n');
        }
        out
    }

    /// A terminal table: one line per row, then the reasons of the failures.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "organisation {}{}  MPIDs {}  at {} (as-of {})  {} MPxN(s) examined, {} row(s)",
            self.org,
            self.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            if self.mpids.is_empty() {
                "none".to_string()
            } else {
                self.mpids.join(" ")
            },
            self.at,
            self.as_of,
            self.examined,
            self.rows.len()
        );
        let short = |v: Option<&Verdict>| match v {
            None => "-".to_string(),
            Some(Verdict::Pass) => "pass".to_string(),
            Some(Verdict::Fail { scenario, .. }) => scenario.as_str().to_string(),
        };
        let header = [
            "MPxN",
            "device",
            "status",
            "cert",
            "registered today",
            "switch",
            "today",
            "on switch date",
        ];
        let lines: Vec<[String; 8]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.mpxn.clone(),
                    r.device.clone().unwrap_or_else(|| "(none)".into()),
                    r.device_status.clone().unwrap_or_default(),
                    r.certificate_serial.clone(),
                    r.registered_today
                        .clone()
                        .unwrap_or_else(|| "(nobody)".into()),
                    r.switch_date.clone().unwrap_or_else(|| "-".into()),
                    short(Some(&r.today)),
                    short(r.on_switch_date.as_ref()),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let _ = write!(s, "{c:<w$}");
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&header);
        for l in &lines {
            line(&l.each_ref().map(String::as_str));
        }
        let mut details = BTreeSet::new();
        for r in &self.rows {
            for v in [Some(&r.today), r.on_switch_date.as_ref()]
                .into_iter()
                .flatten()
            {
                if let Verdict::Fail {
                    scenario, detail, ..
                } = v
                {
                    details.insert(format!("  {}: {}", scenario.as_str(), detail));
                }
            }
        }
        if !details.is_empty() {
            let _ = writeln!(out, "why:");
            for d in details {
                let _ = writeln!(out, "{d}");
            }
        }
        out
    }

    /// How many rows pass today / on the switch date (rows with a switch).
    pub fn summary(&self) -> (usize, usize, usize) {
        let today = self.rows.iter().filter(|r| r.today.passes()).count();
        let switch = self
            .rows
            .iter()
            .filter(|r| r.on_switch_date.as_ref().is_some_and(Verdict::passes))
            .count();
        let with_switch = self
            .rows
            .iter()
            .filter(|r| r.on_switch_date.is_some())
            .count();
        (today, switch, with_switch)
    }
}
