//! Durable state of the TCoS → ECoS credential migration (`ecos-domain.md` §6).
//!
//! - `migration_devices`: one row per device the migration tracks, with its
//!   [`MigrationState`], attempt count, next retry instant, failure reason, the batch
//!   and GBCS counter of its last command. Changes are compare-and-set on a version.
//! - `migration_transitions`: every state change, in order, with the device's comms hub
//!   and CSP region at that time (throttles are checked from it).
//! - `migration_inbox`: device messages received for the migration, kept until the
//!   transition they cause is committed (they are consumed in the same transaction), so
//!   a crash between receipt and processing loses nothing.
//!
//! Marking a device [`MigrationState::Migrated`] switches its inventory
//! `cos_credential` to `enduring` in the same transaction.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ecos_smki::Eui64;
use jiff::Timestamp;
use sqlx::AssertSqlSafe;

use crate::error::Result;
use crate::model::{CosCredential, DeviceStatus, DeviceType};
use crate::mpxn::Mpxn;
use crate::pipeline::{ordered_i64_to_u64, u64_to_ordered_i64};
use crate::store::{Store, corrupt, micros_to_ts, on_pool, ts_to_micros};
use crate::store::{in_width, padded};

/// Where a device is in the migration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MigrationState {
    /// Does not meet the eligibility rules (yet).
    NotEligible,
    /// Eligible, waiting to be selected.
    Candidate,
    /// Selected into a batch; no command sent yet.
    Selected,
    /// The 0x0106 command was handed to the transport; waiting for the response.
    Sent,
    /// The device answered success with the ECoS certificate (terminal).
    Migrated,
    /// Failed; waits until `next_at` before the next attempt.
    RetryWaiting,
    /// Failed in a way that retrying cannot fix (terminal).
    FailedPermanent,
    /// Taken out of the migration, with a reason (terminal).
    Excluded,
    /// A change of supplier is pending or future-dated for the device.
    Paused,
    /// The command went unanswered; a CS02a read of the device's {5, DS} cell is in
    /// flight to learn whether it took effect (`gbcs_counter` is the read's counter).
    Verifying,
}

impl MigrationState {
    /// Every state.
    pub const ALL: &'static [MigrationState] = &[
        MigrationState::NotEligible,
        MigrationState::Candidate,
        MigrationState::Selected,
        MigrationState::Sent,
        MigrationState::Migrated,
        MigrationState::RetryWaiting,
        MigrationState::FailedPermanent,
        MigrationState::Excluded,
        MigrationState::Paused,
        MigrationState::Verifying,
    ];

    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::NotEligible => "not-eligible",
            MigrationState::Candidate => "candidate",
            MigrationState::Selected => "selected",
            MigrationState::Sent => "sent",
            MigrationState::Migrated => "migrated",
            MigrationState::RetryWaiting => "retry-waiting",
            MigrationState::FailedPermanent => "failed-permanent",
            MigrationState::Excluded => "excluded",
            MigrationState::Paused => "paused",
            MigrationState::Verifying => "verifying",
        }
    }

    /// Whether the device's migration is over (migrated, failed permanently, excluded).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MigrationState::Migrated | MigrationState::FailedPermanent | MigrationState::Excluded
        )
    }

    /// Whether a command is (or is about to be) in flight (a 0x0106 or the CS02a read
    /// that follows an unanswered one).
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            MigrationState::Selected | MigrationState::Sent | MigrationState::Verifying
        )
    }
}

impl FromStr for MigrationState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        MigrationState::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown migration state {s:?}"))
    }
}

impl fmt::Display for MigrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device's migration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRecord {
    /// The device.
    pub eui: Eui64,
    /// Current state.
    pub state: MigrationState,
    /// Bumped by every change (compare-and-set token).
    pub version: u64,
    /// Commands sent so far.
    pub attempts: u32,
    /// Earliest next attempt ([`MigrationState::RetryWaiting`]).
    pub next_at: Option<Timestamp>,
    /// Why it is not eligible, paused, failing, failed or excluded.
    pub reason: Option<String>,
    /// The class of the last failure.
    pub failure_class: Option<String>,
    /// The batch it was last selected into.
    pub batch: Option<u64>,
    /// The GBCS counter of the last command built for it.
    pub gbcs_counter: Option<u64>,
    /// When the last command was sent.
    pub sent_at: Option<Timestamp>,
    /// The comms hub (at the last change).
    pub comms_hub: Option<Eui64>,
    /// The CSP region (at the last change).
    pub csp_region: Option<String>,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl MigrationRecord {
    /// A change to `state` that keeps every other field; adjust the fields, then pass it
    /// to [`Store::migration_transition`].
    pub fn to(&self, state: MigrationState, detail: impl Into<String>) -> MigrationChange {
        MigrationChange {
            state,
            attempts: self.attempts,
            next_at: self.next_at,
            reason: self.reason.clone(),
            failure_class: self.failure_class.clone(),
            batch: self.batch,
            gbcs_counter: self.gbcs_counter,
            sent_at: self.sent_at,
            detail: detail.into(),
            consume_inbox: None,
        }
    }
}

impl MigrationRecord {
    /// The record [`Store::migration_track`] creates for a device first tracked in `state`
    /// at `at` (version 1, no attempts).
    pub fn first(
        device: Eui64,
        state: MigrationState,
        reason: Option<String>,
        comms_hub: Option<Eui64>,
        csp_region: Option<String>,
        at: Timestamp,
    ) -> MigrationRecord {
        MigrationRecord {
            eui: device,
            state,
            version: 1,
            attempts: 0,
            next_at: None,
            reason,
            failure_class: None,
            batch: None,
            gbcs_counter: None,
            sent_at: None,
            comms_hub,
            csp_region,
            updated_at: norm(at),
        }
    }

    /// The record after `change` is applied at `at` (what the store then holds).
    pub fn after(&self, change: &MigrationChange, at: Timestamp) -> MigrationRecord {
        MigrationRecord {
            eui: self.eui,
            state: change.state,
            version: self.version + 1,
            attempts: change.attempts,
            next_at: change.next_at.map(norm),
            reason: change.reason.clone(),
            failure_class: change.failure_class.clone(),
            batch: change.batch,
            gbcs_counter: change.gbcs_counter,
            sent_at: change.sent_at.map(norm),
            comms_hub: self.comms_hub,
            csp_region: self.csp_region.clone(),
            updated_at: norm(at),
        }
    }
}

