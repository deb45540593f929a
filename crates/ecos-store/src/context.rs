//! The request context: what the 6.23 checks read about a request's
//! originator, RequestID and target device beyond the inventory and the
//! registration data, in one read.
//!
//! On SQLite it is one read transaction on a direct connection (one
//! consistent snapshot, four indexed point reads, no hand-over to sqlx's
//! worker thread); on PostgreSQL the same four reads through the pool.
//!
//! The GBCS counter blocks are reserved here; on SQLite the durable write
//! goes through the group-commit writer thread ([`crate::writer`]), on
//! PostgreSQL through the pool.

use ecos_smki::Eui64;
use rusqlite::OptionalExtension;

use crate::error::Result;
use crate::migration::MigrationState;
use crate::model::{Device, Registration, ServiceUser};
use crate::mpxn::Mpxn;
use crate::pipeline::{RequestState, ordered_i64_to_u64, u64_to_ordered_i64};
use crate::store::{ServiceUserTuple, Store, corrupt};

/// The pending future-dated request of a device, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Its RequestID.
    pub request_id: String,
    /// Its originator.
    pub originator: Eui64,
}

/// Everything the 6.23 checks read from the store for one request
/// ([`Store::check_context`]).
#[derive(Debug, Clone)]
pub struct CheckContext {
    /// The requester's service-user record.
    pub service_user: Option<ServiceUser>,
    /// The target device.
    pub device: Option<Device>,
    /// The registration history of the requested MPxN, oldest first (empty
    /// when it was not asked for or has none).
    pub registrations: Vec<Registration>,
    /// The request's context.
    pub request: RequestContext,
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
/// The kind and states are literals (`RequestKind::FutureDated`, `RequestState::Received`,
/// `Accepted`, `Dispatched`; a test holds them equal), not parameters: with partial indexes
/// on `kind`/`state` (schema 0009) SQLite's planner reads the values bound to parameters
/// compared with those columns, and re-prepares the statement whenever one is bound again,
/// i.e. on every execution (perf: `sqlite3Reprepare` ~10% of the pipeline's CPU).
const SQL_PENDING: &str = "SELECT request_id, originator FROM requests WHERE device_eui = $1 \
     AND kind = 'future-dated' AND state IN ('received', 'accepted', 'dispatched') \
     ORDER BY execution_time, created_at LIMIT 1";
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
    pub(crate) fn open_direct(&self) -> Option<&crate::direct::SqliteDirect> {
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
        let raw: Raw = if let Some(direct) = self.open_direct() {
            direct.read(|c| crate::direct::snapshot(c, |c| read_raw(c, request_id, &org, &dev)))?
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
                let pending: Option<(String, String)> = sqlx::query_as(SQL_PENDING)
                    .bind(&dev)
                    .fetch_optional(p)
                    .await?;
                let migration: Option<String> = sqlx::query_scalar(SQL_MIGRATION)
                    .bind(&dev)
                    .fetch_optional(p)
                    .await?;
                (state, counter, pending, migration)
            })
        };
        context_from_raw(raw)
    }

    /// What the 6.23 checks read from the store about one request: the
    /// requester's service-user record, the target device, the
    /// registration history of `mpxn` (when given) and the
    /// [`Store::request_context`]. On SQLite one read transaction on a
    /// direct connection (one snapshot); on PostgreSQL the single reads.
    pub async fn check_context(
        &self,
        originator: Eui64,
        request_id: &str,
        device: Eui64,
        mpxn: Option<&Mpxn>,
    ) -> Result<CheckContext> {
        let Some(direct) = self.open_direct() else {
            return Ok(CheckContext {
                service_user: self.service_user(originator).await?,
                device: self.device(device).await?,
                registrations: match mpxn {
                    Some(m) => self.registration_history(m).await?,
                    None => Vec::new(),
                },
                request: self.request_context(originator, request_id, device).await?,
            });
        };
        let (org, dev) = (originator.to_compact(), device.to_compact());
        let (user, device_row, regs, raw) = direct.read(|c| {
            crate::direct::snapshot(c, |tx| {
                let user: Option<ServiceUserTuple> = tx
                    .prepare_cached(crate::store::SQL_SERVICE_USER)?
                    .query_row([&org], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()?;
                let device_row = tx
                    .prepare_cached(SQL_DEVICE)?
                    .query_row([&dev], crate::store::dev_row)
                    .optional()?;
                let regs = match mpxn {
                    Some(m) => crate::direct::history(tx, m.as_str())?,
                    None => Vec::new(),
                };
                let raw = read_raw(tx, request_id, &org, &dev)?;
                Ok((user, device_row, regs, raw))
            })
        })?;
        Ok(CheckContext {
            service_user: user
                .map(crate::store::service_user_from_tuple)
                .transpose()?,
            device: device_row.map(crate::store::dev_from_tuple).transpose()?,
            registrations: regs
                .into_iter()
                .map(crate::store::reg_from_tuple)
                .collect::<Result<_>>()?,
            request: context_from_raw(raw)?,
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

/// The device row by EUI, with [`Store::device`]'s columns (`DEV_COLS`,
/// read by `dev_row`; a test holds them equal).
const SQL_DEVICE: &str = "SELECT eui, device_type, status, mpxn, cos_credential, ka_cert, \
     ds_cert, comms_hub_eui, csp_region, firmware_version, last_contact FROM devices WHERE eui = $1";

/// The four request-context reads, in `tx`'s read transaction.
fn read_raw(
    tx: &rusqlite::Connection,
    request_id: &str,
    org: &str,
    dev: &str,
) -> rusqlite::Result<Raw> {
    let state = tx
        .prepare_cached(SQL_STATE)?
        .query_row([request_id], |r| r.get(0))
        .optional()?;
    let counter = tx
        .prepare_cached(SQL_COUNTER)?
        .query_row([org], |r| r.get(0))
        .optional()?;
    let pending = tx
        .prepare_cached(SQL_PENDING)?
        .query_row([dev], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let migration = tx
        .prepare_cached(SQL_MIGRATION)?
        .query_row([dev], |r| r.get(0))
        .optional()?;
    Ok((state, counter, pending, migration))
}

fn context_from_raw(raw: Raw) -> Result<RequestContext> {
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

/// A block of reserved GBCS counters in hand: `next..end`, used until `until`.
#[derive(Debug)]
pub(crate) struct CounterBlock {
    next: u64,
    end: u64,
    until: std::time::Instant,
}

/// The blocks in hand, by party; the lock also orders reservations.
pub(crate) type CounterBlocks = tokio::sync::Mutex<std::collections::HashMap<Eui64, CounterBlock>>;

impl Store {
    /// Write `body` as one decision through the SQLite writer thread (group
    /// commit, [`crate::writer`]): its value once the transaction holding it
    /// committed. `None` when there is no writer (PostgreSQL, or the store
    /// was closed): the caller goes through the pool.
    pub(crate) async fn group_write<T, F>(&self, body: F) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::writer::Tx<'_>) -> Result<(T, bool)> + Send + 'static,
    {
        self.open_direct()?.writer.write(body).await
    }

    /// Reserve one GBCS originator counter for `party`: strictly above every
    /// counter reserved before for that party, on any node, across restarts
    /// (as [`Store::reserve_gbcs_counters`]).
    ///
    /// Counters are reserved durably [`crate::StoreConfig::gbcs_counter_block`]
    /// at a time and handed out from memory, in order, to every clone of
    /// this store; a block is dropped (its rest skipped) after
    /// [`crate::StoreConfig::gbcs_counter_block_ttl`] and when
    /// [`Store::reserve_gbcs_counters`] reserves for the same party. A
    /// crash skips the rest of the block in hand; no counter is reissued.
    /// On SQLite the durable write goes through the writer thread.
    pub async fn reserve_gbcs_counter(&self, party: Eui64) -> Result<u64> {
        let size = self
            .config
            .gbcs_counter_block
            .clamp(1, crate::pipeline::MAX_RESERVATION);
        if size == 1 {
            return Ok(self.reserve_block(party, 1).await?.start);
        }
        let mut blocks = self.counter_blocks.lock().await;
        let now = std::time::Instant::now();
        if let Some(b) = blocks.get_mut(&party)
            && b.next < b.end
            && now < b.until
        {
            b.next += 1;
            return Ok(b.next - 1);
        }
        blocks.remove(&party);
        let range = match self.reserve_block(party, size).await {
            // Near the end of the counter space: one at a time.
            Err(crate::StoreError::CounterExhausted { .. }) => self.reserve_block(party, 1).await?,
            r => r?,
        };
        blocks.insert(
            party,
            CounterBlock {
                next: range.start + 1,
                end: range.end,
                until: now + self.config.gbcs_counter_block_ttl,
            },
        );
        Ok(range.start)
    }

    /// Reserve `n` counters durably: [`Store::reserve_gbcs_counters`]'s
    /// rows, through the writer thread on SQLite.
    async fn reserve_block(&self, party: Eui64, n: u64) -> Result<std::ops::Range<u64>> {
        let floor = self.config.gbcs_counter_floor;
        let exhausted = || crate::StoreError::CounterExhausted {
            party: party.to_string(),
        };
        let first = floor.checked_add(1).ok_or_else(exhausted)?;
        let (first, limit) = (u64_to_ordered_i64(first), u64_to_ordered_i64(u64::MAX - n));
        let key = party.to_compact();
        let d = self
            .group_write(move |tx| {
                let c = tx.conn;
                c.prepare_cached(
                    "INSERT INTO gbcs_counters (party, next_counter) VALUES ($1, $2) \
                     ON CONFLICT (party) DO NOTHING",
                )?
                .execute(rusqlite::params![key, first])?;
                let next: Option<i64> = c
                    .prepare_cached(
                        "UPDATE gbcs_counters SET next_counter = \
                         (CASE WHEN next_counter < $1 THEN $1 ELSE next_counter END) + $2 \
                         WHERE party = $3 AND (CASE WHEN next_counter < $1 THEN $1 ELSE next_counter END) <= $4 \
                         RETURNING next_counter",
                    )?
                    // SQLite numbers `$N` parameters in order of first appearance.
                    .query_row(rusqlite::params![first, n as i64, key, limit], |r| r.get(0))
                    .optional()?;
                Ok((next, next.is_some()))
            })
            .await;
        match d {
            Some(r) => {
                let end = ordered_i64_to_u64(r?.ok_or_else(exhausted)?);
                Ok(end - n..end)
            }
            None => self.reserve_gbcs_counters_durable(party, n).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_query_has_the_device_columns() {
        assert_eq!(
            super::SQL_DEVICE,
            format!(
                "SELECT {} FROM devices WHERE eui = $1",
                crate::store::DEV_COLS
            )
        );
    }

    /// The checks ask for the device's pending request on every 6.23: one
    /// seek in the partial index of schema 0010, without a table for the
    /// IN list or a sort.
    #[tokio::test]
    async fn pending_query_is_one_seek_in_its_index() {
        assert_eq!(
            crate::sqlite_plan(super::SQL_PENDING).await,
            ["SEARCH requests USING INDEX requests_device_pending (device_eui=?)"]
        );
    }

    #[test]
    fn pending_query_names_the_kind_and_states_as_stored() {
        use crate::pipeline::{RequestKind, RequestState};
        let want = format!(
            "kind = '{}' AND state IN ('{}', '{}', '{}')",
            RequestKind::FutureDated.as_str(),
            RequestState::Received.as_str(),
            RequestState::Accepted.as_str(),
            RequestState::Dispatched.as_str()
        );
        assert!(super::SQL_PENDING.contains(&want), "{}", super::SQL_PENDING);
    }
}
