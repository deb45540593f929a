//! The durable state of the 6.23 pipeline: replay protection, GBCS counters, requests,
//! the hash-chained audit log and the outbound queue.
//!
//! Every operation here is atomic on its own (one statement, or one transaction), and safe
//! when several ecos nodes share one PostgreSQL database.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use ecos_smki::Eui64;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::store::{Store, corrupt, micros_to_ts, on_pool, ts_to_micros};

/// Encode a u64 into a signed 64-bit column, preserving order (`v XOR 2^63`).
pub fn u64_to_ordered_i64(v: u64) -> i64 {
    (v ^ (1u64 << 63)) as i64
}

/// Decode [`u64_to_ordered_i64`].
pub fn ordered_i64_to_u64(v: i64) -> u64 {
    (v as u64) ^ (1u64 << 63)
}

/// A time-based GBCS counter floor: the Unix time in seconds in the upper 32 bits.
///
/// A common way to seed originator counters so they exceed anything issued earlier
/// (`gbcs-cs02b.md` §12); pass it as [`crate::StoreConfig::gbcs_counter_floor`].
pub fn time_based_counter_floor(now: Timestamp) -> u64 {
    (now.as_second().max(0) as u64) << 32
}

/// The most counters one reservation may take.
pub const MAX_RESERVATION: u64 = 1 << 32;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// The stored text form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(format!("unknown {} {s:?}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// The kind of a 6.23 request.
    RequestKind {
        /// Executed on receipt.
        Immediate = "immediate",
        /// With an `ExecutionDateTime` in the future.
        FutureDated = "future-dated",
        /// A cancellation of a pending future-dated request.
        Cancellation = "cancellation",
    }
);

text_enum!(
    /// Where a request is in its life.
    RequestState {
        /// Received, not yet decided.
        Received = "received",
        /// Passed the checks; waiting for dispatch (future-dated) or being dispatched.
        Accepted = "accepted",
        /// Refused (see the decision reason).
        Rejected = "rejected",
        /// The command was handed to the DSP for the device.
        Dispatched = "dispatched",
        /// The device reported success.
        Completed = "completed",
        /// The device reported failure, or no response came.
        Failed = "failed",
        /// Cancelled before execution.
        Cancelled = "cancelled",
        /// Replaced by a later request for the same device.
        Superseded = "superseded",
    }
);

impl RequestState {
    /// Whether a future-dated request in this state is still pending (may yet execute).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            RequestState::Received | RequestState::Accepted | RequestState::Dispatched
        )
    }
}

/// A request to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// The DUIS RequestID (`originator:target:counter`).
    pub request_id: String,
    /// The originator (the requesting DCC user).
    pub originator: Eui64,
    /// The target device.
    pub device: Eui64,
    /// Immediate, future-dated or cancellation.
    pub kind: RequestKind,
    /// The execution instant of a future-dated request.
    pub execution_time: Option<Timestamp>,
    /// The request as received (signed XML).
    pub request_xml: Option<String>,
}

/// A recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// The DUIS RequestID.
    pub request_id: String,
    /// The originator.
    pub originator: Eui64,
    /// The target device.
    pub device: Eui64,
    /// Its kind.
    pub kind: RequestKind,
    /// Execution instant (future-dated).
    pub execution_time: Option<Timestamp>,
    /// Current state.
    pub state: RequestState,
    /// Why it was decided so (error code and text), if decided.
    pub decision_reason: Option<String>,
    /// The request as received.
    pub request_xml: Option<String>,
    /// The GBCS command built for it.
    pub command: Option<Vec<u8>>,
    /// The GBCS originator counter the command uses.
    pub gbcs_counter: Option<u64>,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A state change of a request. Fields left `None` keep their value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUpdate {
    /// The new state.
    pub state: RequestState,
    /// The decision reason.
    pub reason: Option<String>,
    /// The GBCS command bytes.
    pub command: Option<Vec<u8>>,
    /// The GBCS counter used.
    pub gbcs_counter: Option<u64>,
}

impl RequestUpdate {
    /// Just a new state.
    pub fn to(state: RequestState) -> Self {
        RequestUpdate {
            state,
            reason: None,
            command: None,
            gbcs_counter: None,
        }
    }