/// An instant as stored (whole microseconds).
fn norm(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// One write of a batch applied by [`Store::migration_apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationOp {
    /// Start tracking a device with this record (from [`MigrationRecord::first`]) and the
    /// transition's detail; nothing when it is tracked already.
    Track(MigrationRecord, String),
    /// Compare-and-set change of a record (as [`Store::migration_transition`]).
    Move {
        /// The record as read.
        current: MigrationRecord,
        /// Its new content.
        change: MigrationChange,
    },
    /// Drop an inbox message that changes no state.
    DropInbox(u64),
    /// Record a successful contact with a device.
    Contact {
        /// The device.
        device: Eui64,
        /// When its message was received.
        at: Timestamp,
    },
}

/// Transitions per multi-row insert (9 binds each).
const TRANSITION_CHUNK: usize = 500;

/// `sql` (numbered `$N` placeholders, in bind order, each once) for the backend: on SQLite
/// they become anonymous `?`. SQLite finds a named parameter's name by a linear scan of
/// the statement's names, once per bind, so binding `n` named parameters costs `n²`: the
/// long `IN` lists and multi-row inserts spent most of their time there.
fn positional(dollar: bool, sql: String) -> String {
    if dollar {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// A transition to insert.
struct TransitionRow {
    eui: String,
    from: Option<&'static str>,
    to: &'static str,
    attempt: i64,
    hub: Option<String>,
    region: Option<String>,
    counter: Option<i64>,
    detail: String,
}

impl TransitionRow {
    fn new(
        from: Option<MigrationState>,
        next: &MigrationRecord,
        counter: Option<u64>,
        detail: &str,
    ) -> TransitionRow {
        TransitionRow {
            eui: next.eui.to_compact(),
            from: from.map(MigrationState::as_str),
            to: next.state.as_str(),
            attempt: i64::from(next.attempts),
            hub: next.comms_hub.map(|h| h.to_compact()),
            region: next.csp_region.clone(),
            counter: counter.map(u64_to_ordered_i64),
            detail: detail.to_string(),
        }
    }
}

/// States whose reasons are counted (`migration_reason_counts`).
const REASON_STATES: [MigrationState; 5] = [
    MigrationState::RetryWaiting,
    MigrationState::FailedPermanent,
    MigrationState::Excluded,
    MigrationState::NotEligible,
    MigrationState::Paused,
];

/// Changes of the maintained counters made by one batch.
#[derive(Default)]
struct CountDeltas {
    states: BTreeMap<(&'static str, String), i64>,
    reasons: BTreeMap<String, i64>,
    sent: BTreeMap<(i64, &'static str, String), i64>,
}

impl CountDeltas {
    /// A record enters (`d` = 1) or leaves (`d` = -1) its state.
    fn enter(&mut self, r: &MigrationRecord, d: i64) {
        let region = r.csp_region.clone().unwrap_or_else(|| "-".into());
        *self.states.entry((r.state.as_str(), region)).or_default() += d;
        if let Some(why) = &r.reason {
            if REASON_STATES.contains(&r.state) {
                *self.reasons.entry(why.clone()).or_default() += d;
            }
        }
    }

    /// A command sent at `at_us` (the day's counters).
    fn sent(&mut self, r: &MigrationRecord, at_us: i64) {
        let day = at_us - at_us.rem_euclid(DAY_US);
        *self.sent.entry((day, "all", String::new())).or_default() += 1;
        if let Some(region) = &r.csp_region {
            *self
                .sent
                .entry((day, "region", region.clone()))
                .or_default() += 1;
        }
        if let Some(h) = r.comms_hub {
            *self.sent.entry((day, "hub", h.to_compact())).or_default() += 1;
        }
    }
}

/// A day in microseconds.
const DAY_US: i64 = 86_400_000_000;

/// The new content of a record (every field is written) and the transition's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationChange {
    /// New state.
    pub state: MigrationState,
    /// Attempts.
    pub attempts: u32,
    /// Next attempt instant.
    pub next_at: Option<Timestamp>,
    /// Reason.
    pub reason: Option<String>,
    /// Failure class.
    pub failure_class: Option<String>,
    /// Batch.
    pub batch: Option<u64>,
    /// GBCS counter.
    pub gbcs_counter: Option<u64>,
    /// When sent.
    pub sent_at: Option<Timestamp>,
    /// Recorded with the transition (free text or JSON).
    pub detail: String,
    /// An inbox message to delete in the same transaction (the message that caused this).
    pub consume_inbox: Option<u64>,
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationTransition {
    /// Order of recording.
    pub id: u64,
    /// The device.
    pub eui: Eui64,
    /// The state before (`None` when first tracked).
    pub from: Option<MigrationState>,
    /// The state after.
    pub to: MigrationState,
    /// Attempts after the change.
    pub attempt: u32,
    /// When.
    pub at: Timestamp,
    /// The device's comms hub.
    pub comms_hub: Option<Eui64>,
    /// The device's CSP region.
    pub csp_region: Option<String>,
    /// The GBCS counter of the command, for a change to `sent`.
    pub gbcs_counter: Option<u64>,
    /// Detail.
    pub detail: String,
}

/// What the selection engine needs to know about an inventory device, with its migration
/// record if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationView {
    /// The device.
    pub eui: Eui64,
    /// Type.
    pub device_type: DeviceType,
    /// Status.
    pub status: DeviceStatus,
    /// Meter point.
    pub mpxn: Option<Mpxn>,
    /// CoS credential on the device per the inventory.
    pub cos_credential: Option<CosCredential>,
    /// Comms hub.
    pub comms_hub: Option<Eui64>,
    /// CSP region.
    pub csp_region: Option<String>,
    /// Firmware.
    pub firmware_version: Option<String>,
    /// Last successful contact.
    pub last_contact: Option<Timestamp>,
    /// Whether the MPxN has a registration starting after the as-of date given.
    pub switch_coming: bool,
    /// The migration record.
    pub record: Option<MigrationRecord>,
}

/// A message waiting in the migration inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// Inbox id.
    pub id: u64,
    /// Sending device.
    pub device: Eui64,
    /// The bytes as received.
    pub bytes: Vec<u8>,
    /// When received.
    pub received_at: Timestamp,
}

/// Commands sent in a period, by comms hub and by CSP region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentCounts {
    /// All.
    pub total: u64,
    /// By comms hub EUI (compact hex).
    pub by_hub: BTreeMap<String, u64>,
    /// By region.
    pub by_region: BTreeMap<String, u64>,
}

/// Counts for `ecos migrate status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MigrationCounts {
    /// Devices by state.
    pub by_state: BTreeMap<String, u64>,
    /// Devices by region then state (`-` for no region).
    pub by_region: BTreeMap<String, BTreeMap<String, u64>>,
    /// Reasons of devices in retry-waiting, failed-permanent, excluded, not-eligible and
    /// paused, with counts.
    pub reasons: BTreeMap<String, u64>,
}

