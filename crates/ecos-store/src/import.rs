//! Parsing and checking of import files, independent of the backend.
//!
//! The formats are documented in the crate docs ([`crate`]).

use std::collections::{BTreeMap, HashMap};
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
    for (n, pos, line) in it {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = std::str::from_utf8(line).map_err(|_| row_err(file, n, RowError::Utf8))?;
        let fields = split_line(line).map_err(|e| row_err(file, n, e))?;
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
        f(n, &header, &fields).map_err(|e| row_err(file, n, e))?;
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
    if s.len() != 10 {
        return Err(invalid(column, s, "is not a date YYYY-MM-DD"));
    }
    s.parse::<Date>()
        .map_err(|e| invalid(column, s, format!("is not a date YYYY-MM-DD ({e})")))
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

/// One registration row of a file.
#[derive(Debug, Clone)]
pub(crate) struct RegRow {
    pub line: u64,
    pub mpxn: Mpxn,
    pub mpid: String,
    pub from: Date,
    pub to: Option<Date>,
    pub delete: bool,
}

/// A registration period as held (from the store or the file), with provenance.
#[derive(Debug, Clone)]
pub(crate) struct Period {
    pub mpid: String,
    pub to: Option<Date>,
    pub file: Arc<str>,
    pub line: u64,
    /// Whether it comes from the file being imported.
    pub from_file: bool,
}

pub(crate) const REG_COLUMNS: &[&str] = &[
    "mpxn",
    "supplier_mpid",
    "effective_from",
    "effective_to",
    "action",
];

pub(crate) fn parse_registration(
    data: &[u8],
    opts: &ImportOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<(Vec<RegRow>, u64)> {
    let mut rows = Vec::new();
    let mut warnings = 0u64;
    let mode = opts.mode;
    for_each_row(
        &opts.file_id,
        data,
        REG_COLUMNS,
        &["mpxn", "supplier_mpid", "effective_from"],
        progress,
        |line, h, f| {
            let mpxn = parse_mpxn(required(h, f, "mpxn")?, opts.check_digits, &mut warnings)?;
            let mpid = required(h, f, "supplier_mpid")?;
            check_mpid("supplier_mpid", mpid)?;
            let from_s = required(h, f, "effective_from")?;
            let from = parse_date("effective_from", from_s)?;
            let to = match h.get(f, "effective_to") {
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
            let delete = match h.get(f, "action").map(str::to_ascii_lowercase).as_deref() {
                None | Some("upsert") => false,
                Some("delete") if mode == ImportMode::Update => true,
                Some("delete") => {
                    return Err(invalid(
                        "action",
                        "delete",
                        "is only allowed in update files",
                    ));
                }
                Some(other) => return Err(invalid("action", other, "expected upsert or delete")),
            };
            rows.push(RegRow {
                line,
                mpxn,
                mpid: mpid.to_string(),
                from,
                to,
                delete,
            });
            Ok(())
        },
    )?;
    Ok((rows, warnings))
}

fn show_to(to: Option<Date>) -> String {
    to.map_or_else(|| "open".to_string(), |d| d.to_string())
}

/// Check the histories for overlaps. `histories` maps MPxN → periods by start date.
/// Each overlap is blamed on the later file line involved; the first such line is reported.
pub(crate) fn check_overlaps(
    file: &str,
    histories: &BTreeMap<Mpxn, BTreeMap<Date, Period>>,
) -> Result<()> {
    let mut worst: Option<(u64, RowError)> = None;
    for (mpxn, h) in histories {
        let mut prev: Option<(&Date, &Period)> = None;
        for (from, p) in h {
            if let Some((pf, pp)) = prev
                && pp.to.is_none_or(|t| t >= *from)
            {
                // Blame the file row (the later line when both are from the file).
                let blame_later = if p.from_file && pp.from_file {
                    p.line >= pp.line
                } else {
                    p.from_file
                };
                let (line, me_from, me, other_from, other) = if blame_later {
                    (p.line, from, p, pf, pp)
                } else {
                    (pp.line, pf, pp, from, p)
                };
                let other_where = if other.from_file {
                    format!("line {}", other.line)
                } else {
                    format!("in the store, from {} line {}", other.file, other.line)
                };
                let e = RowError::Overlap {
                    mpxn: mpxn.to_string(),
                    period: format!("{me_from}..{}", show_to(me.to)),
                    other: format!("{other_from}..{}", show_to(other.to)),
                    other_where,
                };
                if worst.as_ref().is_none_or(|(l, _)| line < *l) {
                    worst = Some((line, e));
                }
            }
            prev = Some((from, p));
        }
    }
    match worst {
        Some((line, e)) => Err(row_err(file, line, e)),
        None => Ok(()),
    }
}

/// Build the new histories of the MPxNs a registration file lists.
///
/// `existing` is the store's history of those MPxNs (used by update files only).
pub(crate) fn plan_registration(
    opts: &ImportOptions,
    rows: Vec<RegRow>,
    existing: Vec<crate::model::Registration>,
) -> Result<BTreeMap<Mpxn, BTreeMap<Date, Period>>> {
    let file = &opts.file_id;
    let file_arc: Arc<str> = Arc::from(file.as_str());
    let mut hist: BTreeMap<Mpxn, BTreeMap<Date, Period>> = BTreeMap::new();
    for r in existing {
        hist.entry(r.mpxn).or_default().insert(
            r.effective_from,
            Period {
                mpid: r.mpid,
                to: r.effective_to,
                file: Arc::from(r.source_file),
                line: r.source_line,
                from_file: false,
            },
        );
    }
    let mut seen: HashMap<(&Mpxn, Date), u64> = HashMap::with_capacity(rows.len());
    for r in &rows {
        if let Some(first) = seen.insert((&r.mpxn, r.from), r.line) {
            return Err(row_err(
                file,
                r.line,
                RowError::Duplicate {
                    first_line: first,
                    what: format!("MPxN {} from {}", r.mpxn, r.from),
                },
            ));
        }
    }
    drop(seen);
    for r in rows {
        let h = hist.entry(r.mpxn.clone()).or_default();
        if r.delete {
            if h.remove(&r.from).is_none() {
                return Err(row_err(
                    file,
                    r.line,
                    invalid(
                        "effective_from",
                        &r.from.to_string(),
                        format!(
                            "MPxN {} has no registration from this date to delete",
                            r.mpxn
                        ),
                    ),
                ));
            }
        } else {
            h.insert(
                r.from,
                Period {
                    mpid: r.mpid,
                    to: r.to,
                    file: file_arc.clone(),
                    line: r.line,
                    from_file: true,
                },
            );
        }
    }
    check_overlaps(file, &hist)?;
    Ok(hist)
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
                keys: plan.len() as u64,
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
