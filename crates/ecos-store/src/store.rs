//! The store: one interface over SQLite and PostgreSQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecos_smki::Eui64;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::OptionalExtension;
use sha2::Digest;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection};

use crate::direct::{self, DateText, FullRefreshEnd, RegTuple, SqliteDirect};
use crate::error::{Result, StoreError};
use crate::import::{
    self, FileKind, ImportMode, ImportOptions, ImportProgress, ImportStage, ImportSummary,
    ProgressFn,
};
use crate::model::{Device, Registration, ServiceUser, StoreCounts};
use crate::mpxn::{CheckDigitPolicies, Mpxn};

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// An SQLite database file (created if missing; WAL journal).
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres {
        /// Connection URL, e.g. `postgres://postgres@127.0.0.1:5432/ecos`.
        url: String,
        /// A schema to keep the tables in (created if missing); `None` uses the server default.
        schema: Option<String>,
    },
}

impl StoreLocation {
    /// The SQLite file `ecos.db` in a data directory.
    pub fn sqlite_in_dir(dir: impl AsRef<Path>) -> Self {
        StoreLocation::Sqlite(dir.as_ref().join("ecos.db"))
    }

    /// From a URL: `sqlite://PATH` (or `sqlite:PATH`), `postgres://...` / `postgresql://...`.
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "database URL {url:?}: no file path"
                )));
            }
            Ok(StoreLocation::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreLocation::postgres(url))
        } else {
            Err(StoreError::Invalid(format!(
                "database URL {:?}: expected sqlite://PATH or postgres://...",
                url.split('@').next_back().unwrap_or("")
            )))
        }
    }

    /// A PostgreSQL URL, default schema.
    pub fn postgres(url: impl Into<String>) -> Self {
        StoreLocation::Postgres {
            url: url.into(),
            schema: None,
        }
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Check-digit strictness for MPxNs (`mpan_check_digit`, `mprn_check_digit`).
    pub check_digits: CheckDigitPolicies,
    /// The time zone whose calendar date is the as-of date of an instant (default `Europe/London`).
    pub as_of_time_zone: String,
    /// GBCS originator counters are never reserved at or below this floor (`cos.counter_floor`).
    pub gbcs_counter_floor: u64,
    /// Connections in the pool.
    pub max_connections: u32,
    /// GBCS counters reserved durably at a time by
    /// [`Store::reserve_gbcs_counter`] and then handed out one by one from
    /// memory (1: one durable reservation per counter). A crash skips the
    /// rest of a block; nothing is ever reissued.
    pub gbcs_counter_block: u64,
    /// How long a reserved block is used before the rest of it is skipped:
    /// bounds how long this process can issue counters below one another
    /// process (node) has reserved since.
    pub gbcs_counter_block_ttl: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            check_digits: CheckDigitPolicies::default(),
            as_of_time_zone: "Europe/London".to_string(),
            gbcs_counter_floor: 0,
            max_connections: 4,
            gbcs_counter_block: 64,
            gbcs_counter_block_ttl: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The durable state of ecos: registration data, inventory, service users, counters,
/// requests, audit log and outbound queue. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    pub(crate) config: StoreConfig,
    tz: TimeZone,
    /// SQLite only: synchronous connections for point reads and bulk registration writes.
    pub(crate) direct: Option<Arc<SqliteDirect>>,
    /// GBCS counter blocks in hand, shared by every clone.
    pub(crate) counter_blocks: Arc<crate::context::CounterBlocks>,
}