impl MigrationCounts {
    /// Devices in `state`.
    pub fn state(&self, state: MigrationState) -> u64 {
        self.by_state.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Devices with a command in flight (selected, sent, verifying).
    pub fn in_flight(&self) -> u64 {
        MigrationState::ALL
            .iter()
            .filter(|s| s.is_in_flight())
            .map(|s| self.state(*s))
            .sum()
    }
}

const REC_COLS: &str = "eui, state, version, attempts, next_at, reason, failure_class, batch, \
     gbcs_counter, sent_at, comms_hub_eui, csp_region, updated_at";

type RecTuple = (
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);

const T: &str = "migration_devices";

fn eui(table: &'static str, column: &'static str, s: &str) -> Result<Eui64> {
    s.parse::<Eui64>().map_err(|_| corrupt(table, column, s))
}

fn state(table: &'static str, column: &'static str, s: &str) -> Result<MigrationState> {
    s.parse().map_err(|_| corrupt(table, column, s))
}

fn rec_from(t: RecTuple) -> Result<MigrationRecord> {
    let (e, st, version, attempts, next_at, reason, class, batch, ctr, sent, hub, region, upd) = t;
    Ok(MigrationRecord {
        eui: eui(T, "eui", &e)?,
        state: state(T, "state", &st)?,
        version: version as u64,
        attempts: u32::try_from(attempts)
            .map_err(|_| corrupt(T, "attempts", &attempts.to_string()))?,
        next_at: next_at.map(|v| micros_to_ts(T, "next_at", v)).transpose()?,
        reason,
        failure_class: class,
        batch: batch.map(|b| b as u64),
        gbcs_counter: ctr.map(ordered_i64_to_u64),
        sent_at: sent.map(|v| micros_to_ts(T, "sent_at", v)).transpose()?,
        comms_hub: hub
            .as_deref()
            .map(|h| eui(T, "comms_hub_eui", h))
            .transpose()?,
        csp_region: region,
        updated_at: micros_to_ts(T, "updated_at", upd)?,
    })
}

type TransTuple = (
    i64,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
);

fn trans_from(t: TransTuple) -> Result<MigrationTransition> {
    const TT: &str = "migration_transitions";
    let (id, e, from, to, attempt, at, hub, region, ctr, detail) = t;
    Ok(MigrationTransition {
        id: id as u64,
        eui: eui(TT, "eui", &e)?,
        from: from
            .as_deref()
            .map(|f| state(TT, "from_state", f))
            .transpose()?,
        to: state(TT, "to_state", &to)?,
        attempt: attempt.clamp(0, i64::from(u32::MAX)) as u32,
        at: micros_to_ts(TT, "at", at)?,
        comms_hub: hub
            .as_deref()
            .map(|h| eui(TT, "comms_hub_eui", h))
            .transpose()?,
        csp_region: region,
        gbcs_counter: ctr.map(ordered_i64_to_u64),
        detail,
    })
}

type ViewTuple = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<String>,
);

/// The columns of a [`ViewTuple`] (`$1` is the as-of date for "switch coming"; `d` the
/// devices table, `m` migration_devices).
const VIEW_COLS: &str = "d.eui, d.device_type, d.status, d.mpxn, d.cos_credential, \
     d.comms_hub_eui, d.csp_region, d.firmware_version, d.last_contact, \
     CAST(CASE WHEN d.mpxn IS NOT NULL AND EXISTS (SELECT 1 FROM registration r \
     WHERE r.mpxn = d.mpxn AND r.effective_from > $1) THEN 1 ELSE 0 END AS BIGINT), m.state";

/// The body of [`Store::migration_switch_views`] after [`VIEW_COLS`]. The credential is
/// compared as `cos_credential || ''` so that SQLite cannot serve the query from the
/// `devices (cos_credential, eui)` index: in EUI order that index would spare the sort
/// but walk every transitional device while fewer than `limit` have a switch coming
/// (0.9 s a runner step at 10 million devices, 4.5 s at 30 million). PostgreSQL plans
/// from its statistics either way.
const SQL_SWITCH_VIEWS: &str = "FROM devices d \
     LEFT JOIN migration_devices m ON m.eui = d.eui \
     WHERE d.mpxn IN (SELECT r.mpxn FROM registration r WHERE r.effective_from > $1) \
     AND d.cos_credential || '' = $2 AND (m.state IS NULL OR m.state IN ($3, $4, $5)) \
     ORDER BY d.eui LIMIT $6";

fn sql_switch_views() -> String {
    format!("SELECT {VIEW_COLS} {SQL_SWITCH_VIEWS}")
}

fn view_from(
    row: ViewTuple,
    records: &mut std::collections::HashMap<Eui64, MigrationRecord>,
) -> Result<MigrationView> {
    let (e, ty, st, mpxn, cos, hub, region, fw, contact, switch, _) = row;
    const D: &str = "devices";
    let e = eui(D, "eui", &e)?;
    Ok(MigrationView {
        eui: e,
        device_type: ty.parse().map_err(|_| corrupt(D, "device_type", &ty))?,
        status: st.parse().map_err(|_| corrupt(D, "status", &st))?,
        mpxn: mpxn
            .as_deref()
            .map(|m| Mpxn::parse_unchecked(m).map_err(|_| corrupt(D, "mpxn", m)))
            .transpose()?,
        cos_credential: cos
            .as_deref()
            .map(|c| c.parse().map_err(|_| corrupt(D, "cos_credential", c)))
            .transpose()?,
        comms_hub: hub
            .as_deref()
            .map(|h| eui(D, "comms_hub_eui", h))
            .transpose()?,
        csp_region: region,
        firmware_version: fw,
        last_contact: contact
            .map(|v| micros_to_ts(D, "last_contact", v))
            .transpose()?,
        switch_coming: switch != 0,
        record: records.remove(&e),
    })
}

