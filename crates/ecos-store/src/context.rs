//! The request context: what the 6.23 checks read about a request's
//! originator, RequestID and target device beyond the inventory and the
//! registration data, in one read.
//!
//! On SQLite it is one read transaction on a direct connection (one
//! consistent snapshot, four indexed point reads, no hand-over to sqlx's
//! worker thread); on PostgreSQL the same four reads through the pool.
//!
//! The acceptance's two writes (the GBCS counter reservation and the
//! decision committed whole) have direct forms too: on SQLite, when the
//! write lock is free at once, they run on a direct connection on the
//! calling thread, with the same statements as the pool's forms; otherwise
//! (the lock taken, or PostgreSQL) they go through the pool, which waits.

use ecos_smki::Eui64;
use jiff::Timestamp;
use rusqlite::OptionalExtension;

use crate::decide::{Acceptance, AcceptanceCommit};
use crate::error::Result;
use crate::migration::MigrationState;
use crate::pipeline::{
    RequestKind, RequestState, canonical, chain_hash, hash32, ordered_i64_to_u64,
    u64_to_ordered_i64,
};
use crate::store::{Store, corrupt, ts_to_micros};

/// The pending future-dated request of a device, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Its RequestID.
    pub request_id: String,
    /// Its originator.
    pub originator: Eui64,
}

/// What the checks need to know about one request, read at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestContext {
    /// The state of a request stored with the same RequestID, if any.
    pub request_state: Option<RequestState>,
    /// The last RequestID counter accepted from the originator.
    pub last_request_counter: Option<u64>,
    /// The device's pending future-dated request (the earliest by execution
    /// time), as [`Store::pending_future_dated_for_device`] returns it.
    pub pending_future_dated: Option<PendingRequest>,
    /// The device's migration state, if it has a migration record.
    pub migration_state: Option<MigrationState>,
}

const SQL_STATE: &str = "SELECT state FROM requests WHERE request_id = $1";
const SQL_COUNTER: &str = "SELECT last_counter FROM request_counters WHERE originator = $1";
const SQL_PENDING: &str = "SELECT request_id, originator FROM requests WHERE device_eui = $1 \
     AND kind = $2 AND state IN ($3, $4, $5) ORDER BY execution_time, created_at LIMIT 1";
const SQL_MIGRATION: &str = "SELECT state FROM migration_devices WHERE eui = $1";

type Raw = (
    Option<String>,
    Option<i64>,
    Option<(String, String)>,
    Option<String>,
);

impl Store {
    /// The direct connections, unless the store was closed (then every
    /// access goes to the closed pool and fails as it does there).
    fn open_direct(&self) -> Option<&crate::direct::SqliteDirect> {
        match &self.backend {
            crate::store::Backend::Sqlite(p) if !p.is_closed() => self.direct.as_deref(),
            _ => None,
        }
    }