/// Run the same body against whichever pool the store has; `$p` is bound to the pool.
macro_rules! on_pool {
    ($self:expr, |$p:ident| $body:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite($p) => $body,
            $crate::store::Backend::Postgres($p) => $body,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_pool;

mod regload;

/// Keys per `IN (...)` list.
const KEY_CHUNK: usize = 5000;

/// Prepared statements kept per connection (sqlx's default is 100; the store has more
/// shapes than that once its `IN` lists and multi-row inserts come in fixed widths).
const STATEMENT_CACHE: usize = 512;

/// Devices per multi-row statement (13 binds each).
const DEV_CHUNK: usize = 2000;

/// Upsert `(device, source_file, source_line)` records with multi-row statements (both backends).
macro_rules! upsert_devices {
    ($dollar:expr, $conn:expr, $records:expr, $progress:expr) => {{
        let records: &[(&Device, Option<&str>, Option<i64>)] = $records;
        let progress: &mut (dyn FnMut(ImportProgress) + Send) = $progress;
        let total = records.len() as u64;
        let mut done = 0u64;
        for chunk in records.chunks(DEV_CHUNK) {
            let sql = format!(
                "INSERT INTO devices ({DEV_COLS}, source_file, source_line) VALUES {} \
                 ON CONFLICT (eui) DO UPDATE SET device_type = excluded.device_type, \
                 status = excluded.status, mpxn = excluded.mpxn, cos_credential = excluded.cos_credential, \
                 ka_cert = excluded.ka_cert, ds_cert = excluded.ds_cert, \
                 comms_hub_eui = excluded.comms_hub_eui, csp_region = excluded.csp_region, \
                 firmware_version = excluded.firmware_version, last_contact = excluded.last_contact, \
                 source_file = excluded.source_file, source_line = excluded.source_line",
                placeholders($dollar, chunk.len(), 13)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (d, file, line) in chunk {
                q = q
                    .bind(d.eui.to_compact())
                    .bind(d.device_type.as_str())
                    .bind(d.status.as_str())
                    .bind(d.mpxn.as_ref().map(|m| m.as_str().to_string()))
                    .bind(d.cos_credential.map(|c| c.as_str()))
                    .bind(d.ka_cert.clone())
                    .bind(d.ds_cert.clone())
                    .bind(d.comms_hub.map(|h| h.to_compact()))
                    .bind(d.csp_region.clone())
                    .bind(d.firmware_version.clone())
                    .bind(d.last_contact.map(ts_to_micros))
                    .bind(file.map(str::to_string))
                    .bind(*line);
            }
            q.execute(&mut *$conn).await?;
            done += chunk.len() as u64;
            progress(ImportProgress {
                stage: ImportStage::Writing,
                done,
                total,
            });
        }
    }};
}

type BatchTuple = (i64, String, String, String, Option<String>, String, i64);
pub(crate) type DevTuple = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);
pub(crate) const DEV_COLS: &str = "eui, device_type, status, mpxn, cos_credential, ka_cert, ds_cert, \
     comms_hub_eui, csp_region, firmware_version, last_contact";

pub(crate) fn corrupt(table: &'static str, column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        value: value.to_string(),
    }
}

use direct::date_col;

pub(crate) fn ts_to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn micros_to_ts(table: &'static str, column: &'static str, v: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|_| corrupt(table, column, &v.to_string()))
}

pub(crate) fn reg_from_tuple(t: RegTuple) -> Result<Registration> {
    let (mpxn, mpid, from, to, file, line) = t;
    Ok(Registration {
        mpxn: Mpxn::parse_unchecked(&mpxn).map_err(|_| corrupt("registration", "mpxn", &mpxn))?,
        mpid,
        effective_from: date_col("effective_from", &from)?,
        effective_to: to
            .as_deref()
            .map(|s| date_col("effective_to", s))
            .transpose()?,
        source_file: file,
        source_line: line as u64,
    })
}

fn eui_col(table: &'static str, column: &'static str, s: &str) -> Result<Eui64> {
    s.parse::<Eui64>().map_err(|_| corrupt(table, column, s))
}

pub(crate) fn dev_from_tuple(t: DevTuple) -> Result<Device> {
    let (eui, ty, status, mpxn, cos, ka, ds, hub, region, fw, contact) = t;
    Ok(Device {
        eui: eui_col("devices", "eui", &eui)?,
        device_type: ty
            .parse()
            .map_err(|_| corrupt("devices", "device_type", &ty))?,
        status: status
            .parse()
            .map_err(|_| corrupt("devices", "status", &status))?,
        mpxn: mpxn
            .as_deref()
            .map(|m| Mpxn::parse_unchecked(m).map_err(|_| corrupt("devices", "mpxn", m)))
            .transpose()?,
        cos_credential: cos
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| corrupt("devices", "cos_credential", c))
            })
            .transpose()?,
        ka_cert: ka,
        ds_cert: ds,
        comms_hub: hub
            .as_deref()
            .map(|h| eui_col("devices", "comms_hub_eui", h))
            .transpose()?,
        csp_region: region,
        firmware_version: fw,
        last_contact: contact
            .map(|v| micros_to_ts("devices", "last_contact", v))
            .transpose()?,
    })
}

