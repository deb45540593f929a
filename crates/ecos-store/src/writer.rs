//! Group commit on SQLite: the pipeline's decisions written by one thread.
//!
//! Every decision of the pipeline (an acceptance committed whole, a refusal,
//! a device's answer, a request marked dispatched, a block of GBCS counters)
//! is a small write transaction. Written one by one, each pays a commit: the
//! WAL frames of every page it touched, including the pages every decision
//! touches (the audit head, the tail of the audit log and of the requests
//! table, their indexes), and on the pool one round trip to sqlx's worker
//! thread per statement (~35 µs each, see [`crate::direct`]).
//!
//! Here one dedicated thread owns one rusqlite connection with cached
//! prepared statements. Callers hand it a decision (an owned closure) over a
//! channel and wait on a oneshot; the caller's thread (a tokio worker) never
//! waits for the SQLite lock. The thread takes every decision waiting in its
//! queue, up to [`MAX_BATCH`], and writes them in one `BEGIN IMMEDIATE …
//! COMMIT`, each inside its own `SAVEPOINT`: a decision that says "nothing
//! written" (a duplicate RequestID, a stale counter) or fails rolls back to
//! its savepoint, and the others go on. Every caller gets its own result, and
//! only after the `COMMIT` that holds its decision (an acknowledgement never
//! leaves before its decision is durable); when the batch's transaction
//! fails, every decision in it gets the error (none of them was written).
//!
//! The audit chain stays one chain: the head is read once after `BEGIN
//! IMMEDIATE` (the write lock is held, so no other connection appends
//! meanwhile), each decision appends its entries in queue order with the
//! same canonical form and hash as [`crate::Store::append_audit`], a
//! decision rolled back gives its sequence numbers back, and the head is
//! written once before the `COMMIT`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use jiff::Timestamp;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};
use crate::pipeline::{NewAuditEntry, canonical, chain_hash, hash32};
use crate::store::ts_to_micros;

/// Decisions written in one transaction at most.
pub(crate) const MAX_BATCH: usize = 64;

/// The audit chain's head as the batch has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AuditHead {
    seq: i64,
    hash: [u8; 32],
}

/// What a decision writes with: the connection (inside the decision's
/// savepoint) and the batch's audit head.
pub(crate) struct Tx<'a> {
    /// The writer's connection, inside the decision's savepoint.
    pub(crate) conn: &'a Connection,
    head: &'a mut AuditHead,
}

impl Tx<'_> {
    /// Append `e` to the audit chain, appended at `at` (whole microseconds).
    /// Returns its sequence number, the previous entry's hash and its hash.
    pub(crate) fn append_audit(
        &mut self,
        e: &NewAuditEntry<'_>,
        at: Timestamp,
    ) -> Result<(u64, [u8; 32], [u8; 32])> {
        let prev = self.head.hash;
        let seq = self.head.seq + 1;
        let canon = canonical(seq as u64, at, [e.actor, e.action, e.subject, e.detail]);
        let hash = chain_hash(&self.head.hash, &canon);
        self.conn
            .prepare_cached(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(rusqlite::params![
                seq,
                ts_to_micros(at),
                e.actor,
                e.action,
                e.subject,
                e.detail,
                self.head.hash.as_slice(),
                hash.as_slice()
            ])?;
        *self.head = AuditHead { seq, hash };
        Ok((seq as u64, prev, hash))
    }
}

/// One decision in the queue.
pub(crate) trait Job: Send {
    /// Write the decision (inside its savepoint); whether to keep it.
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Answer the caller: `batch` is `None` when the transaction holding the
    /// decision committed, else why it did not.
    fn answer(self: Box<Self>, batch: Option<&str>);
}

/// A decision with its body and its caller's reply.
struct Typed<T, F> {
    body: Option<F>,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&mut Tx<'_>) -> Result<(T, bool)> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let Some(body) = self.body.take() else {
            return false;
        };
        // A decision that panics (a bug) is one failed decision: rolled back
        // to its savepoint and answered with the error, while the thread goes
        // on writing everyone else's; otherwise every later write would fail
        // until the service restarts.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(tx)));
        match ran {
            Ok(Ok((v, keep))) => {
                self.out = Some(Ok(v));
                keep
            }
            Ok(Err(e)) => {
                self.out = Some(Err(e));
                false
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                self.out = Some(Err(StoreError::Sqlite(format!(
                    "the decision's write panicked, nothing of it was written: {why}"
                ))));
                false
            }
        }
    }

    fn answer(self: Box<Self>, batch: Option<&str>) {
        let out = match (self.out, batch) {
            // Its own failure is its answer, whatever the batch did.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (_, Some(why)) => Err(StoreError::Sqlite(format!(
                "the write transaction failed, nothing was written: {why}"
            ))),
            (None, None) => Err(StoreError::Sqlite("the decision was not written".into())),
        };
        // A caller that went away meanwhile has nothing to hear.
        let _ = self.reply.send(out);
    }
}

enum State {
    /// Not started (started by the first decision).
    Idle,
    Running {
        queue: mpsc::Sender<Box<dyn Job>>,
        thread: JoinHandle<()>,
    },
    Closed,
}

/// The writer thread of one SQLite file.
pub(crate) struct Writer {
    path: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

impl Writer {
    /// A writer for the database at `path` (its thread starts with the first decision).
    pub(crate) fn new(path: &Path) -> Writer {
        Writer {
            path: path.to_path_buf(),
            state: Mutex::new(State::Idle),
        }
    }

