//! Decisions written whole: the rows that together make an acceptance, or a
//! device answer, committed in one transaction, so that a process killed at
//! any point leaves either all of them or none (the kill-and-restart harness,
//! `crates/ecos/tests/faults.rs`, found both half-written).
//!
//! On SQLite every decision here (acceptance, refusal, device answer,
//! dispatch mark) is written by the group-commit writer thread
//! ([`crate::writer`]): all of a decision's statements in one synchronous
//! call with cached prepared statements, many decisions in one transaction,
//! each in its own savepoint, each caller answered after the `COMMIT`. On
//! PostgreSQL (and on a closed store) the same statements go through the
//! pool, one transaction per decision.

use jiff::Timestamp;
use sqlx::AssertSqlSafe;

use crate::error::{Result, StoreError};
use crate::pipeline::{
    NewAuditEntry, NewRequest, RequestState, canonical, chain_hash, hash32, is_unique_violation,
    u64_to_ordered_i64,
};
use crate::store::{Store, on_pool, ts_to_micros};
use crate::writer::Tx;

/// Advance an originator's RequestID counter, only upwards.
const SQL_ADVANCE_COUNTER: &str = "INSERT INTO request_counters (originator, last_counter, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (originator) DO UPDATE SET \
     last_counter = excluded.last_counter, updated_at = excluded.updated_at \
     WHERE request_counters.last_counter < excluded.last_counter";
/// Store an accepted request.
const SQL_INSERT_ACCEPTED: &str = "INSERT INTO requests (request_id, originator, device_eui, kind, \
     execution_time, state, request_xml, command, gbcs_counter, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
/// Cancel a pending request. States in the WHERE clause are literals: a
/// bound parameter there would make SQLite re-prepare the statement on every
/// execution (its plan depends on it through the partial indexes of schemas
/// 0008 and 0009).
const SQL_CANCEL: &str = "UPDATE requests SET state = $1, updated_at = $2 \
     WHERE request_id = $3 AND state IN ('received', 'accepted', 'dispatched')";
/// Store a refused request, unless its RequestID is stored already.
const SQL_INSERT_REFUSED: &str = "INSERT INTO requests (request_id, originator, device_eui, kind, \
     execution_time, state, decision_reason, request_xml, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (request_id) DO NOTHING";
/// Move a request from `from` to another state (compare and set); `from`
/// is a literal, as in [`SQL_CANCEL`].
fn sql_move(from: RequestState) -> String {
    format!(
        "UPDATE requests SET state = $1, updated_at = $2 WHERE request_id = $3 AND state = '{}'",
        from.as_str()
    )
}
/// A request's state.
const SQL_STATE: &str = "SELECT state FROM requests WHERE request_id = $1";
/// Queue a DUIS response.
const SQL_OUTBOUND: &str = "INSERT INTO outbound (recipient, request_id, kind, body, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

/// An acceptance to commit: see [`Store::commit_acceptance`].
#[derive(Debug, Clone)]
pub struct Acceptance<'a> {
    /// The request, stored in state [`Acceptance::state`].
    pub request: &'a NewRequest,
    /// [`RequestState::Accepted`], or [`RequestState::Dispatched`] when the
    /// caller sends the command as soon as this commits (claimed for
    /// sending in the same write: a crash before the send leaves it to the
    /// time-out sweep, which answers the requester). Any other state is an
    /// error and nothing is written.
    pub state: RequestState,
    /// The DUIS RequestID counter, advanced for the originator.
    pub request_counter: u64,
    /// The GBCS command built for it.
    pub command: &'a [u8],
    /// The command's GBCS originator counter (reserved before).
    pub gbcs_counter: u64,
    /// A request this one cancels (moved to `cancelled`).
    pub cancels: Option<&'a str>,
    /// The audit entry recording the decision.
    pub audit: NewAuditEntry<'a>,
}

/// What [`Store::commit_acceptance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptanceCommit {
    /// Everything written.
    Committed,
    /// Nothing written: the RequestID counter is not above the last one
    /// accepted from the originator (a concurrent request got there first).
    StaleCounter,
    /// Nothing written: a request with this RequestID is stored already.
    Duplicate,
}

