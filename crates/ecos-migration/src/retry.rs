//! The Migration Retry Strategy: failures classified, each class with its own backoff
//! and limit, and a limit on attempts in all.
//!
//! Failure counts per class are kept in the record's `failure_class` column as JSON
//! (`{"wan":1,"busy":2}`).

use std::collections::BTreeMap;

use ecos_gbcs::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::{OnLimit, RetryPolicy};

/// resourcesBusy.
pub const RESOURCES_BUSY: StatusCode = StatusCode(30);
/// insufficientMemory.
pub const INSUFFICIENT_MEMORY: StatusCode = StatusCode(17);

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// No response in time, or the transport refused the command.
    Wan,
    /// The device was busy or out of memory (30, 17).
    Busy,
    /// The device refused the certificate (5 badCertificate, 10 noTrustAnchor).
    Certificate,
    /// Anything else.
    Other,
}

impl FailureClass {
    /// The class of a GBCS status.
    pub fn of_status(s: StatusCode) -> FailureClass {
        match s {
            RESOURCES_BUSY | INSUFFICIENT_MEMORY => FailureClass::Busy,
            StatusCode::BAD_CERTIFICATE | StatusCode::NO_TRUST_ANCHOR => FailureClass::Certificate,
            _ => FailureClass::Other,
        }
    }

    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Wan => "wan",
            FailureClass::Busy => "busy",
            FailureClass::Certificate => "certificate",
            FailureClass::Other => "other",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failures so far, by class.
pub type FailureCounts = BTreeMap<FailureClass, u32>;

/// Read the counts from the record's `failure_class` column (absent or unreadable: none).
pub fn read_counts(stored: Option<&str>) -> FailureCounts {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The column text for `counts`.
pub fn write_counts(counts: &FailureCounts) -> String {
    serde_json::to_string(counts).unwrap_or_else(|_| "{}".into())
}

/// What to do after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this instant.
    RetryAt(Timestamp),
    /// Leave the migration: excluded, with the reason.
    Exclude(String),
    /// Leave the migration: failed permanently, with the reason.
    FailPermanently(String),
}

/// Decide after a failure of `class` (already counted in `counts`) with `attempts`
/// commands sent in all.
pub fn decide(
    policy: &RetryPolicy,
    class: FailureClass,
    counts: &FailureCounts,
    attempts: u32,
    now: Timestamp,
) -> RetryDecision {
    let p = policy.of(class);
    let n = counts.get(&class).copied().unwrap_or(0).max(1);
    if n >= p.max_failures {
        let reason = format!("{class}: {n} failures (limit {})", p.max_failures);
        return match p.on_limit {
            OnLimit::Excluded => RetryDecision::Exclude(reason),
            OnLimit::FailedPermanent => RetryDecision::FailPermanently(reason),
        };
    }
    if attempts >= policy.max_attempts {
        return RetryDecision::Exclude(format!(
            "max-attempts: {attempts} attempts (limit {}), last failure {class}",
            policy.max_attempts
        ));
    }
    let delay = (p.base_delay_s as f64) * p.factor.powi(n.saturating_sub(1) as i32);
    let delay = delay.min(p.max_delay_s as f64).max(0.0) as i64;
    let at = now
        .checked_add(SignedDuration::from_secs(delay))
        .unwrap_or(now);
    RetryDecision::RetryAt(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn classes_follow_the_reference() {
        assert_eq!(FailureClass::of_status(StatusCode(30)), FailureClass::Busy);
        assert_eq!(FailureClass::of_status(StatusCode(17)), FailureClass::Busy);
        assert_eq!(
            FailureClass::of_status(StatusCode(5)),
            FailureClass::Certificate
        );
        assert_eq!(
            FailureClass::of_status(StatusCode(10)),
            FailureClass::Certificate
        );
        assert_eq!(FailureClass::of_status(StatusCode(3)), FailureClass::Other);
    }

    #[test]
    fn wan_backs_off_exponentially_then_excludes_at_five_attempts() {
        let p = RetryPolicy::default();
        let mut counts = FailureCounts::new();
        let mut delays = vec![];
        for attempt in 1..=5u32 {
            *counts.entry(FailureClass::Wan).or_default() += 1;
            match decide(&p, FailureClass::Wan, &counts, attempt, t0()) {
                RetryDecision::RetryAt(t) => delays.push(t.duration_since(t0()).as_secs()),
                RetryDecision::Exclude(r) => {
                    assert_eq!(attempt, 5);
                    assert!(r.starts_with("wan: 5 failures"), "{r}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, vec![3600, 7200, 14_400, 28_800]);
    }

    #[test]
    fn certificate_twice_is_permanent_and_mixed_failures_hit_the_attempt_limit() {
        let p = RetryPolicy::default();
        let mut c = FailureCounts::new();
        c.insert(FailureClass::Certificate, 1);
        assert!(matches!(
            decide(&p, FailureClass::Certificate, &c, 1, t0()),
            RetryDecision::RetryAt(_)
        ));
        c.insert(FailureClass::Certificate, 2);
        assert!(matches!(
            decide(&p, FailureClass::Certificate, &c, 2, t0()),
            RetryDecision::FailPermanently(_)
        ));
        let mut c = FailureCounts::new();
        c.insert(FailureClass::Wan, 2);
        c.insert(FailureClass::Busy, 3);
        let d = decide(&p, FailureClass::Busy, &c, 5, t0());
        assert!(
            matches!(&d, RetryDecision::Exclude(r) if r.starts_with("max-attempts")),
            "{d:?}"
        );
        assert_eq!(read_counts(Some(&write_counts(&c))), c);
        assert!(read_counts(Some("garbage")).is_empty());
    }
}
