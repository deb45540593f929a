//! Direct, synchronous SQLite access beside the sqlx pool, for the two paths where sqlx's
//! per-call overhead dominates: point reads (the supplier-at-instant question, device and
//! service-user look-ups) and bulk registration writes.
//!
//! sqlx runs every SQLite connection on its own worker thread and hands each statement over
//! a channel: a point read costs about as much as a bare `SELECT 1` through it (~35 µs on the
//! reference machine), ten times the query itself. Here a small pool of rusqlite connections
//! on the same database file (same process, same SQLite library, WAL journal) answers reads
//! with cached prepared statements on the calling thread. Correctness needs no cache
//! invalidation: every statement runs in its own read transaction and sees every transaction
//! committed before it started, whichever connection committed it.
//!
//! Bulk registration writes run on a blocking thread (`spawn_blocking`) as one `BEGIN
//! IMMEDIATE` transaction with one prepared single-row `INSERT`, reused for every row.
//!
//! The pipeline's decisions (acceptances, refusals, device answers, dispatch marks, GBCS
//! counter blocks) are written by the group-commit writer thread ([`crate::writer`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use jiff::civil::Date;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::error::{Result, StoreError};
use crate::import::{Feed, FileKind, ImportOptions, ImportProgress, ImportStage, RegPlan, RegRow};
use crate::model::Registration;
use crate::mpxn::Mpxn;
use crate::writer::Writer;

/// Idle read connections kept.
const MAX_IDLE: usize = 8;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

/// A pool of synchronous read connections on one SQLite file, and the
/// writer thread that commits the pipeline's decisions ([`Writer`]).
#[derive(Debug)]
pub(crate) struct SqliteDirect {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The group-commit writer (its own connection, on its own thread).
    pub(crate) writer: Writer,
}

