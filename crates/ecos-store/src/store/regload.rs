//! Registration imports: parse and check on one thread while the database writes on another.
//!
//! A refresh (or full refresh) is streamed: a blocking thread parses the file (fields, check
//! digits) and hands the rows over in chunks, in file order, while the writer inserts them in
//! the same transaction (SQLite: the direct connection on a second blocking thread;
//! PostgreSQL: `COPY` from this task, when the table is empty, else the file is planned in
//! memory first). Once every row is sent (`Feed::Parsed`) the writer builds the indexes it
//! dropped for the load (SQLite) or ends the `COPY` (PostgreSQL) while the parser checks the
//! whole file in key order (duplicates, overlaps); it commits only after that check
//! (`Feed::End`). An update is always planned in memory, against the store's histories of the
//! MPxNs it lists. Whatever happens, the import is one transaction: a bad row or a failed
//! check drops the feed, the writer rolls back and the store is left as it was.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::{Backend, Store, copy_escape, sha256_hex, ts_to_micros};
use crate::direct::{self, DateText, FullRefreshEnd, WriteOutcome};
use crate::error::{Result, StoreError};
use crate::import::{
    self, Feed, FileKind, ImportMode, ImportOptions, ImportProgress, ImportStage, ImportSummary,
    ProgressFn, RegPlan, RegRow, Streamed,
};
use crate::mpxn::Mpxn;

/// Chunks in flight between the parser and the writer.
const FEED_DEPTH: usize = 64;

/// Import registration data, all or nothing (see [`Store::import_registration`]).
pub(super) async fn import_registration(
    store: &Store,
    data: Arc<Vec<u8>>,
    opts: &ImportOptions,
    mut progress: ProgressFn<'_>,
) -> Result<ImportSummary> {
    let progress = &mut progress;
    let t0 = Instant::now();
    let full = match opts.mode {
        ImportMode::FullRefresh => Some(store.full_refresh_end(opts)?),
        _ => None,
    };
    let sha = sha256_hex(&data);
    if store.check_file(FileKind::Registration, opts, &sha).await? {
        return Ok(Store::skipped(FileKind::Registration, opts, t0));
    }
    let job = Job {
        data,
        opts: opts.clone(),
        sha,
        full,
        imported_at: ts_to_micros(Timestamp::now()),
    };
    let done = match &store.backend {
        Backend::Sqlite(_) => {
            let Some(d) = &store.direct else {
                return Err(StoreError::Invalid(
                    "registration imports need an SQLite database file (not :memory:)".into(),
                ));
            };
            let path = d.path().to_path_buf();
            if opts.mode == ImportMode::Update {
                let (rows, warnings) = parse_blocking(&job, progress).await?;
                let (plan, nrows) = plan_update(store, opts, rows).await?;
                let keys = plan.keys.len() as u64;
                let mut d = write_sqlite(path, keys, plan, &job, nrows, progress).await?;
                d.warnings = warnings;
                d
            } else {
                stream_sqlite(path, &job, progress).await?
            }
        }
        Backend::Postgres(pool) => pg_import(store, pool, &job, progress).await?,
    };
    Ok(ImportSummary {
        file_id: opts.file_id.clone(),
        kind: FileKind::Registration,
        mode: opts.mode,
        rows: done.rows,
        keys: done.keys,
        written: done.out.written,
        removed: done.out.removed,
        end_dated: done.out.end_dated,
        check_digit_warnings: done.warnings,
        already_imported: false,
        elapsed: t0.elapsed(),
    })
}

/// What an import needs on any thread.
#[derive(Debug, Clone)]
struct Job {
    data: Arc<Vec<u8>>,
    opts: ImportOptions,
    sha: String,
    full: Option<FullRefreshEnd>,
    imported_at: i64,
}

/// What was written.
struct Done {
    out: WriteOutcome,
    rows: u64,
    keys: u64,
    warnings: u64,
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Sqlite(format!("registration import task failed: {e}"))
}

/// Forward progress reports from another thread until it drops its sender.
async fn pump(mut rx: mpsc::UnboundedReceiver<ImportProgress>, progress: &mut ProgressFn<'_>) {
    while let Some(p) = rx.recv().await {
        progress(p);
    }
}

