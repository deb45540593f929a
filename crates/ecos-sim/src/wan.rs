//! A simulated WAN between the system and a [`Fleet`]: latency, loss,
//! devices offline for a while and devices that refuse a new credential the
//! first time(s). Every random choice is a pure function of the seed and the
//! message (device, CRA, counter), so a run replays exactly, whatever the
//! task interleaving.
//!
//! Time is tokio's: under a paused runtime (`start_paused`) the clock is
//! virtual and sleeps cost nothing; otherwise it is real. [`SimClock`] maps
//! it to a UTC instant for the devices.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use ecos_gbcs::{Frame, StatusCode};
use ecos_smki::Eui64;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::device::Fault;
use crate::error::SimError;
use crate::fleet::{Fleet, FleetError};

/// The device side of the link the system talks to: hand it a command for
/// a device; responses and alerts come back on the receiver returned with
/// the transport (see [`SimWan::start`]).
pub trait DeviceTransport: Send + Sync {
    /// Queue `command` (a MAC-wrapped CS02b) for `device`. Returns at once;
    /// the device's answer, if any, arrives later as an [`Inbound`].
    fn send(&self, device: Eui64, command: Vec<u8>) -> Result<(), SimError>;
}

/// A message from a device: a response or an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The device.
    pub device: Eui64,
    /// The signed message (`DF … 40 r‖s`).
    pub bytes: Vec<u8>,
    /// When it arrived (simulation clock).
    pub at: Timestamp,
}

/// Latency of one direction of one message.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always `ms` milliseconds.
    Fixed {
        /// Milliseconds.
        ms: f64,
    },
    /// Uniform between `min_ms` and `max_ms`.
    Uniform {
        /// Lower bound.
        min_ms: f64,
        /// Upper bound.
        max_ms: f64,
    },
    /// Log-normal with this median and shape σ (WAN latencies are skewed).
    LogNormal {
        /// Median.
        median_ms: f64,
        /// σ of the underlying normal.
        sigma: f64,
    },
}

impl Latency {
    fn sample(&self, u1: f64, u2: f64) -> Duration {
        let ms = match *self {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min_ms, max_ms } => min_ms + (max_ms - min_ms) * u1,
            Latency::LogNormal { median_ms, sigma } => {
                // Box–Muller; u1 in (0, 1].
                let z = (-2.0 * (1.0 - u1).max(f64::MIN_POSITIVE).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * u2).cos();
                median_ms * (sigma * z).exp()
            }
        };
        Duration::from_secs_f64((ms.max(0.0)) / 1000.0)
    }
}

/// WAN behaviour. All shares are probabilities in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WanConfig {
    /// The seed of every random choice.
    pub seed: u64,
    /// Latency of each direction.
    pub latency: Latency,
    /// Share of messages lost (each direction, independently).
    pub loss: f64,
    /// Share of devices that go offline once.
    pub offline_share: f64,
    /// An offline device's window starts uniformly within this many
    /// seconds of the start of the run…
    pub offline_start_within_s: u64,
    /// …and lasts this many seconds. Commands arriving then are lost;
    /// alerts raised then are delivered when it comes back.
    pub offline_duration_s: u64,
    /// Share of devices that refuse a new credential.
    pub refuse_share: f64,
    /// How many times each of them refuses before accepting.
    pub refuse_times: u32,
    /// The statuses they refuse with (one per device, chosen by the seed):
    /// resourcesBusy 30, insufficientMemory 17, badCertificate 5.
    pub refuse_statuses: Vec<u32>,
    /// Replacement modes the refusals apply to (6: the CoS credential).
    pub refuse_modes: Vec<u32>,
    /// Share of responses lost after the device executed the command, for commands whose
    /// message code is in `response_loss_codes` (on top of `loss`): the device changed
    /// but nobody hears of it.
    pub response_loss: f64,
    /// Message codes `response_loss` applies to (0x0106: the CoS credential migration).
    pub response_loss_codes: Vec<u16>,
}

impl Default for WanConfig {
    fn default() -> Self {
        WanConfig {
            seed: 1,
            latency: Latency::LogNormal {
                median_ms: 2000.0,
                sigma: 0.5,
            },
            loss: 0.0,
            offline_share: 0.0,
            offline_start_within_s: 3600,
            offline_duration_s: 3600,
            refuse_share: 0.0,
            refuse_times: 1,
            refuse_statuses: vec![30, 17, 5],
            refuse_modes: vec![6],
            response_loss: 0.0,
            response_loss_codes: vec![0x0106],
        }
    }
}