/// A device's answer to commit: see [`Store::commit_device_answer`].
#[derive(Debug, Clone)]
pub struct DeviceAnswer<'a> {
    /// The request answered.
    pub request_id: &'a str,
    /// Its new state, moved to only from one of `from`; `None` leaves the
    /// state as it is (an intermediate answer).
    pub transition: Option<(&'a [RequestState], RequestState)>,
    /// The recipient of the DUIS response (the requester).
    pub recipient: &'a str,
    /// The outbound message kind.
    pub kind: &'a str,
    /// The DUIS response.
    pub body: &'a [u8],
    /// The audit entry recording the answer.
    pub audit: NewAuditEntry<'a>,
}

/// Append `$e` to the audit chain inside the transaction `$tx`.
macro_rules! append_audit_in {
    ($tx:expr, $e:expr, $at:expr) => {{
        let (seq, prev): (i64, Vec<u8>) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut *$tx)
                .await?;
        let prev = hash32("prev_hash", &prev)?;
        let e = &$e;
        let canon = canonical(seq as u64, $at, [e.actor, e.action, e.subject, e.detail]);
        let hash = chain_hash(&prev, &canon);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(ts_to_micros($at))
        .bind(e.actor)
        .bind(e.action)
        .bind(e.subject)
        .bind(e.detail)
        .bind(prev.to_vec())
        .bind(hash.to_vec())
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(hash.to_vec())
            .execute(&mut *$tx)
            .await?;
    }};
}

fn audit_instant() -> Timestamp {
    let at = Timestamp::now();
    Timestamp::from_microsecond(ts_to_micros(at)).unwrap_or(at)
}

/// A refusal to commit: see [`Store::commit_refusal`].
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    /// The refused request, to record in state `rejected` with `reason`
    /// (unless a request with its RequestID is stored already: the first
    /// record stays); `None` records only the audit entry.
    pub request: Option<&'a NewRequest>,
    /// The decision reason stored with the request.
    pub reason: &'a str,
    /// The audit entry recording the refusal.
    pub audit: NewAuditEntry<'a>,
}

/// What [`Store::move_request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Moved {
    /// The request was in one of the expected states and is in the new one.
    Moved,
    /// Nothing written: the request is in this other state.
    Unchanged(RequestState),
}

/// An audit entry, owned (for the writer thread).
struct OwnedAudit([String; 4]);

impl OwnedAudit {
    fn new(e: &NewAuditEntry<'_>) -> Self {
        OwnedAudit([
            e.actor.to_owned(),
            e.action.to_owned(),
            e.subject.to_owned(),
            e.detail.to_owned(),
        ])
    }

    fn entry(&self) -> NewAuditEntry<'_> {
        let [actor, action, subject, detail] = &self.0;
        NewAuditEntry {
            actor,
            action,
            subject,
            detail,
        }
    }
}

