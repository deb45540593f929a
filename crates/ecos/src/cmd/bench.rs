//! `ecos bench serve`: a bounded load run against the served API on loopback.
//!
//! It generates a world (a test PKI with one supplier per concurrent client,
//! meters registered to each, an inventory with the meters' certificates),
//! serves the 6.23 pipeline over HTTP on 127.0.0.1 with simulated meters
//! behind it, and drives signed 6.23 requests through `POST /api/v1/serviceS`
//! with `--concurrency` clients. A request counts when its I99 came back: the
//! pipeline answers only after the decision is committed (RequestID counter,
//! GBCS counter, request with its command, audit entry), so the rate is of
//! durable acknowledgements. Each client is one supplier sending in RequestID
//! order, as DUIS requires (a counter must exceed every earlier one of its
//! originator).
//!
//! Baselines, measured in the same run against the same server and store:
//! the same handler called in process (what the HTTP shell costs) and
//! `GET /healthz` over the same connections (what the loopback HTTP round
//! trip costs). The 6.23 requests and the in-process baseline alternate in
//! two rounds, so that both see a store of about the same size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use ecos_party::ServiceRequestHandler;
use ecos_party::demo::RequestSpec;
use ecos_smki::testpki::OrgSpec;
use ecos_smki::{Eui64, TestPki, TestPkiSpec};
use ecos_store::{ImportMode, ImportOptions, Mpxn, Store, StoreConfig, StoreLocation};

use crate::config::Config;
use crate::serve::{Parts, Server, Settings, duis};

/// `ecos bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load run of the served 6.23 API on loopback: durable acknowledgements
    /// per second and p50/p99 latency, against same-run baselines.
    Serve(ServeBenchArgs),
}

/// What answers the commands the pipeline sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceSide {
    /// Simulated meters take every command and answer it; the answers are
    /// verified, DSP-signed and queued for the supplier, as in production.
    Simulated,
    /// No device transport: accepted commands are stored, not sent.
    None,
}

/// `ecos bench serve` arguments.
#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// Signed 6.23 requests sent over HTTP (the baselines send as many).
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Clients sending at once; each is one supplier sending in RequestID order.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Meters registered to each supplier (requests go round them).
    #[arg(long, default_value_t = 4)]
    pub meters_per_supplier: usize,
    /// Stop sending after this many seconds in all, whatever is left.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
    /// PostgreSQL URL; a fresh schema is made in it and dropped afterwards.
    /// Default: SQLite in a temporary directory.
    #[arg(long, env = "ECOS_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// What answers the commands.
    #[arg(long, value_enum, default_value_t = DeviceSide::Simulated)]
    pub devices: DeviceSide,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Run an `ecos bench` subcommand.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Serve(a) => super::run_logged("error", serve_bench(a)),
    }
}

/// Figures of one phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    /// What was measured.
    pub name: String,
    /// Requests answered as expected (I99 for 6.23s, 200 for health).
    pub ok: usize,
    /// Requests answered otherwise.
    pub failed: usize,
    /// Wall time of the phase, seconds.
    pub secs: f64,
    /// `ok / secs`.
    pub per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
}

impl Phase {
    fn new(name: &str, mut lat: Vec<Duration>, failed: usize, secs: f64) -> Phase {
        lat.sort_unstable();
        let pct = |p: usize| -> f64 {
            if lat.is_empty() {
                return f64::NAN;
            }
            let i = ((lat.len() * p).div_ceil(100)).clamp(1, lat.len()) - 1;
            lat[i].as_secs_f64() * 1e3
        };
        Phase {
            name: name.into(),
            ok: lat.len(),
            failed,
            secs,
            per_sec: if secs > 0.0 {
                lat.len() as f64 / secs
            } else {
                0.0
            },
            p50_ms: pct(50),
            p99_ms: pct(99),
        }
    }

    /// Two rounds of the same phase as one.
    fn merge(name: &str, parts: Vec<(Vec<Duration>, usize, f64)>) -> Phase {
        let mut lat = Vec::new();
        let (mut failed, mut secs) = (0, 0.0);
        for (l, f, s) in parts {
            lat.extend(l);
            failed += f;
            secs += s;
        }
        Phase::new(name, lat, failed, secs)
    }

    fn line(&self) -> String {
        format!(
            "{:<34} {:>6} ok {:>4} failed  {:>9.1} /s  p50 {:>8.2} ms  p99 {:>8.2} ms",
            self.name, self.ok, self.failed, self.per_sec, self.p50_ms, self.p99_ms
        )
    }
}

