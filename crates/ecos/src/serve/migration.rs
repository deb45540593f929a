//! The TCoS → ECoS migration in `ecos serve`: admin endpoints (status, plan, start and
//! pause a run) and Prometheus metrics (devices by state, commands in flight, retries).
//!
//! A [`MigrationControl`] is given to the service in [`super::Parts::migration`]. Without
//! one the endpoints answer 404 with a JSON error. A run steps the [`Migrator`] at the
//! wall clock every `interval` until paused; pausing lets the current step finish. Every
//! step is resumable (the store holds all state), so pause, start and restarts lose
//! nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use ecos_migration::{MigrationConfig, Migrator, StepReport};
use ecos_store::{MigrationState, Store};
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::watch;

use super::{AppState, Routes, json_error};

/// Gauge: devices the migration tracks, by `state`.
pub const DEVICES: &str = "ecos_migration_devices";
/// Gauge: migration commands in flight (selected, sent, or a CS02a read after no answer).
pub const IN_FLIGHT: &str = "ecos_migration_commands_in_flight";
/// Counter: retries released (devices back to candidate after a failure's backoff).
pub const RETRIES_TOTAL: &str = "ecos_migration_retries_total";
/// Counter: failures recorded (error answers, time-outs, transport errors).
pub const FAILURES_TOTAL: &str = "ecos_migration_failures_total";
/// Counter: commands sent, by `kind` (`0x0106`, `cs02a`).
pub const COMMANDS_TOTAL: &str = "ecos_migration_commands_total";
/// Gauge: 1 while a run is stepping.
pub const RUNNING: &str = "ecos_migration_running";

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        DEVICES,
        "Devices the TCoS to ECoS migration tracks, by state"
    );
    describe_gauge!(
        IN_FLIGHT,
        "Migration commands in flight (selected, sent, or a CS02a read after no answer)"
    );
    describe_counter!(
        RETRIES_TOTAL,
        "Migration retries released after a failure's backoff"
    );
    describe_counter!(FAILURES_TOTAL, "Migration failures recorded");
    describe_counter!(COMMANDS_TOTAL, "Migration commands sent, by kind");
    describe_gauge!(RUNNING, "1 while a migration run is stepping");
}

/// What the current or last run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct RunStats {
    running: bool,
    steps: u64,
    last_step: Option<StepReport>,
    last_step_at: Option<Timestamp>,
    last_error: Option<String>,
}

/// The migration as the service controls it.
pub struct MigrationControl {
    store: Store,
    config: MigrationConfig,
    runner: Option<Arc<Migrator>>,
    interval: Duration,
    stats: Arc<Mutex<RunStats>>,
    task: Mutex<Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>>,
}

