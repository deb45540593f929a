//! The pipeline's policy: every [P] interpretation of the reference is a
//! setting here, with the reference's default.

use serde::{Deserialize, Serialize};

use crate::reason::ResponseCodes;

/// What to do with a new 6.23 while a future-dated one is pending for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnPendingFd {
    /// Refuse the new request (default).
    #[default]
    Reject,
    /// Cancel the pending one and go on with the new one.
    Supersede,
}

/// What to do with a 6.23 for a device whose TCoS→ECoS migration command
/// (0x0106) is in flight (migration state `selected` or `sent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnMigrationInFlight {
    /// Refuse with `migration_in_flight` (default): the CoS key the device
    /// trusts is changing, so the command could be signed with a key the
    /// device no longer holds, and the migration's command with a counter
    /// the 6.23 has already raised.
    #[default]
    Reject,
    /// Go on regardless (the migration's own rule keeps it away from
    /// devices with a pending 6.23, but the race remains).
    Proceed,
}

/// The DCC alerts the party raises (`duis-6.23.md` §5). Which N-code
/// carries which body, and the ECoSAlertCode values, are not public: they
/// are configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DccAlertConfig {
    /// Tell the losing supplier of a completed change of supplier
    /// (`ChangeOfSupplier/DeviceChangeOfSupplier`).
    pub losing_supplier: bool,
    /// The `DCCAlertCode` of that alert.
    pub losing_supplier_alert_code: String,
    /// Tell the requester when re-validation cancels its pending
    /// future-dated 6.23 (`ECoSAlert`).
    pub fd_revalidation: bool,
    /// The `DCCAlertCode` of that alert.
    pub fd_revalidation_alert_code: String,
    /// The `ECoSAlertCode` in it.
    pub fd_revalidation_ecos_alert_code: String,
}

impl Default for DccAlertConfig {
    fn default() -> Self {
        DccAlertConfig {
            losing_supplier: true,
            losing_supplier_alert_code: "N65".into(),
            fd_revalidation: true,
            fd_revalidation_alert_code: "N63".into(),
            fd_revalidation_ecos_alert_code: "FDCANCELLED".into(),
        }
    }
}

/// How long the party waits for a device before it tells the requester
/// that no answer came (`duis-6.23.md` §4: E21 no response from the device,
/// E30 future-dated time-out). The periods are interpretations: the DCC's
/// target response times are not public. 0 switches a check off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceTimeouts {
    /// Seconds after an immediate 6.23 (or a cancellation) left for the
    /// device without its response.
    pub response_secs: u64,
    /// Seconds after a future-dated 6.23's execution date-time without the
    /// device's outcome alert.
    pub future_dated_secs: u64,
    /// The DUIS response code sent for a missing response.
    pub no_response_code: String,
    /// The DUIS response code sent for a missing future-dated outcome.
    pub future_dated_code: String,
}

impl Default for DeviceTimeouts {
    fn default() -> Self {
        DeviceTimeouts {
            response_secs: 3600,
            future_dated_secs: 86_400,
            no_response_code: "E21".into(),
            future_dated_code: "E30".into(),
        }
    }
}

/// The smallest `fd_dispatch_lead_secs` (twice the service's sweep period).
pub const MIN_FD_DISPATCH_LEAD_SECS: u64 = 60;

/// Policy of the 6.23 pipeline (`ecos-domain.md` §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartyConfig {
    /// Command variants accepted for 6.23 (DUIS: 1, 2, 3).
    pub allowed_command_variants: Vec<u8>,
    /// Require the RequestID counter to rise strictly per originator.
    pub require_increasing_request_counter: bool,
    /// Device statuses that allow a change of supplier.
    pub cos_allowed_statuses: Vec<String>,
    /// Days of tolerance on the switch date for registration-data lag.
    pub switch_date_grace_days: u32,
    /// Minimum lead of a future-dated ExecutionDateTime over receipt, in seconds.
    pub fd_min_lead_secs: u64,
    /// Maximum horizon of a future-dated ExecutionDateTime, in days (none: unlimited).
    pub fd_max_horizon_days: Option<u32>,
    /// When a future-dated 6.23's command goes to the device
    /// (`ecos-domain.md` §4, `fd_dispatch_lead`): `None` (the default) at
    /// receipt; `Some(n)`: held in the store and dispatched `n` seconds
    /// before its execution date-time, after checks 6 and 7 are run again
    /// (see `Party::dispatch_held_future_dated`). A held request that is
    /// cancelled by its requester, or by re-validation, is cancelled in the
    /// store only: no command reaches the device. Switching it off with
    /// requests still held sends them with the next sweep.
    pub fd_dispatch_lead_secs: Option<u64>,
    /// A cancellation must come from the originator of the pending request.
    pub cancel_requires_same_originator: bool,
    /// A new 6.23 while a future-dated one is pending.
    pub on_pending_fd: OnPendingFd,
    /// The replacement certificates' EUI must be the RequestID originator
    /// (on in production; off for the reference templates).
    pub require_replacement_eui_equals_originator: bool,
    /// Whether the transitional CoS key may still sign (the migration period).
    pub tcos_signing_enabled: bool,
    /// The GBCS originator counter never starts below this.
    pub counter_floor: u64,
    /// Reason code → DUIS response code.
    pub response_codes: ResponseCodes,
    /// A 6.23 for a device whose migration command is in flight.
    pub on_migration_in_flight: OnMigrationInFlight,
    /// DCC alerts: to the losing supplier, and on re-validation.
    pub dcc_alerts: DccAlertConfig,
    /// When an unanswered command is reported to its requester.
    pub device_timeouts: DeviceTimeouts,
    /// The command self-check re-parses every signed command and compares
    /// it with what was built; it verifies the signature (with the
    /// certificate of the key used) of the first command each CoS key signs
    /// and then of one in this many (1: every command). At least 1.
    pub command_signature_check_every: u64,
}

