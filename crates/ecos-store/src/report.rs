//! Reports over what the store has recorded: failure analysis of refused 6.23 requests,
//! traffic and device round-trip latency over time, migration progress over time and its
//! retry backlog, and the service users. `ecos report` and the dashboard read these.
//!
//! # Where decisions are read from
//!
//! The audit log, not the requests table. Every decision of the 6.23 pipeline is an audit
//! entry by actor [`PIPELINE_ACTOR`] with action [`ACTION_ACCEPTED`] or [`ACTION_REFUSED`];
//! its subject is the RequestID (`originator:target:counter`, or `(unreadable request)`
//! when none could be read) and, for a refusal, its detail is a JSON object
//! `{"reason", "check", "response_code", "message", "evidence"}`. The requests table holds
//! only refusals of authenticated requests (a forged document must not occupy a
//! RequestID); the audit log holds them all. A refusal's service user is the RequestID's
//! originator: for refusals at the signature or signer check it is as claimed, not proven
//! (see [`FailureExample::check`]).
//!
//! Every report covers a [`Window`] `[since, until)` of instants; time series cut it into
//! buckets of a whole number of seconds counted from `since`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ecos_smki::Eui64;
use jiff::Timestamp;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::model::ServiceUser;
use crate::mpxn::Mpxn;
use crate::store::{Backend, Store, corrupt, micros_to_ts, on_pool, ts_to_micros};

/// The audit actor of the 6.23 pipeline's decisions.
pub const PIPELINE_ACTOR: &str = "ecos-party";
/// The audit action of an accepted 6.23.
pub const ACTION_ACCEPTED: &str = "accepted";
/// The audit action of a refused 6.23.
pub const ACTION_REFUSED: &str = "refused";
/// The reason reported for a refusal whose audit detail is not the pipeline's JSON.
pub const UNREADABLE_DETAIL: &str = "(unreadable audit detail)";
/// The service user reported when the RequestID could not be read.
pub const UNKNOWN_USER: &str = "(unknown)";
/// The most buckets one time series may have.
pub const MAX_BUCKETS: u64 = 5_000;
/// The most requests one latency report reads.
pub const MAX_LATENCY_ROWS: u32 = 200_000;

/// A span of time `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// First instant included.
    pub since: Timestamp,
    /// First instant after the window.
    pub until: Timestamp,
}

impl Window {
    /// A window; `since` must be before `until`. Both are kept to the microsecond (the
    /// store's precision).
    pub fn new(since: Timestamp, until: Timestamp) -> Result<Window> {
        let micro = |t: Timestamp| Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t);
        let (since, until) = (micro(since), micro(until));
        if since >= until {
            return Err(StoreError::Invalid(format!(
                "time window: since ({since}) must be before until ({until})"
            )));
        }
        Ok(Window { since, until })
    }

    /// The `width` up to `until`.
    pub fn last(width: jiff::SignedDuration, until: Timestamp) -> Result<Window> {
        let since = until
            .checked_sub(width)
            .map_err(|e| StoreError::Invalid(format!("time window: {e}")))?;
        Window::new(since, until)
    }

    fn micros(&self) -> (i64, i64) {
        (ts_to_micros(self.since), ts_to_micros(self.until))
    }

    /// Check a bucket width against the window; returns (width in µs, number of buckets).
    fn buckets(&self, bucket_secs: u64) -> Result<(i64, u64)> {
        if bucket_secs == 0 {
            return Err(StoreError::Invalid(
                "bucket width must be at least one second".into(),
            ));
        }
        let (a, b) = self.micros();
        let width = i64::try_from(bucket_secs)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .ok_or_else(|| StoreError::Invalid(format!("bucket width {bucket_secs}s too large")))?;
        let n = ((b - a) as u64).div_ceil(width as u64);
        if n > MAX_BUCKETS {
            return Err(StoreError::Invalid(format!(
                "{n} buckets of {bucket_secs}s in the window: at most {MAX_BUCKETS}; use wider buckets"
            )));
        }
        Ok((width, n))
    }

    fn bucket_start(&self, width: i64, i: u64) -> Timestamp {
        Timestamp::from_microsecond(ts_to_micros(self.since) + width * i as i64)
            .unwrap_or(self.until)
    }
}