    /// The context of a request with `request_id` from `originator` to
    /// `device`: equal to what [`Store::request`],
    /// [`Store::last_request_counter`],
    /// [`Store::pending_future_dated_for_device`] and
    /// [`Store::migration_record`] say, read in one go.
    pub async fn request_context(
        &self,
        originator: Eui64,
        request_id: &str,
        device: Eui64,
    ) -> Result<RequestContext> {
        let (org, dev) = (originator.to_compact(), device.to_compact());
        let pending_args = [
            RequestKind::FutureDated.as_str(),
            RequestState::Received.as_str(),
            RequestState::Accepted.as_str(),
            RequestState::Dispatched.as_str(),
        ];
        let raw: Raw = if let Some(direct) = self.open_direct() {
            direct.read(|c| {
                let tx = c.unchecked_transaction()?;
                let state = tx
                    .prepare_cached(SQL_STATE)?
                    .query_row([request_id], |r| r.get(0))
                    .optional()?;
                let counter = tx
                    .prepare_cached(SQL_COUNTER)?
                    .query_row([&org], |r| r.get(0))
                    .optional()?;
                let [kind, s1, s2, s3] = pending_args;
                let pending = tx
                    .prepare_cached(SQL_PENDING)?
                    .query_row([dev.as_str(), kind, s1, s2, s3], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                let migration = tx
                    .prepare_cached(SQL_MIGRATION)?
                    .query_row([&dev], |r| r.get(0))
                    .optional()?;
                tx.commit()?;
                Ok((state, counter, pending, migration))
            })?
        } else {
            crate::store::on_pool!(self, |p| {
                let state: Option<String> = sqlx::query_scalar(SQL_STATE)
                    .bind(request_id)
                    .fetch_optional(p)
                    .await?;
                let counter: Option<i64> = sqlx::query_scalar(SQL_COUNTER)
                    .bind(&org)
                    .fetch_optional(p)
                    .await?;
                let mut q = sqlx::query_as(SQL_PENDING).bind(&dev);
                for a in pending_args {
                    q = q.bind(a);
                }
                let pending: Option<(String, String)> = q.fetch_optional(p).await?;
                let migration: Option<String> = sqlx::query_scalar(SQL_MIGRATION)
                    .bind(&dev)
                    .fetch_optional(p)
                    .await?;
                (state, counter, pending, migration)
            })
        };
        let (state, counter, pending, migration) = raw;
        Ok(RequestContext {
            request_state: state
                .map(|s| s.parse().map_err(|_| corrupt("requests", "state", &s)))
                .transpose()?,
            last_request_counter: counter.map(ordered_i64_to_u64),
            pending_future_dated: pending
                .map(|(request_id, o)| {
                    Ok::<_, crate::StoreError>(PendingRequest {
                        originator: o
                            .parse()
                            .map_err(|_| corrupt("requests", "originator", &o))?,
                        request_id,
                    })
                })
                .transpose()?,
            migration_state: migration
                .map(|s| {
                    s.parse()
                        .map_err(|_| corrupt("migration_devices", "state", &s))
                })
                .transpose()?,
        })
    }

    /// The state of the request stored with `request_id`, if any (on SQLite
    /// a direct point read).
    pub async fn request_state(&self, request_id: &str) -> Result<Option<RequestState>> {
        let state: Option<String> = if let Some(direct) = self.open_direct() {
            direct.read(|c| {
                c.prepare_cached(SQL_STATE)?
                    .query_row([request_id], |r| r.get(0))
                    .optional()
            })?
        } else {
            crate::store::on_pool!(self, |p| sqlx::query_scalar(SQL_STATE)
                .bind(request_id)
                .fetch_optional(p)
                .await?)
        };
        state
            .map(|s| s.parse().map_err(|_| corrupt("requests", "state", &s)))
            .transpose()
    }
}

/// The outcome of a write attempted on a direct SQLite connection.
enum Direct<T> {
    /// Done (committed, or rolled back when the body said so).
    Done(Result<T>),
    /// Not attempted or nothing written: no direct connection, or the write
    /// lock was taken (the caller goes through the pool, which waits).
    Unavailable,
}

impl Store {
    /// Run `body` in a `BEGIN IMMEDIATE` transaction on a direct connection,
    /// on the calling thread, only if the write lock is free at once (a busy
    /// database never blocks the caller here). `body` returns the value and
    /// whether to commit (`false` rolls back).
    fn try_direct_write<T>(
        &self,
        body: impl FnOnce(&rusqlite::Connection) -> Result<(T, bool)>,
    ) -> Direct<T> {
        let Some(direct) = self.open_direct() else {
            return Direct::Unavailable;
        };
        let run = |c: &rusqlite::Connection| -> rusqlite::Result<Direct<T>> {
            // A pooled reader: writable and non-waiting for this transaction only.
            c.pragma_update(None, "query_only", "OFF")?;
            c.busy_timeout(std::time::Duration::ZERO)?;
            let out = match c.execute_batch("BEGIN IMMEDIATE") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        || e.code == rusqlite::ErrorCode::DatabaseLocked =>
                {
                    Direct::Unavailable
                }
                Err(e) => Direct::Done(Err(e.into())),
                Ok(()) => match body(c) {
                    Ok((v, true)) => match c.execute_batch("COMMIT") {
                        Ok(()) => Direct::Done(Ok(v)),
                        Err(e) => {
                            let _ = c.execute_batch("ROLLBACK");
                            Direct::Done(Err(e.into()))
                        }
                    },
                    Ok((v, false)) => {
                        c.execute_batch("ROLLBACK")?;
                        Direct::Done(Ok(v))
                    }
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK");
                        Direct::Done(Err(e))
                    }
                },
            };
            c.busy_timeout(std::time::Duration::from_secs(30))?;
            c.pragma_update(None, "query_only", "ON")?;
            Ok(out)
        };
        match direct.read(run) {
            Ok(d) => d,
            Err(e) => Direct::Done(Err(e)),
        }
    }

    /// Reserve one GBCS originator counter for `party`: what
    /// [`Store::reserve_gbcs_counters`]`(party, 1)` returns, written on a
    /// direct connection on SQLite when the write lock is free.
    pub async fn reserve_gbcs_counter(&self, party: Eui64) -> Result<u64> {
        let floor = self.config.gbcs_counter_floor;
        let exhausted = || crate::StoreError::CounterExhausted {
            party: party.to_string(),
        };
        let first = floor.checked_add(1).ok_or_else(exhausted)?;
        let (first, limit) = (u64_to_ordered_i64(first), u64_to_ordered_i64(u64::MAX - 1));
        let key = party.to_compact();
        let d = self.try_direct_write(|c| {
            c.prepare_cached(
                "INSERT INTO gbcs_counters (party, next_counter) VALUES ($1, $2) \
                 ON CONFLICT (party) DO NOTHING",
            )?
            .execute(rusqlite::params![key, first])?;
            let next: Option<i64> = c
                .prepare_cached(
                    "UPDATE gbcs_counters SET next_counter = \
                     (CASE WHEN next_counter < $1 THEN $1 ELSE next_counter END) + 1 \
                     WHERE party = $2 AND (CASE WHEN next_counter < $1 THEN $1 ELSE next_counter END) <= $3 \
                     RETURNING next_counter",
                )?
                .query_row(rusqlite::params![first, key, limit], |r| r.get(0))
                .optional()?;
            Ok((next, next.is_some()))
        });
        match d {
            Direct::Done(r) => {
                let next = r?.ok_or_else(exhausted)?;
                Ok(ordered_i64_to_u64(next) - 1)
            }
            Direct::Unavailable => Ok(self.reserve_gbcs_counters(party, 1).await?.start),
        }
    }

    /// [`Store::commit_acceptance`], written on a direct connection on
    /// SQLite when the write lock is free (the same rows, the same outcome).
    pub async fn commit_acceptance_fast(&self, a: &Acceptance<'_>) -> Result<AcceptanceCommit> {
        let now = ts_to_micros(Timestamp::now());
        let at = Timestamp::now();
        let at = Timestamp::from_microsecond(ts_to_micros(at)).unwrap_or(at);
        let r = a.request;
        let d = self.try_direct_write(|c| {
            let advanced = c
                .prepare_cached(
                    "INSERT INTO request_counters (originator, last_counter, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (originator) DO UPDATE SET \
                     last_counter = excluded.last_counter, updated_at = excluded.updated_at \
                     WHERE request_counters.last_counter < excluded.last_counter",
                )?
                .execute(rusqlite::params![
                    r.originator.to_compact(),
                    u64_to_ordered_i64(a.request_counter),
                    now
                ])?;
            if advanced != 1 {
                return Ok((AcceptanceCommit::StaleCounter, false));
            }
            let inserted = c
                .prepare_cached(
                    "INSERT INTO requests (request_id, originator, device_eui, kind, \
                     execution_time, state, request_xml, command, gbcs_counter, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )?
                .execute(rusqlite::params![
                    r.request_id,
                    r.originator.to_compact(),
                    r.device.to_compact(),
                    r.kind.as_str(),
                    r.execution_time.map(ts_to_micros),
                    RequestState::Accepted.as_str(),
                    r.request_xml,
                    a.command,
                    u64_to_ordered_i64(a.gbcs_counter),
                    now,
                    now
                ]);
            match inserted {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    return Ok((AcceptanceCommit::Duplicate, false));
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(cancelled) = a.cancels {
                c.prepare_cached(
                    "UPDATE requests SET state = $1, updated_at = $2 \
                     WHERE request_id = $3 AND state IN ($4, $5, $6)",
                )?
                .execute(rusqlite::params![
                    RequestState::Cancelled.as_str(),
                    now,
                    cancelled,
                    RequestState::Received.as_str(),
                    RequestState::Accepted.as_str(),
                    RequestState::Dispatched.as_str()
                ])?;
            }
            let (seq, prev): (i64, Vec<u8>) = c
                .prepare_cached(
                    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let prev = hash32("prev_hash", &prev)?;
            let e = &a.audit;
            let canon = canonical(seq as u64, at, [e.actor, e.action, e.subject, e.detail]);
            let hash = chain_hash(&prev, &canon);
            c.prepare_cached(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )?
            .execute(rusqlite::params![
                seq,
                ts_to_micros(at),
                e.actor,
                e.action,
                e.subject,
                e.detail,
                prev.as_slice(),
                hash.as_slice()
            ])?;
            c.prepare_cached("UPDATE audit_head SET hash = $1 WHERE id = 1")?
                .execute([hash.as_slice()])?;
            Ok((AcceptanceCommit::Committed, true))
        });
        match d {
            Direct::Done(r) => r,
            Direct::Unavailable => self.commit_acceptance(a).await,
        }
    }
}