    /// With a decision reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// An audit entry to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAuditEntry<'a> {
    /// Who acted (a service user EUI, `ecos`, an operator).
    pub actor: &'a str,
    /// What happened (`request.accepted`, `command.signed`, ...).
    pub action: &'a str,
    /// What it concerns (a RequestID, a device EUI).
    pub subject: &'a str,
    /// Details (free text or JSON).
    pub detail: &'a str,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was appended.
    pub at: Timestamp,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// What it concerns.
    pub subject: String,
    /// Details.
    pub detail: String,
    /// The previous entry's hash (zeros for the first).
    pub prev_hash: [u8; 32],
    /// `SHA-256(prev_hash || canonical(entry))`.
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// The canonical bytes of the entry: `ecos-audit-v1`, seq (u64 BE), at (i64 µs BE), then
    /// actor, action, subject and detail each as u32 BE length + UTF-8.
    pub fn canonical(&self) -> Vec<u8> {
        canonical(
            self.seq,
            self.at,
            [&self.actor, &self.action, &self.subject, &self.detail],
        )
    }

    /// The hash this entry should have given its `prev_hash`.
    pub fn compute_hash(&self) -> [u8; 32] {
        chain_hash(&self.prev_hash, &self.canonical())
    }
}

pub(crate) fn canonical(seq: u64, at: Timestamp, fields: [&str; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    out.extend_from_slice(b"ecos-audit-v1");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts_to_micros(at).to_be_bytes());
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

pub(crate) fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// Why the audit chain is broken at an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditBreak {
    /// An entry is missing: the sequence jumps.
    Gap {
        /// The sequence expected.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// The entry's `prev_hash` is not the previous entry's hash.
    PrevHash {
        /// The entry.
        seq: u64,
    },
    /// The entry's content does not hash to its stored hash (it was altered).
    Hash {
        /// The entry.
        seq: u64,
    },
    /// The chain head does not match the last entry (entries removed from the end).
    Head {
        /// The head's sequence.
        head_seq: u64,
        /// The last entry's sequence.
        last_seq: u64,
    },
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditBreak::Gap { expected, found } => {
                write!(f, "entry {expected} missing (next entry is {found})")
            }
            AuditBreak::PrevHash { seq } => {
                write!(f, "entry {seq} does not link to the previous entry's hash")
            }
            AuditBreak::Hash { seq } => write!(f, "entry {seq} was altered (hash mismatch)"),
            AuditBreak::Head { head_seq, last_seq } => write!(
                f,
                "chain head is at entry {head_seq} but the log ends at entry {last_seq}"
            ),
        }
    }
}

/// The result of [`Store::verify_audit_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Entries checked (up to the first break).
    pub entries: u64,
    /// The hash of the last good entry (zeros for an empty log).
    pub head: [u8; 32],
    /// The first break, if any.
    pub first_broken: Option<AuditBreak>,
}

/// A message waiting for (or past) delivery to a supplier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Queue position (increasing).
    pub id: u64,
    /// The recipient (a service user EUI or endpoint).
    pub recipient: String,
    /// The request it answers.
    pub request_id: Option<String>,
    /// What it is (`response`, `alert`, ...).
    pub kind: String,
    /// The body (e.g. signed XML).
    pub body: Vec<u8>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
}

pub(crate) type ReqTuple = (
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
    i64,
    i64,
);
pub(crate) const REQ_COLS: &str = "request_id, originator, device_eui, kind, execution_time, state, \
     decision_reason, request_xml, command, gbcs_counter, created_at, updated_at";

