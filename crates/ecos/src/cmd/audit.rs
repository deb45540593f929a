//! `ecos audit verify`: check the hash chain of the audit log.

use clap::Subcommand;

use crate::config::ConfigArgs;
use crate::wiring;

/// `ecos audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain and report the first broken entry.
    Verify {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Run an `ecos audit` subcommand.
pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { config } => {
            let config = config.load()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let store = wiring::open_store(&config).await?;
                let v = store.verify_audit_chain().await?;
                match v.first_broken {
                    None => {
                        println!(
                            "audit log verified: {} entries, head {}",
                            v.entries,
                            hex::encode(v.head)
                        );
                        Ok(())
                    }
                    Some(b) => {
                        println!("audit log BROKEN after {} good entries: {b}", v.entries);
                        std::process::exit(2);
                    }
                }
            })
        }
    }
}