impl Default for PartyConfig {
    fn default() -> Self {
        PartyConfig {
            allowed_command_variants: vec![1, 2, 3],
            require_increasing_request_counter: true,
            cos_allowed_statuses: vec!["commissioned".into(), "installed_not_commissioned".into()],
            switch_date_grace_days: 0,
            fd_min_lead_secs: 0,
            fd_max_horizon_days: None,
            fd_dispatch_lead_secs: None,
            cancel_requires_same_originator: true,
            on_pending_fd: OnPendingFd::Reject,
            require_replacement_eui_equals_originator: true,
            tcos_signing_enabled: true,
            counter_floor: 0x0100_0000_0000_0000,
            response_codes: ResponseCodes::default(),
            on_migration_in_flight: OnMigrationInFlight::Reject,
            dcc_alerts: DccAlertConfig::default(),
            device_timeouts: DeviceTimeouts::default(),
            command_signature_check_every: 100,
        }
    }
}

impl PartyConfig {
    /// Check the settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.response_codes.validate()?;
        let a = &self.dcc_alerts;
        for (key, code) in [
            (
                "dcc_alerts.losing_supplier_alert_code",
                &a.losing_supplier_alert_code,
            ),
            (
                "dcc_alerts.fd_revalidation_alert_code",
                &a.fd_revalidation_alert_code,
            ),
        ] {
            ecos_duis::DccAlertCode::new(code)
                .map_err(|e| format!("{key}: {code:?} is not a DCCAlertCode: {e}"))?;
        }
        let t = &self.device_timeouts;
        for (key, code) in [
            ("device_timeouts.no_response_code", &t.no_response_code),
            ("device_timeouts.future_dated_code", &t.future_dated_code),
        ] {
            match ecos_duis::ResponseCode::new(code) {
                Ok(c) if c.is_error() => {}
                Ok(_) => return Err(format!("{key}: {code:?} is not an error code (E…)")),
                Err(e) => return Err(format!("{key}: {code:?} is not a DUIS response code: {e}")),
            }
        }
        if a.fd_revalidation_ecos_alert_code.trim().is_empty() {
            return Err("dcc_alerts.fd_revalidation_ecos_alert_code: empty".into());
        }
        if let Some(lead) = self.fd_dispatch_lead_secs
            && lead < MIN_FD_DISPATCH_LEAD_SECS
        {
            return Err(format!(
                "fd_dispatch_lead_secs: {lead} is below {MIN_FD_DISPATCH_LEAD_SECS} s: the \
                 dispatch sweep runs every 30 s, so a held request could miss its execution; \
                 leave it unset to send at receipt"
            ));
        }
        if self.command_signature_check_every == 0 {
            return Err("command_signature_check_every: 0; use 1 to verify every command".into());
        }
        for cv in &self.allowed_command_variants {
            if !(1..=9).contains(cv) {
                return Err(format!(
                    "allowed_command_variants: {cv} is not a DUIS command variant (1..9)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c: PartyConfig = toml::from_str("").unwrap();
        assert_eq!(c, PartyConfig::default());
        let err = toml::from_str::<PartyConfig>("no_such_key = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no_such_key"), "{err}");
        let c: PartyConfig =
            toml::from_str("[response_codes]\nmpxn_mismatch = \"E062306\"\n").unwrap();
        c.validate().unwrap();
        let bad: PartyConfig = toml::from_str("[response_codes]\nmpxn_mismach = \"E1\"\n").unwrap();
        assert!(bad.validate().unwrap_err().contains("mpxn_mismach"));
        let c: PartyConfig = toml::from_str(
            "on_migration_in_flight = \"proceed\"\n[dcc_alerts]\nlosing_supplier = false\nlosing_supplier_alert_code = \"N64\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.on_migration_in_flight, OnMigrationInFlight::Proceed);
        assert!(!c.dcc_alerts.losing_supplier);
        let bad: PartyConfig =
            toml::from_str("[dcc_alerts]\nfd_revalidation_alert_code = \"N32\"\n").unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("fd_revalidation_alert_code")
        );
        assert!(toml::from_str::<PartyConfig>("[dcc_alerts]\nlosing = true\n").is_err());
        let c: PartyConfig =
            toml::from_str("[device_timeouts]\nresponse_secs = 60\nno_response_code = \"E20\"\n")
                .unwrap();
        c.validate().unwrap();
        assert_eq!(c.device_timeouts.response_secs, 60);
        assert_eq!(c.device_timeouts.future_dated_code, "E30");
        let c: PartyConfig = toml::from_str("fd_dispatch_lead_secs = 86400\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.fd_dispatch_lead_secs, Some(86_400));
        let bad: PartyConfig = toml::from_str("fd_dispatch_lead_secs = 5\n").unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("fd_dispatch_lead_secs")
        );
        let bad: PartyConfig =
            toml::from_str("[device_timeouts]\nfuture_dated_code = \"I0\"\n").unwrap();
        assert!(bad.validate().unwrap_err().contains("future_dated_code"));
    }
}
