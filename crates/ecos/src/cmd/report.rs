//! `ecos report failures`: refused 6.23 requests over a time window, grouped
//! by reason and by service user, with examples (see `ecos_store::report`).

use std::fmt::Write as _;

use clap::{Subcommand, ValueEnum};
use ecos_store::{FailureReport, Window};

pub use crate::serve::dashboard::{failures_csv as to_csv, parse_instant};
use jiff::Timestamp;

use super::regdata::{StoreArgs, runtime};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables with examples under each reason.
    Table,
    /// CSV, one line per group (`reason` or `service_user`) with its latest example.
    Csv,
    /// The whole report as JSON.
    Json,
}

/// `ecos report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Refused requests in a time window by reason and by service user, with
    /// examples (RequestID, time, evidence), read from the audit log.
    Failures {
        #[command(flatten)]
        store: StoreArgs,
        /// Start of the window: an RFC 3339 instant, or a duration before now
        /// (`90m`, `24h`, `7d`).
        #[arg(long, default_value = "24h")]
        since: String,
        /// End of the window (exclusive), same forms; default now.
        #[arg(long)]
        until: Option<String>,
        /// Examples kept per group (the latest ones).
        #[arg(long, default_value_t = 3)]
        examples: usize,
        /// Output format.
        #[arg(long, default_value = "table")]
        format: Format,
    },
}

fn short(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The report as aligned tables.
pub fn to_table(r: &FailureReport) -> String {
    let mut out = String::new();
    let decided = r.accepted + r.refused;
    let _ = writeln!(
        out,
        "{} to {} (UTC): {} refused, {} accepted{}",
        short(r.window.since),
        short(r.window.until),
        r.refused,
        r.accepted,
        if decided > 0 {
            format!(
                " ({:.1}% refused)",
                100.0 * r.refused as f64 / decided as f64
            )
        } else {
            String::new()
        }
    );
    if r.refused == 0 {
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:>7} {:>6}  {:<18} {:<9} last",
        "by reason", "refused", "users", "check", "code"
    );
    for g in &r.by_reason {
        let _ = writeln!(
            out,
            "{:<28} {:>7} {:>6}  {:<18} {:<9} {}",
            g.reason,
            g.count,
            g.service_users,
            g.check.as_deref().unwrap_or("-"),
            g.response_code.as_deref().unwrap_or("-"),
            short(g.last)
        );
        for e in &g.examples {
            let _ = writeln!(out, "    {}  {}  {}", short(e.at), e.request_id, e.message);
        }
    }
    let _ = writeln!(
        out,
        "\n{:<25} {:<20} {:>8} {:>7}  reasons",
        "by service user", "name", "accepted", "refused"
    );
    for u in &r.by_service_user {
        let mut reasons: Vec<(&String, &u64)> = u.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let reasons: Vec<String> = reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "{:<25} {:<20} {:>8} {:>7}  {}",
            u.service_user,
            u.name.as_deref().unwrap_or("-"),
            u.accepted,
            u.refused,
            reasons.join(", ")
        );
    }
    out
}

