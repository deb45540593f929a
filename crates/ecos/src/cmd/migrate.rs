//! `ecos migrate`: the TCoS → ECoS credential migration (plan, run, status).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use ecos_migration::{MigrationConfig, Migrator};
use jiff::Timestamp;

use super::regdata::{StoreArgs, runtime};

/// `ecos migrate` subcommands.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// What would be selected now, and when the whole population would finish.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Share of attempts assumed to fail and be retried, in [0, 1).
        #[arg(long, default_value_t = 0.1)]
        failure_rate: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the migration over the configured store (--data-dir or --database-url)
    /// with the CoS keys of a PKI directory, sending through a device transport
    /// (--device-endpoint, or --simulate-devices); resumable: a killed or restarted
    /// run continues from the store, losing no device and sending no command twice.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Counts by state, by region, and failure reasons.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Store and configuration arguments.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    store: StoreArgs,
    /// Migration configuration (TOML, the `MigrationConfig` fields); defaults otherwise.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The instant to plan or start at (RFC 3339); now by default.
    #[arg(long)]
    at: Option<Timestamp>,
}

impl Common {
    fn config(&self) -> anyhow::Result<MigrationConfig> {
        match &self.config {
            None => Ok(MigrationConfig::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Ok(MigrationConfig::from_toml(&text)?)
            }
        }
    }
}

/// Run an `ecos migrate` subcommand.
pub fn run(cmd: MigrateCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            MigrateCommand::Plan {
                common,
                failure_rate,
                json,
            } => {
                let cfg = common.config()?;
                let store = common.store.open().await?;
                let now = common.at.unwrap_or_else(Timestamp::now);
                let p = ecos_migration::plan::plan(&store, &cfg, now, failure_rate).await?;
                store.close().await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&p)?);
                    return Ok(());
                }
                println!(
                    "scanned {} devices; {} candidates ({} with a switch coming)",
                    p.scanned, p.candidates, p.candidates_with_switch
                );
                for (why, n) in &p.not_eligible {
                    println!("  not eligible: {n:>8}  {why}");
                }
                for (r, n) in &p.candidates_by_region {
                    println!("  region {r}: {n} candidates");
                }
                println!(
                    "next batch: {} devices {}",
                    p.next_batch.len(),
                    p.next_batch
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                println!(
                    "at failure rate {:.0}%: {} commands, {} days (bound by {}), finishing {}",
                    p.failure_rate * 100.0,
                    p.commands_needed,
                    p.days,
                    p.binding,
                    p.finish
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "never".into())
                );
                Ok(())
            }
            MigrateCommand::Status { store, json } => {
                let s = store.open().await?;
                let c = s.migration_counts().await?;
                s.close().await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&c)?);
                    return Ok(());
                }
                println!("by state:");
                for (st, n) in &c.by_state {
                    println!("  {st:<17} {n}");
                }
                println!("by region:");
                for (r, m) in &c.by_region {
                    let parts: Vec<String> = m.iter().map(|(s, n)| format!("{s} {n}")).collect();
                    println!("  {r:<10} {}", parts.join(", "));
                }
                if !c.reasons.is_empty() {
                    println!("reasons:");
                    for (why, n) in &c.reasons {
                        println!("  {n:>8}  {why}");
                    }
                }
                Ok(())
            }
            MigrateCommand::Run { common, run } => run_migration(common, run).await,
        }
    })
}

/// `ecos migrate run` options beyond the store and the configuration.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The PKI directory (`ecos pki init`, `ecos demo`) holding the TCoS and ECoS
    /// keys and certificates (default: `<data-dir>/pki`).
    #[arg(long, env = "ECOS_PKI_DIR", value_name = "DIR")]
    pki: Option<PathBuf>,
    /// Send through a head end over HTTP: each command is POSTed to
    /// `<URL>/devices/<EUI>` (application/octet-stream); a 200 answer's body is the
    /// device's response (kept in the store's migration inbox), an empty 200, 202
    /// or 204 means sent without an answer yet, anything else is a WAN failure.
    #[arg(long, value_name = "URL", conflicts_with = "simulate_devices")]
    device_endpoint: Option<String>,
    /// Send through simulated meters built from the store's inventory (the keys of
    /// the test PKI in the PKI directory): for demos and rehearsals.
    #[arg(long)]
    simulate_devices: bool,
    /// The demo world: load the demo data set (PKI seed 1, written to `<data-dir>/pki`)
    /// when the store has none of its meters, simulate the meters, and drop the
    /// recent-contact rule when no --config is given (the demo records no contacts).
    #[arg(long, conflicts_with = "device_endpoint")]
    demo: bool,
    /// Step a virtual clock by this many seconds (from --at, or from the last
    /// recorded transition when resuming); without it, steps run on the wall clock.
    #[arg(long, value_name = "SECONDS")]
    step_s: Option<i64>,
    /// Real pause between steps (default: 1000 on the wall clock, 5 on a virtual one).
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u64>,
    /// Stop after this many steps (the run resumes where it stopped).
    #[arg(long, default_value_t = 100_000)]
    max_steps: u64,
}

