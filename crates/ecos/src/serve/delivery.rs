//! Asynchronous delivery of DUIS responses and alerts to service users.
//!
//! Producers (the pipeline) push messages into an [`OutboundQueue`]; the
//! [`DeliveryWorker`] POSTs each to its service user's configured endpoint,
//! retrying with exponential backoff, and parks it after the last attempt.
//! Every message also stays readable by polling (`GET /api/v1/responses`)
//! through [`OutboundQueue::read_since`]. [`MemoryQueue`] is the bounded
//! in-process implementation; a store-backed queue can stand behind the same
//! trait so that undelivered messages survive a restart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecos_party::api::BoxFuture;
use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::metrics as m;
use crate::config::DeliveryConfig;

/// A message for a service user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The service user's EUI-64, 16 hex digits (hyphens are accepted and removed).
    pub service_user: String,
    /// The DUIS response or alert document.
    pub body: Vec<u8>,
}

/// Where a queued message stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending {
        /// Not before this instant.
        next_attempt_at: Timestamp,
    },
    /// Claimed by a worker, being posted.
    InFlight,
    /// Accepted by the service user's endpoint.
    Delivered {
        /// When.
        at: Timestamp,
    },
    /// The service user has no endpoint: it reads the message by polling.
    PollOnly,
    /// Given up after the last attempt (an operator may requeue it).
    Parked {
        /// The last error.
        last_error: String,
    },
}

/// A message in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedMessage {
    /// Position in the queue; strictly increasing, the polling cursor.
    pub cursor: u64,
    /// The service user's EUI-64 (16 upper-case hex digits).
    pub service_user: String,
    /// When it was queued.
    pub enqueued_at: Timestamp,
    /// Delivery attempts made.
    pub attempts: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// The document.
    #[serde(skip)]
    pub body: Arc<[u8]>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The endpoint accepted the message.
    Delivered,
    /// The attempt failed; try again at `retry_at`, or park it if `None`.
    Failed {
        /// What went wrong.
        error: String,
        /// When to try again.
        retry_at: Option<Timestamp>,
    },
    /// No endpoint is configured for the service user.
    PollOnly,
}

/// Queue failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue holds `capacity` undelivered messages already.
    #[error("outbound queue full ({capacity} undelivered messages)")]
    Full {
        /// The bound.
        capacity: usize,
    },
    /// The service user is not an EUI-64.
    #[error("service user {0:?} is not an EUI-64 (16 hex digits)")]
    BadServiceUser(String),
    /// No message at that cursor (or it was dropped from retention).
    #[error("no outbound message at cursor {0}")]
    NotFound(u64),
    /// The message is not parked, so it cannot be requeued.
    #[error("outbound message {0} is not parked")]
    NotParked(u64),
    /// The backend failed (store errors).
    #[error("outbound queue backend: {0}")]
    Backend(String),
}

/// Counts for metrics and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Waiting for delivery (pending or in flight).
    pub undelivered: usize,
    /// Parked after the last attempt.
    pub parked: usize,
}

/// A bounded queue of outbound messages. Implementations must be safe to
/// share between the HTTP handlers, the pipeline and the worker.
pub trait OutboundQueue: Send + Sync + 'static {
    /// Queue a message; `Full` when the bound is reached (back-pressure).
    fn push(&self, msg: OutboundMessage) -> BoxFuture<'_, Result<u64, QueueError>>;
    /// Claim up to `max` messages due at `now` (they become `InFlight`).
    fn claim_due(
        &self,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedMessage>, QueueError>>;
    /// Record the outcome of an attempt on a claimed message.
    fn record(&self, cursor: u64, outcome: AttemptOutcome)
    -> BoxFuture<'_, Result<(), QueueError>>;
    /// Messages after `since` (exclusive), oldest first, optionally for one
    /// service user only.
    fn read_since<'a>(
        &'a self,
        service_user: Option<&'a str>,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<QueuedMessage>, QueueError>>;
    /// Put a parked message back in line for delivery.
    fn requeue(&self, cursor: u64, now: Timestamp) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Give back claimed messages that were not attempted (on shutdown).
    fn release(&self, cursors: Vec<u64>) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Current counts.
    fn depth(&self) -> BoxFuture<'_, Result<QueueDepth, QueueError>>;
    /// Resolve when a message may have become due, or after `max_wait`.
    fn wait_for_work(&self, max_wait: Duration) -> BoxFuture<'_, ()>;
}

