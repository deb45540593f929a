//! `ecos readiness`: for every MPxN an organisation supplies or is about to
//! supply, and every meter on it, would its 6.23 pass today and on the switch
//! date, and if not why (see `ecos_party::readiness`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ecos_party::readiness::{self, Context};
use ecos_party::{PartyConfig, SmkiRegistry};
use ecos_smki::{Certificate, Eui64, MpidRules, Mpids};
use ecos_store::{Mpxn, Store, StoreLocation};
use jiff::Timestamp;

use crate::cmd::regdata::StoreArgs;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table with the reasons below it.
    Table,
    /// CSV, one line per certificate × MPxN × meter.
    Csv,
    /// The whole report as JSON.
    Json,
}

/// Options of `ecos readiness`.
#[derive(Debug, Clone, Args)]
pub struct ReadinessArgs {
    /// The organisation's EUI-64 (either form).
    #[arg(long)]
    pub org: Eui64,
    /// XML Sign certificate(s) to judge with (PEM or DER); default: the
    /// organisation's XML Sign certificate in the --pki directory.
    #[arg(long = "cert", value_name = "FILE")]
    pub certs: Vec<PathBuf>,
    /// A PKI directory written by `ecos pki init` (trust anchors, and the
    /// default certificate via its index.json).
    #[arg(long, default_value = "./ecos-pki", value_name = "DIR")]
    pub pki: PathBuf,
    /// "Today" (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<Timestamp>,
    /// Output format.
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// A TOML configuration file whose [party] table holds the pipeline's policy
    /// (allowed statuses, switch-date grace, TCoS signing); default: the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The organisation's XML Sign certificate(s) from the PKI index.
fn certs_from_pki(dir: &Path, org: Eui64) -> anyhow::Result<Vec<Certificate>> {
    let index_path = dir.join("index.json");
    let index: ecos_smki::testpki::Index = serde_json::from_slice(
        &std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not an ecos PKI index", index_path.display()))?;
    let certs = index
        .entries
        .iter()
        .filter(|e| e.credential == "xml-sign" && e.eui == Some(org))
        .map(|e| {
            Certificate::load(dir.join(&e.certificate))
                .with_context(|| format!("certificate {}", e.certificate))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no XML Sign certificate for organisation {org}; give one with --cert",
        index_path.display()
    );
    Ok(certs)
}

fn party_config(path: Option<&Path>) -> anyhow::Result<PartyConfig> {
    let Some(path) = path else {
        return Ok(PartyConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: crate::config::Config =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    config
        .party
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: party: {e}", path.display()))?;
    Ok(config.party)
}

/// The MPxNs with a registration period for one of `mpids` that has not
/// ended before `from`: the query the store's API lacks, run read-only on the
/// store's own database (one scan of `registration`: there is no index on
/// `supplier_mpid`).
pub async fn mpxns_supplied(
    location: &StoreLocation,
    mpids: &BTreeSet<String>,
    from: jiff::civil::Date,
) -> anyhow::Result<Vec<Mpxn>> {
    use sqlx::Connection as _;
    if mpids.is_empty() {
        return Ok(Vec::new());
    }
    let list = |first: usize| {
        (0..mpids.len())
            .map(|i| format!("${}", first + i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT DISTINCT mpxn FROM registration WHERE supplier_mpid IN ({}) \
         AND (effective_to IS NULL OR effective_to = '' OR effective_to >= $1) ORDER BY mpxn",
        list(2)
    );
    let rows: Vec<String> = match location {
        StoreLocation::Sqlite(path) => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&opts)
                .await
                .with_context(|| format!("opening {} read-only", path.display()))?;
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(from.to_string());
            for m in mpids {
                q = q.bind(m.clone());
            }
            q.fetch_all(&mut conn)
                .await
                .context("reading registration data")?
        }
        StoreLocation::Postgres { url, schema } => {
            let mut conn = sqlx::postgres::PgConnection::connect(url)
                .await
                .context("connecting to the PostgreSQL database")?;
            if let Some(schema) = schema {
                sqlx::query("SELECT set_config('search_path', $1, false)")
                    .bind(schema)
                    .execute(&mut conn)
                    .await
                    .context("setting the schema")?;
            }
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(from.to_string());
            for m in mpids {
                q = q.bind(m.clone());
            }
            q.fetch_all(&mut conn)
                .await
                .context("reading registration data")?
        }
        _ => anyhow::bail!("unsupported store location"),
    };
    rows.iter()
        .map(|m| {
            Mpxn::parse_unchecked(m)
                .with_context(|| format!("registration data holds an invalid MPxN {m:?}"))
        })
        .collect()
}

/// Build the report.
pub async fn build(
    args: &ReadinessArgs,
    store: &Store,
    location: &StoreLocation,
) -> anyhow::Result<readiness::Report> {
    let certs = if args.certs.is_empty() {
        certs_from_pki(&args.pki, args.org)?
    } else {
        args.certs
            .iter()
            .map(|p| Certificate::load(p).with_context(|| format!("certificate {}", p.display())))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let smki: SmkiRegistry = crate::wiring::load_pki_dir(&args.pki)?.registry;
    let config = party_config(args.config.as_deref())?;
    let rules = MpidRules::default();
    let at = args.at.unwrap_or_else(Timestamp::now);
    // The MPIDs to look for: every certificate's CN and the service-user record.
    let mut mpids = BTreeSet::new();
    for c in &certs {
        if let Ok(m) = Mpids::from_certificate(c, &rules) {
            for f in [ecos_smki::Fuel::Electricity, ecos_smki::Fuel::Gas] {
                if let Some(id) = m.for_fuel(f) {
                    mpids.insert(id.to_string());
                }
            }
        }
    }
    if let Some(u) = store.service_user(args.org).await? {
        mpids.extend(u.mpids.iter().map(|m| m.trim().to_ascii_uppercase()));
    }
    let candidates = mpxns_supplied(location, &mpids, store.as_of_date(at)).await?;
    let ctx = Context {
        store,
        smki: &smki,
        config: &config,
        mpid_rules: &rules,
    };
    Ok(readiness::report(&ctx, args.org, &certs, at, &candidates).await?)
}

/// Run `ecos readiness`.
pub fn run(args: ReadinessArgs) -> anyhow::Result<()> {
    crate::cmd::regdata::runtime()?.block_on(async move {
        let location = match &args.store.database_url {
            Some(url) => StoreLocation::from_url(url)?,
            None => StoreLocation::sqlite_in_dir(&args.store.data_dir),
        };
        let store = args.store.open().await?;
        let report = build(&args, &store, &location).await;
        store.close().await;
        let report = report?;
        match args.format {
            Format::Table => {
                print!("{}", report.to_table());
                let (today, switch, with_switch) = report.summary();
                println!(
                    "{today} of {} pass today; {switch} of {with_switch} pass on their switch date",
                    report.rows.len()
                );
            }
            Format::Csv => print!("{}", report.to_csv()),
            Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecos_party::demo;

    #[tokio::test]
    async fn over_a_pki_dir_and_the_demo_store() {
        let tmp = tempfile::tempdir().unwrap();
        let pki_dir = tmp.path().join("pki");
        let pki = demo::pki(3).unwrap();
        pki.write_to(&pki_dir).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let location = StoreLocation::sqlite_in_dir(&data);
        let store = Store::open(&location, ecos_store::StoreConfig::default())
            .await
            .unwrap();
        demo::load(&store, &pki).await.unwrap();
        let args = ReadinessArgs {
            org: demo::SUPPLIER_B,
            certs: vec![],
            pki: pki_dir.clone(),
            at: Some("2025-12-15T12:00:00Z".parse().unwrap()),
            format: Format::Csv,
            config: None,
            store: StoreArgs {
                data_dir: data.clone(),
                database_url: None,
                mpan_check_digit: ecos_store::CheckDigitPolicy::Warn,
                mprn_check_digit: ecos_store::CheckDigitPolicy::Warn,
            },
        };
        let report = build(&args, &store, &location).await.unwrap();
        let mut mpxns: Vec<&str> = report.rows.iter().map(|r| r.mpxn.as_str()).collect();
        mpxns.sort();
        assert_eq!(
            mpxns,
            [demo::MPAN_1, demo::MPAN_2, demo::MPAN_3, demo::MPRN_1]
        );
        assert!(
            report
                .rows
                .iter()
                .any(|r| r.today.scenario() == Some(readiness::Scenario::DeviceStatusBlocksCos))
        );
        // An organisation with no certificate in the PKI directory.
        let mut bad = args.clone();
        bad.org = "00DB123456789999".parse().unwrap();
        let err = build(&bad, &store, &location).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("no XML Sign certificate"),
            "{err:#}"
        );
        store.close().await;
    }
}
