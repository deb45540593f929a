//! `ecos check REQUEST.xml`: run every check on a request without storing
//! or sending anything, and explain the verdict.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use jiff::Timestamp;

use crate::config::ConfigArgs;
use crate::wiring;

/// `ecos check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The signed DUIS request (`-` for standard input).
    request: PathBuf,
    /// The PKI directory (`ecos pki init`): trust anchors, XML Sign certificates, CoS keys.
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Check as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<Timestamp>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Run `ecos check`.
pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let body = if args.request.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(&args.request)
            .with_context(|| format!("reading {}", args.request.display()))?
    };
    let pki_dir = args.pki.unwrap_or_else(|| config.data_dir.join("pki"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let pki = wiring::load_pki_dir(&pki_dir)?;
        let store = wiring::open_store(&config).await?;
        let party = ecos_party::Party::new(
            config.party.clone(),
            ecos_smki::MpidRules::default(),
            pki.registry,
            store,
            pki.keys,
        );
        let at = args.at.unwrap_or_else(Timestamp::now);
        match party.check(&body, at).await {
            Ok(acc) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "verdict": "accepted",
                            "request_id": acc.request.header.request_id.to_string(),
                            "device": acc.device.eui.to_string(),
                            "mpxn": acc.mpxn.as_str(),
                            "mpid": acc.mpid,
                            "switch_date": acc.switch_date,
                            "cos": acc.cos,
                        })
                    );
                } else {
                    println!(
                        "ACCEPTED: {} would change supplier of {} (MPxN {}) to {}; registered from {}; \
                         the command would be signed with the {} CoS key.",
                        acc.request.header.request_id.originator,
                        acc.device.eui,
                        acc.mpxn.as_str(),
                        acc.mpid,
                        acc.switch_date.as_deref().unwrap_or("?"),
                        match acc.cos {
                            ecos_party::CosChoice::Transitional => "transitional",
                            ecos_party::CosChoice::Enduring => "enduring",
                        }
                    );
                }
                Ok(())
            }
            Err(refused) => {
                let code = party.config().response_codes.for_reason(&refused.reason);
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "verdict": "refused",
                            "response_code": code,
                            "reason": refused.reason.code(),
                            "check": refused.reason.check(),
                            "evidence": refused.reason,
                            "message": refused.reason.to_string(),
                        })
                    );
                } else {
                    println!(
                        "REFUSED ({code}, {}): {}",
                        refused.reason.code(),
                        refused.reason
                    );
                }
                std::process::exit(2);
            }
        }
    })
}