/// The generated world: a PKI, its CSV data, and who supplies which meter.
struct World {
    pki: Arc<TestPki>,
    users: String,
    regdata: String,
    inventory: String,
    /// Per supplier: its EUI and its meters with their MPANs.
    suppliers: Vec<(Eui64, Vec<(Eui64, String)>)>,
    /// The supplier whose certificates the meters hold at the start.
    losing: Eui64,
}

fn mpid(k: usize) -> String {
    let l = |i: usize| (b'A' + (i % 26) as u8) as char;
    format!("Q{}{}E", l(k / 26), l(k))
}

fn world(suppliers: usize, meters: usize) -> anyhow::Result<World> {
    if suppliers == 0 || suppliers > 26 * 26 {
        bail!("--concurrency must be 1 to {}", 26 * 26);
    }
    if meters == 0 {
        bail!("--meters-per-supplier must be at least 1");
    }
    let mut spec = TestPkiSpec::demo();
    spec.seed = 23;
    let losing = Eui64::from_u64(0x90B3_D51F_3100_0000);
    spec.suppliers = vec![OrgSpec {
        name: "Losing Supplier".into(),
        eui: losing,
        mpids_cn: Some("LOSE".into()),
    }];
    let sup_eui = |k: usize| Eui64::from_u64(0x90B3_D51F_3200_0000 | ((k as u64) << 16));
    for k in 0..suppliers {
        spec.suppliers.push(OrgSpec {
            name: format!("Bench Supplier {k}"),
            eui: sup_eui(k),
            mpids_cn: Some(mpid(k)),
        });
    }
    let dev_eui = |i: usize| Eui64::from_u64(0x00DB_2000_0000_0000 | i as u64);
    spec.devices = (0..suppliers * meters).map(dev_eui).collect();
    let pki = Arc::new(TestPki::generate(&spec).context("generating the test PKI")?);
    let mut users = String::from("org_eui,name,roles,mpids,response_endpoint\n");
    users.push_str(&format!(
        "{losing},Losing Supplier,IS,LOSE,http://127.0.0.1:9/losing\n"
    ));
    let mut regdata = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
    let mut inventory = String::from(
        "device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,csp_region\n",
    );
    let b64 = |der: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    };
    let mut out = Vec::new();
    for k in 0..suppliers {
        let s = sup_eui(k);
        users.push_str(&format!(
            "{s},Bench Supplier {k},IS,{},http://127.0.0.1:9/s{k}\n",
            mpid(k)
        ));
        let mut mine = Vec::new();
        for m in 0..meters {
            let i = k * meters + m;
            let mpan = Mpxn::mpan_with_check_digit(&format!("13{:010}", 10_000_000 + i))
                .context("MPAN")?
                .as_str()
                .to_string();
            regdata.push_str(&format!("{mpan},LOSE,2020-01-01,2024-12-31\n"));
            regdata.push_str(&format!("{mpan},{},2025-01-01,\n", mpid(k)));
            let d = dev_eui(i);
            let creds = pki.device(d).context("device credentials")?;
            inventory.push_str(&format!(
                "{d},esme,commissioned,{mpan},transitional,{},{},north\n",
                b64(creds.ka.cert.der()),
                b64(creds.ds.cert.der())
            ));
            mine.push((d, mpan));
        }
        out.push((s, mine));
    }
    Ok(World {
        pki,
        users,
        regdata,
        inventory,
        suppliers: out,
        losing,
    })
}

async fn load(store: &Store, w: &World) -> anyhow::Result<()> {
    store
        .import_service_users(
            w.users.as_bytes(),
            &ImportOptions::new("bench-users", ImportMode::Refresh),
            &mut |_| {},
        )
        .await?;
    store
        .import_registration(
            w.regdata.as_bytes(),
            &ImportOptions::new("bench-regdata", ImportMode::Refresh),
            &mut |_| {},
        )
        .await?;
    store
        .import_inventory(
            w.inventory.as_bytes(),
            &ImportOptions::new("bench-inventory", ImportMode::Refresh),
            &mut |_| {},
        )
        .await?;
    Ok(())
}

/// Signed requests for each supplier, RequestID counters `from..from+n`, going round its meters.
fn sign_batch(w: &World, from: u64, per_supplier: usize) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
    w.suppliers
        .iter()
        .map(|(s, meters)| {
            (0..per_supplier)
                .map(|j| {
                    let (d, mpan) = &meters[j % meters.len()];
                    RequestSpec::new(*s, *d, from + j as u64, mpan)
                        .signed(&w.pki)
                        .map_err(|e| anyhow::anyhow!("signing a request: {e}"))
                })
                .collect()
        })
        .collect()
}

