//! `ecos data`: synthetic data sets.

use std::path::PathBuf;

use clap::Subcommand;
use ecos_store::generate::{SyntheticSpec, write_synthetic};

/// `ecos data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a consistent synthetic data set: regdata.csv, inventory.csv, service-users.csv.
    Generate {
        /// Number of inventory devices (four per premises: CHF, ESME, GPF, GSME).
        #[arg(long)]
        devices: u64,
        /// Number of suppliers (service users), at least 2.
        #[arg(long, default_value_t = 12)]
        suppliers: u32,
        /// Seed: the same seed and sizes give the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory to write the files into (created if missing).
        out_dir: PathBuf,
    },
}

/// Run an `ecos data` subcommand.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Generate {
            devices,
            suppliers,
            seed,
            out_dir,
        } => {
            let set = write_synthetic(
                &out_dir,
                &SyntheticSpec {
                    devices,
                    suppliers,
                    seed,
                },
            )?;
            println!(
                "{}: {} registration rows over {} MPxNs",
                set.registration_file.display(),
                set.registration_rows,
                set.mpxns
            );
            println!("{}: {} devices", set.inventory_file.display(), set.devices);
            println!(
                "{}: {} service users",
                set.service_users_file.display(),
                set.service_users
            );
            Ok(())
        }
    }
}