/// One refusal, as an example of its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureExample {
    /// The audit entry's sequence number.
    pub seq: u64,
    /// The RequestID (or `(unreadable request)`).
    pub request_id: String,
    /// When it was refused.
    pub at: Timestamp,
    /// The originator named by the RequestID (hyphenated EUI-64), or [`UNKNOWN_USER`].
    pub service_user: String,
    /// The reason code (`mpid_not_registered`, ...).
    pub reason: String,
    /// The check that refused it (`read_and_signature`, `signer`, `mpid`, ...), when
    /// recorded. At `read_and_signature` and `signer` the originator is unproven.
    pub check: Option<String>,
    /// The DUIS response code answered.
    pub response_code: Option<String>,
    /// The reason in words.
    pub message: String,
    /// The reason's evidence (the pipeline's JSON).
    pub evidence: serde_json::Value,
}

/// Refusals with one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonGroup {
    /// The reason code.
    pub reason: String,
    /// The check it belongs to (from the latest refusal).
    pub check: Option<String>,
    /// The response code answered (from the latest refusal).
    pub response_code: Option<String>,
    /// How many.
    pub count: u64,
    /// How many distinct service users.
    pub service_users: u64,
    /// The first and the last.
    pub first: Timestamp,
    /// The last.
    pub last: Timestamp,
    /// The latest few, newest last.
    pub examples: Vec<FailureExample>,
}

/// Decisions for one service user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceUserGroup {
    /// The originator (hyphenated EUI-64), or [`UNKNOWN_USER`].
    pub service_user: String,
    /// Its name, when it is a registered service user.
    pub name: Option<String>,
    /// Accepted requests.
    pub accepted: u64,
    /// Refused requests.
    pub refused: u64,
    /// Refusals by reason.
    pub reasons: BTreeMap<String, u64>,
    /// The latest few refusals, newest last.
    pub examples: Vec<FailureExample>,
}

/// Refused requests in a window, by reason and by service user, with examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    /// The window.
    pub window: Window,
    /// Accepted requests in it.
    pub accepted: u64,
    /// Refused requests in it.
    pub refused: u64,
    /// By reason, most frequent first.
    pub by_reason: Vec<ReasonGroup>,
    /// By service user, most refusals first.
    pub by_service_user: Vec<ServiceUserGroup>,
}

/// Decisions in one bucket of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficBucket {
    /// Its first instant.
    pub start: Timestamp,
    /// Accepted requests.
    pub accepted: u64,
    /// Refused requests.
    pub refused: u64,
    /// Refusals by reason.
    pub refused_by_reason: BTreeMap<String, u64>,
}

/// Decisions over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficSeries {
    /// The window.
    pub window: Window,
    /// Bucket width in seconds.
    pub bucket_secs: u64,
    /// Every bucket of the window, in order (empty ones included).
    pub buckets: Vec<TrafficBucket>,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyStats {
    /// How many.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencyStats {
    /// Nearest-rank percentiles of `ms` (sorted in place); `None` when empty.
    pub fn of(ms: &mut [f64]) -> Option<LatencyStats> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Some(LatencyStats {
            count: ms.len() as u64,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            max_ms: ms[ms.len() - 1],
        })
    }
}

/// Device round trips (request recorded → device outcome recorded) over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySeries {
    /// The window (by the request's recording instant).
    pub window: Window,
    /// Bucket width in seconds.
    pub bucket_secs: u64,
    /// The whole window.
    pub overall: Option<LatencyStats>,
    /// Each bucket that has requests: (start, stats).
    pub buckets: Vec<(Timestamp, LatencyStats)>,
    /// Whether [`MAX_LATENCY_ROWS`] cut the read short.
    pub truncated: bool,
}

/// Migration transitions over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationBucket {
    /// Its first instant.
    pub start: Timestamp,
    /// Transitions into each state.
    pub entered: BTreeMap<String, u64>,
    /// Devices migrated up to the end of this bucket (since the migration began).
    pub migrated_total: u64,
}

/// Migration progress over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationProgress {
    /// The window.
    pub window: Window,
    /// Bucket width in seconds.
    pub bucket_secs: u64,
    /// Devices migrated before the window.
    pub migrated_before: u64,
    /// Every bucket of the window, in order.
    pub buckets: Vec<MigrationBucket>,
}

