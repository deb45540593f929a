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
    /// Run the migration against the demo world (demo PKI, data and simulated
    /// meters loaded into the store), stepping a virtual clock; resumable.
    Run {
        #[command(flatten)]
        common: Common,
        /// Demo PKI seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Virtual seconds per step.
        #[arg(long, default_value_t = 300)]
        step_s: i64,
        /// Stop after this many steps.
        #[arg(long, default_value_t = 100_000)]
        max_steps: u64,
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
            MigrateCommand::Run {
                common,
                seed,
                step_s,
                max_steps,
            } => run_demo(common, seed, step_s, max_steps).await,
        }
    })
}

async fn run_demo(common: Common, seed: u64, step_s: i64, max_steps: u64) -> anyhow::Result<()> {
    let mut cfg = common.config()?;
    if common.config.is_none() {
        // The demo inventory records no contacts.
        cfg.eligibility.max_days_since_contact = None;
    }
    let store = common.store.open().await?;
    let pki = Arc::new(ecos_party::demo::pki(seed)?);
    if store.device(ecos_party::demo::ESME_TCOS).await?.is_none() {
        ecos_party::demo::load(&store, &pki).await?;
    }
    let keys = ecos_party::demo::keys(&pki)?;
    let fleet = crate::wiring::demo_fleet(&pki, ecos_party::demo::SUPPLIER_A)?;
    let (link, mut rx) = crate::wiring::SimLink::new(fleet);
    let inbox = store.clone();
    tokio::spawn(async move {
        while let Some((device, bytes)) = rx.recv().await {
            if let Err(e) = inbox
                .migration_inbox_push(device, &bytes, Timestamp::now())
                .await
            {
                tracing::warn!(%device, "migration inbox: {e}");
            }
        }
    });
    let m = Migrator::new(
        store.clone(),
        keys,
        vec![pki.issuing_ca().cert.clone()],
        cfg,
        Arc::new(link),
    )?;
    let mut now = common.at.unwrap_or_else(Timestamp::now);
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} done ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    for _ in 0..max_steps {
        m.step(now).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let c = store.migration_counts().await?;
        let total: u64 = c.by_state.values().sum();
        let done: u64 = ["migrated", "excluded", "failed-permanent"]
            .iter()
            .filter_map(|s| c.by_state.get(*s))
            .sum();
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(now.strftime("%Y-%m-%d %H:%M").to_string());
        let waiting = total - done - c.by_state.get("not-eligible").copied().unwrap_or(0);
        if total > 0 && waiting == 0 {
            break;
        }
        now = now
            .checked_add(jiff::SignedDuration::from_secs(step_s))
            .context("virtual clock overflow")?;
    }
    bar.finish_and_clear();
    let c = store.migration_counts().await?;
    println!("{}", serde_json::to_string_pretty(&c)?);
    for eui in [ecos_party::demo::ESME_TCOS, ecos_party::demo::GSME_TCOS] {
        let d = store.device(eui).await?;
        println!(
            "{eui}: cos credential {}",
            d.and_then(|d| d.cos_credential)
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    store.close().await;
    Ok(())
}
