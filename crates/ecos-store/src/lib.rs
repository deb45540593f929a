//! Durable state for ecos: registration data, the smart metering inventory, service users,
//! and the state the DUIS 6.23 pipeline needs (request counters, GBCS counters, requests,
//! a hash-chained audit log, an outbound queue).
//!
//! One interface, [`Store`], over two backends: **SQLite** (a file `ecos.db` in the data
//! directory, WAL journal; the default) and **PostgreSQL** (a URL; several ecos nodes can
//! share it). On SQLite, point reads (supplier at a date, registration history, device,
//! service user) and bulk registration writes go through synchronous rusqlite connections
//! on the same file beside the sqlx pool, without sqlx's per-call hand-over to a worker
//! thread; every read sees every commit made before it, so nothing is cached. Versioned schema migrations (`migrations/sqlite`, `migrations/postgres`, the
//! same schema) are applied by [`Store::open`]. Queries are runtime SQL common to both.
//!
//! # Storage conventions
//!
//! - MPxNs are canonical digit strings; the fuel follows from the form ([`mpxn`]).
//! - Dates are ISO `YYYY-MM-DD` text; `effective_to` is **inclusive** and empty while open.
//! - Instants are microseconds since the Unix epoch (UTC).
//! - EUI-64s are upper-case hex without separators (`90B3D51F30010000`).
//! - u64 counters are stored order-preserving in signed 64-bit columns (`v XOR 2^63`).
//!
//! # The supplier-at-instant question
//!
//! [`Store::registered_supplier_at`] takes an instant, converts it to the **as-of date**
//! (its calendar date in [`StoreConfig::as_of_time_zone`], default `Europe/London`) and
//! returns the [`Registration`] whose period contains that date, if any. Its
//! `effective_from` is the switch date.
//!
//! # Import file formats
//!
//! All files are UTF-8 CSV: comma separator, `"` quoting (`""` inside quotes), no line
//! breaks inside fields, LF or CRLF line ends. The first line is a **header** naming the
//! columns; columns may come in any order, unknown columns are refused, optional columns
//! may be left out. Blank lines are skipped. Line numbers in errors count the header as
//! line 1. An import is one transaction: any bad row rejects the whole file with its line
//! number and nothing is applied. Every file has an id (by default its file name); a file
//! id is imported once: the same id with the same content is a no-op
//! ([`ImportSummary::already_imported`]), with other content an error. Files may carry
//! their data provider ([`ImportOptions::source`], recorded with the file) and a sequence
//! number ([`ImportOptions::sequence`]): update sequences must be consecutive (no gaps, no
//! reordering), refresh sequences increasing.
//!
//! ## Registration data
//!
//! ```text
//! mpxn,supplier_mpid,effective_from,effective_to,action
//! 1312345678907,ACEE,2023-01-01,2024-03-14,
//! 1312345678907,BCEE,2024-03-15,,
//! 3938424403,BCG,2024-07-01,,
//! ```
//!
//! | column | required | content |
//! |---|---|---|
//! | `mpxn` | yes | 13-digit MPAN core (electricity) or MPRN of 1–10 digits (gas); check digits per [`ImportOptions::check_digits`] |
//! | `supplier_mpid` | yes | MPID or gas short code, 1–8 characters `A-Z0-9` |
//! | `effective_from` | yes | first day, `YYYY-MM-DD` |
//! | `effective_to` | no | last day (inclusive), empty = open |
//! | `action` | no | `upsert` (default) or `delete` (update files only) |
//!
//! - **Refresh** ([`ImportMode::Refresh`]): authoritative for the MPxNs it lists: each listed
//!   MPxN's history becomes exactly the file's rows for it. Unlisted MPxNs are untouched.
//! - **Full refresh** ([`ImportMode::FullRefresh`], registration data only; needs the
//!   provider): the provider's whole population from the date [`ImportOptions::as_of`]
//!   (default: the import's as-of date). The listed MPxNs are refreshed as above. Every
//!   other period imported from a file of the same provider that runs past the day before
//!   that date is **end-dated** on that day; one that would only start on or after the date
//!   is removed ([`ImportSummary::end_dated`] counts both). Periods from other providers'
//!   files, or from files imported without a provider, are untouched; an end-dated period
//!   keeps its provenance.
//! - **Update** ([`ImportMode::Update`]): a delta. A row replaces the period of that MPxN
//!   starting on the same `effective_from`, or adds it; `action=delete` removes it (it must
//!   exist). Typical switch: end-date the old period and add the new one.
//! - Either way, periods of one MPxN must not overlap, within the file or (update) against
//!   the store; an overlap rejects the file, naming the later line and the other period.
//!   The same (MPxN, `effective_from`) twice in one file is refused.
//! - Every stored period keeps its provenance (file id and line).
//!
//! ## Inventory devices
//!
//! ```text
//! device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,comms_hub_eui,csp_region,firmware_version,last_contact
//! 00-DB-12-34-56-78-90-A0,esme,commissioned,1312345678907,transitional,,,00-DB-12-34-56-78-90-A1,north,1.2.0,2024-05-01T10:00:00Z
//! ```
//!
//! | column | content |
//! |---|---|
//! | `device_eui` | required; EUI-64, hyphenated or bare hex |
//! | `device_type` | `esme`, `gsme`, `chf`, `gpf`, `ppmid`, `hcalcs`, `ihd`, `sapc` |
//! | `status` | `pre-notified`, `installed-not-commissioned`, `commissioned`, `suspended`, `decommissioned`, `withdrawn` |
//! | `mpxn` | the associated meter point (must match the fuel of an ESME/GSME) |
//! | `cos_credential` | `transitional` or `enduring`: the holder of the role-5 trust anchor cell |
//! | `ka_cert`, `ds_cert` | key-agreement / digital-signing certificate, DER in standard base64; its layout is walked to the subjectPublicKeyInfo, which must hold a P-256 key (the rest is not decoded here) |
//! | `comms_hub_eui` | EUI-64 of the communications hub |
//! | `csp_region` | free text (`north`, `central`, `south`) |
//! | `firmware_version` | free text |
//! | `last_contact` | last successful contact, RFC 3339 (`2024-05-01T10:00:00Z`) |
//!
//! - **Refresh**: `device_type` and `status` are required; each listed device's record is
//!   replaced by the row (empty fields become empty).
//! - **Update**: only `device_eui` is required; non-empty fields overwrite, empty or absent
//!   ones keep what the store has; a device not yet in the store needs type and status.
//! - A device listed twice in one file is refused.
//!
//! ## Service users
//!
//! ```text
//! org_eui,name,roles,mpids,response_endpoint
//! 90-B3-D5-1F-30-03-00-00,Gaining Energy,IS GS,ACEE ACG,https://gaining.example/duis
//! ```
//!
//! `roles` and `mpids` are lists separated by spaces or `;`. Each listed organisation's
//! record is replaced. `org_eui`, `roles` and `response_endpoint` are required.
//!
//! [`FileKind::detect`] tells the three formats apart by their header.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod context;
mod csv;
pub mod decide;
mod direct;
pub mod error;
pub mod followup;
pub mod generate;
pub mod import;
pub mod migration;
pub mod model;
pub mod mpxn;
pub mod pipeline;
pub mod query;
pub mod report;
mod store;
mod writer;