fn sqlite_unique(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// An acceptance's rows, owned: what the writer thread writes.
struct AcceptanceRows {
    request: NewRequest,
    state: RequestState,
    request_counter: i64,
    command: Vec<u8>,
    gbcs_counter: i64,
    cancels: Option<String>,
    audit: OwnedAudit,
}

impl AcceptanceRows {
    fn new(a: &Acceptance<'_>) -> Self {
        AcceptanceRows {
            request: a.request.clone(),
            state: a.state,
            request_counter: u64_to_ordered_i64(a.request_counter),
            command: a.command.to_vec(),
            gbcs_counter: u64_to_ordered_i64(a.gbcs_counter),
            cancels: a.cancels.map(str::to_owned),
            audit: OwnedAudit::new(&a.audit),
        }
    }

    /// The statements of [`Store::commit_acceptance`], inside the decision's savepoint.
    fn write(self, tx: &mut Tx<'_>) -> Result<(AcceptanceCommit, bool)> {
        let at = audit_instant();
        let now = ts_to_micros(at);
        let (c, r) = (tx.conn, &self.request);
        let originator = r.originator.to_compact();
        let advanced = c
            .prepare_cached(SQL_ADVANCE_COUNTER)?
            .execute(rusqlite::params![originator, self.request_counter, now])?;
        if advanced != 1 {
            return Ok((AcceptanceCommit::StaleCounter, false));
        }
        let inserted = c
            .prepare_cached(SQL_INSERT_ACCEPTED)?
            .execute(rusqlite::params![
                r.request_id,
                originator,
                r.device.to_compact(),
                r.kind.as_str(),
                r.execution_time.map(ts_to_micros),
                self.state.as_str(),
                r.request_xml,
                self.command,
                self.gbcs_counter,
                now,
                now
            ]);
        match inserted {
            Ok(_) => {}
            Err(e) if sqlite_unique(&e) => return Ok((AcceptanceCommit::Duplicate, false)),
            Err(e) => return Err(e.into()),
        }
        if let Some(cancelled) = &self.cancels {
            c.prepare_cached(SQL_CANCEL)?.execute(rusqlite::params![
                RequestState::Cancelled.as_str(),
                now,
                cancelled
            ])?;
        }
        tx.append_audit(&self.audit.entry(), at)?;
        Ok((AcceptanceCommit::Committed, true))
    }
}

impl Store {
    /// Whether decisions go through the SQLite writer thread.
    fn group_commits(&self) -> bool {
        self.open_direct().is_some()
    }

    /// Commit an acceptance in one transaction: advance the originator's
    /// RequestID counter (only if strictly above the last accepted), store
    /// the request in state `accepted` (or `dispatched`: [`Acceptance::state`])
    /// with its command and GBCS counter,
    /// cancel the request it cancels, and append the audit entry. Either
    /// all of it is written or none of it.
    ///
    /// On SQLite it is written by the group-commit writer thread, with the
    /// acceptances and other decisions queued beside it, and this returns
    /// once the transaction holding it committed.
    pub async fn commit_acceptance(&self, a: &Acceptance<'_>) -> Result<AcceptanceCommit> {
        if !matches!(a.state, RequestState::Accepted | RequestState::Dispatched) {
            return Err(StoreError::Invalid(format!(
                "request {:?}: an acceptance is stored as accepted or dispatched, not {}",
                a.request.request_id, a.state
            )));
        }
        if self.group_commits() {
            let rows = AcceptanceRows::new(a);
            if let Some(done) = self.group_write(move |tx| rows.write(tx)).await {
                return done;
            }
        }
        let now = ts_to_micros(Timestamp::now());
        let at = audit_instant();
        let r = a.request;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let advanced = sqlx::query(SQL_ADVANCE_COUNTER)
                .bind(r.originator.to_compact())
                .bind(u64_to_ordered_i64(a.request_counter))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if advanced != 1 {
                return Ok(AcceptanceCommit::StaleCounter);
            }
            let inserted = sqlx::query(SQL_INSERT_ACCEPTED)
                .bind(&r.request_id)
                .bind(r.originator.to_compact())
                .bind(r.device.to_compact())
                .bind(r.kind.as_str())
                .bind(r.execution_time.map(ts_to_micros))
                .bind(a.state.as_str())
                .bind(&r.request_xml)
                .bind(a.command)
                .bind(u64_to_ordered_i64(a.gbcs_counter))
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Ok(AcceptanceCommit::Duplicate),
                Err(e) => return Err(StoreError::from(e)),
            }
            if let Some(cancelled) = a.cancels {
                sqlx::query(SQL_CANCEL)
                    .bind(RequestState::Cancelled.as_str())
                    .bind(now)
                    .bind(cancelled)
                    .execute(&mut *tx)
                    .await?;
            }
            append_audit_in!(tx, a.audit, at);
            tx.commit().await?;
        });
        Ok(AcceptanceCommit::Committed)
    }

    /// [`Store::commit_acceptance`] (which takes the fast path itself: the
    /// SQLite writer thread); kept for its callers.
    pub async fn commit_acceptance_fast(&self, a: &Acceptance<'_>) -> Result<AcceptanceCommit> {
        self.commit_acceptance(a).await
    }

    /// Commit a refusal in one transaction: the refused request recorded in
    /// state `rejected` with its reason (unless its RequestID is stored
    /// already), and the audit entry. Returns whether the request was
    /// recorded.
    pub async fn commit_refusal(&self, f: &Refusal<'_>) -> Result<bool> {
        if self.group_commits() {
            let request = f.request.cloned();
            let reason = f.reason.to_owned();
            let audit = OwnedAudit::new(&f.audit);
            let done = self
                .group_write(move |tx| {
                    let at = audit_instant();
                    let now = ts_to_micros(at);
                    let mut recorded = false;
                    if let Some(r) = &request {
                        recorded = tx.conn.prepare_cached(SQL_INSERT_REFUSED)?.execute(
                            rusqlite::params![
                                r.request_id,
                                r.originator.to_compact(),
                                r.device.to_compact(),
                                r.kind.as_str(),
                                r.execution_time.map(ts_to_micros),
                                RequestState::Rejected.as_str(),
                                reason,
                                r.request_xml,
                                now,
                                now
                            ],
                        )? == 1;
                    }
                    tx.append_audit(&audit.entry(), at)?;
                    Ok((recorded, true))
                })
                .await;
            if let Some(done) = done {
                return done;
            }
        }
        let at = audit_instant();
        let now = ts_to_micros(at);
        let recorded = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let mut recorded = false;
            if let Some(r) = f.request {
                recorded = sqlx::query(SQL_INSERT_REFUSED)
                    .bind(&r.request_id)
                    .bind(r.originator.to_compact())
                    .bind(r.device.to_compact())
                    .bind(r.kind.as_str())
                    .bind(r.execution_time.map(ts_to_micros))
                    .bind(RequestState::Rejected.as_str())
                    .bind(f.reason)
                    .bind(&r.request_xml)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            }
            append_audit_in!(tx, f.audit, at);
            tx.commit().await?;
            recorded
        });
        Ok(recorded)
    }

    /// Move a request to `to` if it is in one of `from` (compare and set),
    /// without reading it back: [`Moved::Unchanged`] with the state it is
    /// in otherwise, [`StoreError::RequestNotFound`] when there is none.
    pub async fn move_request(
        &self,
        request_id: &str,
        from: &[RequestState],
        to: RequestState,
    ) -> Result<Moved> {
        if self.group_commits() {
            let (id, from_owned) = (request_id.to_owned(), from.to_vec());
            let done = self
                .group_write(move |tx| {
                    let now = ts_to_micros(Timestamp::now());
                    let c = tx.conn;
                    for f in &from_owned {
                        let n = c.prepare_cached(&sql_move(*f))?.execute(rusqlite::params![
                            to.as_str(),
                            now,
                            id
                        ])?;
                        if n == 1 {
                            return Ok((Ok(Moved::Moved), true));
                        }
                    }
                    let state: Option<String> = rusqlite::OptionalExtension::optional(
                        c.prepare_cached(SQL_STATE)?.query_row([&id], |r| r.get(0)),
                    )?;
                    Ok((unchanged(&id, state), false))
                })
                .await;
            if let Some(done) = done {
                return done?;
            }
        }
        let now = ts_to_micros(Timestamp::now());
        for f in from {
            let n = on_pool!(self, |p| sqlx::query(AssertSqlSafe(sql_move(*f)))
                .bind(to.as_str())
                .bind(now)
                .bind(request_id)
                .execute(p)
                .await?
                .rows_affected());
            if n == 1 {
                return Ok(Moved::Moved);
            }
        }
        let state: Option<String> = on_pool!(self, |p| sqlx::query_scalar(SQL_STATE)
            .bind(request_id)
            .fetch_optional(p)
            .await?);
        unchanged(request_id, state)
    }

    /// Commit a device's answer in one transaction: move the request to its
    /// new state (compare and set), queue the DUIS response for the
    /// requester, and append the audit entry. Returns `false`, with nothing
    /// written, when the request is no longer in one of the expected states
    /// (the answer was committed already: a repeated device message is not
    /// answered twice).
    pub async fn commit_device_answer(&self, d: &DeviceAnswer<'_>) -> Result<bool> {
        if self.group_commits() {
            let id = d.request_id.to_owned();
            let transition = d.transition.map(|(from, to)| (from.to_vec(), to));
            let (recipient, kind, body) =
                (d.recipient.to_owned(), d.kind.to_owned(), d.body.to_vec());
            let audit = OwnedAudit::new(&d.audit);
            let done = self
                .group_write(move |tx| {
                    let at = audit_instant();
                    let now = ts_to_micros(at);
                    let c = tx.conn;
                    if let Some((from, to)) = &transition {
                        let mut moved = 0;
                        for f in from {
                            moved += c
                                .prepare_cached(&sql_move(*f))?
                                .execute(rusqlite::params![to.as_str(), now, id])?;
                            if moved > 0 {
                                break;
                            }
                        }
                        if moved == 0 {
                            return Ok((false, false));
                        }
                    }
                    c.prepare_cached(SQL_OUTBOUND)?
                        .execute(rusqlite::params![recipient, id, kind, body, now])?;
                    tx.append_audit(&audit.entry(), at)?;
                    Ok((true, true))
                })
                .await;
            if let Some(done) = done {
                return done;
            }
        }
        let now = ts_to_micros(Timestamp::now());
        let at = audit_instant();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            if let Some((from, to)) = d.transition {
                let mut moved = 0;
                for f in from {
                    moved += sqlx::query(AssertSqlSafe(sql_move(*f)))
                        .bind(to.as_str())
                        .bind(now)
                        .bind(d.request_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if moved > 0 {
                        break;
                    }
                }
                if moved == 0 {
                    return Ok(false);
                }
            }
            sqlx::query(SQL_OUTBOUND)
                .bind(d.recipient)
                .bind(d.request_id)
                .bind(d.kind)
                .bind(d.body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            append_audit_in!(tx, d.audit, at);
            tx.commit().await?;
        });
        Ok(true)
    }
}