/// Open a connection on the store's file with the store's settings.
pub(crate) fn open_conn(path: &Path, read_only: bool) -> Result<Connection> {
    // Read-write flags even for readers: a read-only connection cannot open a WAL database
    // whose -shm file is missing (after the last writer closed); `query_only` guards instead.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if read_only {
        conn.pragma_update(None, "query_only", "ON")?;
        conn.pragma_update(None, "cache_size", -65536)?;
        // Point reads on a large table are random page reads: map the file instead of a
        // read(2) per page that is not in this connection's cache.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    } else {
        conn.pragma_update(None, "cache_size", -262_144)?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl SqliteDirect {
    /// Direct access to the (existing, migrated) database at `path`.
    pub(crate) fn new(path: &Path) -> Result<SqliteDirect> {
        let first = open_conn(path, true)?;
        Ok(SqliteDirect {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![first]),
            writer: Writer::new(path),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read on an idle connection (opening one when none is idle).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.idle.lock().map_err(|_| poisoned())?.pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path, true)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().map_err(|_| poisoned())?;
        // A connection left inside a transaction (a reader that did not end
        // its own) is dropped, not handed to the next reader.
        if idle.len() < MAX_IDLE && conn.is_autocommit() {
            idle.push(conn);
        }
        Ok(out?)
    }

    /// Close the idle connections and stop the writer; returns the writer
    /// thread to join (it ends once the decisions queued are written).
    pub(crate) fn close(&self) -> Option<std::thread::JoinHandle<()>> {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        self.writer.close()
    }
}

/// Run `f` in one read transaction on `c` (one snapshot of the database).
///
/// `BEGIN` and `COMMIT` are cached statements: rusqlite's `Transaction`
/// prepares both afresh on every use, which cost a point read (the parser
/// and code generator, about 1.5 µs) twice per snapshot. On an error the
/// transaction is rolled back; a connection left inside one (a failed
/// `COMMIT`) is not handed out again by [`SqliteDirect::read`].
pub(crate) fn snapshot<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached("BEGIN")?.execute([])?;
    match f(c) {
        Ok(v) => {
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            // The error that ended the read is the one to report.
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Sqlite("a thread panicked holding the read connection pool".into())
}

/// One registration row as stored.
pub(crate) type RegTuple = (String, String, String, Option<String>, String, i64);

pub(crate) fn reg_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RegTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// The period of `mpxn` starting last on or before `date` (`YYYY-MM-DD`), read without
/// parsing the MPxN back (the key is the one asked about). The inner result reports a
/// stored value that does not parse.
pub(crate) fn supplier_on(
    c: &Connection,
    mpxn: &Mpxn,
    date: &str,
) -> rusqlite::Result<Option<Result<Registration>>> {
    c.prepare_cached(
        "SELECT supplier_mpid, effective_from, effective_to, source_file, source_line \
         FROM registration WHERE mpxn = ?1 AND effective_from <= ?2 \
         ORDER BY effective_from DESC LIMIT 1",
    )?
    .query_row(params![mpxn.as_str(), date], |r| {
        let from = date_col("effective_from", r.get_ref(1)?.as_str()?);
        let to = match r.get_ref(2)?.as_str_or_null()? {
            Some(s) => date_col("effective_to", s).map(Some),
            None => Ok(None),
        };
        let mpid: String = r.get(0)?;
        let source_file: String = r.get(3)?;
        let source_line: i64 = r.get(4)?;
        Ok(from.and_then(|effective_from| {
            Ok(Registration {
                mpxn: mpxn.clone(),
                mpid,
                effective_from,
                effective_to: to?,
                source_file,
                source_line: source_line as u64,
            })
        }))
    })
    .optional()
}

/// A stored registration date.
pub(crate) fn date_col(column: &'static str, s: &str) -> Result<Date> {
    crate::import::fast_date(s.as_bytes())
        .map(Ok)
        .unwrap_or_else(|| {
            s.parse::<Date>()
                .map_err(|_| crate::store::corrupt("registration", column, s))
        })
}

/// The whole history of `mpxn`, oldest first.
pub(crate) fn history(c: &Connection, mpxn: &str) -> rusqlite::Result<Vec<RegTuple>> {
    let mut st = c.prepare_cached(
        "SELECT mpxn, supplier_mpid, effective_from, effective_to, source_file, source_line \
         FROM registration WHERE mpxn = ?1 ORDER BY effective_from",
    )?;
    let rows = st.query_map(params![mpxn], reg_row)?;
    rows.collect()
}

/// Where a full refresh ends the provider's periods of MPxNs it does not list.
#[derive(Debug, Clone)]
pub(crate) struct FullRefreshEnd {
    /// The provider (`import_files.source`).
    pub source: String,
    /// The last day of the ended periods (`YYYY-MM-DD`): the day before the refresh's date.
    pub last_day: String,
}

/// What a registration write did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteOutcome {
    pub written: u64,
    pub removed: u64,
    pub end_dated: u64,
}

/// The SQL that ends (or, when they start after the end, removes) a provider's periods that
/// are open past `last_day`, for MPxNs a full refresh does not list. The full refresh's own
/// rows are not matched: its file record is written after this runs. `$1` is the provider,
/// `$2` the last day.
pub(crate) const FULL_REFRESH_DELETE: &str = "DELETE FROM registration \
     WHERE effective_from > $2 AND source_file IN \
     (SELECT file_id FROM import_files WHERE kind = 'registration' AND source = $1)";
/// See [`FULL_REFRESH_DELETE`].
pub(crate) const FULL_REFRESH_END: &str = "UPDATE registration SET effective_to = $2 \
     WHERE (effective_to IS NULL OR effective_to > $2) AND source_file IN \
     (SELECT file_id FROM import_files WHERE kind = 'registration' AND source = $1)";

/// The `import_files` record of a file.
pub(crate) const FILE_RECORD: &str = "INSERT INTO import_files \
     (file_id, kind, mode, source, sequence, sha256, row_count, imported_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The registration table's secondary indexes (name, `CREATE INDEX` statement).
fn secondary_indexes(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st = c.prepare(
        "SELECT name, sql FROM sqlite_master \
         WHERE type = 'index' AND tbl_name = 'registration' AND sql IS NOT NULL",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// One registration write transaction on its own connection (`BEGIN IMMEDIATE`: the write
/// lock is taken first).
///
/// Into an empty table the secondary indexes are dropped first and built again after the
/// rows (one sort instead of a random B-tree insert per row), inside the same transaction.
/// The journal stays WAL with `synchronous=NORMAL`: the import is one transaction, and its
/// atomicity (a crash leaves the store as it was) needs the journal; a WAL commit is not
/// synced anyway, only a checkpoint is, so there is nothing to gain from `synchronous=OFF`
/// that would be worth losing crash safety for.
struct Bulk<'c> {
    tx: rusqlite::Transaction<'c>,
    /// Whether the table held rows at the start (listed MPxNs then need a delete first).
    any: bool,
    /// Secondary indexes dropped for the load, to build at the end.
    rebuild: Vec<(String, String)>,
    out: WriteOutcome,
    /// The MPxN of the last row inserted.
    last: Option<Mpxn>,
    /// When the table held rows: the MPxNs whose old history is deleted already.
    replaced: HashSet<Mpxn>,
}

impl<'c> Bulk<'c> {
    fn begin(conn: &'c mut Connection, expect_rows: u64) -> Result<Bulk<'c>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let any: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM registration)", [], |r| {
            r.get(0)
        })?;
        let mut rebuild = Vec::new();
        if !any && expect_rows >= BULK_INDEX_ROWS {
            rebuild = secondary_indexes(&tx)?;
            for (name, _) in &rebuild {
                tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
            }
        }
        Ok(Bulk {
            tx,
            any,
            rebuild,
            out: WriteOutcome::default(),
            last: None,
            replaced: HashSet::new(),
        })
    }

    /// Insert rows, in any order. The first row of an MPxN replaces its history (when the
    /// table held rows). Only the columns that change are bound for each row: a bound value
    /// stays bound across executions.
    fn insert(&mut self, rows: &[RegRow], file_id: &str) -> Result<()> {
        let mut ins = self.tx.prepare_cached(
            "INSERT INTO registration (mpxn, fuel, supplier_mpid, effective_from, effective_to, \
             source_file, source_line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut del = self
            .any
            .then(|| {
                self.tx
                    .prepare_cached("DELETE FROM registration WHERE mpxn = ?1")
            })
            .transpose()?;
        let mut from_buf = DateText::default();
        let mut to_buf = DateText::default();
        ins.raw_bind_parameter(6, file_id)?;
        let mut own_file = true;
        for r in rows {
            if self.last.as_ref() != Some(&r.mpxn) {
                if let Some(del) = &mut del
                    && self.replaced.insert(r.mpxn.clone())
                {
                    self.out.removed += del.execute([r.mpxn.as_str()])? as u64;
                }
                self.last = Some(r.mpxn.clone());
            }
            ins.raw_bind_parameter(1, r.mpxn.as_str())?;
            ins.raw_bind_parameter(2, r.mpxn.fuel().as_str())?;
            ins.raw_bind_parameter(3, r.mpid.as_str())?;
            ins.raw_bind_parameter(4, from_buf.set(r.from))?;
            ins.raw_bind_parameter(5, r.to.map(|t| to_buf.set(t)))?;
            match (&r.source, own_file) {
                (None, true) => {}
                (None, false) => {
                    ins.raw_bind_parameter(6, file_id)?;
                    own_file = true;
                }
                (Some(f), _) => {
                    ins.raw_bind_parameter(6, &**f)?;
                    own_file = false;
                }
            }
            ins.raw_bind_parameter(7, r.line as i64)?;
            ins.raw_execute()?;
        }
        self.out.written += rows.len() as u64;
        Ok(())
    }

    /// Delete the histories of MPxNs that keep no rows (an update deleting all their periods).
    fn delete_keys(&mut self, keys: &[Mpxn]) -> Result<()> {
        if self.any {
            let mut del = self
                .tx
                .prepare_cached("DELETE FROM registration WHERE mpxn = ?1")?;
            for m in keys {
                self.out.removed += del.execute([m.as_str()])? as u64;
            }
        }
        Ok(())
    }

    /// Build the secondary indexes dropped for the load (once all rows are in).
    fn build_indexes(&mut self) -> Result<()> {
        for (_, sql) in std::mem::take(&mut self.rebuild) {
            self.tx.execute_batch(&sql)?;
        }
        Ok(())
    }

    /// Build the dropped indexes (unless built already), end a full refresh's absent MPxNs,
    /// record the file, commit.
    fn finish(
        mut self,
        opts: &ImportOptions,
        sha: &str,
        nrows: u64,
        full: Option<&FullRefreshEnd>,
        imported_at: i64,
    ) -> Result<WriteOutcome> {
        self.build_indexes()?;
        // After the rows: the file's own rows are not matched (its record comes after), and
        // the replaced histories are gone already.
        if let Some(f) = full {
            self.out.end_dated += self.tx.execute(
                &FULL_REFRESH_DELETE.replace('$', "?"),
                params![f.source, f.last_day],
            )? as u64;
            self.out.end_dated += self.tx.execute(
                &FULL_REFRESH_END.replace('$', "?"),
                params![f.source, f.last_day],
            )? as u64;
        }
        self.tx.execute(
            &FILE_RECORD.replace('$', "?"),
            params![
                opts.file_id,
                FileKind::Registration.as_str(),
                opts.mode.as_str(),
                opts.recorded_source(),
                opts.sequence.map(|s| s as i64),
                sha,
                nrows as i64,
                imported_at,
            ],
        )?;
        self.tx.commit()?;
        Ok(self.out)
    }
}