/// Normalise a service user EUI-64 to 16 upper-case hex digits.
pub fn normalise_eui(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_uppercase())
}

/// The in-process bounded queue: at most `capacity` undelivered messages,
/// and the latest `retention` messages kept readable by polling.
#[derive(Debug)]
pub struct MemoryQueue {
    inner: Mutex<MemInner>,
    notify: Notify,
    capacity: usize,
    retention: usize,
}

#[derive(Debug, Default)]
struct MemInner {
    next_cursor: u64,
    items: BTreeMap<u64, QueuedMessage>,
    order: VecDeque<u64>,
    undelivered: usize,
    parked: usize,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` undelivered messages and keeping
    /// the last `retention` (at least `capacity`) for polling.
    pub fn new(capacity: usize, retention: usize) -> MemoryQueue {
        MemoryQueue {
            inner: Mutex::new(MemInner {
                next_cursor: 1,
                ..MemInner::default()
            }),
            notify: Notify::new(),
            capacity,
            retention: retention.max(capacity),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent
        // because every mutation below is completed before any call that could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gauges(inner: &MemInner) {
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_OUTBOUND).set(inner.undelivered as f64);
        metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_OUTBOUND_PARKED)
            .set(inner.parked as f64);
    }
}

fn is_undelivered(s: &DeliveryState) -> bool {
    matches!(s, DeliveryState::Pending { .. } | DeliveryState::InFlight)
}

impl OutboundQueue for MemoryQueue {
    fn push(&self, msg: OutboundMessage) -> BoxFuture<'_, Result<u64, QueueError>> {
        let r = (|| {
            let user = normalise_eui(&msg.service_user)
                .ok_or_else(|| QueueError::BadServiceUser(msg.service_user.clone()))?;
            let mut g = self.lock();
            if g.undelivered >= self.capacity {
                return Err(QueueError::Full {
                    capacity: self.capacity,
                });
            }
            let cursor = g.next_cursor;
            g.next_cursor += 1;
            let now = Timestamp::now();
            g.items.insert(
                cursor,
                QueuedMessage {
                    cursor,
                    service_user: user,
                    enqueued_at: now,
                    attempts: 0,
                    state: DeliveryState::Pending {
                        next_attempt_at: now,
                    },
                    body: msg.body.into(),
                },
            );
            g.order.push_back(cursor);
            g.undelivered += 1;
            // Drop the oldest settled messages beyond retention.
            while g.order.len() > self.retention {
                let Some(pos) = g
                    .order
                    .iter()
                    .position(|c| g.items.get(c).is_some_and(|i| !is_undelivered(&i.state)))
                else {
                    break;
                };
                if let Some(c) = g.order.remove(pos)
                    && let Some(old) = g.items.remove(&c)
                    && matches!(old.state, DeliveryState::Parked { .. })
                {
                    g.parked -= 1;
                }
            }
            Self::gauges(&g);
            Ok(cursor)
        })();
        if r.is_ok() {
            self.notify.notify_one();
        }
        Box::pin(std::future::ready(r))
    }

    fn claim_due(
        &self,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedMessage>, QueueError>> {
        let mut g = self.lock();
        let mut out = Vec::new();
        for item in g.items.values_mut() {
            if out.len() >= max {
                break;
            }
            if let DeliveryState::Pending { next_attempt_at } = item.state
                && next_attempt_at <= now
            {
                item.state = DeliveryState::InFlight;
                out.push(item.clone());
            }
        }
        Box::pin(std::future::ready(Ok(out)))
    }

    fn record(
        &self,
        cursor: u64,
        outcome: AttemptOutcome,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let r = (|| {
            let mut g = self.lock();
            let item = g
                .items
                .get_mut(&cursor)
                .ok_or(QueueError::NotFound(cursor))?;
            let was_undelivered = is_undelivered(&item.state);
            let now = Timestamp::now();
            item.state = match outcome {
                AttemptOutcome::Delivered => {
                    item.attempts += 1;
                    DeliveryState::Delivered { at: now }
                }
                AttemptOutcome::PollOnly => DeliveryState::PollOnly,
                AttemptOutcome::Failed { error, retry_at } => {
                    item.attempts += 1;
                    match retry_at {
                        Some(t) => DeliveryState::Pending { next_attempt_at: t },
                        None => DeliveryState::Parked { last_error: error },
                    }
                }
            };
            let undelivered_now = is_undelivered(&item.state);
            let parked_now = matches!(item.state, DeliveryState::Parked { .. });
            if was_undelivered && !undelivered_now {
                g.undelivered -= 1;
            }
            if parked_now {
                g.parked += 1;
            }
            Self::gauges(&g);
            Ok(())
        })();
        Box::pin(std::future::ready(r))
    }

    fn read_since<'a>(
        &'a self,
        service_user: Option<&'a str>,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<QueuedMessage>, QueueError>> {
        let r = (|| {
            let user = match service_user {
                None => None,
                Some(u) => {
                    Some(normalise_eui(u).ok_or_else(|| QueueError::BadServiceUser(u.into()))?)
                }
            };
            let g = self.lock();
            Ok(g.items
                .range(since.saturating_add(1)..)
                .map(|(_, i)| i)
                .filter(|i| user.as_ref().is_none_or(|u| *u == i.service_user))
                .take(limit)
                .cloned()
                .collect())
        })();
        Box::pin(std::future::ready(r))
    }

    fn requeue(&self, cursor: u64, now: Timestamp) -> BoxFuture<'_, Result<(), QueueError>> {
        let r = (|| {
            let mut g = self.lock();
            let item = g
                .items
                .get_mut(&cursor)
                .ok_or(QueueError::NotFound(cursor))?;
            if !matches!(item.state, DeliveryState::Parked { .. }) {
                return Err(QueueError::NotParked(cursor));
            }
            item.state = DeliveryState::Pending {
                next_attempt_at: now,
            };
            item.attempts = 0;
            g.parked -= 1;
            g.undelivered += 1;
            Self::gauges(&g);
            Ok(())
        })();
        if r.is_ok() {
            self.notify.notify_one();
        }
        Box::pin(std::future::ready(r))
    }

    fn release(&self, cursors: Vec<u64>) -> BoxFuture<'_, Result<(), QueueError>> {
        let mut g = self.lock();
        let now = Timestamp::now();
        for c in cursors {
            if let Some(i) = g.items.get_mut(&c)
                && i.state == DeliveryState::InFlight
            {
                i.state = DeliveryState::Pending {
                    next_attempt_at: now,
                };
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn depth(&self) -> BoxFuture<'_, Result<QueueDepth, QueueError>> {
        let g = self.lock();
        Box::pin(std::future::ready(Ok(QueueDepth {
            undelivered: g.undelivered,
            parked: g.parked,
        })))
    }

    fn wait_for_work(&self, max_wait: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(max_wait, self.notify.notified()).await;
        })
    }
}

/// Delivery settings, from [`DeliveryConfig`].
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts before parking.
    pub max_attempts: u32,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// Timeout of one POST.
    pub post_timeout: Duration,
    /// Service user EUI (normalised) → endpoint URL.
    pub endpoints: BTreeMap<String, String>,
    /// Messages claimed per round.
    pub batch: usize,
}

impl From<&DeliveryConfig> for DeliverySettings {
    fn from(c: &DeliveryConfig) -> Self {
        DeliverySettings {
            max_attempts: c.max_attempts,
            initial_backoff: Duration::from_millis(c.initial_backoff_ms),
            max_backoff: Duration::from_millis(c.max_backoff_ms),
            post_timeout: Duration::from_secs(c.post_timeout_secs),
            endpoints: c
                .endpoints
                .iter()
                .filter_map(|(k, v)| normalise_eui(k).map(|k| (k, v.clone())))
                .collect(),
            batch: 16,
        }
    }
}

impl DeliverySettings {
    /// The delay before attempt number `attempts + 1`, after `attempts`
    /// failed ones: `initial × 2^(attempts−1)`, capped, with ±20 % jitter
    /// derived from the cursor so that retries of many messages spread out.
    pub fn backoff(&self, cursor: u64, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        // splitmix64 of (cursor, attempts): a deterministic spread in [0.8, 1.2).
        let mut z = cursor.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(attempts);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let frac = (z >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.8 + 0.4 * frac).min(self.max_backoff)
    }
}

/// POSTs queued messages to their service users' endpoints.
#[derive(Debug)]
pub struct DeliveryWorker {
    queue: Arc<dyn OutboundQueue>,
    settings: DeliverySettings,
    client: reqwest::Client,
}

impl std::fmt::Debug for dyn OutboundQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboundQueue")
    }
}

/// Failure to build the worker's HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the delivery HTTP client: {0}")]
pub struct ClientError(String);

impl DeliveryWorker {
    /// A worker over `queue`.
    pub fn new(
        queue: Arc<dyn OutboundQueue>,
        settings: DeliverySettings,
    ) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .timeout(settings.post_timeout)
            .user_agent(concat!("ecos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(DeliveryWorker {
            queue,
            settings,
            client,
        })
    }

    /// Deliver until `stop` turns true; the attempts under way finish, and
    /// claimed messages not yet attempted are released back to the queue.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let batch = match self
                .queue
                .claim_due(Timestamp::now(), self.settings.batch)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "outbound queue: cannot claim messages");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.queue.wait_for_work(Duration::from_millis(250)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut set = tokio::task::JoinSet::new();
            let mut claimed: Vec<u64> = batch.iter().map(|i| i.cursor).collect();
            for item in batch {
                if *stop.borrow() {
                    break;
                }
                let worker = (
                    self.queue.clone(),
                    self.settings.clone(),
                    self.client.clone(),
                );
                claimed.retain(|c| *c != item.cursor);
                set.spawn(async move { attempt(worker.0, &worker.1, &worker.2, item).await });
            }
            while set.join_next().await.is_some() {}
            if !claimed.is_empty()
                && let Err(e) = self.queue.release(claimed).await
            {
                tracing::error!(error = %e, "outbound queue: cannot release claimed messages");
            }
        }
    }
}

async fn attempt(
    queue: Arc<dyn OutboundQueue>,
    settings: &DeliverySettings,
    client: &reqwest::Client,
    item: QueuedMessage,
) {
    let outcome = match settings.endpoints.get(&item.service_user) {
        None => {
            metrics::counter!(m::DELIVERIES_TOTAL, "outcome" => "poll_only").increment(1);
            AttemptOutcome::PollOnly
        }
        Some(url) => {
            let t0 = Instant::now();
            let r = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/xml")
                .body(item.body.to_vec())
                .send()
                .await;
            metrics::histogram!(m::STAGE_SECONDS, "stage" => m::STAGE_DELIVERY)
                .record(t0.elapsed().as_secs_f64());
            let error = match r {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("{url} answered HTTP {}", resp.status())),
                Err(e) => Some(format!("POST {url}: {e}")),
            };
            match error {
                None => {
                    metrics::counter!(m::DELIVERIES_TOTAL, "outcome" => "delivered").increment(1);
                    tracing::info!(cursor = item.cursor, service_user = %item.service_user, "delivered");
                    AttemptOutcome::Delivered
                }
                Some(error) => {
                    let attempts = item.attempts + 1;
                    let retry_at = (attempts < settings.max_attempts).then(|| {
                        let d = settings.backoff(item.cursor, attempts);
                        Timestamp::now()
                            .checked_add(
                                jiff::SignedDuration::try_from(d)
                                    .unwrap_or(jiff::SignedDuration::MAX),
                            )
                            .unwrap_or(Timestamp::MAX)
                    });
                    let label = if retry_at.is_some() {
                        "retry"
                    } else {
                        "parked"
                    };
                    metrics::counter!(m::DELIVERIES_TOTAL, "outcome" => label).increment(1);
                    tracing::warn!(cursor = item.cursor, service_user = %item.service_user, attempts, %error,
                        outcome = label, "delivery attempt failed");
                    AttemptOutcome::Failed { error, retry_at }
                }
            }
        }
    };
    if let Err(e) = queue.record(item.cursor, outcome).await {
        tracing::error!(cursor = item.cursor, error = %e, "outbound queue: cannot record the delivery outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(user: &str, body: &str) -> OutboundMessage {
        OutboundMessage {
            service_user: user.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn bounded_claims_outcomes_and_polling() {
        let q = MemoryQueue::new(2, 3);
        let a = q
            .push(msg("90-B3-D5-1F-30-03-00-00", "<a/>"))
            .await
            .unwrap();
        let b = q.push(msg("90b3d51f30010000", "<b/>")).await.unwrap();
        assert_eq!(
            q.push(msg("90B3D51F30010000", "<c/>")).await,
            Err(QueueError::Full { capacity: 2 })
        );
        assert!(matches!(
            q.push(msg("nope", "<c/>")).await,
            Err(QueueError::BadServiceUser(_))
        ));
        let claimed = q.claim_due(Timestamp::now(), 10).await.unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(q.claim_due(Timestamp::now(), 10).await.unwrap().is_empty());
        q.record(a, AttemptOutcome::Delivered).await.unwrap();
        q.record(
            b,
            AttemptOutcome::Failed {
                error: "boom".into(),
                retry_at: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            q.depth().await.unwrap(),
            QueueDepth {
                undelivered: 0,
                parked: 1
            }
        );
        let mine = q.read_since(Some("90B3D51F30030000"), 0, 10).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(&*mine[0].body, b"<a/>");
        assert!(q.read_since(None, b, 10).await.unwrap().is_empty());
        assert_eq!(
            q.requeue(a, Timestamp::now()).await,
            Err(QueueError::NotParked(a))
        );
        q.requeue(b, Timestamp::now()).await.unwrap();
        assert_eq!(
            q.depth().await.unwrap(),
            QueueDepth {
                undelivered: 1,
                parked: 0
            }
        );
        // Retention: settled messages beyond 3 are dropped oldest first.
        q.claim_due(Timestamp::now(), 10).await.unwrap();
        q.record(b, AttemptOutcome::PollOnly).await.unwrap();
        for _ in 0..2 {
            let c = q.push(msg("90B3D51F30010000", "<d/>")).await.unwrap();
            q.claim_due(Timestamp::now(), 10).await.unwrap();
            q.record(c, AttemptOutcome::Delivered).await.unwrap();
        }
        let all = q.read_since(None, 0, 10).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].cursor, b);
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = DeliverySettings {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            post_timeout: Duration::from_secs(1),
            endpoints: BTreeMap::new(),
            batch: 1,
        };
        for cursor in 0..50 {
            let d1 = s.backoff(cursor, 1).as_secs_f64();
            let d3 = s.backoff(cursor, 3).as_secs_f64();
            assert!((0.08..0.12).contains(&d1), "{d1}");
            assert!((0.32..0.48).contains(&d3), "{d3}");
            assert!(s.backoff(cursor, 20) <= Duration::from_secs(1));
        }
        assert_ne!(s.backoff(1, 2), s.backoff(2, 2));
    }
}
