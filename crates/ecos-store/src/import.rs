//! Parsing and checking of import files, independent of the backend.
//!
//! The formats are documented in the crate docs ([`crate`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ecos_smki::Eui64;
use jiff::Timestamp;
use jiff::civil::Date;

use crate::csv::{lines, split_line};
use crate::error::{FileLine, Result, RowError, StoreError};
use crate::model::{CosCredential, Device, DeviceStatus, DeviceType, ServiceUser};
use crate::mpxn::{CheckDigitPolicies, CheckDigitPolicy, Mpxn};

/// How an import file relates to what the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ImportMode {
    /// Authoritative for what it lists: the history of each listed MPxN (or the record of each
    /// listed device) is replaced by the file's rows. Unlisted MPxNs/devices are untouched.
    #[default]
    Refresh,
    /// A delta: rows upsert (or, with `action=delete`, remove) single periods or fields.
    Update,
    /// Registration data only: a refresh that is the provider's whole population from its
    /// date on ([`ImportOptions::as_of`]). The listed MPxNs are refreshed; the provider's
    /// periods of every other MPxN are end-dated the day before (see the crate docs).
    FullRefresh,
}

impl ImportMode {
    /// `refresh` or `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::Refresh => "refresh",
            ImportMode::Update => "update",
            ImportMode::FullRefresh => "full-refresh",
        }
    }
}

impl std::str::FromStr for ImportMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "refresh" => Ok(ImportMode::Refresh),
            "update" => Ok(ImportMode::Update),
            "full-refresh" | "full" => Ok(ImportMode::FullRefresh),
            _ => Err(format!(
                "import mode {s:?}: expected refresh, update or full-refresh"
            )),
        }
    }
}

/// Which kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// Registration data (`mpxn,supplier_mpid,effective_from,...`).
    Registration,
    /// Inventory devices (`device_eui,device_type,status,...`).
    Inventory,
    /// Service users (`org_eui,name,roles,mpids,response_endpoint`).
    ServiceUsers,
}

impl FileKind {
    /// `registration`, `inventory` or `service-users`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Registration => "registration",
            FileKind::Inventory => "inventory",
            FileKind::ServiceUsers => "service-users",
        }
    }

    /// Recognise a file's kind from its header line.
    pub fn detect(data: &[u8]) -> Option<FileKind> {
        let (_, _, first) = lines(data).next()?;
        let first = std::str::from_utf8(first).ok()?;
        let cols: Vec<String> = split_line(first)
            .ok()?
            .iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        let has = |n: &str| cols.iter().any(|c| c == n);
        if has("mpxn") && has("supplier_mpid") {
            Some(FileKind::Registration)
        } else if has("device_eui") {
            Some(FileKind::Inventory)
        } else if has("org_eui") {
            Some(FileKind::ServiceUsers)
        } else {
            None
        }
    }
}

/// How to import a file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The file's id, kept as provenance on every row; a file id is imported once.
    pub file_id: String,
    /// Refresh or update.
    pub mode: ImportMode,
    /// The data provider: for sequence checking, and the population a full refresh replaces
    /// (a full refresh ends only periods imported from files of the same provider).
    pub source: Option<String>,
    /// The file's sequence number from its provider; update files must come in order, no gaps.
    pub sequence: Option<u64>,
    /// Check-digit strictness for MPxNs in the file.
    pub check_digits: CheckDigitPolicies,
    /// Full refresh only: the first day the file is the provider's whole population (default:
    /// the import's date in the store's as-of time zone). Absent MPxNs' periods end the day
    /// before.
    pub as_of: Option<Date>,
}

impl ImportOptions {
    /// Options with a file id and mode, no sequence, default check-digit policies.
    pub fn new(file_id: impl Into<String>, mode: ImportMode) -> Self {
        ImportOptions {
            file_id: file_id.into(),
            mode,
            source: None,
            sequence: None,
            check_digits: CheckDigitPolicies::default(),
            as_of: None,
        }
    }

    /// The provider recorded with the file (empty when only a sequence number is given).
    pub(crate) fn recorded_source(&self) -> Option<String> {
        self.source
            .clone()
            .or_else(|| self.sequence.map(|_| String::new()))
    }
}

/// The stage an import is in, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportStage {
    /// Parsing and checking rows; `done`/`total` are bytes.
    Parsing,
    /// Writing; `done`/`total` are rows.
    Writing,
}

/// A progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// The stage.
    pub stage: ImportStage,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn<'a> = &'a mut (dyn FnMut(ImportProgress) + Send);

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The file id.
    pub file_id: String,
    /// The kind of file.
    pub kind: FileKind,
    /// Refresh or update.
    pub mode: ImportMode,
    /// Data rows in the file.
    pub rows: u64,
    /// Distinct keys (MPxNs, device EUIs, organisations) the file touched.
    pub keys: u64,
    /// Rows written to the store.
    pub written: u64,
    /// Rows removed from the store (replaced histories, deleted periods).
    pub removed: u64,
    /// Full refresh: the provider's periods of unlisted MPxNs that were end-dated (or removed,
    /// when they would only have started after the end).
    pub end_dated: u64,
    /// Rows whose MPxN fails its check digit (accepted under the warn policy).
    pub check_digit_warnings: u64,
    /// The same file (same id and content) had already been imported; nothing was applied.
    pub already_imported: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Refuse a full refresh of anything but registration data.
