//! Errors of the store.

use crate::mpxn::MpxnError;

/// Where in an import file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLine {
    /// The file's id (its name unless given).
    pub file: String,
    /// One-based line number (the header is line 1).
    pub line: u64,
}

impl std::fmt::Display for FileLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

/// Why a row (or the file as a whole) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// The header does not name the columns of the format.
    #[error("header: {0}")]
    Header(String),
    /// Wrong number of fields.
    #[error("expected {expected} fields, found {found}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields on this line.
        found: usize,
    },
    /// A quoted field is not closed or has text after its closing quote.
    #[error("malformed quoting in field {field}")]
    Quoting {
        /// One-based field number.
        field: usize,
    },
    /// A required field is empty.
    #[error("column {column}: value required")]
    Missing {
        /// The column name.
        column: &'static str,
    },
    /// A field does not parse.
    #[error("column {column}: {value:?} {reason}")]
    Invalid {
        /// The column name.
        column: &'static str,
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bad MPxN.
    #[error("column mpxn: {0}")]
    Mpxn(#[from] MpxnError),
    /// `effective_to` before `effective_from`.
    #[error("effective_to {to} is before effective_from {from}")]
    ReversedPeriod {
        /// Start date.
        from: String,
        /// End date.
        to: String,
    },
    /// Two registration periods of one MPxN overlap.
    #[error("MPxN {mpxn}: period {period} overlaps {other} ({other_where})")]
    Overlap {
        /// The MPxN.
        mpxn: String,
        /// This row's period, `from..to` (`open` when open-ended).
        period: String,
        /// The other period, `from..to`.
        other: String,
        /// Where the other period comes from (a line of this file, or the store).
        other_where: String,
    },
    /// The same key appears twice in one file.
    #[error("duplicate of line {first_line}: {what}")]
    Duplicate {
        /// The earlier line.
        first_line: u64,
        /// The duplicated key.
        what: String,
    },
    /// The line is not valid UTF-8.
    #[error("not valid UTF-8")]
    Utf8,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite reported an error on the direct (synchronous) read or bulk-write path.
    #[error("database (SQLite): {0}")]
    Sqlite(String),
    /// Applying the schema migrations failed.
    #[error("schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A row of an import file is bad; nothing of the file was applied.
    #[error("{at}: {error}; file rejected, nothing applied")]
    Row {
        /// Where.
        at: FileLine,
        /// What.
        error: Box<RowError>,
    },
    /// The file is empty or has no header.
    #[error("{file}: no header line")]
    NoHeader {
        /// The file id.
        file: String,
    },
    /// A file with this id was already imported.
    #[error("file {file_id:?} was already imported on {imported_at}")]
    AlreadyImported {
        /// The file id.
        file_id: String,
        /// When.
        imported_at: String,
    },
    /// An update file's sequence number is not the next one for its source.
    #[error(
        "source {source_name:?}: update sequence {got} is not the next one (expected {expected})"
    )]
    Sequence {
        /// The data provider.
        source_name: String,
        /// The sequence given.
        got: u64,
        /// The sequence expected.
        expected: u64,
    },
    /// A value read from the database is not valid (the store was written by something else).
    #[error("corrupt value in {table}.{column}: {value:?}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// The value.
        value: String,
    },
    /// The time zone of the as-of date rule is unknown.
    #[error("time zone {0:?}: {1}")]
    TimeZone(String, String),
    /// A request with this id already exists.
    #[error("request {0:?} already exists")]
    DuplicateRequest(String),
    /// No request with this id.
    #[error("request {0:?} not found")]
    RequestNotFound(String),
    /// The request is not in the state the transition expects.
    #[error("request {request_id:?} is {actual}, not {expected}")]
    RequestState {
        /// The request.
        request_id: String,
        /// The state the caller expected.
        expected: String,
        /// The state it is in.
        actual: String,
    },
    /// A GBCS counter reservation would pass 2^64 - 1.
    #[error("GBCS counters for {party} exhausted")]
    CounterExhausted {
        /// The party.
        party: String,
    },
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