impl std::fmt::Debug for MigrationControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationControl")
            .field("runner", &self.runner.is_some())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl MigrationControl {
    /// Control over the migration state in `store`, with `config` for plans; `runner`
    /// (if any) is stepped every `interval` while a run is started.
    pub fn new(
        store: Store,
        config: MigrationConfig,
        runner: Option<Migrator>,
        interval: Duration,
    ) -> Arc<MigrationControl> {
        let _ = super::metrics::handle();
        describe();
        for kind in ["0x0106", "cs02a"] {
            metrics::counter!(COMMANDS_TOTAL, "kind" => kind).increment(0);
        }
        metrics::counter!(RETRIES_TOTAL).increment(0);
        metrics::counter!(FAILURES_TOTAL).increment(0);
        metrics::gauge!(RUNNING).set(0.0);
        Arc::new(MigrationControl {
            store,
            config,
            runner: runner.map(Arc::new),
            interval,
            stats: Arc::new(Mutex::new(RunStats::default())),
            task: Mutex::new(None),
        })
    }

    fn stats(&self) -> RunStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Start stepping (no effect when running). Errors when there is no runner.
    pub fn start(&self) -> Result<bool, &'static str> {
        let runner = self
            .runner
            .clone()
            .ok_or("no migration runner: the service has no device transport for it")?;
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.as_ref().is_some_and(|(_, h)| !h.is_finished()) {
            return Ok(false);
        }
        let (tx, mut rx) = watch::channel(false);
        let stats = self.stats.clone();
        let interval = self.interval;
        stats.lock().unwrap_or_else(|p| p.into_inner()).running = true;
        metrics::gauge!(RUNNING).set(1.0);
        let handle = tokio::spawn(async move {
            loop {
                if *rx.borrow() {
                    break;
                }
                let now = Timestamp::now();
                let r = runner.step(now).await;
                {
                    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                    s.steps += 1;
                    s.last_step_at = Some(now);
                    match r {
                        Ok(rep) => {
                            metrics::counter!(RETRIES_TOTAL).increment(rep.retries_due);
                            metrics::counter!(FAILURES_TOTAL).increment(rep.failures);
                            metrics::counter!(COMMANDS_TOTAL, "kind" => "0x0106")
                                .increment(rep.sent);
                            metrics::counter!(COMMANDS_TOTAL, "kind" => "cs02a")
                                .increment(rep.reads);
                            s.last_step = Some(rep);
                            s.last_error = None;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "migration step failed");
                            s.last_error = Some(e.to_string());
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = rx.changed() => {}
                }
            }
            stats.lock().unwrap_or_else(|p| p.into_inner()).running = false;
            metrics::gauge!(RUNNING).set(0.0);
        });
        *task = Some((tx, handle));
        Ok(true)
    }

    /// Pause: the current step finishes, no further step starts. Returns whether a run
    /// was going.
    pub async fn pause(&self) -> bool {
        let t = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((tx, handle)) = t else {
            return false;
        };
        let _ = tx.send(true);
        let was = !handle.is_finished();
        let _ = handle.await;
        was
    }

    /// Set the gauges from the store (called on each scrape).
    pub async fn update_metrics(&self) {
        match self.store.migration_counts().await {
            Ok(c) => {
                for s in MigrationState::ALL {
                    metrics::gauge!(DEVICES, "state" => s.as_str()).set(c.state(*s) as f64);
                }
                metrics::gauge!(IN_FLIGHT).set(c.in_flight() as f64);
            }
            Err(e) => tracing::warn!(error = %e, "migration metrics: store unavailable"),
        }
    }
}

/// Register the migration admin routes (under the admin auth layer).
pub(crate) fn routes(r: &mut Routes) {
    r.add("get", "/api/admin/v1/migration", MethodFilter::GET, status);
    r.add(
        "get",
        "/api/admin/v1/migration/plan",
        MethodFilter::GET,
        plan,
    );
    r.add(
        "post",
        "/api/admin/v1/migration/start",
        MethodFilter::POST,
        start,
    );
    r.add(
        "post",
        "/api/admin/v1/migration/pause",
        MethodFilter::POST,
        pause,
    );
}

fn not_configured() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "the migration is not configured in this service (it needs the store: --pki)",
    )
}