/// Parse the whole file into memory on a blocking thread.
async fn parse_blocking(
    job: &Job,
    progress: &mut ProgressFn<'_>,
) -> Result<(Vec<import::RegRow>, u64)> {
    let (ptx, prx) = mpsc::unbounded_channel();
    let data = job.data.clone();
    let opts = job.opts.clone();
    let parser = tokio::task::spawn_blocking(move || {
        let mut f = |p: ImportProgress| {
            let _ = ptx.send(p);
        };
        let mut pf: ProgressFn<'_> = &mut f;
        import::parse_registration(&data, &opts, &mut pf)
    });
    pump(prx, progress).await;
    parser.await.map_err(join_err)?
}

/// An update's plan: the file's rows merged onto the store's histories of the MPxNs it lists.
async fn plan_update(
    store: &Store,
    opts: &ImportOptions,
    rows: Vec<RegRow>,
) -> Result<(RegPlan, u64)> {
    let nrows = rows.len() as u64;
    let existing = {
        let mut keys: Vec<&Mpxn> = rows.iter().map(|r| &r.mpxn).collect();
        keys.sort_unstable();
        keys.dedup();
        store.load_registrations(&keys).await?
    };
    Ok((import::plan_registration(opts, rows, existing)?, nrows))
}

/// Write a plan through the direct SQLite connection on a blocking thread. The write
/// completes (or rolls back) even if the caller stops waiting.
async fn write_sqlite(
    path: std::path::PathBuf,
    keys: u64,
    plan: RegPlan,
    job: &Job,
    nrows: u64,
    progress: &mut ProgressFn<'_>,
) -> Result<Done> {
    let (ptx, prx) = mpsc::unbounded_channel();
    let job = job.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let r = direct::write_registration(
            &path,
            &plan,
            &job.opts,
            &job.sha,
            nrows,
            job.full.as_ref(),
            job.imported_at,
            &mut |p| {
                let _ = ptx.send(p);
            },
        );
        // Free the plan on this thread, not the caller's.
        drop(plan);
        r
    });
    pump(prx, progress).await;
    let out = writer.await.map_err(join_err)??;
    Ok(Done {
        out,
        rows: nrows,
        keys,
        warnings: 0,
    })
}

/// The last progress report of a streamed write: everything written.
fn written_all(progress: &mut ProgressFn<'_>, n: u64) {
    progress(ImportProgress {
        stage: ImportStage::Writing,
        done: n,
        total: n,
    });
}

/// Start the streaming parser on a blocking thread.
fn spawn_parser(job: &Job, feed: mpsc::Sender<Feed>) -> tokio::task::JoinHandle<Result<Streamed>> {
    let data = job.data.clone();
    let opts = job.opts.clone();
    tokio::task::spawn_blocking(move || import::parse_registration_streaming(&data, &opts, feed))
}

/// A refresh into SQLite: parser and writer on two blocking threads.
async fn stream_sqlite(
    path: std::path::PathBuf,
    job: &Job,
    progress: &mut ProgressFn<'_>,
) -> Result<Done> {
    let (ftx, mut frx) = mpsc::channel(FEED_DEPTH);
    let (ptx, prx) = mpsc::unbounded_channel();
    let writer = {
        let job = job.clone();
        tokio::task::spawn_blocking(move || {
            let r = direct::stream_registration(
                &path,
                &mut frx,
                &job.opts,
                &job.sha,
                job.full.as_ref(),
                job.data.len() as u64,
                job.imported_at,
                &mut |p| {
                    let _ = ptx.send(p);
                },
            );
            // Closing the feed tells the parser should the writer fail.
            drop(frx);
            r
        })
    };
    let parser = spawn_parser(job, ftx);
    pump(prx, progress).await;
    // Always wait for both: on any failure the writer has rolled back once it returns.
    let wrote = writer.await.map_err(join_err)?;
    let parsed = parser.await.map_err(join_err)?;
    match parsed? {
        Streamed::Sent {
            rows,
            keys,
            warnings,
        } => {
            let out = wrote?.ok_or_else(|| {
                StoreError::Sqlite("the registration writer stopped before the end".into())
            })?;
            written_all(progress, out.written);
            Ok(Done {
                out,
                rows,
                keys,
                warnings,
            })
        }
        Streamed::WriterGone => Err(wrote.err().unwrap_or_else(|| {
            StoreError::Sqlite("the registration writer stopped before the end".into())
        })),
    }
}