pub(crate) fn dev_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DevTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

/// A service user by EUI.
pub(crate) const SQL_SERVICE_USER: &str = "SELECT org_eui, name, roles, mpids, response_endpoint \
     FROM service_users WHERE org_eui = $1";

/// `org_eui, name, roles, mpids, response_endpoint` of `service_users`.
pub(crate) type ServiceUserTuple = (String, String, String, String, String);

pub(crate) fn service_user_from_tuple(t: ServiceUserTuple) -> Result<ServiceUser> {
    let (e, name, roles, mpids, ep) = t;
    Ok(ServiceUser {
        org_eui: eui_col("service_users", "org_eui", &e)?,
        name,
        roles: split_list(&roles),
        mpids: split_list(&mpids),
        response_endpoint: ep,
    })
}

fn split_list(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// `(p, p, ...), (...)` for a multi-row VALUES list. PostgreSQL gets `$1, $2, ...`; SQLite
/// gets anonymous `?` (it resolves named `$N` parameters with a linear search, which makes
/// statements with thousands of them quadratic to prepare).
fn placeholders(dollar: bool, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 7);
    let mut n = 1usize;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            if dollar {
                s.push('$');
                s.push_str(&n.to_string());
            } else {
                s.push('?');
            }
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `p, p, ...` for an `IN (...)` list (see [`placeholders`]).
/// The width of an `IN (...)` list for `n` keys (at most `max`): `n` rounded up to a power
/// of two, at least 16 and at most `max`. Lists padded to it (by repeating their last key,
/// which changes no `IN`) come in a few shapes, each prepared once per connection and then
/// reused from the statement cache instead of one statement per list length.
pub(crate) fn in_width(n: usize, max: usize) -> usize {
    n.next_power_of_two().clamp(16, max.max(16)).min(max).max(n)
}

/// `keys` padded to `width` by repeating the last one (see [`in_width`]).
pub(crate) fn padded<T>(keys: &[T], width: usize) -> impl Iterator<Item = &T> {
    let pad = width.saturating_sub(keys.len());
    keys.iter().chain(keys.last().into_iter().cycle().take(pad))
}

fn in_list(dollar: bool, n: usize) -> String {
    if dollar {
        (1..=n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        vec!["?"; n].join(",")
    }
}

fn copy_escape(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

impl Store {
    /// Open (creating if needed) and migrate the store.
    pub async fn open(location: &StoreLocation, config: StoreConfig) -> Result<Store> {
        let tz = TimeZone::get(&config.as_of_time_zone)
            .map_err(|e| StoreError::TimeZone(config.as_of_time_zone.clone(), e.to_string()))?;
        let mut direct = None;
        let backend = match location {
            StoreLocation::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .pragma("cache_size", "-65536")
                    .foreign_keys(true)
                    .statement_cache_capacity(STATEMENT_CACHE);
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections.max(1))
                    .connect_with(opts)
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                if path.as_os_str() != ":memory:" {
                    direct = Some(Arc::new(SqliteDirect::new(path)?));
                }
                Backend::Sqlite(pool)
            }
            StoreLocation::Postgres { url, schema } => {
                let mut opts = PgConnectOptions::from_str(url)?;
                if let Some(schema) = schema {
                    if !valid_schema_name(schema) {
                        return Err(StoreError::Invalid(format!(
                            "PostgreSQL schema name {schema:?}: use lower-case letters, digits and _"
                        )));
                    }
                    let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
                    sqlx::query(AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS {schema}"
                    )))
                    .execute(&mut conn)
                    .await?;
                    conn.close().await?;
                    opts = opts.options([("search_path", schema.as_str())]);
                }
                let opts = opts.statement_cache_capacity(STATEMENT_CACHE);
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections.max(1))
                    .connect_with(opts)
                    .await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Backend::Postgres(pool)
            }
        };
        Ok(Store {
            backend,
            config,
            tz,
            direct,
            counter_blocks: Arc::default(),
        })
    }

    /// Whether placeholders are `$N` (PostgreSQL) rather than `?` (SQLite).
    pub(crate) fn dollar(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Close the pool, waiting for connections to finish (on SQLite, the
    /// writer thread too, once the decisions queued to it are written).
    pub async fn close(&self) {
        if let Some(thread) = self.direct.as_ref().and_then(|d| d.close()) {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        on_pool!(self, |p| p.close().await)
    }

    /// A bare round trip (`SELECT 1`): the baseline for benchmarks and a health check.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Parse an MPxN under the store's check-digit policies.
    pub fn parse_mpxn(&self, s: &str) -> Result<Mpxn, crate::mpxn::MpxnError> {
        Mpxn::parse(s, self.config.check_digits)
    }

    /// The as-of date of an instant: its calendar date in the configured time zone.
    pub fn as_of_date(&self, at: Timestamp) -> Date {
        at.to_zoned_datetime(self.tz.clone()).date()
    }

    // ---------------------------------------------------------------- registration data

    /// Who is the registered supplier of `mpxn` at instant `at` (as-of date in the configured
    /// time zone), and since when. `None` when no period contains that date.
    pub async fn registered_supplier_at(
        &self,
        mpxn: &Mpxn,
        at: Timestamp,
    ) -> Result<Option<Registration>> {
        self.registered_supplier_on(mpxn, self.as_of_date(at)).await
    }

    /// Who is the registered supplier of `mpxn` on calendar date `date`.
    pub async fn registered_supplier_on(
        &self,
        mpxn: &Mpxn,
        date: Date,
    ) -> Result<Option<Registration>> {
        if let Some(direct) = &self.direct {
            let mut d = DateText::default();
            let d = d.set(date);
            let r = direct
                .read(|c| direct::supplier_on(c, mpxn, d))?
                .transpose()?;
            return Ok(r.filter(|r| r.contains(date)));
        }
        let d = date.to_string();
        let row: Option<RegTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT mpxn, supplier_mpid, effective_from, effective_to, source_file, source_line \
                 FROM registration WHERE mpxn = $1 AND effective_from <= $2 \
                 ORDER BY effective_from DESC LIMIT 1",
            )
            .bind(mpxn.as_str())
            .bind(&d)
            .fetch_optional(p)
            .await?
        });
        let Some(t) = row else { return Ok(None) };
        let r = reg_from_tuple(t)?;
        Ok(r.contains(date).then_some(r))
    }

    /// Many supplier-at-date questions in few round trips (batches of 500 in one query each;
    /// `CROSS JOIN` keeps SQLite's planner from scanning the registration table per batch):
    /// for bulk work such as migration candidate selection or re-validation sweeps. The
    /// answers are in the order of the questions.
    pub async fn registered_suppliers_on(
        &self,
        questions: &[(Mpxn, Date)],
    ) -> Result<Vec<Option<Registration>>> {
        const BATCH: usize = 500;
        let mut out: Vec<Option<Registration>> = vec![None; questions.len()];
        if let Some(direct) = &self.direct {
            // One connection, one cached statement: a point read per question is cheaper
            // than the batched join once the per-call overhead of sqlx is gone.
            let rows = direct.read(|c| {
                let mut text = DateText::default();
                questions
                    .iter()
                    .map(|(m, d)| direct::supplier_on(c, m, text.set(*d)))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?;
            for ((slot, row), (_, d)) in out.iter_mut().zip(rows).zip(questions) {
                if let Some(r) = row.transpose()?
                    && r.contains(*d)
                {
                    *slot = Some(r);
                }
            }
            return Ok(out);
        }
        for (b, chunk) in questions.chunks(BATCH).enumerate() {
            let dollar = self.dollar();
            let mut values = String::with_capacity(chunk.len() * 48);
            for i in 0..chunk.len() {
                if i > 0 {
                    values.push(',');
                }
                if dollar {
                    let n = i * 3;
                    values.push_str(&format!(
                        "(CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS TEXT))",
                        n + 1,
                        n + 2,
                        n + 3
                    ));
                } else {
                    values.push_str("(CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT))");
                }
            }
            let sql = format!(
                "WITH q (i, mpxn, d) AS (VALUES {values}) \
                 SELECT q.i, r.mpxn, r.supplier_mpid, r.effective_from, r.effective_to, \
                 r.source_file, r.source_line FROM q CROSS JOIN registration r \
                 WHERE r.mpxn = q.mpxn AND r.effective_from = (SELECT MAX(r2.effective_from) \
                 FROM registration r2 WHERE r2.mpxn = q.mpxn AND r2.effective_from <= q.d)"
            );
            let rows: Vec<BatchTuple> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql));
                for (i, (m, d)) in chunk.iter().enumerate() {
                    q = q.bind(i as i64).bind(m.as_str()).bind(d.to_string());
                }
                q.fetch_all(p).await?
            });
            for (i, m, mpid, from, to, file, line) in rows {
                let idx = b * BATCH + i as usize;
                let r = reg_from_tuple((m, mpid, from, to, file, line))?;
                if let Some((_, d)) = questions.get(idx)
                    && r.contains(*d)
                {
                    out[idx] = Some(r);
                }
            }
        }
        Ok(out)
    }

    /// The whole supplier history of an MPxN, oldest first.
    pub async fn registration_history(&self, mpxn: &Mpxn) -> Result<Vec<Registration>> {
        if let Some(direct) = &self.direct {
            let rows = direct.read(|c| direct::history(c, mpxn.as_str()))?;
            return rows.into_iter().map(reg_from_tuple).collect();
        }
        let rows: Vec<RegTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT mpxn, supplier_mpid, effective_from, effective_to, source_file, source_line \
                 FROM registration WHERE mpxn = $1 ORDER BY effective_from",
            )
            .bind(mpxn.as_str())
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(reg_from_tuple).collect()
    }

    async fn load_registrations(&self, mpxns: &[&Mpxn]) -> Result<Vec<Registration>> {
        let mut out = Vec::new();
        for chunk in mpxns.chunks(KEY_CHUNK) {
            let sql = format!(
                "SELECT mpxn, supplier_mpid, effective_from, effective_to, source_file, source_line \
                 FROM registration WHERE mpxn IN ({})",
                in_list(self.dollar(), chunk.len())
            );
            let rows: Vec<RegTuple> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql));
                for m in chunk {
                    q = q.bind(m.as_str());
                }
                q.fetch_all(p).await?
            });
            for t in rows {
                out.push(reg_from_tuple(t)?);
            }
        }
        Ok(out)
    }

    /// Check the file record: `Ok(true)` when this exact file was imported already.
    async fn check_file(&self, kind: FileKind, opts: &ImportOptions, sha: &str) -> Result<bool> {
        let prev: Option<(String, i64)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT sha256, imported_at FROM import_files WHERE file_id = $1")
                .bind(&opts.file_id)
                .fetch_optional(p)
                .await?
        });
        if let Some((prev_sha, at)) = prev {
            if prev_sha == sha {
                return Ok(true);
            }
            return Err(StoreError::AlreadyImported {
                file_id: opts.file_id.clone(),
                imported_at: micros_to_ts("import_files", "imported_at", at)?.to_string(),
            });
        }
        if let Some(seq) = opts.sequence {
            let source = opts.source.clone().unwrap_or_default();
            let last: Option<i64> = on_pool!(self, |p| {
                sqlx::query_scalar(
                    "SELECT MAX(sequence) FROM import_files WHERE kind = $1 AND source = $2",
                )
                .bind(kind.as_str())
                .bind(&source)
                .fetch_one(p)
                .await?
            });
            if let Some(last) = last {
                let last = last as u64;
                let ok = match opts.mode {
                    ImportMode::Update => seq == last + 1,
                    ImportMode::Refresh | ImportMode::FullRefresh => seq > last,
                };
                if !ok {
                    return Err(StoreError::Sequence {
                        source_name: source,
                        got: seq,
                        expected: last + 1,
                    });
                }
            }
        }
        Ok(false)
    }

    fn file_record_query<'q, DB: sqlx::Database>(
        kind: FileKind,
        opts: &'q ImportOptions,
        sha: &'q str,
        rows: u64,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
    where
        String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        sqlx::query(
            "INSERT INTO import_files (file_id, kind, mode, source, sequence, sha256, row_count, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(opts.file_id.as_str())
        .bind(kind.as_str())
        .bind(opts.mode.as_str())
        .bind(opts.recorded_source())
        .bind(opts.sequence.map(|s| s as i64))
        .bind(sha)
        .bind(rows as i64)
        .bind(ts_to_micros(Timestamp::now()))
    }

    fn skipped(kind: FileKind, opts: &ImportOptions, t0: Instant) -> ImportSummary {
        ImportSummary {
            file_id: opts.file_id.clone(),
            kind,
            mode: opts.mode,
            rows: 0,
            keys: 0,
            written: 0,
            removed: 0,
            end_dated: 0,
            check_digit_warnings: 0,
            already_imported: true,
            elapsed: t0.elapsed(),
        }
    }

    /// Read a file and import it as registration data (see the crate docs for the format).
    pub async fn import_registration_file(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: ProgressFn<'_>,
    ) -> Result<ImportSummary> {
        let data = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        regload::import_registration(self, Arc::new(data), opts, progress).await
    }

    /// Import registration data, all or nothing.
    ///
    /// Refresh: the history of every MPxN in the file becomes exactly the file's rows for it.
    /// Update: each row upserts the period starting on its `effective_from` (or deletes it with
    /// `action=delete`). Full refresh: a refresh that also end-dates, the day before
    /// [`ImportOptions::as_of`], the provider's periods of every MPxN the file does not list.
    /// Overlapping periods, in the file or against the store, reject the file.
    pub async fn import_registration(
        &self,
        data: &[u8],
        opts: &ImportOptions,
        progress: ProgressFn<'_>,
    ) -> Result<ImportSummary> {
        regload::import_registration(self, Arc::new(data.to_vec()), opts, progress).await
    }

    /// The provider and last day of a full refresh.
    fn full_refresh_end(&self, opts: &ImportOptions) -> Result<FullRefreshEnd> {
        let source = opts
            .source
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "{}: a full refresh needs its data provider (source): it replaces that \
                 provider's whole population",
                    opts.file_id
                ))
            })?;
        let as_of = opts
            .as_of
            .unwrap_or_else(|| self.as_of_date(Timestamp::now()));
        let last = as_of
            .yesterday()
            .map_err(|e| StoreError::Invalid(format!("full refresh date {as_of}: {e}")))?;
        Ok(FullRefreshEnd {
            source,
            last_day: last.to_string(),
        })
    }

    // ---------------------------------------------------------------- inventory

    /// The inventory record of a device.
    pub async fn device(&self, eui: Eui64) -> Result<Option<Device>> {
        let sql = format!("SELECT {DEV_COLS} FROM devices WHERE eui = $1");
        if let Some(direct) = &self.direct {
            let row = direct.read(|c| {
                c.prepare_cached(&sql)?
                    .query_row([eui.to_compact()], dev_row)
                    .optional()
            })?;
            return row.map(dev_from_tuple).transpose();
        }
        let row: Option<DevTuple> = on_pool!(self, |p| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(eui.to_compact())
                .fetch_optional(p)
                .await?
        });
        row.map(dev_from_tuple).transpose()
    }

    /// The devices associated with an MPxN.
    pub async fn devices_for_mpxn(&self, mpxn: &Mpxn) -> Result<Vec<Device>> {
        let sql = format!("SELECT {DEV_COLS} FROM devices WHERE mpxn = $1 ORDER BY eui");
        if let Some(direct) = &self.direct {
            let rows = direct.read(|c| {
                c.prepare_cached(&sql)?
                    .query_map([mpxn.as_str()], dev_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?;
            return rows.into_iter().map(dev_from_tuple).collect();
        }
        let rows: Vec<DevTuple> = on_pool!(self, |p| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(mpxn.as_str())
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(dev_from_tuple).collect()
    }

    pub(crate) async fn load_devices(&self, euis: &[Eui64]) -> Result<HashMap<Eui64, Device>> {
        let mut out = HashMap::new();
        for chunk in euis.chunks(KEY_CHUNK) {
            let width = in_width(chunk.len(), KEY_CHUNK);
            let sql = format!(
                "SELECT {DEV_COLS} FROM devices WHERE eui IN ({})",
                in_list(self.dollar(), width)
            );
            let rows: Vec<DevTuple> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql));
                for e in padded(chunk, width) {
                    q = q.bind(e.to_compact());
                }
                q.fetch_all(p).await?
            });
            for t in rows {
                let d = dev_from_tuple(t)?;
                out.insert(d.eui, d);
            }
        }
        Ok(out)
    }

    /// Insert or replace one device record.
    pub async fn upsert_device(&self, device: &Device) -> Result<()> {
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            upsert_devices!(self.dollar(), tx, &[(device, None, None)], &mut |_| {});
            tx.commit().await?;
        });
        Ok(())
    }

    /// Insert or replace many device records in one transaction, without a file record:
    /// for initial loads and benchmarks (imports go through [`Store::import_inventory`]).
    pub async fn upsert_devices_bulk(&self, devices: &[Device]) -> Result<()> {
        let records: Vec<(&Device, Option<&str>, Option<i64>)> =
            devices.iter().map(|d| (d, None, None)).collect();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            upsert_devices!(self.dollar(), tx, &records, &mut |_| {});
            tx.commit().await?;
        });
        Ok(())
    }

    /// Record a successful contact with a device. Returns false when the device is unknown.
    pub async fn record_device_contact(&self, eui: Eui64, at: Timestamp) -> Result<bool> {
        let (micros, key) = (ts_to_micros(at), eui.to_compact());
        if self.open_direct().is_some() {
            let done = self
                .group_write(move |tx| {
                    let n = tx
                        .conn
                        .prepare_cached("UPDATE devices SET last_contact = $1 WHERE eui = $2")?
                        .execute(rusqlite::params![micros, key])?;
                    Ok((n == 1, true))
                })
                .await;
            if let Some(done) = done {
                return done;
            }
        }
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE devices SET last_contact = $1 WHERE eui = $2"
        )
        .bind(ts_to_micros(at))
        .bind(eui.to_compact())
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Record which CoS credential a device holds (after a migration or a read of its anchor).
    /// Returns false when the device is unknown.
    pub async fn set_device_cos_credential(
        &self,
        eui: Eui64,
        credential: crate::model::CosCredential,
    ) -> Result<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE devices SET cos_credential = $1 WHERE eui = $2"
        )
        .bind(credential.as_str())
        .bind(eui.to_compact())
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Read a file and import it as inventory devices (see the crate docs for the format).
    pub async fn import_inventory_file(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: ProgressFn<'_>,
    ) -> Result<ImportSummary> {
        let data = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.import_inventory(&data, opts, progress).await
    }

    /// Import inventory devices, all or nothing.
    ///
    /// Refresh: each listed device's record becomes the row (empty fields become empty).
    /// Update: non-empty fields overwrite, empty ones keep what the store has; a device not in
    /// the store needs `device_type` and `status`.
    pub async fn import_inventory(
        &self,
        data: &[u8],
        opts: &ImportOptions,
        mut progress: ProgressFn<'_>,
    ) -> Result<ImportSummary> {
        let t0 = Instant::now();
        import::only_registration_full(FileKind::Inventory, opts)?;
        let sha = sha256_hex(data);
        if self.check_file(FileKind::Inventory, opts, &sha).await? {
            return Ok(Self::skipped(FileKind::Inventory, opts, t0));
        }
        let (rows, warnings) = import::parse_inventory(data, opts, &mut progress)?;
        let mut existing = if opts.mode == ImportMode::Update {
            let euis: Vec<Eui64> = rows.iter().filter_map(|r| r.eui).collect();
            self.load_devices(&euis).await?
        } else {
            HashMap::new()
        };
        let mut devices = Vec::with_capacity(rows.len());
        for r in rows {
            let line = r.line as i64;
            let prev = r.eui.and_then(|e| existing.remove(&e));
            devices.push((import::merge_device(&opts.file_id, r, prev)?, line));
        }
        let records: Vec<(&Device, Option<&str>, Option<i64>)> = devices
            .iter()
            .map(|(d, l)| (d, Some(opts.file_id.as_str()), Some(*l)))
            .collect();
        let n = devices.len() as u64;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            upsert_devices!(self.dollar(), tx, &records, &mut *progress);
            Self::file_record_query(FileKind::Inventory, opts, &sha, n)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(ImportSummary {
            file_id: opts.file_id.clone(),
            kind: FileKind::Inventory,
            mode: opts.mode,
            rows: n,
            keys: n,
            written: n,
            removed: 0,
            end_dated: 0,
            check_digit_warnings: warnings,
            already_imported: false,
            elapsed: t0.elapsed(),
        })
    }

    // ---------------------------------------------------------------- service users

    /// A service user by organisation EUI.
    pub async fn service_user(&self, org: Eui64) -> Result<Option<ServiceUser>> {
        const SQL: &str = SQL_SERVICE_USER;
        let row: Option<ServiceUserTuple> = if let Some(direct) = &self.direct {
            direct.read(|c| {
                c.prepare_cached(SQL)?
                    .query_row([org.to_compact()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()
            })?
        } else {
            on_pool!(self, |p| {
                sqlx::query_as(SQL)
                    .bind(org.to_compact())
                    .fetch_optional(p)
                    .await?
            })
        };
        row.map(service_user_from_tuple).transpose()
    }

    /// Insert or replace service users.
    pub async fn upsert_service_users(&self, users: &[ServiceUser]) -> Result<()> {
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for u in users {
                sqlx::query(
                    "INSERT INTO service_users (org_eui, name, roles, mpids, response_endpoint) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_eui) DO UPDATE SET \
                     name = excluded.name, roles = excluded.roles, mpids = excluded.mpids, \
                     response_endpoint = excluded.response_endpoint",
                )
                .bind(u.org_eui.to_compact())
                .bind(&u.name)
                .bind(u.roles.join(" "))
                .bind(u.mpids.join(" "))
                .bind(&u.response_endpoint)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Import a service-users file (each listed organisation's record is replaced), all or nothing.
    pub async fn import_service_users(
        &self,
        data: &[u8],
        opts: &ImportOptions,
        mut progress: ProgressFn<'_>,
    ) -> Result<ImportSummary> {
        let t0 = Instant::now();
        import::only_registration_full(FileKind::ServiceUsers, opts)?;
        let sha = sha256_hex(data);
        if self.check_file(FileKind::ServiceUsers, opts, &sha).await? {
            return Ok(Self::skipped(FileKind::ServiceUsers, opts, t0));
        }
        let users = import::parse_service_users(data, opts, &mut progress)?;
        let n = users.len() as u64;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for u in &users {
                sqlx::query(
                    "INSERT INTO service_users (org_eui, name, roles, mpids, response_endpoint) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_eui) DO UPDATE SET \
                     name = excluded.name, roles = excluded.roles, mpids = excluded.mpids, \
                     response_endpoint = excluded.response_endpoint",
                )
                .bind(u.org_eui.to_compact())
                .bind(&u.name)
                .bind(u.roles.join(" "))
                .bind(u.mpids.join(" "))
                .bind(&u.response_endpoint)
                .execute(&mut *tx)
                .await?;
            }
            Self::file_record_query(FileKind::ServiceUsers, opts, &sha, n)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(ImportSummary {
            file_id: opts.file_id.clone(),
            kind: FileKind::ServiceUsers,
            mode: opts.mode,
            rows: n,
            keys: n,
            written: n,
            removed: 0,
            end_dated: 0,
            check_digit_warnings: 0,
            already_imported: false,
            elapsed: t0.elapsed(),
        })
    }

    /// How many records the store holds.
    pub async fn counts(&self) -> Result<StoreCounts> {
        let (r, m, d, s): (i64, i64, i64, i64) = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM registration), \
                        (SELECT COUNT(DISTINCT mpxn) FROM registration), \
                        (SELECT COUNT(*) FROM devices), \
                        (SELECT COUNT(*) FROM service_users)",
            )
            .fetch_one(p)
            .await?
        });
        Ok(StoreCounts {
            registrations: r as u64,
            mpxns: m as u64,
            devices: d as u64,
            service_users: s as u64,
        })
    }
}