/// Devices waiting to retry the migration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RetryBacklog {
    /// In `retry-waiting`.
    pub waiting: u64,
    /// Of which due (next attempt at or before now).
    pub due: u64,
    /// By failure class (`-` when none is recorded).
    pub by_class: BTreeMap<String, u64>,
    /// The earliest next attempt.
    pub next_at: Option<Timestamp>,
}

/// What one refusal's audit entry says.
struct Refusal {
    seq: u64,
    at: Timestamp,
    subject: String,
    detail: serde_json::Map<String, serde_json::Value>,
}

impl Refusal {
    fn reason(&self) -> String {
        self.field("reason")
            .unwrap_or_else(|| UNREADABLE_DETAIL.to_string())
    }

    fn field(&self, name: &str) -> Option<String> {
        self.detail
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    fn service_user(&self) -> String {
        originator_of(&self.subject)
    }

    fn example(&self) -> FailureExample {
        FailureExample {
            seq: self.seq,
            request_id: self.subject.clone(),
            at: self.at,
            service_user: self.service_user(),
            reason: self.reason(),
            check: self.field("check"),
            response_code: self.field("response_code"),
            message: self.field("message").unwrap_or_default(),
            evidence: self
                .detail
                .get("evidence")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The originator of a RequestID (`originator:target:counter`) as a hyphenated EUI-64,
/// or [`UNKNOWN_USER`].
pub fn originator_of(request_id: &str) -> String {
    request_id
        .split(':')
        .next()
        .and_then(|o| o.parse::<Eui64>().ok())
        .map(|e| e.to_string())
        .unwrap_or_else(|| UNKNOWN_USER.to_string())
}

fn push_example(q: &mut VecDeque<FailureExample>, e: FailureExample, keep: usize) {
    if keep == 0 {
        return;
    }
    if q.len() == keep {
        q.pop_front();
    }
    q.push_back(e);
}

/// Rows read per page of a scan.
const PAGE: i64 = 2_000;

impl Store {
    /// Visit every refusal in `window`, in audit order, a page at a time.
    async fn scan_refusals(&self, window: Window, mut visit: impl FnMut(Refusal)) -> Result<()> {
        let (a, b) = window.micros();
        let mut after = 0i64;
        loop {
            let rows: Vec<(i64, i64, String, String)> = on_pool!(self, |p| sqlx::query_as(
                "SELECT seq, at, subject, detail FROM audit_log WHERE action = $1 AND at >= $2 \
                 AND at < $3 AND actor = $4 AND seq > $5 ORDER BY seq LIMIT $6"
            )
            .bind(ACTION_REFUSED)
            .bind(a)
            .bind(b)
            .bind(PIPELINE_ACTOR)
            .bind(after)
            .bind(PAGE)
            .fetch_all(p)
            .await?);
            let full = rows.len() as i64 == PAGE;
            for (seq, at, subject, detail) in rows {
                after = seq;
                let detail = match serde_json::from_str::<serde_json::Value>(&detail) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                visit(Refusal {
                    seq: seq as u64,
                    at: micros_to_ts("audit_log", "at", at)?,
                    subject,
                    detail,
                });
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Accepted decisions in `window` grouped by (bucket index, originator text); bucket
    /// width `width` µs (or one bucket for the whole window when `None`).
    async fn accepted_counts(
        &self,
        window: Window,
        width: Option<i64>,
    ) -> Result<Vec<(i64, String, u64)>> {
        let (a, b) = window.micros();
        // The originator is the RequestID up to its first colon.
        let find = match self.backend {
            Backend::Sqlite(_) => "instr(subject, ':')",
            Backend::Postgres(_) => "strpos(subject, ':')",
        };
        let sql = format!(
            "SELECT (at - $1) / $2 AS bucket, CASE WHEN {find} > 0 THEN substr(subject, 1, {find} - 1) \
             ELSE subject END AS originator, COUNT(*) FROM audit_log WHERE action = $3 AND at >= $1 \
             AND at < $4 AND actor = $5 GROUP BY bucket, originator"
        );
        let rows: Vec<(i64, String, i64)> =
            on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(a)
                .bind(width.unwrap_or(i64::MAX))
                .bind(ACTION_ACCEPTED)
                .bind(b)
                .bind(PIPELINE_ACTOR)
                .fetch_all(p)
                .await?);
        Ok(rows
            .into_iter()
            .map(|(k, o, n)| (k, originator_of(&o), n.max(0) as u64))
            .collect())
    }

    /// Refused 6.23 requests in `window` grouped by reason and by service user, with the
    /// latest `examples` refusals of each group (see the [module docs](self) for the source).
    pub async fn failure_report(&self, window: Window, examples: usize) -> Result<FailureReport> {
        struct R {
            check: Option<String>,
            code: Option<String>,
            count: u64,
            users: BTreeSet<String>,
            first: Timestamp,
            last: Timestamp,
            examples: VecDeque<FailureExample>,
        }
        #[derive(Default)]
        struct U {
            accepted: u64,
            refused: u64,
            reasons: BTreeMap<String, u64>,
            examples: VecDeque<FailureExample>,
        }
        let mut reasons: BTreeMap<String, R> = BTreeMap::new();
        let mut users: BTreeMap<String, U> = BTreeMap::new();
        let mut refused = 0u64;
        self.scan_refusals(window, |r| {
            refused += 1;
            let reason = r.reason();
            let user = r.service_user();
            let g = reasons.entry(reason.clone()).or_insert_with(|| R {
                check: None,
                code: None,
                count: 0,
                users: BTreeSet::new(),
                first: r.at,
                last: r.at,
                examples: VecDeque::new(),
            });
            g.count += 1;
            g.users.insert(user.clone());
            g.first = g.first.min(r.at);
            g.last = g.last.max(r.at);
            g.check = r.field("check").or(g.check.take());
            g.code = r.field("response_code").or(g.code.take());
            let ex = r.example();
            push_example(&mut g.examples, ex.clone(), examples);
            let u = users.entry(user).or_default();
            u.refused += 1;
            *u.reasons.entry(reason).or_default() += 1;
            push_example(&mut u.examples, ex, examples);
        })
        .await?;
        let mut accepted = 0u64;
        for (_, user, n) in self.accepted_counts(window, None).await? {
            accepted += n;
            users.entry(user).or_default().accepted += n;
        }
        let names: BTreeMap<String, String> = self
            .service_users()
            .await?
            .into_iter()
            .map(|u| (u.org_eui.to_string(), u.name))
            .collect();
        let mut by_reason: Vec<ReasonGroup> = reasons
            .into_iter()
            .map(|(reason, g)| ReasonGroup {
                reason,
                check: g.check,
                response_code: g.code,
                count: g.count,
                service_users: g.users.len() as u64,
                first: g.first,
                last: g.last,
                examples: g.examples.into(),
            })
            .collect();
        by_reason.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        let mut by_service_user: Vec<ServiceUserGroup> = users
            .into_iter()
            .map(|(service_user, u)| ServiceUserGroup {
                name: names.get(&service_user).cloned(),
                service_user,
                accepted: u.accepted,
                refused: u.refused,
                reasons: u.reasons,
                examples: u.examples.into(),
            })
            .collect();
        by_service_user.sort_by(|a, b| {
            b.refused
                .cmp(&a.refused)
                .then_with(|| b.accepted.cmp(&a.accepted))
                .then_with(|| a.service_user.cmp(&b.service_user))
        });
        Ok(FailureReport {
            window,
            accepted,
            refused,
            by_reason,
            by_service_user,
        })
    }

    /// Accepted and refused 6.23 requests in `window`, per bucket of `bucket_secs`
    /// seconds, refusals by reason.
    pub async fn traffic_series(&self, window: Window, bucket_secs: u64) -> Result<TrafficSeries> {
        let (width, n) = window.buckets(bucket_secs)?;
        let mut buckets: Vec<TrafficBucket> = (0..n)
            .map(|i| TrafficBucket {
                start: window.bucket_start(width, i),
                accepted: 0,
                refused: 0,
                refused_by_reason: BTreeMap::new(),
            })
            .collect();
        let since = ts_to_micros(window.since);
        let last = buckets.len() - 1;
        let index = |at: i64| (((at - since) / width) as usize).min(last);
        for (k, _, c) in self.accepted_counts(window, Some(width)).await? {
            buckets[(k.max(0) as usize).min(last)].accepted += c;
        }
        let mut refusals = Vec::new();
        self.scan_refusals(window, |r| refusals.push((ts_to_micros(r.at), r.reason())))
            .await?;
        for (at, reason) in refusals {
            let i = index(at);
            buckets[i].refused += 1;
            *buckets[i].refused_by_reason.entry(reason).or_default() += 1;
        }
        Ok(TrafficSeries {
            window,
            bucket_secs,
            buckets,
        })
    }

    /// Device round trips of immediate requests recorded in `window`: from the request's
    /// recording to its device outcome (`completed` or `failed`), per bucket.
    pub async fn device_round_trips(
        &self,
        window: Window,
        bucket_secs: u64,
    ) -> Result<LatencySeries> {
        let (width, n) = window.buckets(bucket_secs)?;
        let (a, b) = window.micros();
        let rows: Vec<(i64, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT created_at, updated_at FROM requests WHERE kind = $1 AND state IN ($2, $3) \
             AND created_at >= $4 AND created_at < $5 ORDER BY created_at LIMIT $6"
        )
        .bind(crate::RequestKind::Immediate.as_str())
        .bind(crate::RequestState::Completed.as_str())
        .bind(crate::RequestState::Failed.as_str())
        .bind(a)
        .bind(b)
        .bind(i64::from(MAX_LATENCY_ROWS))
        .fetch_all(p)
        .await?);
        let truncated = rows.len() as u64 == u64::from(MAX_LATENCY_ROWS);
        let mut all = Vec::with_capacity(rows.len());
        let mut per: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (created, updated) in rows {
            let ms = (updated - created).max(0) as f64 / 1000.0;
            all.push(ms);
            let i = (((created - a) / width) as u64).min(n - 1);
            per.entry(i).or_default().push(ms);
        }
        Ok(LatencySeries {
            window,
            bucket_secs,
            overall: LatencyStats::of(&mut all),
            buckets: per
                .into_iter()
                .filter_map(|(i, mut v)| {
                    LatencyStats::of(&mut v).map(|s| (window.bucket_start(width, i), s))
                })
                .collect(),
            truncated,
        })
    }

    /// The instants of the first and last migration transitions, if any (the span a
    /// migration chart should show).
    pub async fn migration_extent(&self) -> Result<Option<(Timestamp, Timestamp)>> {
        let (lo, hi): (Option<i64>, Option<i64>) = on_pool!(self, |p| sqlx::query_as(
            "SELECT MIN(at), MAX(at) FROM migration_transitions"
        )
        .fetch_one(p)
        .await?);
        match (lo, hi) {
            (Some(lo), Some(hi)) => Ok(Some((
                micros_to_ts("migration_transitions", "at", lo)?,
                micros_to_ts("migration_transitions", "at", hi)?,
            ))),
            _ => Ok(None),
        }
    }

    /// Migration transitions in `window` per bucket, by the state entered, with the running
    /// total of migrated devices.
    pub async fn migration_progress(
        &self,
        window: Window,
        bucket_secs: u64,
    ) -> Result<MigrationProgress> {
        let (width, n) = window.buckets(bucket_secs)?;
        let (a, b) = window.micros();
        let before: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM migration_transitions WHERE to_state = $1 AND at < $2"
        )
        .bind(crate::MigrationState::Migrated.as_str())
        .bind(a)
        .fetch_one(p)
        .await?);
        let rows: Vec<(i64, String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT (at - $1) / $2 AS bucket, to_state, COUNT(*) FROM migration_transitions \
             WHERE at >= $1 AND at < $3 GROUP BY bucket, to_state"
        )
        .bind(a)
        .bind(width)
        .bind(b)
        .fetch_all(p)
        .await?);
        let mut buckets: Vec<MigrationBucket> = (0..n)
            .map(|i| MigrationBucket {
                start: window.bucket_start(width, i),
                entered: BTreeMap::new(),
                migrated_total: 0,
            })
            .collect();
        for (k, state, c) in rows {
            let i = (k.max(0) as usize).min(buckets.len() - 1);
            *buckets[i].entered.entry(state).or_default() += c.max(0) as u64;
        }
        let migrated_before = before.max(0) as u64;
        let mut total = migrated_before;
        for bk in &mut buckets {
            total += bk
                .entered
                .get(crate::MigrationState::Migrated.as_str())
                .copied()
                .unwrap_or(0);
            bk.migrated_total = total;
        }
        Ok(MigrationProgress {
            window,
            bucket_secs,
            migrated_before,
            buckets,
        })
    }

    /// Devices in `retry-waiting`: how many, how many are due at `now`, by failure class.
    pub async fn migration_retry_backlog(&self, now: Timestamp) -> Result<RetryBacklog> {
        let rows: Vec<(Option<String>, Option<i64>)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT failure_class, next_at FROM migration_devices WHERE state = $1"
        )
        .bind(crate::MigrationState::RetryWaiting.as_str())
        .fetch_all(p)
        .await?);
        let now = ts_to_micros(now);
        let mut out = RetryBacklog::default();
        let mut next: Option<i64> = None;
        for (class, at) in rows {
            out.waiting += 1;
            if at.is_none_or(|t| t <= now) {
                out.due += 1;
            }
            if let Some(t) = at {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            *out.by_class
                .entry(class.unwrap_or_else(|| "-".into()))
                .or_default() += 1;
        }
        out.next_at = next
            .map(|t| micros_to_ts("migration_devices", "next_at", t))
            .transpose()?;
        Ok(out)
    }

    /// Every service user, by EUI.
    pub async fn service_users(&self) -> Result<Vec<ServiceUser>> {
        let rows: Vec<(String, String, String, String, String)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT org_eui, name, roles, mpids, response_endpoint FROM service_users \
                 ORDER BY org_eui",
            )
            .fetch_all(p)
            .await?
        });
        let list = |s: &str| -> Vec<String> {
            s.split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        };
        rows.into_iter()
            .map(|(e, name, roles, mpids, ep)| {
                Ok(ServiceUser {
                    org_eui: e
                        .parse()
                        .map_err(|_| corrupt("service_users", "org_eui", &e))?,
                    name,
                    roles: list(&roles),
                    mpids: list(&mpids),
                    response_endpoint: ep,
                })
            })
            .collect()
    }

    /// The MPxNs with a registration period for one of `mpids` that has not ended before
    /// `from`, in order, at most `limit` (one scan of the registration table: there is no
    /// index on the supplier).
    pub async fn mpxns_supplied_by(
        &self,
        mpids: &BTreeSet<String>,
        from: jiff::civil::Date,
        limit: u32,
    ) -> Result<Vec<Mpxn>> {
        if mpids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (0..mpids.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT DISTINCT mpxn FROM registration WHERE supplier_mpid IN ({list}) \
             AND (effective_to IS NULL OR effective_to = '' OR effective_to >= $1) \
             ORDER BY mpxn LIMIT $2"
        );
        let rows: Vec<String> = on_pool!(self, |p| {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .bind(from.to_string())
                .bind(i64::from(limit));
            for m in mpids {
                q = q.bind(m.clone());
            }
            q.fetch_all(p).await?
        });
        rows.iter()
            .map(|m| Mpxn::parse_unchecked(m).map_err(|_| corrupt("registration", "mpxn", m)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originators_and_percentiles() {
        assert_eq!(
            originator_of("90-b3-d5-1f-30-03-00-00:00-DB-12-34-56-78-90-A0:7"),
            "90-B3-D5-1F-30-03-00-00"
        );
        assert_eq!(originator_of("(unreadable request)"), UNKNOWN_USER);
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        let s = LatencyStats::of(&mut v).unwrap();
        assert_eq!((s.count, s.p50_ms, s.p95_ms, s.max_ms), (5, 3.0, 5.0, 5.0));
        assert_eq!(LatencyStats::of(&mut []), None);
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert!(Window::new(t, t).is_err());
        let w = Window::last(jiff::SignedDuration::from_hours(1), t).unwrap();
        assert_eq!(w.buckets(60).unwrap().1, 60);
        assert_eq!(w.buckets(7).unwrap().1, 515, "a partial last bucket counts");
        assert!(w.buckets(0).is_err());
        let day = Window::last(jiff::SignedDuration::from_hours(240), t).unwrap();
        assert!(
            day.buckets(60).unwrap_err().to_string().contains("at most"),
            "too many buckets"
        );
    }
}