/// [`Moved::Unchanged`] with the state read, or not found.
fn unchanged(request_id: &str, state: Option<String>) -> Result<Moved> {
    match state {
        None => Err(StoreError::RequestNotFound(request_id.to_owned())),
        Some(s) => s
            .parse()
            .map(Moved::Unchanged)
            .map_err(|_| crate::store::corrupt("requests", "state", &s)),
    }
}

#[cfg(test)]
mod tests {
    //! The writer's batches written by hand: several decisions in one
    //! transaction, each in its own savepoint.

    use std::collections::VecDeque;

    use ecos_smki::Eui64;
    use tokio::sync::oneshot;

    use super::*;
    use crate::writer::{self, Job};
    use crate::{StoreConfig, StoreLocation};

    const SUPPLIER: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x03, 0x00, 0x00]);
    const DEVICE: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);

    async fn store() -> (Store, tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecos.db");
        let s = Store::open(&StoreLocation::Sqlite(path.clone()), StoreConfig::default())
            .await
            .unwrap();
        let c = writer::connection(&path).unwrap();
        (s, dir, c)
    }

    fn request(id: &str) -> NewRequest {
        NewRequest {
            request_id: id.to_owned(),
            originator: SUPPLIER,
            device: DEVICE,
            kind: crate::RequestKind::Immediate,
            execution_time: None,
            request_xml: Some(format!("<request id='{id}'/>")),
        }
    }

    type Answer<T> = oneshot::Receiver<Result<T>>;

    /// An acceptance of request `id` with RequestID counter `counter`, queued.
    fn accept(q: &mut VecDeque<Box<dyn Job>>, id: &str, counter: u64) -> Answer<AcceptanceCommit> {
        let r = request(id);
        let rows = AcceptanceRows::new(&Acceptance {
            request: &r,
            state: RequestState::Accepted,
            request_counter: counter,
            command: b"cmd",
            gbcs_counter: counter + 1000,
            cancels: None,
            audit: NewAuditEntry {
                actor: "test",
                action: "accepted",
                subject: id,
                detail: "{}",
            },
        });
        let (job, answer) = writer::job(move |tx| rows.write(tx));
        q.push_back(job);
        answer
    }

    /// Append an audit entry for a decision that will not be kept.
    fn append_doomed(tx: &mut writer::Tx<'_>) -> Result<()> {
        let entry = NewAuditEntry {
            actor: "test",
            action: "doomed",
            subject: "x",
            detail: "{}",
        };
        tx.append_audit(&entry, audit_instant()).map(|_| ())
    }

    fn answer<T>(mut a: Answer<T>) -> Result<T> {
        a.try_recv().expect("answered")
    }

    async fn subjects(s: &Store) -> Vec<String> {
        s.audit_entries(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.subject)
            .collect()
    }

    #[tokio::test]
    async fn a_duplicate_in_a_batch_rolls_back_only_itself() {
        let (s, _dir, c) = store().await;
        let mut q = VecDeque::new();
        let a1 = accept(&mut q, "r1", 1);
        let a2 = accept(&mut q, "r2", 2);
        // The same RequestID again, with a higher counter: its counter
        // advance is rolled back with it.
        let dup = accept(&mut q, "r1", 3);
        let stale = accept(&mut q, "r0", 2);
        let a4 = accept(&mut q, "r4", 4);
        writer::write_batch(&c, &mut q);
        assert!(q.is_empty());
        assert_eq!(answer(a1).unwrap(), AcceptanceCommit::Committed);
        assert_eq!(answer(a2).unwrap(), AcceptanceCommit::Committed);
        assert_eq!(answer(dup).unwrap(), AcceptanceCommit::Duplicate);
        assert_eq!(answer(stale).unwrap(), AcceptanceCommit::StaleCounter);
        assert_eq!(answer(a4).unwrap(), AcceptanceCommit::Committed);
        assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), Some(4));
        assert!(s.request("r0").await.unwrap().is_none());
        assert_eq!(
            s.request("r1").await.unwrap().unwrap().gbcs_counter,
            Some(1001)
        );
        // One chain, in queue order, without the rolled-back entries.
        assert_eq!(subjects(&s).await, ["r1", "r2", "r4"]);
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (3, None));
    }

    #[tokio::test]
    async fn a_failing_decision_rolls_back_only_itself() {
        let (s, _dir, c) = store().await;
        let mut q = VecDeque::new();
        let a1 = accept(&mut q, "r1", 1);
        // Appends an audit entry, then fails: its entry and its sequence
        // number are given back.
        let (job, failed) = writer::job(|tx| {
            append_doomed(tx)?;
            tx.conn
                .execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(((), true))
        });
        q.push_back(job);
        let a2 = accept(&mut q, "r2", 2);
        writer::write_batch(&c, &mut q);
        assert_eq!(answer(a1).unwrap(), AcceptanceCommit::Committed);
        assert!(matches!(answer(failed), Err(StoreError::Sqlite(_))));
        assert_eq!(answer(a2).unwrap(), AcceptanceCommit::Committed);
        assert_eq!(subjects(&s).await, ["r1", "r2"]);
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (2, None));
        // The next batch goes on from the same head.
        let a3 = accept(&mut q, "r3", 3);
        writer::write_batch(&c, &mut q);
        assert_eq!(answer(a3).unwrap(), AcceptanceCommit::Committed);
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (3, None));
    }

    #[tokio::test]
    async fn a_panicking_decision_rolls_back_only_itself() {
        let (s, _dir, c) = store().await;
        let mut q = VecDeque::new();
        let a1 = accept(&mut q, "r1", 1);
        let (job, panicked) = writer::job(|tx| -> Result<((), bool)> {
            append_doomed(tx)?;
            panic!("a bug in a decision");
        });
        q.push_back(job);
        let a2 = accept(&mut q, "r2", 2);
        writer::write_batch(&c, &mut q);
        assert_eq!(answer(a1).unwrap(), AcceptanceCommit::Committed);
        match answer(panicked) {
            Err(StoreError::Sqlite(m)) => assert!(m.contains("a bug in a decision"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(answer(a2).unwrap(), AcceptanceCommit::Committed);
        assert_eq!(subjects(&s).await, ["r1", "r2"]);
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (2, None));
    }

    #[tokio::test]
    async fn callers_are_answered_after_the_commit() {
        let (s, dir, c) = store().await;
        let mut q = VecDeque::new();
        let a1 = accept(&mut q, "r1", 1);
        let a1 = std::sync::Arc::new(std::sync::Mutex::new(a1));
        let path = dir.path().join("ecos.db");
        let (job, probe) = writer::job({
            let a1 = a1.clone();
            move |_tx| {
                // Written, not committed: no answer yet, and another
                // connection does not see it.
                let unanswered = a1.lock().unwrap().try_recv().is_err();
                let other = rusqlite::Connection::open(&path)?;
                let seen: i64 = other.query_row(
                    "SELECT count(*) FROM requests WHERE request_id = 'r1'",
                    [],
                    |r| r.get(0),
                )?;
                Ok(((unanswered, seen), true))
            }
        });
        q.push_back(job);
        writer::write_batch(&c, &mut q);
        assert_eq!(answer(probe).unwrap(), (true, 0));
        let a1 = std::sync::Arc::try_unwrap(a1)
            .unwrap()
            .into_inner()
            .unwrap();
        assert_eq!(answer(a1).unwrap(), AcceptanceCommit::Committed);
        assert!(s.request("r1").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_batch_that_cannot_begin_answers_everyone_with_an_error() {
        let (s, dir, c) = store().await;
        c.busy_timeout(std::time::Duration::ZERO).unwrap();
        let holder = rusqlite::Connection::open(dir.path().join("ecos.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut q = VecDeque::new();
        let a1 = accept(&mut q, "r1", 1);
        let a2 = accept(&mut q, "r2", 2);
        writer::write_batch(&c, &mut q);
        assert!(matches!(answer(a1), Err(StoreError::Sqlite(_))));
        assert!(matches!(answer(a2), Err(StoreError::Sqlite(_))));
        holder.execute_batch("COMMIT").unwrap();
        assert!(s.request("r1").await.unwrap().is_none());
        assert_eq!(s.last_request_counter(SUPPLIER).await.unwrap(), None);
        let v = s.verify_audit_chain().await.unwrap();
        assert_eq!((v.entries, v.first_broken), (0, None));
    }
}
