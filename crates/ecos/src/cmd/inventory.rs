//! `ecos inventory`: the smart metering inventory and the service users.

use anyhow::Context;
use clap::Subcommand;
use ecos_store::FileKind;

use super::regdata::{ImportArgs, StoreArgs, print_summary, progress_bar, runtime};

/// `ecos inventory` subcommands.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Import an inventory devices file, or a service-users file (told apart by the header).
    Import(ImportArgs),
    /// Show a device's inventory record.
    Show {
        /// The device EUI-64.
        eui: ecos_smki::Eui64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Run an `ecos inventory` subcommand.
pub fn run(cmd: InventoryCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            InventoryCommand::Import(args) => {
                let data = std::fs::read(&args.file)
                    .with_context(|| format!("reading {}", args.file.display()))?;
                let kind = FileKind::detect(&data);
                let store = args.store.open().await?;
                let (bar, mut f) = progress_bar(&args.file);
                let opts = args.options();
                let r = match kind {
                    Some(FileKind::ServiceUsers) => {
                        store.import_service_users(&data, &opts, &mut f).await
                    }
                    Some(FileKind::Registration) => {
                        bar.finish_and_clear();
                        anyhow::bail!(
                            "{} is a registration data file: use `ecos regdata import`",
                            args.file.display()
                        )
                    }
                    _ => store.import_inventory(&data, &opts, &mut f).await,
                };
                bar.finish_and_clear();
                store.close().await;
                print_summary(&r?);
                Ok(())
            }
            InventoryCommand::Show { eui, store } => {
                let s = store.open().await?;
                match s.device(eui).await? {
                    None => println!("{eui}: not in the inventory"),
                    Some(d) => {
                        println!("{eui}: {} {}", d.device_type, d.status);
                        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                        println!("  mpxn            {}", opt(d.mpxn.map(|m| m.to_string())));
                        println!(
                            "  cos credential  {}",
                            opt(d.cos_credential.map(|c| c.to_string()))
                        );
                        println!(
                            "  comms hub       {}",
                            opt(d.comms_hub.map(|h| h.to_string()))
                        );
                        println!("  csp region      {}", opt(d.csp_region));
                        println!("  firmware        {}", opt(d.firmware_version));
                        println!(
                            "  last contact    {}",
                            opt(d.last_contact.map(|t| t.to_string()))
                        );
                        println!(
                            "  KA certificate  {}",
                            opt(d.ka_cert.map(|c| format!("{} bytes", c.len())))
                        );
                        println!(
                            "  DS certificate  {}",
                            opt(d.ds_cert.map(|c| format!("{} bytes", c.len())))
                        );
                    }
                }
                s.close().await;
                Ok(())
            }
        }
    })
}