/// A head end over HTTP (see `--device-endpoint`); the device's answer, when the
/// head end returns it, is kept in the store's migration inbox before `send` returns.
struct HttpDevices {
    client: reqwest::Client,
    base: String,
    store: ecos_store::Store,
}

impl ecos_party::DeviceTransport for HttpDevices {
    fn send<'a>(
        &'a self,
        device: ecos_smki::Eui64,
        message: Vec<u8>,
    ) -> ecos_party::api::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let url = format!("{}/devices/{}", self.base, device.to_compact());
            let r = self
                .client
                .post(&url)
                .header("content-type", "application/octet-stream")
                .body(message)
                .send()
                .await
                .map_err(|e| format!("head end {url}: {e}"))?;
            let status = r.status();
            if !(status == reqwest::StatusCode::OK
                || status == reqwest::StatusCode::ACCEPTED
                || status == reqwest::StatusCode::NO_CONTENT)
            {
                return Err(format!("head end {url} answered {status}"));
            }
            let body = r
                .bytes()
                .await
                .map_err(|e| format!("head end {url}: reading the answer: {e}"))?;
            if status == reqwest::StatusCode::OK && !body.is_empty() {
                self.store
                    .migration_inbox_push(device, &body, Timestamp::now())
                    .await
                    .map_err(|e| format!("keeping the answer of {device}: {e}"))?;
            }
            Ok(())
        })
    }
}

/// Simulated meters for every ESME and GSME of the store's inventory on the
/// transitional or enduring credential (as the inventory says), keyed by the test
/// PKI `pki`; their answers go to the store's migration inbox.
async fn simulated_transport(
    store: &ecos_store::Store,
    pki: &Arc<ecos_smki::TestPki>,
) -> anyhow::Result<Arc<dyn ecos_party::DeviceTransport>> {
    use ecos_sim::{CosCredential as SimCos, DeviceContext, DeviceKind, Fleet, KeySource};
    let mut context = DeviceContext::new(pki.trust_store(), ecos_smki::PathPolicy::default());
    context.response_time = ecos_sim::ResponseTime::Clock;
    let fleet = Fleet::new(Arc::new(context), KeySource::TestPki(pki.clone()));
    let templates = ecos_sim::Templates::from_test_pki(pki, ecos_party::demo::SUPPLIER_A)?;
    let mut after = None;
    let switch_from = store.as_of_date(Timestamp::now());
    loop {
        let page = store
            .migration_view_page(after, ecos_migration::runner::PAGE, switch_from)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.eui);
        for v in page {
            let kind = match v.device_type {
                ecos_store::DeviceType::Esme => DeviceKind::Esme,
                ecos_store::DeviceType::Gsme => DeviceKind::Gsme,
                _ => continue,
            };
            let cos = match v.cos_credential {
                Some(ecos_store::CosCredential::Transitional) => SimCos::Transitional,
                Some(ecos_store::CosCredential::Enduring) => SimCos::Enduring,
                _ => continue,
            };
            fleet.insert(templates.make(v.eui, kind, cos));
        }
    }
    let (link, rx) = crate::wiring::SimLink::new(Arc::new(fleet));
    crate::wiring::spawn_migration_inbox(store.clone(), rx);
    Ok(Arc::new(link))
}