/// Registration data into PostgreSQL, one transaction that first locks out other writers of
/// the table (readers go on). A refresh into an empty table streams through `COPY`; anything
/// else is planned in memory, then written.
async fn pg_import(
    store: &Store,
    pool: &PgPool,
    job: &Job,
    progress: &mut ProgressFn<'_>,
) -> Result<Done> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE registration IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM registration)")
        .fetch_one(&mut *tx)
        .await?;
    if !any && job.opts.mode != ImportMode::Update {
        let (ftx, mut frx) = mpsc::channel(FEED_DEPTH);
        let parser = spawn_parser(job, ftx);
        let bytes = job.data.len() as u64;
        // `None` once ended (at `Feed::Parsed`, while the parser checks the file).
        let mut copy = Some(tx.copy_in_raw(COPY_REGISTRATION).await?);
        let mut buf: Vec<u8> = Vec::with_capacity(COPY_BUF + 4096);
        let mut file = Vec::new();
        copy_escape(&mut file, &job.opts.file_id);
        let mut written = 0u64;
        let mut end = false;
        // A failed send stops the copying; the parser goes on, to name a bad row if any.
        let mut failed: Option<StoreError> = None;
        while let Some(f) = frx.recv().await {
            match f {
                Feed::Rows { rows, pos } => {
                    if failed.is_some() {
                        continue;
                    }
                    for r in &rows {
                        copy_row(&mut buf, r, &file);
                    }
                    written += rows.len() as u64;
                    if buf.len() >= COPY_BUF
                        && let Some(c) = &mut copy
                    {
                        if let Err(e) = c.send(buf.as_slice()).await {
                            failed = Some(e.into());
                        }
                        buf.clear();
                    }
                    progress(ImportProgress {
                        stage: ImportStage::Parsing,
                        done: pos,
                        total: bytes,
                    });
                }
                // Every row is in: end the COPY (the server checks keys and builds the
                // indexes) while the parser checks the file.
                Feed::Parsed => {
                    if failed.is_none()
                        && let Some(mut c) = copy.take()
                    {
                        let sent = if buf.is_empty() {
                            Ok(())
                        } else {
                            c.send(buf.as_slice()).await.map(|_| ())
                        };
                        buf.clear();
                        let ended = match sent {
                            Ok(()) => c.finish().await.map(|_| ()),
                            Err(e) => {
                                let _ = c.abort("registration import abandoned").await;
                                Err(e)
                            }
                        };
                        if let Err(e) = ended {
                            failed = Some(e.into());
                        }
                    }
                }
                Feed::End { .. } => {
                    end = true;
                    break;
                }
            }
        }
        drop(frx);
        let parsed = parser.await.map_err(join_err)?;
        let finished = match (&parsed, end, failed) {
            (Ok(Streamed::Sent { .. }), true, None) => {
                progress(ImportProgress {
                    stage: ImportStage::Parsing,
                    done: bytes,
                    total: bytes,
                });
                if let Some(mut c) = copy.take() {
                    if !buf.is_empty() {
                        c.send(buf.as_slice()).await?;
                    }
                    c.finish().await?;
                }
                true
            }
            (_, _, failed) => {
                if let Some(c) = copy.take() {
                    let _ = c.abort("registration import abandoned").await;
                }
                if let Some(e) = failed
                    && parsed.is_ok()
                {
                    return Err(e);
                }
                false
            }
        };
        drop(copy);
        return match parsed? {
            Streamed::Sent {
                rows,
                keys,
                warnings,
            } if finished => {
                let out = finish_pg(tx, job, rows, written, 0).await?;
                written_all(progress, written);
                Ok(Done {
                    out,
                    rows,
                    keys,
                    warnings,
                })
            }
            _ => Err(StoreError::Invalid(
                "registration import: the COPY stream ended early".into(),
            )),
        };
    }
    let (rows, warnings) = parse_blocking(job, progress).await?;
    let (plan, nrows) = if job.opts.mode == ImportMode::Update {
        plan_update(store, &job.opts, rows).await?
    } else {
        let n = rows.len() as u64;
        (import::plan_registration(&job.opts, rows, Vec::new())?, n)
    };
    let mut d = write_pg_plan(tx, plan, job, nrows, progress).await?;
    d.warnings = warnings;
    Ok(d)
}

