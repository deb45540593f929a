//! The runner: one [`Migrator::step`] processes received answers, times out silent
//! devices, releases due retries, selects a batch under the throttles and sends it.
//!
//! Resumable by construction: every decision is a compare-and-set transition in the
//! store; a device is moved to `sent` (with its counter) **before** its command leaves,
//! so a crash loses no device and never sends a second command for the same attempt.
//! Devices left `selected` by a crashed run are sent by the next step; devices left
//! `sent` wait for their answer (kept in the store's inbox) or time out.
//!
//! A time-out is not yet a failure: the device may have taken the ECoS certificate and
//! its answer been lost. The device moves to `verifying` and a CS02a read of its {5, DS}
//! cell goes out; an answer showing the ECoS certificate marks it migrated, one showing
//! TCoS (or no answer in time) is a WAN failure for the retry strategy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ecos_party::{DeviceTransport, PartyKeys};
use ecos_smki::{Certificate, Eui64};
use ecos_store::migration::{
    MigrationChange, MigrationOp, MigrationRecord, MigrationView, SentCounts,
};
use ecos_store::{MigrationState as S, NewAuditEntry, Store};
use jiff::{SignedDuration, Timestamp};

use crate::MigrationError;
use crate::command::{
    Answer, CosCell, build, build_read, decode_answer, read_answer, read_cells_answer,
};
use crate::config::MigrationConfig;
use crate::retry::{FailureClass, RetryDecision, decide, read_counts, write_counts};
use crate::select::{Budget, Verdict, form_batch, verdict};

/// Page size of inventory scans.
pub const PAGE: u32 = 5_000;

/// Discovery pages read at most per step.
pub const DISCOVERY_PAGES: usize = 4;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// Answers processed.
    pub answers: u64,
    /// Devices migrated.
    pub migrated: u64,
    /// Failures (answers with an error status, time-outs, transport errors).
    pub failures: u64,
    /// Devices that left the migration (excluded or failed permanently).
    pub left: u64,
    /// Retries released.
    pub retries_due: u64,
    /// Devices paused for a pending change of supplier.
    pub paused: u64,
    /// Devices selected.
    pub selected: u64,
    /// Commands sent.
    pub sent: u64,
    /// CS02a reads sent (for commands unanswered in time).
    pub reads: u64,
}

impl StepReport {
    /// Whether the step changed anything.
    pub fn is_idle(&self) -> bool {
        *self == StepReport::default()
    }
}