pub(crate) fn req_from_tuple(t: ReqTuple) -> Result<StoredRequest> {
    let (id, orig, dev, kind, exec, state, reason, xml, cmd, ctr, created, updated) = t;
    let eui = |c: &'static str, s: &str| s.parse::<Eui64>().map_err(|_| corrupt("requests", c, s));
    Ok(StoredRequest {
        originator: eui("originator", &orig)?,
        device: eui("device_eui", &dev)?,
        kind: kind
            .parse()
            .map_err(|_| corrupt("requests", "kind", &kind))?,
        execution_time: exec
            .map(|v| micros_to_ts("requests", "execution_time", v))
            .transpose()?,
        state: state
            .parse()
            .map_err(|_| corrupt("requests", "state", &state))?,
        decision_reason: reason,
        request_xml: xml,
        command: cmd,
        gbcs_counter: ctr.map(ordered_i64_to_u64),
        created_at: micros_to_ts("requests", "created_at", created)?,
        updated_at: micros_to_ts("requests", "updated_at", updated)?,
        request_id: id,
    })
}

type AuditTuple = (i64, i64, String, String, String, String, Vec<u8>, Vec<u8>);

pub(crate) fn hash32(column: &'static str, v: &[u8]) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| corrupt("audit_log", column, &hex::encode(v)))
}

fn audit_from_tuple(t: AuditTuple) -> Result<AuditEntry> {
    let (seq, at, actor, action, subject, detail, prev, hash) = t;
    Ok(AuditEntry {
        seq: seq as u64,
        at: micros_to_ts("audit_log", "at", at)?,
        actor,
        action,
        subject,
        detail,
        prev_hash: hash32("prev_hash", &prev)?,
        hash: hash32("hash", &hash)?,
    })
}

type OutTuple = (
    i64,
    String,
    Option<String>,
    String,
    Vec<u8>,
    i64,
    Option<i64>,
);

