//! The Device Candidate Selection Engine: eligibility by rules, ordering, and batches that
//! respect the throttles. Pure functions over [`MigrationView`]s; the runner and the
//! planner feed them from the store.

use std::collections::BTreeMap;

use ecos_store::migration::{MigrationView, SentCounts};
use ecos_store::{CosCredential, MigrationState};
use jiff::{SignedDuration, Timestamp};

use crate::config::{Eligibility, Throttle};

/// Why a device is not a candidate now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ineligible {
    /// Its status is not one the rules allow.
    Status(String),
    /// Its type holds no CoS anchor the rules cover.
    DeviceType(String),
    /// No successful contact recorded.
    NoContact,
    /// Last contact too long ago.
    StaleContact {
        /// Whole days since.
        days: i64,
    },
    /// Firmware not on the allow-list.
    Firmware(Option<String>),
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ineligible::Status(s) => write!(f, "status {s}"),
            Ineligible::DeviceType(t) => write!(f, "device type {t}"),
            Ineligible::NoContact => f.write_str("no successful contact"),
            Ineligible::StaleContact { days } => write!(f, "last contact {days} days ago"),
            Ineligible::Firmware(v) => {
                write!(
                    f,
                    "firmware {} not allowed",
                    v.as_deref().unwrap_or("unknown")
                )
            }
        }
    }
}

/// Check the rules (status, type, contact, firmware) for a device at `now`.
pub fn check(rules: &Eligibility, v: &MigrationView, now: Timestamp) -> Result<(), Ineligible> {
    if !rules.statuses.contains(&v.status) {
        return Err(Ineligible::Status(v.status.to_string()));
    }
    if !rules.device_types.contains(&v.device_type) {
        return Err(Ineligible::DeviceType(v.device_type.to_string()));
    }
    if let Some(max) = rules.max_days_since_contact {
        let Some(last) = v.last_contact else {
            return Err(Ineligible::NoContact);
        };
        let age = now.duration_since(last);
        if age > SignedDuration::from_hours(24 * i64::from(max)) {
            return Err(Ineligible::StaleContact {
                days: age.as_hours() / 24,
            });
        }
    }
    if let Some(allow) = &rules.firmware_allow_list {
        if !v
            .firmware_version
            .as_ref()
            .is_some_and(|f| allow.iter().any(|a| a == f))
        {
            return Err(Ineligible::Firmware(v.firmware_version.clone()));
        }
    }
    Ok(())
}

/// What the engine makes of a device now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do (migrated, terminal, in flight, waiting to retry, or not on the
    /// transitional credential).
    Skip,
    /// Should be `not-eligible` with this reason.
    NotEligible(String),
    /// A candidate.
    Candidate,
}

/// Classify a device: its record's state and the rules.
pub fn verdict(rules: &Eligibility, v: &MigrationView, now: Timestamp) -> Verdict {
    if let Some(r) = &v.record {
        match r.state {
            MigrationState::NotEligible | MigrationState::Candidate | MigrationState::Paused => {}
            _ => return Verdict::Skip,
        }
    }
    if v.cos_credential != Some(CosCredential::Transitional) {
        return Verdict::Skip;
    }
    match check(rules, v, now) {
        Ok(()) => Verdict::Candidate,
        Err(e) => Verdict::NotEligible(e.to_string()),
    }
}

/// The ordering key: switch coming first (if prioritised), then EUI.
pub fn order_key(v: &MigrationView, prioritise_switch: bool) -> (bool, ecos_smki::Eui64) {
    (!(prioritise_switch && v.switch_coming), v.eui)
}

/// Room left under the throttles for today.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    total: u64,
    hub_used: BTreeMap<String, u64>,
    region_used: BTreeMap<String, u64>,
    per_hub: u64,
    throttle: Throttle,
}

impl Budget {
    /// The budget for the rest of the day given what was sent today and how many commands
    /// are in flight.
    pub fn new(throttle: &Throttle, sent_today: &SentCounts, in_flight: u64) -> Budget {
        let day_left = throttle.per_day.saturating_sub(sent_today.total);
        let flight_left = throttle.max_in_flight.saturating_sub(in_flight);
        Budget {
            total: day_left.min(flight_left).min(throttle.batch_size),
            hub_used: sent_today.by_hub.clone(),
            region_used: sent_today.by_region.clone(),
            per_hub: throttle.per_hub_per_day,
            throttle: throttle.clone(),
        }
    }

    /// Whether anything more may be selected.
    pub fn is_exhausted(&self) -> bool {
        self.total == 0
    }