/// `GET /api/admin/v1/migration`: devices by state, by region and state, the reasons of
/// those not progressing, and the run.
async fn status(State(st): State<Arc<AppState>>) -> Response {
    let Some(c) = st.migration.as_ref() else {
        return not_configured();
    };
    match c.store.migration_counts().await {
        Ok(counts) => axum::Json(serde_json::json!({
            "by_state": counts.by_state,
            "by_region": counts.by_region,
            "reasons": counts.reasons,
            "in_flight": counts.in_flight(),
            "run": c.stats(),
            "runner_available": c.runner.is_some(),
        }))
        .into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Query of `GET /api/admin/v1/migration/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanQuery {
    failure_rate: Option<f64>,
}

/// `GET /api/admin/v1/migration/plan`: what would be selected now and when the whole
/// population would finish (a full scan of the inventory: seconds per million devices).
async fn plan(
    State(st): State<Arc<AppState>>,
    q: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(c) = st.migration.as_ref() else {
        return not_configured();
    };
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let rate = q.failure_rate.unwrap_or(0.1);
    match ecos_migration::plan::plan(&c.store, &c.config, Timestamp::now(), rate).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e @ ecos_migration::MigrationError::Config(_)) => {
            json_error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /api/admin/v1/migration/start`.
async fn start(State(st): State<Arc<AppState>>) -> Response {
    let Some(c) = st.migration.as_ref() else {
        return not_configured();
    };
    match c.start() {
        Ok(started) => {
            axum::Json(serde_json::json!({ "running": true, "started": started })).into_response()
        }
        Err(why) => json_error(StatusCode::CONFLICT, why),
    }
}

/// `POST /api/admin/v1/migration/pause`.
async fn pause(State(st): State<Arc<AppState>>) -> Response {
    let Some(c) = st.migration.as_ref() else {
        return not_configured();
    };
    let was = c.pause().await;
    axum::Json(serde_json::json!({ "running": false, "was_running": was })).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::{Parts, Server, Settings};
    use super::*;
    use ecos_migration::config::Throttle;
    use ecos_party::api::BoxFuture;
    use ecos_party::{CosKey, DeviceTransport, PartyKeys};
    use ecos_sim::{DeviceContext, DeviceKind, Fleet, KeySource, Templates};
    use ecos_smki::testpki::{TestPki, TestPkiSpec};
    use ecos_smki::{Eui64, PathPolicy};
    use ecos_store::{CosCredential, Device, DeviceStatus, DeviceType, StoreLocation};

    const TOKEN: &str = "migration-admin-token-0123456789";
    const BASE: u64 = 0x00DB_0000_0000_5000;

    /// Simulated devices answering into the store's migration inbox.
    struct Link {
        fleet: Arc<Fleet>,
        store: Store,
    }

    impl DeviceTransport for Link {
        fn send<'a>(&'a self, d: Eui64, m: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                let now = Timestamp::now();
                if let Ok(h) = self.fleet.handle(d, &m, now, None) {
                    self.store
                        .migration_inbox_push(d, &h.response, now)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_plan_start_pause_and_metrics_over_http() {
        let pki = Arc::new(TestPki::generate(&TestPkiSpec::demo()).expect("pki"));
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(
            &StoreLocation::sqlite_in_dir(dir.path()),
            ecos_store::StoreConfig::default(),
        )
        .await
        .expect("store");
        let n = 6u64;
        let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
        let fleet = Arc::new(Fleet::new(ctx, KeySource::TestPki(pki.clone())));
        let t = Templates::from_test_pki(&pki, Eui64::from_u64(0x90B3_D51F_3001_0000))
            .expect("templates");
        fleet.generate(&t, Eui64::from_u64(BASE), n, DeviceKind::Esme, 0);
        for i in 0..n {
            let e = Eui64::from_u64(BASE + i);
            let c = pki.mint_device(e).expect("mint");
            let mut d = Device::new(e, DeviceType::Esme, DeviceStatus::Commissioned);
            d.cos_credential = Some(CosCredential::Transitional);
            d.ka_cert = Some(c.ka.cert.der().to_vec());
            d.ds_cert = Some(c.ds.cert.der().to_vec());
            d.comms_hub = Some(Eui64::from_u64(0x00DC_0000_0000_5000 + i));
            d.csp_region = Some(if i < 3 { "north" } else { "south" }.into());
            d.last_contact = Some(Timestamp::now());
            store.upsert_device(&d).await.expect("device");
        }
        // One device excluded by the operator: a reason to count.
        let keys = PartyKeys {
            tcos: CosKey {
                signer: Arc::new(pki.tcos().signer().expect("key")),
                certificate: pki.tcos().cert.clone(),
            },
            ecos: CosKey {
                signer: Arc::new(pki.ecos().signer().expect("key")),
                certificate: pki.ecos().cert.clone(),
            },
            acb: Arc::new(pki.acb_ka().key_agreement().expect("key")),
            dsp: Arc::new(pki.dsp_xml_sign().signer().expect("key")),
            dsp_certificate: pki.dsp_xml_sign().cert.clone(),
        };
        let config = MigrationConfig {
            throttle: Throttle {
                batch_size: 2,
                ..Throttle::default()
            },
            ..MigrationConfig::default()
        };
        let runner = Migrator::new(
            store.clone(),
            keys,
            vec![pki.issuing_ca().cert.clone()],
            config.clone(),
            Arc::new(Link {
                fleet: fleet.clone(),
                store: store.clone(),
            }),
        )
        .expect("migrator");
        runner
            .exclude(
                Eui64::from_u64(BASE + n - 1),
                "meter exchange booked",
                Timestamp::now(),
            )
            .await
            .expect("exclude");
        let ctl = MigrationControl::new(
            store.clone(),
            config,
            Some(runner),
            Duration::from_millis(20),
        );
        let mut c = crate::config::Config::default();
        c.http.listen = "127.0.0.1:0".parse().expect("address");
        c.admin.token = Some(TOKEN.into());
        c.validate().expect("config");
        let server = Server::bind(
            Settings::from(&c),
            None,
            Parts {
                migration: Some(ctl),
                ..Parts::default()
            },
        )
        .await
        .expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::new();
        let get = |p: &str| http.get(format!("{base}{p}")).bearer_auth(TOKEN).send();
        let json = |r: reqwest::Response| async move {
            let s = r.status().as_u16();
            (s, r.json::<serde_json::Value>().await.expect("json"))
        };

        // Admin only.
        let r = http
            .get(format!("{base}/api/admin/v1/migration"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 401);
        let (s, v) = json(get("/api/admin/v1/migration").await.expect("GET")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["by_state"]["excluded"], 1);
        assert_eq!(v["reasons"]["meter exchange booked"], 1);
        assert_eq!(v["run"]["running"], false);
        assert_eq!(v["runner_available"], true);
        let (s, v) = json(
            get("/api/admin/v1/migration/plan?failure_rate=0.2")
                .await
                .expect("GET"),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["candidates"], n - 1);
        assert_eq!(v["next_batch"].as_array().expect("batch").len(), 2);
        let (s, v) = json(
            get("/api/admin/v1/migration/plan?failure_rate=1.5")
                .await
                .expect("GET"),
        )
        .await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().expect("error").contains("failure rate"));

        // Start; wait for every eligible device to be migrated; pause.
        let post = |p: &str| http.post(format!("{base}{p}")).bearer_auth(TOKEN).send();
        let (s, v) = json(post("/api/admin/v1/migration/start").await.expect("POST")).await;
        assert_eq!((s, &v["started"]), (200, &serde_json::json!(true)), "{v}");
        let (_, v) = json(post("/api/admin/v1/migration/start").await.expect("POST")).await;
        assert_eq!(v["started"], false, "already running");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, v) = json(get("/api/admin/v1/migration").await.expect("GET")).await;
            if v["by_state"]["migrated"] == n - 1 {
                assert_eq!(v["run"]["running"], true);
                assert!(v["run"]["steps"].as_u64().expect("steps") >= 1);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not migrated: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (s, v) = json(post("/api/admin/v1/migration/pause").await.expect("POST")).await;
        assert_eq!(
            (s, &v["was_running"]),
            (200, &serde_json::json!(true)),
            "{v}"
        );
        let (_, v) = json(get("/api/admin/v1/migration").await.expect("GET")).await;
        assert_eq!(v["run"]["running"], false);
        assert_eq!(v["in_flight"], 0);

        // Metrics.
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        let value = |line_start: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(line_start))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
        };
        assert_eq!(
            value("ecos_migration_devices{state=\"migrated\"}"),
            (n - 1) as f64
        );
        assert_eq!(value("ecos_migration_devices{state=\"excluded\"}"), 1.0);
        assert_eq!(value("ecos_migration_commands_in_flight"), 0.0);
        assert!(value("ecos_migration_commands_total{kind=\"0x0106\"}") >= (n - 1) as f64);
        assert!(value("ecos_migration_retries_total") >= 0.0);
        assert_eq!(value("ecos_migration_running"), 0.0);
        let _ = stop.send(());
        task.await.expect("server task").expect("clean stop");
        // The devices really hold the ECoS certificate now.
        let ecos_ski = pki.ecos().cert.ski().expect("ski").to_vec();
        for i in 0..n - 1 {
            let cell = fleet
                .with_device(Eui64::from_u64(BASE + i), |d| {
                    d.cell(ecos_sim::CellId::TransCosDs).map(|a| a.ski.clone())
                })
                .flatten();
            assert_eq!(cell, Some(ecos_ski.clone()));
        }
    }
}
