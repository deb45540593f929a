//! `ecos regdata`: registration data (MPxN → registered supplier history).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ecos_store::{
    CheckDigitPolicies, CheckDigitPolicy, ImportMode, ImportOptions, ImportProgress, ImportStage,
    ImportSummary, Store, StoreConfig, StoreLocation,
};

/// Where the store is: shared by the `regdata`, `inventory` and `data` commands.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory; the SQLite database is the file `ecos.db` inside.
    #[arg(long, default_value = "./ecos-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL to use instead of SQLite (e.g. postgres://postgres@127.0.0.1:5432/ecos).
    #[arg(long, env = "ECOS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// MPAN check-digit policy.
    #[arg(long, default_value = "warn", value_name = "reject|warn|off")]
    pub mpan_check_digit: CheckDigitPolicy,
    /// MPRN check-digit policy.
    #[arg(long, default_value = "warn", value_name = "reject|warn|off")]
    pub mprn_check_digit: CheckDigitPolicy,
}

impl StoreArgs {
    /// The check-digit policies.
    pub fn policies(&self) -> CheckDigitPolicies {
        CheckDigitPolicies {
            mpan: self.mpan_check_digit,
            mprn: self.mprn_check_digit,
        }
    }

    /// Open (and migrate) the store.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let location = match &self.database_url {
            Some(url) => StoreLocation::from_url(url)?,
            None => StoreLocation::sqlite_in_dir(&self.data_dir),
        };
        let config = StoreConfig {
            check_digits: self.policies(),
            ..StoreConfig::default()
        };
        let what = match &location {
            StoreLocation::Sqlite(p) => p.display().to_string(),
            _ => "the PostgreSQL database".to_string(),
        };
        Store::open(&location, config)
            .await
            .with_context(|| format!("opening {what}"))
    }
}

/// Options of an import command.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The CSV file (format: see the ecos-store crate docs).
    pub file: PathBuf,
    /// refresh: the file replaces what it lists; update: the file is a delta; full-refresh
    /// (registration data, needs --source): the file is the provider's whole population, and
    /// that provider's periods of MPxNs it does not list end the day before --as-of.
    #[arg(
        long,
        default_value = "refresh",
        value_name = "refresh|update|full-refresh"
    )]
    pub mode: ImportMode,
    /// The file's id, kept as provenance (default: the file name). A file id is imported once.
    #[arg(long)]
    pub file_id: Option<String>,
    /// The data provider that sent the file, recorded with it (sequence checking; the
    /// population a full refresh replaces).
    #[arg(long)]
    pub source: Option<String>,
    /// The file's sequence number from its provider: update files must be consecutive.
    #[arg(long)]
    pub sequence: Option<u64>,
    /// Full refresh: the first day the file is the whole population (YYYY-MM-DD; default
    /// today, Europe/London).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<jiff::civil::Date>,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl ImportArgs {
    /// Import options for this file.
    pub fn options(&self) -> ImportOptions {
        let id = self.file_id.clone().unwrap_or_else(|| {
            self.file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.file.display().to_string())
        });
        let mut o = ImportOptions::new(id, self.mode);
        o.source = self.source.clone();
        o.sequence = self.sequence;
        o.as_of = self.as_of;
        o.check_digits = self.store.policies();
        o
    }
}

/// `ecos regdata` subcommands.
#[derive(Debug, Subcommand)]
pub enum RegdataCommand {
    /// Import a registration data file (refresh or update), all or nothing.
    ///
    /// An `ecos serve` running over the same store notices the import and
    /// re-validates its pending future-dated 6.23s: one whose requester is no
    /// longer the registered supplier at its execution date is cancelled on the
    /// device and its requester gets an ECoSAlert.
    Import(ImportArgs),
    /// Show who is the registered supplier of an MPxN at an instant, and its history.
    Lookup {
        /// The MPAN (13 digits) or MPRN (up to 10 digits).
        mpxn: String,
        /// The instant (RFC 3339; default now). Its Europe/London date is the as-of date.
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A progress bar on the terminal (hidden when stderr is not one) fed by import progress.
pub fn progress_bar(file: &Path) -> (indicatif::ProgressBar, impl FnMut(ImportProgress) + Send) {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {percent:>3}% {human_pos}/{human_len} ({per_sec}, {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    bar.set_prefix(name);
    let b = bar.clone();
    let mut stage = None;
    let f = move |p: ImportProgress| {
        if stage != Some(p.stage) {
            stage = Some(p.stage);
            b.reset();
            b.set_length(p.total);
            b.set_message(match p.stage {
                ImportStage::Parsing => "checking",
                _ => "writing",
            });
        }
        b.set_position(p.done);
    };
    (bar, f)
}

/// Print an import summary.
pub fn print_summary(s: &ImportSummary) {
    if s.already_imported {
        println!(
            "{} ({}): already imported with the same content; nothing to do",
            s.file_id,
            s.kind.as_str()
        );
        return;
    }
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        s.rows as f64 / secs
    } else {
        0.0
    };
    let ended = if s.mode == ImportMode::FullRefresh {
        format!(", {} end-dated", s.end_dated)
    } else {
        String::new()
    };
    println!(
        "imported {} ({}, {}): {} rows, {} keys, {} written, {} removed{ended}, {} check-digit warnings in {:.2} s ({:.0} rows/s)",
        s.file_id,
        s.kind.as_str(),
        s.mode.as_str(),
        s.rows,
        s.keys,
        s.written,
        s.removed,
        s.check_digit_warnings,
        secs,
        rate
    );
}

/// A small runtime for the store commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Run an `ecos regdata` subcommand.
pub fn run(cmd: RegdataCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            RegdataCommand::Import(args) => {
                let store = args.store.open().await?;
                let (bar, mut f) = progress_bar(&args.file);
                let r = store
                    .import_registration_file(&args.file, &args.options(), &mut f)
                    .await;
                bar.finish_and_clear();
                store.close().await;
                let summary = r?;
                print_summary(&summary);
                if !summary.already_imported {
                    println!(
                        "an `ecos serve` running over this store re-validates its pending future-dated 6.23s against the new data within {} s",
                        crate::wiring::REVALIDATION_POLL.as_secs()
                    );
                }
                Ok(())
            }
            RegdataCommand::Lookup { mpxn, at, store } => {
                let s = store.open().await?;
                let m = s.parse_mpxn(&mpxn)?;
                let at = at.unwrap_or_else(jiff::Timestamp::now);
                match s.registered_supplier_at(&m, at).await? {
                    Some(r) => println!(
                        "{m} ({}) on {}: {} since {}{}",
                        m.fuel(),
                        s.as_of_date(at),
                        r.mpid,
                        r.effective_from,
                        r.effective_to
                            .map(|t| format!(" until {t}"))
                            .unwrap_or_default()
                    ),
                    None => println!(
                        "{m} ({}) on {}: no registered supplier",
                        m.fuel(),
                        s.as_of_date(at)
                    ),
                }
                for r in s.registration_history(&m).await? {
                    println!(
                        "  {} {} .. {}  ({} line {})",
                        r.mpid,
                        r.effective_from,
                        r.effective_to
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "open".into()),
                        r.source_file,
                        r.source_line
                    );
                }
                s.close().await;
                Ok(())
            }
        }
    })
}