/// Write a registration plan as one transaction: replace the listed MPxNs' histories, end the
/// provider's other periods for a full refresh, record the file.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_registration(
    path: &Path,
    plan: &RegPlan,
    opts: &ImportOptions,
    sha: &str,
    nrows: u64,
    full: Option<&FullRefreshEnd>,
    imported_at: i64,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<WriteOutcome> {
    let mut conn = open_conn(path, false)?;
    let total = plan.rows.len() as u64;
    let mut bulk = Bulk::begin(&mut conn, total)?;
    // MPxNs left without rows; the others are replaced as their rows are inserted.
    let mut emptied = Vec::new();
    let mut i = 0;
    for k in &plan.keys {
        if plan.rows.get(i).map(|r| &r.mpxn) != Some(k) {
            emptied.push(k.clone());
        }
        while plan.rows.get(i).is_some_and(|r| &r.mpxn == k) {
            i += 1;
        }
    }
    bulk.delete_keys(&emptied)?;
    let mut done = 0u64;
    for chunk in plan.rows.chunks(16_384) {
        bulk.insert(chunk, &opts.file_id)?;
        done += chunk.len() as u64;
        progress(ImportProgress {
            stage: ImportStage::Writing,
            done,
            total,
        });
    }
    let out = bulk.finish(opts, sha, nrows, full, imported_at)?;
    progress(ImportProgress {
        stage: ImportStage::Writing,
        done: total,
        total,
    });
    Ok(out)
}