type Outcome = (Vec<Duration>, usize, f64);

fn is_ack(body: &[u8]) -> bool {
    duis::response_code(body).as_deref() == Some("I99")
}

/// One client task per batch, each sending its items in order until the
/// deadline; `send` answers whether an item got the expected answer. The
/// latencies of the expected answers, the count of the others, and the
/// phase's wall time.
async fn clients<I, F, Fut>(batches: Vec<Vec<I>>, deadline: Instant, send: F) -> Outcome
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let t0 = Instant::now();
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let send = send.clone();
            tokio::spawn(async move {
                let (mut lat, mut failed) = (Vec::with_capacity(batch.len()), 0usize);
                for item in batch {
                    if Instant::now() > deadline {
                        break;
                    }
                    let t = Instant::now();
                    if send(item).await {
                        lat.push(t.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    collect(tasks, t0).await
}

/// Each supplier's requests over HTTP, one client task per supplier, in order.
async fn over_http(
    client: &reqwest::Client,
    url: &str,
    batches: Vec<Vec<Vec<u8>>>,
    deadline: Instant,
) -> Outcome {
    let (client, url) = (client.clone(), Arc::new(url.to_string()));
    clients(batches, deadline, move |body: Vec<u8>| {
        let (c, url) = (client.clone(), url.clone());
        async move {
            let r = c
                .post(url.as_str())
                .header("content-type", "application/xml")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| is_ack(&b)),
                _ => false,
            }
        }
    })
    .await
}

/// The same requests handed to the handler in process, same concurrency.
async fn in_process(
    handler: Arc<dyn ServiceRequestHandler>,
    batches: Vec<Vec<Vec<u8>>>,
    deadline: Instant,
) -> Outcome {
    clients(batches, deadline, move |body: Vec<u8>| {
        let h = handler.clone();
        async move {
            let a = h.submit(&body, jiff::Timestamp::now()).await;
            a.http_status == 200 && is_ack(&a.body)
        }
    })
    .await
}

/// `GET /healthz`, `n` per client, same concurrency and connections.
async fn healthz(
    client: &reqwest::Client,
    url: &str,
    n_clients: usize,
    n: usize,
    deadline: Instant,
) -> Outcome {
    let (client, url) = (client.clone(), Arc::new(url.to_string()));
    let batches = (0..n_clients).map(|_| vec![(); n]).collect();
    clients(batches, deadline, move |()| {
        let (c, url) = (client.clone(), url.clone());
        async move {
            match c.get(url.as_str()).send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    t0: Instant,
) -> Outcome {
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok((l, f)) => {
                lat.extend(l);
                failed += f;
            }
            Err(_) => failed += 1,
        }
    }
    (lat, failed, t0.elapsed().as_secs_f64())
}

/// Everything a run reports.
#[derive(Debug, serde::Serialize)]
struct Report {
    backend: String,
    build: &'static str,
    devices: String,
    suppliers: usize,
    meters: usize,
    concurrency: usize,
    load_average_before: Option<String>,
    phases: Vec<Phase>,
    http_vs_in_process: f64,
    http_vs_healthz: f64,
    stored_acknowledged: usize,
    /// Accepted requests whose meter answer was committed when the load ended.
    answered_at_end: usize,
    /// Seconds from the end of the load until every accepted request had
    /// its meter answer (`None`: not within [`ANSWER_DRAIN_LIMIT`], or no
    /// simulated meters).
    answer_drain_secs: Option<f64>,
    commit: Option<String>,
}

/// How long the bench waits after the load for the meters' answers.
const ANSWER_DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Requests stored as accepted (any state but rejected), and how many of them
/// have their device's answer committed (completed or failed).
async fn stored_and_answered(store: &Store) -> anyhow::Result<(usize, usize)> {
    use ecos_store::RequestState as S;
    let (mut stored, mut answered) = (0usize, 0usize);
    let mut after = None;
    loop {
        let page = store
            .list_requests(&Default::default(), after.as_ref(), 1000)
            .await?;
        for r in &page.items {
            if r.state != S::Rejected {
                stored += 1;
                answered += usize::from(matches!(r.state, S::Completed | S::Failed));
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok((stored, answered))
}

/// Accepted requests still waiting for their device's answer (accepted or
/// dispatched): what the drain polls, without listing the answered ones.
async fn awaiting_answer(store: &Store) -> anyhow::Result<usize> {
    use ecos_store::RequestState as S;
    let mut n = 0usize;
    for state in [S::Accepted, S::Dispatched] {
        let filter = ecos_store::RequestFilter {
            state: Some(state),
            ..Default::default()
        };
        let mut after = None;
        loop {
            let page = store.list_requests(&filter, after.as_ref(), 1000).await?;
            n += page.items.len();
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
    }
    Ok(n)
}

fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

async fn serve_bench(a: ServeBenchArgs) -> anyhow::Result<()> {
    let c = a.concurrency;
    if a.requests < c {
        bail!("--requests must be at least --concurrency ({c})");
    }
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    println!(
        "ecos bench serve: {} signed 6.23s at concurrency {c}, {} build",
        a.requests,
        if cfg!(debug_assertions) {
            "DEBUG (use --release for figures)"
        } else {
            "release"
        }
    );
    let load_before = load_average();
    // 1. The world and the store.
    let t = Instant::now();
    let w = world(c, a.meters_per_supplier)?;
    let tmp = std::env::temp_dir().join(format!("ecos-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let party_config = ecos_party::PartyConfig::default();
    let store_config = StoreConfig {
        gbcs_counter_floor: party_config.counter_floor,
        max_connections: 8,
        ..StoreConfig::default()
    };
    let (location, schema) = match &a.database_url {
        Some(url) if url.starts_with("postgres") => {
            let schema = format!(
                "ecos_bench_{}_{}",
                std::process::id(),
                jiff::Timestamp::now().as_second()
            );
            (
                StoreLocation::Postgres {
                    url: url.clone(),
                    schema: Some(schema.clone()),
                },
                Some((url.clone(), schema)),
            )
        }
        Some(other) => {
            bail!("--database-url {other:?}: only postgres:// URLs (SQLite is the default)")
        }
        None => (StoreLocation::sqlite_in_dir(&tmp), None),
    };
    let backend = if schema.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let store = Store::open(&location, store_config)
        .await
        .context("opening the store")?;
    load(&store, &w).await.context("loading the world")?;
    println!(
        "world: {c} suppliers x {} meters, {backend}, generated and loaded in {:.1} s",
        a.meters_per_supplier,
        t.elapsed().as_secs_f64()
    );
    let result = measure(&a, &w, &store, backend).await;
    store.close().await;
    if let Some((url, schema)) = schema {
        let pool = sqlx::PgPool::connect(&url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await
        .with_context(|| format!("dropping the bench schema {schema}"))?;
        pool.close().await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let mut report = result?;
    report.load_average_before = load_before;
    if Instant::now() > deadline {
        println!("(stopped by --max-secs: the figures cover what was sent in time)");
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn measure(
    a: &ServeBenchArgs,
    w: &World,
    store: &Store,
    backend: &str,
) -> anyhow::Result<Report> {
    let c = a.concurrency;
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    // 2. The party, the meters, the server.
    let mut party = ecos_party::demo::party(&w.pki, store.clone(), Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut background = Vec::new();
    if a.devices == DeviceSide::Simulated {
        let mut context =
            ecos_sim::DeviceContext::new(w.pki.trust_store(), ecos_smki::PathPolicy::default());
        context.response_time = ecos_sim::ResponseTime::Clock;
        let fleet = ecos_sim::Fleet::new(
            Arc::new(context),
            ecos_sim::KeySource::TestPki(w.pki.clone()),
        );
        let templates = ecos_sim::Templates::from_test_pki(&w.pki, w.losing)?;
        for (_, meters) in &w.suppliers {
            for (d, _) in meters {
                fleet.insert(templates.make(
                    *d,
                    ecos_sim::DeviceKind::Esme,
                    ecos_sim::CosCredential::Transitional,
                ));
            }
        }
        let (link, rx) = crate::wiring::SimLink::new(Arc::new(fleet));
        party = party.with_transport(Arc::new(link));
        let party = Arc::new(party);
        background.push(crate::wiring::spawn_device_receiver(party.clone(), rx));
        return run_phases(a, w, store, backend, party, background, c, deadline).await;
    }
    run_phases(
        a,
        w,
        store,
        backend,
        Arc::new(party),
        background,
        c,
        deadline,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn run_phases(
    a: &ServeBenchArgs,
    w: &World,
    store: &Store,
    backend: &str,
    party: Arc<ecos_party::Party>,
    background: Vec<tokio::task::JoinHandle<()>>,
    c: usize,
    deadline: Instant,
) -> anyhow::Result<Report> {
    let handler: Arc<dyn ServiceRequestHandler> = party;
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse()?;
    config.http.max_in_flight = config.http.max_in_flight.max(c);
    let server = Server::bind(
        Settings::from(&config),
        None,
        Parts {
            handler: Some(handler.clone()),
            store: Some(store.clone()),
            ..Parts::default()
        },
    )
    .await?;
    let base = format!("http://{}", server.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{base}/api/v1/serviceS");

    // 3. Requests, signed before any timing (signing is the supplier's cost):
    //    a warm-up, then two rounds of (in process, over HTTP).
    let per = a.requests / c;
    let half = per.div_ceil(2);
    let t = Instant::now();
    let mut next = 1u64;
    let mut batch = |n: usize| -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let b = sign_batch(w, next, n)?;
        next += n as u64;
        Ok(b)
    };
    let warm = batch(4)?;
    let mut rounds = Vec::new();
    for _ in 0..2 {
        rounds.push((batch(half)?, batch(half)?));
    }
    println!(
        "signed {} requests in {:.1} s (not timed)",
        c * (4 + 4 * half),
        t.elapsed().as_secs_f64()
    );
    let (_, warm_failed, _) = over_http(&client, &url, warm, deadline).await;
    if warm_failed > 0 {
        bail!(
            "{warm_failed} warm-up requests were not acknowledged: the world or the pipeline is broken (ECOS_LOG=info shows why)"
        );
    }
    let (mut http, mut local) = (Vec::new(), Vec::new());
    for (in_proc, over) in rounds {
        local.push(in_process(handler.clone(), in_proc, deadline).await);
        http.push(over_http(&client, &url, over, deadline).await);
    }
    let health = healthz(&client, &format!("{base}/healthz"), c, 2 * half, deadline).await;
    let http = Phase::merge("6.23 over HTTP, durable I99", http);
    let local = Phase::merge("baseline: same handler in process", local);
    let health = Phase::new("baseline: GET /healthz", health.0, health.1, health.2);

    // 4. Every acknowledgement is in the store; with simulated meters, how
    // many had their meter's answer when the load ended, and how long the
    // rest took.
    let (stored, answered_at_end) = stored_and_answered(store).await?;
    let acked = http.ok + local.ok + 4 * c;
    let mut answer_drain_secs = None;
    if a.devices == DeviceSide::Simulated {
        println!(
            "meter answers when the load ended: {answered_at_end} of {stored} accepted requests"
        );
        let t = Instant::now();
        let mut answered = answered_at_end;
        while answered < stored && t.elapsed() < ANSWER_DRAIN_LIMIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
            answered = stored.saturating_sub(awaiting_answer(store).await?);
        }
        if answered < stored {
            println!(
                "meter answers: {answered} of {stored} after {} s (the rest are left to the time-out sweep)",
                ANSWER_DRAIN_LIMIT.as_secs()
            );
        } else {
            let secs = t.elapsed().as_secs_f64();
            answer_drain_secs = Some(secs);
            println!("meter answers: all {stored} in {secs:.2} s after the load ended");
        }
    }
    let _ = stop_tx.send(());
    let _ = serving.await;
    for b in background {
        b.abort();
    }
    let report = Report {
        backend: backend.into(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        devices: format!("{:?}", a.devices).to_lowercase(),
        suppliers: c,
        meters: c * a.meters_per_supplier,
        concurrency: c,
        load_average_before: None,
        http_vs_in_process: http.per_sec / local.per_sec,
        http_vs_healthz: http.per_sec / health.per_sec,
        phases: vec![http.clone(), local.clone(), health.clone()],
        stored_acknowledged: stored,
        answered_at_end,
        answer_drain_secs,
        commit: option_env!("ECOS_COMMIT").map(str::to_string),
    };
    for p in &report.phases {
        println!("{}", p.line());
    }
    println!(
        "ratios: HTTP 6.23 rate = {:.2}x the in-process rate; = {:.3}x the /healthz rate",
        report.http_vs_in_process, report.http_vs_healthz
    );
    println!(
        "durability: {acked} acknowledged (warm-up included), {stored} accepted requests in the store"
    );
    if stored < acked {
        bail!(
            "{} acknowledged requests are not in the store",
            acked - stored
        );
    }
    Ok(report)
}
