//! The migration's settings (`migration.*`, `ecos-domain.md` §6 and §8). Every rule the
//! reference marks as an interpretation is here, with the reference's defaults.

use std::collections::BTreeMap;

use ecos_store::{DeviceStatus, DeviceType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::retry::FailureClass;

/// Everything the migration needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// Who is a candidate.
    pub eligibility: Eligibility,
    /// How fast commands go out.
    pub throttle: Throttle,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// Put devices whose MPxN has a switch coming first.
    pub prioritise_switch_coming: bool,
    /// Seconds without a response after which a sent command counts as a WAN failure.
    pub response_timeout_s: u64,
    /// Apply time-based CPV checks in the 0x0106 command.
    pub apply_time_based_cpv_checks: bool,
    /// Set `[4] newRemotePartyFloorSeqNumber` to the command's counter (`migration_set_floor`).
    pub set_floor: bool,
    /// The supply-chain rule.
    pub supply_chain: SupplyChain,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            eligibility: Eligibility::default(),
            throttle: Throttle::default(),
            retry: RetryPolicy::default(),
            prioritise_switch_coming: true,
            response_timeout_s: 3600,
            apply_time_based_cpv_checks: true,
            set_floor: false,
            supply_chain: SupplyChain::default(),
        }
    }
}

impl MigrationConfig {
    /// Read from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, crate::MigrationError> {
        let c: MigrationConfig =
            toml::from_str(text).map_err(|e| crate::MigrationError::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Check the values that serde cannot.
    pub fn validate(&self) -> Result<(), crate::MigrationError> {
        let bad = |m: String| Err(crate::MigrationError::Config(m));
        if self.throttle.max_in_flight == 0 {
            return bad("throttle.max_in_flight must be at least 1".into());
        }
        if self.throttle.batch_size == 0 {
            return bad("throttle.batch_size must be at least 1".into());
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts must be at least 1".into());
        }
        for (class, p) in self.retry.classes() {
            if p.factor < 1.0 || !p.factor.is_finite() {
                return bad(format!("retry.{class}.factor {} must be >= 1", p.factor));
            }
            if p.max_failures == 0 {
                return bad(format!("retry.{class}.max_failures must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The eligibility rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Eligibility {
    /// Inventory statuses that may be migrated.
    pub statuses: Vec<DeviceStatus>,
    /// Device types that hold a CoS anchor.
    pub device_types: Vec<DeviceType>,
    /// Most days since the last successful contact (`None`: no contact rule).
    pub max_days_since_contact: Option<u32>,
    /// Firmware versions allowed (`None`: any).
    pub firmware_allow_list: Option<Vec<String>>,
}

impl Default for Eligibility {
    fn default() -> Self {
        Eligibility {
            statuses: vec![DeviceStatus::Commissioned],
            device_types: vec![DeviceType::Esme, DeviceType::Gsme],
            max_days_since_contact: Some(30),
            firmware_allow_list: None,
        }
    }
}

/// Throttles. "Per day" is the UTC calendar day of the runner's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Throttle {
    /// Commands per day, in all.
    pub per_day: u64,
    /// Commands per day per comms hub.
    pub per_hub_per_day: u64,
    /// Commands per day per CSP region (default for regions not listed in `per_region`).
    pub per_region_per_day: u64,
    /// Per-region overrides of `per_region_per_day`.
    pub per_region: BTreeMap<String, u64>,
    /// Commands selected or sent and not yet answered, at most.
    pub max_in_flight: u64,
    /// Devices selected per batch (one runner step), at most.
    pub batch_size: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            per_day: 100_000,
            per_hub_per_day: 1,
            per_region_per_day: 40_000,
            per_region: BTreeMap::new(),
            max_in_flight: 5_000,
            batch_size: 1_000,
        }
    }
}

impl Throttle {
    /// The daily cap of a region.
    pub fn region_cap(&self, region: Option<&str>) -> u64 {
        region
            .and_then(|r| self.per_region.get(r).copied())
            .unwrap_or(self.per_region_per_day)
    }
}

/// Backoff and limit for one failure class (fields left out take the `other` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassPolicy {
    /// Delay before the first retry, seconds.
    pub base_delay_s: u64,
    /// Multiplier per further failure of this class (1 = fixed delay).
    pub factor: f64,
    /// Longest delay, seconds.
    pub max_delay_s: u64,
    /// Failures of this class after which the device leaves the migration.
    pub max_failures: u32,
    /// Where it goes then.
    pub on_limit: OnLimit,
}

impl Default for ClassPolicy {
    fn default() -> Self {
        ClassPolicy {
            base_delay_s: 3600,
            factor: 2.0,
            max_delay_s: 86_400,
            max_failures: 3,
            on_limit: OnLimit::Excluded,
        }
    }
}

/// Where a device goes when a class's limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnLimit {
    /// `excluded`, reported with the reason.
    Excluded,
    /// `failed-permanent`.
    FailedPermanent,
}

/// The Migration Retry Strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all after which a device is excluded (MEHRS: "at least five").
    pub max_attempts: u32,
    /// No response (WAN time-out, transport error).
    pub wan: ClassPolicy,
    /// resourcesBusy (30) or insufficientMemory (17).
    pub busy: ClassPolicy,
    /// badCertificate (5) or noTrustAnchor (10).
    pub certificate: ClassPolicy,
    /// Any other status, or a success without the ECoS certificate.
    pub other: ClassPolicy,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let exp = |base, max| ClassPolicy {
            base_delay_s: base,
            factor: 2.0,
            max_delay_s: max,
            max_failures: 5,
            on_limit: OnLimit::Excluded,
        };
        RetryPolicy {
            max_attempts: 5,
            wan: exp(3600, 86_400),
            busy: exp(900, 21_600),
            certificate: ClassPolicy {
                base_delay_s: 3600,
                factor: 1.0,
                max_delay_s: 3600,
                max_failures: 2,
                on_limit: OnLimit::FailedPermanent,
            },
            other: ClassPolicy {
                base_delay_s: 3600,
                factor: 2.0,
                max_delay_s: 86_400,
                max_failures: 3,
                on_limit: OnLimit::Excluded,
            },
        }
    }
}

impl RetryPolicy {
    /// The policy of a class.
    pub fn of(&self, class: FailureClass) -> &ClassPolicy {
        match class {
            FailureClass::Wan => &self.wan,
            FailureClass::Busy => &self.busy,
            FailureClass::Certificate => &self.certificate,
            FailureClass::Other => &self.other,
        }
    }

    fn classes(&self) -> [(FailureClass, &ClassPolicy); 4] {
        [
            (FailureClass::Wan, &self.wan),
            (FailureClass::Busy, &self.busy),
            (FailureClass::Certificate, &self.certificate),
            (FailureClass::Other, &self.other),
        ]
    }
}

/// After go-live, devices added with the transitional credential are an exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplyChain {
    /// The ECoS go-live instant (`None`: the rule is off).
    pub go_live: Option<Timestamp>,
    /// What happens to a transitional device added after it.
    pub on_transitional_after_go_live: OnTransitional,
}

impl Default for SupplyChain {
    fn default() -> Self {
        SupplyChain {
            go_live: None,
            on_transitional_after_go_live: OnTransitional::Refuse,
        }
    }
}

/// See [`SupplyChain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTransitional {
    /// Not added to the inventory; reported.
    Refuse,
    /// Added, and queued for migration at once (a candidate, reported).
    AcceptAndQueue,
}