    /// Take one slot for the device if every throttle allows it.
    pub fn take(&mut self, v: &MigrationView) -> bool {
        if self.total == 0 {
            return false;
        }
        let hub = v.comms_hub.map(|h| h.to_compact());
        if let Some(h) = &hub {
            if self.hub_used.get(h).copied().unwrap_or(0) >= self.per_hub {
                return false;
            }
        }
        let region = v.csp_region.as_deref();
        let rkey = region.unwrap_or("-").to_string();
        if self.region_used.get(&rkey).copied().unwrap_or(0) >= self.throttle.region_cap(region) {
            return false;
        }
        self.total -= 1;
        if let Some(h) = hub {
            *self.hub_used.entry(h).or_default() += 1;
        }
        *self.region_used.entry(rkey).or_default() += 1;
        true
    }
}

/// Form a batch from candidates (any order): sort by [`order_key`], then take each one
/// the budget allows.
pub fn form_batch<'a>(
    mut candidates: Vec<&'a MigrationView>,
    budget: &mut Budget,
    prioritise_switch: bool,
) -> Vec<&'a MigrationView> {
    candidates.sort_by_key(|v| order_key(v, prioritise_switch));
    let mut out = Vec::new();
    for v in candidates {
        if budget.is_exhausted() {
            break;
        }
        if budget.take(v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecos_smki::Eui64;
    use ecos_store::{DeviceStatus, DeviceType};

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn view(i: u64, hub: u64, region: &str) -> MigrationView {
        MigrationView {
            eui: Eui64::from_u64(i),
            device_type: DeviceType::Esme,
            status: DeviceStatus::Commissioned,
            mpxn: None,
            cos_credential: Some(CosCredential::Transitional),
            comms_hub: Some(Eui64::from_u64(1000 + hub)),
            csp_region: Some(region.into()),
            firmware_version: Some("4.2.0".into()),
            last_contact: Some("2026-05-30T00:00:00Z".parse().unwrap()),
            switch_coming: false,
            record: None,
        }
    }

    #[test]
    fn each_rule_is_applied() {
        let mut rules = Eligibility::default();
        let v = view(1, 1, "north");
        assert_eq!(verdict(&rules, &v, now()), Verdict::Candidate);
        let mut s = v.clone();
        s.status = DeviceStatus::Suspended;
        assert_eq!(
            verdict(&rules, &s, now()),
            Verdict::NotEligible("status suspended".into())
        );
        let mut c = v.clone();
        c.last_contact = Some("2026-04-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            verdict(&rules, &c, now()),
            Verdict::NotEligible("last contact 61 days ago".into())
        );
        c.last_contact = None;
        assert!(matches!(
            verdict(&rules, &c, now()),
            Verdict::NotEligible(_)
        ));
        rules.firmware_allow_list = Some(vec!["4.3.0".into()]);
        assert_eq!(
            verdict(&rules, &v, now()),
            Verdict::NotEligible("firmware 4.2.0 not allowed".into())
        );
        let mut e = v.clone();
        e.cos_credential = Some(CosCredential::Enduring);
        assert_eq!(verdict(&rules, &e, now()), Verdict::Skip);
        let mut h = view(2, 1, "north");
        h.device_type = DeviceType::Chf;
        assert!(matches!(
            verdict(&Eligibility::default(), &h, now()),
            Verdict::NotEligible(_)
        ));
    }

    #[test]
    fn batches_respect_every_throttle_and_put_switches_first() {
        let throttle = Throttle {
            per_day: 100,
            per_hub_per_day: 1,
            per_region_per_day: 3,
            per_region: [("south".to_string(), 1)].into_iter().collect(),
            max_in_flight: 5,
            batch_size: 100,
        };
        // 10 devices: two per hub; 6 north, 4 south; device 9 has a switch coming.
        let mut vs: Vec<MigrationView> = (0..10)
            .map(|i| view(i, i / 2, if i < 6 { "north" } else { "south" }))
            .collect();
        vs[9].switch_coming = true;
        let mut b = Budget::new(&throttle, &SentCounts::default(), 0);
        let batch = form_batch(vs.iter().collect(), &mut b, true);
        let ids: Vec<u64> = batch.iter().map(|v| v.eui.to_u64()).collect();
        // 9 first (south, uses the south cap of 1), then one per hub in the north (0, 2, 4).
        assert_eq!(ids, vec![9, 0, 2, 4]);
        // In flight caps the batch.
        let mut b = Budget::new(&throttle, &SentCounts::default(), 4);
        assert_eq!(form_batch(vs.iter().collect(), &mut b, true).len(), 1);
        // What was sent today counts.
        let mut sent = SentCounts {
            total: 100,
            ..Default::default()
        };
        let mut b = Budget::new(&throttle, &sent, 0);
        assert!(form_batch(vs.iter().collect(), &mut b, true).is_empty());
        sent.total = 1;
        sent.by_hub.insert(Eui64::from_u64(1000).to_compact(), 1);
        let mut b = Budget::new(&throttle, &sent, 0);
        let ids: Vec<u64> = form_batch(vs.iter().collect(), &mut b, false)
            .iter()
            .map(|v| v.eui.to_u64())
            .collect();
        assert_eq!(
            ids,
            vec![2, 4, 6],
            "hub 1000 used today; 6 takes the south slot"
        );
    }
}