fn out_from_tuple(t: OutTuple) -> Result<OutboundMessage> {
    let (id, recipient, request_id, kind, body, created, delivered) = t;
    Ok(OutboundMessage {
        id: id as u64,
        recipient,
        request_id,
        kind,
        body,
        created_at: micros_to_ts("outbound", "created_at", created)?,
        delivered_at: delivered
            .map(|v| micros_to_ts("outbound", "delivered_at", v))
            .transpose()?,
    })
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    // ---------------------------------------------------------------- replay protection

    /// Accept a DUIS RequestID counter from `originator` only if it is strictly greater than
    /// every counter accepted from it before; record it if so. Atomic across nodes.
    ///
    /// Returns `true` when accepted, `false` for a replay or an old counter.
    pub async fn check_and_advance_request_counter(
        &self,
        originator: Eui64,
        counter: u64,
    ) -> Result<bool> {
        let n = on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO request_counters (originator, last_counter, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (originator) DO UPDATE SET last_counter = excluded.last_counter, \
             updated_at = excluded.updated_at \
             WHERE request_counters.last_counter < excluded.last_counter"
        )
        .bind(originator.to_compact())
        .bind(u64_to_ordered_i64(counter))
        .bind(ts_to_micros(Timestamp::now()))
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(n == 1)
    }

    /// The last RequestID counter accepted from `originator`.
    pub async fn last_request_counter(&self, originator: Eui64) -> Result<Option<u64>> {
        let v: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT last_counter FROM request_counters WHERE originator = $1"
        )
        .bind(originator.to_compact())
        .fetch_optional(p)
        .await?);
        Ok(v.map(ordered_i64_to_u64))
    }

    // ---------------------------------------------------------------- GBCS counters

    /// Reserve `n` GBCS originator counters for `party` (the signing CoS party's EUI).
    ///
    /// The range returned is strictly above every range reserved before for that party, on
    /// any node, across restarts, and above the configured floor
    /// ([`crate::StoreConfig::gbcs_counter_floor`]). Counters in a reserved range that go
    /// unused are skipped, never reissued.
    ///
    /// The range is also above every counter this store (and its clones) has handed out
    /// from a block ([`Store::reserve_gbcs_counter`]): the rest of that block is skipped.
    pub async fn reserve_gbcs_counters(&self, party: Eui64, n: u64) -> Result<Range<u64>> {
        let mut blocks = self.counter_blocks.lock().await;
        let range = self.reserve_gbcs_counters_durable(party, n).await?;
        blocks.remove(&party);
        Ok(range)
    }

    /// [`Store::reserve_gbcs_counters`] without regard to the blocks in hand.
    pub(crate) async fn reserve_gbcs_counters_durable(
        &self,
        party: Eui64,
        n: u64,
    ) -> Result<Range<u64>> {
        if n == 0 || n > MAX_RESERVATION {
            return Err(StoreError::Invalid(format!(
                "GBCS counter reservation of {n}: expected 1 to {MAX_RESERVATION}"
            )));
        }
        let floor = self.config.gbcs_counter_floor;
        let Some(first) = floor.checked_add(1) else {
            return Err(StoreError::CounterExhausted {
                party: party.to_string(),
            });
        };
        let first = u64_to_ordered_i64(first);
        let limit = u64_to_ordered_i64(u64::MAX - n);
        let key = party.to_compact();
        let next: Option<i64> = on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO gbcs_counters (party, next_counter) VALUES ($1, $2) \
                 ON CONFLICT (party) DO NOTHING",
            )
            .bind(&key)
            .bind(first)
            .execute(p)
            .await?;
            sqlx::query_scalar(
                "UPDATE gbcs_counters SET next_counter = \
                 (CASE WHEN next_counter < $1 THEN $1 ELSE next_counter END) + $2 \
                 WHERE party = $3 AND (CASE WHEN next_counter < $1 THEN $1 ELSE next_counter END) <= $4 \
                 RETURNING next_counter",
            )
            .bind(first)
            .bind(n as i64)
            .bind(&key)
            .bind(limit)
            .fetch_optional(p)
            .await?
        });
        let Some(next) = next else {
            return Err(StoreError::CounterExhausted {
                party: party.to_string(),
            });
        };
        let end = ordered_i64_to_u64(next);
        Ok(end - n..end)
    }

    /// The next GBCS counter that would be reserved for `party` (ignoring the floor), if any
    /// was reserved.
    pub async fn next_gbcs_counter(&self, party: Eui64) -> Result<Option<u64>> {
        let v: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT next_counter FROM gbcs_counters WHERE party = $1"
        )
        .bind(party.to_compact())
        .fetch_optional(p)
        .await?);
        Ok(v.map(ordered_i64_to_u64))
    }

    // ---------------------------------------------------------------- requests

    /// Record a new request in state [`RequestState::Received`].
    pub async fn insert_request(&self, r: &NewRequest) -> Result<StoredRequest> {
        let now = ts_to_micros(Timestamp::now());
        let res = on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO requests (request_id, originator, device_eui, kind, execution_time, state, \
             request_xml, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
        .bind(&r.request_id)
        .bind(r.originator.to_compact())
        .bind(r.device.to_compact())
        .bind(r.kind.as_str())
        .bind(r.execution_time.map(ts_to_micros))
        .bind(RequestState::Received.as_str())
        .bind(&r.request_xml)
        .bind(now)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())
        });
        match res {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::DuplicateRequest(r.request_id.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        self.request(&r.request_id)
            .await?
            .ok_or_else(|| StoreError::RequestNotFound(r.request_id.clone()))
    }

    /// A request by id.
    pub async fn request(&self, request_id: &str) -> Result<Option<StoredRequest>> {
        let sql = format!("SELECT {REQ_COLS} FROM requests WHERE request_id = $1");
        let row: Option<ReqTuple> = on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(request_id)
            .fetch_optional(p)
            .await?);
        row.map(req_from_tuple).transpose()
    }

    /// Move a request to a new state, only if it is in one of `from` (compare and set).
    ///
    /// Errors: [`StoreError::RequestNotFound`], or [`StoreError::RequestState`] when the
    /// request is in another state (someone else moved it first).
    pub async fn transition_request(
        &self,
        request_id: &str,
        from: &[RequestState],
        update: RequestUpdate,
    ) -> Result<StoredRequest> {
        let now = ts_to_micros(Timestamp::now());
        for f in from {
            let n = on_pool!(self, |p| {
                // The expected state as a literal: bound, it would make SQLite
                // re-prepare the statement every time (the partial indexes of
                // schemas 0008 and 0009 make the plan depend on it).
                sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE requests SET state = $1, decision_reason = COALESCE($2, decision_reason), \
                 command = COALESCE($3, command), gbcs_counter = COALESCE($4, gbcs_counter), \
                 updated_at = $5 WHERE request_id = $6 AND state = '{}'",
                f.as_str()
            )))
            .bind(update.state.as_str())
            .bind(&update.reason)
            .bind(&update.command)
            .bind(update.gbcs_counter.map(u64_to_ordered_i64))
            .bind(now)
            .bind(request_id)
            .execute(p)
            .await?
            .rows_affected()
            });
            if n == 1 {
                return self
                    .request(request_id)
                    .await?
                    .ok_or_else(|| StoreError::RequestNotFound(request_id.to_string()));
            }
        }
        match self.request(request_id).await? {
            None => Err(StoreError::RequestNotFound(request_id.to_string())),
            Some(r) => Err(StoreError::RequestState {
                request_id: request_id.to_string(),
                expected: from
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                actual: r.state.to_string(),
            }),
        }
    }

    /// The pending future-dated request for a device (received, accepted or dispatched), if
    /// any; the earliest by execution time when there are several.
    pub async fn pending_future_dated_for_device(
        &self,
        device: Eui64,
    ) -> Result<Option<StoredRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE device_eui = $1 AND kind = 'future-dated' \
             AND state IN ('received', 'accepted', 'dispatched') \
             ORDER BY execution_time, created_at LIMIT 1"
        );
        let row: Option<ReqTuple> = on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(device.to_compact())
            .fetch_optional(p)
            .await?);
        row.map(req_from_tuple).transpose()
    }

    /// The request whose command to `device` carried GBCS counter `counter`: how a device
    /// response (which echoes the counter) or a 0x00CB alert (which names it) finds its
    /// request.
    pub async fn request_by_gbcs_counter(
        &self,
        device: Eui64,
        counter: u64,
    ) -> Result<Option<StoredRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE device_eui = $1 AND gbcs_counter = $2 LIMIT 1"
        );
        let row: Option<ReqTuple> = on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(device.to_compact())
            .bind(u64_to_ordered_i64(counter))
            .fetch_optional(p)
            .await?);
        row.map(req_from_tuple).transpose()
    }

    /// Accepted future-dated requests whose execution time is at or before `until`, earliest
    /// first: what a dispatcher sends next.
    pub async fn future_dated_due(
        &self,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE kind = 'future-dated' AND state = 'accepted' \
             AND execution_time <= $1 ORDER BY execution_time, request_id LIMIT $2"
        );
        let rows: Vec<ReqTuple> = on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(ts_to_micros(until))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(req_from_tuple).collect()
    }

    // ---------------------------------------------------------------- audit log

    /// Append an entry to the hash-chained audit log. Serialised across nodes.
    /// On SQLite it is written by the group-commit writer thread.
    pub async fn append_audit(&self, e: &NewAuditEntry<'_>) -> Result<AuditEntry> {
        if self.open_direct().is_some() {
            let [actor, action, subject, detail] =
                [e.actor, e.action, e.subject, e.detail].map(str::to_owned);
            let done = self
                .group_write(move |tx| {
                    let at = Timestamp::now();
                    let at = Timestamp::from_microsecond(ts_to_micros(at)).unwrap_or(at);
                    let e = NewAuditEntry {
                        actor: &actor,
                        action: &action,
                        subject: &subject,
                        detail: &detail,
                    };
                    let (seq, prev_hash, hash) = tx.append_audit(&e, at)?;
                    let entry = AuditEntry {
                        seq,
                        at,
                        actor,
                        action,
                        subject,
                        detail,
                        prev_hash,
                        hash,
                    };
                    Ok((entry, true))
                })
                .await;
            if let Some(done) = done {
                return done;
            }
        }
        let at = Timestamp::now();
        let at = Timestamp::from_microsecond(ts_to_micros(at)).unwrap_or(at);
        let entry = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            // Taking the head first locks it: appends are serialised.
            let (seq, prev): (i64, Vec<u8>) = sqlx::query_as(
                "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
            )
            .fetch_one(&mut *tx)
            .await?;
            let prev = hash32("prev_hash", &prev)?;
            let seq = seq as u64;
            let canon = canonical(seq, at, [e.actor, e.action, e.subject, e.detail]);
            let hash = chain_hash(&prev, &canon);
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(seq as i64)
            .bind(ts_to_micros(at))
            .bind(e.actor)
            .bind(e.action)
            .bind(e.subject)
            .bind(e.detail)
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                .bind(hash.to_vec())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            AuditEntry {
                seq,
                at,
                actor: e.actor.to_string(),
                action: e.action.to_string(),
                subject: e.subject.to_string(),
                detail: e.detail.to_string(),
                prev_hash: prev,
                hash,
            }
        });
        Ok(entry)
    }

    /// Audit entries from sequence `from_seq` on, at most `limit`.
    pub async fn audit_entries(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditTuple> = on_pool!(self, |p| sqlx::query_as(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
             WHERE seq >= $1 ORDER BY seq LIMIT $2"
        )
        .bind(from_seq.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?);
        rows.into_iter().map(audit_from_tuple).collect()
    }

    /// Walk the whole audit log and check every link; report the first broken entry.
    pub async fn verify_audit_chain(&self) -> Result<AuditVerification> {
        let mut expected = 1u64;
        let mut prev = [0u8; 32];
        loop {
            let page = self.audit_entries(expected, 10_000).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            for e in page {
                let broken = if e.seq != expected {
                    Some(AuditBreak::Gap {
                        expected,
                        found: e.seq,
                    })
                } else if e.prev_hash != prev {
                    Some(AuditBreak::PrevHash { seq: e.seq })
                } else if e.compute_hash() != e.hash {
                    Some(AuditBreak::Hash { seq: e.seq })
                } else {
                    None
                };
                if let Some(b) = broken {
                    return Ok(AuditVerification {
                        entries: expected - 1,
                        head: prev,
                        first_broken: Some(b),
                    });
                }
                prev = e.hash;
                expected += 1;
            }
            if last + 1 != expected {
                break;
            }
        }
        let (head_seq, head_hash): (i64, Vec<u8>) = on_pool!(self, |p| sqlx::query_as(
            "SELECT seq, hash FROM audit_head WHERE id = 1"
        )
        .fetch_one(p)
        .await?);
        let last_seq = expected - 1;
        let first_broken = (head_seq as u64 != last_seq || head_hash.as_slice() != prev).then_some(
            AuditBreak::Head {
                head_seq: head_seq as u64,
                last_seq,
            },
        );
        Ok(AuditVerification {
            entries: last_seq,
            head: prev,
            first_broken,
        })
    }

    // ---------------------------------------------------------------- outbound queue

    /// Queue a message for a supplier. Returns its queue id.
    pub async fn enqueue_outbound(
        &self,
        recipient: &str,
        request_id: Option<&str>,
        kind: &str,
        body: &[u8],
    ) -> Result<u64> {
        let id: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "INSERT INTO outbound (recipient, request_id, kind, body, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id"
        )
        .bind(recipient)
        .bind(request_id)
        .bind(kind)
        .bind(body)
        .bind(ts_to_micros(Timestamp::now()))
        .fetch_one(p)
        .await?);
        Ok(id as u64)
    }

    /// Messages with an id above `after_id`, oldest first, at most `limit`; with
    /// `undelivered_only`, only those not yet delivered.
    pub async fn fetch_outbound_since(
        &self,
        after_id: u64,
        limit: u32,
        undelivered_only: bool,
    ) -> Result<Vec<OutboundMessage>> {
        let sql = if undelivered_only {
            "SELECT id, recipient, request_id, kind, body, created_at, delivered_at FROM outbound \
             WHERE id > $1 AND delivered_at IS NULL ORDER BY id LIMIT $2"
        } else {
            "SELECT id, recipient, request_id, kind, body, created_at, delivered_at FROM outbound \
             WHERE id > $1 ORDER BY id LIMIT $2"
        };
        let rows: Vec<OutTuple> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(after_id.min(i64::MAX as u64) as i64)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(out_from_tuple).collect()
    }

    /// Mark a message delivered. Returns false if it is unknown or was already delivered.
    pub async fn mark_outbound_delivered(&self, id: u64, at: Timestamp) -> Result<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE outbound SET delivered_at = $1 WHERE id = $2 AND delivered_at IS NULL"
        )
        .bind(ts_to_micros(at))
        .bind(id.min(i64::MAX as u64) as i64)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn ordered_encoding_preserves_order(a: u64, b: u64) {
            proptest::prop_assert_eq!(a.cmp(&b), u64_to_ordered_i64(a).cmp(&u64_to_ordered_i64(b)));
            proptest::prop_assert_eq!(ordered_i64_to_u64(u64_to_ordered_i64(a)), a);
        }
    }

    #[test]
    fn canonical_is_unambiguous() {
        let t = Timestamp::UNIX_EPOCH;
        assert_ne!(
            canonical(1, t, ["ab", "c", "", ""]),
            canonical(1, t, ["a", "bc", "", ""])
        );
        assert_eq!(
            time_based_counter_floor(Timestamp::from_second(1).unwrap()),
            1 << 32
        );
    }

    async fn tamper_cases(s: Store) {
        for i in 0..5 {
            let d = format!("detail {i}");
            s.append_audit(&NewAuditEntry {
                actor: "ecos",
                action: "a",
                subject: "s",
                detail: &d,
            })
            .await
            .unwrap();
        }
        assert_eq!(s.verify_audit_chain().await.unwrap().first_broken, None);
        let exec = |sql: &'static str| {
            let s = s.clone();
            async move {
                on_pool!(s, |p| {
                    sqlx::query(sql).execute(p).await.unwrap();
                });
            }
        };
        // Altered content.
        exec("UPDATE audit_log SET detail = 'forged' WHERE seq = 3").await;
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!(
            (v.entries, v.first_broken),
            (2, Some(AuditBreak::Hash { seq: 3 }))
        );
        exec("UPDATE audit_log SET detail = 'detail 2' WHERE seq = 3").await;
        assert_eq!(
            s.verify_audit_chain().await.unwrap().first_broken,
            None,
            "restored"
        );
        // Re-linked: entry 4 claims another predecessor.
        exec("UPDATE audit_log SET prev_hash = hash WHERE seq = 4").await;
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!(v.first_broken, Some(AuditBreak::PrevHash { seq: 4 }));
        exec("UPDATE audit_log SET prev_hash = (SELECT hash FROM audit_log WHERE seq = 3) WHERE seq = 4").await;
        assert_eq!(
            s.verify_audit_chain().await.unwrap().first_broken,
            None,
            "restored"
        );
        // Removed from the end.
        exec("DELETE FROM audit_log WHERE seq = 5").await;
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!(
            v.first_broken,
            Some(AuditBreak::Head {
                head_seq: 5,
                last_seq: 4
            })
        );
        // Removed from the middle.
        exec("DELETE FROM audit_log WHERE seq = 2").await;
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!(
            (v.entries, v.first_broken),
            (
                1,
                Some(AuditBreak::Gap {
                    expected: 2,
                    found: 3
                })
            )
        );
        assert_eq!(
            AuditBreak::Gap {
                expected: 2,
                found: 3
            }
            .to_string(),
            "entry 2 missing (next entry is 3)"
        );
    }

    #[tokio::test]
    async fn audit_tampering_is_pinpointed_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            &crate::StoreLocation::sqlite_in_dir(dir.path()),
            crate::StoreConfig::default(),
        )
        .await
        .unwrap();
        tamper_cases(s).await;
    }

    #[tokio::test]
    async fn audit_tampering_is_pinpointed_postgres() {
        let Ok(url) = std::env::var("ECOS_TEST_POSTGRES_URL") else {
            eprintln!("skipping audit tampering on PostgreSQL: ECOS_TEST_POSTGRES_URL is not set");
            return;
        };
        let schema = format!(
            "t_audit_{}_{}",
            std::process::id(),
            Timestamp::now().as_nanosecond().rem_euclid(1_000_000_000)
        );
        let s = Store::open(
            &crate::StoreLocation::Postgres {
                url,
                schema: Some(schema),
            },
            crate::StoreConfig::default(),
        )
        .await
        .unwrap();
        tamper_cases(s).await;
    }
}