const COPY_REGISTRATION: &str = "COPY registration (mpxn, fuel, supplier_mpid, effective_from, \
     effective_to, source_file, source_line) FROM STDIN";

/// Bytes of COPY data per message.
const COPY_BUF: usize = 1 << 20;

/// Write a plan in an open PostgreSQL transaction: delete the listed MPxNs' histories,
/// `COPY` the new rows in, end a full refresh's absent MPxNs, record the file, commit.
async fn write_pg_plan(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    plan: RegPlan,
    job: &Job,
    nrows: u64,
    progress: &mut ProgressFn<'_>,
) -> Result<Done> {
    let keys: Vec<&str> = plan.keys.iter().map(Mpxn::as_str).collect();
    let mut removed = 0u64;
    for chunk in keys.chunks(50_000) {
        removed += sqlx::query("DELETE FROM registration WHERE mpxn = ANY($1)")
            .bind(chunk)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    let total = plan.rows.len() as u64;
    let mut copy = tx.copy_in_raw(COPY_REGISTRATION).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_BUF + 4096);
    let mut file = Vec::new();
    copy_escape(&mut file, &job.opts.file_id);
    for (i, r) in plan.rows.iter().enumerate() {
        copy_row(&mut buf, r, &file);
        let done = i as u64 + 1;
        if buf.len() >= COPY_BUF {
            copy.send(buf.as_slice()).await?;
            buf.clear();
            progress(ImportProgress {
                stage: ImportStage::Writing,
                done,
                total,
            });
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await?;
    }
    copy.finish().await?;
    let out = finish_pg(tx, job, nrows, total, removed).await?;
    written_all(progress, total);
    Ok(Done {
        out,
        rows: nrows,
        keys: plan.keys.len() as u64,
        warnings: 0,
    })
}

/// End a full refresh's absent MPxNs (after the new rows: the file's own rows are not
/// matched, its record comes after), record the file, commit.
async fn finish_pg(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    job: &Job,
    nrows: u64,
    written: u64,
    removed: u64,
) -> Result<WriteOutcome> {
    let mut end_dated = 0u64;
    if let Some(f) = &job.full {
        for sql in [direct::FULL_REFRESH_DELETE, direct::FULL_REFRESH_END] {
            end_dated += sqlx::query(sql)
                .bind(&f.source)
                .bind(&f.last_day)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    sqlx::query(direct::FILE_RECORD)
        .bind(&job.opts.file_id)
        .bind(FileKind::Registration.as_str())
        .bind(job.opts.mode.as_str())
        .bind(job.opts.recorded_source())
        .bind(job.opts.sequence.map(|s| s as i64))
        .bind(&job.sha)
        .bind(nrows as i64)
        .bind(job.imported_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(WriteOutcome {
        written,
        removed,
        end_dated,
    })
}

/// One registration row as a line of PostgreSQL's COPY text format; `file` is the escaped id
/// of the file being imported.
fn copy_row(buf: &mut Vec<u8>, r: &RegRow, file: &[u8]) {
    use std::io::Write as _;
    let mut date = DateText::default();
    buf.extend_from_slice(r.mpxn.as_str().as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(r.mpxn.fuel().as_str().as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(r.mpid.as_str().as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(date.set(r.from).as_bytes());
    buf.push(b'\t');
    match r.to {
        Some(t) => buf.extend_from_slice(date.set(t).as_bytes()),
        None => buf.extend_from_slice(b"\\N"),
    }
    buf.push(b'\t');
    match &r.source {
        None => buf.extend_from_slice(file),
        Some(f) => copy_escape(buf, f),
    }
    let _ = writeln!(buf, "\t{}", r.line);
}