/// Run an `ecos report` subcommand.
pub fn run(cmd: ReportCommand) -> anyhow::Result<()> {
    match cmd {
        ReportCommand::Failures {
            store,
            since,
            until,
            examples,
            format,
        } => {
            let now = Timestamp::now();
            let until = match until {
                Some(u) => parse_instant(&u, now).map_err(|e| anyhow::anyhow!("--until {e}"))?,
                None => now,
            };
            let since = parse_instant(&since, now).map_err(|e| anyhow::anyhow!("--since {e}"))?;
            let window = Window::new(since, until)?;
            runtime()?.block_on(async move {
                let s = store.open().await?;
                let r = s.failure_report(window, examples).await;
                s.close().await;
                let r = r?;
                match format {
                    Format::Table => print!("{}", to_table(&r)),
                    Format::Csv => print!("{}", to_csv(&r)),
                    Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                }
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecos_party::demo::{self, RequestSpec};
    use ecos_store::{StoreConfig, StoreLocation};
    use jiff::SignedDuration;

    #[test]
    fn instants_and_durations() {
        let now: Timestamp = "2026-06-08T00:00:00Z".parse().unwrap();
        let p = |s| parse_instant(s, now);
        assert_eq!(p("7d").unwrap(), "2026-06-01T00:00:00Z".parse().unwrap());
        assert_eq!(p("-90m").unwrap(), "2026-06-07T22:30:00Z".parse().unwrap());
        assert_eq!(p("1h30m").unwrap(), "2026-06-07T22:30:00Z".parse().unwrap());
        assert_eq!(
            p("2026-06-01T10:00:00Z").unwrap(),
            "2026-06-01T10:00:00Z".parse().unwrap()
        );
        assert!(p("yesterday").unwrap_err().contains("neither"));
    }

    /// The demo world's pipeline refuses and accepts real signed requests;
    /// the report over the store says what happened, in every format.
    #[tokio::test]
    async fn report_over_real_pipeline_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let pki = demo::pki(1).unwrap();
        let config = ecos_party::PartyConfig::default();
        let store = ecos_store::Store::open(
            &StoreLocation::sqlite_in_dir(dir.path()),
            StoreConfig {
                gbcs_counter_floor: config.counter_floor,
                ..StoreConfig::default()
            },
        )
        .await
        .unwrap();
        demo::load(&store, &pki).await.unwrap();
        let party = demo::party(&pki, store.clone(), config).unwrap();
        let t0 = Timestamp::now();
        let base = 1_000_000u64;
        // Accepted, then two MPID refusals (the losing supplier), one wrong MPxN.
        let ok = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, base + 1, demo::MPAN_1);
        let losing =
            |n| RequestSpec::new(demo::SUPPLIER_A, demo::ESME_TCOS, base + n, demo::MPAN_1);
        let wrong = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, base + 4, demo::MPAN_2);
        for spec in [ok, losing(2), losing(3), wrong] {
            let body = spec.signed(&pki).unwrap();
            party.process(&body, Timestamp::now()).await.unwrap();
        }
        // A forged document (not XML): refused before any RequestID is read.
        party.process(b"not xml", Timestamp::now()).await.unwrap();
        let w = Window::new(t0, Timestamp::now() + SignedDuration::from_secs(1)).unwrap();
        let r = store.failure_report(w, 5).await.unwrap();
        assert_eq!((r.accepted, r.refused), (1, 4));
        let top = &r.by_reason[0];
        assert_eq!(top.count, 2);
        assert_eq!(top.service_users, 1);
        assert_eq!(top.check.as_deref(), Some("mpid"));
        assert_eq!(top.examples[1].service_user, demo::SUPPLIER_A.to_string());
        assert!(
            top.examples[1]
                .request_id
                .ends_with(&(base + 3).to_string())
        );
        assert!(!top.examples[1].message.is_empty());
        assert!(top.examples[1].evidence.is_object());
        let unreadable = r
            .by_service_user
            .iter()
            .find(|u| u.service_user == ecos_store::report::UNKNOWN_USER)
            .expect("the forged document counts under an unknown user");
        assert_eq!(unreadable.refused, 1);
        let b = r
            .by_service_user
            .iter()
            .find(|u| u.service_user == demo::SUPPLIER_B.to_string())
            .unwrap();
        assert_eq!((b.accepted, b.refused), (1, 1));
        assert!(b.name.is_some());

        let table = to_table(&r);
        assert!(
            table.contains("4 refused, 1 accepted (80.0% refused)"),
            "{table}"
        );
        assert!(table.contains(&top.reason), "{table}");
        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + r.by_reason.len() + r.by_service_user.len());
        assert!(
            lines[1].starts_with(&format!("reason,{},,2,", top.reason)),
            "{csv}"
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["refused"], 4);
        store.close().await;
    }
}