/// The test PKI a PKI directory was generated from (its index records the seed).
fn test_pki_of(dir: &std::path::Path) -> anyhow::Result<Arc<ecos_smki::TestPki>> {
    let index_path = dir.join("index.json");
    let index: ecos_smki::testpki::Index = serde_json::from_slice(
        &std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not an ecos PKI index", index_path.display()))?;
    Ok(Arc::new(ecos_party::demo::pki(index.seed)?))
}

/// Devices whose migration is still moving (not terminal, not waiting on the rules).
const ACTIVE: &[ecos_store::MigrationState] = &[
    ecos_store::MigrationState::Candidate,
    ecos_store::MigrationState::Selected,
    ecos_store::MigrationState::Sent,
    ecos_store::MigrationState::Verifying,
    ecos_store::MigrationState::RetryWaiting,
    ecos_store::MigrationState::Paused,
];

async fn run_migration(common: Common, run: RunArgs) -> anyhow::Result<()> {
    let mut cfg = common.config()?;
    let store = common.store.open().await?;
    let pki_dir = run
        .pki
        .clone()
        .unwrap_or_else(|| common.store.data_dir.join("pki"));
    if run.demo {
        if common.config.is_none() {
            // The demo inventory records no contacts.
            cfg.eligibility.max_days_since_contact = None;
        }
        if store.device(ecos_party::demo::ESME_TCOS).await?.is_none() {
            let pki = ecos_party::demo::pki(1)?;
            if !pki_dir.join("index.json").exists() {
                pki.write_to(&pki_dir)?;
            }
            ecos_party::demo::load(&store, &pki).await?;
        }
    }
    let pki = crate::wiring::load_pki_dir(&pki_dir).with_context(|| {
        format!(
            "the PKI directory {} (--pki) with the TCoS and ECoS keys",
            pki_dir.display()
        )
    })?;
    let issuing = {
        let index_path = pki_dir.join("index.json");
        let index: ecos_smki::testpki::Index =
            serde_json::from_slice(&std::fs::read(&index_path)?)?;
        let e = index
            .entries
            .iter()
            .find(|e| e.credential == "issuing-ca")
            .with_context(|| format!("{}: no issuing-ca credential", index_path.display()))?;
        ecos_smki::Certificate::load(pki_dir.join(&e.certificate))
            .with_context(|| format!("certificate {}", e.certificate))?
    };
    let transport: Arc<dyn ecos_party::DeviceTransport> = match (
        &run.device_endpoint,
        run.simulate_devices || run.demo,
    ) {
        (Some(url), _) => Arc::new(HttpDevices {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: url.trim_end_matches('/').to_string(),
            store: store.clone(),
        }),
        (None, true) => simulated_transport(&store, &test_pki_of(&pki_dir)?).await?,
        (None, false) => anyhow::bail!(
            "no device transport: give --device-endpoint URL (a head end over HTTP) or --simulate-devices"
        ),
    };
    let m = Migrator::new(store.clone(), pki.keys, vec![issuing], cfg, transport)?;
    // The clock: virtual (resumed past the last transition) or the wall clock.
    // The demo world steps five virtual minutes at a time unless told otherwise.
    let step_s = run.step_s.or(run.demo.then_some(300));
    let mut now = match step_s {
        Some(_) => {
            let start = common.at.unwrap_or_else(Timestamp::now);
            match store.migration_last_transition_at().await? {
                Some(last) if last > start => last,
                _ => start,
            }
        }
        None => Timestamp::now(),
    };
    let pause = std::time::Duration::from_millis(run.interval_ms.unwrap_or(match step_s {
        // A few milliseconds for the simulated meters' answers to reach the inbox.
        Some(_) => 5,
        None => 1000,
    }));
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} done ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut finished = false;
    let mut steps = 0u64;
    while steps < run.max_steps {
        m.step(now).await?;
        steps += 1;
        let c = store.migration_counts().await?;
        let total: u64 = c.by_state.values().sum();
        let done: u64 = ["migrated", "excluded", "failed-permanent"]
            .iter()
            .filter_map(|s| c.by_state.get(*s))
            .sum();
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(now.strftime("%Y-%m-%d %H:%M").to_string());
        if store.migration_count_in(ACTIVE).await? == 0
            && store.migration_untracked_count().await? == 0
        {
            finished = true;
            break;
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        now = match step_s {
            Some(s) => now
                .checked_add(jiff::SignedDuration::from_secs(s))
                .context("virtual clock overflow")?,
            None => Timestamp::now(),
        };
    }
    bar.finish_and_clear();
    let c = store.migration_counts().await?;
    println!("{}", serde_json::to_string_pretty(&c)?);
    if finished {
        println!("migration finished after {steps} steps at {now}");
    } else {
        println!("stopped after {steps} steps at {now}; not finished (run again to resume)");
    }
    if run.demo {
        for eui in [ecos_party::demo::ESME_TCOS, ecos_party::demo::GSME_TCOS] {
            let d = store.device(eui).await?;
            println!(
                "{eui}: cos credential {}",
                d.and_then(|d| d.cos_credential)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    store.close().await;
    Ok(())
}