/// The SQLite query plan of `sql` (`EXPLAIN QUERY PLAN`, its detail column) over a
/// fresh store with every migration applied, each parameter bound to `x`: for tests
/// that hold a hot query to the shape of its plan.
#[cfg(test)]
pub(crate) async fn sqlite_plan(sql: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let loc = StoreLocation::sqlite_in_dir(dir.path());
    let store = Store::open(&loc, StoreConfig::default()).await.unwrap();
    let c = rusqlite::Connection::open(dir.path().join("ecos.db")).unwrap();
    let plan = {
        let mut q = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = q.parameter_count();
        q.query_map(
            rusqlite::params_from_iter(std::iter::repeat_n("x", n)),
            |r| r.get(3),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    store.close().await;
    plan
}

pub use context::{CheckContext, PendingRequest, RequestContext};
pub use decide::{Acceptance, AcceptanceCommit, DeviceAnswer, Moved, Refusal};
pub use error::{FileLine, Result, RowError, StoreError};
pub use followup::{DataImportMarker, DeviceSupplierCredentials};
pub use import::{FileCheck, check_file};
pub use import::{FileKind, ImportMode, ImportOptions, ImportProgress, ImportStage, ImportSummary};
pub use migration::{
    MigrationChange, MigrationCounts, MigrationOp, MigrationRecord, MigrationState,
    MigrationTransition, MigrationView,
};
pub use model::{
    CosCredential, Device, DeviceStatus, DeviceType, Registration, ServiceUser, StoreCounts,
};
pub use mpxn::{CheckDigitPolicies, CheckDigitPolicy, Fuel, Mpxn, MpxnError};
pub use pipeline::{
    AuditBreak, AuditEntry, AuditVerification, NewAuditEntry, NewRequest, OutboundMessage,
    RequestKind, RequestState, RequestUpdate, StoredRequest,
};
pub use query::{RequestCursor, RequestFilter, RequestPage, RequestSummary};
pub use report::{
    FailureExample, FailureReport, LatencySeries, LatencyStats, MigrationBucket, MigrationProgress,
    ReasonGroup, RetryBacklog, ServiceUserGroup, TrafficBucket, TrafficSeries, Window,
};
pub use store::{BackendKind, Store, StoreConfig, StoreLocation};
