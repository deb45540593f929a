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

use std::sync::Arc;

use ecos_party::{DeviceTransport, PartyKeys};
use ecos_smki::{Certificate, Eui64};
use ecos_store::migration::{MigrationRecord, MigrationView};
use ecos_store::{MigrationState as S, NewAuditEntry, Store};
use jiff::{SignedDuration, Timestamp};

use crate::MigrationError;
use crate::command::{Answer, CosCell, build, build_read, read_answer, read_cells_answer};
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

fn day_start(now: Timestamp) -> Timestamp {
    let s = now.as_second();
    Timestamp::from_second(s - s.rem_euclid(86_400)).unwrap_or(now)
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

    async fn process_inbox(
        &self,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        loop {
            let msgs = self.store.migration_inbox_fetch(500).await?;
            if msgs.is_empty() {
                return Ok(());
            }
            for m in msgs {
                rep.answers += 1;
                let ds = self.store.device(m.device).await?.and_then(|d| d.ds_cert);
                match read_cells_answer(&self.keys, m.device, &m.bytes, ds.as_deref()) {
                    Ok(Some((counter, cell))) => {
                        self.on_read(&m, counter, cell, now, rep).await?;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.audit("migration.answer_refused", m.device, &e.to_string())
                            .await?;
                        self.store.migration_inbox_delete(m.id).await?;
                        continue;
                    }
                }
                let read = read_answer(&self.keys, &m.bytes, ds);
                let rec = self.store.migration_record(m.device).await?;
                let (report, answer, rec) = match (read, rec) {
                    (Ok((report, answer)), Some(rec)) => (report, answer, rec),
                    (Err(e), _) => {
                        self.audit("migration.answer_refused", m.device, &e.to_string())
                            .await?;
                        self.store.migration_inbox_delete(m.id).await?;
                        continue;
                    }
                    (Ok(_), None) => {
                        self.audit(
                            "migration.answer_untracked",
                            m.device,
                            "no migration record",
                        )
                        .await?;
                        self.store.migration_inbox_delete(m.id).await?;
                        continue;
                    }
                };
                let _ = self
                    .store
                    .record_device_contact(m.device, m.received_at)
                    .await;
                if answer == Answer::Migrated && rec.state != S::Migrated {
                    // The device proved it holds the ECoS certificate: whichever attempt
                    // this answers, it is migrated.
                    let evidence = format!("counter {} success, ECoS SKI", report.command_counter);
                    self.settle_migrated(&rec, evidence, m.id, now, rep).await?;
                    continue;
                }
                let current =
                    rec.state == S::Sent && rec.gbcs_counter == Some(report.command_counter);
                if !current || answer == Answer::Migrated {
                    self.audit(
                        "migration.answer_stale",
                        m.device,
                        &format!(
                            "counter {} while {} ({answer:?})",
                            report.command_counter, rec.state
                        ),
                    )
                    .await?;
                    self.store.migration_inbox_delete(m.id).await?;
                    continue;
                }
                let (class, why) = match &answer {
                    Answer::Failed(s) => (
                        FailureClass::of_status(ecos_gbcs::StatusCode(*s)),
                        format!("status {s}"),
                    ),
                    Answer::Unexpected(w) => (FailureClass::Other, w.clone()),
                    Answer::Migrated => (FailureClass::Other, String::new()),
                };
                if self.fail(&rec, class, &why, now, Some(m.id), rep).await? {
                    rep.failures += 1;
                }
            }
        }
    }

    /// Record a failure of the current attempt and decide the retry. Returns whether the
    /// transition happened.
    /// The device proved it holds the ECoS certificate (a 0x0106 success or a CS02a read of
    /// its CoS cell), whichever attempt the answer belongs to: it is migrated, and the inbox
    /// message `inbox_id` is consumed with the transition.
    async fn settle_migrated(
        &self,
        rec: &MigrationRecord,
        evidence: String,
        inbox_id: u64,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        let mut c = rec.to(S::Migrated, evidence);
        c.reason = None;
        c.next_at = None;
        c.consume_inbox = Some(inbox_id);
        if self
            .store
            .migration_transition(rec, &c, now)
            .await?
            .is_some()
        {
            rep.migrated += 1;
        }
        Ok(())
    }

    async fn fail(
        &self,
        rec: &MigrationRecord,
        class: FailureClass,
        why: &str,
        now: Timestamp,
        inbox: Option<u64>,
        rep: &mut StepReport,
    ) -> Result<bool, MigrationError> {
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
        let done = self
            .store
            .migration_transition(rec, &c, now)
            .await?
            .is_some();
        if done && state.is_terminal() {
            rep.left += 1;
            self.audit(
                "migration.device_left",
                rec.eui,
                &format!("{state}: {reason}"),
            )
            .await?;
        }
        Ok(done)
    }

    /// Commands unanswered in time are not failures yet: the device may have taken the
    /// ECoS certificate and its answer been lost. Each one moves to `verifying` and a
    /// CS02a read of its {5, DS} cell goes out; a read unanswered in time is then a WAN
    /// failure (retry or leave, by the retry strategy).
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
                let mut progressed = false;
                for r in overdue {
                    let moved = if state == S::Sent {
                        self.verify(r, now, rep).await?
                    } else {
                        let why = "no response in time, nor to the CS02a read";
                        let f = self
                            .fail(&r, FailureClass::Wan, why, now, None, rep)
                            .await?;
                        if f {
                            rep.failures += 1;
                        }
                        f
                    };
                    progressed |= moved;
                }
                if !progressed {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Send the CS02a read of the {5, DS} cell for an unanswered command (`verifying`,
    /// recorded with the read's counter before it leaves).
    async fn verify(
        &self,
        r: MigrationRecord,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<bool, MigrationError> {
        let counter = self
            .store
            .reserve_gbcs_counters(ecos_party::state::COS_COUNTER, 1)
            .await?
            .start;
        let bytes = match build_read(&self.keys, r.eui, counter) {
            Ok(b) => b,
            Err(e) => {
                let why = format!("no response in time; no CS02a read: {e}");
                let f = self
                    .fail(&r, FailureClass::Wan, &why, now, None, rep)
                    .await?;
                if f {
                    rep.failures += 1;
                }
                return Ok(f);
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
        let Some(v) = self.store.migration_transition(&r, &c, now).await? else {
            return Ok(false);
        };
        match self.transport.send(r.eui, bytes).await {
            Ok(()) => rep.reads += 1,
            Err(e) => {
                let why = format!("no response in time; CS02a read not sent: {e}");
                if self
                    .fail(&v, FailureClass::Wan, &why, now, None, rep)
                    .await?
                {
                    rep.failures += 1;
                }
            }
        }
        Ok(true)
    }

    /// A device's answer to a CS02a read.
    async fn on_read(
        &self,
        m: &ecos_store::migration::InboxMessage,
        counter: u64,
        cell: CosCell,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        let Some(rec) = self.store.migration_record(m.device).await? else {
            self.audit(
                "migration.answer_untracked",
                m.device,
                "no migration record",
            )
            .await?;
            self.store.migration_inbox_delete(m.id).await?;
            return Ok(());
        };
        let _ = self
            .store
            .record_device_contact(m.device, m.received_at)
            .await;
        if cell == CosCell::Ecos && rec.state != S::Migrated {
            // The device holds the ECoS certificate: its answer to the 0x0106 was lost.
            let evidence =
                format!("CS02a read (counter {counter}): {{5, DS}} holds the ECoS certificate");
            return self.settle_migrated(&rec, evidence, m.id, now, rep).await;
        }
        if cell == CosCell::Ecos || rec.state != S::Verifying || rec.gbcs_counter != Some(counter) {
            self.audit(
                "migration.answer_stale",
                m.device,
                &format!("CS02a counter {counter} while {} ({cell:?})", rec.state),
            )
            .await?;
            self.store.migration_inbox_delete(m.id).await?;
            return Ok(());
        }
        match cell {
            CosCell::Tcos => {
                let why =
                    "no response in time; CS02a read: {5, DS} still holds the TCoS certificate";
                if self
                    .fail(&rec, FailureClass::Wan, why, now, Some(m.id), rep)
                    .await?
                {
                    rep.failures += 1;
                }
            }
            CosCell::Other(what) => {
                let reason = format!("CoS anchor neither TCoS nor ECoS: {what}");
                let mut c = rec.to(S::Excluded, "CS02a read");
                c.reason = Some(reason.clone());
                c.next_at = None;
                c.consume_inbox = Some(m.id);
                if self
                    .store
                    .migration_transition(&rec, &c, now)
                    .await?
                    .is_some()
                {
                    rep.left += 1;
                    self.audit("migration.device_left", rec.eui, &reason)
                        .await?;
                }
            }
            CosCell::Ecos => {}
        }
        Ok(())
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
            let mut progressed = false;
            for r in due {
                let mut c = r.to(S::Candidate, "retry due");
                c.next_at = None;
                if self
                    .store
                    .migration_transition(&r, &c, now)
                    .await?
                    .is_some()
                {
                    rep.retries_due += 1;
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    async fn track_or_move(
        &self,
        v: &MigrationView,
        to: S,
        reason: Option<String>,
        now: Timestamp,
        detail: &str,
    ) -> Result<Option<MigrationRecord>, MigrationError> {
        match &v.record {
            None => {
                self.store
                    .migration_track(
                        v.eui,
                        to,
                        reason.as_deref(),
                        v.comms_hub,
                        v.csp_region.as_deref(),
                        now,
                        detail,
                    )
                    .await?;
                Ok(self.store.migration_record(v.eui).await?)
            }
            Some(r) if r.state == to && r.reason == reason => Ok(Some(r.clone())),
            Some(r) => {
                let mut c = r.to(to, detail);
                c.reason = reason;
                Ok(self.store.migration_transition(r, &c, now).await?)
            }
        }
    }

    /// Select a batch. The cost is that of the batch, not of the population: candidates
    /// come from indexed queries (switches coming, paused devices, the tracked candidate
    /// pool) and from a persistent discovery cursor over the transitional devices, which
    /// advances only while the throttles leave room and by a bounded number of pages per
    /// step, wrapping around to re-evaluate devices that were not eligible.
    async fn select(&self, now: Timestamp, rep: &mut StepReport) -> Result<(), MigrationError> {
        let in_flight = self
            .store
            .migration_count_in(&[S::Selected, S::Sent, S::Verifying])
            .await?;
        let mut sent_today = self.store.migration_sent_since(day_start(now)).await?;
        // Devices selected but not yet sent (left by a crashed run) will be sent in this
        // step: they count against today's throttles too.
        let mut after = None;
        loop {
            let left = self
                .store
                .migration_records_in(S::Selected, after, 500)
                .await?;
            let Some(last) = left.last() else { break };
            after = Some(last.eui);
            for r in &left {
                sent_today.total += 1;
                if let Some(h) = r.comms_hub {
                    *sent_today.by_hub.entry(h.to_compact()).or_default() += 1;
                }
                let region = r.csp_region.clone().unwrap_or_else(|| "-".into());
                *sent_today.by_region.entry(region).or_default() += 1;
            }
        }
        let mut budget = Budget::new(&self.config.throttle, &sent_today, in_flight);
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
        let mut seen = std::collections::HashSet::new();
        let mut cands: Vec<MigrationView> = Vec::new();
        for v in pool {
            if seen.insert(v.eui) {
                self.classify(v, now, &mut cands).await?;
            }
        }
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
                    self.classify(v, now, &mut cands).await?;
                }
            }
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
        let chosen: std::collections::HashSet<Eui64> = batch.iter().map(|v| v.eui).collect();
        for v in &cands {
            if chosen.contains(&v.eui) {
                continue;
            }
            // Not in this batch: tracked as a candidate (the pool the next steps read).
            if v.record.as_ref().is_none_or(|r| r.state != S::Candidate) {
                self.track_or_move(v, S::Candidate, None, now, "eligible")
                    .await?;
            }
        }
        for v in &batch {
            if let Some(id) = self.store.cos_request_pending_for_device(v.eui).await? {
                if self
                    .track_or_move(
                        v,
                        S::Paused,
                        Some(format!("cos-pending {id}")),
                        now,
                        "pause",
                    )
                    .await?
                    .is_some()
                {
                    rep.paused += 1;
                }
                continue;
            }
            let Some(r) = self
                .track_or_move(v, S::Candidate, None, now, "eligible")
                .await?
            else {
                continue;
            };
            let mut c = r.to(S::Selected, format!("batch {batch_id}"));
            c.batch = Some(batch_id);
            c.reason = None;
            if self
                .store
                .migration_transition(&r, &c, now)
                .await?
                .is_some()
            {
                rep.selected += 1;
            }
        }
        Ok(())
    }

    /// Apply the rules to one device: record it as not eligible, or add it to `cands`.
    async fn classify(
        &self,
        v: MigrationView,
        now: Timestamp,
        cands: &mut Vec<MigrationView>,
    ) -> Result<(), MigrationError> {
        match verdict(&self.config.eligibility, &v, now) {
            Verdict::Skip => {}
            Verdict::NotEligible(why) => {
                self.track_or_move(&v, S::NotEligible, Some(why), now, "rules")
                    .await?;
            }
            Verdict::Candidate => cands.push(v),
        }
        Ok(())
    }

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
            for (r, counter) in recs.into_iter().zip(range) {
                self.send_one(r, counter, now, rep).await?;
            }
        }
    }

    async fn send_one(
        &self,
        r: MigrationRecord,
        counter: u64,
        now: Timestamp,
        rep: &mut StepReport,
    ) -> Result<(), MigrationError> {
        // Never while a change of supplier is pending for the device.
        if let Some(id) = self.store.cos_request_pending_for_device(r.eui).await? {
            let mut c = r.to(S::Paused, "pause before send");
            c.reason = Some(format!("cos-pending {id}"));
            if self
                .store
                .migration_transition(&r, &c, now)
                .await?
                .is_some()
            {
                rep.paused += 1;
            }
            return Ok(());
        }
        let dev = self.store.device(r.eui).await?;
        let ka = dev.as_ref().and_then(|d| d.ka_cert.clone());
        let bytes = match build(
            &self.keys,
            &self.path,
            r.eui,
            ka.as_deref(),
            counter,
            self.config.apply_time_based_cpv_checks,
            self.config.set_floor,
        ) {
            Ok(b) => b,
            Err(e) => {
                let mut c = r.to(S::Excluded, "command could not be built");
                c.reason = Some(format!("command: {e}"));
                if self
                    .store
                    .migration_transition(&r, &c, now)
                    .await?
                    .is_some()
                {
                    rep.left += 1;
                    self.audit("migration.device_left", r.eui, &e.to_string())
                        .await?;
                }
                return Ok(());
            }
        };
        let mut c = r.to(S::Sent, format!("counter {counter}"));
        c.attempts = r.attempts + 1;
        c.gbcs_counter = Some(counter);
        c.sent_at = Some(now);
        // Durable before it leaves: a crash after this point is a time-out, never a
        // second command for the same attempt.
        let Some(sent) = self.store.migration_transition(&r, &c, now).await? else {
            return Ok(());
        };
        match self.transport.send(r.eui, bytes).await {
            Ok(()) => rep.sent += 1,
            Err(e) => {
                if self
                    .fail(
                        &sent,
                        FailureClass::Wan,
                        &format!("transport: {e}"),
                        now,
                        None,
                        rep,
                    )
                    .await?
                {
                    rep.failures += 1;
                }
            }
        }
        Ok(())
    }
}