    /// Write `body` as one decision of a batch and wait for its answer,
    /// which comes after the batch committed. `body` returns its value and
    /// whether to keep what it wrote (`false` rolls back to its savepoint).
    /// `None` when the writer is closed (nothing was queued).
    pub(crate) async fn write<T, F>(&self, body: F) -> Option<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<(T, bool)> + Send + 'static,
    {
        let (job, answer) = job(body);
        match self.submit(job) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some(answer.await.unwrap_or_else(|_| {
            Err(StoreError::Sqlite(
                "the SQLite writer thread stopped before answering".into(),
            ))
        }))
    }

    /// Queue a job, starting the thread if needed; `false` when closed.
    fn submit(&self, job: Box<dyn Job>) -> Result<bool> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if matches!(*state, State::Idle) {
            let conn = open_writer(&self.path)?;
            let (queue, rx) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name("ecos-sqlite-writer".into())
                .spawn(move || run(conn, rx))
                .map_err(|e| StoreError::Sqlite(format!("starting the writer thread: {e}")))?;
            *state = State::Running { queue, thread };
        }
        match &*state {
            State::Running { queue, .. } => queue
                .send(job)
                .map(|_| true)
                .map_err(|_| StoreError::Sqlite("the SQLite writer thread has stopped".into())),
            _ => Ok(false),
        }
    }

    /// Stop taking decisions; the thread ends once it has written the ones
    /// queued. Returns the thread to join, if it ran.
    pub(crate) fn close(&self) -> Option<JoinHandle<()>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, State::Closed) {
            State::Running { queue, thread } => {
                drop(queue);
                Some(thread)
            }
            _ => None,
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Sqlite("a thread panicked holding the SQLite writer".into())
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = crate::direct::open_conn(path, false)?;
    conn.pragma_update(None, "cache_size", -65536)?;
    // Savepoints roll back from the statement journal: keep it in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// The thread: take what is queued, write it, answer; until every sender is gone.
fn run(conn: Connection, rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = VecDeque::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push_back(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push_back(j),
                Err(_) => break,
            }
        }
        write_batch(&conn, &mut batch);
    }
}

fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// A decision to queue and the receiver of its answer.
pub(crate) fn job<T, F>(body: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<(T, bool)> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(Typed {
        body: Some(body),
        out: None,
        reply,
    });
    (job, answer)
}

/// The writer's connection on `path` (for tests that write a batch by hand).
#[cfg(test)]
pub(crate) fn connection(path: &Path) -> Result<Connection> {
    open_writer(path)
}

/// Write and answer every job of `pending` (emptied): one transaction, or
/// more when one is lost midway (an I/O error rolls a transaction back
/// whole: the jobs written in it are answered with the error, the rest go on
/// in a new one).
pub(crate) fn write_batch(c: &Connection, pending: &mut VecDeque<Box<dyn Job>>) {
    while !pending.is_empty() {
        if let Err(e) = exec(c, "BEGIN IMMEDIATE") {
            let why = e.to_string();
            pending.drain(..).for_each(|j| j.answer(Some(&why)));
            return;
        }
        let mut head = match read_head(c) {
            Ok(h) => h,
            Err(e) => {
                let _ = c.execute_batch("ROLLBACK");
                let why = e.to_string();
                pending.drain(..).for_each(|j| j.answer(Some(&why)));
                return;
            }
        };
        let start = head;
        let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(pending.len());
        let mut lost: Option<String> = None;
        while let Some(mut job) = pending.pop_front() {
            if let Err(e) = exec(c, "SAVEPOINT decision") {
                let why = e.to_string();
                job.answer(Some(&why));
                lost = Some(why);
                break;
            }
            let before = head;
            let keep = job.run(&mut Tx {
                conn: c,
                head: &mut head,
            });
            if c.is_autocommit() {
                // The transaction is gone (SQLite rolled it back whole).
                job.answer(Some("the transaction was rolled back"));
                lost = Some("an earlier decision's write failed and rolled the batch back".into());
                break;
            }
            let ended = if keep {
                exec(c, "RELEASE decision")
            } else {
                head = before;
                exec(c, "ROLLBACK TO decision").and_then(|_| exec(c, "RELEASE decision"))
            };
            match ended {
                Ok(()) => done.push(job),
                Err(e) => {
                    lost = Some(e.to_string());
                    job.answer(lost.as_deref());
                    break;
                }
            }
        }
        let committed = match lost {
            Some(why) => Err(why),
            None => (if head != start {
                write_head(c, head)
            } else {
                Ok(())
            })
            .and_then(|_| exec(c, "COMMIT"))
            .map_err(|e| e.to_string()),
        };
        match committed {
            Ok(()) => done.into_iter().for_each(|j| j.answer(None)),
            Err(why) => {
                if !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                done.into_iter().for_each(|j| j.answer(Some(&why)));
            }
        }
    }
}

fn read_head(c: &Connection) -> Result<AuditHead> {
    let (seq, hash): (i64, Vec<u8>) = c
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(AuditHead {
        seq,
        hash: hash32("hash", &hash)?,
    })
}

fn write_head(c: &Connection, head: AuditHead) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
        .execute(rusqlite::params![head.seq, head.hash.as_slice()])
        .map(|_| ())
}