impl WanConfig {
    /// Check ranges.
    pub fn validate(&self) -> Result<(), SimError> {
        for (name, v) in [
            ("loss", self.loss),
            ("offline_share", self.offline_share),
            ("refuse_share", self.refuse_share),
            ("response_loss", self.response_loss),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SimError::Config(format!("{name} = {v} is not in [0, 1]")));
            }
        }
        if self.refuse_share > 0.0 && self.refuse_statuses.is_empty() {
            return Err(SimError::Config(
                "refuse_share > 0 needs at least one refuse_statuses entry".into(),
            ));
        }
        match self.latency {
            Latency::Fixed { ms } if ms.is_nan() || ms < 0.0 => {
                Err(SimError::Config(format!("latency {ms} ms")))
            }
            Latency::Uniform { min_ms, max_ms }
                if min_ms.is_nan() || max_ms.is_nan() || min_ms < 0.0 || min_ms > max_ms =>
            {
                Err(SimError::Config(format!(
                    "latency range {min_ms}..{max_ms} ms"
                )))
            }
            Latency::LogNormal { median_ms, sigma }
                if median_ms.is_nan() || sigma.is_nan() || median_ms < 0.0 || sigma < 0.0 =>
            {
                Err(SimError::Config(format!(
                    "log-normal median {median_ms} ms, σ {sigma}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// A uniform value in `[0, 1)` from the seed and a key.
    fn unit(&self, tag: &str, eui: Eui64, a: u64) -> f64 {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(tag.as_bytes());
        ctx.update(&self.seed.to_be_bytes());
        ctx.update(eui.as_bytes());
        ctx.update(&a.to_be_bytes());
        let d = ctx.finish();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The latency of a message (key: CRA and counter) in one direction.
    pub fn latency_of(&self, dir: &str, eui: Eui64, key: u64) -> Duration {
        self.latency.sample(
            self.unit(&format!("{dir}/lat1"), eui, key),
            self.unit(&format!("{dir}/lat2"), eui, key),
        )
    }

    /// Whether a message is lost in one direction.
    pub fn is_lost(&self, dir: &str, eui: Eui64, key: u64) -> bool {
        self.loss > 0.0 && self.unit(&format!("{dir}/loss"), eui, key) < self.loss
    }

    /// Whether the response to a command with `code` (key: CRA and counter) is lost
    /// after execution (`response_loss`).
    pub fn is_response_lost(&self, code: u16, eui: Eui64, key: u64) -> bool {
        self.response_loss > 0.0
            && self.response_loss_codes.contains(&code)
            && self.unit("response/loss", eui, key) < self.response_loss
    }

    /// The device's offline window, as offsets from the run's start.
    pub fn offline_window(&self, eui: Eui64) -> Option<(Duration, Duration)> {
        if self.offline_share <= 0.0 || self.unit("offline", eui, 0) >= self.offline_share {
            return None;
        }
        let start = self.unit("offline/start", eui, 0) * self.offline_start_within_s as f64;
        let start = Duration::from_secs_f64(start);
        Some((start, start + Duration::from_secs(self.offline_duration_s)))
    }

    /// The status the device refuses with, if it is a refusing device.
    pub fn refusal_status(&self, eui: Eui64) -> Option<StatusCode> {
        if self.refuse_share <= 0.0 || self.unit("refuse", eui, 0) >= self.refuse_share {
            return None;
        }
        let n = self.refuse_statuses.len();
        let i = ((self.unit("refuse/status", eui, 0) * n as f64) as usize).min(n.checked_sub(1)?);
        Some(StatusCode(self.refuse_statuses[i]))
    }
}

/// Maps tokio time to UTC instants: `base` at the moment the clock started,
/// running `speed` times faster than tokio time (1 = real time; under a
/// paused runtime tokio time is itself virtual).
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    base: Timestamp,
    start: Instant,
    speed: f64,
}

impl SimClock {
    /// A clock reading `base` now, at the speed of tokio time.
    pub fn starting_at(base: Timestamp) -> Self {
        SimClock {
            base,
            start: Instant::now(),
            speed: 1.0,
        }
    }

    /// A clock running `speed` times faster than tokio time (e.g. 1000: a
    /// 2 s WAN latency takes 2 ms). Non-positive or non-finite speeds are 1.
    pub fn accelerated(base: Timestamp, speed: f64) -> Self {
        SimClock {
            base,
            start: Instant::now(),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    /// The current simulated instant.
    pub fn now(&self) -> Timestamp {
        let d = SignedDuration::try_from(self.elapsed()).unwrap_or(SignedDuration::MAX);
        self.base.checked_add(d).unwrap_or(Timestamp::MAX)
    }

    /// The tokio duration of a simulated duration.
    pub fn real(&self, d: Duration) -> Duration {
        d.div_f64(self.speed)
    }

    /// The tokio instant of a simulated instant (now, if it is past).
    pub fn instant_of(&self, t: Timestamp) -> Instant {
        let ahead = t.duration_since(self.now());
        match Duration::try_from(ahead) {
            Ok(d) => Instant::now() + self.real(d),
            Err(_) => Instant::now(),
        }
    }

    /// Simulated time since the clock started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed().mul_f64(self.speed)
    }

    /// Sleep for a simulated duration.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.real(d)).await;
    }
}

/// Counters of what happened on the WAN.
#[derive(Debug, Default)]
pub struct WanStats {
    /// Commands handed to the WAN.
    pub sent: AtomicU64,
    /// Commands lost on the way down.
    pub lost_down: AtomicU64,
    /// Commands that found their device offline.
    pub offline: AtomicU64,
    /// Commands the device refused silently (bad MAC, replay, …).
    pub rejected: AtomicU64,
    /// Commands for devices the fleet does not have, or other errors.
    pub errors: AtomicU64,
    /// Responses and alerts lost on the way up.
    pub lost_up: AtomicU64,
    /// Responses delivered.
    pub responses: AtomicU64,
    /// Alerts delivered.
    pub alerts: AtomicU64,
    /// Executions in which a refusal was injected.
    pub refusals: AtomicU64,
    /// Responses dropped after execution (`response_loss`).
    pub lost_responses: AtomicU64,
}

/// A plain copy of [`WanStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct WanStatsSnapshot {
    /// See [`WanStats::sent`].
    pub sent: u64,
    /// See [`WanStats::lost_down`].
    pub lost_down: u64,
    /// See [`WanStats::offline`].
    pub offline: u64,
    /// See [`WanStats::rejected`].
    pub rejected: u64,
    /// See [`WanStats::errors`].
    pub errors: u64,
    /// See [`WanStats::lost_up`].
    pub lost_up: u64,
    /// See [`WanStats::responses`].
    pub responses: u64,
    /// See [`WanStats::alerts`].
    pub alerts: u64,
    /// See [`WanStats::refusals`].
    pub refusals: u64,
    /// See [`WanStats::lost_responses`].
    pub lost_responses: u64,
}

#[derive(Debug)]
struct Inner {
    fleet: Arc<Fleet>,
    cfg: WanConfig,
    clock: SimClock,
    tx: mpsc::UnboundedSender<Inbound>,
    refused: Mutex<HashMap<Eui64, u32>>,
    stats: WanStats,
    due_changed: Notify,
}

/// The simulated WAN with its fleet. Dropping it stops its scheduler.
#[derive(Debug)]
pub struct SimWan {
    inner: Arc<Inner>,
    scheduler: JoinHandle<()>,
}

impl Drop for SimWan {
    fn drop(&mut self) {
        self.scheduler.abort();
    }
}

/// Key of a message for the random choices: CRA and counter.
fn message_key(bytes: &[u8]) -> u64 {
    match Frame::decode(bytes) {
        Ok(f) => (u64::from(f.header.cra.code()) << 56) ^ f.header.counter,
        Err(_) => u64::MAX,
    }
}

fn mode_of(bytes: &[u8]) -> Option<u32> {
    let f = Frame::decode(bytes).ok()?;
    ecos_gbcs::ReplacementMode::from_message_code(f.header.message_code).map(|m| m.0)
}

impl Inner {
    fn offline_until(&self, eui: Eui64) -> Option<Duration> {
        let (from, to) = self.cfg.offline_window(eui)?;
        let e = self.clock.elapsed();
        (from <= e && e < to).then_some(to)
    }

    fn fault_for(&self, eui: Eui64, mode: u32) -> Option<Fault> {
        if !self.cfg.refuse_modes.contains(&mode) {
            return None;
        }
        let status = self.cfg.refusal_status(eui)?;
        let map = self.refused.lock().ok()?;
        (map.get(&eui).copied().unwrap_or(0) < self.cfg.refuse_times).then_some(Fault(status))
    }

    fn note_refusal(&self, eui: Eui64) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(eui).or_insert(0) += 1;
        }
        self.stats.refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// Send a device message up, after latency; `hold` keeps it until the
    /// device is back online.
    async fn deliver_up(self: Arc<Self>, eui: Eui64, bytes: Vec<u8>, alert: bool) {
        if let Some(until) = self.offline_until(eui) {
            let wait = until.saturating_sub(self.clock.elapsed());
            self.clock.sleep(wait).await;
        }
        let key = message_key(&bytes);
        if self.cfg.is_lost("up", eui, key) {
            self.stats.lost_up.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.clock.sleep(self.cfg.latency_of("up", eui, key)).await;
        let counter = if alert {
            &self.stats.alerts
        } else {
            &self.stats.responses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Inbound {
            device: eui,
            bytes,
            at: self.clock.now(),
        });
    }

    async fn deliver_down(self: Arc<Self>, eui: Eui64, command: Vec<u8>) {
        let key = message_key(&command);
        if self.cfg.is_lost("down", eui, key) {
            self.stats.lost_down.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.clock
            .sleep(self.cfg.latency_of("down", eui, key))
            .await;
        if self.offline_until(eui).is_some() {
            self.stats.offline.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let fault = mode_of(&command).and_then(|m| self.fault_for(eui, m));
        match self.fleet.handle(eui, &command, self.clock.now(), fault) {
            Ok(h) => {
                if fault.is_some() && h.outcome.is_some() {
                    self.note_refusal(eui);
                }
                if h.held {
                    self.due_changed.notify_one();
                }
                let code = Frame::decode(&command).map(|f| f.header.message_code);
                if code.is_ok_and(|c| self.cfg.is_response_lost(c, eui, key)) {
                    self.stats.lost_responses.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.deliver_up(eui, h.response, false).await;
            }
            Err(FleetError::Rejected(..)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Execute held commands as they fall due and send their alerts.
    async fn schedule(self: Arc<Self>) {
        loop {
            match self.fleet.next_due() {
                None => self.due_changed.notified().await,
                Some(t) => {
                    tokio::select! {
                        _ = self.due_changed.notified() => continue,
                        _ = tokio::time::sleep_until(self.clock.instant_of(t)) => {}
                    }
                    let now = self.clock.now();
                    let me = self.clone();
                    let alerts = self.fleet.tick(now, |eui, mode| {
                        let f = me.fault_for(eui, mode);
                        if f.is_some() {
                            me.note_refusal(eui);
                        }
                        f
                    });
                    for (eui, a) in alerts {
                        match a {
                            Ok(bytes) => {
                                tokio::spawn(self.clone().deliver_up(eui, bytes, true));
                            }
                            Err(_) => {
                                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl SimWan {
    /// Start the WAN in the current tokio runtime: the transport, and the
    /// receiver of every response and alert.
    pub fn start(
        fleet: Arc<Fleet>,
        cfg: WanConfig,
        clock: SimClock,
    ) -> Result<(SimWan, mpsc::UnboundedReceiver<Inbound>), SimError> {
        cfg.validate()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            fleet,
            cfg,
            clock,
            tx,
            refused: Mutex::new(HashMap::new()),
            stats: WanStats::default(),
            due_changed: Notify::new(),
        });
        let scheduler = tokio::spawn(inner.clone().schedule());
        Ok((SimWan { inner, scheduler }, rx))
    }

    /// The clock.
    pub fn clock(&self) -> SimClock {
        self.inner.clock
    }

    /// The fleet.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.inner.fleet
    }

    /// What happened so far.
    pub fn stats(&self) -> WanStatsSnapshot {
        let s = &self.inner.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WanStatsSnapshot {
            sent: g(&s.sent),
            lost_down: g(&s.lost_down),
            offline: g(&s.offline),
            rejected: g(&s.rejected),
            errors: g(&s.errors),
            lost_up: g(&s.lost_up),
            responses: g(&s.responses),
            alerts: g(&s.alerts),
            refusals: g(&s.refusals),
            lost_responses: g(&s.lost_responses),
        }
    }
}

impl DeviceTransport for SimWan {
    fn send(&self, device: Eui64, command: Vec<u8>) -> Result<(), SimError> {
        self.inner.stats.sent.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(self.inner.clone().deliver_down(device, command));
        Ok(())
    }
}