impl Store {
    /// Start tracking a device in `state` (with a transition from nothing). Returns false
    /// (and changes nothing) when it is tracked already.
    #[allow(clippy::too_many_arguments)] // each is a column of the first record
    pub async fn migration_track(
        &self,
        device: Eui64,
        state: MigrationState,
        reason: Option<&str>,
        comms_hub: Option<Eui64>,
        csp_region: Option<&str>,
        at: Timestamp,
        detail: &str,
    ) -> Result<bool> {
        let first = MigrationRecord::first(
            device,
            state,
            reason.map(str::to_string),
            comms_hub,
            csp_region.map(str::to_string),
            at,
        );
        let out = self
            .migration_apply(&[MigrationOp::Track(first, detail.to_string())], at)
            .await?;
        Ok(out.into_iter().next().flatten().is_some())
    }

    /// The migration record of a device.
    pub async fn migration_record(&self, device: Eui64) -> Result<Option<MigrationRecord>> {
        let sql = format!("SELECT {REC_COLS} FROM migration_devices WHERE eui = $1");
        let row: Option<RecTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(device.to_compact())
            .fetch_optional(p)
            .await?);
        row.map(rec_from).transpose()
    }

    /// The migration records of many devices (those tracked), by EUI.
    pub async fn migration_records_of(
        &self,
        devices: &[Eui64],
    ) -> Result<std::collections::HashMap<Eui64, MigrationRecord>> {
        let mut out = std::collections::HashMap::with_capacity(devices.len());
        for chunk in devices.chunks(500) {
            let width = in_width(chunk.len(), 500);
            let list = (1..=width)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = positional(
                self.dollar(),
                format!("SELECT {REC_COLS} FROM migration_devices WHERE eui IN ({list})"),
            );
            let recs: Vec<RecTuple> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql));
                for e in padded(chunk, width) {
                    q = q.bind(e.to_compact());
                }
                q.fetch_all(p).await?
            });
            for r in recs {
                let r = rec_from(r)?;
                out.insert(r.eui, r);
            }
        }
        Ok(out)
    }

    /// The inventory records of many devices (those known), by EUI.
    pub async fn migration_inventory_of(
        &self,
        devices: &[Eui64],
    ) -> Result<std::collections::HashMap<Eui64, crate::model::Device>> {
        self.load_devices(devices).await
    }

    /// Apply `change` to the record `current` (compare-and-set on its version) and record
    /// the transition; for [`MigrationState::Migrated`] also switch the inventory's
    /// `cos_credential` to `enduring`; delete `change.consume_inbox` if set. All in one
    /// transaction.
    ///
    /// Returns the new record, or `None` when the record changed meanwhile (someone else
    /// moved it first; nothing was written).
    pub async fn migration_transition(
        &self,
        current: &MigrationRecord,
        change: &MigrationChange,
        at: Timestamp,
    ) -> Result<Option<MigrationRecord>> {
        let op = MigrationOp::Move {
            current: current.clone(),
            change: change.clone(),
        };
        Ok(self
            .migration_apply(std::slice::from_ref(&op), at)
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// Apply `ops` in order, all in **one** transaction (a batch of the runner: one commit
    /// instead of one per device). Each [`MigrationOp::Move`] is compare-and-set on its
    /// record's version, as [`Store::migration_transition`]; one that finds its record
    /// changed writes nothing and yields `None` without failing the others. Every applied
    /// change is recorded in the transition log, and the maintained counters (by state and
    /// region, by reason, commands sent per day) move in the same transaction.
    ///
    /// Returns, per op, the record after it (`None` for a move that lost its race, a track
    /// of a device already tracked, and the ops that are not about a record).
    pub async fn migration_apply(
        &self,
        ops: &[MigrationOp],
        at: Timestamp,
    ) -> Result<Vec<Option<MigrationRecord>>> {
        let at = norm(at);
        let at_us = ts_to_micros(at);
        let mut out: Vec<Option<MigrationRecord>> = Vec::with_capacity(ops.len());
        let mut log: Vec<TransitionRow> = Vec::new();
        let mut deltas = CountDeltas::default();
        let dollar = self.dollar();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for op in ops {
                match op {
                    MigrationOp::Track(r, detail) => {
                        let n = sqlx::query(
                            "INSERT INTO migration_devices (eui, state, version, attempts, reason, \
                             comms_hub_eui, csp_region, updated_at) \
                             VALUES ($1, $2, 1, 0, $3, $4, $5, $6) ON CONFLICT (eui) DO NOTHING",
                        )
                        .bind(r.eui.to_compact())
                        .bind(r.state.as_str())
                        .bind(&r.reason)
                        .bind(r.comms_hub.map(|h| h.to_compact()))
                        .bind(&r.csp_region)
                        .bind(at_us)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if n == 1 {
                            let mut rec = r.clone();
                            rec.version = 1;
                            rec.attempts = 0;
                            rec.updated_at = at;
                            deltas.enter(&rec, 1);
                            log.push(TransitionRow::new(None, &rec, None, detail));
                            out.push(Some(rec));
                        } else {
                            out.push(None);
                        }
                    }
                    MigrationOp::Move { current, change } => {
                        let key = current.eui.to_compact();
                        let n = sqlx::query(
                            "UPDATE migration_devices SET state = $1, version = version + 1, \
                             attempts = $2, next_at = $3, reason = $4, failure_class = $5, \
                             batch = $6, gbcs_counter = $7, sent_at = $8, updated_at = $9 \
                             WHERE eui = $10 AND version = $11 AND state = $12",
                        )
                        .bind(change.state.as_str())
                        .bind(i64::from(change.attempts))
                        .bind(change.next_at.map(ts_to_micros))
                        .bind(&change.reason)
                        .bind(&change.failure_class)
                        .bind(change.batch.map(|b| b.min(i64::MAX as u64) as i64))
                        .bind(change.gbcs_counter.map(u64_to_ordered_i64))
                        .bind(change.sent_at.map(ts_to_micros))
                        .bind(at_us)
                        .bind(&key)
                        .bind(current.version.min(i64::MAX as u64) as i64)
                        .bind(current.state.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if n != 1 {
                            out.push(None);
                            continue;
                        }
                        let next = current.after(change, at);
                        deltas.enter(current, -1);
                        deltas.enter(&next, 1);
                        if change.state == MigrationState::Sent {
                            deltas.sent(&next, at_us);
                        }
                        log.push(TransitionRow::new(
                            Some(current.state),
                            &next,
                            (change.state == MigrationState::Sent)
                                .then_some(change.gbcs_counter)
                                .flatten(),
                            &change.detail,
                        ));
                        if change.state == MigrationState::Migrated {
                            sqlx::query("UPDATE devices SET cos_credential = $1 WHERE eui = $2")
                                .bind(CosCredential::Enduring.as_str())
                                .bind(&key)
                                .execute(&mut *tx)
                                .await?;
                        }
                        if let Some(id) = change.consume_inbox {
                            sqlx::query("DELETE FROM migration_inbox WHERE id = $1")
                                .bind(id.min(i64::MAX as u64) as i64)
                                .execute(&mut *tx)
                                .await?;
                        }
                        out.push(Some(next));
                    }
                    MigrationOp::DropInbox(id) => {
                        sqlx::query("DELETE FROM migration_inbox WHERE id = $1")
                            .bind((*id).min(i64::MAX as u64) as i64)
                            .execute(&mut *tx)
                            .await?;
                        out.push(None);
                    }
                    MigrationOp::Contact { device, at } => {
                        sqlx::query("UPDATE devices SET last_contact = $1 WHERE eui = $2")
                            .bind(ts_to_micros(*at))
                            .bind(device.to_compact())
                            .execute(&mut *tx)
                            .await?;
                        out.push(None);
                    }
                }
            }
            // Fixed statement sizes (the chunk, then powers of two) so that each size is
            // prepared once per connection and reused.
            let mut rest = &log[..];
            while !rest.is_empty() {
                let k = if rest.len() >= TRANSITION_CHUNK {
                    TRANSITION_CHUNK
                } else {
                    1 << (usize::BITS - 1 - rest.len().leading_zeros())
                };
                let (chunk, tail) = rest.split_at(k);
                rest = tail;
                let values = (0..chunk.len())
                    .map(|i| {
                        let b = i * 9;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7,
                            b + 8,
                            b + 9
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = positional(
                    dollar,
                    format!(
                        "INSERT INTO migration_transitions (eui, from_state, to_state, attempt, \
                         at, comms_hub_eui, csp_region, gbcs_counter, detail) VALUES {values}"
                    ),
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for t in chunk {
                    q = q
                        .bind(&t.eui)
                        .bind(t.from)
                        .bind(t.to)
                        .bind(t.attempt)
                        .bind(at_us)
                        .bind(&t.hub)
                        .bind(&t.region)
                        .bind(t.counter)
                        .bind(&t.detail);
                }
                q.execute(&mut *tx).await?;
            }
            for ((st, region), n) in deltas.states.iter().filter(|(_, n)| **n != 0) {
                sqlx::query(
                    "INSERT INTO migration_state_counts (state, csp_region, n) VALUES ($1, $2, $3) \
                     ON CONFLICT (state, csp_region) DO UPDATE \
                     SET n = migration_state_counts.n + excluded.n",
                )
                .bind(*st)
                .bind(region)
                .bind(*n)
                .execute(&mut *tx)
                .await?;
            }
            for (reason, n) in deltas.reasons.iter().filter(|(_, n)| **n != 0) {
                sqlx::query(
                    "INSERT INTO migration_reason_counts (reason, n) VALUES ($1, $2) \
                     ON CONFLICT (reason) DO UPDATE SET n = migration_reason_counts.n + excluded.n",
                )
                .bind(reason)
                .bind(*n)
                .execute(&mut *tx)
                .await?;
                if *n < 0 {
                    sqlx::query("DELETE FROM migration_reason_counts WHERE reason = $1 AND n <= 0")
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for ((day, scope, key), n) in &deltas.sent {
                sqlx::query(
                    "INSERT INTO migration_sent_counts (day, scope, key, n) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (day, scope, key) DO UPDATE \
                     SET n = migration_sent_counts.n + excluded.n",
                )
                .bind(*day)
                .bind(*scope)
                .bind(key)
                .bind(*n)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(out)
    }

    /// Records in `state`, by EUI after `after`, at most `limit`.
    pub async fn migration_records_in(
        &self,
        state: MigrationState,
        after: Option<Eui64>,
        limit: u32,
    ) -> Result<Vec<MigrationRecord>> {
        let sql = format!(
            "SELECT {REC_COLS} FROM migration_devices WHERE state = $1 AND eui > $2 \
             ORDER BY eui LIMIT $3"
        );
        let rows: Vec<RecTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(after.map(|e| e.to_compact()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(rec_from).collect()
    }

    /// Records in `state` whose `next_at` is at or before `until`, earliest first.
    pub async fn migration_due(
        &self,
        state: MigrationState,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<MigrationRecord>> {
        let sql = format!(
            "SELECT {REC_COLS} FROM migration_devices WHERE state = $1 AND next_at <= $2 \
             ORDER BY next_at, eui LIMIT $3"
        );
        let rows: Vec<RecTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(ts_to_micros(until))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(rec_from).collect()
    }

    /// Records sent at or before `until` (their response is overdue), oldest first.
    pub async fn migration_sent_before(
        &self,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<MigrationRecord>> {
        self.migration_overdue(MigrationState::Sent, until, limit)
            .await
    }

    /// Records in `state` (sent or verifying) whose message left at or before `until`,
    /// oldest first.
    pub async fn migration_overdue(
        &self,
        state: MigrationState,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<MigrationRecord>> {
        let sql = format!(
            "SELECT {REC_COLS} FROM migration_devices WHERE state = $1 AND sent_at <= $2 \
             ORDER BY sent_at, eui LIMIT $3"
        );
        let rows: Vec<RecTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(ts_to_micros(until))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(rec_from).collect()
    }

    /// Every transition of a device, in order.
    pub async fn migration_transitions(&self, device: Eui64) -> Result<Vec<MigrationTransition>> {
        let rows: Vec<TransTuple> = on_pool!(self, |p| sqlx::query_as(
            "SELECT id, eui, from_state, to_state, attempt, at, comms_hub_eui, csp_region, \
             gbcs_counter, detail FROM migration_transitions WHERE eui = $1 ORDER BY id"
        )
        .bind(device.to_compact())
        .fetch_all(p)
        .await?);
        rows.into_iter().map(trans_from).collect()
    }

    /// Transitions with an id above `after_id`, in order, at most `limit` (the whole log,
    /// paged).
    pub async fn migration_transitions_since(
        &self,
        after_id: u64,
        limit: u32,
    ) -> Result<Vec<MigrationTransition>> {
        let rows: Vec<TransTuple> = on_pool!(self, |p| sqlx::query_as(
            "SELECT id, eui, from_state, to_state, attempt, at, comms_hub_eui, csp_region, \
             gbcs_counter, detail FROM migration_transitions WHERE id > $1 ORDER BY id LIMIT $2"
        )
        .bind(after_id.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?);
        rows.into_iter().map(trans_from).collect()
    }

    /// Commands sent (transitions to `sent`) at or after `since`, by hub and region.
    pub async fn migration_sent_since(&self, since: Timestamp) -> Result<SentCounts> {
        let rows: Vec<(Option<String>, Option<String>, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT comms_hub_eui, csp_region, COUNT(*) FROM migration_transitions \
             WHERE to_state = $1 AND at >= $2 GROUP BY comms_hub_eui, csp_region"
        )
        .bind(MigrationState::Sent.as_str())
        .bind(ts_to_micros(since))
        .fetch_all(p)
        .await?);
        let mut out = SentCounts::default();
        for (hub, region, n) in rows {
            let n = n.max(0) as u64;
            out.total += n;
            if let Some(h) = hub {
                *out.by_hub.entry(h).or_default() += n;
            }
            if let Some(r) = region {
                *out.by_region.entry(r).or_default() += n;
            }
        }
        Ok(out)
    }

    /// Commands sent (transitions to `sent`) on the UTC day that starts at or before
    /// `day` (any instant of the day), in total, by region, and for the comms hubs `hubs`
    /// only: read from the counters maintained with the transitions, so the cost is that
    /// of the hubs asked for, not of the day's commands.
    pub async fn migration_sent_on(&self, day: Timestamp, hubs: &[Eui64]) -> Result<SentCounts> {
        let us = ts_to_micros(day);
        let day = us - us.rem_euclid(DAY_US);
        let rows: Vec<(String, String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT scope, key, n FROM migration_sent_counts \
             WHERE day = $1 AND scope IN ('all', 'region')"
        )
        .bind(day)
        .fetch_all(p)
        .await?);
        let mut out = SentCounts::default();
        for (scope, key, n) in rows {
            let n = n.max(0) as u64;
            if scope == "all" {
                out.total += n;
            } else {
                out.by_region.insert(key, n);
            }
        }
        let mut keys: Vec<String> = hubs.iter().map(|h| h.to_compact()).collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(500) {
            let width = in_width(chunk.len(), 500);
            let list = (2..width + 2)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = positional(
                self.dollar(),
                format!(
                    "SELECT key, n FROM migration_sent_counts \
                     WHERE day = $1 AND scope = 'hub' AND key IN ({list})"
                ),
            );
            let rows: Vec<(String, i64)> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(day);
                for k in padded(chunk, width) {
                    q = q.bind(k);
                }
                q.fetch_all(p).await?
            });
            for (k, n) in rows {
                out.by_hub.insert(k, n.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// Devices by state, by region and state, and the reasons of the non-progressing ones,
    /// from the counters maintained with the transitions (a few rows, whatever the
    /// population).
    pub async fn migration_counts(&self) -> Result<MigrationCounts> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT state, csp_region, n FROM migration_state_counts WHERE n > 0"
        )
        .fetch_all(p)
        .await?);
        let mut out = MigrationCounts::default();
        for (st, region, n) in rows {
            let n = n.max(0) as u64;
            *out.by_state.entry(st.clone()).or_default() += n;
            *out.by_region
                .entry(region)
                .or_default()
                .entry(st)
                .or_default() += n;
        }
        let reasons: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT reason, n FROM migration_reason_counts WHERE n > 0"
        )
        .fetch_all(p)
        .await?);
        for (r, n) in reasons {
            out.reasons.insert(r, n.max(0) as u64);
        }
        Ok(out)
    }

    /// [`Store::migration_counts`] computed by grouping the whole `migration_devices`
    /// table (what the maintained counters replace; kept to check them and as the
    /// benchmark's baseline).
    pub async fn migration_counts_by_scan(&self) -> Result<MigrationCounts> {
        let rows: Vec<(String, Option<String>, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT state, csp_region, COUNT(*) FROM migration_devices \
                 GROUP BY state, csp_region",
            )
            .fetch_all(p)
            .await?
        });
        let mut out = MigrationCounts::default();
        for (st, region, n) in rows {
            let n = n.max(0) as u64;
            *out.by_state.entry(st.clone()).or_default() += n;
            *out.by_region
                .entry(region.unwrap_or_else(|| "-".into()))
                .or_default()
                .entry(st)
                .or_default() += n;
        }
        let reasons: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT reason, COUNT(*) FROM migration_devices WHERE reason IS NOT NULL \
             AND state IN ($1, $2, $3, $4, $5) GROUP BY reason"
        )
        .bind(MigrationState::RetryWaiting.as_str())
        .bind(MigrationState::FailedPermanent.as_str())
        .bind(MigrationState::Excluded.as_str())
        .bind(MigrationState::NotEligible.as_str())
        .bind(MigrationState::Paused.as_str())
        .fetch_all(p)
        .await?);
        for (r, n) in reasons {
            out.reasons.insert(r, n.max(0) as u64);
        }
        Ok(out)
    }

    /// A page of inventory devices (ordered by EUI, after `after`) with their migration
    /// records: every device holding the transitional credential, and every device the
    /// migration tracks. `switch_from` is the as-of date after which a registration
    /// counts as a switch coming.
    pub async fn migration_view_page(
        &self,
        after: Option<Eui64>,
        limit: u32,
        switch_from: jiff::civil::Date,
    ) -> Result<Vec<MigrationView>> {
        let after = after.map(|e| e.to_compact()).unwrap_or_default();
        let rows: Vec<ViewTuple> = on_pool!(self, |p| sqlx::query_as(
            "SELECT d.eui, d.device_type, d.status, d.mpxn, d.cos_credential, d.comms_hub_eui, \
             d.csp_region, d.firmware_version, d.last_contact, \
             CAST(CASE WHEN d.mpxn IS NOT NULL AND EXISTS (SELECT 1 FROM registration r \
               WHERE r.mpxn = d.mpxn AND r.effective_from > $1) THEN 1 ELSE 0 END AS BIGINT), \
             m.state FROM devices d LEFT JOIN migration_devices m ON m.eui = d.eui \
             WHERE d.eui > $2 AND (d.cos_credential = $3 OR m.eui IS NOT NULL) \
             ORDER BY d.eui LIMIT $4"
        )
        .bind(switch_from.to_string())
        .bind(&after)
        .bind(CosCredential::Transitional.as_str())
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?);
        // Records for the tracked ones, in one query.
        let tracked: Vec<&str> = rows
            .iter()
            .filter(|r| r.10.is_some())
            .map(|r| r.0.as_str())
            .collect();
        let mut records = std::collections::HashMap::new();
        if let (Some(first), Some(last)) = (tracked.first(), tracked.last()) {
            let sql =
                format!("SELECT {REC_COLS} FROM migration_devices WHERE eui >= $1 AND eui <= $2");
            let recs: Vec<RecTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
                .bind(*first)
                .bind(*last)
                .fetch_all(p)
                .await?);
            for r in recs {
                let r = rec_from(r)?;
                records.insert(r.eui, r);
            }
        }
        rows.into_iter()
            .map(|row| view_from(row, &mut records))
            .collect()
    }

    /// Devices in any of `states`, from the maintained counters.
    pub async fn migration_count_in(&self, states: &[MigrationState]) -> Result<u64> {
        if states.is_empty() {
            return Ok(0);
        }
        let list = (1..=states.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM migration_state_counts \
             WHERE state IN ({list})"
        );
        let n: i64 = on_pool!(self, |p| {
            let mut q = sqlx::query_scalar(AssertSqlSafe(sql));
            for st in states {
                q = q.bind(st.as_str());
            }
            q.fetch_one(p).await?
        });
        Ok(n.max(0) as u64)
    }

    /// The instant of the last recorded transition (a virtual clock resumes from it).
    pub async fn migration_last_transition_at(&self) -> Result<Option<Timestamp>> {
        let at: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT at FROM migration_transitions ORDER BY id DESC LIMIT 1"
        )
        .fetch_optional(p)
        .await?);
        at.map(|v| micros_to_ts("migration_transitions", "at", v))
            .transpose()
    }

    /// Inventory devices on the transitional credential that the migration does not track
    /// yet (a scan of those devices: for the end of a run, not for every step).
    pub async fn migration_untracked_count(&self) -> Result<u64> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM devices d WHERE d.cos_credential = $1 \
             AND NOT EXISTS (SELECT 1 FROM migration_devices m WHERE m.eui = d.eui)"
        )
        .bind(CosCredential::Transitional.as_str())
        .fetch_one(p)
        .await?);
        Ok(n.max(0) as u64)
    }

    /// The discovery cursor: the last EUI the runner classified in this pass (`None` at
    /// the start of a pass) and the number of full passes made.
    pub async fn migration_cursor(&self) -> Result<(Option<Eui64>, u64)> {
        let row: Option<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT eui, pass FROM migration_cursor WHERE name = 'discovery'"
        )
        .fetch_optional(p)
        .await?);
        match row {
            None => Ok((None, 0)),
            Some((e, pass)) if e.is_empty() => Ok((None, pass.max(0) as u64)),
            Some((e, pass)) => Ok((
                Some(eui("migration_cursor", "eui", &e)?),
                pass.max(0) as u64,
            )),
        }
    }

    /// Move the discovery cursor.
    pub async fn migration_set_cursor(&self, after: Option<Eui64>, pass: u64) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO migration_cursor (name, eui, pass) VALUES ('discovery', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET eui = excluded.eui, pass = excluded.pass"
        )
        .bind(after.map(|e| e.to_compact()).unwrap_or_default())
        .bind(pass.min(i64::MAX as u64) as i64)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Discovery: transitional devices after `after` (EUI order) that are untracked or
    /// whose record may change on re-evaluation (not eligible, paused), at most `limit`.
    /// Served by the `devices (cos_credential, eui)` index: the cost is the page's.
    pub async fn migration_discover_page(
        &self,
        after: Option<Eui64>,
        limit: u32,
        switch_from: jiff::civil::Date,
    ) -> Result<Vec<MigrationView>> {
        let sql = format!(
            "SELECT {VIEW_COLS} FROM devices d LEFT JOIN migration_devices m ON m.eui = d.eui \
             WHERE d.cos_credential = $2 AND d.eui > $3 \
             AND (m.state IS NULL OR m.state IN ($4, $5)) ORDER BY d.eui LIMIT $6"
        );
        let rows: Vec<ViewTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(switch_from.to_string())
            .bind(CosCredential::Transitional.as_str())
            .bind(after.map(|e| e.to_compact()).unwrap_or_default())
            .bind(MigrationState::NotEligible.as_str())
            .bind(MigrationState::Paused.as_str())
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        self.views_from(rows).await
    }

    /// Tracked devices in `state`, by EUI after `after`, at most `limit`, as views (served
    /// by the `migration_devices (state, eui)` index).
    pub async fn migration_views_in(
        &self,
        state: MigrationState,
        after: Option<Eui64>,
        limit: u32,
        switch_from: jiff::civil::Date,
    ) -> Result<Vec<MigrationView>> {
        let sql = format!(
            "SELECT {VIEW_COLS} FROM migration_devices m JOIN devices d ON d.eui = m.eui \
             WHERE m.state = $2 AND m.eui > $3 ORDER BY m.eui LIMIT $4"
        );
        let rows: Vec<ViewTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(switch_from.to_string())
            .bind(state.as_str())
            .bind(after.map(|e| e.to_compact()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        self.views_from(rows).await
    }

    /// Transitional devices whose MPxN has a registration starting after `switch_from`,
    /// untracked or not eligible, candidate or paused; at most `limit`, by EUI. Served by
    /// the `registration (effective_from)` index, then `devices (mpxn)`: the cost is that
    /// of the switches coming, not of the inventory ([`SQL_SWITCH_VIEWS`]).
    pub async fn migration_switch_views(
        &self,
        limit: u32,
        switch_from: jiff::civil::Date,
    ) -> Result<Vec<MigrationView>> {
        let sql = sql_switch_views();
        let rows: Vec<ViewTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(switch_from.to_string())
            .bind(CosCredential::Transitional.as_str())
            .bind(MigrationState::NotEligible.as_str())
            .bind(MigrationState::Candidate.as_str())
            .bind(MigrationState::Paused.as_str())
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        self.views_from(rows).await
    }

    /// Views from rows of [`VIEW_COLS`], with the records of the tracked ones (read by key).
    async fn views_from(&self, rows: Vec<ViewTuple>) -> Result<Vec<MigrationView>> {
        let tracked: Vec<&str> = rows
            .iter()
            .filter(|r| r.10.is_some())
            .map(|r| r.0.as_str())
            .collect();
        let mut records = std::collections::HashMap::new();
        for chunk in tracked.chunks(500) {
            let width = in_width(chunk.len(), 500);
            let list = (1..=width)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = positional(
                self.dollar(),
                format!("SELECT {REC_COLS} FROM migration_devices WHERE eui IN ({list})"),
            );
            let recs: Vec<RecTuple> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql));
                for e in padded(chunk, width) {
                    q = q.bind(*e);
                }
                q.fetch_all(p).await?
            });
            for r in recs {
                let r = rec_from(r)?;
                records.insert(r.eui, r);
            }
        }
        rows.into_iter()
            .map(|row| view_from(row, &mut records))
            .collect()
    }

    /// The id of a change-of-supplier request pending for the device (any kind, received,
    /// accepted or dispatched), if any: the migration must not touch the device then.
    pub async fn cos_request_pending_for_device(&self, device: Eui64) -> Result<Option<String>> {
        let id: Option<String> = on_pool!(self, |p| sqlx::query_scalar(
            // States as literals: bound, they would make SQLite re-prepare the
            // statement on every execution (partial indexes, schemas 0008/0009).
            "SELECT request_id FROM requests WHERE device_eui = $1 \
             AND state IN ('received', 'accepted', 'dispatched') ORDER BY created_at LIMIT 1"
        )
        .bind(device.to_compact())
        .fetch_optional(p)
        .await?);
        Ok(id)
    }

    /// [`Store::cos_request_pending_for_device`] for many devices in one query per 500:
    /// the devices with a change of supplier pending, each with its oldest such request.
    pub async fn cos_requests_pending_for_devices(
        &self,
        devices: &[Eui64],
    ) -> Result<std::collections::HashMap<Eui64, String>> {
        let mut best: std::collections::HashMap<Eui64, (i64, String)> =
            std::collections::HashMap::new();
        for chunk in devices.chunks(500) {
            let width = in_width(chunk.len(), 500);
            let list = (1..width + 1)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = positional(
                self.dollar(),
                format!(
                    "SELECT device_eui, request_id, created_at FROM requests \
                     WHERE state IN ('received', 'accepted', 'dispatched') \
                     AND device_eui IN ({list})"
                ),
            );
            let rows: Vec<(String, String, i64)> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(AssertSqlSafe(sql));
                for e in padded(chunk, width) {
                    q = q.bind(e.to_compact());
                }
                q.fetch_all(p).await?
            });
            for (d, id, at) in rows {
                let d = eui("requests", "device_eui", &d)?;
                match best.get(&d) {
                    Some((t, _)) if *t <= at => {}
                    _ => {
                        best.insert(d, (at, id));
                    }
                }
            }
        }
        Ok(best.into_iter().map(|(d, (_, id))| (d, id)).collect())
    }

    /// Keep a device message for the migration until it is processed. Returns its id.
    pub async fn migration_inbox_push(
        &self,
        device: Eui64,
        bytes: &[u8],
        at: Timestamp,
    ) -> Result<u64> {
        let id: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "INSERT INTO migration_inbox (device, bytes, received_at) VALUES ($1, $2, $3) \
             RETURNING id"
        )
        .bind(device.to_compact())
        .bind(bytes)
        .bind(ts_to_micros(at))
        .fetch_one(p)
        .await?);
        Ok(id as u64)
    }

    /// The oldest inbox messages, at most `limit`.
    pub async fn migration_inbox_fetch(&self, limit: u32) -> Result<Vec<InboxMessage>> {
        let rows: Vec<(i64, String, Vec<u8>, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT id, device, bytes, received_at FROM migration_inbox ORDER BY id LIMIT $1"
        )
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?);
        rows.into_iter()
            .map(|(id, d, bytes, at)| {
                Ok(InboxMessage {
                    id: id as u64,
                    device: eui("migration_inbox", "device", &d)?,
                    bytes,
                    received_at: micros_to_ts("migration_inbox", "received_at", at)?,
                })
            })
            .collect()
    }

    /// Drop an inbox message (one that changes no state). Returns false if it was gone.
    pub async fn migration_inbox_delete(&self, id: u64) -> Result<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "DELETE FROM migration_inbox WHERE id = $1"
        )
        .bind(id.min(i64::MAX as u64) as i64)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::positional;
    use crate::store::{in_width, padded};

    #[test]
    fn numbered_placeholders_become_anonymous_on_sqlite_only() {
        let sql = "SELECT a FROM t WHERE d = $1 AND k IN ($2, $3, $10) AND s = '$x'".to_string();
        assert_eq!(
            positional(false, sql.clone()),
            "SELECT a FROM t WHERE d = ? AND k IN (?, ?, ?) AND s = '$x'"
        );
        assert_eq!(positional(true, sql.clone()), sql);
    }

    #[test]
    fn in_lists_come_in_few_widths_padded_with_their_last_key() {
        assert_eq!(in_width(1, 500), 16);
        assert_eq!(in_width(17, 500), 32);
        assert_eq!(in_width(300, 500), 500);
        assert_eq!(in_width(500, 500), 500);
        assert_eq!(in_width(3, 4), 4);
        let widths: std::collections::BTreeSet<usize> =
            (1..=500).map(|n| in_width(n, 500)).collect();
        assert_eq!(widths.len(), 6);
        let keys = [1, 2, 3];
        let p: Vec<i32> = padded(&keys, 6).copied().collect();
        assert_eq!(p, [1, 2, 3, 3, 3, 3]);
        let none: [i32; 0] = [];
        assert_eq!(padded(&none, 4).count(), 0);
    }

    /// A runner step asks for the switches coming on every step: the query starts from
    /// the registrations starting after the date and reaches the devices by MPxN; it
    /// never walks the devices by credential (that walk is the whole inventory when
    /// fewer than `limit` switches are coming).
    #[tokio::test]
    async fn switch_views_start_from_the_switches_not_the_inventory() {
        let plan = crate::sqlite_plan(&positional(false, super::sql_switch_views())).await;
        let has = |s: &str| plan.iter().any(|l| l.contains(s));
        assert!(
            has("SEARCH d USING INDEX devices_mpxn (mpxn=?)"),
            "{plan:#?}"
        );
        assert!(
            has("INDEX registration_effective_from (effective_from>?)"),
            "{plan:#?}"
        );
        assert!(!has("devices_cos_eui"), "{plan:#?}");
        assert!(!plan.iter().any(|l| l.starts_with("SCAN d")), "{plan:#?}");
    }
}