/// The migration runner.
pub struct Migrator {
    store: Store,
    keys: PartyKeys,
    path: Vec<Certificate>,
    config: MigrationConfig,
    transport: Arc<dyn DeviceTransport>,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Migrator {
    /// A runner over `store`, signing with `keys.tcos`, installing `keys.ecos.certificate`
    /// with certification path `path`, sending through `transport`.
    pub fn new(
        store: Store,
        keys: PartyKeys,
        path: Vec<Certificate>,
        config: MigrationConfig,
        transport: Arc<dyn DeviceTransport>,
    ) -> Result<Migrator, MigrationError> {
        config.validate()?;
        Ok(Migrator {
            store,
            keys,
            path,
            config,
            transport,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &MigrationConfig {
        &self.config
    }

    async fn audit(
        &self,
        action: &str,
        subject: Eui64,
        detail: &str,
    ) -> Result<(), MigrationError> {
        self.store
            .append_audit(&NewAuditEntry {
                actor: "ecos-migration",
                action,
                subject: &subject.to_string(),
                detail,
            })
            .await?;
        Ok(())
    }

    /// One pass of everything at `now`.
    pub async fn step(&self, now: Timestamp) -> Result<StepReport, MigrationError> {
        let mut rep = StepReport::default();
        self.process_inbox(now, &mut rep).await?;
        self.sweep_timeouts(now, &mut rep).await?;
        self.release_retries(now, &mut rep).await?;
        self.select(now, &mut rep).await?;
        self.send_selected(now, &mut rep).await?;
        Ok(rep)
    }

    /// Exclude a device by operator decision.
    pub async fn exclude(
        &self,
        device: Eui64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, MigrationError> {
        let Some(r) = self.store.migration_record(device).await? else {
            let d = self.store.device(device).await?;
            self.store
                .migration_track(
                    device,
                    S::Excluded,
                    Some(reason),
                    d.as_ref().and_then(|d| d.comms_hub),
                    d.as_ref().and_then(|d| d.csp_region.as_deref()),
                    now,
                    "operator exclusion",
                )
                .await?;
            return Ok(true);
        };
        if r.state.is_terminal() {
            return Ok(false);
        }
        let mut c = r.to(S::Excluded, "operator exclusion");
        c.reason = Some(reason.to_string());
        Ok(self
            .store
            .migration_transition(&r, &c, now)
            .await?
            .is_some())
    }

    /// Commit a batch: notes first (audit entries about messages the batch drops: a crash
    /// before the commit repeats them, never loses them), then every op in one
    /// transaction, then the effects of the ops that took (counts, audits of devices
    /// leaving). Returns the applied records with their effects, for the sends.
    async fn commit(
        &self,
        batch: Batch,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<Vec<(MigrationRecord, Effect)>, MigrationError> {
        for (action, device, detail) in &batch.notes {
            self.audit(action, *device, detail).await?;
        }
        if batch.ops.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.store.migration_apply(&batch.ops, now).await?;
        let mut out = Vec::new();
        for (r, effect) in results.into_iter().zip(batch.effects) {
            let Some(r) = r else { continue };
            match &effect {
                Effect::None => {}
                Effect::Migrated => rep.migrated += 1,
                Effect::Failure(left) => {
                    rep.failures += 1;
                    if let Some(why) = left {
                        rep.left += 1;
                        self.audit("migration.device_left", r.eui, why).await?;
                    }
                }
                Effect::Left(why) => {
                    rep.left += 1;
                    self.audit("migration.device_left", r.eui, why).await?;
                }
                Effect::RetryDue => rep.retries_due += 1,
                Effect::Paused => rep.paused += 1,
                Effect::Selected => rep.selected += 1,
                Effect::Send(_) | Effect::Read(_) => {}
            }
            out.push((r, effect));
        }
        Ok(out)
    }

    /// Process received answers, 500 at a time, each lot in one transaction.
    async fn process_inbox(
        &self,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        // Messages whose transition lost a race stay in the inbox for the next step.
        let mut tried = HashSet::new();
        loop {
            let mut msgs = self.store.migration_inbox_fetch(500).await?;
            msgs.retain(|m| tried.insert(m.id));
            if msgs.is_empty() {
                return Ok(());
            }
            let mut devices: Vec<Eui64> = msgs.iter().map(|m| m.device).collect();
            devices.sort_unstable();
            devices.dedup();
            let inventory = self.store.migration_inventory_of(&devices).await?;
            let mut recs = self.store.migration_records_of(&devices).await?;
            let mut b = Batch::default();
            for m in &msgs {
                rep.answers += 1;
                let ds = inventory.get(&m.device).and_then(|d| d.ds_cert.as_deref());
                self.on_message(m, ds, &mut recs, now, &mut b);
            }
            self.commit(b, now, rep).await?;
        }
    }

    /// Decide what one received message does (into `b`); `recs` holds the records as the
    /// batch leaves them.
    fn on_message(
        &self,
        m: &ecos_store::migration::InboxMessage,
        ds: Option<&[u8]>,
        recs: &mut HashMap<Eui64, MigrationRecord>,
        now: Timestamp,
        b: &mut Batch,
    ) {
        // Decoded once, read as a CS02a answer or as an answer to the 0x0106.
        let msg = match decode_answer(&m.bytes) {
            Ok(msg) => msg,
            Err(e) => return b.drop_message(m, "migration.answer_refused", e.to_string()),
        };
        match read_cells_answer(&self.keys, m.device, &msg, ds) {
            Ok(Some((counter, cell))) => return self.on_read(m, counter, cell, recs, now, b),
            Ok(None) => {}
            Err(e) => return b.drop_message(m, "migration.answer_refused", e.to_string()),
        }
        let (report, answer) = match read_answer(&self.keys, &msg, ds) {
            Ok(x) => x,
            Err(e) => return b.drop_message(m, "migration.answer_refused", e.to_string()),
        };
        let Some(rec) = recs.get(&m.device).cloned() else {
            return b.drop_message(
                m,
                "migration.answer_untracked",
                "no migration record".into(),
            );
        };
        b.contact(m);
        if answer == Answer::Migrated && rec.state != S::Migrated {
            // The device proved it holds the ECoS certificate: whichever attempt this
            // answers, it is migrated.
            let evidence = format!("counter {} success, ECoS SKI", report.command_counter);
            return settle_migrated(&rec, evidence, m.id, now, recs, b);
        }
        let current = rec.state == S::Sent && rec.gbcs_counter == Some(report.command_counter);
        if !current || answer == Answer::Migrated {
            let why = format!(
                "counter {} while {} ({answer:?})",
                report.command_counter, rec.state
            );
            return b.drop_message(m, "migration.answer_stale", why);
        }
        let (class, why) = match &answer {
            Answer::Failed(s) => (
                FailureClass::of_status(ecos_gbcs::StatusCode(*s)),
                format!("status {s}"),
            ),
            Answer::Unexpected(w) => (FailureClass::Other, w.clone()),
            Answer::Migrated => (FailureClass::Other, String::new()),
        };
        self.fail(&rec, class, &why, now, Some(m.id), recs, b);
    }

    /// Plan a failure of the current attempt and the retry decision into `b`.
    #[allow(clippy::too_many_arguments)] // the failure and where it goes
    fn fail(
        &self,
        rec: &MigrationRecord,
        class: FailureClass,
        why: &str,
        now: Timestamp,
        inbox: Option<u64>,
        recs: &mut HashMap<Eui64, MigrationRecord>,
        b: &mut Batch,
    ) {
        let mut counts = read_counts(rec.failure_class.as_deref());
        *counts.entry(class).or_default() += 1;
        let decision = decide(&self.config.retry, class, &counts, rec.attempts, now);
        let (state, reason, next_at) = match &decision {
            RetryDecision::RetryAt(t) => (S::RetryWaiting, format!("{class}: {why}"), Some(*t)),
            RetryDecision::Exclude(r) => (S::Excluded, format!("{r}; last {why}"), None),
            RetryDecision::FailPermanently(r) => {
                (S::FailedPermanent, format!("{r}; last {why}"), None)
            }
        };
        let mut c = rec.to(state, format!("{class}: {why}"));
        c.failure_class = Some(write_counts(&counts));
        c.reason = Some(reason.clone());
        c.next_at = next_at;
        c.consume_inbox = inbox;
        let left = state.is_terminal().then(|| format!("{state}: {reason}"));
        b.moved(rec, c, now, Effect::Failure(left), recs);
    }

    /// Commands unanswered in time are not failures yet: the device may have taken the
    /// ECoS certificate and its answer been lost. Each one moves to `verifying` and a
    /// CS02a read of its {5, DS} cell goes out; a read unanswered in time is then a WAN
    /// failure (retry or leave, by the retry strategy). 500 at a time, each lot in one
    /// transaction (the reads leave after it commits).
    async fn sweep_timeouts(
        &self,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        let until = now
            .checked_sub(SignedDuration::from_secs(
                self.config.response_timeout_s as i64,
            ))
            .unwrap_or(now);
        for state in [S::Verifying, S::Sent] {
            loop {
                let overdue = self.store.migration_overdue(state, until, 500).await?;
                if overdue.is_empty() {
                    break;
                }
                let mut recs = HashMap::new();
                let mut b = Batch::default();
                if state == S::Sent {
                    let range = self
                        .store
                        .reserve_gbcs_counters(ecos_party::state::COS_COUNTER, overdue.len() as u64)
                        .await?;
                    for (r, counter) in overdue.into_iter().zip(range) {
                        self.verify(r, counter, now, &mut recs, &mut b);
                    }
                } else {
                    let why = "no response in time, nor to the CS02a read";
                    for r in overdue {
                        self.fail(&r, FailureClass::Wan, why, now, None, &mut recs, &mut b);
                    }
                }
                let done = self.commit(b, now, rep).await?;
                if done.is_empty() {
                    break;
                }
                self.send_all(done, now, rep).await?;
            }
        }
        Ok(())
    }

    /// Plan the CS02a read of the {5, DS} cell for an unanswered command (`verifying`,
    /// recorded with the read's counter before it leaves).
    fn verify(
        &self,
        r: MigrationRecord,
        counter: u64,
        now: Timestamp,
        recs: &mut HashMap<Eui64, MigrationRecord>,
        b: &mut Batch,
    ) {
        let bytes = match build_read(&self.keys, r.eui, counter) {
            Ok(bytes) => bytes,
            Err(e) => {
                let why = format!("no response in time; no CS02a read: {e}");
                return self.fail(&r, FailureClass::Wan, &why, now, None, recs, b);
            }
        };
        let mut c = r.to(
            S::Verifying,
            format!(
                "no response to counter {}; CS02a read, counter {counter}",
                r.gbcs_counter.unwrap_or(0)
            ),
        );
        c.gbcs_counter = Some(counter);
        c.sent_at = Some(now);
        b.moved(&r, c, now, Effect::Read(bytes), recs);
    }

    /// Hand the commands and reads of committed records to the transport; a transport
    /// error is a WAN failure of that attempt (committed as one more batch).
    async fn send_all(
        &self,
        done: Vec<(MigrationRecord, Effect)>,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        let mut recs = HashMap::new();
        let mut b = Batch::default();
        for (r, effect) in done {
            let (bytes, what) = match effect {
                Effect::Send(bytes) => (bytes, "transport"),
                Effect::Read(bytes) => (bytes, "no response in time; CS02a read not sent"),
                _ => continue,
            };
            let read = what != "transport";
            match self.transport.send(r.eui, bytes).await {
                Ok(()) if read => rep.reads += 1,
                Ok(()) => rep.sent += 1,
                Err(e) => {
                    let why = format!("{what}: {e}");
                    self.fail(&r, FailureClass::Wan, &why, now, None, &mut recs, &mut b);
                }
            }
        }
        self.commit(b, now, rep).await?;
        Ok(())
    }

    /// A device's answer to a CS02a read.
    fn on_read(
        &self,
        m: &ecos_store::migration::InboxMessage,
        counter: u64,
        cell: CosCell,
        recs: &mut HashMap<Eui64, MigrationRecord>,
        now: Timestamp,
        b: &mut Batch,
    ) {
        let Some(rec) = recs.get(&m.device).cloned() else {
            return b.drop_message(
                m,
                "migration.answer_untracked",
                "no migration record".into(),
            );
        };
        b.contact(m);
        if cell == CosCell::Ecos && rec.state != S::Migrated {
            // The device holds the ECoS certificate: its answer to the 0x0106 was lost.
            let evidence =
                format!("CS02a read (counter {counter}): {{5, DS}} holds the ECoS certificate");
            return settle_migrated(&rec, evidence, m.id, now, recs, b);
        }
        if cell == CosCell::Ecos || rec.state != S::Verifying || rec.gbcs_counter != Some(counter) {
            let why = format!("CS02a counter {counter} while {} ({cell:?})", rec.state);
            return b.drop_message(m, "migration.answer_stale", why);
        }
        match cell {
            CosCell::Tcos => {
                let why =
                    "no response in time; CS02a read: {5, DS} still holds the TCoS certificate";
                self.fail(&rec, FailureClass::Wan, why, now, Some(m.id), recs, b);
            }
            CosCell::Other(what) => {
                let reason = format!("CoS anchor neither TCoS nor ECoS: {what}");
                let mut c = rec.to(S::Excluded, "CS02a read");
                c.reason = Some(reason.clone());
                c.next_at = None;
                c.consume_inbox = Some(m.id);
                b.moved(&rec, c, now, Effect::Left(reason), recs);
            }
            CosCell::Ecos => {}
        }
    }

    async fn release_retries(
        &self,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        loop {
            let due = self.store.migration_due(S::RetryWaiting, now, 500).await?;
            if due.is_empty() {
                return Ok(());
            }
            let mut recs = HashMap::new();
            let mut b = Batch::default();
            for r in due {
                let mut c = r.to(S::Candidate, "retry due");
                c.next_at = None;
                b.moved(&r, c, now, Effect::RetryDue, &mut recs);
            }
            if self.commit(b, now, rep).await?.is_empty() {
                return Ok(());
            }
        }
    }

    /// Plan moving a device seen as `v` to `to` (tracking it first if untracked); the
    /// record it will have, or `None` when it is already there.
    fn track_or_move(
        v: &MigrationView,
        to: S,
        reason: Option<String>,
        now: Timestamp,
        detail: &str,
        effect: Effect,
        b: &mut Batch,
    ) -> MigrationRecord {
        match &v.record {
            None => {
                let r = MigrationRecord::first(
                    v.eui,
                    to,
                    reason,
                    v.comms_hub,
                    v.csp_region.clone(),
                    now,
                );
                b.ops
                    .push(MigrationOp::Track(r.clone(), detail.to_string()));
                b.effects.push(effect);
                r
            }
            Some(r) if r.state == to && r.reason == reason => r.clone(),
            Some(r) => {
                let mut c = r.to(to, detail);
                c.reason = reason;
                let next = r.after(&c, now);
                b.ops.push(MigrationOp::Move {
                    current: r.clone(),
                    change: c,
                });
                b.effects.push(effect);
                next
            }
        }
    }

    /// Select a batch. The cost is that of the batch, not of the population: candidates
    /// come from indexed queries (switches coming, paused devices, the tracked candidate
    /// pool) and from a persistent discovery cursor over the transitional devices, which
    /// advances only while the throttles leave room and by a bounded number of pages per
    /// step, wrapping around to re-evaluate devices that were not eligible. Today's
    /// commands are read from the maintained per-day counters, per hub only for the hubs
    /// of the candidates. Every record written by the selection commits in one
    /// transaction.
    async fn select(&self, now: Timestamp, rep: &mut StepReport) -> Result<(), MigrationError> {
        let in_flight = self
            .store
            .migration_count_in(&[S::Selected, S::Sent, S::Verifying])
            .await?;
        // Devices selected but not yet sent (left by a crashed run) will be sent in this
        // step: they count against today's throttles too.
        let mut left = SentCounts::default();
        let mut after = None;
        loop {
            let page = self
                .store
                .migration_records_in(S::Selected, after, 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.eui);
            for r in &page {
                left.total += 1;
                if let Some(h) = r.comms_hub {
                    *left.by_hub.entry(h.to_compact()).or_default() += 1;
                }
                let region = r.csp_region.clone().unwrap_or_else(|| "-".into());
                *left.by_region.entry(region).or_default() += 1;
            }
        }
        let mut today = self.store.migration_sent_on(now, &[]).await?;
        today.total += left.total;
        for (r, n) in &left.by_region {
            *today.by_region.entry(r.clone()).or_default() += n;
        }
        let mut hubs_known: HashSet<String> = HashSet::new();
        let budget = Budget::new(&self.config.throttle, &today, in_flight);
        if budget.is_exhausted() {
            return Ok(());
        }
        let prio = self.config.prioritise_switch_coming;
        let cap = (self.config.throttle.batch_size as usize)
            .saturating_mul(4)
            .max(16);
        let cap32 = u32::try_from(cap).unwrap_or(u32::MAX);
        let switch_from = self.store.as_of_date(now);
        let mut pool: Vec<MigrationView> = Vec::new();
        if prio {
            pool.extend(
                self.store
                    .migration_switch_views(cap32, switch_from)
                    .await?,
            );
        }
        for state in [S::Paused, S::Candidate] {
            pool.extend(
                self.store
                    .migration_views_in(state, None, cap32, switch_from)
                    .await?,
            );
        }
        let mut b = Batch::default();
        let mut seen = HashSet::new();
        let mut cands: Vec<MigrationView> = Vec::new();
        for v in pool {
            if seen.insert(v.eui) {
                self.classify(v, now, &mut cands, &mut b);
            }
        }
        self.learn_hubs(&cands, &left, &mut hubs_known, &mut today, now)
            .await?;
        let mut budget = Budget::new(&self.config.throttle, &today, in_flight);
        // Discover untracked devices while the throttles would take more than the
        // candidates at hand.
        let (mut cursor, mut pass) = self.store.migration_cursor().await?;
        let page_size = cap32.clamp(256, PAGE);
        for _ in 0..DISCOVERY_PAGES {
            let mut trial = budget.clone();
            form_batch(cands.iter().collect(), &mut trial, prio);
            if trial.is_exhausted() {
                break;
            }
            let page = self
                .store
                .migration_discover_page(cursor, page_size, switch_from)
                .await?;
            let full = page.len() as u32 == page_size;
            cursor = page.last().map(|v| v.eui);
            for v in page {
                if seen.insert(v.eui) {
                    self.classify(v, now, &mut cands, &mut b);
                }
            }
            self.learn_hubs(&cands, &left, &mut hubs_known, &mut today, now)
                .await?;
            budget = Budget::new(&self.config.throttle, &today, in_flight);
            if !full {
                // End of the inventory: the next step starts a new pass.
                pass += 1;
                self.store.migration_set_cursor(None, pass).await?;
                break;
            }
            self.store.migration_set_cursor(cursor, pass).await?;
        }
        let batch_id = now.as_millisecond().max(0) as u64;
        let batch: Vec<MigrationView> = form_batch(cands.iter().collect(), &mut budget, prio)
            .into_iter()
            .cloned()
            .collect();
        let chosen: HashSet<Eui64> = batch.iter().map(|v| v.eui).collect();
        for v in &cands {
            if chosen.contains(&v.eui) {
                continue;
            }
            // Not in this batch: tracked as a candidate (the pool the next steps read).
            if v.record.as_ref().is_none_or(|r| r.state != S::Candidate) {
                Self::track_or_move(v, S::Candidate, None, now, "eligible", Effect::None, &mut b);
            }
        }
        let euis: Vec<Eui64> = batch.iter().map(|v| v.eui).collect();
        let pending = self.store.cos_requests_pending_for_devices(&euis).await?;
        for v in &batch {
            if let Some(id) = pending.get(&v.eui) {
                let why = Some(format!("cos-pending {id}"));
                if v.record
                    .as_ref()
                    .is_none_or(|r| r.state != S::Paused || r.reason != why)
                {
                    Self::track_or_move(v, S::Paused, why, now, "pause", Effect::Paused, &mut b);
                }
                continue;
            }
            let r =
                Self::track_or_move(v, S::Candidate, None, now, "eligible", Effect::None, &mut b);
            let mut c = r.to(S::Selected, format!("batch {batch_id}"));
            c.batch = Some(batch_id);
            c.reason = None;
            b.ops.push(MigrationOp::Move {
                current: r,
                change: c,
            });
            b.effects.push(Effect::Selected);
        }
        self.commit(b, now, rep).await?;
        Ok(())
    }

    /// Add to `today` the commands sent today to the hubs of `cands` not asked about yet
    /// (with those of the devices left selected).
    async fn learn_hubs(
        &self,
        cands: &[MigrationView],
        left: &SentCounts,
        known: &mut HashSet<String>,
        today: &mut SentCounts,
        now: Timestamp,
    ) -> Result<(), MigrationError> {
        let mut new: Vec<Eui64> = Vec::new();
        for h in cands.iter().filter_map(|v| v.comms_hub) {
            let k = h.to_compact();
            if known.insert(k) {
                new.push(h);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let sent = self.store.migration_sent_on(now, &new).await?;
        for h in &new {
            let k = h.to_compact();
            let n = sent.by_hub.get(&k).copied().unwrap_or(0)
                + left.by_hub.get(&k).copied().unwrap_or(0);
            if n > 0 {
                today.by_hub.insert(k, n);
            }
        }
        Ok(())
    }

    /// Apply the rules to one device: plan it as not eligible, or add it to `cands`.
    fn classify(
        &self,
        v: MigrationView,
        now: Timestamp,
        cands: &mut Vec<MigrationView>,
        b: &mut Batch,
    ) {
        match verdict(&self.config.eligibility, &v, now) {
            Verdict::Skip => {}
            Verdict::NotEligible(why) => {
                let why = Some(why);
                if v.record
                    .as_ref()
                    .is_none_or(|r| r.state != S::NotEligible || r.reason != why)
                {
                    Self::track_or_move(&v, S::NotEligible, why, now, "rules", Effect::None, b);
                }
            }
            Verdict::Candidate => cands.push(v),
        }
    }

    /// Send the selected devices' commands, 500 at a time: each lot is recorded `sent`
    /// (with its counters) in one transaction **before** any of its commands leaves.
    async fn send_selected(
        &self,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        let mut after = None;
        loop {
            let recs = self
                .store
                .migration_records_in(S::Selected, after, 500)
                .await?;
            let Some(last) = recs.last() else {
                return Ok(());
            };
            after = Some(last.eui);
            let range = self
                .store
                .reserve_gbcs_counters(ecos_party::state::COS_COUNTER, recs.len() as u64)
                .await?;
            let euis: Vec<Eui64> = recs.iter().map(|r| r.eui).collect();
            // Never while a change of supplier is pending for the device.
            let pending = self.store.cos_requests_pending_for_devices(&euis).await?;
            let inventory = self.store.migration_inventory_of(&euis).await?;
            let mut b = Batch::default();
            let mut records = HashMap::new();
            for (r, counter) in recs.into_iter().zip(range) {
                if let Some(id) = pending.get(&r.eui) {
                    let mut c = r.to(S::Paused, "pause before send");
                    c.reason = Some(format!("cos-pending {id}"));
                    b.moved(&r, c, now, Effect::Paused, &mut records);
                    continue;
                }
                let ka = inventory.get(&r.eui).and_then(|d| d.ka_cert.as_deref());
                match build(
                    &self.keys,
                    &self.path,
                    r.eui,
                    ka,
                    counter,
                    self.config.apply_time_based_cpv_checks,
                    self.config.set_floor,
                ) {
                    Ok(bytes) => {
                        let mut c = r.to(S::Sent, format!("counter {counter}"));
                        c.attempts = r.attempts + 1;
                        c.gbcs_counter = Some(counter);
                        c.sent_at = Some(now);
                        // Durable before it leaves: a crash after the commit is a
                        // time-out, never a second command for the same attempt.
                        b.moved(&r, c, now, Effect::Send(bytes), &mut records);
                    }
                    Err(e) => {
                        let mut c = r.to(S::Excluded, "command could not be built");
                        c.reason = Some(format!("command: {e}"));
                        b.moved(&r, c, now, Effect::Left(e.to_string()), &mut records);
                    }
                }
            }
            let done = self.commit(b, now, rep).await?;
            self.send_all(done, now, rep).await?;
        }
    }
}

/// The device proved it holds the ECoS certificate (a 0x0106 success or a CS02a read of
/// its CoS cell), whichever attempt the answer belongs to: it is migrated, and the inbox
/// message `inbox_id` is consumed with the transition.
fn settle_migrated(
    rec: &MigrationRecord,
    evidence: String,
    inbox_id: u64,
    now: Timestamp,
    recs: &mut HashMap<Eui64, MigrationRecord>,
    b: &mut Batch,
) {
    let mut c = rec.to(S::Migrated, evidence);
    c.reason = None;
    c.next_at = None;
    c.consume_inbox = Some(inbox_id);
    b.moved(rec, c, now, Effect::Migrated, recs);
}

/// What an op of a batch means once it took.
#[derive(Debug)]
enum Effect {
    None,
    Migrated,
    /// A failure; `Some(why)` when the device left the migration with it.
    Failure(Option<String>),
    /// The device left the migration (excluded) for this reason.
    Left(String),
    RetryDue,
    Paused,
    Selected,
    /// Recorded `sent`: this 0x0106 goes out after the commit.
    Send(Vec<u8>),
    /// Recorded `verifying`: this CS02a read goes out after the commit.
    Read(Vec<u8>),
}

/// Ops for one transaction, an effect per op, and audit notes written before it.
#[derive(Default)]
struct Batch {
    ops: Vec<MigrationOp>,
    effects: Vec<Effect>,
    notes: Vec<(&'static str, Eui64, String)>,
}

impl Batch {
    /// Move `rec` by `change`; `recs` keeps the record as the batch leaves it (for a later
    /// message about the same device in the same batch).
    fn moved(
        &mut self,
        rec: &MigrationRecord,
        change: MigrationChange,
        now: Timestamp,
        effect: Effect,
        recs: &mut HashMap<Eui64, MigrationRecord>,
    ) {
        recs.insert(rec.eui, rec.after(&change, now));
        self.ops.push(MigrationOp::Move {
            current: rec.clone(),
            change,
        });
        self.effects.push(effect);
    }

    /// Drop a message that changes no state, noting why in the audit log.
    fn drop_message(
        &mut self,
        m: &ecos_store::migration::InboxMessage,
        action: &'static str,
        why: String,
    ) {
        self.notes.push((action, m.device, why));
        self.ops.push(MigrationOp::DropInbox(m.id));
        self.effects.push(Effect::None);
    }

    /// A verified answer: a successful contact with the device.
    fn contact(&mut self, m: &ecos_store::migration::InboxMessage) {
        self.ops.push(MigrationOp::Contact {
            device: m.device,
            at: m.received_at,
        });
        self.effects.push(Effect::None);
    }
}