/// Write a refresh as the parser hands its rows over ([`Feed`]), as one transaction,
/// reporting how far into the file (`bytes` long) the written rows go. Returns `None`, having
/// rolled back, when the feed closes without [`Feed::End`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_registration(
    path: &Path,
    feed: &mut tokio::sync::mpsc::Receiver<Feed>,
    opts: &ImportOptions,
    sha: &str,
    full: Option<&FullRefreshEnd>,
    bytes: u64,
    imported_at: i64,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<Option<WriteOutcome>> {
    let mut conn = open_conn(path, false)?;
    let mut bulk = Bulk::begin(&mut conn, bytes / BYTES_PER_ROW)?;
    loop {
        match feed.blocking_recv() {
            Some(Feed::Rows { rows, pos }) => {
                bulk.insert(&rows, &opts.file_id)?;
                progress(ImportProgress {
                    stage: ImportStage::Parsing,
                    done: pos,
                    total: bytes,
                });
            }
            // The parser checks the whole file now: build the indexes meanwhile.
            Some(Feed::Parsed) => bulk.build_indexes()?,
            Some(Feed::End { rows }) => {
                progress(ImportProgress {
                    stage: ImportStage::Parsing,
                    done: bytes,
                    total: bytes,
                });
                return bulk.finish(opts, sha, rows, full, imported_at).map(Some);
            }
            None => return Ok(None),
        }
    }
}

/// Bytes per row of a typical registration file, to guess a file's row count from its size.
pub(crate) const BYTES_PER_ROW: u64 = 48;

/// Rows from which a write into an empty table builds the secondary indexes afterwards.
const BULK_INDEX_ROWS: u64 = 10_000;

/// A date as `YYYY-MM-DD` text without allocating.
#[derive(Default)]
pub(crate) struct DateText([u8; 10]);

impl DateText {
    /// Write `d` and return the text.
    pub(crate) fn set(&mut self, d: Date) -> &str {
        let y = d.year().clamp(0, 9999) as u16;
        let m = d.month() as u8;
        let day = d.day() as u8;
        let b = &mut self.0;
        b[0] = b'0' + (y / 1000) as u8;
        b[1] = b'0' + (y / 100 % 10) as u8;
        b[2] = b'0' + (y / 10 % 10) as u8;
        b[3] = b'0' + (y % 10) as u8;
        b[4] = b'-';
        b[5] = b'0' + m / 10;
        b[6] = b'0' + m % 10;
        b[7] = b'-';
        b[8] = b'0' + day / 10;
        b[9] = b'0' + day % 10;
        std::str::from_utf8(b).unwrap_or("0000-00-00")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_text_matches_display() {
        let mut t = DateText::default();
        for d in ["2024-03-15", "0001-01-01", "9999-12-31", "2000-02-29"] {
            let date: Date = d.parse().unwrap();
            assert_eq!(t.set(date), date.to_string());
        }
    }
}