pub(crate) fn only_registration_full(kind: FileKind, opts: &ImportOptions) -> Result<()> {
    if opts.mode == ImportMode::FullRefresh && kind != FileKind::Registration {
        return Err(StoreError::Invalid(format!(
            "{}: a full refresh applies to registration data only, not to {} files",
            opts.file_id,
            kind.as_str()
        )));
    }
    Ok(())
}

pub(crate) fn row_err(file: &str, line: u64, error: RowError) -> StoreError {
    StoreError::Row {
        at: FileLine {
            file: file.to_string(),
            line,
        },
        error: Box::new(error),
    }
}

/// The columns of a header, by name.
pub(crate) struct Header {
    cols: Vec<&'static str>,
    idx: HashMap<&'static str, usize>,
}

impl Header {
    fn parse(
        file: &str,
        line: &str,
        known: &[&'static str],
        required: &[&'static str],
    ) -> Result<Header> {
        let fields = split_line(line).map_err(|e| row_err(file, 1, e))?;
        let mut cols = Vec::new();
        let mut idx = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            let name = f.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
            let Some(k) = known.iter().find(|k| **k == name) else {
                return Err(row_err(
                    file,
                    1,
                    RowError::Header(format!(
                        "unknown column {name:?}; known columns: {}",
                        known.join(", ")
                    )),
                ));
            };
            if idx.insert(*k, i).is_some() {
                return Err(row_err(
                    file,
                    1,
                    RowError::Header(format!("column {name:?} twice")),
                ));
            }
            cols.push(*k);
        }
        for r in required {
            if !idx.contains_key(r) {
                return Err(row_err(
                    file,
                    1,
                    RowError::Header(format!("missing required column {r:?}")),
                ));
            }
        }
        Ok(Header { cols, idx })
    }

    fn get<'a>(&self, fields: &'a [std::borrow::Cow<'a, str>], col: &str) -> Option<&'a str> {
        self.idx
            .get(col)
            .map(|i| fields[*i].trim())
            .filter(|s| !s.is_empty())
    }
}

/// More columns than any format has (a header names each known column at most once).
const MAX_COLUMNS: usize = 16;

/// Drive the rows of a file: header, then each non-empty data line.
pub(crate) fn for_each_row(
    file: &str,
    data: &[u8],
    known: &[&'static str],
    required: &[&'static str],
    progress: &mut ProgressFn<'_>,
    mut f: impl FnMut(u64, &Header, &[std::borrow::Cow<'_, str>]) -> Result<(), RowError>,
) -> Result<u64> {
    let total = data.len() as u64;
    let mut it = lines(data);
    let Some((_, _, head)) = it.next() else {
        return Err(StoreError::NoHeader {
            file: file.to_string(),
        });
    };
    let head = std::str::from_utf8(head).map_err(|_| row_err(file, 1, RowError::Utf8))?;
    let header = Header::parse(file, head, known, required)?;
    let mut rows = 0u64;
    let mut next_report = 0u64;
    let mut arr: [Cow<'_, str>; MAX_COLUMNS] = std::array::from_fn(|_| Cow::Borrowed(""));
    for (n, pos, line) in it {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = std::str::from_utf8(line).map_err(|_| row_err(file, n, RowError::Utf8))?;
        // Unquoted lines (the usual case) split into a reused array, without allocating.
        let quoted;
        let fields: &[Cow<'_, str>] = if line.contains('"') {
            quoted = split_line(line).map_err(|e| row_err(file, n, e))?;
            &quoted
        } else {
            let mut k = 0;
            for part in line.split(',') {
                if k < arr.len() {
                    arr[k] = Cow::Borrowed(part);
                }
                k += 1;
            }
            if k != header.cols.len() {
                return Err(row_err(
                    file,
                    n,
                    RowError::FieldCount {
                        expected: header.cols.len(),
                        found: k,
                    },
                ));
            }
            &arr[..k]
        };
        if fields.len() != header.cols.len() {
            return Err(row_err(
                file,
                n,
                RowError::FieldCount {
                    expected: header.cols.len(),
                    found: fields.len(),
                },
            ));
        }
        f(n, &header, fields).map_err(|e| row_err(file, n, e))?;
        rows += 1;
        if pos as u64 >= next_report {
            progress(ImportProgress {
                stage: ImportStage::Parsing,
                done: pos as u64,
                total,
            });
            next_report = pos as u64 + total / 100 + 1;
        }
    }
    progress(ImportProgress {
        stage: ImportStage::Parsing,
        done: total,
        total,
    });
    Ok(rows)
}

fn required<'a>(
    h: &Header,
    f: &'a [std::borrow::Cow<'a, str>],
    col: &'static str,
) -> Result<&'a str, RowError> {
    h.get(f, col).ok_or(RowError::Missing { column: col })
}

fn invalid(column: &'static str, value: &str, reason: impl Into<String>) -> RowError {
    RowError::Invalid {
        column,
        value: value.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn parse_date(column: &'static str, s: &str) -> Result<Date, RowError> {
    if let Some(d) = fast_date(s.as_bytes()) {
        return Ok(d);
    }
    if s.len() != 10 {
        return Err(invalid(column, s, "is not a date YYYY-MM-DD"));
    }
    s.parse::<Date>()
        .map_err(|e| invalid(column, s, format!("is not a date YYYY-MM-DD ({e})")))
}

/// `YYYY-MM-DD` of a valid date, without the general parser; `None` sends the caller to it
/// (for its error message).
pub(crate) fn fast_date(b: &[u8]) -> Option<Date> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let mut v = [0u8; 8];
    for (o, &c) in v
        .iter_mut()
        .zip(b[..4].iter().chain(&b[5..7]).chain(&b[8..10]))
    {
        if !c.is_ascii_digit() {
            return None;
        }
        *o = c - b'0';
    }
    let y = i16::from(v[0]) * 1000 + i16::from(v[1]) * 100 + i16::from(v[2]) * 10 + i16::from(v[3]);
    Date::new(y, (v[4] * 10 + v[5]) as i8, (v[6] * 10 + v[7]) as i8).ok()
}

/// An MPID or gas short code: 1 to 8 characters `[A-Z0-9]`.
pub(crate) fn check_mpid(column: &'static str, s: &str) -> Result<(), RowError> {
    if s.is_empty()
        || s.len() > 8
        || !s
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(invalid(
            column,
            s,
            "is not an MPID (1 to 8 characters A-Z, 0-9)",
        ));
    }
    Ok(())
}

fn parse_mpxn(s: &str, policies: CheckDigitPolicies, warnings: &mut u64) -> Result<Mpxn, RowError> {
    let m = Mpxn::parse_unchecked(s)?;
    match policies.for_fuel(m.fuel()) {
        CheckDigitPolicy::Off => {}
        CheckDigitPolicy::Reject => m.verify_check_digit()?,
        CheckDigitPolicy::Warn => {
            if let Err(e) = m.verify_check_digit() {
                if *warnings < 5 {
                    tracing::warn!("{e}");
                }
                *warnings += 1;
            }
        }
    }
    Ok(m)
}

/// A supplier MPID or gas shipper short code (1 to 8 characters `[A-Z0-9]`), held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mpid {
    b: [u8; 8],
    len: u8,
}

impl Mpid {
    /// Check and keep an MPID.
    pub(crate) fn parse(column: &'static str, s: &str) -> Result<Mpid, RowError> {
        check_mpid(column, s)?;
        let mut b = [0u8; 8];
        b[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Mpid {
            b,
            len: s.len() as u8,
        })
    }

    /// The characters.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.b[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for Mpid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registration period: a row of the file being imported, or (in an update's plan) a
/// period the store holds.
#[derive(Debug, Clone)]
pub(crate) struct RegRow {
    pub mpxn: Mpxn,
    pub from: Date,
    pub to: Option<Date>,
    pub mpid: Mpid,
    /// The line in its file.
    pub line: u64,
    /// The file it comes from: `None` for the file being imported.
    pub source: Option<Arc<str>>,
    /// An update's `action=delete`.
    pub delete: bool,
}

impl RegRow {
    fn is_from_file(&self) -> bool {
        self.source.is_none()
    }

    fn key_cmp(&self, other: &RegRow) -> std::cmp::Ordering {
        self.mpxn
            .cmp(&other.mpxn)
            .then_with(|| self.from.cmp(&other.from))
    }
}

/// The new histories of the MPxNs a registration file lists.
#[derive(Debug, Default)]
pub(crate) struct RegPlan {
    /// The MPxNs the file lists, ascending: their histories are replaced by `rows`.
    pub keys: Vec<Mpxn>,
    /// Their periods, by (MPxN, effective_from).
    pub rows: Vec<RegRow>,
}

pub(crate) const REG_COLUMNS: &[&str] = &[
    "mpxn",
    "supplier_mpid",
    "effective_from",
    "effective_to",
    "action",
];

/// The positions of the registration columns in a file's header.
#[derive(Clone, Copy)]
struct RegCols {
    mpxn: usize,
    mpid: usize,
    from: usize,
    to: Option<usize>,
    action: Option<usize>,
}

impl RegCols {
    fn new(h: &Header) -> RegCols {
        // The three are required by the header check.
        RegCols {
            mpxn: h.idx.get("mpxn").copied().unwrap_or(0),
            mpid: h.idx.get("supplier_mpid").copied().unwrap_or(0),
            from: h.idx.get("effective_from").copied().unwrap_or(0),
            to: h.idx.get("effective_to").copied(),
            action: h.idx.get("action").copied(),
        }
    }
}

fn field<'a>(f: &'a [std::borrow::Cow<'a, str>], i: usize) -> Option<&'a str> {
    Some(f[i].trim()).filter(|s| !s.is_empty())
}

/// Parse and check the rows of a registration file, handing them on in chunks of up to
/// `chunk` rows (in file order). Returns the rows and check-digit warnings counted.
pub(crate) fn parse_registration_chunks(
    data: &[u8],
    opts: &ImportOptions,
    progress: &mut ProgressFn<'_>,
    chunk: usize,
    mut sink: impl FnMut(Vec<RegRow>) -> Result<()>,
) -> Result<(u64, u64)> {
    let mut rows = Vec::with_capacity(chunk);
    let mut warnings = 0u64;
    let mode = opts.mode;
    let mut cols: Option<RegCols> = None;
    let mut sink_err: Option<StoreError> = None;
    let n = for_each_row(
        &opts.file_id,
        data,
        REG_COLUMNS,
        &["mpxn", "supplier_mpid", "effective_from"],
        progress,
        |line, h, f| {
            let c = *cols.get_or_insert_with(|| RegCols::new(h));
            let mpxn = parse_mpxn(
                field(f, c.mpxn).ok_or(RowError::Missing { column: "mpxn" })?,
                opts.check_digits,
                &mut warnings,
            )?;
            let mpid = Mpid::parse(
                "supplier_mpid",
                field(f, c.mpid).ok_or(RowError::Missing {
                    column: "supplier_mpid",
                })?,
            )?;
            let from_s = field(f, c.from).ok_or(RowError::Missing {
                column: "effective_from",
            })?;
            let from = parse_date("effective_from", from_s)?;
            let to = match c.to.and_then(|i| field(f, i)) {
                Some(s) => {
                    let to = parse_date("effective_to", s)?;
                    if to < from {
                        return Err(RowError::ReversedPeriod {
                            from: from_s.to_string(),
                            to: s.to_string(),
                        });
                    }
                    Some(to)
                }
                None => None,
            };
            let delete = match c.action.and_then(|i| field(f, i)) {
                None => false,
                Some(a) if a.eq_ignore_ascii_case("upsert") => false,
                Some(a) if a.eq_ignore_ascii_case("delete") => {
                    if mode != ImportMode::Update {
                        return Err(invalid(
                            "action",
                            "delete",
                            "is only allowed in update files",
                        ));
                    }
                    true
                }
                Some(other) => {
                    return Err(invalid(
                        "action",
                        &other.to_ascii_lowercase(),
                        "expected upsert or delete",
                    ));
                }
            };
            rows.push(RegRow {
                mpxn,
                from,
                to,
                mpid,
                line,
                source: None,
                delete,
            });
            if rows.len() >= chunk {
                let full = std::mem::replace(&mut rows, Vec::with_capacity(chunk));
                if let Err(e) = sink(full) {
                    sink_err = Some(e);
                    return Err(RowError::Header(String::new()));
                }
            }
            Ok(())
        },
    );
    if let Some(e) = sink_err {
        return Err(e);
    }
    let n = n?;
    if !rows.is_empty() {
        sink(rows)?;
    }
    Ok((n, warnings))
}

/// Parse and check the rows of a registration file.
pub(crate) fn parse_registration(
    data: &[u8],
    opts: &ImportOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<(Vec<RegRow>, u64)> {
    let mut all = Vec::new();
    let (_, warnings) = parse_registration_chunks(data, opts, progress, 1 << 16, |c| {
        if all.is_empty() {
            all = c;
        } else {
            all.extend(c);
        }
        Ok(())
    })?;
    Ok((all, warnings))
}

/// Rows in a chunk handed from the parser to a streaming writer.
pub(crate) const STREAM_CHUNK: usize = 4096;

/// From the parser to a streaming writer. A writer that sees its channel close without
/// [`Feed::End`] rolls back.
#[derive(Debug)]
pub(crate) enum Feed {
    /// Parsed rows, in file order, and how far into the file the parser had got (bytes).
    Rows {
        /// The rows.
        rows: Vec<RegRow>,
        /// Bytes of the file parsed.
        pos: u64,
    },
    /// Every row is sent; the parser now checks the whole file. The writer can finish what
    /// does not depend on the check (building indexes, ending a `COPY`) meanwhile.
    Parsed,
    /// The whole file is parsed and checked (no duplicates, no overlaps): commit.
    End {
        /// Data rows in the file.
        rows: u64,
    },
}

/// How a streamed parse ended, when the file is good.
#[derive(Debug)]
pub(crate) enum Streamed {
    /// Every row went to the writer, then [`Feed::End`].
    Sent {
        /// Data rows.
        rows: u64,
        /// Distinct MPxNs.
        keys: u64,
        /// Check-digit warnings.
        warnings: u64,
    },
    /// The writer stopped taking rows; its own result says why.
    WriterGone,
}

/// Parse a refresh registration file, handing each chunk of parsed rows to a writer while
/// parsing goes on, then ([`Feed::Parsed`]) check the whole file (duplicates and overlaps, as
/// [`plan_registration`] does, in key order) while the writer finishes its part, before
/// telling the writer to commit. A bad row
/// or a failed check drops the feed: the writer rolls back. When the writer fails first
/// (say, on a duplicate key the check will name), parsing and checking go on without it, so
/// that the file's own error is the one reported.
pub(crate) fn parse_registration_streaming(
    data: &[u8],
    opts: &ImportOptions,
    feed: tokio::sync::mpsc::Sender<Feed>,
) -> Result<Streamed> {
    let pos = std::sync::atomic::AtomicU64::new(0);
    let mut note = |p: ImportProgress| pos.store(p.done, std::sync::atomic::Ordering::Relaxed);
    let mut prog: ProgressFn<'_> = &mut note;
    let mut all: Vec<RegRow> = Vec::with_capacity(data.len() / 48);
    let mut sending = true;
    let (rows, warnings) =
        parse_registration_chunks(data, opts, &mut prog, STREAM_CHUNK, |chunk| {
            all.extend_from_slice(&chunk);
            if sending {
                let pos = pos.load(std::sync::atomic::Ordering::Relaxed);
                sending = feed.blocking_send(Feed::Rows { rows: chunk, pos }).is_ok();
            }
            Ok(())
        })?;
    if sending {
        sending = feed.blocking_send(Feed::Parsed).is_ok();
    }
    let keys = plan_registration(opts, all, Vec::new())?.keys.len() as u64;
    if !sending || feed.blocking_send(Feed::End { rows }).is_err() {
        return Ok(Streamed::WriterGone);
    }
    Ok(Streamed::Sent {
        rows,
        keys,
        warnings,
    })
}

fn show_to(to: Option<Date>) -> String {
    to.map_or_else(|| "open".to_string(), |d| d.to_string())
}

/// The first (lowest-line) error of each kind found while checking registration periods in
/// (MPxN, effective_from) order. Reported in the order duplicates, deletes of nothing,
/// overlaps.
#[derive(Debug, Default)]
pub(crate) struct RegFaults {
    duplicate: Option<(u64, RowError)>,
    no_delete: Option<(u64, RowError)>,
    overlap: Option<(u64, RowError)>,
}

fn keep_first(slot: &mut Option<(u64, RowError)>, line: u64, e: impl FnOnce() -> RowError) {
    if slot.as_ref().is_none_or(|(l, _)| line < *l) {
        *slot = Some((line, e()));
    }
}

impl RegFaults {
    /// The error to report, if any.
    pub(crate) fn into_result(self, file: &str) -> Result<()> {
        match self.duplicate.or(self.no_delete).or(self.overlap) {
            Some((line, e)) => Err(row_err(file, line, e)),
            None => Ok(()),
        }
    }

    /// Two file rows with the same key, `b` the later line.
    pub(crate) fn duplicate(&mut self, a: &RegRow, b: &RegRow) {
        let (first, second) = if a.line <= b.line { (a, b) } else { (b, a) };
        keep_first(&mut self.duplicate, second.line, || RowError::Duplicate {
            first_line: first.line,
            what: format!("MPxN {} from {}", first.mpxn, first.from),
        });
    }

    /// Check two consecutive periods of the new histories (`prev` before `cur`).
    pub(crate) fn adjacent(&mut self, prev: &RegRow, cur: &RegRow) {
        if prev.mpxn != cur.mpxn || prev.to.is_some_and(|t| t < cur.from) {
            return;
        }
        // Blame the file row (the later line when both are from the file).
        let blame_later = if cur.is_from_file() && prev.is_from_file() {
            cur.line >= prev.line
        } else {
            cur.is_from_file()
        };
        let (me, other) = if blame_later {
            (cur, prev)
        } else {
            (prev, cur)
        };
        keep_first(&mut self.overlap, me.line, || {
            let other_where = match &other.source {
                None => format!("line {}", other.line),
                Some(f) => format!("in the store, from {} line {}", f, other.line),
            };
            RowError::Overlap {
                mpxn: me.mpxn.to_string(),
                period: format!("{}..{}", me.from, show_to(me.to)),
                other: format!("{}..{}", other.from, show_to(other.to)),
                other_where,
            }
        });
    }

    fn no_delete(&mut self, r: &RegRow) {
        keep_first(&mut self.no_delete, r.line, || {
            invalid(
                "effective_from",
                &r.from.to_string(),
                format!(
                    "MPxN {} has no registration from this date to delete",
                    r.mpxn
                ),
            )
        });
    }
}

/// Build the new histories of the MPxNs a registration file lists.
///
/// `existing` is the store's history of those MPxNs (used by update files only): a file row
/// replaces the store's period with the same start, or deletes it.
pub(crate) fn plan_registration(
    opts: &ImportOptions,
    mut rows: Vec<RegRow>,
    mut existing: Vec<crate::model::Registration>,
) -> Result<RegPlan> {
    let file = &opts.file_id;
    // Stable: rows with the same key stay in file order.
    if !rows.is_sorted_by(|a, b| a.key_cmp(b).is_le()) {
        rows.sort_by(RegRow::key_cmp);
    }
    let mut faults = RegFaults::default();
    for w in rows.windows(2) {
        if w[0].key_cmp(&w[1]).is_eq() {
            faults.duplicate(&w[0], &w[1]);
        }
    }
    let mut keys: Vec<Mpxn> = Vec::new();
    for r in &rows {
        if keys.last() != Some(&r.mpxn) {
            keys.push(r.mpxn.clone());
        }
    }
    let rows = if existing.is_empty() {
        for r in rows.iter().filter(|r| r.delete) {
            faults.no_delete(r);
        }
        rows
    } else {
        existing.sort_by(|a, b| {
            a.mpxn
                .cmp(&b.mpxn)
                .then_with(|| a.effective_from.cmp(&b.effective_from))
        });
        let mut files: HashMap<String, Arc<str>> = HashMap::new();
        let mut old = Vec::with_capacity(existing.len());
        for r in existing {
            let source = files
                .entry(r.source_file)
                .or_insert_with_key(|k| Arc::from(k.as_str()))
                .clone();
            let mpid = Mpid::parse("supplier_mpid", &r.mpid)
                .map_err(|_| crate::store::corrupt("registration", "supplier_mpid", &r.mpid))?;
            old.push(RegRow {
                mpxn: r.mpxn,
                from: r.effective_from,
                to: r.effective_to,
                mpid,
                line: r.source_line,
                source: Some(source),
                delete: false,
            });
        }
        merge_update(rows, old, &mut faults)
    };
    for w in rows.windows(2) {
        faults.adjacent(&w[0], &w[1]);
    }
    faults.into_result(file)?;
    Ok(RegPlan { keys, rows })
}

/// Merge an update's rows onto the store's periods (both in key order): a file row replaces
/// the period with its key or, with `action=delete`, removes it.
fn merge_update(new: Vec<RegRow>, old: Vec<RegRow>, faults: &mut RegFaults) -> Vec<RegRow> {
    let mut out = Vec::with_capacity(new.len() + old.len());
    let mut old = old.into_iter().peekable();
    for r in new {
        while let Some(o) = old.next_if(|o| o.key_cmp(&r).is_lt()) {
            out.push(o);
        }
        let replaced = old.next_if(|o| o.key_cmp(&r).is_eq()).is_some();
        if r.delete {
            if !replaced {
                faults.no_delete(&r);
            }
        } else if out.last().is_some_and(|l| l.key_cmp(&r).is_eq()) {
            // A duplicate in the file, already reported: keep the first.
        } else {
            out.push(r);
        }
    }
    out.extend(old);
    out
}

pub(crate) const INV_COLUMNS: &[&str] = &[
    "device_eui",
    "device_type",
    "status",
    "mpxn",
    "cos_credential",
    "ka_cert",
    "ds_cert",
    "comms_hub_eui",
    "csp_region",
    "firmware_version",
    "last_contact",
];

/// One inventory row: the fields it sets (`None` = absent or empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct InvRow {
    pub line: u64,
    pub eui: Option<Eui64>,
    pub device_type: Option<DeviceType>,
    pub status: Option<DeviceStatus>,
    pub mpxn: Option<Mpxn>,
    pub cos: Option<CosCredential>,
    pub ka: Option<Vec<u8>>,
    pub ds: Option<Vec<u8>>,
    pub hub: Option<Eui64>,
    pub region: Option<String>,
    pub firmware: Option<String>,
    pub last_contact: Option<Timestamp>,
}

fn eui(column: &'static str, s: &str) -> Result<Eui64, RowError> {
    s.parse::<Eui64>()
        .map_err(|e| invalid(column, s, e.to_string()))
}

fn cert(column: &'static str, s: &str) -> Result<Vec<u8>, RowError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| invalid(column, s, format!("is not base64 ({e})")))?;
    // A DER certificate is a SEQUENCE.
    if der.first() != Some(&0x30) {
        return Err(invalid(
            column,
            s,
            "is not a DER certificate (no SEQUENCE tag)",
        ));
    }
    // Its layout down to the subjectPublicKeyInfo, and a P-256 key there:
    // what the party reads from the inventory (the key-agreement key for
    // the MAC secret, the digital-signing key for device messages). The
    // key-only read adds about a tenth to a row's import; a full decode
    // (`Certificate::from_der`) would double it
    // (`examples/inventory_cert_cost.rs`).
    ecos_smki::Certificate::public_key_of(&der).map_err(|e| {
        invalid(
            column,
            s,
            format!("is not a DER certificate with a P-256 key ({e})"),
        )
    })?;
    Ok(der)
}

pub(crate) fn parse_inventory(
    data: &[u8],
    opts: &ImportOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<(Vec<InvRow>, u64)> {
    let mut rows: Vec<InvRow> = Vec::new();
    let mut warnings = 0u64;
    let mut seen: HashMap<Eui64, u64> = HashMap::new();
    let refresh = opts.mode == ImportMode::Refresh;
    for_each_row(
        &opts.file_id,
        data,
        INV_COLUMNS,
        if refresh {
            &["device_eui", "device_type", "status"]
        } else {
            &["device_eui"]
        },
        progress,
        |line, h, f| {
            let e = eui("device_eui", required(h, f, "device_eui")?)?;
            if let Some(first) = seen.insert(e, line) {
                return Err(RowError::Duplicate {
                    first_line: first,
                    what: format!("device {e}"),
                });
            }
            let mut r = InvRow {
                line,
                eui: Some(e),
                ..InvRow::default()
            };
            let text = |col: &'static str| h.get(f, col);
            if refresh {
                required(h, f, "device_type")?;
                required(h, f, "status")?;
            }
            if let Some(s) = text("device_type") {
                r.device_type = Some(
                    s.parse()
                        .map_err(|m: String| invalid("device_type", s, m))?,
                );
            }
            if let Some(s) = text("status") {
                r.status = Some(s.parse().map_err(|m: String| invalid("status", s, m))?);
            }
            if let Some(s) = text("mpxn") {
                r.mpxn = Some(parse_mpxn(s, opts.check_digits, &mut warnings)?);
            }
            if let Some(s) = text("cos_credential") {
                r.cos = Some(
                    s.parse()
                        .map_err(|m: String| invalid("cos_credential", s, m))?,
                );
            }
            if let Some(s) = text("ka_cert") {
                r.ka = Some(cert("ka_cert", s)?);
            }
            if let Some(s) = text("ds_cert") {
                r.ds = Some(cert("ds_cert", s)?);
            }
            if let Some(s) = text("comms_hub_eui") {
                r.hub = Some(eui("comms_hub_eui", s)?);
            }
            if let Some(s) = text("csp_region") {
                r.region = Some(s.to_string());
            }
            if let Some(s) = text("firmware_version") {
                r.firmware = Some(s.to_string());
            }
            if let Some(s) = text("last_contact") {
                r.last_contact = Some(s.parse::<Timestamp>().map_err(|e| {
                    invalid(
                        "last_contact",
                        s,
                        format!("is not an RFC 3339 instant ({e})"),
                    )
                })?);
            }
            if let (Some(t), Some(m)) = (r.device_type, &r.mpxn)
                && let Some(fuel) = t.fuel()
                && fuel != m.fuel()
            {
                return Err(invalid(
                    "mpxn",
                    m.as_str(),
                    format!("is a {} meter point but the device is {}", m.fuel(), t),
                ));
            }
            rows.push(r);
            Ok(())
        },
    )?;
    Ok((rows, warnings))
}

/// Merge an inventory row onto the existing record (update) or build it (refresh).
pub(crate) fn merge_device(file: &str, row: InvRow, existing: Option<Device>) -> Result<Device> {
    let line = row.line;
    let eui = row.eui.ok_or_else(|| {
        row_err(
            file,
            line,
            RowError::Missing {
                column: "device_eui",
            },
        )
    })?;
    let mut d = match existing {
        Some(d) => d,
        None => {
            let (Some(t), Some(s)) = (row.device_type, row.status) else {
                return Err(row_err(
                    file,
                    line,
                    invalid(
                        "device_eui",
                        &eui.to_string(),
                        "is not in the inventory; device_type and status are required to add it",
                    ),
                ));
            };
            Device::new(eui, t, s)
        }
    };
    if let Some(t) = row.device_type {
        d.device_type = t;
    }
    if let Some(s) = row.status {
        d.status = s;
    }
    macro_rules! set {
        ($($field:ident <- $src:ident),*) => { $(if row.$src.is_some() { d.$field = row.$src; })* };
    }
    set!(mpxn <- mpxn, cos_credential <- cos, ka_cert <- ka, ds_cert <- ds, comms_hub <- hub,
        csp_region <- region, firmware_version <- firmware, last_contact <- last_contact);
    if let (Some(fuel), Some(m)) = (d.device_type.fuel(), &d.mpxn)
        && fuel != m.fuel()
    {
        return Err(row_err(
            file,
            line,
            invalid(
                "mpxn",
                m.as_str(),
                format!(
                    "is a {} meter point but the device is {}",
                    m.fuel(),
                    d.device_type
                ),
            ),
        ));
    }
    Ok(d)
}

pub(crate) const SU_COLUMNS: &[&str] = &["org_eui", "name", "roles", "mpids", "response_endpoint"];

fn list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split([' ', ';'])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn parse_service_users(
    data: &[u8],
    opts: &ImportOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Vec<ServiceUser>> {
    let mut out = Vec::new();
    let mut seen: HashMap<Eui64, u64> = HashMap::new();
    for_each_row(
        &opts.file_id,
        data,
        SU_COLUMNS,
        &["org_eui", "roles", "response_endpoint"],
        progress,
        |line, h, f| {
            let e = eui("org_eui", required(h, f, "org_eui")?)?;
            if let Some(first) = seen.insert(e, line) {
                return Err(RowError::Duplicate {
                    first_line: first,
                    what: format!("organisation {e}"),
                });
            }
            let roles = list(h.get(f, "roles"));
            for r in &roles {
                if r.is_empty() || r.len() > 4 || !r.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(invalid(
                        "roles",
                        r,
                        "is not a user role (e.g. IS, GS, ED, GT, OU)",
                    ));
                }
            }
            let mpids = list(h.get(f, "mpids"));
            for m in &mpids {
                check_mpid("mpids", m)?;
            }
            let endpoint = required(h, f, "response_endpoint")?;
            out.push(ServiceUser {
                org_eui: e,
                name: h.get(f, "name").unwrap_or("").to_string(),
                roles,
                mpids,
                response_endpoint: endpoint.to_string(),
            });
            Ok(())
        },
    )?;
    Ok(out)
}

/// What a file check found: the file parses and (for registration data) its periods do not
/// overlap among themselves. Nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCheck {
    /// The kind of file.
    pub kind: FileKind,
    /// Data rows.
    pub rows: u64,
    /// Distinct keys (MPxNs, devices, organisations).
    pub keys: u64,
    /// Rows whose MPxN fails its check digit (accepted under the warn policy).
    pub check_digit_warnings: u64,
}

/// Check a file of the given kind without a store: every row parses, no duplicate keys, and
/// the registration periods of each MPxN in the file do not overlap. Use it for a dry run;
/// an update file can still be refused against the store's data.
pub fn check_file(kind: FileKind, data: &[u8], opts: &ImportOptions) -> Result<FileCheck> {
    only_registration_full(kind, opts)?;
    let mut nop = |_: ImportProgress| {};
    let mut progress: ProgressFn<'_> = &mut nop;
    match kind {
        FileKind::Registration => {
            let (rows, warnings) = parse_registration(data, opts, &mut progress)?;
            let n = rows.len() as u64;
            let plan = plan_registration(opts, rows, Vec::new())?;
            Ok(FileCheck {
                kind,
                rows: n,
                keys: plan.keys.len() as u64,
                check_digit_warnings: warnings,
            })
        }
        FileKind::Inventory => {
            let (rows, warnings) = parse_inventory(data, opts, &mut progress)?;
            if opts.mode == ImportMode::Refresh {
                for r in &rows {
                    merge_device(&opts.file_id, r.clone(), None)?;
                }
            }
            Ok(FileCheck {
                kind,
                rows: rows.len() as u64,
                keys: rows.len() as u64,
                check_digit_warnings: warnings,
            })
        }
        FileKind::ServiceUsers => {
            let users = parse_service_users(data, opts, &mut progress)?;
            Ok(FileCheck {
                kind,
                rows: users.len() as u64,
                keys: users.len() as u64,
                check_digit_warnings: 0,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The fast date path accepts exactly what the general parser accepts, as the same date.
        #[test]
        fn fast_date_agrees(y in 0u32..10_000, m in 0u32..14, d in 0u32..33) {
            let s = format!("{y:04}-{m:02}-{d:02}");
            proptest::prop_assert_eq!(fast_date(s.as_bytes()), s.parse::<Date>().ok());
        }

        #[test]
        fn fast_date_refuses_other_shapes(s in "[0-9+-]{8,12}") {
            if let Some(d) = fast_date(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(d), s.parse::<Date>().ok());
            }
        }
    }

    #[test]
    fn mpid_and_mpxn_inline() {
        assert_eq!(
            Mpid::parse("supplier_mpid", "ABCD1234").unwrap().as_str(),
            "ABCD1234"
        );
        assert!(Mpid::parse("supplier_mpid", "ABCD12345").is_err());
        // Inline MPxNs order as their digit strings.
        let mut v: Vec<Mpxn> = ["1312345678907", "42", "3938424403", "420", "5"]
            .iter()
            .map(|s| Mpxn::parse_unchecked(s).unwrap())
            .collect();
        v.sort();
        let s: Vec<&str> = v.iter().map(Mpxn::as_str).collect();
        assert_eq!(s, ["1312345678907", "3938424403", "42", "420", "5"]);
    }
}
