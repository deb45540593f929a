//! `ecos migrate plan`: what would be selected now, and when the whole population would
//! finish at the configured throttles and an observed failure rate. Reads only.

use std::collections::BTreeMap;

use ecos_store::Store;
use ecos_store::migration::MigrationView;
use jiff::{SignedDuration, Timestamp};

use crate::MigrationError;
use crate::config::MigrationConfig;
use crate::runner::PAGE;
use crate::select::{Budget, Verdict, form_batch, verdict};

/// The plan.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Devices scanned (transitional or tracked).
    pub scanned: u64,
    /// Already migrated or left the migration, or in flight / waiting to retry.
    pub skipped: u64,
    /// Not eligible now, by reason.
    pub not_eligible: BTreeMap<String, u64>,
    /// Candidates now.
    pub candidates: u64,
    /// Candidates with a switch coming.
    pub candidates_with_switch: u64,
    /// Candidates by region.
    pub candidates_by_region: BTreeMap<String, u64>,
    /// The next batch (EUIs, in order), if the runner stepped now.
    pub next_batch: Vec<String>,
    /// The failure rate assumed (share of attempts that fail and are retried).
    pub failure_rate: f64,
    /// Commands needed for every candidate: `candidates / (1 - failure_rate)`.
    pub commands_needed: u64,
    /// Days to finish, bound by the daily, per-region and per-hub throttles.
    pub days: u64,
    /// Which throttle binds.
    pub binding: String,
    /// When it would finish.
    pub finish: Option<Timestamp>,
}

/// Scan the inventory and compute the plan at `now`.
pub async fn plan(
    store: &Store,
    config: &MigrationConfig,
    now: Timestamp,
    failure_rate: f64,
) -> Result<Plan, MigrationError> {
    if !(0.0..1.0).contains(&failure_rate) {
        return Err(MigrationError::Config(format!(
            "failure rate {failure_rate} must be in [0, 1)"
        )));
    }
    let mut p = Plan {
        failure_rate,
        ..Plan::default()
    };
    // The comms hub of every candidate, as an integer (8 bytes a device: a map of hub
    // strings cost ~100 bytes a hub at 30M devices); sorted and counted after the scan.
    let mut hubs: Vec<u64> = Vec::new();
    let switch_from = store.as_of_date(now);
    let keep = (config.throttle.batch_size as usize)
        .saturating_mul(4)
        .max(16);
    let mut first: Vec<MigrationView> = Vec::new();
    let mut after = None;
    loop {
        let page = store.migration_view_page(after, PAGE, switch_from).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.eui);
        for v in page {
            p.scanned += 1;
            match verdict(&config.eligibility, &v, now) {
                Verdict::Skip => p.skipped += 1,
                Verdict::NotEligible(why) => *p.not_eligible.entry(why).or_default() += 1,
                Verdict::Candidate => {
                    p.candidates += 1;
                    if v.switch_coming {
                        p.candidates_with_switch += 1;
                    }
                    *p.candidates_by_region
                        .entry(v.csp_region.clone().unwrap_or_else(|| "-".into()))
                        .or_default() += 1;
                    if let Some(h) = v.comms_hub {
                        hubs.push(h.to_u64());
                    }
                    if first.len() < keep || (config.prioritise_switch_coming && v.switch_coming) {
                        first.push(v);
                    }
                }
            }
        }
    }
    let counts = store.migration_counts().await?;
    let in_flight = counts.in_flight();
    let s = now.as_second();
    let day = Timestamp::from_second(s - s.rem_euclid(86_400)).unwrap_or(now);
    let first_hubs: Vec<ecos_smki::Eui64> = first.iter().filter_map(|v| v.comms_hub).collect();
    let sent_today = store.migration_sent_on(day, &first_hubs).await?;
    let mut budget = Budget::new(&config.throttle, &sent_today, in_flight);
    p.next_batch = form_batch(
        first.iter().collect(),
        &mut budget,
        config.prioritise_switch_coming,
    )
    .iter()
    .map(|v| v.eui.to_string())
    .collect();

    let inflate = |n: u64| ((n as f64) / (1.0 - failure_rate)).ceil() as u64;
    p.commands_needed = inflate(p.candidates);
    let days_at = |need: u64, rate: u64| {
        if rate == 0 {
            u64::MAX
        } else {
            need.div_ceil(rate)
        }
    };
    let t = &config.throttle;
    let mut days = days_at(p.commands_needed, t.per_day);
    p.binding = "per_day".into();
    for (r, n) in &p.candidates_by_region {
        let d = days_at(
            inflate(*n),
            t.region_cap(Some(r.as_str()).filter(|r| *r != "-")),
        );
        if d > days {
            days = d;
            p.binding = format!("per_region[{r}]");
        }
    }
    if let Some((h, n)) = busiest(hubs) {
        let d = days_at(inflate(n), t.per_hub_per_day);
        if d > days {
            days = d;
            p.binding = format!(
                "per_hub_per_day (hub {}: {n} devices)",
                ecos_smki::Eui64::from_u64(h).to_compact()
            );
        }
    }
    p.days = if p.candidates == 0 { 0 } else { days };
    p.finish = i64::try_from(p.days)
        .ok()
        .and_then(|d| d.checked_mul(86_400))
        .and_then(|s| now.checked_add(SignedDuration::from_secs(s)).ok());
    Ok(p)
}

/// The hub with the most devices in `hubs` (the last such in hub order) and its count.
fn busiest(mut hubs: Vec<u64>) -> Option<(u64, u64)> {
    hubs.sort_unstable();
    let mut best: Option<(u64, u64)> = None;
    for run in hubs.chunk_by(|a, b| a == b) {
        let n = run.len() as u64;
        if best.is_none_or(|(_, m)| n >= m) {
            best = Some((run[0], n));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #[test]
    fn busiest_hub_is_the_longest_run_last_in_hub_order() {
        assert_eq!(super::busiest(vec![]), None);
        assert_eq!(super::busiest(vec![7, 3, 7, 3, 9]), Some((7, 2)));
        assert_eq!(super::busiest(vec![5, 1, 5, 5]), Some((5, 3)));
    }
}
